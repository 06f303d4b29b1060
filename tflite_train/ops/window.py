"""Sliding windows shared by convolutions and pooling: TFLM's padding rule and a
zero-copy im2col view."""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

SAME, VALID = 0, 1


def out_size(padding: int, size: int, kernel: int, stride: int, dilation: int = 1) -> int:
    effective = (kernel - 1) * dilation + 1
    if padding == SAME:
        return (size + stride - 1) // stride
    return (size + stride - effective) // stride


def pad_before(padding: int, size: int, kernel: int, stride: int, dilation: int,
               out: int) -> int:
    """Leading padding as TFLM's ComputePaddingWithOffset: the odd extra pixel goes after."""
    if padding == VALID:
        return 0
    effective = (kernel - 1) * dilation + 1
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2


def windows(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
            dilation: tuple[int, int], pads: tuple[int, int], out: tuple[int, int],
            fill) -> np.ndarray:
    """[N, OH, OW, KH, KW, C] view of NHWC `x` padded with `fill` (the value that adds
    nothing: 0 after zero-point subtraction, or -inf-like for max pooling)."""
    n, h, w, c = x.shape
    (kh, kw), (sh, sw), (dh, dw), (ph, pw), (oh, ow) = kernel, stride, dilation, pads, out
    need_h = (oh - 1) * sh + (kh - 1) * dh + 1
    need_w = (ow - 1) * sw + (kw - 1) * dw + 1
    padded = np.full((n, max(need_h, ph + h), max(need_w, pw + w), c), fill, dtype=x.dtype)
    padded[:, ph:ph + h, pw:pw + w, :] = x
    s = padded.strides
    return as_strided(padded, shape=(n, oh, ow, kh, kw, c),
                      strides=(s[0], s[1] * sh, s[2] * sw, s[1] * dh, s[2] * dw, s[3]),
                      writeable=False)


def geometry(op, in_shape, kernel_hw, out_shape):
    """(kernel, stride, dilation, pads, out) of a conv/pool op on NHWC shapes."""
    o = op.options
    stride = (int(o.get("stride_h", 1)), int(o.get("stride_w", 1)))
    dilation = (int(o.get("dilation_h_factor", 1) or 1), int(o.get("dilation_w_factor", 1) or 1))
    padding = int(o.get("padding", SAME))
    out = (int(out_shape[1]), int(out_shape[2]))
    pads = tuple(pad_before(padding, in_shape[1 + i], kernel_hw[i], stride[i], dilation[i],
                            out[i]) for i in range(2))
    return tuple(kernel_hw), stride, dilation, pads, out


def expected_out(op, in_shape, kernel_hw):
    o = op.options
    stride = (int(o.get("stride_h", 1)), int(o.get("stride_w", 1)))
    dilation = (int(o.get("dilation_h_factor", 1) or 1), int(o.get("dilation_w_factor", 1) or 1))
    padding = int(o.get("padding", SAME))
    return tuple(out_size(padding, in_shape[1 + i], kernel_hw[i], stride[i], dilation[i])
                 for i in range(2))
