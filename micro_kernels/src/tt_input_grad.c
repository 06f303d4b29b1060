/* Activation gradients through the layers (TT_*_INPUT_GRAD), float32: the transposed
 * convolutions and the transposed fully-connected product, in the orders documented in
 * include/tt_kernels.h. */
#include <string.h>

#include "tt_common.h"
#include "tt_depthwise_grad_dsp.h"
#include "tt_grad_dsp.h"
#if TT_GRAD_DSP
#include "tt_dsp_common.h"
#endif
#include "tt_inplace_grad.h"
#include "tt_split_grad.h"

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


/* ---- int8 gradients ------------------------------------------------------------------------
 * The accumulators are exact int32 sums, so any order gives the same integers and both
 * forms below give the same bits. Two passes (no scratch): each dx element gathers its
 * terms (the dy positions whose taps read it), eight channels at a time in registers, so
 * that a block is complete at once; every block is computed twice, once for A and once to
 * round. One pass: the accumulators go to the int32 scratch, then the rule runs over it;
 * a depthwise layer then scatters each dy position into the scratch (as the float32 kernel
 * does into dx), a convolution still gathers (its terms per element are many) and finds A
 * as it goes (the first pass of two that keeps every position). Rounding
 * visits dx in row-major order, the order of the random draws. */

#define TT_IG_BLOCK 8          /* dx channels in registers per gather */

/* One layer's int8 input gradient: the operands and, per call, the tap steps. */
typedef struct {
  const int8_t *dy;
  const uint8_t *mask;
  int32_t n, oh, ow, co;        /* dy [n, oh, ow, co]; co = c * m for depthwise */
  const int8_t *w;
  const int16_t *mult;
  int32_t kh, kw, m;            /* m: depth multiplier (depthwise) */
  tt_window v;
  int32_t h, wd, ci;            /* dx [n, h, wd, ci] */
  tt_tap_run ty, tx;            /* the steps, then one dx position's runs */
  /* a split convolution filter (tt_split_grad.h): w [co, kh, kw, k] holds input channels
   * [0, k), w_hi [co, kh, kw, ci - k] the rest; k == ci and w_hi NULL for a whole one */
  int32_t k;
  const int8_t *w_hi;
  void *stage;                  /* the depthwise DSP version's staging (tt_kernels.h) */
  int32_t stage_bytes;
} layer_s8;

/* One dy position's terms for channels c0 .. c0 + 8 of a convolution: s[j] += the sum over
 * o of h[o] * wt[o * w_stride + j], h[o] = g[o] * mult[o] (0 where masked), o in pairs (an
 * int16 h times a sign-extended int8 w, twice: SMLAD's operation). */
static void conv_terms_8(const int8_t *g, const uint8_t *mask, int32_t at, int32_t co,
                         const int16_t *mult, const int8_t *wt, int32_t w_stride, int32_t *s) {
  int32_t s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3], s4 = s[4], s5 = s[5], s6 = s[6];
  int32_t s7 = s[7];
  int32_t o = 0;
  for (; o + 2 <= co; o += 2, wt += 2 * w_stride) {
    const int32_t h0 = tt_live(mask, at + o) ? (int32_t)g[o] * mult[o] : 0;
    const int32_t h1 = tt_live(mask, at + o + 1) ? (int32_t)g[o + 1] * mult[o + 1] : 0;
    if ((h0 | h1) == 0) continue;
    const int8_t *w0 = wt, *w1 = wt + w_stride;
    s0 += h0 * w0[0] + h1 * w1[0];
    s1 += h0 * w0[1] + h1 * w1[1];
    s2 += h0 * w0[2] + h1 * w1[2];
    s3 += h0 * w0[3] + h1 * w1[3];
    s4 += h0 * w0[4] + h1 * w1[4];
    s5 += h0 * w0[5] + h1 * w1[5];
    s6 += h0 * w0[6] + h1 * w1[6];
    s7 += h0 * w0[7] + h1 * w1[7];
  }
  if (o < co && tt_live(mask, at + o)) {
    const int32_t h0 = (int32_t)g[o] * mult[o];
    s0 += h0 * wt[0];
    s1 += h0 * wt[1];
    s2 += h0 * wt[2];
    s3 += h0 * wt[3];
    s4 += h0 * wt[4];
    s5 += h0 * wt[5];
    s6 += h0 * wt[6];
    s7 += h0 * wt[7];
  }
  s[0] = s0;
  s[1] = s1;
  s[2] = s2;
  s[3] = s3;
  s[4] = s4;
  s[5] = s5;
  s[6] = s6;
  s[7] = s7;
}

/* conv_terms_8 for nc < 8 channels. */
static void conv_terms(const int8_t *g, const uint8_t *mask, int32_t at, int32_t co,
                       const int16_t *mult, const int8_t *wt, int32_t w_stride, int32_t nc,
                       int32_t *s) {
  for (int32_t o = 0; o < co; ++o, wt += w_stride) {
    if (!tt_live(mask, at + o)) continue;
    const int32_t h0 = (int32_t)g[o] * mult[o];
    for (int32_t j = 0; j < nc; ++j) s[j] += h0 * wt[j];
  }
}

/* acc[0 .. nc) = the accumulators of dx[b, iy, ix, c0 .. c0 + nc), nc <= 8; the tap runs
 * of (iy, ix) are in a->ty and a->tx. */
