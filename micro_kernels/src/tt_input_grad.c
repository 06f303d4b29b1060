/* Activation gradients through the layers (TT_*_INPUT_GRAD), float32: the transposed
 * convolutions and the transposed fully-connected product, in the orders documented in
 * include/tt_kernels.h. */
#include <string.h>

#include "tt_common.h"

/* One dy position's contribution to one dx position: d[c] += (g[o] * s[o]) *
 * (float)wt[o * w_stride + c] for o ascending, every c < ci. Eight channels at a time stay
 * in registers while o runs, so each g[o] * s[o] and each mask test is done once per eight
 * channels. `at` is the mask index of g[0]. */
static void add_position(float *d, int32_t ci, const float *g, const uint8_t *mask, int32_t at,
                         int32_t co, const float *s, const int8_t *wt, int32_t w_stride) {
  int32_t c = 0;
  for (; c + 8 <= ci; c += 8) {
    float a0 = d[c], a1 = d[c + 1], a2 = d[c + 2], a3 = d[c + 3];
    float a4 = d[c + 4], a5 = d[c + 5], a6 = d[c + 6], a7 = d[c + 7];
    const int8_t *wp = wt + c;
    for (int32_t o = 0; o < co; ++o, wp += w_stride) {
      if (!tt_live(mask, at + o)) continue;
      const float gs = g[o] * s[o];
      a0 += gs * (float)wp[0];
      a1 += gs * (float)wp[1];
      a2 += gs * (float)wp[2];
      a3 += gs * (float)wp[3];
      a4 += gs * (float)wp[4];
      a5 += gs * (float)wp[5];
      a6 += gs * (float)wp[6];
      a7 += gs * (float)wp[7];
    }
    d[c] = a0;
    d[c + 1] = a1;
    d[c + 2] = a2;
    d[c + 3] = a3;
    d[c + 4] = a4;
    d[c + 5] = a5;
    d[c + 6] = a6;
    d[c + 7] = a7;
  }
  for (; c < ci; ++c) {
    float a = d[c];
    const int8_t *wp = wt + c;
    for (int32_t o = 0; o < co; ++o, wp += w_stride)
      if (tt_live(mask, at + o)) a += (g[o] * s[o]) * (float)wp[0];
    d[c] = a;
  }
}

/* The dy positions are walked in row-major order and each one adds its taps' terms to the dx
 * positions they read: every dx element then sums in dy's row-major order, and the taps of
 * one position come from a range computed once per position (no per-tap tests). */
void tt_conv2d_input_grad_f32(const float *dy, const uint8_t *mask, int32_t n, int32_t oh,
                              int32_t ow, int32_t co, const int8_t *w, const float *w_scales,
                              int32_t kh, int32_t kw, const tt_window *win, int32_t h,
                              int32_t wd, int32_t ci, float *dx) {
  const tt_window v = *win;
  const int32_t w_stride = kh * kw * ci;     /* w[o, ky, kx, c] to w[o + 1, ky, kx, c] */
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
            add_position(dx + ((b * h + iy) * wd + ix) * ci, ci, dy + at, mask, at, co,
                         w_scales, w + (ky * kw + kx) * ci, w_stride);
          }
        }
      }
    }
}

/* Depth multiplier 1: one dy position's taps, channels [ch0, ch0 + 8). The eight scaled dy
 * values stay in registers for all the window's taps (a masked one is +0.0f: its terms
 * add nothing). */
