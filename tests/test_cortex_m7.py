"""The C kernels on a Cortex-M7 (QEMU mps2-an500, ../shared/MCU_RIG.md): test vectors taken
from a real training step of the example model, expected results from the host build of the
same kernels; the Cortex-M7 build must reproduce them bit for bit (memcmp).

Covered: the arithmetic kernels that need no libm (gradients, masks, mean, updates with
stochastic rounding and momentum). The loss (expf/logf) and the cosine lr decay (cos) use
libm, whose last bits differ between glibc and newlib; they are not in this bit-exact check.
"""
import shutil
import subprocess

import numpy as np
import pytest

from tflite_train import augment, tflite_io
from tflite_train.autodiff import Hyper
from tflite_train.demo import EXAMPLE
from tflite_train.runtime import c_kernels
from tflite_train.runtime.numpy_exec import Executor
from tflite_train.training_ops import options_of

RIG = c_kernels.ROOT / "targets" / "mps2_an500"
CPU = ["-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard"]
CASES = ("TT_SAVE_MASK", "TT_BIAS_GRAD", "TT_CONV2D_INPUT_GRAD", "TT_CONV2D_WEIGHT_GRAD",
         "TT_DEPTHWISE_CONV2D_INPUT_GRAD", "TT_DEPTHWISE_CONV2D_WEIGHT_GRAD",
         "TT_FULLY_CONNECTED_INPUT_GRAD", "TT_FULLY_CONNECTED_WEIGHT_GRAD", "TT_MEAN_GRAD",
         "TT_UPDATE_WEIGHT", "TT_UPDATE_BIAS")
CTYPE = {np.dtype(np.int8): "int8_t", np.dtype(np.uint8): "uint8_t",
         np.dtype(np.float32): "float", np.dtype(np.int32): "int32_t"}


class Emitter:
    """Writes the C test program: constant inputs, expected outputs, one call per case."""

    def __init__(self):
        self.decls, self.body, self.n = [], [], 0

    def array(self, a: np.ndarray, const: bool = True) -> str:
        a = np.ascontiguousarray(a)
        name = f"a{self.n}"
        self.n += 1
        if a.dtype == np.float32:
            vals = ", ".join(f"0x{int(v):08x}" for v in a.view(np.uint32).ravel())
            self.decls.append(f"static const uint32_t {name}_bits[{max(a.size, 1)}] = "
                              f"{{{vals or '0'}}};")
            if const:
                return f"((const float *){name}_bits)"
            self.decls.append(f"static uint32_t {name}[{max(a.size, 1)}];")
            self.body.append(f"  memcpy({name}, {name}_bits, sizeof({name}));")
            return f"((float *){name})"
        vals = ", ".join(str(int(v)) for v in a.ravel())
        ctype = CTYPE[a.dtype]
        qual = "const " if const else ""
        self.decls.append(f"static {qual}{ctype} {name}[{max(a.size, 1)}] = {{{vals or '0'}}};")
        return name

    def out(self, a: np.ndarray) -> str:
        name = f"o{self.n}"
        self.n += 1
        ctype = CTYPE[a.dtype]
        self.decls.append(f"static {ctype} {name}[{max(a.size, 1)}];")
        return name

    def check(self, label: str, got: str, want: np.ndarray) -> None:
        expected = self.array(want)
        self.body.append(f'  fails += check("{label}", {got}, {expected}, {want.nbytes});')

    def program(self) -> str:
        return "\n".join([
            '#include <stdint.h>', '#include <string.h>', '#include "tt_kernels.h"',
            "void tt_rig_print(const char *text);",
            *self.decls,
            "static int check(const char *label, const void *got, const void *want, "
            "unsigned n) {",
            "  if (memcmp(got, want, n) == 0) return 0;",
            '  tt_rig_print("MISMATCH "); tt_rig_print(label); tt_rig_print("\\n");',
            "  return 1;", "}",
            "int main(void) {", "  int fails = 0;", *self.body,
            '  tt_rig_print(fails ? "FAIL\\n" : "PASS\\n");', "  return fails;", "}", ""])


