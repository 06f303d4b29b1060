/* Pooling gradients (orders in include/tt_kernels.h): the dy positions are walked in
 * row-major order and each one adds to the in-image taps of its window, whose range is
 * computed once per position. */
#include <string.h>

#include "tt_common.h"

void tt_average_pool_grad_f32(const float *dy, int32_t n, int32_t oh, int32_t ow, int32_t c,
                              int32_t fh, int32_t fw, const tt_window *win, int32_t h,
                              int32_t wd, float *dx) {
  const tt_window v = *win;
  memset(dx, 0, sizeof(float) * (size_t)n * (size_t)h * (size_t)wd * (size_t)c);
  for (int32_t b = 0; b < n; ++b)
    for (int32_t oy = 0; oy < oh; ++oy) {
      int32_t ky0, ky1;
      tt_tap_range(oy, v.stride_h, 1, v.pad_top, h, fh, &ky0, &ky1);
      for (int32_t ox = 0; ox < ow; ++ox) {
        int32_t kx0, kx1;
        tt_tap_range(ox, v.stride_w, 1, v.pad_left, wd, fw, &kx0, &kx1);
        const float count = (float)((ky1 - ky0) * (kx1 - kx0));   /* TFLM's divisor */
        const float *g = dy + ((b * oh + oy) * ow + ox) * c;
        for (int32_t ch = 0; ch < c; ++ch) {
          const float share = g[ch] / count;
          for (int32_t ky = ky0; ky < ky1; ++ky) {
            float *d = dx + ((b * h + oy * v.stride_h + ky - v.pad_top) * wd +
                             ox * v.stride_w - v.pad_left) * c + ch;
            for (int32_t kx = kx0; kx < kx1; ++kx) d[kx * c] += share;
          }
        }
      }
    }
}

void tt_max_pool_grad_f32(const float *dy, const int8_t *saved, int32_t n, int32_t oh,
                          int32_t ow, int32_t c, int32_t fh, int32_t fw, const tt_window *win,
                          int32_t h, int32_t wd, float *dx) {
  const tt_window v = *win;
  memset(dx, 0, sizeof(float) * (size_t)n * (size_t)h * (size_t)wd * (size_t)c);
  for (int32_t b = 0; b < n; ++b)
    for (int32_t oy = 0; oy < oh; ++oy) {
      int32_t ky0, ky1;
      tt_tap_range(oy, v.stride_h, 1, v.pad_top, h, fh, &ky0, &ky1);
      for (int32_t ox = 0; ox < ow; ++ox) {
        int32_t kx0, kx1;
        tt_tap_range(ox, v.stride_w, 1, v.pad_left, wd, fw, &kx0, &kx1);
        if (ky0 == ky1 || kx0 == kx1) continue;          /* no in-image tap */
        const float *g = dy + ((b * oh + oy) * ow + ox) * c;
        for (int32_t ch = 0; ch < c; ++ch) {
          int32_t best = -1, best_v = -1000;
          for (int32_t ky = ky0; ky < ky1; ++ky) {
            const int32_t row = (b * h + oy * v.stride_h + ky - v.pad_top) * wd;
            for (int32_t kx = kx0; kx < kx1; ++kx) {
              const int32_t i = (row + ox * v.stride_w + kx - v.pad_left) * c + ch;
              if (saved[i] > best_v) {
                best_v = saved[i];
                best = i;
              }
            }
          }
          dx[best] += g[ch];
        }
      }
    }
}
