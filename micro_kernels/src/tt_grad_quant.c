/* Int8 gradients: the quantization rule (include/tt_kernels.h) and the int16 multipliers
 * that fold per-channel weight scales into the layers' integer input gradients. */
#include "tt_common.h"

void tt_rounder_begin(tt_rounder *q, uint32_t amax, float unit, const tt_update_state *state,
                      float *scale) {
  q->stochastic = state != 0;
  q->rng = state != 0 ? state->rng : 0u;
  q->exact = amax <= 127u;
  q->r = 0;
  q->shift = 0;
  if (q->exact) {
    *scale = unit;
    return;
  }
  int32_t bits = 0;
  while (bits < 32 && (amax >> bits) != 0u) ++bits;
  q->shift = bits + 23;
  /* 127 * 2^shift < 2^62; the quotient lies in [127 * 2^23, 127 * 2^24] */
  q->r = (int32_t)(((uint64_t)127u << q->shift) / amax);
  *scale = (unit * (float)amax) / 127.0f;
}

void tt_quantize_grad_s8(const int32_t *acc, int32_t n, float unit, tt_update_state *rounding,
                         int8_t *q, float *scale) {
  uint32_t amax = 0;
  for (int32_t i = 0; i < n; ++i) {
    const uint32_t m = tt_magnitude(acc[i]);
    if (m > amax) amax = m;
  }
  tt_rounder r;
  tt_rounder_begin(&r, amax, unit, rounding, scale);
  for (int32_t i = 0; i < n; ++i) q[i] = tt_round_grad(&r, acc[i]);
  tt_rounder_end(&r, rounding);
}

int32_t tt_grad_shift(int32_t terms) {
  if (terms < 1) return -1;
  /* terms * 127 * 128 * 2^k < 2^31, as 64-bit integers */
  for (int32_t k = TT_GRAD_MAX_SHIFT; k >= 0; --k)
    if ((int64_t)terms * (127 * 128) << k < ((int64_t)1 << 31)) return k;
  return -1;
}

int16_t tt_grad_multiplier_s16(float scale, float scale_max, int32_t shift) {
  if (!(scale_max > 0.0f) || !(scale > 0.0f)) return 0;
  if (scale >= scale_max) return (int16_t)(1 << shift);     /* the ratio's bound, 1 */
  /* float32, in this order: the ratio (<= 1), times 2^shift (exact), plus one half; the
   * conversion truncates, a floor for the positive value */
  const float v = (scale / scale_max) * (float)(1 << shift) + 0.5f;
  return (int16_t)(int32_t)v;
}

float tt_grad_unit(float scale_max, int32_t shift) {
  return scale_max * (1.0f / (float)(1 << shift));
}
