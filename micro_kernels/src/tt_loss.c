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