static void conv_block(const layer_s8 *a, int32_t b, int32_t c0, int32_t nc, int32_t *acc) {
  /* channels [c0, c0 + lo) from w, the rest of the block from w_hi (a split filter); the
   * sums are exact integers, so splitting a block changes no bit */
  const int32_t lo = a->k - c0 >= nc ? nc : (a->k > c0 ? a->k - c0 : 0);
  const int32_t rest = a->ci - a->k;
  const int32_t w_stride = a->kh * a->kw * a->k;         /* w[o, ky, kx, c] to w[o + 1, ...] */
  for (int32_t j = 0; j < TT_IG_BLOCK; ++j) acc[j] = 0;
  for (int32_t t = 0; t < a->ty.n; ++t) {
    const int32_t ky = a->ty.k0 + t * a->ty.kstep, oy = a->ty.o0 - t * a->ty.ostep;
    for (int32_t u = 0; u < a->tx.n; ++u) {
      const int32_t kx = a->tx.k0 + u * a->tx.kstep, ox = a->tx.o0 - u * a->tx.ostep;
      const int32_t at = ((b * a->oh + oy) * a->ow + ox) * a->co;
      const int32_t tap = ky * a->kw + kx;
      if (lo == TT_IG_BLOCK)
        conv_terms_8(a->dy + at, a->mask, at, a->co, a->mult, a->w + tap * a->k + c0, w_stride,
                     acc);
      else if (lo > 0)
        conv_terms(a->dy + at, a->mask, at, a->co, a->mult, a->w + tap * a->k + c0, w_stride,
                   lo, acc);
      if (lo < nc)
        conv_terms(a->dy + at, a->mask, at, a->co, a->mult,
                   a->w_hi + tap * rest + (c0 + lo - a->k), a->kh * a->kw * rest, nc - lo,
                   acc + lo);
    }
  }
}

/* The depthwise form: channel ch of dx sums, over the taps reading it and j < m, the terms
 * h[o] * w[0, ky, kx, o] with o = ch * m + j. mult[o] is constant over the taps, so
 * acc = the sum over j of mult[o] * (the sum over taps of g[o] * w[o]): the same integer, one
 * multiplication by mult per channel instead of one per term. */
static void depthwise_block(const layer_s8 *a, int32_t b, int32_t c0, int32_t nc,
                            int32_t *acc) {
  const int32_t cm = a->co;
  for (int32_t j = 0; j < TT_IG_BLOCK; ++j) acc[j] = 0;
  if (a->m == 1 && nc == TT_IG_BLOCK) {
    int32_t t0 = 0, t1 = 0, t2 = 0, t3 = 0, t4 = 0, t5 = 0, t6 = 0, t7 = 0;
    for (int32_t t = 0; t < a->ty.n; ++t) {
      const int32_t ky = a->ty.k0 + t * a->ty.kstep, oy = a->ty.o0 - t * a->ty.ostep;
      const int8_t *g_row = a->dy + (b * a->oh + oy) * a->ow * cm + c0;
      const int8_t *w_row = a->w + ky * a->kw * cm + c0;
      for (int32_t u = 0; u < a->tx.n; ++u) {
        const int32_t kx = a->tx.k0 + u * a->tx.kstep, ox = a->tx.o0 - u * a->tx.ostep;
        const int8_t *g = g_row + ox * cm;
        const int8_t *wt = w_row + kx * cm;
        if (a->mask == 0) {
          t0 += g[0] * wt[0];
          t1 += g[1] * wt[1];
          t2 += g[2] * wt[2];
          t3 += g[3] * wt[3];
          t4 += g[4] * wt[4];
          t5 += g[5] * wt[5];
          t6 += g[6] * wt[6];
          t7 += g[7] * wt[7];
          continue;
        }
        const int32_t at = (int32_t)(g - a->dy);
        if (tt_live(a->mask, at)) t0 += g[0] * wt[0];
        if (tt_live(a->mask, at + 1)) t1 += g[1] * wt[1];
        if (tt_live(a->mask, at + 2)) t2 += g[2] * wt[2];
        if (tt_live(a->mask, at + 3)) t3 += g[3] * wt[3];
        if (tt_live(a->mask, at + 4)) t4 += g[4] * wt[4];
        if (tt_live(a->mask, at + 5)) t5 += g[5] * wt[5];
        if (tt_live(a->mask, at + 6)) t6 += g[6] * wt[6];
        if (tt_live(a->mask, at + 7)) t7 += g[7] * wt[7];
      }
    }
    const int16_t *mu = a->mult + c0;
    acc[0] = t0 * mu[0];
    acc[1] = t1 * mu[1];
    acc[2] = t2 * mu[2];
    acc[3] = t3 * mu[3];
    acc[4] = t4 * mu[4];
    acc[5] = t5 * mu[5];
    acc[6] = t6 * mu[6];
    acc[7] = t7 * mu[7];
    return;
  }
  for (int32_t j = 0; j < nc; ++j)
    for (int32_t k = 0; k < a->m; ++k) {
      const int32_t o = (c0 + j) * a->m + k;
      int32_t sum = 0;
      for (int32_t t = 0; t < a->ty.n; ++t) {
        const int32_t ky = a->ty.k0 + t * a->ty.kstep, oy = a->ty.o0 - t * a->ty.ostep;
        for (int32_t u = 0; u < a->tx.n; ++u) {
          const int32_t kx = a->tx.k0 + u * a->tx.kstep, ox = a->tx.o0 - u * a->tx.ostep;
          const int32_t at = ((b * a->oh + oy) * a->ow + ox) * cm + o;
          if (tt_live(a->mask, at)) sum += a->dy[at] * a->w[(ky * a->kw + kx) * cm + o];
        }
      }
      acc[j] += sum * a->mult[o];
    }
}

