"""A family of small full-int8 models built with TensorFlow's converter (Keras ->
TFLiteConverter, representative dataset, Optimize.DEFAULT, TFLITE_BUILTINS_INT8, int8 I/O
unless an entry asks for float I/O): the oracle family the numpy forward is compared
against TFLM with. Together they cover every op and option the forward claims; `convert`
checks each file (with the `tflite` package) for the ops its entry promises, and
`python tests/modelzoo.py` builds everything, runs each model once in TFLM and prints the
coverage table.

Notes on the options:
  * SAME padding is asymmetric (one more row/column after than before) exactly when the
    total padding (out-1)*stride + k_eff - in is odd. An odd input with an odd kernel and
    stride 2 pads evenly, so "conv" uses a 4x4 kernel on a 13x13 input (pads 1 before,
    2 after) and "conv_strided" a 3x3 kernel on a 12x12 input (0 before, 1 after).
  * Keras cannot combine stride > 1 with dilation > 1, so dilated convs are stride 1.
  * Conv/FC biases use a random initializer so the bias path is exercised.
  * Fused activations: the converter calibrates their outputs to the activation's own
    range, which puts every RELU6 / RELU_N1_TO_1 bound on the int8 limits; the "clamps"
    entry edits its converted file so that every bound lies inside (see
    `widen_clamped_outputs`).
  * Per-tensor weights come from `converter._experimental_disable_per_channel = True`.
    FULLY_CONNECTED weights are per-tensor either way (the converter's default for FC).
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Every builtin op the numpy forward implements; a zoo model containing anything else (say
# a MUL the converter failed to fold) is a bug in the zoo, and convert() refuses it.
SUPPORTED_OPS = frozenset({
    "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "PAD", "AVERAGE_POOL_2D",
    "MAX_POOL_2D", "MEAN", "RESHAPE", "SOFTMAX", "TRANSPOSE", "QUANTIZE", "DEQUANTIZE"})


def _tf():
    import tensorflow as tf
    return tf, tf.keras.layers


def _init(scale):
    import tensorflow as tf
    return tf.keras.initializers.RandomUniform(-scale, scale)


def _lambda(fn, name):
    """A Lambda layer around raw tf ops (Keras 3 functional models need one)."""
    _, L = _tf()
    return L.Lambda(fn, name=name)


# ----------------------------------------------------------------------------- builders
def conv_model():
    """CONV_2D: odd 13x13 input, 4x4 stride-2 SAME (asymmetric pad 1/2) + RELU; 3x5 VALID
    + RELU6; 3x3 dilation-2 SAME, no activation; 5x5 dilation-2 VALID + RELU; 1x1."""
    tf, L = _tf()
    b = _init(0.3)
    x = inp = tf.keras.Input((13, 13, 3), batch_size=1)
    x = L.Conv2D(8, 4, strides=2, padding="same", activation="relu",
                 bias_initializer=b)(x)                                     # 7x7x8
    x = L.Conv2D(8, (3, 5), padding="valid", activation="relu6",
                 bias_initializer=b)(x)                                     # 5x3x8
    x = L.Conv2D(8, 3, padding="same", dilation_rate=2, bias_initializer=b)(x)   # 5x3x8
    x = L.ZeroPadding2D(((2, 2), (3, 3)))(x)                                # 9x9x8
    x = L.Conv2D(6, 5, padding="valid", dilation_rate=2, activation="relu",
                 bias_initializer=b)(x)                                     # 1x1x6
    x = L.Conv2D(5, 1, bias_initializer=b)(x)                               # 1x1x5
    return tf.keras.Model(inp, L.Reshape((5,))(x))


def conv_strided_model():
    """CONV_2D: even 12x12 input, 3x3 stride-2 SAME (asymmetric pad 0/1) + RELU6; 5x5 SAME
    stride 1; 3x3 stride-2 VALID + RELU; 1x1 stride-2 VALID; then a dense head."""
    tf, L = _tf()
    b = _init(0.3)
    x = inp = tf.keras.Input((12, 12, 4), batch_size=1)
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu6",
                 bias_initializer=b)(x)                                     # 6x6x8
    x = L.Conv2D(8, 5, padding="same", bias_initializer=b)(x)              # 6x6x8
    x = L.Conv2D(10, 3, strides=2, padding="valid", activation="relu",
                 bias_initializer=b)(x)                                     # 2x2x10
    x = L.Conv2D(6, 1, strides=2, padding="valid", bias_initializer=b)(x)   # 1x1x6
    x = L.Flatten()(x)
    return tf.keras.Model(inp, L.Dense(4, bias_initializer=b)(x))


def depthwise_model():
    """DEPTHWISE_CONV_2D: multiplier 2 SAME + RELU6; multiplier 1 stride-2 VALID; dilation 2
    SAME + RELU; 2x2 dilation 2 VALID with multiplier 2; 3x5 stride-2 SAME + RELU6. (The
    asymmetric-SAME depthwise is in "mobile": 3x3 stride 2 on a 4x4 map.)"""
    tf, L = _tf()
    b = _init(0.3)
    x = inp = tf.keras.Input((15, 15, 4), batch_size=1)
    x = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="relu6",
                          bias_initializer=b)(x)                            # 15x15x8
    x = L.DepthwiseConv2D(3, strides=2, padding="valid", bias_initializer=b)(x)  # 7x7x8
    x = L.DepthwiseConv2D(3, padding="same", dilation_rate=2, activation="relu",
                          bias_initializer=b)(x)                            # 7x7x8
    x = L.DepthwiseConv2D(2, depth_multiplier=2, padding="valid", dilation_rate=2,
                          bias_initializer=b)(x)                            # 5x5x16
    x = L.DepthwiseConv2D((3, 5), strides=2, padding="same", activation="relu6",
                          bias_initializer=b)(x)                            # 3x3x16
    x = L.Flatten()(x)
    return tf.keras.Model(inp, L.Softmax()(L.Dense(4, bias_initializer=b)(x)))


def pool_model():
    """AVERAGE_POOL_2D SAME stride 1 and 2 (SAME average pools divide by the count of
    in-bounds taps only), VALID stride 2; MAX_POOL_2D SAME stride 2, VALID stride 1; ADD of
    the two pooled branches; global MEAN head."""
    tf, L = _tf()
    b = _init(0.3)
    x = inp = tf.keras.Input((16, 16, 3), batch_size=1)
    x = L.Conv2D(6, 3, padding="same", activation="relu", bias_initializer=b)(x)  # 16x16
    x = L.AveragePooling2D(3, strides=1, padding="same")(x)              # 16x16
    x = L.AveragePooling2D(3, strides=2, padding="same")(x)              # 8x8 (pad 0/1)
    x = L.MaxPooling2D(3, strides=2, padding="same")(x)                  # 4x4
    x = L.Conv2D(6, 1, bias_initializer=b)(x)
    y = L.AveragePooling2D(2, strides=2, padding="valid")(x)             # 2x2
    z = L.MaxPooling2D(3, strides=1, padding="valid")(x)                 # 2x2
    x = L.Add()([y, z])
    x = L.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inp, L.Dense(3, bias_initializer=b)(x))


def dense_model():
    """FULLY_CONNECTED on a 2-D input: with bias + RELU, without bias, with bias and no
    activation; SOFTMAX output."""
    tf, L = _tf()
    b = _init(0.3)
    x = inp = tf.keras.Input((24,), batch_size=1)
    x = L.Dense(16, activation="relu", bias_initializer=b)(x)
    x = L.Dense(12, use_bias=False)(x)
    x = L.Dense(10, activation="relu", use_bias=False)(x)
    x = L.Dense(5, bias_initializer=b)(x)
    return tf.keras.Model(inp, L.Softmax()(x))


def softmax_mid_model():
    """SOFTMAX inside the network (a gradient passes through it): dense -> softmax ->
    dense -> softmax."""
    tf, L = _tf()
    b = _init(0.3)
    x = inp = tf.keras.Input((12,), batch_size=1)
    x = L.Softmax()(L.Dense(8, bias_initializer=b, kernel_initializer=_init(3.0))(x))
    x = L.Dense(4, bias_initializer=b, kernel_initializer=_init(3.0))(x)
    return tf.keras.Model(inp, L.Softmax()(x))


def branches_model():
    """ADD: two branches of different scales, a residual add, an add with fused RELU (Add ->
    ReLU), a broadcast add of a keepdims MEAN; explicit tf.pad; TRANSPOSE; stride-1 pools;
    RESHAPE; a dense head without bias."""
    tf, L = _tf()
    b = _init(0.3)
    x = inp = tf.keras.Input((8, 8, 4), batch_size=1)
    a = L.Conv2D(6, 3, padding="same", activation="relu", bias_initializer=b)(x)
    c = L.Conv2D(6, 1, bias_initializer=b, kernel_initializer=_init(2.0))(x)  # ~4x the range
    s = L.Add()([a, c])                                                    # scales differ
    r = L.Conv2D(6, 3, padding="same", bias_initializer=b)(s)
    s = L.ReLU()(L.Add()([s, r]))                                          # residual + RELU
    m = _lambda(lambda t: tf.reduce_mean(t, axis=[1, 2], keepdims=True), "mean_keep")(s)
    s = L.Add()([s, m])                                                    # broadcast add
    s = _lambda(lambda t: tf.pad(t, [[0, 0], [1, 0], [0, 2], [0, 0]]), "tf_pad")(s)  # 9x10
    t = _lambda(lambda t: tf.transpose(t, [0, 2, 1, 3]), "transpose")(s)  # 10x9
    t = L.MaxPooling2D(2, strides=1, padding="same")(t)                    # 10x9
    t = L.AveragePooling2D(2, strides=1, padding="valid")(t)               # 9x8
    t = L.Conv2D(4, 3, strides=2, padding="same", activation="relu6",
                 bias_initializer=b)(t)                                    # 5x4x4
    t = L.Reshape((5 * 4 * 4,))(t)
    return tf.keras.Model(inp, L.Dense(6, use_bias=False)(t))


def mean_model():
    """MEAN: keepdims over axes 1,2 feeding a 1x1 conv, and GlobalAveragePooling2D (MEAN
    without keepdims) on a non-square map; TRANSPOSE of the channels."""
    tf, L = _tf()
    b = _init(0.3)
    x = inp = tf.keras.Input((10, 6, 3), batch_size=1)
    x = L.Conv2D(8, 3, padding="same", activation="relu6", bias_initializer=b)(x)
    g = _lambda(lambda t: tf.reduce_mean(t, axis=[1, 2], keepdims=True), "mean_keep")(x)
    g = L.Conv2D(8, 1, activation="relu", bias_initializer=b)(g)           # 1x1x8
    x = L.Add()([x, g])
    x = _lambda(lambda t: tf.transpose(t, [0, 1, 3, 2]), "transpose")(x)   # 10x8x6
    x = L.GlobalAveragePooling2D()(x)                                     # MEAN -> (1, 6)
    return tf.keras.Model(inp, L.Dense(4, bias_initializer=b)(x))


def mobile_model():
    """Mobilenet-like: conv s2 -> dw -> pw (linear) -> residual ADD -> ZeroPadding2D + conv
    VALID s2 -> dw s2 -> pw -> global MEAN -> dense RELU -> dense -> softmax."""
    tf, L = _tf()
    b = _init(0.2)
    x = inp = tf.keras.Input((16, 16, 3), batch_size=1)
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu6", bias_initializer=b)(x)
    y = L.DepthwiseConv2D(3, padding="same", activation="relu6", bias_initializer=b)(x)
    y = L.Conv2D(8, 1, bias_initializer=b)(y)
    x = L.Add()([x, y])                                                    # 8x8x8
    x = L.ZeroPadding2D(((1, 0), (0, 1)))(x)                               # 9x9x8
    x = L.Conv2D(12, 3, strides=2, padding="valid", activation="relu", bias_initializer=b)(x)
    x = L.DepthwiseConv2D(3, strides=2, padding="same", activation="relu6",
                          bias_initializer=b)(x)                           # 2x2x12
    x = L.Conv2D(16, 1, activation="relu6", bias_initializer=b)(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(10, activation="relu", bias_initializer=b)(x)
    return tf.keras.Model(inp, L.Softmax()(L.Dense(3, bias_initializer=b)(x)))


def classifier_1x1_model():
    """A 1x1 CONV_2D used as the classifier on a pooled 1x1 map, then RESHAPE + SOFTMAX
    (the person detector's pattern)."""
    tf, L = _tf()
    b = _init(0.3)
    x = inp = tf.keras.Input((12, 12, 2), batch_size=1)
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu6", bias_initializer=b)(x)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu6", bias_initializer=b)(x)
    x = L.AveragePooling2D(6)(x)                                           # 1x1x8
    x = L.Conv2D(5, 1, bias_initializer=b)(x)
    x = L.Reshape((5,))(x)
    return tf.keras.Model(inp, L.Softmax()(x))