def window(e: Emitter, op) -> str:
    o = options_of(op)
    name = f"w{e.n}"
    e.n += 1
    e.decls.append(f"static const tt_window {name} = {{{o.get('stride_h', 1)}, "
                   f"{o.get('stride_w', 1)}, {o.get('dilation_h', 1)}, "
                   f"{o.get('dilation_w', 1)}, {o['pad_top']}, {o['pad_left']}}};")
    return f"&{name}"


def mask(e: Emitter, m) -> str:
    return "0" if m is None else e.array(np.asarray(m, np.uint8))


def emit_case(e: Emitter, g, op, args, expected, state) -> None:
    """One C call reproducing c_kernels' call for `op` on `args`, checked against
    `expected` (the host C results)."""
    k = op.kind
    f32 = lambda a: np.ascontiguousarray(a, np.float32)                # noqa: E731
    if k == "TT_SAVE_MASK":
        o = options_of(op)
        y = np.asarray(args[0], np.int8)
        out = e.out(expected[0])
        e.body.append(f"  tt_save_mask_s8({e.array(y)}, {y.size}, {o['lo']}, {o['hi']}, "
                      f"{out});")
        e.check(k, out, expected[0])
    elif k == "TT_BIAS_GRAD":
        dy = f32(args[0])
        out = e.out(expected[0])
        e.body.append(f"  tt_bias_grad_f32({e.array(dy)}, {mask(e, args[1])}, "
                      f"{dy.size // dy.shape[-1]}, {dy.shape[-1]}, {out});")
        e.check(k, out, expected[0])
    elif k in ("TT_CONV2D_INPUT_GRAD", "TT_DEPTHWISE_CONV2D_INPUT_GRAD"):
        dy, w = f32(args[0]), np.asarray(args[2], np.int8)
        wq = g.tensors[op.inputs[2]].quant
        n, oh, ow, co = dy.shape
        dx = expected[0]
        out = e.out(dx)
        if k == "TT_CONV2D_INPUT_GRAD":
            scales = np.broadcast_to(wq.scale.astype(np.float32), (co,))
            e.body.append(
                f"  tt_conv2d_input_grad_f32({e.array(dy)}, {mask(e, args[1])}, {n}, {oh}, "
                f"{ow}, {co}, {e.array(w)}, {e.array(np.array(scales))}, {w.shape[1]}, "
                f"{w.shape[2]}, {window(e, op)}, {dx.shape[1]}, {dx.shape[2]}, {dx.shape[3]}, "
                f"(float *){out});")
        else:
            m = options_of(op)["depth_multiplier"]
            scales = np.broadcast_to(wq.scale.astype(np.float32), (co,))
            e.body.append(
                f"  tt_depthwise_conv2d_input_grad_f32({e.array(dy)}, {mask(e, args[1])}, {n},"
                f" {oh}, {ow}, {co // m}, {m}, {e.array(w)}, {e.array(np.array(scales))}, "
                f"{w.shape[1]}, {w.shape[2]}, {window(e, op)}, {dx.shape[1]}, {dx.shape[2]}, "
                f"(float *){out});")
        e.check(k, out, dx)
    elif k in ("TT_CONV2D_WEIGHT_GRAD", "TT_DEPTHWISE_CONV2D_WEIGHT_GRAD"):
        dy, x = f32(args[0]), np.asarray(args[2], np.int8)
        xq = g.tensors[op.inputs[2]].quant
        n, oh, ow, co = dy.shape
        dw = expected[0]
        out = e.out(dw)
        scale = f"{np.float32(xq.s).view(np.uint32):#010x}"
        fx = f"u2f({scale}u)"
        if k == "TT_CONV2D_WEIGHT_GRAD":
            e.body.append(
                f"  tt_conv2d_weight_grad_f32({e.array(dy)}, {mask(e, args[1])}, {n}, {oh}, "
                f"{ow}, {co}, {e.array(x)}, {fx}, {xq.zp}, {x.shape[1]}, {x.shape[2]}, "
                f"{x.shape[3]}, {dw.shape[1]}, {dw.shape[2]}, {window(e, op)}, (float *){out});")
        else:
            m = options_of(op)["depth_multiplier"]
            e.body.append(
                f"  tt_depthwise_conv2d_weight_grad_f32({e.array(dy)}, {mask(e, args[1])}, {n},"
                f" {oh}, {ow}, {co // m}, {m}, {e.array(x)}, {fx}, {xq.zp}, {x.shape[1]}, "
                f"{x.shape[2]}, {dw.shape[1]}, {dw.shape[2]}, {window(e, op)}, (float *){out});")
        e.check(k, out, dw)
    elif k == "TT_FULLY_CONNECTED_INPUT_GRAD":
        dy, w = f32(args[0]), np.asarray(args[2], np.int8)
        units, depth = w.shape
        scales = np.broadcast_to(g.tensors[op.inputs[2]].quant.scale.astype(np.float32),
                                 (units,))
        out = e.out(expected[0])
        e.body.append(
            f"  tt_fully_connected_input_grad_f32({e.array(dy)}, {mask(e, args[1])}, "
            f"{dy.size // units}, {units}, {e.array(w)}, {e.array(np.array(scales))}, {depth},"
            f" (float *){out});")
        e.check(k, out, expected[0])
    elif k == "TT_FULLY_CONNECTED_WEIGHT_GRAD":
        dy, x = f32(args[0]), np.asarray(args[2], np.int8)
        xq = g.tensors[op.inputs[2]].quant
        units, kk = dy.shape[-1], x.shape[-1]
        out = e.out(expected[0])
        e.body.append(
            f"  tt_fully_connected_weight_grad_f32({e.array(dy)}, {mask(e, args[1])}, "
            f"{dy.size // units}, {units}, {e.array(x)}, "
            f"u2f({np.float32(xq.s).view(np.uint32):#010x}u), {xq.zp}, {kk}, (float *){out});")
        e.check(k, out, expected[0])
    elif k == "TT_MEAN_GRAD":
        shape = g.tensors[op.outputs[0]].shape
        axes = set(options_of(op)["axes"])
        reduced = np.array([1 if d in axes else 0 for d in range(len(shape))], np.int32)
        out = e.out(expected[0])
        e.body.append(
            f"  tt_mean_grad_f32({e.array(f32(args[0]))}, {e.array(np.array(shape, np.int32))},"
            f" {e.array(reduced)}, {len(shape)}, (float *){out});")
        e.check(k, out, expected[0])
    elif k in ("TT_UPDATE_WEIGHT", "TT_UPDATE_BIAS"):
        o = options_of(op)
        param = np.array(args[0])
        q = g.tensors[op.inputs[0]].quant
        p_name = e.array(param, const=False)
        mom = "0" if args[2] is None else e.array(f32(args[2]), const=False)
        sgd = f"s{e.n}"
        e.n += 1
        e.decls.append(f"static const tt_sgd {sgd} = {{{float(o['lr'])!r}, "
                       f"u2f_const, {int(bool(o['qas']))}, {o['rounding']}, "
                       f"{o['decay_steps']}}};".replace(
                           "u2f_const", f"{float(np.float32(o['momentum']))!r}f"))
        rng = state["c"].rng if "c" in state else None
        st = f"st{e.n}"
        e.n += 1
        e.body.append(f"  tt_update_state {st}; tt_update_state_init(&{st}, {o['seed']}u);")
        assert rng is None
        if k == "TT_UPDATE_WEIGHT":
            dims = np.array(param.shape, np.int32)
            scales = np.ascontiguousarray(q.scale.astype(np.float32))
            e.body.append(
                f"  tt_update_weight_s8({p_name}, {e.array(dims)}, {param.ndim}, "
                f"{0 if o['axis'] == 0 else 1}, {e.array(scales)}, {scales.size}, "
                f"{e.array(f32(args[1]))}, {o['channels']}, {mom}, &{sgd}, &{st});")
        else:
            scales = np.ascontiguousarray(np.broadcast_to(q.scale.astype(np.float32),
                                                          param.shape))
            e.body.append(
                f"  tt_update_bias_s32({p_name}, {param.size}, {e.array(scales)}, "
                f"{e.array(f32(args[1]))}, {mom}, &{sgd}, &{st});")
        e.check(k, p_name, expected[0])
        if args[2] is not None:
            e.check(k + " momentum", mom, expected[1])


