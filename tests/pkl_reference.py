"""An independent numpy rendering of the tiny-training reference arithmetic (their PyTorch
simulation, algorithm/quantize/quantized_ops_diff.py), written from the .pkl's own fields:
float32 effective scales, round half to even, symmetric (k-1)//2 zero padding after the
zero point is subtracted, residual adds in real values. Used to check the importer."""
import numpy as np


EPS32 = 2.0 ** -24           # float32's relative rounding error


def conv(cfg: dict, x: np.ndarray) -> np.ndarray:
    """x: int8 NHWC. Returns int8 NHWC."""
    return to_int8(conv_real(cfg, x)[0])


def to_int8(real: np.ndarray) -> np.ndarray:
    """The reference's last step: round half to even, saturate."""
    return np.clip(np.round(real), -128, 127).astype(np.int8)


def conv_real(cfg: dict, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The conv's output before rounding, in output LSBs (zero point added), float32 as the
    reference computes it; and a bound on how far that value can be from the exact
    (acc + bias) * s_x s_w / s_y that TFLite's fixed-point multiplier approximates: one
    float32 rounding of the accumulator (|acc| EPS32), of the biased sum, of the effective
    scale and of the product (each EPS32 relative); TFLite's Q31 multiplier (2^-30
    relative); and TFLite's double rounding (the wheel is built without
    TFLITE_SINGLE_ROUNDING): its first rounding, in SaturatingRoundingDoublingHighMul,
    leaves a multiple of 2^-r output LSBs, r the multiplier's right shift (frexp exponent
    -r), so it may be off by half of that, 2^-(r+1) (nothing without a right shift)."""
    p = cfg["params"]
    w = np.asarray(p["weight"]).astype(np.float64)           # OIHW
    o, i, kh, kw = w.shape
    s = int(cfg.get("stride", 1))
    groups = int(cfg.get("groups", 1))
    ph, pw = (kh - 1) // 2, (kw - 1) // 2
    xs = np.pad(x.astype(np.float64) - float(p["x_zero"]), ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    n, hp, wp, c = xs.shape
    oh, ow = (hp - kh) // s + 1, (wp - kw) // s + 1
    out = np.zeros((n, oh, ow, o))
    for a in range(kh):
        for b in range(kw):
            patch = xs[:, a:a + (oh - 1) * s + 1:s, b:b + (ow - 1) * s + 1:s, :]
            if groups == 1:
                out += patch @ w[:, :, a, b].T
            else:                                              # depthwise
                out += patch * w[:, 0, a, b]
    acc = out
    out = out.astype(np.float32) + np.asarray(p["bias"]).astype(np.float32)
    eff = (np.float64(p["x_scale"]) * np.asarray(p["w_scales"], np.float64)
           / np.float64(p["y_scale"])).astype(np.float32)
    real = out * eff + np.float32(p["y_zero"])
    scaled = np.abs(out.astype(np.float64)) * eff
    right_shift = -np.frexp(np.float64(p["x_scale"]) * np.asarray(p["w_scales"], np.float64)
                            / np.float64(p["y_scale"]))[1]
    double_rounding = np.where(right_shift > 0, 2.0 ** -(right_shift + 1.0), 0.0)
    bound = (np.abs(acc) * eff + 3 * scaled + np.abs(real)) * EPS32 + scaled * 2.0 ** -30 \
        + double_rounding
    return real, bound


def add(res: dict, x1: np.ndarray, z1, s1, x2: np.ndarray) -> np.ndarray:
    """The residual: x1 is the block input (res x_scale/x_zero), x2 the pointwise2 output."""
    return to_int8(add_real(res, x1, z1, s1, x2))


def add_real(res: dict, x1: np.ndarray, z1, s1, x2: np.ndarray) -> np.ndarray:
    p = res["params"]
    a = (x1.astype(np.float32) - np.float32(p["x_zero"])) * np.float32(p["x_scale"])
    b = (x2.astype(np.float32) - np.float32(z1)) * np.float32(s1)
    return (a + b) / np.float32(p["y_scale"]) + np.float32(p["y_zero"])


def avgpool(x: np.ndarray) -> np.ndarray:
    return to_int8(avgpool_real(x))


def avgpool_real(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32).mean(axis=(1, 2), keepdims=True)
