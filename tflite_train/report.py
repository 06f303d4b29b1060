"""What `inspect` reports about a model: per-operator shapes, parameters, MACs and
activation bytes, and totals including TFLM's inference arena for the file's order."""
from __future__ import annotations

from . import memory, ops
from .ir import Graph


def _params(graph: Graph, op, opdef) -> tuple[int, int]:
    count = nbytes = 0
    for pos in opdef.param_inputs:
        if pos < len(op.inputs) and op.inputs[pos] >= 0:
            t = graph.tensors[op.inputs[pos]]
            if t.is_constant:
                count += t.size
                nbytes += t.nbytes
    return count, nbytes


def summarize(graph: Graph, file_bytes: int) -> dict:
    ops.validate(graph)
    plan = memory.plan_inference(graph)
    rows = []
    for k, op in enumerate(graph.operators):
        opdef = ops.get(graph, k)
        n_params, param_bytes = _params(graph, op, opdef)
        activations = [graph.tensors[i] for i in op.inputs if i >= 0
                       and not graph.tensors[i].is_constant]
        outputs = graph.op_outputs(op)
        rows.append({
            "index": k,
            "op": op.kind,
            "inputs": [list(t.shape) for t in activations],
            "outputs": [list(t.shape) for t in outputs],
            "params": n_params,
            "param_bytes": param_bytes,
            "macs": int(opdef.macs(graph, op)),
            "activation_bytes": sum(t.nbytes for t in activations + outputs),
            "live_bytes": plan.live[k],
            "trainable_through": opdef.backward is not None,
        })
    return {
        "operators": rows,
        "totals": {
            "operators": len(rows),
            "params": sum(r["params"] for r in rows),
            "param_bytes": sum(r["param_bytes"] for r in rows),
            "macs": sum(r["macs"] for r in rows),
            "flash_bytes": file_bytes,
            "inference_arena_bytes": plan.arena_bytes,
            "inference_peak_live_bytes": max(plan.live) if plan.live else 0,
            "inference_peak_op": plan.peak_op,
        },
        "inputs": [{"name": graph.tensors[i].name, "shape": list(graph.tensors[i].shape),
                    "dtype": graph.tensors[i].dtype} for i in graph.inputs],
        "outputs": [{"name": graph.tensors[i].name, "shape": list(graph.tensors[i].shape),
                     "dtype": graph.tensors[i].dtype} for i in graph.outputs],
    }