def float_io_model():
    """Float32 input and output: the converter adds QUANTIZE and DEQUANTIZE."""
    tf, L = _tf()
    b = _init(0.3)
    x = inp = tf.keras.Input((6, 6, 2), batch_size=1)
    x = L.Conv2D(4, 3, padding="same", activation="relu", bias_initializer=b)(x)
    x = L.DepthwiseConv2D(3, strides=2, padding="valid", bias_initializer=b)(x)
    x = L.Flatten()(x)
    return tf.keras.Model(inp, L.Dense(3, bias_initializer=b)(x))


def clamps_model():
    """Every fused clamp inside the int8 range (after `widen_clamped_outputs`): CONV_2D
    RELU6 and RELU, DEPTHWISE_CONV_2D and FULLY_CONNECTED RELU_N1_TO_1 (a clip to [-1, 1]),
    ADD RELU6 (Add -> ReLU(6), of a RELU6 output and a linear conv's), FULLY_CONNECTED RELU6;
    weights large enough that the pre-activations of full-range inputs run far past every
    bound. One initializer per layer: a shared one gives same-shaped layers equal weights,
    which the converter stores once, as one tensor two layers read."""
    tf, L = _tf()
    b = _init(0.5)
    x = inp = tf.keras.Input((8, 8, 3), batch_size=1)
    a = L.Conv2D(8, 3, padding="same", activation="relu6", kernel_initializer=_init(2.0),
                 bias_initializer=b)(x)
    n = L.DepthwiseConv2D(3, padding="same", depthwise_initializer=_init(1.0),
                          bias_initializer=b)(a)
    n = _lambda(lambda t: tf.clip_by_value(t, -1.0, 1.0), "clip_dw")(n)
    r = L.Conv2D(8, 1, activation="relu", kernel_initializer=_init(1.0), bias_initializer=b)(n)
    r = L.Conv2D(8, 1, kernel_initializer=_init(1.0), bias_initializer=b)(r)  # either sign
    s = L.ReLU(max_value=6.0)(L.Add()([a, r]))
    s = L.GlobalAveragePooling2D()(s)
    d = L.Dense(12, activation="relu6", kernel_initializer=_init(6.0), bias_initializer=b)(s)
    d = L.Dense(16, kernel_initializer=_init(1.0), bias_initializer=b)(d)
    d = _lambda(lambda t: tf.clip_by_value(t, -1.0, 1.0), "clip_fc")(d)
    return tf.keras.Model(inp, L.Dense(4, bias_initializer=b)(d))