def build_vectors() -> str:
    """One training step of the example model (separate gradient/update ops, momentum,
    stochastic rounding); the first instance of each covered op becomes a test case."""
    r = augment.augment(tflite_io.load(EXAMPLE), "full", 4,
                        Hyper(lr=0.05, momentum=0.5, rounding="stochastic", seed=5), fuse=False)
    g = r.graph
    ex = Executor(g, "c")
    x = np.random.default_rng(0).integers(-128, 128, (1, 32, 32, 1)).astype(np.int8)
    values = {i: t.data for i, t in enumerate(g.tensors) if t.data is not None}
    values.update(ex.variables)
    values[g.inputs[0]], values[g.inputs[1]] = x, np.array([1], np.int32)
    e = Emitter()
    e.decls.append("static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }")
    done = set()
    for k, op in enumerate(g.operators):
        d = ex.opdefs[k]
        args = [values.get(i) if i >= 0 else None for i in op.inputs]
        if op.kind in CASES and op.kind not in done:
            copies = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
            state = {}
            outs = d.forward(g, op, copies, state) if d.stateful else d.forward(g, op, copies)
            expected = list(outs) if not d.stateful else [copies[0], copies[2]]
            emit_case(e, g, op, [a.copy() if isinstance(a, np.ndarray) else a for a in args],
                      [np.asarray(v) for v in expected if v is not None], {})
            done.add(op.kind)
        outs = d.forward(g, op, args, ex.op_state[k]) if d.stateful else d.forward(g, op, args)
        for index, y in zip(op.outputs, outs):
            values[index] = np.asarray(y).reshape(g.tensors[index].shape)
    assert done == set(CASES), set(CASES) - done
    return e.program()


