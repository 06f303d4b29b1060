"""Builds the built-in example model `tflite_train/data/tiny_cnn.tflite`: a small MobileNet-style
int8 CNN for 32x32 grey images, 10 classes (conv, depthwise/pointwise blocks with a residual
add, global mean, dense head), pre-trained for a few seconds on synthetic textures (stripes
at several angles and frequencies) so that its features are alive: the stand-in for "the
model a user already deploys", on which the demo then trains a new head on the device.

    .venv/bin/python examples/make_example_model.py
"""
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tflite_train" / "data" / "tiny_cnn.tflite"


def textures(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n 32x32 images in [0, 1] of 10 texture classes: stripes at 5 angles x 2 periods."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)
    y = rng.integers(0, 10, n)
    x = np.empty((n, 32, 32, 1), np.float32)
    for i, c in enumerate(y):
        angle = np.pi * (c % 5) / 5
        period = 4.0 if c < 5 else 8.0
        u = xx * np.cos(angle) + yy * np.sin(angle) + rng.uniform(0, period)
        img = 0.5 + 0.4 * np.sign(np.sin(2 * np.pi * u / period))
        x[i, :, :, 0] = np.clip(img + rng.normal(0, 0.1, img.shape), 0, 1)
    return x, y


def build() -> tf.keras.Model:
    tf.keras.utils.set_random_seed(7)
    L = tf.keras.layers
    init = "he_normal"
    x = inp = tf.keras.Input((32, 32, 1))
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu6",
                 kernel_initializer=init)(x)
    for filters, stride in ((16, 2), (16, 1), (32, 2)):
        y = L.DepthwiseConv2D(3, strides=stride, padding="same", activation="relu6",
                              depthwise_initializer=init)(x)
        y = L.Conv2D(filters, 1, activation="relu6", kernel_initializer=init)(y)
        x = L.Add()([x, y]) if (stride == 1 and x.shape[-1] == filters) else y
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(10)(x)
    model = tf.keras.Model(inp, L.Softmax()(x))
    xs, ys = textures(4000, seed=1)
    model.compile(tf.keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(xs, ys, epochs=4, batch_size=32, verbose=0)
    xv, yv = textures(500, seed=2)
    print(f"float accuracy on held-out textures: {model.evaluate(xv, yv, verbose=0)[1]:.3f}")
    return model


def convert(model: tf.keras.Model) -> bytes:
    xs, _ = textures(64, seed=3)

    def representative():
        for x in xs:
            yield [x[None]]

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
