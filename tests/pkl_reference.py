"""An independent numpy rendering of the tiny-training reference arithmetic (their PyTorch
simulation, algorithm/quantize/quantized_ops_diff.py), written from the .pkl's own fields:
float32 effective scales, round half to even, symmetric (k-1)//2 zero padding after the
zero point is subtracted, residual adds in real values. Used to check the importer."""
import numpy as np


def conv(cfg: dict, x: np.ndarray) -> np.ndarray:
    """x: int8 NHWC. Returns int8 NHWC."""
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
    out = out.astype(np.float32) + np.asarray(p["bias"]).astype(np.float32)
    eff = (np.float64(p["x_scale"]) * np.asarray(p["w_scales"], np.float64)
           / np.float64(p["y_scale"])).astype(np.float32)
    out = np.round(out * eff) + float(p["y_zero"])
    return np.clip(out, -128, 127).astype(np.int8)


def add(res: dict, x1: np.ndarray, z1, s1, x2: np.ndarray) -> np.ndarray:
    """The residual: x1 is the block input (res x_scale/x_zero), x2 the pointwise2 output."""
    p = res["params"]
    a = (x1.astype(np.float32) - np.float32(p["x_zero"])) * np.float32(p["x_scale"])
    b = (x2.astype(np.float32) - np.float32(z1)) * np.float32(s1)
    out = np.round((a + b) / np.float32(p["y_scale"])) + np.float32(p["y_zero"])
    return np.clip(out, -128, 127).astype(np.int8)


def avgpool(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x.astype(np.float32).mean(axis=(1, 2), keepdims=True)),
                   -128, 127).astype(np.int8)