/* Walks dx positions [p0, p1) (of n * h * wd) in row-major order, block by block: keeps
 * the accumulators of the positions `keep` says (NULL: none) and tracks their largest
 * magnitude over [p0, p1) in *amax (either or both), or rounds them into dx with `r` (and
 * measures them too where amax is not NULL: the optimistic pass's check). */
static void walk_s8(layer_s8 *a, int depthwise, int32_t p0, int32_t p1, const tt_keep *keep,
                    uint32_t *amax, tt_rounder *r, int8_t *dx) {
  const tt_window v = a->v;
  int32_t acc[TT_IG_BLOCK];
  uint32_t top = 0;
  int8_t *out = dx + p0 * a->ci;
  for (int32_t b = 0; b < a->n; ++b)
    for (int32_t iy = 0; iy < a->h; ++iy) {
      const int32_t row = (b * a->h + iy) * a->wd;
      if (row + a->wd <= p0 || row >= p1) continue;
      tt_taps_reading(iy, v.stride_h, v.dilation_h, v.pad_top, a->kh, a->oh, &a->ty);
      for (int32_t ix = 0; ix < a->wd; ++ix) {
        if (row + ix < p0 || row + ix >= p1) continue;
        tt_taps_reading(ix, v.stride_w, v.dilation_w, v.pad_left, a->kw, a->ow, &a->tx);
        int32_t *const kept = tt_kept(keep, row + ix, a->ci);
        for (int32_t c0 = 0; c0 < a->ci; c0 += TT_IG_BLOCK) {
          const int32_t nc = a->ci - c0 < TT_IG_BLOCK ? a->ci - c0 : TT_IG_BLOCK;
          if (depthwise)
            depthwise_block(a, b, c0, nc, acc);
          else
            conv_block(a, b, c0, nc, acc);
          if (kept != 0)
            for (int32_t j = 0; j < nc; ++j) kept[c0 + j] = acc[j];
          if (r != 0) {
            tt_round_grads(r, acc, nc, out);
            out += nc;
          }
          if (amax != 0) {
            for (int32_t j = 0; j < nc; ++j) {
              const uint32_t mag = tt_magnitude(acc[j]);
              if (mag > top) top = mag;
            }
          }
        }
      }
    }
  /* the optimistic pass's probes: their maximum only (pointwise: position p is dy's row p) */
  for (int32_t i = 0; keep != 0 && amax != 0 && i < keep->probes; ++i) {
    const int32_t p = keep->probe[i], b = p / (a->h * a->wd), iy = p / a->wd % a->h,
                  ix = p % a->wd;
    tt_taps_reading(iy, v.stride_h, v.dilation_h, v.pad_top, a->kh, a->oh, &a->ty);
    tt_taps_reading(ix, v.stride_w, v.dilation_w, v.pad_left, a->kw, a->ow, &a->tx);
    for (int32_t c0 = 0; c0 < a->ci; c0 += TT_IG_BLOCK) {
      const int32_t nc = a->ci - c0 < TT_IG_BLOCK ? a->ci - c0 : TT_IG_BLOCK;
      conv_block(a, b, c0, nc, acc);
      top = tt_largest_magnitude(acc, nc, top);
    }
  }
  if (amax != 0) *amax = top;
}

/* The one-pass depthwise form: every dy position's terms scattered into acc [n, h, wd, c]
 * (zeroed here): h = dy * mult (0 where masked), four channels in registers for all the
 * window's taps. */
static void depthwise_scatter(const layer_s8 *a, int32_t *acc) {
  const tt_window v = a->v;
  const int32_t c = a->ci, m = a->m, cm = a->co;
  memset(acc, 0, sizeof(int32_t) * (size_t)a->n * (size_t)a->h * (size_t)a->wd * (size_t)c);
  for (int32_t b = 0; b < a->n; ++b)
    for (int32_t oy = 0; oy < a->oh; ++oy) {
      int32_t ky0, ky1;
      tt_tap_range(oy, v.stride_h, v.dilation_h, v.pad_top, a->h, a->kh, &ky0, &ky1);
      for (int32_t ox = 0; ox < a->ow; ++ox) {
        int32_t kx0, kx1;
        tt_tap_range(ox, v.stride_w, v.dilation_w, v.pad_left, a->wd, a->kw, &kx0, &kx1);
        const int32_t at = ((b * a->oh + oy) * a->ow + ox) * cm;
        const int8_t *g = a->dy + at;
        /* tap (ky, kx) reads (iy0 + ky * dilation_h, ix0 + kx * dilation_w) of image b */
        const int32_t iy0 = b * a->h + oy * v.stride_h - v.pad_top;
        const int32_t ix0 = ox * v.stride_w - v.pad_left;
        int32_t ch = 0;
        if (m == 1)
          for (; ch + 4 <= c; ch += 4) {
            const int32_t h0 = tt_live(a->mask, at + ch) ? g[ch] * a->mult[ch] : 0;
            const int32_t h1 = tt_live(a->mask, at + ch + 1) ? g[ch + 1] * a->mult[ch + 1] : 0;
            const int32_t h2 = tt_live(a->mask, at + ch + 2) ? g[ch + 2] * a->mult[ch + 2] : 0;
            const int32_t h3 = tt_live(a->mask, at + ch + 3) ? g[ch + 3] * a->mult[ch + 3] : 0;
            if ((h0 | h1 | h2 | h3) == 0) continue;
            for (int32_t ky = ky0; ky < ky1; ++ky) {
              int32_t *d = acc + ((iy0 + ky * v.dilation_h) * a->wd + ix0) * c + ch;
              const int8_t *wt = a->w + ky * a->kw * cm + ch;
              for (int32_t kx = kx0; kx < kx1; ++kx) {
                int32_t *dk = d + kx * v.dilation_w * c;
                const int8_t *wk = wt + kx * cm;
                dk[0] += h0 * wk[0];
                dk[1] += h1 * wk[1];
                dk[2] += h2 * wk[2];
                dk[3] += h3 * wk[3];
              }
            }
          }
        for (; ch < c; ++ch)
          for (int32_t j = 0; j < m; ++j) {
            const int32_t o = ch * m + j;
            if (!tt_live(a->mask, at + o)) continue;
            const int32_t h0 = g[o] * a->mult[o];
            for (int32_t ky = ky0; ky < ky1; ++ky)
              for (int32_t kx = kx0; kx < kx1; ++kx)
                acc[((iy0 + ky * v.dilation_h) * a->wd + ix0 + kx * v.dilation_w) * c + ch] +=
                    h0 * a->w[(ky * a->kw + kx) * cm + o];
          }
      }
    }
}

