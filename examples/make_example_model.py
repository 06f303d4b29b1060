"""Builds the built-in example model `tflite_train/data/tiny_cnn.tflite`: a small MobileNet-style
int8 CNN for 32x32 grey images, 10 classes (conv, depthwise/pointwise blocks with a residual
add, global mean, dense head). Untrained weights from a fixed seed: it exists to show the
tools on a model anyone can regenerate, not to classify anything.

    .venv/bin/python examples/make_example_model.py
"""
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tflite_train" / "data" / "tiny_cnn.tflite"


def build() -> tf.keras.Model:
    tf.keras.utils.set_random_seed(7)
    L = tf.keras.layers
    x = inp = tf.keras.Input((32, 32, 1))
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu6")(x)
    for filters, stride in ((16, 2), (16, 1), (32, 2)):
        y = L.DepthwiseConv2D(3, strides=stride, padding="same", activation="relu6")(x)
        y = L.Conv2D(filters, 1, activation="relu6")(y)
        x = L.Add()([x, y]) if (stride == 1 and x.shape[-1] == filters) else y
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(10)(x)
    return tf.keras.Model(inp, L.Softmax()(x))


def convert(model: tf.keras.Model) -> bytes:
    rng = np.random.RandomState(0)

    def representative():
        for _ in range(64):
            yield [rng.uniform(0, 1, (1, 32, 32, 1)).astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


if __name__ == "__main__":
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_bytes(convert(build()))
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
