/* Integer arithmetic shared by the forward kernels (tt_fwd_*.c): gemmlowp's fixed-point
 * primitives exactly as TFLM's reference kernels use them (double rounding). Everything is
 * int32/int64; int64 products compile to SMULL on the Cortex-M7, not to a library call. */
#ifndef TT_FWD_INTERNAL_H
#define TT_FWD_INTERNAL_H

#include <stdint.h>

#include "tt_kernels.h"

#define TT_FWD_MAX_RANK 6

/* Cortex-M DSP versions (SMLAD, SXTB16, ...: tt_fwd_dsp.h) replace the portable inner loops of
 * the convolution, depthwise and fully connected kernels when the target has the DSP
 * extension (ARMv7E-M and later: Cortex-M4, M7, M33, ...), chosen at compile time; the
 * portable C99 is what every other target (Cortex-M0+, M3, x86) compiles. Both give the same
 * bits. -DTT_PORTABLE forces the portable code on a DSP target, for every kernel that has a
 * DSP version (the build flag TFLITE_TRAIN_KERNELS=portable of tflite_train.inc and
 * CMakeLists.txt sets it; the tests compare the two builds on the Cortex-M7). */
#define TT_FWD_DSP TT_KERNELS_DSP

/* SaturatingRoundingDoublingHighMul: a * b / 2^31 rounded half away from zero; the one
 * overflowing case (INT32_MIN^2) saturates. gemmlowp writes it as
 * (ab + (ab >= 0 ? 2^30 : 1 - 2^30)) / 2^31 with C's truncating division; floor((ab + 2^30)
 * / 2^31) is the same integer for every ab (write ab = q 2^31 + r, 0 <= r < 2^31: both are
 * q + (r >= 2^30)), and is one multiply-accumulate and a shift (SMLAL on the Cortex-M7), as
 * in CMSIS-NN. Right shifts of negative values are arithmetic, as TFLM assumes too. */
static inline int32_t tt_fwd_high_mul(int32_t a, int32_t b) {
  if (a == b && a == INT32_MIN) return INT32_MAX;
  return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 30)) >> 31);
}

/* RoundingDivideByPOT: x / 2^exponent rounded half away from zero, 0 <= exponent <= 31. */
static inline int32_t tt_fwd_divide_pot(int32_t x, int32_t exponent) {
  const int32_t mask = (int32_t)((1u << exponent) - 1u);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0);
  return (x >> exponent) + (remainder > threshold);
}

/* MultiplyByQuantizedMultiplier (double rounding). The left shift wraps like TFLM's
 * `x * (1 << left_shift)` does in practice; done unsigned to stay defined C. */
static inline int32_t tt_fwd_mbqm(int32_t x, int32_t multiplier, int32_t shift) {
  const int32_t left = shift > 0 ? shift : 0;
  const int32_t right = shift > 0 ? 0 : -shift;
  return tt_fwd_divide_pot(tt_fwd_high_mul((int32_t)((uint32_t)x << left), multiplier), right);
}

static inline int32_t tt_fwd_clamp(int32_t v, int32_t lo, int32_t hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

/* acc -> int8 of an output channel: requantize, add the zero point, fused activation. */
static inline int8_t tt_fwd_requantize(int32_t acc, int32_t multiplier, int32_t shift,
                                       int32_t output_offset, int32_t act_min,
                                       int32_t act_max) {
  return (int8_t)tt_fwd_clamp(tt_fwd_mbqm(acc, multiplier, shift) + output_offset, act_min,
                              act_max);
}

/* The range of filter taps [*lo, *hi) whose input coordinate origin + tap * dilation lies
 * in [0, size): TFLM's is_point_inside_image test, done once per row/column. */
static inline void tt_fwd_tap_range(int32_t origin, int32_t dilation, int32_t taps,
                                    int32_t size, int32_t *lo, int32_t *hi) {
  int32_t a = origin >= 0 ? 0 : (-origin + dilation - 1) / dilation;
  int32_t b = size - origin <= 0 ? 0 : (size - origin + dilation - 1) / dilation;
  if (b > taps) b = taps;
  if (a > b) a = b;
  *lo = a;
  *hi = b;
}

/* Runs the statements after kw (the body, commas allowed) for every output position
 * (b, oy, ox) of a windowed operator (convolution, depthwise, pooling) over input `in` and
 * output `out`, with the window's origin (iy0, ix0) and its in-image taps
 * [ky0, ky1) x [kx0, kx1) of a kh x kw kernel. */
#define TT_FWD_FOR_EACH_WINDOW(in, out, stride_h, stride_w, pad_top, pad_left, dilation_h,  \
                               dilation_w, kh, kw, ...)                                   \
  for (int32_t b = 0; b < (out)->n; ++b)                                                  \
    for (int32_t oy = 0; oy < (out)->h; ++oy) {                                           \
      const int32_t iy0 = oy * (stride_h) - (pad_top);                                    \
      int32_t ky0, ky1;                                                                   \
      tt_fwd_tap_range(iy0, (dilation_h), (kh), (in)->h, &ky0, &ky1);                     \
      for (int32_t ox = 0; ox < (out)->w; ++ox) {                                         \
        const int32_t ix0 = ox * (stride_w) - (pad_left);                                 \
        int32_t kx0, kx1;                                                                 \
        tt_fwd_tap_range(ix0, (dilation_w), (kw), (in)->w, &kx0, &kx1);                   \
        __VA_ARGS__                                                                       \
      }                                                                                   \
    }

/* Whether n runs of len filter bytes, step apart from f, are all zero: a grown kernel's
 * trailing taps (the importer's 4x4/2 and 8x8/2 kernels, a zero last row and column), which
 * the DSP build leaves out (tt_fwd_conv.c's stems, tt_fwd_depthwise.c's dw_trim). Stops at
 * the first nonzero byte: a kernel that is not grown pays a few reads. */
static inline int tt_fwd_zero_runs(const int8_t *f, int32_t n, int32_t step, int32_t len) {
  for (int32_t t = 0; t < n; ++t, f += step)
    for (int32_t j = 0; j < len; ++j)
      if (f[j]) return 0;
  return 1;
}

#endif /* TT_FWD_INTERNAL_H */
