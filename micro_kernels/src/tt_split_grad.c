/* Input gradients through split filters (include/tt_split_grad.h). The loops are those of
 * tt_conv2d_input_grad_f32 and tt_fully_connected_input_grad_f32 in tt_kernels.c, with
 * each weight read from the part that holds its input channel: the same terms, summed in
 * the same order, give the same bits. */
#include "tt_split_grad.h"

static float mask_bit(const uint8_t *mask, int32_t i) {
  return mask ? (float)((mask[i >> 3] >> (i & 7)) & 1) : 1.0f;
}

/* The output position whose window tap `k` reads input position `i` along one axis, or -1. */
static int32_t out_of_tap(int32_t i, int32_t k, int32_t pad, int32_t dilation, int32_t stride,
                          int32_t out) {
  const int32_t t = i + pad - k * dilation;
  if (t < 0 || t % stride) return -1;
  return t / stride < out ? t / stride : -1;
}

/* w[row, c] of a filter whose rows hold k channels in w_lo and ci - k in w_hi. */
static int8_t split_weight(const int8_t *w_lo, int32_t k, const int8_t *w_hi, int32_t ci,
                           int32_t row, int32_t c) {
  return c < k ? w_lo[row * k + c] : w_hi[row * (ci - k) + (c - k)];
}

void tt_conv2d_input_grad_split_f32(const float *dy, const uint8_t *mask, int32_t n,
                                    int32_t oh, int32_t ow, int32_t co, const int8_t *w_lo,
                                    int32_t k, const int8_t *w_hi, const float *w_scales,
                                    int32_t kh, int32_t kw, const tt_window *win, int32_t h,
                                    int32_t wd, int32_t ci, float *dx) {
  for (int32_t b = 0; b < n; ++b)
    for (int32_t iy = 0; iy < h; ++iy)
      for (int32_t ix = 0; ix < wd; ++ix)
        for (int32_t c = 0; c < ci; ++c) {
          double acc = 0.0;
          for (int32_t ky = 0; ky < kh; ++ky) {
            const int32_t oy = out_of_tap(iy, ky, win->pad_top, win->dilation_h,
                                          win->stride_h, oh);
            if (oy < 0) continue;
            for (int32_t kx = 0; kx < kw; ++kx) {
              const int32_t ox = out_of_tap(ix, kx, win->pad_left, win->dilation_w,
                                            win->stride_w, ow);
              if (ox < 0) continue;
              const int32_t base = ((b * oh + oy) * ow + ox) * co;
              for (int32_t o = 0; o < co; ++o) {
                const double g = (double)(dy[base + o] * mask_bit(mask, base + o));
                const double wr =
                    (double)split_weight(w_lo, k, w_hi, ci, (o * kh + ky) * kw + kx, c) *
                    (double)w_scales[o];
                acc += g * wr;
              }
            }
          }
          dx[((b * h + iy) * wd + ix) * ci + c] = (float)acc;
        }
}

void tt_fully_connected_input_grad_split_f32(const float *dy, const uint8_t *mask,
                                             int32_t batches, int32_t units,
                                             const int8_t *w_lo, int32_t k,
                                             const int8_t *w_hi, const float *w_scales,
                                             int32_t depth, float *dx) {
  for (int32_t b = 0; b < batches; ++b)
    for (int32_t d = 0; d < depth; ++d) {
      double acc = 0.0;
      for (int32_t u = 0; u < units; ++u) {
        const int32_t i = b * units + u;
        acc += (double)(dy[i] * mask_bit(mask, i)) *
               (double)split_weight(w_lo, k, w_hi, depth, u, d) * (double)w_scales[u];
      }
      dx[b * depth + d] = (float)acc;
    }
}
