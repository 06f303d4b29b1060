"""The int32 accumulator -> int8 output step shared by CONV_2D, DEPTHWISE_CONV_2D and
FULLY_CONNECTED, with the effective scales computed exactly as TFLM's Prepare does."""
from __future__ import annotations

import numpy as np

from .. import fixedpoint as fp
from ..ir import Tensor
from . import saturate_int8


def conv_multipliers(x: Tensor, w: Tensor, y: Tensor, channels: int):
    """PopulateConvolutionQuantizationParams: double(s_x) * double(s_w[c]) / double(s_y).
    A per-tensor filter scale is broadcast to every output channel."""
    sw = np.broadcast_to(w.quant.scale.astype(np.float64), (channels,))
    real = np.float64(np.float32(x.quant.s)) * sw / np.float64(np.float32(y.quant.s))
    return fp.quantize_multipliers(real)


def require_multipliers(reals, index: int, op, formula: str) -> None:
    """TFLM's requantization (QuantizeMultiplier + MultiplyByQuantizedMultiplier) is defined
    for real multipliers below 2^31: beyond, its left shift exceeds 31 bits (undefined in C,
    and not what numpy's shift does), so such a model has no exact result to match."""
    from . import require
    worst = float(np.max(reals))
    require(worst < 2.0 ** 31, index, op, f"{formula} is {worst:.3g}, 2^31 or more: TFLM "
                                          "cannot requantize it")


def rescale_multiplier(x: Tensor, y: Tensor) -> tuple[int, int]:
    """QuantizeMultiplier(double(s_x) / double(s_y)) of the float32 scales: the int8 -> int8
    QUANTIZE's requantization, and MEAN's before the 1/N is folded in."""
    return fp.quantize_multiplier(float(np.float64(np.float32(x.quant.s))
                                        / np.float64(np.float32(y.quant.s))))


def requantize(acc: np.ndarray, multiplier, shift, y: Tensor, activation: int) -> np.ndarray:
    out = fp.multiply_by_quantized_multiplier(acc, multiplier, shift) + y.quant.zp
    lo, hi = fp.activation_range(activation, y.quant.s, y.quant.zp)
    return saturate_int8(np.clip(out, lo, hi))


def exact_int(acc_f64: np.ndarray) -> np.ndarray:
    """float64 BLAS sums of int8 products are exact integers (|sum| << 2^53): take them back."""
    return np.rint(acc_f64).astype(np.int64)
