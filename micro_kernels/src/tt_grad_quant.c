/* Int8 gradients: the quantization rule (include/tt_kernels.h) and the int16 multipliers
 * that fold per-channel weight scales into the layers' integer input gradients. */
#include "tt_common.h"

void tt_rounder_begin(tt_rounder *q, uint32_t amax, float unit, const tt_update_state *state,
                      float *scale) {
  q->stochastic = state != 0;
  q->rng = state != 0 ? state->rng : 0u;
  q->exact = amax <= 127u;
  q->r = 0;
  q->times = 1;
  q->hi_shift = q->noise_shift = 0;
  q->half = 0;
  if (q->exact) {
    *scale = unit;
    return;
  }
  int32_t bits = 0;
  while (bits < 32 && (amax >> bits) != 0u) ++bits;
  const int32_t shift = bits + 23;                      /* 31 to 55 */
  /* 127 * 2^shift < 2^62; the quotient lies in [127 * 2^23, 127 * 2^24] */
  q->r = (int32_t)(((uint64_t)127u << shift) / amax);
  const int32_t wide = shift < 32 ? 32 : shift;         /* shift 31: acc doubled */
  q->times = shift < 32 ? 2 : 1;
  q->hi_shift = wide - 32;
  q->noise_shift = wide - 24;
  q->half = (int64_t)1 << (wide - 1);
  *scale = (unit * (float)amax) / 127.0f;
}

void tt_quantize_grad_s8(const int32_t *acc, int32_t n, float unit, tt_update_state *rounding,
                         int8_t *q, float *scale) {
  const uint32_t amax = tt_largest_magnitude(acc, n, 0u);
  tt_rounder r;
  tt_rounder_begin(&r, amax, unit, rounding, scale);
  tt_round_grads(&r, acc, n, q);
  tt_rounder_end(&r, rounding);
}

void tt_round_grads(tt_rounder *q, const int32_t *acc, int32_t n, int8_t *out) {
  /* the rounder's fields in locals, one loop per case: q[i] stores may alias nothing the
   * compiler can prove, so the fields would be reloaded for every element */
  if (q->exact) {
    for (int32_t i = 0; i < n; ++i) out[i] = (int8_t)acc[i];
    return;
  }
  const int32_t times = q->times, r = q->r, hi_shift = q->hi_shift;
  if (!q->stochastic) {
    if (hi_shift > 0) {
      /* shift > 32, times 1: 2^(shift - 1) is a multiple of 2^32, so
       * (acc r + 2^(shift - 1)) >> shift = ((acc r >> 32) + 2^(hi_shift - 1)) >> hi_shift:
       * a multiply-high and an addition, no 64-bit sum */
      const int32_t up = (int32_t)1 << (hi_shift - 1);
      for (int32_t i = 0; i < n; ++i)
        out[i] = (int8_t)(((int32_t)(((int64_t)acc[i] * r) >> 32) + up) >> hi_shift);
      return;
    }
    const int64_t half = q->half;
    for (int32_t i = 0; i < n; ++i)
      out[i] = (int8_t)((int32_t)(((int64_t)(acc[i] * times) * r + half) >> 32) >> hi_shift);
    return;
  }
  q->rng = times == 1 ? tt_round_stochastic(acc, n, out, q->rng, 1, r, hi_shift, q->noise_shift)
                      : tt_round_stochastic(acc, n, out, q->rng, 2, r, hi_shift,
                                            q->noise_shift);
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
