"""Sliding windows shared by convolutions and pooling: TFLM's padding rule and a
zero-copy im2col view."""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..limits import work_limit

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


def check_window(graph, index: int, op, in_shape, kernel_hw, out_shape, dilated: bool) -> None:
    """A conv/pool op's window options (strides, dilations >= 1, a known padding) and its
    output size, as TFLM computes it; its padded input within the host's work limit."""
    from . import require
    o = op.options
    names = ["stride_h", "stride_w"] + (["dilation_h_factor", "dilation_w_factor"]
                                        if dilated else [])
    for name in names:
        v = o.get(name)
        require(isinstance(v, (int, np.integer)) and 1 <= v < 1 << 31, index, op,
                f"{name} {v} must be a positive int32")
    require(o.get("padding") in (SAME, VALID), index, op, f"padding {o.get('padding')} is "
                                                          "neither SAME nor VALID")
    require(all(1 <= k < 1 << 31 for k in kernel_hw), index, op,
            f"window {list(kernel_hw)} must be at least 1x1")
    out = expected_out(op, in_shape, kernel_hw)
    require(min(out) >= 1 and out == tuple(out_shape[1:3]), index, op,
            f"output {list(out_shape)} does not match the padding/stride rule "
            f"({out[0]}x{out[1]})")
    (kh, kw), (sh, sw), (dh, dw), (ph, pw), (oh, ow) = geometry(op, in_shape, kernel_hw,
                                                                 out_shape)
    padded = [max((oh - 1) * sh + (kh - 1) * dh + 1, ph + in_shape[1]),
              max((ow - 1) * sw + (kw - 1) * dw + 1, pw + in_shape[2])]
    work_limit(index, op.kind, in_shape[0] * padded[0] * padded[1] * in_shape[3],
               "padded input")
