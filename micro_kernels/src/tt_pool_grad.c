/* Pooling gradients (orders in include/tt_kernels.h): the dy positions are walked in
 * row-major order and each one adds to the in-image taps of its window, whose range is
 * computed once per position. */
#include <string.h>

#include "tt_common.h"
#include "tt_grad_dsp.h"

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

/* ---- int8 gradients ------------------------------------------------------------------------
 * Each dx element gathers the dy elements of the windows that contain it (tt_tap_run), so
 * that its accumulator is complete at once: the rule's two passes recompute it. */

/* The in-image taps of output position o along one axis: TFLM's divisor factor. */
static int32_t taps_in_image(int32_t o, int32_t stride, int32_t pad, int32_t size,
                             int32_t kernel) {
  int32_t lo, hi;
  tt_tap_range(o, stride, 1, pad, size, kernel, &lo, &hi);
  return hi - lo;
}

/* The divisors of an average pool: per axis the smallest and largest in-image tap count of
 * the windows that have any. */
static void count_range(int32_t out, int32_t stride, int32_t pad, int32_t size, int32_t kernel,
                        int32_t *lo, int32_t *hi) {
  *lo = kernel;
  *hi = 0;
  for (int32_t o = 0; o < out; ++o) {
    const int32_t c = taps_in_image(o, stride, pad, size, kernel);
    if (c > 0 && c < *lo) *lo = c;
    if (c > *hi) *hi = c;
  }
  if (*hi == 0) *lo = 1;                    /* no window reads the image: nothing to share */
}

typedef struct {
  const int8_t *dy;
  const int8_t *saved;          /* max pool: the pool's input; NULL for the average pool */
  int32_t n, oh, ow, c, fh, fw, h, wd;
  tt_window v;
  int32_t cmin, shift;          /* average pool: share multiplier of a count-c window */
  int32_t uniform;
} pool_s8;

/* The average pool's integer share of a dy element of a window with `count` taps:
 * round(2^shift * cmin / count), or 1 when every window has the same count. */
static inline int32_t share_of(const pool_s8 *a, int32_t count) {
  if (a->uniform) return 1;
  return (int32_t)((((int64_t)a->cmin << (a->shift + 1)) + count) / (2 * (int64_t)count));
}

/* Whether input (iy, ix) of channel ch is the first in-image maximum of the window whose
 * in-image taps are [ky0, ky1) x [kx0, kx1) at output (oy, ox). */
static int window_max_is(const pool_s8 *a, int32_t b, int32_t oy, int32_t ox, int32_t ky0,
                         int32_t ky1, int32_t kx0, int32_t kx1, int32_t ch, int32_t iy,
                         int32_t ix) {
  int32_t best_y = -1, best_x = -1, best = -1000;
  for (int32_t ky = ky0; ky < ky1; ++ky) {
    const int32_t y = oy * a->v.stride_h + ky - a->v.pad_top;
    for (int32_t kx = kx0; kx < kx1; ++kx) {
      const int32_t x = ox * a->v.stride_w + kx - a->v.pad_left;
      const int32_t val = a->saved[((b * a->h + y) * a->wd + x) * a->c + ch];
      if (val > best) {
        best = val;
        best_y = y;
        best_x = x;
      }
    }
  }
  return best_y == iy && best_x == ix;
}

/* acc[0 .. nc) of dx[b, iy, ix, c0 .. c0 + nc), nc <= 8: the windows of the tap runs ty, tx
 * (those containing the element), each window's share (average pool) or maximum (max pool)
 * found once per window for the block. */
static void pool_block(const pool_s8 *a, const tt_tap_run *ty, const tt_tap_run *tx, int32_t b,
                       int32_t iy, int32_t ix, int32_t c0, int32_t nc, int32_t *acc) {
  for (int32_t j = 0; j < nc; ++j) acc[j] = 0;
  for (int32_t t = 0; t < ty->n; ++t) {
    const int32_t oy = ty->o0 - t * ty->ostep;
    int32_t ky0, ky1;
    tt_tap_range(oy, a->v.stride_h, 1, a->v.pad_top, a->h, a->fh, &ky0, &ky1);
    for (int32_t u = 0; u < tx->n; ++u) {
      const int32_t ox = tx->o0 - u * tx->ostep;
      int32_t kx0, kx1;
      tt_tap_range(ox, a->v.stride_w, 1, a->v.pad_left, a->wd, a->fw, &kx0, &kx1);
      const int8_t *g = a->dy + ((b * a->oh + oy) * a->ow + ox) * a->c + c0;
      if (a->saved == 0) {
        const int32_t share = share_of(a, (ky1 - ky0) * (kx1 - kx0));
        for (int32_t j = 0; j < nc; ++j) acc[j] += g[j] * share;
      } else {
        for (int32_t j = 0; j < nc; ++j)
          if (g[j] != 0 && window_max_is(a, b, oy, ox, ky0, ky1, kx0, kx1, c0 + j, iy, ix))
            acc[j] += g[j];
      }
    }
  }
}