def test_kernels_are_bit_identical_on_the_cortex_m7(tmp_path):
    gcc, qemu = shutil.which("arm-none-eabi-gcc"), shutil.which("qemu-system-arm")
    if gcc is None or qemu is None:
        pytest.skip("the Cortex-M7 rig needs gcc-arm-none-eabi and qemu-system-arm "
                    "(make setup installs them)")
    (tmp_path / "main.c").write_text(build_vectors())
    elf = tmp_path / "test.elf"
    subprocess.run([gcc, *CPU, "-std=c99", "-O2", "-ffp-contract=off", "-Wall", "-Wextra",
                    "-Werror", "-ffunction-sections", "-fdata-sections", "-nostartfiles",
                    "--specs=nano.specs", "--specs=nosys.specs", "-T", str(RIG / "link.ld"),
                    "-Wl,--gc-sections", "-I", str(c_kernels.ROOT / "include"),
                    str(RIG / "startup.c"), str(c_kernels.ROOT / "src" / "tt_kernels.c"),
                    str(tmp_path / "main.c"), "-lm", "-o", str(elf)], check=True)
    res = subprocess.run(["timeout", "120", qemu, "-M", "mps2-an500", "-cpu", "cortex-m7",
                          "-nographic", "-monitor", "none", "-serial", "stdio",
                          "-semihosting-config", "enable=on,target=native", "-kernel",
                          str(elf)], capture_output=True, text=True)
    output = res.stdout + res.stderr
    assert res.returncode == 0 and "PASS" in output, output[-2000:]