/* The DSP version of a depthwise layer's walk or one-pass scatter (tt_depthwise_grad_dsp.h),
 * where the target has one for the layer: 1 if it did it, else 0. */
static int dsp_depthwise_walk(const layer_s8 *a, int32_t p0, int32_t p1, const tt_keep *keep,
                              uint32_t *amax, tt_rounder *r, int8_t *dx) {
#if TT_GRAD_DSP
  return tt_dsp_depthwise_input_grad_s8(a->dy, a->mask, a->n, a->oh, a->ow, a->ci, a->m, a->w,
                                        a->mult, a->kh, a->kw, &a->v, a->h, a->wd, p0, p1,
                                        keep, amax, r, dx, a->stage, a->stage_bytes);
#else
  (void)a, (void)p0, (void)p1, (void)keep, (void)amax, (void)r, (void)dx;
  return 0;
#endif
}

/* One of walk_s8's three uses by the DSP version, where the target has one for the layer
 * (tt_grad_dsp.h: pointwise layers; depthwise layers: dsp_depthwise_walk): 1 if it did the
 * walk, else 0 and the portable walk_s8 runs (its calls stay as they are, so that the
 * portable code compiles the same beside the dispatch). */
static int dsp_walk(const layer_s8 *a, int depthwise, int32_t p0, int32_t p1,
                    const tt_keep *keep, uint32_t *amax, tt_rounder *r, int8_t *dx) {
  if (depthwise) return dsp_depthwise_walk(a, p0, p1, keep, amax, r, dx);
#if TT_GRAD_DSP
  const tt_window v = a->v;
  /* a pointwise layer's positions are dy's: rows [p0, p1) of dy and of dx (a walk that
   * keeps starts at row 0, so its rows are dx's positions) */
  return !depthwise && a->kh == 1 && a->kw == 1 && v.stride_h == 1 && v.stride_w == 1 &&
         v.pad_top == 0 && v.pad_left == 0 && a->h == a->oh && a->wd == a->ow &&
         (keep == 0 || p0 == 0) &&
         tt_dsp_pointwise_input_grad_s8(a->dy + p0 * a->co, a->mask, p0 * a->co, p1 - p0,
                                        a->co, a->w, a->k, a->w_hi, a->ci, a->mult, keep, amax,
                                        r, dx != 0 ? dx + p0 * a->ci : 0);
#else
  (void)a, (void)depthwise, (void)p0, (void)p1, (void)keep, (void)amax, (void)r, (void)dx;
  return 0;
#endif
}

/* The optimistic pass's probes (input_grad_s8): this many plus one per eight unkept rows,
 * at most TT_IG_PROBES_MAX. On the dumped calls of MobileNetV2's and MCUNet's steps (6
 * steps, the 113 KB program's kept positions), the kept rows' maximum plus the 1, 2, 4, 8
 * unkept rows of largest sum of dy^2 was the call's A in 64%, 74%, 88%, 95% of the two-pass
 * calls; a probe costs about one row of the staged walk (it rides in the first pass's
 * blocks), a miss a second walk of every row, so about 4 + unkept / 8 (45 unkept rows: 9,
 * the cap; 8 where the layer is not masked). The caps: ranked by sum (dy * mult)^2
 * (row_norm), the dumped calls of MobileNetV2's 113 KB program (15 steps, 135 optimistic
 * calls) missed 3 times at 8 probes, all three in masked layers (ops 116 and 123: 192
 * outputs, most of them masked out), once at 9 (a probe more in op 116, 45 unkept rows:
 * about 8.5 K instructions; a miss about 0.47 M); the unmasked calls, and MCUNet's (6
 * steps), did not miss at 8. */
#ifndef TT_IG_PROBES
#define TT_IG_PROBES 4
#endif

/* sum_o (dy[p, o] * mult[o])^2 over the outputs the mask lets through: the probes' order.
 * Row p's sums are acc[p, c] = sum_o h[o] * w[o, c] with h = dy * mult, so by
 * Cauchy-Schwarz |acc[p, c]|^2 <= this times the column's sum of w^2, the same for every
 * row. The multipliers weigh the outputs (MobileNetV2's range over 0-256 within a layer):
 * ranked by dy^2 alone, the row holding A was missed twice as often on the dumped calls of
 * MobileNetV2's 113 KB program (15 steps, 135 optimistic calls: 6 misses with sum dy^2, 3
 * with this; benchmarks/RESULTS.md, round 17 (pwig17)), each miss a second walk of every
 * row. A masked-out output adds nothing to the row's sums, so it must not rank the row
 * either. `at` is the mask index of g[0]. |h| <= 2^15, so the sum is exact in 64 bits.
 * row_norm_unweighted: sum_o dy^2, for unmasked layers only (choose_probes says where). */
