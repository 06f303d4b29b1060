"""The MIT HAN Lab tiny-training `.pkl` models -> IR (-> a standard int8 .tflite).

The file is a torch-style zip holding `archive/data.pkl`: plain dicts and lists of numpy
arrays (structure in ../shared/PAPER.md). A pickle can run arbitrary code, so it is read
with an unpickler that admits exactly the four globals numpy arrays need and nothing else.

Mapping, per conv: OIHW int8 weights -> OHWI (CONV_2D) or [1, KH, KW, C]
(DEPTHWISE_CONV_2D), per-channel scales `w_scales`; int32 bias at scale x_scale * w_scale;
output (y_scale, y_zero). The reference pads symmetrically by (k-1)//2, which equals TFLite's
SAME only at stride 1; a strided conv keeps SAME padding with one more row/column of zero
taps (so its leading pad becomes (k-1)//2, see _grow_kernel), or, with padding_mode="pad",
gets an explicit PAD (filled with the input zero point, i.e. real 0) and VALID padding. The reference has no activation op: its ReLU6 is the
[-128, 127] clamp of an output with zero point -128 and scale 6/255, so such outputs are
marked RELU6 (RELU for other scales): the TFLite clamp is the same and training gets the
activation masks. Residuals become ADD, the global average pool an AVERAGE_POOL_2D, the
1000-class 1x1 classifier a CONV_2D followed by RESHAPE to [1, 1000].
"""
from __future__ import annotations

import codecs
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..ir import Graph, Operator, Quantization, Tensor

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits numpy array reconstruction and nothing else."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise ModelError(f"refusing to load: the pickle asks for {module}.{name}; only "
                             "numpy arrays are allowed in a tiny-training model")
        if name == "_reconstruct":
            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:                     # numpy < 2
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        if name == "encode":
            return codecs.encode
        return getattr(np, name)

    def persistent_load(self, pid):
        raise ModelError("refusing to load: the pickle references external storage "
                         "(torch tensors); only numpy arrays are allowed")


# A tiny-training model's data.pkl is a few MB; a larger member is not one (or a zip bomb).
MAX_PICKLE_BYTES = 256 << 20


