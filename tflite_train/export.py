"""`tflite-train export`: a training model and its trained state -> a plain int8 inference
model that any TFLM app (or other .tflite tool) runs.

The forward operators are kept in their training-model order, the trained parameters
become constants holding the trained values (the new head with them), and everything of
training goes: the TT_* ops, the label input, the loss output, the initial-value copies,
momentum buffers and every other variable. So the exported model computes exactly what the
training model computes with label < 0. Its metadata is the training model's own (the
original model's) minus the training record and any offline memory plan (whose tensor
indices no longer hold), plus a record of the export. The parameters come from a state
file of `train -o` or a device checkpoint blob: export folds whatever values they hold,
whichever mode of training produced them.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from . import checkpoint, ops, tflite_io
from .augment import METADATA_KEY, training_metadata
from .errors import ModelError, TTError
from .ir import Graph

EXPORT_KEY = "tflite_train_export"
OFFLINE_KEY = "OfflineMemoryAllocation"
EXPORT_VERSION = 1
ZIP_MAGIC = b"PK\x03\x04"


def read_state(path: str | Path, graph: Graph, model: bytes) -> tuple[dict[int, np.ndarray], dict]:
    """The trained parameters (tensor index -> values) in a state file of `train -o` or in a
    device checkpoint blob, checked against the training model, and what they are."""
    from .train import load_state
    path = Path(path)
    if not path.is_file():
        raise TTError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    data = path.read_bytes()
    if data[:4] == ZIP_MAGIC:
        return load_state(path, graph, model)
    if data[:4] == checkpoint.MAGIC.to_bytes(4, "little"):
        from .train import model_batch
        ckpt = checkpoint.from_blob(data, graph, model, what=str(path))
        # the state's counter is training Invokes; steps, as train's, count updates (B
        # Invokes each for a model of augment --batch B: a mid-batch one's partial batch,
        # accumulated but not applied, is not in the parameters exported)
        batch = model_batch(graph)
        return ckpt.parameters(), {"kind": "device checkpoint", "sequence": ckpt.sequence,
                                   "steps": None if ckpt.step is None else ckpt.step // batch}
    raise TTError(f"{path}: neither a state file of `train -o` (.npz) nor a device checkpoint "
                  "(tflite-train checkpoint blob)")


def export(graph: Graph, parameters: dict[int, np.ndarray], record: dict) -> Graph:
    """The inference model of a training model, `parameters` folded in as constants."""
    training_metadata(graph)
    label, loss = graph.inputs[-1], graph.outputs[-1]
    if graph.tensors[label].dtype != "int32" or graph.tensors[loss].dtype != "float32":
        raise ModelError("training model: its last input is not the int32 label or its last "
                         "output not the float32 loss")
    trained = checkpoint.trained_parameters(graph)
    missing = [graph.tensors[i].name for i in trained if i not in parameters]
    if missing:
        raise TTError(f"the state has no values for trained tensor {missing[0]!r}")
    graph = _builtin_forward(graph, parameters)
    forward = [op for op in graph.operators if op.opcode != "CUSTOM"]
    inputs, outputs = graph.inputs[:-1], graph.outputs[:-1]
    produced = {t for op in forward for t in op.outputs} | set(inputs)
    used: set[int] = set(inputs) | set(outputs)
    for k, op in enumerate(forward):
        for t in op.inputs:
            if t < 0:
                continue
            tensor = graph.tensors[t]
            if t not in produced and tensor.data is None and t not in parameters:
                raise ModelError(f"operator {op.kind} reads tensor {tensor.name!r}, which only "
                                 "a training op computes: cannot export")
            if tensor.is_variable and t not in trained:
                raise ModelError(f"operator {op.kind} reads variable {tensor.name!r}, which is "
                                 "not a trained parameter: cannot export")
            used.add(t)
        used.update(op.outputs)
    index = {old: new for new, old in enumerate(sorted(used))}
    tensors = []
    for old in sorted(used):
        t = graph.tensors[old]
        if old in parameters and t.is_variable:
            value = np.asarray(parameters[old])
            if value.shape != t.shape or value.dtype != np.dtype(t.dtype):
                raise TTError(f"trained tensor {t.name!r}: the state holds {value.dtype} "
                              f"{value.shape}, the model needs {t.dtype} {t.shape}")
            t = replace(t, data=value.copy(), is_variable=False)
        tensors.append(t)
    kept = [replace(op, inputs=[index[t] if t >= 0 else -1 for t in op.inputs],
                    outputs=[index[t] for t in op.outputs],
                    intermediates=[index[t] for t in op.intermediates])
            for op in forward]
    metadata = {k: v for k, v in graph.metadata.items()
                if k not in (METADATA_KEY, OFFLINE_KEY, EXPORT_KEY)}
    history = json.loads(graph.metadata[EXPORT_KEY]) if EXPORT_KEY in graph.metadata else []
    metadata[EXPORT_KEY] = json.dumps(history + [record]).encode()
    out = Graph(tensors=tensors, operators=kept, inputs=[index[t] for t in inputs],
                outputs=[index[t] for t in outputs], name=graph.name,
                description=graph.description, metadata=metadata, version=graph.version)
    ops.validate(out)
    return out


def _builtin_forward(graph: Graph, parameters: dict[int, np.ndarray]) -> Graph:
    """The graph with each TT_* forward op (augment's memory passes) replaced by the builtin
    it stands for; a filter in two parts becomes one constant: the trained part's values
    (`parameters`) joined with the frozen rest. Each builtin gets its own fused activation
    back (augment's record), so that the model computes the same in float and augments
    again with the same ReLU masks."""
    from .ops import tt_forward, tt_stream
    from .passes.builtins import recorded_activations
    acts = recorded_activations(graph)
    tensors, operators = list(graph.tensors), list(graph.operators)
    for k, op in enumerate(operators):
        if op.kind == tt_stream.KIND:
            operators[k] = tt_stream.to_builtins(replace(graph, tensors=tensors), op,
                                                 (acts.get((k, 0)), acts.get((k, 1))))
            continue
        if op.kind not in tt_forward.FORWARD:
            continue
        pos = tt_forward.positions(op.kind)
        part = op.inputs[pos["filter"]]
        rest = op.inputs[pos["rest"]] if pos["rest"] is not None else -1
        w = part
        if rest >= 0:
            p = tensors[part]
            value = parameters[part] if p.is_variable else p.data
            tensors.append(replace(p, shape=p.shape[:-1] + (p.shape[-1] + tensors[rest].shape[-1],),
                                   data=np.concatenate([value, tensors[rest].data], axis=-1),
                                   is_variable=False))
            w = len(tensors) - 1
        operators[k] = tt_forward.to_builtin(replace(graph, tensors=tensors), op, w,
                                             acts.get((k, 0)))
    operators = [new for op in operators for new in (op if isinstance(op, list) else [op])]
    return replace(graph, tensors=tensors, operators=operators)


def exports(graph: Graph) -> list[dict]:
    """The export records of a model (one per export it went through)."""
    blob = graph.metadata.get(EXPORT_KEY)
    return json.loads(blob) if blob else []


def write(model_path: str, state_path: str, out: str) -> dict:
    """Exports and writes (atomically); returns what was done, for the CLI to print."""
    for other in (model_path, state_path):
        if Path(out).resolve() == Path(other).resolve():
            raise TTError(f"-o {out} is an input file: it would be overwritten")
    graph = tflite_io.load(model_path)
    model = Path(model_path).read_bytes()
    meta = training_metadata(graph)
    parameters, source = read_state(state_path, graph, model)
    record = {"format": "tflite-train export", "version": EXPORT_VERSION,
              "training_model_id": f"{checkpoint.model_id(model):#018x}",
              "scheme": meta["scheme"], "num_classes": meta["num_classes"],
              "trained_tensors": len(parameters),
              "state": {"file": Path(state_path).name, **source}}
    result = export(graph, parameters, record)
    tflite_io.save(result, out)
    return {"operators": len(result.operators), "trained": len(parameters), "source": source,
            "bytes": Path(out).stat().st_size, "graph": result}
