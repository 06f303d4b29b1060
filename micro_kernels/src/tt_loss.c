/* The softmax cross-entropy loss and the softmax gradient (orders in include/tt_kernels.h). */
#include "tt_common.h"

/* Float32 throughout; exp and log are the libm-free double tt_exp / tt_log rounded to float,
 * so that every target gets the same bits: a few double calls per training step. */
int tt_loss_softmax_ce_s8(const int8_t *logits, int32_t classes, float scale, int32_t zp,
                          int32_t label, float *loss, float *dlogits) {
  if (label >= classes) return TT_ERROR_LABEL;
  float top = 0.0f;
  for (int32_t i = 0; i < classes; ++i) {
    const float v = scale * ((float)logits[i] - (float)zp);
    dlogits[i] = v;
    if (i == 0 || v > top) top = v;
  }
  float total = 0.0f;
  for (int32_t i = 0; i < classes; ++i) {
    dlogits[i] = (float)tt_exp((double)(dlogits[i] - top));
    total += dlogits[i];
  }
  const float shifted_label = scale * ((float)logits[label] - (float)zp) - top;
  *loss = (float)tt_log((double)total) - shifted_label;
  for (int32_t i = 0; i < classes; ++i) dlogits[i] /= total;
  dlogits[label] -= 1.0f;
  return TT_OK;
}

void tt_softmax_grad_f32(const float *dy, const int8_t *saved, float scale, int32_t zp,
                         int32_t rows, int32_t depth, float *dx) {
  for (int32_t r = 0; r < rows; ++r) {
    const float *g = dy + r * depth;
    const int8_t *q = saved + r * depth;
    float dot = 0.0f;
    for (int32_t i = 0; i < depth; ++i) dot += (scale * (float)(q[i] - zp)) * g[i];
    for (int32_t i = 0; i < depth; ++i)
      dx[r * depth + i] = (scale * (float)(q[i] - zp)) * (g[i] - dot);
  }
}

/* ---- int8 gradients ------------------------------------------------------------------------ */

int tt_loss_softmax_ce_s8_s8(const int8_t *logits, int32_t classes, float scale, int32_t zp,
                             int32_t label, float *loss, int8_t *dlogits, float *dlogits_scale,
                             tt_update_state *rounding, float *scratch) {
  /* the float32 gradient, exactly as the float32 loss makes it, then in fixed point:
   * acc_i = (int32)(d_i * 2^30), |d_i| <= 1 (a power-of-two scaling is exact; the conversion
   * truncates toward zero) */
  const int status = tt_loss_softmax_ce_s8(logits, classes, scale, zp, label, loss, scratch);
  if (status != TT_OK) return status;
  const float fixed = 1073741824.0f;
  uint32_t amax = 0;
  for (int32_t i = 0; i < classes; ++i) {
    const uint32_t m = tt_magnitude((int32_t)(scratch[i] * fixed));
    if (m > amax) amax = m;
  }
  tt_rounder r;
  tt_rounder_begin(&r, amax, 1.0f / fixed, rounding, dlogits_scale);
  for (int32_t i = 0; i < classes; ++i)
    dlogits[i] = tt_round_grad(&r, (int32_t)(scratch[i] * fixed));
  tt_rounder_end(&r, rounding);
  return TT_OK;
}

/* The bound of p * t below: |p| <= 255, |t| <= 127 * (256 + 255 * depth). */
static int32_t softmax_shift(int32_t depth) {
  const int64_t bound = (int64_t)255 * 127 * (256 + (int64_t)255 * depth);
  int32_t shift = 0;
  while ((bound >> shift) >= ((int64_t)1 << 31)) ++shift;
  return shift;
}

/* acc_i of one row (the formula at tt_softmax_grad_s8), into the rounder or the maximum. */
static void softmax_row_s8(const int8_t *g, const int8_t *q, int32_t zp, int32_t depth,
                           int32_t shift, uint32_t *amax, tt_rounder *r, int8_t *dx) {
  int32_t dot = 0;
  for (int32_t i = 0; i < depth; ++i) dot += (q[i] - zp) * g[i];
  for (int32_t i = 0; i < depth; ++i) {
    const int64_t p = q[i] - zp;
    const int32_t acc = (int32_t)((p * (256 * (int64_t)g[i] - dot)) >> shift);
    if (r != 0) {
      dx[i] = tt_round_grad(r, acc);
    } else {
      const uint32_t m = tt_magnitude(acc);
      if (m > *amax) *amax = m;
    }
  }
}

void tt_softmax_grad_s8(const int8_t *dy, const float *dy_scale, const int8_t *saved, int32_t zp,
                        int32_t rows, int32_t depth, int8_t *dx, float *dx_scale,
                        tt_update_state *rounding) {
  const int32_t shift = softmax_shift(depth);
  uint32_t amax = 0;
  for (int32_t row = 0; row < rows; ++row)
    softmax_row_s8(dy + row * depth, saved + row * depth, zp, depth, shift, &amax, 0, 0);
  tt_rounder r;
  tt_rounder_begin(&r, amax, (*dy_scale * (1.0f / 65536.0f)) * (float)(1 << shift), rounding,
                   dx_scale);
  for (int32_t row = 0; row < rows; ++row)
    softmax_row_s8(dy + row * depth, saved + row * depth, zp, depth, shift, 0, &r,
                   dx + row * depth);
  tt_rounder_end(&r, rounding);
}