static uint32_t row_norm_unweighted(const int8_t *g, int32_t co) {
  uint32_t s = 0;
  int32_t o = 0;
#if TT_GRAD_DSP
  /* four outputs a word: SXTB16's two halves squared and summed by SMLAD (|dy| <= 128: a
   * row's sum < 2^15 co) */
  for (; o + 4 <= co; o += 4) {
    const uint32_t v = tt_dsp_load4(g + o);
    const uint32_t e = __sxtb16(v), d = tt_dsp_sxtb16_odd(v);
    s = (uint32_t)__smlad(e, e, (int32_t)s);
    s = (uint32_t)__smlad(d, d, (int32_t)s);
  }
#endif
  for (; o < co; ++o) s += (uint32_t)(g[o] * g[o]);
  return s;
}

static uint64_t row_norm(const int8_t *g, const uint8_t *mask, int32_t at, int32_t co,
                         const int16_t *mult) {
  uint64_t s = 0;
  int32_t o = 0;
#if TT_GRAD_DSP
  /* four outputs a word: SXTB16's halves [dy0, dy2] and [dy1, dy3] times their multipliers
   * (SMULxy), packed in pairs (PKHBT; dy * mult lies in [-32768, 32512]: an int16) and
   * squared and summed by SMLALD into 64 bits; the mask's four bits as byte lanes */
#define TT_IG_NORM4(v, m)                                                                   \
  do {                                                                                      \
    uint32_t m01_, m23_, h01_, h23_, t_;                                                    \
    memcpy(&m01_, (m), 4);                                                                  \
    memcpy(&m23_, (m) + 2, 4);                                                              \
    const uint32_t e_ = __sxtb16(v), d_ = tt_dsp_sxtb16_odd(v);                             \
    __asm__("smulbb %0, %2, %3\n\tsmulbt %1, %4, %3\n\tpkhbt %0, %0, %1, lsl #16"           \
            : "=&r"(h01_), "=&r"(t_) : "r"(e_), "r"(m01_), "r"(d_));                        \
    __asm__("smultb %0, %2, %3\n\tsmultt %1, %4, %3\n\tpkhbt %0, %0, %1, lsl #16"           \
            : "=&r"(h23_), "=&r"(t_) : "r"(e_), "r"(m23_), "r"(d_));                        \
    s = (uint64_t)__smlald(h01_, h01_, (int64_t)s);                                         \
    s = (uint64_t)__smlald(h23_, h23_, (int64_t)s);                                         \
  } while (0)
  if (mask != 0 && (at & 7) == 0) {
    /* the row's mask starts on a byte: a byte's two nibbles mask two words */
    const uint8_t *bits = mask + (at >> 3);
    for (; o + 8 <= co; o += 8) {
      const uint32_t b = *bits++;
      const uint32_t v0 = tt_dsp_load4(g + o) & tt_dsp_mask_lanes(b);
      const uint32_t v1 = tt_dsp_load4(g + o + 4) & tt_dsp_mask_lanes(b >> 4);
      TT_IG_NORM4(v0, mult + o);
      TT_IG_NORM4(v1, mult + o + 4);
    }
  }
  for (; o + 4 <= co; o += 4) {
    uint32_t v = tt_dsp_load4(g + o);
    if (mask != 0) v &= tt_dsp_mask_lanes(tt_dsp_mask_bits(mask, at + o, 4));
    TT_IG_NORM4(v, mult + o);
  }
#undef TT_IG_NORM4
#endif
  for (; o < co; ++o)
    if (tt_live(mask, at + o)) {
      const int64_t h = (int64_t)g[o] * mult[o];
      s += (uint64_t)(h * h);
    }
  return s;
}

/* probe[0 .. k) = the k rows of [p0, p1) of largest row_norm (k <= TT_IG_PROBES_MAX), by
 * insertion into a short sorted list: the order decides only which rows are probed. Not
 * inlined: its list's frame is off input_grad_s8's, which the first pass's walk sits on.
 * The multipliers weigh the rows where the layer is masked or TT_IG_WEIGH_ROWS or more rows
 * are unkept: the weighting costs about 2 instructions more an output and row (13 against
 * 5 per four unmasked outputs: the products dy * mult), and the dumped calls missed with
 * sum dy^2 only there (the masked ops 116 and 123 of MobileNetV2's 113 KB program, and its
 * unmasked op 127, 44 unkept rows); elsewhere (MCUNet's 31-33 unkept rows, MobileNetV2's
 * smallest arena's 22) neither order missed, and weighing there cost 3.5-8 K a step. */
#define TT_IG_PROBES_MAX 9
#ifndef TT_IG_WEIGH_ROWS
#define TT_IG_WEIGH_ROWS 40
#endif
/* the insertion, in one copy per norm's type (the unweighted one as main's: 32-bit norms) */
#define TT_IG_CHOOSE(NAME, TYPE, NORM)                                                      \
  static __attribute__((noinline)) void NAME(const layer_s8 *a, int32_t p0, int32_t p1,     \
                                             int32_t k, int32_t *probe) {                   \
    TYPE norm[TT_IG_PROBES_MAX];                                                            \
    int32_t have = 0;                                                                       \
    for (int32_t p = p0; p < p1; ++p) {                                                     \
      const TYPE d = NORM;                                                                  \
      if (have == k && d <= norm[k - 1]) continue;                                          \
      int32_t i = have < k ? have++ : k - 1;                                                \
      for (; i > 0 && norm[i - 1] < d; --i) norm[i] = norm[i - 1], probe[i] = probe[i - 1]; \
      norm[i] = d, probe[i] = p;                                                            \
    }                                                                                       \
  }
