"""Float32 sums in the C kernels' orders (micro_kernels/include/tt_kernels.h), shared by the
numpy TT_* gradient kernels so that they give the C kernels' bits.

numpy's float32 element-wise +, * and / round exactly as C's float arithmetic built with
-ffp-contract=off does (IEEE-754, no fused multiply-add); its reductions (sum, dot,
tensordot, einsum) add in orders of their own (pairwise, blocked, BLAS). So every sum here is
vectorised across the elements it produces and runs over the summation index in the
documented order, in a Python loop. A term the C kernel skips (a masked dy element, a tap
outside the image) is added here as +0.0 or -0.0, which leaves the accumulator's bits
unchanged: it starts at +0.0 and a sum of two numbers is -0.0 only when both are, so it
never holds -0.0 (for finite values).
"""
from __future__ import annotations

import numpy as np

F32 = np.float32
BIAS_GRAD_BLOCK = 16          # TT_BIAS_GRAD_BLOCK


def transposed(dx_shape, kernel, stride, dilation, pads, out_hw, add_tap,
               dtype=F32) -> np.ndarray:
    """dx [N, H, W, C] of a transposed window op (input gradients, pooling gradients).
    `add_tap(view, i, j)` adds, in place and in order, tap (i, j)'s terms to `view`: the
    [N, OH, OW, C] strided view of the dx positions that tap reads (padding included, cut
    off at the end). Each dx element sums over the dy positions whose tap reads it in dy's
    row-major order: that is the taps in descending order, one term (or one run) each.
    (The int8 gradients' exact integer sums use dtype float64: exact below 2^53.)"""
    n, h, w, c = dx_shape
    (kh, kw), (sh, sw), (dh, dw), (ph, pw), (oh, ow) = kernel, stride, dilation, pads, out_hw
    hp = max((oh - 1) * sh + (kh - 1) * dh + 1, ph + h)
    wp = max((ow - 1) * sw + (kw - 1) * dw + 1, pw + w)
    grid = np.zeros((n, hp, wp, c), dtype)
    for i in reversed(range(kh)):
        for j in reversed(range(kw)):
            add_tap(grid[:, i * dh:i * dh + (oh - 1) * sh + 1:sh,
                         j * dw:j * dw + (ow - 1) * sw + 1:sw, :], i, j)
    return np.ascontiguousarray(grid[:, ph:ph + h, pw:pw + w, :])


def row_sums(terms, ow: int) -> np.ndarray:
    """The weight gradients' order: `terms(ox)` is [rows, ...] (one row per (b, oy)); each
    row's partial sums over ox ascending, then the partials are summed over the rows in
    order."""
    partial = None
    for ox in range(ow):
        t = terms(ox)
        if partial is None:
            partial = np.zeros(t.shape, F32)
        partial += t
    return in_order(partial)


def in_order(terms: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    """terms [T, ...] added one at a time, t = 0 first, to an accumulator holding `start`
    (its current value) or +0.0. (A loop of vector additions: np.add.accumulate adds in the
    same order but is many times slower.)"""
    total = np.zeros(terms.shape[1:], F32) if start is None else np.array(start, F32)
    for t in terms:
        total += t
    return total


def blocked(values: np.ndarray, block: int = BIAS_GRAD_BLOCK) -> np.ndarray:
    """values [P, C] summed as tt_bias_grad_f32 does: partials over blocks of `block`
    consecutive positions, then the partials in block order."""
    p, c = values.shape
    blocks = -(-p // block)
    padded = np.zeros((blocks * block, c), F32)
    padded[:p] = values
    partial = in_order(np.moveaxis(padded.reshape(blocks, block, c), 1, 0))
    return in_order(partial)
