"""A family of small full-int8 models built with TensorFlow's converter (Keras -> TFLite,
representative dataset, TFLITE_BUILTINS_INT8), covering every op and option the numpy
forward claims: the oracle family the tests compare against TFLM.

    python tests/modelzoo.py        # builds them all into a temp dir and prints coverage
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _layers():
    import tensorflow as tf
    return tf, tf.keras.layers


def _rand_init(scale=0.5):
    import tensorflow as tf
    return tf.keras.initializers.RandomUniform(-scale, scale)


def conv_family():
    """CONV_2D: SAME/VALID, stride 1/2 on an odd size (asymmetric SAME padding), dilation 2,
    NONE/RELU/RELU6, 1x1, 3x3 and 3x5 kernels."""
    tf, L = _layers()
    x = inp = tf.keras.Input((13, 13, 3), batch_size=1)
    b = _rand_init(0.3)
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu", bias_initializer=b)(x)
    y = L.Conv2D(8, (3, 5), padding="valid", activation="relu6", bias_initializer=b)(x)
    y = L.Conv2D(8, 3, padding="same", dilation_rate=2, bias_initializer=b)(y)
    y = L.Conv2D(6, 1, activation=None, bias_initializer=b)(y)
    y = L.Conv2D(6, 3, strides=2, padding="valid", activation="relu6", bias_initializer=b)(y)
    y = L.Flatten()(y)
    return tf.keras.Model(inp, L.Dense(5, bias_initializer=b)(y))


def depthwise_family():
    """DEPTHWISE_CONV_2D: multiplier 1 and 2, SAME/VALID, stride 2, dilation 2, RELU6 and
    none; MAX_POOL_2D and AVERAGE_POOL_2D with SAME and VALID."""
    tf, L = _layers()
    b = _rand_init(0.3)
    x = inp = tf.keras.Input((15, 15, 4), batch_size=1)
    x = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="relu6",
                          bias_initializer=b)(x)
    x = L.DepthwiseConv2D(3, strides=2, padding="valid", bias_initializer=b)(x)
    x = L.DepthwiseConv2D(3, padding="same", dilation_rate=2, activation="relu",
                          bias_initializer=b)(x)
    x = L.MaxPooling2D(2, strides=1, padding="same")(x)
    x = L.AveragePooling2D(3, strides=2, padding="same")(x)          # 7 -> 4
    x = L.MaxPooling2D(2, strides=1, padding="valid")(x)             # 4 -> 3
    x = L.AveragePooling2D(2, strides=1, padding="valid")(x)         # 3 -> 2
    x = L.DepthwiseConv2D(2, strides=2, padding="same", activation="relu6",
                          bias_initializer=b)(x)
    x = L.Flatten()(x)
    return tf.keras.Model(inp, L.Softmax()(L.Dense(4, bias_initializer=b)(x)))


def mobile_family():
    """conv -> dw -> pw -> residual ADD -> explicit PAD -> conv -> global MEAN -> dense
    (RELU) -> dense -> softmax."""
    tf, L = _layers()
    b = _rand_init(0.2)
    x = inp = tf.keras.Input((16, 16, 3), batch_size=1)
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu6", bias_initializer=b)(x)
    y = L.DepthwiseConv2D(3, padding="same", activation="relu6", bias_initializer=b)(x)
    y = L.Conv2D(8, 1, bias_initializer=b)(y)
    x = L.Add()([x, y])
    x = L.ZeroPadding2D(((1, 0), (0, 1)))(x)
    x = L.Conv2D(12, 3, strides=2, padding="valid", activation="relu", bias_initializer=b)(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(10, activation="relu", bias_initializer=b)(x)
    return tf.keras.Model(inp, L.Softmax()(L.Dense(3, bias_initializer=b)(x)))


def branches_family():
    """ADD of two branches with different scales (and a broadcast add), MEAN keepdims,
    TRANSPOSE, RESHAPE, a dense without bias."""
    tf, L = _layers()
    b = _rand_init(0.3)
    x = inp = tf.keras.Input((8, 8, 4), batch_size=1)
    a = L.Conv2D(6, 3, padding="same", activation="relu", bias_initializer=b)(x)
    c = L.Conv2D(6, 1, bias_initializer=b)(x)
    c = L.Lambda(lambda t: t * 3.0)(c)
    s = L.Add()([a, c])
    m = L.Lambda(lambda t: tf.reduce_mean(t, axis=[1, 2], keepdims=True))(s)
    s = L.Add()([s, m])                                   # broadcast add
    t = L.Lambda(lambda t: tf.transpose(t, [0, 2, 1, 3]))(s)
    t = L.Conv2D(4, 3, strides=2, padding="same", activation="relu6", bias_initializer=b)(t)
    t = L.Reshape((4 * 4 * 4,))(t)
    return tf.keras.Model(inp, L.Dense(6, use_bias=False)(t))


def classifier_1x1_family():
    """A 1x1 CONV_2D used as the classifier on a pooled 1x1 map, then RESHAPE + SOFTMAX
    (the person detector's pattern)."""
    tf, L = _layers()
    b = _rand_init(0.3)
    x = inp = tf.keras.Input((12, 12, 2), batch_size=1)
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu6", bias_initializer=b)(x)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu6", bias_initializer=b)(x)
    x = L.AveragePooling2D(6)(x)
    x = L.Conv2D(5, 1, bias_initializer=b)(x)
    x = L.Reshape((5,))(x)
    return tf.keras.Model(inp, L.Softmax()(x))