# The converter calibrates a fused activation's output to the activation's own range, so a
# RELU6 output always spans [0, 6] on the whole int8 grid: q(6) = 127 and q(0) = -128 are
# the int8 limits themselves, and a wrong rounding of the clamp (or no clamp at all) cannot
# show. `widen_clamped_outputs` moves each fused activation's output grid so that its bounds
# fall inside [-128, 127] (the model stays a valid int8 model: every reader of the tensor
# requantizes from its quantization). Each activation kind's bounds, in LSBs from the zero
# point, alternate between a fraction of .7 and an exact tie .5 (140.5 is exact in float32):
# TFLite's roundf (halves away from zero) puts them on another integer than floor, ceil,
# truncation or round-half-even would. Fractions below .5 are left out on purpose: they
# round a bound to a real value inside the float one (q(6) * s < 6), where the int8 clamp
# and a float ReLU6 at the dequantized output disagree about the gradient, and
# tests/test_backward.py takes the float one as its reference.
WIDEN = {1: (-96, None), 3: (-100, 6.0), 2: (0, 1.0)}      # activation -> (zero point, bound)
WIDEN_LSBS = {3: (160.7, 140.5), 2: (70.7, 50.5)}


def widen_clamped_outputs(buf: bytes) -> bytes:
    """Rewrite, in place in the flatbuffer, the scale and zero point of the output of every
    CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED / ADD with a fused activation: RELU gets
    zero point -96 (its q(0) bound inside the grid), RELU6 zero point -100 and 6.0 at 160.7
    or 140.5 LSBs, RELU_N1_TO_1 zero point 0 and 1.0 at 70.7 or 50.5 LSBs, in turn."""
    import tflite
    data = bytearray(buf)
    model = tflite.Model.GetRootAs(data, 0)
    sg = model.Subgraphs(0)
    seen = {kind: 0 for kind in WIDEN}
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        name = _opname(model, op)
        cls = {"CONV_2D": tflite.Conv2DOptions, "DEPTHWISE_CONV_2D":
               tflite.DepthwiseConv2DOptions, "FULLY_CONNECTED": tflite.FullyConnectedOptions,
               "ADD": tflite.AddOptions}.get(name)
        if cls is None:
            continue
        table, o = op.BuiltinOptions(), cls()
        o.Init(table.Bytes, table.Pos)
        act = o.FusedActivationFunction()
        if act not in WIDEN:
            continue
        q = sg.Tensors(op.Outputs(0)).Quantization()
        scale, zp = q.ScaleAsNumpy(), q.ZeroPointAsNumpy()    # views into `data`
        zero, bound = WIDEN[act]
        zp[0] = zero
        if bound is not None:
            lsbs = WIDEN_LSBS[act][seen[act] % 2]
            scale[0] = np.float32(bound / lsbs)
        seen[act] += 1
    return bytes(data)