def load_pkl(path: str | Path) -> dict:
    """The checked configuration of a tiny-training .pkl (`check_config`). Every problem is
    one line naming the file; no message shows bytes from the file."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such file")
    raw = _read_member(path)
    try:
        cfg = _NumpyOnlyUnpickler(io.BytesIO(raw)).load()
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}") from None
    except Exception as exc:      # any malformed pickle; its message may quote raw bytes
        raise ModelError(f"{path}: unreadable pickle ({type(exc).__name__})") from None
    try:
        check_config(cfg)
    except ModelError as exc:
        raise ModelError(f"{path}: not a tiny-training model: {exc}") from None
    return cfg


def _read_member(path: Path) -> bytes:
    try:
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.endswith("data.pkl")]
            if not names:
                raise ModelError(f"{path}: no data.pkl inside; not a tiny-training model")
            if z.getinfo(names[0]).file_size > MAX_PICKLE_BYTES:
                raise ModelError(f"{path}: data.pkl is over {MAX_PICKLE_BYTES:,} bytes; "
                                 "not a tiny-training model")
            with z.open(names[0]) as f:
                raw = f.read(MAX_PICKLE_BYTES + 1)
    except ModelError:
        raise
    except zipfile.BadZipFile:
        raise ModelError(f"{path}: not a tiny-training model (not a zip archive)") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror or 'a corrupt zip archive'})") \
            from None
    except Exception as exc:      # corrupt headers, compression, encryption, names
        raise ModelError(f"{path}: corrupt zip archive ({type(exc).__name__})") from None
    if len(raw) > MAX_PICKLE_BYTES:
        raise ModelError(f"{path}: data.pkl is over {MAX_PICKLE_BYTES:,} bytes")
    return raw


# --- the configuration's structure, checked once: to_graph may assume it ------------------

_MAX_SIZE = 1 << 16          # spatial sizes, channels, strides: far above any such model


def check_config(cfg) -> None:
    """Every key `to_graph` reads, of its type and in its range; a ModelError naming the
    first missing or wrong one (e.g. "blocks.3.depthwise.params.w_scales")."""
    if not isinstance(cfg, dict) or not {"first_conv", "blocks", "classifier"} <= set(cfg):
        raise ModelError("needs first_conv, blocks, classifier")
    fc = _dict(cfg["first_conv"], "first_conv")
    _int(fc, "in_shape", "first_conv", 1, _MAX_SIZE)
    _int(fc, "in_channel", "first_conv", 1, _MAX_SIZE)
    _conv_config(fc, "first_conv")
    blocks = cfg["blocks"]
    if not isinstance(blocks, (list, tuple)):
        raise ModelError(f"blocks is a {type(blocks).__name__}, not a list")
    for i, blk in enumerate(blocks):
        where = f"blocks.{i}"
        _dict(blk, where)
        for part in ("pointwise1", "depthwise", "pointwise2"):
            if blk.get(part) is not None:
                _conv_config(blk[part], f"{where}.{part}")
        res = blk.get("residual")
        if res is not None:
            _dict(res, f"{where}.residual")
            if "kernel_size" not in res:
                params = _dict(_key(res, "params", f"{where}.residual"),
                               f"{where}.residual.params")
                _number(params, "y_scale", f"{where}.residual.params", positive=True)
                _int(params, "y_zero", f"{where}.residual.params", -128, 127)
    if cfg.get("feature_mix") is not None:
        _conv_config(cfg["feature_mix"], "feature_mix")
    _conv_config(cfg["classifier"], "classifier")


def _key(d: dict, key: str, where: str):
    if key not in d:
        raise ModelError(f"{where}: '{key}' is missing")
    return d[key]


def _dict(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise ModelError(f"{where} is a {type(value).__name__}, not a dict")
    return value


def _number(d: dict, key: str, where: str, positive: bool = False) -> float:
    v = _key(d, key, where)
    arr = np.asarray(v) if isinstance(v, (int, float, np.number, np.ndarray)) else None
    if arr is None or arr.size != 1 or arr.dtype.kind not in "iuf" or isinstance(v, bool):
        raise ModelError(f"{where}.{key} is not a number")
    x = float(arr.ravel()[0])
    if not np.isfinite(x) or (positive and x <= 0):
        raise ModelError(f"{where}.{key} = {x!r} is not {'positive and ' if positive else ''}"
                         "finite")
    return x


def _int(d: dict, key: str, where: str, lo: int, hi: int) -> int:
    x = _number(d, key, where)
    if x != int(x) or not lo <= x <= hi:
        raise ModelError(f"{where}.{key} = {x!r} is not an integer in [{lo}, {hi}]")
    return int(x)


def _array(d: dict, key: str, where: str, size: int | None = None) -> np.ndarray:
    v = _key(d, key, where)
    if not isinstance(v, np.ndarray) or v.dtype.kind not in "iuf":
        raise ModelError(f"{where}.{key} is not a numeric array")
    if size is not None and v.size != size:
        raise ModelError(f"{where}.{key} has {v.size} values, {size} expected")
    if not np.all(np.isfinite(v)):
        raise ModelError(f"{where}.{key} holds values that are not finite")
    return v


def _conv_config(cfg, where: str) -> None:
    _dict(cfg, where)
    p = _dict(_key(cfg, "params", where), f"{where}.params")
    here = f"{where}.params"
    w = _array(p, "weight", here)
    if w.ndim != 4 or min(w.shape) < 1 or w.min() < -128 or w.max() > 127:
        raise ModelError(f"{here}.weight {list(w.shape)} is not OIHW int8 weights")
    _array(p, "w_scales", here, size=w.shape[0])
    bias = _array(p, "bias", here, size=w.shape[0])
    if np.any(bias != np.rint(bias)) or np.abs(bias).max() > 1 << 31:
        raise ModelError(f"{here}.bias is not int32")
    for key in ("x_scale", "y_scale"):
        _number(p, key, here, positive=True)
    for key in ("x_zero", "y_zero"):
        _int(p, key, here, -128, 127)
    if "stride" in cfg or where != "classifier":
        _int(cfg, "stride", where, 1, _MAX_SIZE)
    for key in ("groups", "out_shape"):
        if key in cfg:
            _int(cfg, key, where, 1, _MAX_SIZE)


class _Builder:
    def __init__(self):
        self.g = Graph(tensors=[], operators=[], inputs=[], outputs=[])

    def act(self, name: str, shape, scale: float, zero: int) -> int:
        return self.g.add_tensor(Tensor(name, tuple(int(s) for s in shape), "int8",
                                        Quantization(np.array([scale], np.float32),
                                                     np.array([int(zero)], np.int64))))

    def const(self, name: str, data: np.ndarray, quant: Quantization | None = None) -> int:
        return self.g.add_tensor(Tensor(name, data.shape, str(data.dtype), quant, data=data))

    def op(self, opcode: str, inputs, outputs, options_type=None, **options) -> None:
        self.g.operators.append(Operator(opcode, list(inputs), list(outputs), options,
                                         options_type))


def _activation(y_scale: float, y_zero: int) -> int:
    if int(y_zero) != -128:
        return 0
    return 3 if abs(float(y_scale) * 255.0 - 6.0) < 1e-4 else 1


def _same_top(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(output size, leading pad) of TFLite's SAME padding."""
    out = -(-size // stride)
    return out, max((out - 1) * stride + kernel - size, 0) // 2


def _grow_kernel(w: np.ndarray, size: tuple[int, int], stride: int) -> np.ndarray | None:
    """The reference's symmetric (k-1)//2 padding as TFLite SAME padding, by appending a row
    and/or column of zero taps: with kernel k+1, SAME's leading pad is (k-1)//2 where with k
    it is one less (even input, stride 2), and the zero taps add exactly nothing. None when
    no such kernel exists."""
    grow = []
    for d, n in enumerate(size):
        k = w.shape[2 + d]
        pad = (k - 1) // 2
        want = (n + 2 * pad - k) // stride + 1
        if _same_top(n, k, stride) == (want, pad):
            grow.append(0)
        elif _same_top(n, k + 1, stride) == (want, pad):
            grow.append(1)
        else:
            return None
    return np.pad(w, ((0, 0), (0, 0), (0, grow[0]), (0, grow[1])))


def _conv(b: _Builder, cfg: dict, x: int, name: str, padding_mode: str = "kernel") -> int:
    p = cfg["params"]
    w = np.asarray(p["weight"])
    if w.dtype != np.int8:
        w = np.rint(w).astype(np.int8)
    kh, kw = w.shape[2], w.shape[3]
    stride = int(cfg["stride"])
    depthwise = int(cfg.get("groups", 1)) > 1
    if depthwise and int(cfg["groups"]) != w.shape[0]:
        raise ModelError(f"{name}: grouped (non-depthwise) convolution is not supported")
    xt = b.g.tensors[x]
    if abs(float(p["x_scale"]) - float(xt.quant.scale[0])) > 1e-6 * float(p["x_scale"]) \
            or int(p["x_zero"]) != xt.quant.zp:
        raise ModelError(f"{name}: x_scale/x_zero do not match the producer's output")
    n, h, wd, _ = xt.shape
    pad = ((kh - 1) // 2, (kw - 1) // 2)
    padding = 0                                          # SAME
    grown = _grow_kernel(w, (h, wd), stride) if padding_mode == "kernel" else None
    if grown is not None:
        w = grown
    elif stride != 1 and (pad[0] or pad[1]):
        padded = b.act(f"{name}/pad", (n, h + 2 * pad[0], wd + 2 * pad[1], xt.shape[3]),
                       xt.quant.scale[0], xt.quant.zp)
        pads = b.const(f"{name}/paddings",
                       np.array([[0, 0], [pad[0], pad[0]], [pad[1], pad[1]], [0, 0]], np.int32))
        b.op("PAD", [x, pads], [padded], "PadOptions")
        x, padding = padded, 1                           # VALID
    out_hw = int(cfg["out_shape"]) if "out_shape" in cfg else -(-h // stride)
    w_scales = np.asarray(p["w_scales"], np.float32).ravel()
    c_out = w.shape[0]
    zeros = np.zeros(c_out, np.int64)
    if depthwise:
        filt = np.ascontiguousarray(np.transpose(w, (1, 2, 3, 0)))          # [1,KH,KW,C]
        wq = Quantization(w_scales, zeros.copy(), axis=3)
    else:
        filt = np.ascontiguousarray(np.transpose(w, (0, 2, 3, 1)))          # OHWI
        wq = Quantization(w_scales, zeros.copy(), axis=0)
    bias_scale = (np.float32(p["x_scale"]) * w_scales).astype(np.float32)
    # Dead channels in the reference carry bias INT32_MIN (and a ~0 weight scale): in float
    # their output saturates at -128, but in TFLite's int32 accumulator conv + bias would
    # wrap around. Clamp each bias to what cannot overflow given its channel's largest
    # possible dot product (|x - z_x| <= 255); in-range biases are untouched.
    reach = np.abs(w.astype(np.int64)).reshape(c_out, -1).sum(axis=1) * 255
    limit = (1 << 31) - 1 - reach
    bias = np.clip(np.asarray(p["bias"]).astype(np.int64), -limit, limit).astype(np.int32)
    wt = b.const(f"{name}/weights", filt, wq)
    bt = b.const(f"{name}/bias", bias, Quantization(bias_scale, zeros.copy()))
    y = b.act(name, (n, out_hw, out_hw, c_out), float(p["y_scale"]), int(p["y_zero"]))
    options = {"padding": padding, "stride_h": stride, "stride_w": stride,
               "dilation_h_factor": 1, "dilation_w_factor": 1,
               "fused_activation_function": _activation(p["y_scale"], p["y_zero"])}
    if depthwise:
        b.op("DEPTHWISE_CONV_2D", [x, wt, bt], [y], "DepthwiseConv2DOptions",
             depth_multiplier=1, **options)
    else:
        b.op("CONV_2D", [x, wt, bt], [y], "Conv2DOptions", **options)
    return y


def to_graph(cfg: dict, name: str = "tiny-training", padding_mode: str = "kernel") -> Graph:
    """`padding_mode` "kernel": strided convs keep SAME padding with a zero-grown kernel (no
    extra activation copy; the grown taps start at zero and train like the others); "pad":
    an explicit PAD before a VALID conv (the reference's own kernel, one more activation
    copy at run time). Both compute the same int8 values."""
    if padding_mode not in ("kernel", "pad"):
        raise ModelError(f"padding mode must be kernel or pad, got {padding_mode!r}")
    b = _Builder()
    fc = cfg["first_conv"]
    size = int(fc["in_shape"])
    x = b.act("input", (1, size, size, int(fc["in_channel"])), float(fc["params"]["x_scale"]),
              int(fc["params"]["x_zero"]))
    b.g.inputs = [x]
    x = _conv(b, fc, x, "first_conv", padding_mode)
    for i, blk in enumerate(cfg["blocks"]):
        if blk.get("se") is not None:
            raise ModelError(f"blocks.{i}: squeeze-and-excitation is not supported")
        block_in = x
        for part in ("pointwise1", "depthwise", "pointwise2"):
            if blk.get(part) is not None:
                x = _conv(b, blk[part], x, f"blocks.{i}.{part}", padding_mode)
        res = blk.get("residual")
        if res is not None:
            if "kernel_size" in res:
                raise ModelError(f"blocks.{i}: convolutional residuals are not supported")
            rp = res["params"]
            y = b.act(f"blocks.{i}.residual", b.g.tensors[x].shape, float(rp["y_scale"]),
                      int(rp["y_zero"]))
            b.op("ADD", [block_in, x], [y], "AddOptions", fused_activation_function=0)
            x = y
    if cfg.get("feature_mix") is not None:
        x = _conv(b, cfg["feature_mix"], x, "feature_mix")
    xt = b.g.tensors[x]
    pooled = b.act("avgpool", (1, 1, 1, xt.shape[3]), xt.quant.scale[0], xt.quant.zp)
    b.op("AVERAGE_POOL_2D", [x], [pooled], "Pool2DOptions", padding=1, stride_h=1,
         stride_w=1, filter_height=xt.shape[1], filter_width=xt.shape[2],
         fused_activation_function=0)
    cls = dict(cfg["classifier"])
    cls.setdefault("stride", 1)
    cls["out_shape"] = 1
    logits4 = _conv(b, cls, pooled, "classifier")
    c = b.g.tensors[logits4]
    logits = b.act("logits", (1, c.shape[3]), c.quant.scale[0], c.quant.zp)
    shape = b.const("classifier/shape", np.array([1, c.shape[3]], np.int32))
    b.op("RESHAPE", [logits4, shape], [logits], "ReshapeOptions",
         new_shape=np.array([1, c.shape[3]], np.int32))
    b.g.outputs = [logits]
    b.g.description = f"imported from {name} by tflite-train"
    return b.g


def import_pkl(path: str | Path, padding_mode: str = "kernel") -> Graph:
    """The validated IR (validate.check) of a tiny-training .pkl; every problem with the
    file is a one-line ModelError naming it."""
    from ..validate import check
    cfg = load_pkl(path)
    try:
        return check(to_graph(cfg, Path(path).name, padding_mode))
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}") from None
