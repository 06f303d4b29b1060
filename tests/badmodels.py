"""Models that tflite-train must refuse, built with TensorFlow's converter."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def float_model() -> bytes:
    """A plain float32 model (no quantization at all)."""
    import tensorflow as tf
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([tf.keras.Input((8,)), tf.keras.layers.Dense(4, "relu"),
                                 tf.keras.layers.Dense(2)])
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def control_flow_model() -> bytes:
    """A model with a WHILE loop: its body and condition are extra subgraphs."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32)])
    def f(x):
        i = tf.constant(0)
        _, y = tf.while_loop(lambda i, y: i < 3, lambda i, y: (i + 1, y * 2.0 + 1.0), (i, x))
        return y

    conv = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
    return conv.convert()