def float_io_family():
    """Float input and output: the converter adds QUANTIZE and DEQUANTIZE."""
    tf, L = _layers()
    b = _rand_init(0.3)
    x = inp = tf.keras.Input((6, 6, 2), batch_size=1)
    x = L.Conv2D(4, 3, padding="same", activation="relu", bias_initializer=b)(x)
    x = L.Flatten()(x)
    return tf.keras.Model(inp, L.Dense(3, bias_initializer=b)(x))


# name -> (builder, per_tensor weights, float I/O)
MODELS = {
    "conv": (conv_family, False, False),
    "conv_per_tensor": (conv_family, True, False),
    "depthwise": (depthwise_family, False, False),
    "depthwise_per_tensor": (depthwise_family, True, False),
    "mobile": (mobile_family, False, False),
    "branches": (branches_family, False, False),
    "classifier_1x1": (classifier_1x1_family, False, False),
    "float_io": (float_io_family, False, True),
}


def convert(name: str, seed: int = 0) -> bytes:
    import tensorflow as tf
    builder, per_tensor, float_io = MODELS[name]
    tf.keras.utils.set_random_seed(seed)
    model = builder()
    shape = model.input_shape[1:]
    rng = np.random.RandomState(seed)

    def representative():
        for _ in range(32):
            yield [rng.uniform(-1, 1, (1,) + shape).astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if not float_io:
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    if per_tensor:
        conv._experimental_disable_per_channel = True
    return conv.convert()


def build_all(outdir: Path) -> dict[str, Path]:
    """Write <name>.tflite for every model (kept if already there); name -> path."""
    outdir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in MODELS:
        path = outdir / f"{name}.tflite"
        if not path.exists():
            tmp = path.with_suffix(".part")
            tmp.write_bytes(convert(name))
            os.replace(tmp, path)
        paths[name] = path
    return paths


if __name__ == "__main__":
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tflite_train import tflite_io
    with tempfile.TemporaryDirectory() as d:
        for name, path in build_all(Path(d)).items():
            g = tflite_io.load(path)
            kinds = sorted({op.kind for op in g.operators})
            pc = {g.tensors[op.inputs[1]].quant.per_channel for op in g.operators
                  if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D")}
            print(f"{name:<22} per-channel={sorted(pc)} {kinds}")
