/* Input gradients through split filters (include/tt_split_grad.h): the sums of
 * tt_conv2d_input_grad_f32 and tt_fully_connected_input_grad_f32 (tt_input_grad.c), in the
 * orders tt_kernels.h documents, with each weight read from the part that holds its input
 * channel: the same terms in the same order give the same bits. */
#include <string.h>

#include "tt_common.h"
#include "tt_split_grad.h"

/* d[c] += (g[o] * s[o]) * (float)wt[o * w_stride + c] for o ascending (masked terms
 * skipped), every c < channels: one dy position's terms for one part of the filter. Four
 * accumulators at a time so that each g[o] * s[o] is formed once per four channels. */
static void add_part(float *d, int32_t channels, const float *g, const uint8_t *mask,
                     int32_t at, int32_t co, const float *s, const int8_t *wt,
                     int32_t w_stride) {
  int32_t c = 0;
  for (; c + 4 <= channels; c += 4) {
    float a0 = d[c], a1 = d[c + 1], a2 = d[c + 2], a3 = d[c + 3];
    const int8_t *wp = wt + c;
    for (int32_t o = 0; o < co; ++o, wp += w_stride) {
      if (!tt_live(mask, at + o)) continue;
      const float gs = g[o] * s[o];
      a0 += gs * (float)wp[0];
      a1 += gs * (float)wp[1];
      a2 += gs * (float)wp[2];
      a3 += gs * (float)wp[3];
    }
    d[c] = a0;
    d[c + 1] = a1;
    d[c + 2] = a2;
    d[c + 3] = a3;
  }
  for (; c < channels; ++c) {
    float a = d[c];
    const int8_t *wp = wt + c;
    for (int32_t o = 0; o < co; ++o, wp += w_stride)
      if (tt_live(mask, at + o)) a += (g[o] * s[o]) * (float)wp[0];
    d[c] = a;
  }
}

void tt_conv2d_input_grad_split_f32(const float *dy, const uint8_t *mask, int32_t n,
                                    int32_t oh, int32_t ow, int32_t co, const int8_t *w_lo,
                                    int32_t k, const int8_t *w_hi, const float *w_scales,
                                    int32_t kh, int32_t kw, const tt_window *win, int32_t h,
                                    int32_t wd, int32_t ci, float *dx) {
  const tt_window v = *win;
  const int32_t rest = ci - k;
  memset(dx, 0, sizeof(float) * (size_t)n * (size_t)h * (size_t)wd * (size_t)ci);
  for (int32_t b = 0; b < n; ++b)
    for (int32_t oy = 0; oy < oh; ++oy) {
      int32_t ky0, ky1;
      tt_tap_range(oy, v.stride_h, v.dilation_h, v.pad_top, h, kh, &ky0, &ky1);
      for (int32_t ox = 0; ox < ow; ++ox) {
        int32_t kx0, kx1;
        tt_tap_range(ox, v.stride_w, v.dilation_w, v.pad_left, wd, kw, &kx0, &kx1);
        const int32_t at = ((b * oh + oy) * ow + ox) * co;
        for (int32_t ky = ky0; ky < ky1; ++ky) {
          const int32_t iy = oy * v.stride_h + ky * v.dilation_h - v.pad_top;
          for (int32_t kx = kx0; kx < kx1; ++kx) {
            const int32_t ix = ox * v.stride_w + kx * v.dilation_w - v.pad_left;
            float *d = dx + ((b * h + iy) * wd + ix) * ci;
            const int32_t tap = ky * kw + kx;
            add_part(d, k, dy + at, mask, at, co, w_scales, w_lo + tap * k, kh * kw * k);
            if (rest > 0)
              add_part(d + k, rest, dy + at, mask, at, co, w_scales, w_hi + tap * rest,
                       kh * kw * rest);
          }
        }
      }
    }
}

void tt_fully_connected_input_grad_split_f32(const float *dy, const uint8_t *mask,
                                             int32_t batches, int32_t units,
                                             const int8_t *w_lo, int32_t k,
                                             const int8_t *w_hi, const float *w_scales,
                                             int32_t depth, float *dx) {
  memset(dx, 0, sizeof(float) * (size_t)batches * (size_t)depth);
  for (int32_t b = 0; b < batches; ++b) {
    add_part(dx + b * depth, k, dy + b * units, mask, b * units, units, w_scales, w_lo, k);
    if (depth > k)
      add_part(dx + b * depth + k, depth - k, dy + b * units, mask, b * units, units, w_scales,
               w_hi, depth - k);
  }
}