TT_IG_CHOOSE(choose_weighted, uint64_t,
             row_norm(a->dy + p * a->co, a->mask, p * a->co, a->co, a->mult))
TT_IG_CHOOSE(choose_unweighted, uint32_t,
             row_norm_unweighted(a->dy + p * a->co, a->co))
#undef TT_IG_CHOOSE
static void choose_probes(const layer_s8 *a, int32_t p0, int32_t p1, int32_t k,
                          int32_t *probe) {
  if (a->mask != 0 || p1 - p0 >= TT_IG_WEIGH_ROWS)
    choose_weighted(a, p0, p1, k, probe);
  else
    choose_unweighted(a, p0, p1, k, probe);
}

/* The rule's A for a layer's first pass, and where its accumulators went (input_grad_s8;
 * inlined there, as round_walk is: a frame of their own sat on the deepest stack path, 40 B
 * of the 113 KB program's). */
static inline __attribute__((always_inline)) uint32_t
first_pass(layer_s8 *a, int depthwise, int32_t p1, const tt_keep *keep) {
  uint32_t amax = 0;
  /* (the DSP version where the target has one for the layer, else the portable walk: the
   * dispatch at each use, so that the DSP call's frame is the only large one on the stack;
   * no kept rows but probes: the portable walk's probes) */
  if ((p1 > 0 || keep != 0) && !dsp_walk(a, depthwise, 0, p1, keep, &amax, 0, 0))
    walk_s8(a, depthwise, 0, p1, keep, &amax, 0, 0);
  /* UINT32_MAX (no sum's magnitude: they are below 2^31): the depthwise DSP walk kept every
   * position in keep->a0 and left their maximum to the caller's scan (a one pass, which
   * input_grad_s8 handles before this; here for any other caller that keeps all in a0) */
  if (amax == UINT32_MAX) amax = tt_largest_magnitude(keep->a0, p1 * a->ci, 0u);
  return amax;
}

/* The rounding walk of positions [p0, p1), measuring them too where amax is not NULL. */
static inline __attribute__((always_inline)) void
round_walk(layer_s8 *a, int depthwise, int32_t p0, int32_t p1, uint32_t *amax, tt_rounder *r,
           int8_t *dx) {
  if (p1 > p0 && !dsp_walk(a, depthwise, p0, p1, 0, amax, r, dx))
    walk_s8(a, depthwise, p0, p1, 0, amax, r, dx);
}

/* Whether rows 1 .. rows - 1 of dy [rows, co] all equal row 0 (a pooling's gradient
 * broadcast: see input_grad_s8): each byte against the one a row before, a word at a time
 * (the kernels call no libc but memcpy and memset). Another layer's rows differ in the
 * second row's first words. */
static int rows_equal(const int8_t *dy, int32_t rows, int32_t co) {
  const int32_t n = rows * co;
  int32_t i = co;
  for (; i + 4 <= n; i += 4) {
    uint32_t x, y;
    memcpy(&x, dy + i, 4);
    memcpy(&y, dy + i - co, 4);
    if (x != y) return 0;
  }
  for (; i < n; ++i)
    if (dy[i] != dy[i - co]) return 0;
  return 1;
}

/* The two forms of every layer's int8 input gradient. One pass: `scratch` holds every
 * position's accumulators. Two passes: the first finds A and keeps what it can of the
 * accumulators, the second computes the others again to round them. What it keeps: dx's
 * first quarter of positions in dx's own bytes (element i's int32 at bytes 4i .. 4i + 3,
 * which the rounding, in increasing i, reads before it writes byte i: i <= 4i, no unread
 * accumulator is overwritten; only when dx is 4-byte aligned and not over dy: dx_over_dy,
 * tt_inplace_grad.h), then the next `scratch_positions` positions in `scratch` (the arena a
 * generated program has free at the operator). dx is written by no other argument (the
 * second pass reads dy, the mask and the weights while it writes dx in any case).
 *
 * A pointwise layer's unkept positions are computed once where a guess of A holds (the
 * optimistic pass): the first pass walks the kept positions only and a few probes, the
 * unkept rows of largest sum of (dy * mult)^2 (or dy^2: choose_probes) over the outputs
 * the mask lets through, for their maximum only; the kept ones are rounded with that guess, then the unkept rows are
 * rounded with it and measured. If none passed
 * the guess, it was A (the maximum over every position) and every byte is the rule's. If
 * one did, the rounding starts again with the true A from the op's stream state: the kept
 * positions in dx's bytes computed again (their int32 are gone), the scratch's rounded
 * again (it is intact), the unkept rows computed again: the same bits, slower. */