# ----------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class Entry:
    """A zoo entry: calling it builds the Keras model (seeded if a seed is given); the options say how it is
    converted, and `ops` lists the builtin ops the converted file must contain."""
    builder: Callable
    ops: frozenset
    per_tensor: bool = False
    float_io: bool = False
    edit: Callable | None = None         # bytes -> bytes, applied after conversion
    doc: str = field(default="", compare=False)

    def __call__(self, seed: int | None = None):
        if seed is not None:
            import tensorflow as tf
            tf.keras.backend.clear_session()     # layer-name counters: same names, same bytes
            tf.keras.utils.set_random_seed(seed)
        return self.builder()


def _entry(builder, ops, **options):
    return Entry(builder, frozenset(ops.split()), doc=(builder.__doc__ or "").split("\n")[0],
                 **options)


_CONV = "CONV_2D PAD RESHAPE"
_DW = "DEPTHWISE_CONV_2D FULLY_CONNECTED SOFTMAX"
_MOBILE = "CONV_2D DEPTHWISE_CONV_2D ADD PAD MEAN FULLY_CONNECTED SOFTMAX"

# name -> entry (callable: returns the Keras model), per-tensor and float-I/O variants
# under their own names so build_all covers them. Tests name "conv", "depthwise", "mobile",
# "branches" and "classifier_1x1" directly: keep those names.
MODELS: dict[str, Entry] = {
    "conv": _entry(conv_model, _CONV),
    "conv_per_tensor": _entry(conv_model, _CONV, per_tensor=True),
    "conv_strided": _entry(conv_strided_model, "CONV_2D FULLY_CONNECTED"),
    "depthwise": _entry(depthwise_model, _DW),
    "depthwise_per_tensor": _entry(depthwise_model, _DW, per_tensor=True),
    "pool": _entry(pool_model, "CONV_2D MAX_POOL_2D AVERAGE_POOL_2D ADD MEAN FULLY_CONNECTED"),
    "dense": _entry(dense_model, "FULLY_CONNECTED SOFTMAX"),
    "softmax_mid": _entry(softmax_mid_model, "FULLY_CONNECTED SOFTMAX"),
    "branches": _entry(branches_model, "CONV_2D ADD MEAN PAD TRANSPOSE MAX_POOL_2D "
                                       "AVERAGE_POOL_2D RESHAPE FULLY_CONNECTED"),
    "mean": _entry(mean_model, "CONV_2D MEAN ADD TRANSPOSE FULLY_CONNECTED"),
    "mobile": _entry(mobile_model, _MOBILE),
    "mobile_per_tensor": _entry(mobile_model, _MOBILE, per_tensor=True),
    "classifier_1x1": _entry(classifier_1x1_model,
                             "CONV_2D DEPTHWISE_CONV_2D AVERAGE_POOL_2D RESHAPE SOFTMAX"),
    "float_io": _entry(float_io_model,
                       "QUANTIZE CONV_2D DEPTHWISE_CONV_2D FULLY_CONNECTED DEQUANTIZE",
                       float_io=True),
    "clamps": _entry(clamps_model, "CONV_2D DEPTHWISE_CONV_2D ADD MEAN FULLY_CONNECTED",
                     edit=widen_clamped_outputs),
}