/* dx in row-major order: each accumulator into the maximum or through the rounder. */
static void pool_walk_s8(const pool_s8 *a, uint32_t *amax, tt_rounder *r, int8_t *dx) {
  tt_tap_run ty, tx;
  tt_tap_steps(a->v.stride_h, 1, &ty);
  tt_tap_steps(a->v.stride_w, 1, &tx);
  uint32_t top = 0;
  int32_t acc[8];
  int8_t *out = dx;
  for (int32_t b = 0; b < a->n; ++b)
    for (int32_t iy = 0; iy < a->h; ++iy) {
      tt_taps_reading(iy, a->v.stride_h, 1, a->v.pad_top, a->fh, a->oh, &ty);
      for (int32_t ix = 0; ix < a->wd; ++ix) {
        tt_taps_reading(ix, a->v.stride_w, 1, a->v.pad_left, a->fw, a->ow, &tx);
        for (int32_t c0 = 0; c0 < a->c; c0 += 8) {
          const int32_t nc = a->c - c0 < 8 ? a->c - c0 : 8;
          pool_block(a, &ty, &tx, b, iy, ix, c0, nc, acc);
          if (r != 0) {
            tt_round_grads(r, acc, nc, out);
            out += nc;
            continue;
          }
          for (int32_t j = 0; j < nc; ++j) {
            const uint32_t m = tt_magnitude(acc[j]);
            if (m > top) top = m;
          }
        }
      }
    }
  if (amax != 0) *amax = top;
}

static void pool_grad_s8(const pool_s8 *a, float unit, int8_t *dx, float *dx_scale,
                         tt_update_state *rounding) {
  uint32_t amax = 0;
  pool_walk_s8(a, &amax, 0, 0);
  tt_rounder r;
  tt_rounder_begin(&r, amax, unit, rounding, dx_scale);
  pool_walk_s8(a, 0, &r, dx);
  tt_rounder_end(&r, rounding);
}

#if TT_GRAD_DSP
/* The gradient of a pool whose one window per image reads every input element (a global
 * average pool): dx element (b, y, x, ch)'s accumulator is dy[b, ch] (share 1), so the rule
 * needs max |dy| and then rounds n * positions rows of dy's c elements in dx's row-major
 * order, as pool_walk_s8 does without its window search (about 84 instructions an element
 * there); exact (A <= 127, every dy but -128): copies. */
static void whole_image_grad_s8(const int8_t *dy, int32_t n, int32_t positions, int32_t c,
                                float unit, int8_t *dx, float *dx_scale,
                                tt_update_state *rounding) {
  uint32_t amax = 0;
  for (int32_t i = 0; i < n * c; ++i)
    if (tt_magnitude(dy[i]) > amax) amax = tt_magnitude(dy[i]);
  tt_rounder r;
  tt_rounder_begin(&r, amax, unit, rounding, dx_scale);
  int32_t acc[8];
  for (int32_t b = 0; b < n; ++b, dy += c)
    for (int32_t p = 0; p < positions; ++p, dx += c) {
      if (r.exact) {
        memcpy(dx, dy, (size_t)c);
        continue;
      }
      for (int32_t c0 = 0; c0 < c; c0 += 8) {
        const int32_t nc = c - c0 < 8 ? c - c0 : 8;
        for (int32_t j = 0; j < nc; ++j) acc[j] = dy[c0 + j];
        tt_round_grads(&r, acc, nc, dx + c0);
      }
    }
  tt_rounder_end(&r, rounding);
}
#endif

/* Windows containing one input element along an axis: at most ceil(kernel / stride). */
static int32_t windows_per_element(int32_t kernel, int32_t stride) {
  return (kernel + stride - 1) / stride;
}

void tt_average_pool_grad_s8(const int8_t *dy, const float *dy_scale, int32_t n, int32_t oh,
                             int32_t ow, int32_t c, int32_t fh, int32_t fw,
                             const tt_window *win, int32_t h, int32_t wd, int8_t *dx,
                             float *dx_scale, tt_update_state *rounding) {
  pool_s8 a = {dy, 0, n, oh, ow, c, fh, fw, h, wd, *win, 1, 0, 1};
  int32_t ylo, yhi, xlo, xhi;
  count_range(oh, win->stride_h, win->pad_top, h, fh, &ylo, &yhi);
  count_range(ow, win->stride_w, win->pad_left, wd, fw, &xlo, &xhi);
  a.cmin = ylo * xlo;
  a.uniform = ylo == yhi && xlo == xhi;
  float unit = *dy_scale / (float)a.cmin;
  if (!a.uniform) {
    /* 127 * (windows per element) * 2^shift < 2^31: shares are at most 2^shift */
    const int64_t windows = (int64_t)windows_per_element(fh, win->stride_h) *
                            windows_per_element(fw, win->stride_w);
    a.shift = 16;
    while (a.shift > 0 && ((int64_t)127 * windows << a.shift) >= ((int64_t)1 << 31)) --a.shift;
    unit = unit * (1.0f / (float)(1 << a.shift));
  }
#if TT_GRAD_DSP
  /* one window per image whose in-image taps are all h x wd inputs (uniform then) */
  if (oh == 1 && ow == 1 && h > 0 && wd > 0 &&
      taps_in_image(0, win->stride_h, win->pad_top, h, fh) == h &&
      taps_in_image(0, win->stride_w, win->pad_left, wd, fw) == wd) {
    whole_image_grad_s8(dy, n, h * wd, c, unit, dx, dx_scale, rounding);
    return;
  }
#endif
  pool_grad_s8(&a, unit, dx, dx_scale, rounding);
}

void tt_max_pool_grad_s8(const int8_t *dy, const float *dy_scale, const int8_t *saved, int32_t n,
                         int32_t oh, int32_t ow, int32_t c, int32_t fh, int32_t fw,
                         const tt_window *win, int32_t h, int32_t wd, int8_t *dx,
                         float *dx_scale, tt_update_state *rounding) {
  const pool_s8 a = {dy, saved, n, oh, ow, c, fh, fw, h, wd, *win, 1, 0, 1};
  pool_grad_s8(&a, *dy_scale, dx, dx_scale, rounding);
}
