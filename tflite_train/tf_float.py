"""The dequantized float model in TensorFlow: every forward op of the IR on real values.

Two users: the tests, which check each backward rule against TensorFlow's GradientTape, and
the fp32 baselines, which fine-tune the same trainable set in float. TensorFlow is a dev
dependency only, so it is imported lazily here and nowhere else in the package.
"""
from __future__ import annotations

import numpy as np

from .ir import Graph, Operator
from .ops import pad as pad_op
from .ops import real_weights
from .ops.mean import axes as mean_axes
from .ops.pool import kernel as pool_kernel
from .ops.shape import perm as transpose_perm
from .ops.window import geometry


def _tf():
    import os
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    return tf


def dequantize(t, value: np.ndarray, axis: int | None = None) -> np.ndarray:
    """Real values of a tensor's content (float32)."""
    if t.quant is None:
        return np.asarray(value, np.float32)
    if t.quant.per_channel:
        ax = t.quant.axis if axis is None else axis
        value = np.asarray(value)
        if ax >= value.ndim:        # e.g. a bias vector that kept its filter's axis
            ax = value.ndim - 1
        return real_weights(value, t.quant, ax).astype(np.float32)
    return (t.quant.s * (np.asarray(value, np.float64) - t.quant.zp)).astype(np.float32)


def _fused(tf, op: Operator, z, enabled: bool = True):
    act = int(op.options.get("fused_activation_function", 0) or 0) if enabled else 0
    if act == 1:
        return tf.nn.relu(z)
    if act == 3:
        return tf.nn.relu6(z)
    if act == 2:
        return tf.clip_by_value(z, -1.0, 1.0)
    return z


def _explicit_pad(tf, graph: Graph, op: Operator, x, kernel_hw):
    xt, yt = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    kernel, stride, dilation, pads, out = geometry(op, xt.shape, kernel_hw, yt.shape)
    paddings = [[0, 0], [0, 0], [0, 0], [0, 0]]
    for i in range(2):
        need = (out[i] - 1) * stride[i] + (kernel[i] - 1) * dilation[i] + 1
        paddings[1 + i] = [pads[i], max(0, need - xt.shape[1 + i] - pads[i])]
    return tf.pad(x, paddings), stride, dilation


def _dilated(tf, w, dilation):
    """A [kh, kw, ci, co] filter with dilation - 1 zero taps between its taps: the dilated
    convolution as a plain one. TF's Eigen CPU kernels compute no gradient of a dilated
    CONV_2D ("Current CPU implementations do not yet support dilation rates larger than
    1"; only its oneDNN build, on some CPUs, does), and the zero taps add nothing."""
    dh, dw = dilation
    if (dh, dw) == (1, 1):
        return w
    kh, kw, ci, co = w.shape
    w = tf.reshape(w, [kh, 1, kw, 1, ci, co])
    w = tf.pad(w, [[0, 0], [0, dh - 1], [0, 0], [0, dw - 1], [0, 0], [0, 0]])
    w = tf.reshape(w, [kh * dh, kw * dw, ci, co])
    return w[:(kh - 1) * dh + 1, :(kw - 1) * dw + 1]


def apply(graph: Graph, op: Operator, args: list, activation: bool = True):
    """The op on real-valued TF tensors. `args[i]` is the real value of input i (weights
    already dequantized); returns the real output (before the fused activation if
    `activation` is False)."""
    tf = _tf()

    def fused(z):
        return _fused(tf, op, z, activation)
    kind = op.kind
    y_shape = graph.tensors[op.outputs[0]].shape
    if kind == "CONV_2D":
        x, w = args[0], args[1]
        xp, stride, dilation = _explicit_pad(tf, graph, op, x, graph.tensors[op.inputs[1]].shape[1:3])
        z = tf.nn.conv2d(xp, _dilated(tf, tf.transpose(w, [1, 2, 3, 0]), dilation),
                         strides=[1, *stride, 1], padding="VALID")
        if len(args) > 2 and args[2] is not None:
            z = z + args[2]
        return fused(z)
    if kind == "DEPTHWISE_CONV_2D":
        x, w = args[0], args[1]
        wt = graph.tensors[op.inputs[1]]
        c = graph.tensors[op.inputs[0]].shape[3]
        xp, stride, dilation = _explicit_pad(tf, graph, op, x, wt.shape[1:3])
        filt = tf.reshape(w, [wt.shape[1], wt.shape[2], c, wt.shape[3] // c])
        if dilation != (1, 1):
            z = tf.nn.depthwise_conv2d(xp, filt, strides=[1, 1, 1, 1], padding="VALID",
                                       dilations=list(dilation))
            z = z[:, ::stride[0], ::stride[1], :]
        else:
            z = tf.nn.depthwise_conv2d(xp, filt, strides=[1, *stride, 1], padding="VALID")
        if len(args) > 2 and args[2] is not None:
            z = z + args[2]
        return fused(z)
    if kind == "FULLY_CONNECTED":
        x, w = args[0], args[1]
        z = tf.matmul(tf.reshape(x, [-1, w.shape[1]]), w, transpose_b=True)
        if len(args) > 2 and args[2] is not None:
            z = z + args[2]
        return tf.reshape(fused(z), y_shape)
    if kind == "ADD":
        return fused(args[0] + args[1])
    if kind in ("PAD", "PADV2"):
        return tf.pad(args[0], pad_op.paddings(graph, op).tolist())
    if kind in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        kh, kw = pool_kernel(op)
        padding = "SAME" if int(op.options.get("padding", 0)) == 0 else "VALID"
        strides = [1, int(op.options["stride_h"]), int(op.options["stride_w"]), 1]
        fn = tf.nn.avg_pool2d if kind == "AVERAGE_POOL_2D" else tf.nn.max_pool2d
        return fused(fn(args[0], [1, kh, kw, 1], strides, padding))
    if kind == "MEAN":
        return tf.reshape(tf.reduce_mean(args[0], axis=list(mean_axes(graph, op))), y_shape)
    if kind == "RESHAPE":
        return tf.reshape(args[0], y_shape)
    if kind == "SOFTMAX":
        return tf.nn.softmax(float(op.options.get("beta", 1.0)) * args[0])
    if kind == "TRANSPOSE":
        return tf.transpose(args[0], transpose_perm(graph, op))
    if kind in ("QUANTIZE", "DEQUANTIZE"):
        return tf.identity(args[0])
    raise NotImplementedError(f"no TensorFlow rendering of {kind}")


def activation_vjp(op: Operator, y_real: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """dy through the op's fused activation, by GradientTape at the output value y."""
    tf = _tf()
    y = tf.constant(y_real, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(y)
        out = _fused(tf, op, y)
    g = tape.gradient(out, y, output_gradients=tf.constant(dy.reshape(y.shape), tf.float32))
    return g.numpy()