static void input_grad_s8(layer_s8 *a, int depthwise, float unit, int8_t *dx, float *dx_scale,
                          tt_update_state *rounding, int32_t *scratch,
                          int32_t scratch_positions, int dx_over_dy) {
  const int32_t positions = a->n * a->h * a->wd;
  if (scratch == 0 || scratch_positions < 0) scratch_positions = 0;
  const int one_pass = scratch_positions >= positions;
  if (one_pass && depthwise) {
    const tt_keep all = {scratch, positions, 0, positions, 0, 0};
    uint32_t amax = 0;
    const int walked = dsp_depthwise_walk(a, 0, positions, &all, &amax, 0, 0);
    if (!walked) depthwise_scatter(a, scratch);
    /* the walk's largest magnitude where it measured one (UINT32_MAX: not measured); else
     * tt_quantize_grad_s8's own scan: scanning here instead cost the stride-2 and 5x5-8x8
     * one-pass rows 0.2-1.2% (gcc's tt_largest_magnitude inlined into this function is
     * slower than tt_grad_quant.c's; mcu_grad_dsp.py, round 22's re-measure) */
    if (walked && amax != UINT32_MAX)
      tt_quantize_grad_s8_max(scratch, positions * a->ci, amax, unit, rounding, dx, dx_scale);
    else
      tt_quantize_grad_s8(scratch, positions * a->ci, unit, rounding, dx, dx_scale);
    return;
  }
  /* a convolution's one pass is the first pass keeping every position in the scratch, its
   * largest magnitude found as the walk goes (no second walk over the scratch for it) */
  const int32_t quarter = one_pass ? positions
                         : !dx_over_dy && ((uintptr_t)dx & 3u) == 0 ? positions / 4 : 0;
  const int32_t extra = one_pass ? 0 : scratch_positions < positions - quarter ? scratch_positions
                                                                            : positions - quarter;
  int32_t *const a0 = one_pass ? scratch : (int32_t *)(void *)dx;
  tt_keep keep = {a0, quarter, scratch, quarter + extra, 0, 0};
  const tt_keep *const first = keep.n1 > 0 ? &keep : 0;
  const int32_t unkept = positions - keep.n1;
  /* a pointwise layer: dx's positions are dy's (row p of dx sums row p of dy's terms) */
  const tt_window v = a->v;
  const int pointwise = !depthwise && a->kh == 1 && a->kw == 1 && v.stride_h == 1 &&
                        v.stride_w == 1 && v.pad_top == 0 && v.pad_left == 0 &&
                        a->h == a->oh && a->wd == a->ow;
  if (pointwise && a->mask == 0 && scratch_positions > 0 && positions > 1 &&
      rows_equal(a->dy, positions, a->co)) {
    /* Every row of dy the same, unmasked (the gradient of a global average pool through
     * the linear projection before it: MobileNetV2's and MCUNet's last block): every dx
     * row has the same sums. One row is computed into the scratch, and A is its largest
     * magnitude; each position is rounded from it in row-major order: the same integers,
     * draws and rule as computing every row, once instead of twice per unkept row. */
    const tt_keep one = {scratch, 1, scratch, 1, 0, 0};
    const uint32_t a1 = first_pass(a, 0, 1, &one);
    tt_rounder r;
    tt_rounder_begin(&r, a1, unit, rounding, dx_scale);
    for (int32_t p = 0; p < positions; ++p) tt_round_grads(&r, scratch, a->ci, dx + p * a->ci);
    tt_rounder_end(&r, rounding);
    return;
  }
  /* (a masked layer's rows missed more: one probe more may be taken there) */
  const int32_t most = a->mask != 0 ? TT_IG_PROBES_MAX : TT_IG_PROBES_MAX - 1;
  int32_t probes = TT_IG_PROBES + unkept / 8;
  if (probes > most) probes = most;
  int32_t probe[TT_IG_PROBES_MAX];
  const int optimistic = pointwise && probes > 0 && unkept > probes;
  uint32_t amax;
  if (optimistic) {
    choose_probes(a, keep.n1, positions, probes, probe);
    keep.probe = probe, keep.probes = probes;
    amax = first_pass(a, 0, keep.n1, &keep);             /* the guess */
  } else {
    amax = first_pass(a, depthwise, positions, first);
  }
  tt_rounder r;
  tt_rounder_begin(&r, amax, unit, rounding, dx_scale);
  if (quarter > 0) tt_round_grads(&r, keep.a0, quarter * a->ci, dx);
  if (extra > 0) tt_round_grads(&r, scratch, extra * a->ci, dx + quarter * a->ci);
  uint32_t rest = 0;                      /* the unkept rows' maximum, where they are guessed */
  round_walk(a, depthwise, keep.n1, positions, optimistic ? &rest : 0, &r, dx);
  if (rest > amax) {
    /* the guess was low: A is the unkept rows' maximum; the stream from the op's state */
    tt_rounder_begin(&r, rest, unit, rounding, dx_scale);
    round_walk(a, 0, 0, quarter, 0, &r, dx);
    if (extra > 0) tt_round_grads(&r, scratch, extra * a->ci, dx + quarter * a->ci);
    round_walk(a, 0, keep.n1, positions, 0, &r, dx);
  }
  tt_rounder_end(&r, rounding);
}

void tt_conv2d_input_grad_s8(const int8_t *dy, const float *dy_scale, const uint8_t *mask,
                             int32_t n, int32_t oh, int32_t ow, int32_t co, const int8_t *w,
                             const int16_t *w_mult, float w_unit, int32_t kh, int32_t kw,
                             const tt_window *win, int32_t h, int32_t wd, int32_t ci,
                             int8_t *dx, float *dx_scale, tt_update_state *rounding,
                             int32_t *scratch, int32_t scratch_positions) {
  tt_conv2d_input_grad_split_s8(dy, dy_scale, mask, n, oh, ow, co, w, ci, 0, w_mult, w_unit,
                                kh, kw, win, h, wd, ci, dx, dx_scale, rounding, scratch,
                                scratch_positions);
}