static void depthwise_position_8(float *dx, const float *g, const uint8_t *mask, int32_t at,
                                 const float *s, const int8_t *w, int32_t c, int32_t ch0,
                                 int32_t ky0, int32_t ky1, int32_t kx0, int32_t kx1,
                                 int32_t kw, int32_t iy0, int32_t ix0, int32_t wd,
                                 const tt_window *v) {
  const float gs0 = tt_live(mask, at + ch0) ? g[ch0] * s[ch0] : 0.0f;
  const float gs1 = tt_live(mask, at + ch0 + 1) ? g[ch0 + 1] * s[ch0 + 1] : 0.0f;
  const float gs2 = tt_live(mask, at + ch0 + 2) ? g[ch0 + 2] * s[ch0 + 2] : 0.0f;
  const float gs3 = tt_live(mask, at + ch0 + 3) ? g[ch0 + 3] * s[ch0 + 3] : 0.0f;
  const float gs4 = tt_live(mask, at + ch0 + 4) ? g[ch0 + 4] * s[ch0 + 4] : 0.0f;
  const float gs5 = tt_live(mask, at + ch0 + 5) ? g[ch0 + 5] * s[ch0 + 5] : 0.0f;
  const float gs6 = tt_live(mask, at + ch0 + 6) ? g[ch0 + 6] * s[ch0 + 6] : 0.0f;
  const float gs7 = tt_live(mask, at + ch0 + 7) ? g[ch0 + 7] * s[ch0 + 7] : 0.0f;
  for (int32_t ky = ky0; ky < ky1; ++ky) {
    const int32_t iy = iy0 + ky * v->dilation_h;
    for (int32_t kx = kx0; kx < kx1; ++kx) {
      float *d = dx + (iy * wd + ix0 + kx * v->dilation_w) * c + ch0;
      const int8_t *wt = w + (ky * kw + kx) * c + ch0;
      d[0] += gs0 * (float)wt[0];
      d[1] += gs1 * (float)wt[1];
      d[2] += gs2 * (float)wt[2];
      d[3] += gs3 * (float)wt[3];
      d[4] += gs4 * (float)wt[4];
      d[5] += gs5 * (float)wt[5];
      d[6] += gs6 * (float)wt[6];
      d[7] += gs7 * (float)wt[7];
    }
  }
}

void tt_depthwise_conv2d_input_grad_f32(const float *dy, const uint8_t *mask, int32_t n,
                                        int32_t oh, int32_t ow, int32_t c, int32_t m,
                                        const int8_t *w, const float *w_scales, int32_t kh,
                                        int32_t kw, const tt_window *win, int32_t h,
                                        int32_t wd, float *dx) {
  const tt_window v = *win;
  const int32_t cm = c * m;
  memset(dx, 0, sizeof(float) * (size_t)n * (size_t)h * (size_t)wd * (size_t)c);
  for (int32_t b = 0; b < n; ++b)
    for (int32_t oy = 0; oy < oh; ++oy) {
      int32_t ky0, ky1;
      tt_tap_range(oy, v.stride_h, v.dilation_h, v.pad_top, h, kh, &ky0, &ky1);
      for (int32_t ox = 0; ox < ow; ++ox) {
        int32_t kx0, kx1;
        tt_tap_range(ox, v.stride_w, v.dilation_w, v.pad_left, wd, kw, &kx0, &kx1);
        const int32_t at = ((b * oh + oy) * ow + ox) * cm;
        const float *g = dy + at;
        /* tap (ky, kx) reads (iy0 + ky * dilation_h, ix0 + kx * dilation_w) of image b */
        const int32_t iy0 = b * h + oy * v.stride_h - v.pad_top;
        const int32_t ix0 = ox * v.stride_w - v.pad_left;
        int32_t ch = 0;
        if (m == 1)
          for (; ch + 8 <= c; ch += 8)
            depthwise_position_8(dx, g, mask, at, w_scales, w, c, ch, ky0, ky1, kx0, kx1, kw,
                                 iy0, ix0, wd, &v);
        for (int32_t ky = ky0; ky < ky1; ++ky)
          for (int32_t kx = kx0; kx < kx1; ++kx) {
            float *d = dx + ((iy0 + ky * v.dilation_h) * wd + ix0 + kx * v.dilation_w) * c;
            const int8_t *wt = w + (ky * kw + kx) * cm;
            for (int32_t chr = ch; chr < c; ++chr) {
              float a = d[chr];
              for (int32_t j = 0, o = chr * m; j < m; ++j, ++o)
                if (tt_live(mask, at + o)) a += (g[o] * w_scales[o]) * (float)wt[o];
              d[chr] = a;
            }
          }
      }
    }
}

void tt_fully_connected_input_grad_f32(const float *dy, const uint8_t *mask, int32_t batches,
                                       int32_t units, const int8_t *w, const float *w_scales,
                                       int32_t depth, float *dx) {
  memset(dx, 0, sizeof(float) * (size_t)batches * (size_t)depth);
  for (int32_t b = 0; b < batches; ++b)
    add_position(dx + b * depth, depth, dy + b * units, mask, b * units, units, w_scales, w,
                 depth);
}