# ----------------------------------------------------------------------------- convert
@contextlib.contextmanager
def _quiet():
    """Silence the converter's chatter (Keras export prints, MLIR/absl logs on fd 2) at the
    file-descriptor level; replay it on stderr if the conversion fails."""
    import warnings
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as log, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            if failed:
                log.seek(0)
                sys.stderr.write(log.read().decode(errors="replace"))


def convert(name: str, *, per_tensor: bool = False, float_io: bool = False,
            seed: int = 0) -> bytes:
    """Build MODELS[name] with seeded weights and convert it to a full-int8 flatbuffer.
    per_tensor / float_io switch the option on (an entry's own options always apply)."""
    entry = MODELS[name]
    per_tensor = per_tensor or entry.per_tensor
    float_io = float_io or entry.float_io
    with _quiet():
        import tensorflow as tf
        buf = _convert(tf, entry(seed), per_tensor, float_io, seed)
    if entry.edit is not None:
        buf = entry.edit(buf)
    ops = set(op_names(buf))
    expect = set(entry.ops) | ({"QUANTIZE", "DEQUANTIZE"} if float_io else set())
    if expect - ops or ops - SUPPORTED_OPS:
        raise RuntimeError(f"modelzoo {name!r}: converter produced {sorted(ops)}; missing "
                           f"{sorted(expect - ops)}, unsupported {sorted(ops - SUPPORTED_OPS)}")
    return buf