void tt_conv2d_input_grad_split_s8(const int8_t *dy, const float *dy_scale, const uint8_t *mask,
                                   int32_t n, int32_t oh, int32_t ow, int32_t co,
                                   const int8_t *w_lo, int32_t k, const int8_t *w_hi,
                                   const int16_t *w_mult, float w_unit, int32_t kh, int32_t kw,
                                   const tt_window *win, int32_t h, int32_t wd, int32_t ci,
                                   int8_t *dx, float *dx_scale, tt_update_state *rounding,
                                   int32_t *scratch, int32_t scratch_positions) {
  layer_s8 a = {dy, mask, n, oh, ow, co, w_lo, w_mult, kh, kw, 1, *win, h, wd, ci,
                {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}, k, w_hi, 0, 0};
  tt_tap_steps(win->stride_h, win->dilation_h, &a.ty);
  tt_tap_steps(win->stride_w, win->dilation_w, &a.tx);
  input_grad_s8(&a, 0, *dy_scale * w_unit, dx, dx_scale, rounding, scratch, scratch_positions,
                0);
}

static void depthwise_input_grad_s8(const int8_t *dy, const float *dy_scale,
                                    const uint8_t *mask, int32_t n, int32_t oh, int32_t ow,
                                    int32_t c, int32_t m, const int8_t *w, const int16_t *w_mult,
                                    float w_unit, int32_t kh, int32_t kw, const tt_window *win,
                                    int32_t h, int32_t wd, int8_t *dx, float *dx_scale,
                                    tt_update_state *rounding, int32_t *scratch,
                                    int32_t scratch_positions, void *stage, int32_t stage_bytes,
                                    int dx_over_dy) {
  layer_s8 a = {dy, mask, n, oh, ow, c * m, w, w_mult, kh, kw, m, *win, h, wd, c,
                {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}, c, 0, stage, stage_bytes};
  tt_tap_steps(win->stride_h, win->dilation_h, &a.ty);
  tt_tap_steps(win->stride_w, win->dilation_w, &a.tx);
  input_grad_s8(&a, 1, *dy_scale * w_unit, dx, dx_scale, rounding, scratch, scratch_positions,
                dx_over_dy);
}

void tt_depthwise_conv2d_input_grad_s8(const int8_t *dy, const float *dy_scale, const uint8_t *mask,
                                       int32_t n, int32_t oh, int32_t ow, int32_t c, int32_t m,
                                       const int8_t *w, const int16_t *w_mult, float w_unit,
                                       int32_t kh, int32_t kw, const tt_window *win, int32_t h,
                                       int32_t wd, int8_t *dx, float *dx_scale,
                                       tt_update_state *rounding, int32_t *scratch,
                                       int32_t scratch_positions, void *stage,
                                       int32_t stage_bytes) {
  depthwise_input_grad_s8(dy, dy_scale, mask, n, oh, ow, c, m, w, w_mult, w_unit, kh, kw, win, h,
                          wd, dx, dx_scale, rounding, scratch, scratch_positions, stage,
                          stage_bytes, 0);
}

/* include/tt_inplace_grad.h: dx over dy, so the first pass keeps nothing in dx's bytes */
void tt_depthwise_conv2d_input_grad_over_s8(const int8_t *dy, const float *dy_scale,
                                            const uint8_t *mask, int32_t n, int32_t oh,
                                            int32_t ow, int32_t c, int32_t m, const int8_t *w,
                                            const int16_t *w_mult, float w_unit, int32_t kh,
                                            int32_t kw, const tt_window *win, int32_t h,
                                            int32_t wd, int8_t *dx, float *dx_scale,
                                            tt_update_state *rounding, int32_t *scratch,
                                            int32_t scratch_positions, void *stage,
                                            int32_t stage_bytes) {
  depthwise_input_grad_s8(dy, dy_scale, mask, n, oh, ow, c, m, w, w_mult, w_unit, kh, kw, win, h,
                          wd, dx, dx_scale, rounding, scratch, scratch_positions, stage,
                          stage_bytes, 1);
}

/* A fully connected layer is a 1x1 convolution over `batches` positions: dx[b, d] sums
 * h[b, u] * w[u, d] over u. */
void tt_fully_connected_input_grad_s8(const int8_t *dy, const float *dy_scale, const uint8_t *mask,
                                      int32_t batches, int32_t units, const int8_t *w,
                                      const int16_t *w_mult, float w_unit, int32_t depth,
                                      int8_t *dx, float *dx_scale, tt_update_state *rounding,
                                      int32_t *scratch, int32_t scratch_positions) {
  tt_fully_connected_input_grad_split_s8(dy, dy_scale, mask, batches, units, w, depth, 0, w_mult,
                                         w_unit, depth, dx, dx_scale, rounding, scratch,
                                         scratch_positions);
}

void tt_fully_connected_input_grad_split_s8(const int8_t *dy, const float *dy_scale,
                                            const uint8_t *mask, int32_t batches, int32_t units,
                                            const int8_t *w_lo, int32_t k, const int8_t *w_hi,
                                            const int16_t *w_mult, float w_unit, int32_t depth,
                                            int8_t *dx, float *dx_scale,
                                            tt_update_state *rounding, int32_t *scratch,
                                            int32_t scratch_positions) {
  static const tt_window one = {1, 1, 1, 1, 0, 0};
  layer_s8 a = {dy, mask, batches, 1, 1, units, w_lo, w_mult, 1, 1, 1, one, 1, 1, depth,
                {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}, k, w_hi, 0, 0};
  tt_tap_steps(1, 1, &a.ty);
  tt_tap_steps(1, 1, &a.tx);
  input_grad_s8(&a, 0, *dy_scale * w_unit, dx, dx_scale, rounding, scratch, scratch_positions,
                0);
}