def _convert(tf, model, per_tensor, float_io, seed):
    """Keras model -> full-int8 flatbuffer; 32 seeded uniform(-1, 1) calibration inputs."""
    shape = tuple(model.input_shape[1:])
    rng = np.random.RandomState(seed)
    samples = [rng.uniform(-1, 1, (1,) + shape).astype(np.float32) for _ in range(32)]

    def representative():
        for s in samples:
            yield [s]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if not float_io:
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    if per_tensor:
        conv._experimental_disable_per_channel = True
    return bytes(conv.convert())


def build_all(outdir: Path) -> dict[str, Path]:
    """Write <name>.tflite for every entry of MODELS (kept if already there); name -> path."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in MODELS:
        path = outdir / f"{name}.tflite"
        if not path.exists():
            tmp = path.with_name(f"{path.name}.{os.getpid()}.part")
            tmp.write_bytes(convert(name))
            os.replace(tmp, path)
        paths[name] = path
    return paths


# ----------------------------------------------------------------------------- inspection
def _model(buf):
    import tflite
    return tflite.Model.GetRootAs(buf, 0)


def _opname(model, op):
    import tflite
    code = model.OperatorCodes(op.OpcodeIndex())
    return tflite.opcode2name(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()))


def op_names(buf: bytes) -> list[str]:
    """Builtin op names of subgraph 0, in execution order."""
    model = _model(buf)
    sg = model.Subgraphs(0)
    return [_opname(model, sg.Operators(i)) for i in range(sg.OperatorsLength())]


def features(buf: bytes) -> set[tuple]:
    """(op, option, value) tuples describing what the file exercises, read with `tflite`."""
    import tflite
    model = _model(buf)
    sg = model.Subgraphs(0)
    act = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}
    opt_cls = {"CONV_2D": tflite.Conv2DOptions, "DEPTHWISE_CONV_2D":
               tflite.DepthwiseConv2DOptions, "AVERAGE_POOL_2D": tflite.Pool2DOptions,
               "MAX_POOL_2D": tflite.Pool2DOptions, "FULLY_CONNECTED":
               tflite.FullyConnectedOptions, "ADD": tflite.AddOptions,
               "MEAN": tflite.ReducerOptions}
    out = set()
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        name = _opname(model, op)
        out.add((name,))
        if name not in opt_cls:
            continue
        table = op.BuiltinOptions()
        o = opt_cls[name]()
        o.Init(table.Bytes, table.Pos)
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D"):
            pooled = name.endswith("POOL_2D")
            same = o.Padding() == 0
            out.add((name, "padding", "SAME" if same else "VALID"))
            out.add((name, "stride", o.StrideH()))
            w = None if pooled else sg.Tensors(op.Inputs(1))
            kernel = (o.FilterHeight(), o.FilterWidth()) if pooled else (w.Shape(1), w.Shape(2))
            dilation = (1, 1) if pooled else (o.DilationHFactor(), o.DilationWFactor())
            t_in, t_out = sg.Tensors(op.Inputs(0)), sg.Tensors(op.Outputs(0))
            for ax, s, k, d in ((1, o.StrideH(), kernel[0], dilation[0]),
                                (2, o.StrideW(), kernel[1], dilation[1])):
                # SAME padding is asymmetric when the total padding is odd
                total = (t_out.Shape(ax) - 1) * s + (k - 1) * d + 1 - t_in.Shape(ax)
                if same and total > 0 and total % 2:
                    out.add((name, "asymmetric_same", True))
            if pooled:
                continue
            out.add((name, "dilation", o.DilationHFactor()))
            out.add((name, "kernel", f"{kernel[0]}x{kernel[1]}"))
            out.add((name, "per_channel", w.Quantization().ScaleLength() > 1))
            out.add((name, "bias", op.InputsLength() > 2 and op.Inputs(2) >= 0))
            if name == "DEPTHWISE_CONV_2D":
                out.add((name, "multiplier", o.DepthMultiplier()))
        if name == "FULLY_CONNECTED":
            out.add((name, "bias", op.InputsLength() > 2 and op.Inputs(2) >= 0))
        if name == "MEAN":
            out.add((name, "keepdims", bool(o.KeepDims())))
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD"):
            out.add((name, "act", act.get(o.FusedActivationFunction(), "?")))
    return out


REQUIRED = {(op,) for op in SUPPORTED_OPS} | {
    *[(k, "padding", p) for k in ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D",
                                  "MAX_POOL_2D") for p in ("SAME", "VALID")],
    *[(k, "stride", s) for k in ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D")
      for s in (1, 2)],
    *[(k, "dilation", 2) for k in ("CONV_2D", "DEPTHWISE_CONV_2D")],
    *[(k, "per_channel", pc) for k in ("CONV_2D", "DEPTHWISE_CONV_2D") for pc in (True, False)],
    *[("CONV_2D", "act", a) for a in ("NONE", "RELU", "RELU6")],
    *[("CONV_2D", "kernel", k) for k in ("1x1", "3x3", "5x5", "3x5")],
    *[(k, "asymmetric_same", True) for k in ("CONV_2D", "DEPTHWISE_CONV_2D",
                                               "AVERAGE_POOL_2D", "MAX_POOL_2D")],
    ("DEPTHWISE_CONV_2D", "multiplier", 1), ("DEPTHWISE_CONV_2D", "multiplier", 2),
    ("DEPTHWISE_CONV_2D", "act", "RELU6"), ("DEPTHWISE_CONV_2D", "act", "NONE"),
    ("DEPTHWISE_CONV_2D", "act", "RELU_N1_TO_1"),
    ("FULLY_CONNECTED", "bias", True), ("FULLY_CONNECTED", "bias", False),
    ("FULLY_CONNECTED", "act", "RELU"), ("FULLY_CONNECTED", "act", "NONE"),
    ("FULLY_CONNECTED", "act", "RELU6"), ("FULLY_CONNECTED", "act", "RELU_N1_TO_1"),
    ("ADD", "act", "NONE"), ("ADD", "act", "RELU"), ("ADD", "act", "RELU6"),
    ("MEAN", "keepdims", True), ("MEAN", "keepdims", False),
}


def _run_tflm(buf):
    """Invoke the model once in the TFLM interpreter on a random input."""
    with _quiet():
        from tflite_micro.python.tflite_micro import runtime
    it = runtime.Interpreter.from_bytes(buf, arena_size=1 << 20)
    d = it.get_input_details(0)
    rng = np.random.default_rng(0)
    if d["dtype"] == np.int8:
        x = rng.integers(-128, 128, size=d["shape"]).astype(np.int8)
    else:
        x = rng.uniform(-1, 1, size=d["shape"]).astype(d["dtype"])
    it.set_input(x, 0)
    it.invoke()
    return it.get_output(0)


if __name__ == "__main__":
    outdir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
    t0 = time.perf_counter()
    paths = build_all(outdir)
    print(f"build_all: {len(paths)} models in {time.perf_counter() - t0:.1f}s -> {outdir}")
    seen = set()
    for name, path in paths.items():
        buf = path.read_bytes()
        f = features(buf)
        seen |= f
        pc = sorted({t[2] for t in f if t[1:2] == ("per_channel",)})
        out = _run_tflm(buf)
        print(f"{name:<21} per-channel={pc!s:<14} tflm out {tuple(out.shape)} "
              f"{out.dtype}  {' '.join(op_names(buf))}")
    missing = sorted(REQUIRED - seen, key=str)
    print("coverage:", "complete" if not missing else f"MISSING {missing}")
    sys.exit(1 if missing else 0)
