/* Weight and bias gradients (float32, in the orders documented in include/tt_kernels.h), the
 * QAS SGD updates of int8 weights and int32 biases, and the in-place fused gradient+update
 * kernels, which share the gradient and update code with the separate ones so that both
 * give the same bits by construction. */
#include <string.h>

#include "tt_common.h"
#include "tt_depthwise_grad_dsp.h"
#include "tt_grad_dsp.h"
#include "tt_qas.h"

#define TT_DEFAULT_SEED 2463534242u

uint32_t tt_xorshift32_next(uint32_t *state) {
  *state = tt_xorshift32(*state);
  return *state;
}

void tt_update_state_init(tt_update_state *s, uint32_t seed) {
  s->rng = seed ? seed : TT_DEFAULT_SEED;
  s->step = 0;
}

/* ---- weight gradients ----------------------------------------------------------------------- */

/* The operands of a CONV_2D weight gradient (the arguments of tt_conv2d_weight_grad_f32). */
typedef struct {
  const float *dy;
  const uint8_t *mask;
  int32_t n, oh, ow, co;
  const int8_t *saved;
  float x_scale;
  int32_t x_zp, h, wd, k, kh, kw;
  const tt_window *win;
} conv_weight_grad_args;

/* The row-by-row sums of one tap of output channel o over the dy positions whose tap reads
 * inside the image (oy in [oy0, oy1), ox in [ox0, ox1)): out[c] = x_scale * T[c] for c in
 * [c0, c0 + 8), eight channels in registers, so that each dy element is loaded and its mask
 * tested once per eight channels. */
static void conv_tap_8(const conv_weight_grad_args *a, int32_t o, int32_t ky, int32_t kx,
                       int32_t oy0, int32_t oy1, int32_t ox0, int32_t ox1, int32_t c0,
                       float *out) {
  const tt_window v = *a->win;
  const float zp = (float)a->x_zp;
  float t0 = 0.0f, t1 = 0.0f, t2 = 0.0f, t3 = 0.0f, t4 = 0.0f, t5 = 0.0f, t6 = 0.0f, t7 = 0.0f;
  for (int32_t b = 0; b < a->n; ++b)
    for (int32_t oy = oy0; oy < oy1; ++oy) {
      const int32_t iy = oy * v.stride_h + ky * v.dilation_h - v.pad_top;
      const int8_t *xp = a->saved + ((b * a->h + iy) * a->wd + ox0 * v.stride_w +
                                     kx * v.dilation_w - v.pad_left) * a->k + c0;
      const int32_t x_step = v.stride_w * a->k;
      int32_t i = ((b * a->oh + oy) * a->ow + ox0) * a->co + o;
      float r0 = 0.0f, r1 = 0.0f, r2 = 0.0f, r3 = 0.0f, r4 = 0.0f, r5 = 0.0f, r6 = 0.0f;
      float r7 = 0.0f;
      for (int32_t ox = ox0; ox < ox1; ++ox, i += a->co, xp += x_step) {
        if (!tt_live(a->mask, i)) continue;
        const float g = a->dy[i];
        r0 += g * ((float)xp[0] - zp);
        r1 += g * ((float)xp[1] - zp);
        r2 += g * ((float)xp[2] - zp);
        r3 += g * ((float)xp[3] - zp);
        r4 += g * ((float)xp[4] - zp);
        r5 += g * ((float)xp[5] - zp);
        r6 += g * ((float)xp[6] - zp);
        r7 += g * ((float)xp[7] - zp);
      }
      t0 += r0;
      t1 += r1;
      t2 += r2;
      t3 += r3;
      t4 += r4;
      t5 += r5;
      t6 += r6;
      t7 += r7;
    }
  out[c0] = a->x_scale * t0;
  out[c0 + 1] = a->x_scale * t1;
  out[c0 + 2] = a->x_scale * t2;
  out[c0 + 3] = a->x_scale * t3;
  out[c0 + 4] = a->x_scale * t4;
  out[c0 + 5] = a->x_scale * t5;
  out[c0 + 6] = a->x_scale * t6;
  out[c0 + 7] = a->x_scale * t7;
}

/* conv_tap_8 for the one channel c. */
static void conv_tap_1(const conv_weight_grad_args *a, int32_t o, int32_t ky, int32_t kx,
                       int32_t oy0, int32_t oy1, int32_t ox0, int32_t ox1, int32_t c,
                       float *out) {
  const tt_window v = *a->win;
  const float zp = (float)a->x_zp;
  float t = 0.0f;
  for (int32_t b = 0; b < a->n; ++b)
    for (int32_t oy = oy0; oy < oy1; ++oy) {
      const int32_t iy = oy * v.stride_h + ky * v.dilation_h - v.pad_top;
      const int8_t *xp = a->saved + ((b * a->h + iy) * a->wd + ox0 * v.stride_w +
                                     kx * v.dilation_w - v.pad_left) * a->k + c;
      int32_t i = ((b * a->oh + oy) * a->ow + ox0) * a->co + o;
      float r = 0.0f;
      for (int32_t ox = ox0; ox < ox1; ++ox, i += a->co, xp += v.stride_w * a->k)
        if (tt_live(a->mask, i)) r += a->dy[i] * ((float)xp[0] - zp);
      t += r;
    }
  out[c] = a->x_scale * t;
}

/* dw_o [kh, kw, k]: the gradient of output channel o's filter. The separate and the fused
 * kernel both call this, so their gradients are the same values by construction. */
static void conv2d_weight_grad_channel(const conv_weight_grad_args *args, int32_t o,
                                       float *dw_o) {
  const conv_weight_grad_args a = *args;   /* a local copy: dw_o cannot alias it */
  const tt_window v = *a.win;
  for (int32_t ky = 0; ky < a.kh; ++ky) {
    int32_t oy0, oy1;
    tt_out_range(ky, v.stride_h, v.dilation_h, v.pad_top, a.h, a.oh, &oy0, &oy1);
    for (int32_t kx = 0; kx < a.kw; ++kx) {
      int32_t ox0, ox1;
      tt_out_range(kx, v.stride_w, v.dilation_w, v.pad_left, a.wd, a.ow, &ox0, &ox1);
      const int32_t oy_end = ox0 < ox1 ? oy1 : oy0;     /* no column: no row to walk */
      float *out = dw_o + (ky * a.kw + kx) * a.k;
      int32_t c = 0;
      for (; c + 8 <= a.k; c += 8) conv_tap_8(&a, o, ky, kx, oy0, oy_end, ox0, ox1, c, out);
      for (; c < a.k; ++c) conv_tap_1(&a, o, ky, kx, oy0, oy_end, ox0, ox1, c, out);
    }
  }
}

void tt_conv2d_weight_grad_f32(const float *dy, const uint8_t *mask, int32_t n, int32_t oh,
                               int32_t ow, int32_t co, const int8_t *saved, float x_scale,
                               int32_t x_zp, int32_t h, int32_t wd, int32_t k, int32_t kh,
                               int32_t kw, const tt_window *win, float *dw) {
  const conv_weight_grad_args a = {dy, mask, n, oh, ow, co, saved, x_scale, x_zp,
                                   h, wd, k, kh, kw, win};
  for (int32_t o = 0; o < co; ++o) conv2d_weight_grad_channel(&a, o, dw + o * kh * kw * k);
}

/* The operands of a DEPTHWISE_CONV_2D weight gradient, and one tap's position ranges. */
typedef struct {
  const float *dy;
  const uint8_t *mask;
  int32_t n, oh, ow, c, m;
  const int8_t *saved;
  float x_scale;
  int32_t x_zp, h, wd;
  tt_window win;
  int32_t ky, kx, oy0, oy1, ox0, ox1;
} depthwise_tap;

/* out[o] for o in [o0, o0 + 8) of one tap, depth multiplier 1 (input channel = o): as
 * conv_tap_8, eight channels in registers. */
static void depthwise_tap_8(const depthwise_tap *a, int32_t o0, float *out) {
  const tt_window v = a->win;
  const float zp = (float)a->x_zp;
  float t0 = 0.0f, t1 = 0.0f, t2 = 0.0f, t3 = 0.0f, t4 = 0.0f, t5 = 0.0f, t6 = 0.0f, t7 = 0.0f;
  for (int32_t b = 0; b < a->n; ++b)
    for (int32_t oy = a->oy0; oy < a->oy1; ++oy) {
      const int32_t iy = oy * v.stride_h + a->ky * v.dilation_h - v.pad_top;
      const int8_t *xp = a->saved + ((b * a->h + iy) * a->wd + a->ox0 * v.stride_w +
                                     a->kx * v.dilation_w - v.pad_left) * a->c + o0;
      int32_t i = ((b * a->oh + oy) * a->ow + a->ox0) * a->c + o0;
      float r0 = 0.0f, r1 = 0.0f, r2 = 0.0f, r3 = 0.0f, r4 = 0.0f, r5 = 0.0f, r6 = 0.0f;
      float r7 = 0.0f;
      for (int32_t ox = a->ox0; ox < a->ox1; ++ox, i += a->c, xp += v.stride_w * a->c) {
        const float *g = a->dy + i;
        if (tt_live(a->mask, i)) r0 += g[0] * ((float)xp[0] - zp);
        if (tt_live(a->mask, i + 1)) r1 += g[1] * ((float)xp[1] - zp);
        if (tt_live(a->mask, i + 2)) r2 += g[2] * ((float)xp[2] - zp);
        if (tt_live(a->mask, i + 3)) r3 += g[3] * ((float)xp[3] - zp);
        if (tt_live(a->mask, i + 4)) r4 += g[4] * ((float)xp[4] - zp);
        if (tt_live(a->mask, i + 5)) r5 += g[5] * ((float)xp[5] - zp);
        if (tt_live(a->mask, i + 6)) r6 += g[6] * ((float)xp[6] - zp);
        if (tt_live(a->mask, i + 7)) r7 += g[7] * ((float)xp[7] - zp);
      }
      t0 += r0;
      t1 += r1;
      t2 += r2;
      t3 += r3;
      t4 += r4;
      t5 += r5;
      t6 += r6;
      t7 += r7;
    }
  out[o0] = a->x_scale * t0;
  out[o0 + 1] = a->x_scale * t1;
  out[o0 + 2] = a->x_scale * t2;
  out[o0 + 3] = a->x_scale * t3;
  out[o0 + 4] = a->x_scale * t4;
  out[o0 + 5] = a->x_scale * t5;
  out[o0 + 6] = a->x_scale * t6;
  out[o0 + 7] = a->x_scale * t7;
}

/* out[o] of one tap, any depth multiplier (input channel o / m). */
static void depthwise_tap_1(const depthwise_tap *a, int32_t o, float *out) {
  const tt_window v = a->win;
  const float zp = (float)a->x_zp;
  const int32_t cm = a->c * a->m;
  float t = 0.0f;
  for (int32_t b = 0; b < a->n; ++b)
    for (int32_t oy = a->oy0; oy < a->oy1; ++oy) {
      const int32_t iy = oy * v.stride_h + a->ky * v.dilation_h - v.pad_top;
      const int8_t *xp = a->saved + ((b * a->h + iy) * a->wd + a->ox0 * v.stride_w +
                                     a->kx * v.dilation_w - v.pad_left) * a->c + o / a->m;
      int32_t i = ((b * a->oh + oy) * a->ow + a->ox0) * cm + o;
      float r = 0.0f;
      for (int32_t ox = a->ox0; ox < a->ox1; ++ox, i += cm, xp += v.stride_w * a->c)
        if (tt_live(a->mask, i)) r += a->dy[i] * ((float)xp[0] - zp);
      t += r;
    }
  out[o] = a->x_scale * t;
}

void tt_depthwise_conv2d_weight_grad_f32(const float *dy, const uint8_t *mask, int32_t n,
                                         int32_t oh, int32_t ow, int32_t c, int32_t m,
                                         const int8_t *saved, float x_scale, int32_t x_zp,
                                         int32_t h, int32_t wd, int32_t kh, int32_t kw,
                                         const tt_window *win, float *dw) {
  depthwise_tap a = {dy, mask, n, oh, ow, c, m, saved, x_scale, x_zp, h, wd, *win,
                     0, 0, 0, 0, 0, 0};
  const int32_t cm = c * m;
  for (a.ky = 0; a.ky < kh; ++a.ky) {
    for (a.kx = 0; a.kx < kw; ++a.kx) {
      tt_out_range(a.ky, a.win.stride_h, a.win.dilation_h, a.win.pad_top, h, oh, &a.oy0,
                   &a.oy1);
      tt_out_range(a.kx, a.win.stride_w, a.win.dilation_w, a.win.pad_left, wd, ow, &a.ox0,
                   &a.ox1);
      if (a.ox0 == a.ox1) a.oy1 = a.oy0;               /* no column: no row to walk */
      float *out = dw + (a.ky * kw + a.kx) * cm;
      int32_t o = 0;
      if (m == 1)
        for (; o + 8 <= cm; o += 8) depthwise_tap_8(&a, o, out);
      for (; o < cm; ++o) depthwise_tap_1(&a, o, out);
    }
  }
}

/* dw_u [k]: the gradient of unit u's weights (shared by the separate and fused kernels). */
static void fully_connected_weight_grad_unit(const float *dy, const uint8_t *mask,
                                             int32_t batches, int32_t units, int32_t u,
                                             const int8_t *saved, float x_scale, int32_t x_zp,
                                             int32_t k, float *dw_u) {
  for (int32_t j = 0; j < k; ++j) dw_u[j] = 0.0f;
  for (int32_t b = 0; b < batches; ++b) {
    const int32_t i = b * units + u;
    if (!tt_live(mask, i)) continue;
    const float g = dy[i];
    const int8_t *xp = saved + b * k;
    for (int32_t j = 0; j < k; ++j) dw_u[j] += g * (float)(xp[j] - x_zp);
  }
  for (int32_t j = 0; j < k; ++j) dw_u[j] = x_scale * dw_u[j];
}

void tt_fully_connected_weight_grad_f32(const float *dy, const uint8_t *mask, int32_t batches,
                                        int32_t units, const int8_t *saved, float x_scale,
                                        int32_t x_zp, int32_t k, float *dw) {
  for (int32_t u = 0; u < units; ++u)
    fully_connected_weight_grad_unit(dy, mask, batches, units, u, saved, x_scale, x_zp, k,
                                     dw + u * k);
}

/* db[c0 .. c0 + 8) in registers: block partials r, their sum t (tt_bias_grad_f32's order). */
static void bias_grad_8(const float *dy, const uint8_t *mask, int32_t outer, int32_t channels,
                        int32_t c0, float *db) {
  float t0 = 0.0f, t1 = 0.0f, t2 = 0.0f, t3 = 0.0f, t4 = 0.0f, t5 = 0.0f, t6 = 0.0f, t7 = 0.0f;
  for (int32_t p0 = 0; p0 < outer; p0 += TT_BIAS_GRAD_BLOCK) {
    const int32_t end = outer - p0 < TT_BIAS_GRAD_BLOCK ? outer : p0 + TT_BIAS_GRAD_BLOCK;
    float r0 = 0.0f, r1 = 0.0f, r2 = 0.0f, r3 = 0.0f, r4 = 0.0f, r5 = 0.0f, r6 = 0.0f;
    float r7 = 0.0f;
    for (int32_t p = p0; p < end; ++p) {
      const int32_t i = p * channels + c0;
      const float *g = dy + i;
      if (!mask) {
        r0 += g[0];
        r1 += g[1];
        r2 += g[2];
        r3 += g[3];
        r4 += g[4];
        r5 += g[5];
        r6 += g[6];
        r7 += g[7];
        continue;
      }
      if (tt_live(mask, i)) r0 += g[0];
      if (tt_live(mask, i + 1)) r1 += g[1];
      if (tt_live(mask, i + 2)) r2 += g[2];
      if (tt_live(mask, i + 3)) r3 += g[3];
      if (tt_live(mask, i + 4)) r4 += g[4];
      if (tt_live(mask, i + 5)) r5 += g[5];
      if (tt_live(mask, i + 6)) r6 += g[6];
      if (tt_live(mask, i + 7)) r7 += g[7];
    }
    t0 += r0;
    t1 += r1;
    t2 += r2;
    t3 += r3;
    t4 += r4;
    t5 += r5;
    t6 += r6;
    t7 += r7;
  }
  db[c0] = t0;
  db[c0 + 1] = t1;
  db[c0 + 2] = t2;
  db[c0 + 3] = t3;
  db[c0 + 4] = t4;
  db[c0 + 5] = t5;
  db[c0 + 6] = t6;
  db[c0 + 7] = t7;
}

void tt_bias_grad_f32(const float *dy, const uint8_t *mask, int32_t outer, int32_t channels,
                      float *db) {
  int32_t c = 0;
  for (; c + 8 <= channels; c += 8) bias_grad_8(dy, mask, outer, channels, c, db);
  for (; c < channels; ++c) {
    float t = 0.0f;
    for (int32_t p0 = 0; p0 < outer; p0 += TT_BIAS_GRAD_BLOCK) {
      const int32_t end = outer - p0 < TT_BIAS_GRAD_BLOCK ? outer : p0 + TT_BIAS_GRAD_BLOCK;
      float r = 0.0f;
      for (int32_t p = p0; p < end; ++p) {
        const int32_t i = p * channels + c;
        if (tt_live(mask, i)) r += dy[i];
      }
      t += r;
    }
    db[c] = t;
  }
}

/* ---- weight and bias gradients of int8 dy ---------------------------------------------------
 * The same sums in exact int32 (any order gives the same integer), each converted once:
 * gradient = (float)T * unit with unit = dy_scale * x_scale (or dy_scale for biases). The
 * positions are taken in pairs (two int8 dy times two int16 saved - x_zp: SMLAD's
 * operation). */

/* The operands of an int8-dy CONV_2D weight gradient. */
typedef struct {
  const int8_t *dy;
  const uint8_t *mask;
  int32_t n, oh, ow, co;
  const int8_t *saved;
  int32_t x_zp, h, wd, k, kh, kw;
  tt_window win;
  float unit;
} conv_weight_grad_s8;

/* dy[i] where it takes part, else 0. */
static inline int32_t live_s8(const int8_t *dy, const uint8_t *mask, int32_t i) {
  return tt_live(mask, i) ? dy[i] : 0;
}

/* out[j] = (float)t_j * unit for a block's eight exact sums: their one conversion. */
static inline void convert_8(float *out, int32_t t0, int32_t t1, int32_t t2, int32_t t3,
                             int32_t t4, int32_t t5, int32_t t6, int32_t t7, float unit) {
  out[0] = (float)t0 * unit;
  out[1] = (float)t1 * unit;
  out[2] = (float)t2 * unit;
  out[3] = (float)t3 * unit;
  out[4] = (float)t4 * unit;
  out[5] = (float)t5 * unit;
  out[6] = (float)t6 * unit;
  out[7] = (float)t7 * unit;
}

/* out[c] for c in [c0, c0 + 8) of tap (ky, kx) of output channel o: the sum over the dy
 * positions whose tap reads inside the image. */
static void conv_tap_s8_8(const conv_weight_grad_s8 *a, int32_t o, int32_t ky, int32_t kx,
                          int32_t oy0, int32_t oy1, int32_t ox0, int32_t ox1, int32_t c0,
                          float *out) {
  const tt_window v = a->win;
  const int32_t zp = a->x_zp, x_step = v.stride_w * a->k, co = a->co;
  int32_t t0 = 0, t1 = 0, t2 = 0, t3 = 0, t4 = 0, t5 = 0, t6 = 0, t7 = 0;
  for (int32_t b = 0; b < a->n; ++b)
    for (int32_t oy = oy0; oy < oy1; ++oy) {
      const int32_t iy = oy * v.stride_h + ky * v.dilation_h - v.pad_top;
      const int8_t *xp = a->saved + ((b * a->h + iy) * a->wd + ox0 * v.stride_w +
                                     kx * v.dilation_w - v.pad_left) * a->k + c0;
      int32_t i = ((b * a->oh + oy) * a->ow + ox0) * co + o;
      int32_t ox = ox0;
      for (; ox + 2 <= ox1; ox += 2, i += 2 * co, xp += 2 * x_step) {
        const int32_t g0 = live_s8(a->dy, a->mask, i), g1 = live_s8(a->dy, a->mask, i + co);
        if ((g0 | g1) == 0) continue;
        const int8_t *x1 = xp + x_step;
        t0 += g0 * (xp[0] - zp) + g1 * (x1[0] - zp);
        t1 += g0 * (xp[1] - zp) + g1 * (x1[1] - zp);
        t2 += g0 * (xp[2] - zp) + g1 * (x1[2] - zp);
        t3 += g0 * (xp[3] - zp) + g1 * (x1[3] - zp);
        t4 += g0 * (xp[4] - zp) + g1 * (x1[4] - zp);
        t5 += g0 * (xp[5] - zp) + g1 * (x1[5] - zp);
        t6 += g0 * (xp[6] - zp) + g1 * (x1[6] - zp);
        t7 += g0 * (xp[7] - zp) + g1 * (x1[7] - zp);
      }
      if (ox < ox1) {
        const int32_t g0 = live_s8(a->dy, a->mask, i);
        t0 += g0 * (xp[0] - zp);
        t1 += g0 * (xp[1] - zp);
        t2 += g0 * (xp[2] - zp);
        t3 += g0 * (xp[3] - zp);
        t4 += g0 * (xp[4] - zp);
        t5 += g0 * (xp[5] - zp);
        t6 += g0 * (xp[6] - zp);
        t7 += g0 * (xp[7] - zp);
      }
    }
  convert_8(out + c0, t0, t1, t2, t3, t4, t5, t6, t7, a->unit);
}

/* conv_tap_s8_8 for the one channel c. */
static void conv_tap_s8_1(const conv_weight_grad_s8 *a, int32_t o, int32_t ky, int32_t kx,
                          int32_t oy0, int32_t oy1, int32_t ox0, int32_t ox1, int32_t c,
                          float *out) {
  const tt_window v = a->win;
  int32_t t = 0;
  for (int32_t b = 0; b < a->n; ++b)
    for (int32_t oy = oy0; oy < oy1; ++oy) {
      const int32_t iy = oy * v.stride_h + ky * v.dilation_h - v.pad_top;
      const int8_t *xp = a->saved + ((b * a->h + iy) * a->wd + ox0 * v.stride_w +
                                     kx * v.dilation_w - v.pad_left) * a->k + c;
      int32_t i = ((b * a->oh + oy) * a->ow + ox0) * a->co + o;
      for (int32_t ox = ox0; ox < ox1; ++ox, i += a->co, xp += v.stride_w * a->k)
        t += live_s8(a->dy, a->mask, i) * (xp[0] - a->x_zp);
    }
  out[c] = (float)t * a->unit;
}

/* dw_o [kh, kw, k]: output channel o's filter gradient (shared by the separate and the fused
 * kernel). */
static void conv2d_weight_grad_channel_s8(const conv_weight_grad_s8 *args, int32_t o,
                                          float *dw_o) {
  const conv_weight_grad_s8 a = *args;
  const tt_window v = a.win;
  for (int32_t ky = 0; ky < a.kh; ++ky) {
    int32_t oy0, oy1;
    tt_out_range(ky, v.stride_h, v.dilation_h, v.pad_top, a.h, a.oh, &oy0, &oy1);
    for (int32_t kx = 0; kx < a.kw; ++kx) {
      int32_t ox0, ox1;
      tt_out_range(kx, v.stride_w, v.dilation_w, v.pad_left, a.wd, a.ow, &ox0, &ox1);
      const int32_t oy_end = ox0 < ox1 ? oy1 : oy0;
      float *out = dw_o + (ky * a.kw + kx) * a.k;
      int32_t c = 0;
      for (; c + 8 <= a.k; c += 8) conv_tap_s8_8(&a, o, ky, kx, oy0, oy_end, ox0, ox1, c, out);
      for (; c < a.k; ++c) conv_tap_s8_1(&a, o, ky, kx, oy0, oy_end, ox0, ox1, c, out);
    }
  }
}

/* Whether the DSP version takes the layer (tt_grad_dsp.h): a pointwise one, each output
 * position reading the input position it sits on. */
static int pointwise_layer(int32_t oh, int32_t ow, int32_t h, int32_t wd, int32_t kh,
                           int32_t kw, const tt_window *win) {
  return kh == 1 && kw == 1 && win->stride_h == 1 && win->stride_w == 1 &&
         win->pad_top == 0 && win->pad_left == 0 && h == oh && wd == ow;
}

int32_t tt_conv2d_weight_grad_s8_stage_bytes(int32_t n, int32_t oh, int32_t ow, int32_t co,
                                             int32_t h, int32_t wd, int32_t k, int32_t kh,
                                             int32_t kw, const tt_window *win,
                                             int32_t limit) {
  (void)n, (void)oh, (void)ow, (void)co, (void)h, (void)wd, (void)k, (void)kh, (void)kw,
      (void)win, (void)limit;
  return 0;
}

int32_t tt_conv2d_weight_update_s8_s8_stage_bytes(int32_t n, int32_t oh, int32_t ow, int32_t co,
                                                  int32_t h, int32_t wd, int32_t k, int32_t kh,
                                                  int32_t kw, const tt_window *win,
                                                  int32_t grad_stage_bytes, int32_t limit) {
  (void)co, (void)grad_stage_bytes;   /* (the staging is the whole input or none) */
  const int32_t rows = n * h * wd;
  if (!pointwise_layer(oh, ow, h, wd, kh, kw, win) || rows < 2) return 0;
  const int32_t bytes = tt_wdsp_stage_bytes(rows, k);
  return bytes - tt_wdsp_column_bytes(rows) <= TT_GRAD_DSP_WEIGHT_STAGE_BYTES &&
                 (limit <= 0 || bytes <= limit)
             ? bytes
             : 0;
}

#if TT_GRAD_DSP
/* Channels a chunk of a pointwise layer's staging in `bytes` (whole blocks of eight, the
 * chunks as even as the blocks allow), or 0 where not one block fits or the chunks'
 * draw skips would cost more than the staging saves against the direct path (the skips:
 * about 3 instructions a draw skipped, (chunks - 1) k a channel; the staging saves about
 * 1.4 a MAC, rows k a channel). */
static int32_t chunk_channels(int32_t rows, int32_t k, int32_t bytes) {
  const int32_t groups = (rows + 3) >> 2, blocks = (k + 7) >> 3;
  const int32_t fit = (bytes - tt_wdsp_column_bytes(rows)) / (64 * groups);
  if (fit < 1 || rows < 2) return 0;
  const int32_t chunks = (blocks + fit - 1) / fit;
  if (3 * (chunks - 1) > rows) return 0;
  return 8 * ((blocks + chunks - 1) / chunks);
}

static int pointwise_s8(const conv_weight_grad_s8 *a) {
  return pointwise_layer(a->oh, a->ow, a->h, a->wd, a->kh, a->kw, &a->win);
}

/* A pointwise layer whose input fits no staging: the DSP version without it, where it takes
 * the layer (up to TT_WDSP_DIRECT_ROWS positions). */
static int direct_s8(const conv_weight_grad_s8 *a) {
  const int32_t rows = a->n * a->h * a->wd;
  return pointwise_s8(a) && rows >= 2 && rows <= TT_WDSP_DIRECT_ROWS;
}

static void conv_channel_direct(const void *args, int32_t o, float *out) {
  const conv_weight_grad_s8 *a = (const conv_weight_grad_s8 *)args;
  tt_dsp_pointwise_weight_direct(a->dy, a->mask, a->n * a->h * a->wd, a->co, o, a->saved, a->k,
                                 a->x_zp, a->unit, out);
}

/* The large-map walk's buffer (tt_dsp_pointwise_weight_sums: the positions in chunks), in
 * the frame of the function that runs it, as the fused update's chunk buffer (the same
 * budget: TT_WDSP_CHUNK_BYTES). */
#define WBIG_WORDS (TT_WDSP_CHUNK_BYTES / 4)

/* The positions a chunk of the walk must at least have for a block of input channels to be
 * worth its tiles' set-up (about 30 instructions a tile and chunk against 16 MACs a pair),
 * or every position of a smaller layer. */
static int32_t wbig_min_positions(int32_t rows) { return rows < 64 ? rows : 64; }

/* Input channels a block of the walk, given `bytes` and the `per` bytes a channel of the
 * block's sums take besides the staging (the fused update's co words; 0 for the gradient,
 * whose sums are dw): all k where they fit, else the most (a multiple of 8, or 4) that still
 * leaves a chunk of wbig_min_positions; 0 where not 4 do. */
static int32_t wbig_block(int32_t rows, int32_t k, int32_t per, int32_t bytes) {
  for (int32_t cb = k;;) {
    if (tt_dsp_wbig_positions(rows, cb, bytes - per * cb - 8) >= wbig_min_positions(rows))
      return cb;
    if (cb <= 4) return 0;
    cb = cb > 8 ? ((cb - 1) & ~7) : 4;
  }
}

/* The fused update's block of input channels (its sums take co words a channel of the same
 * buffer as the chunks of positions): of k and the multiples of 8 (and 4) below it with a
 * chunk of positions at all (8 or more), the one of the fewest instructions by a count of what
 * depends on the block (kern27), where wbig_block took the widest whose chunk held 64
 * positions. Per block and chunk: about 25 instructions a tile (two outputs, four inputs)
 * besides its pairs, 60 a group of four outputs (its dy staging's call and the tiles' set-up);
 * per block: its dy columns staged again, 1.5 an element; from two blocks on the stream's
 * skips, about 4 a draw over one pass of the weights. Measured against wbig_block's choice
 * (mcu_grad_dsp.py, QEMU instructions): 16->32 @24x24 blocks of 8 at 112 positions 72.5 K
 * modelled, one of 16 at 40 58.8 K, measured -14.1 K; 32->16 @32x32 blocks 16 + 16 at 64
 * against 24 + 8 at 40, modelled +7.4 K, measured +11.5 K. Only the instructions depend on
 * the block: every block gives the same bits. */
static int32_t wbig_block_fused(int32_t rows, int32_t k, int32_t co, int32_t bytes) {
  int32_t best = 0;
  int64_t best_cost = 0;
  for (int32_t cb = k; cb >= 4; cb = cb > 8 ? ((cb - 1) & ~7) : cb - 4) {
    const int32_t blocks = (k + cb - 1) / cb;
    /* dy's staging alone, which only grows as the blocks shrink, already costs more */
    if (best > 0 && blocks * (int64_t)(3 * rows * co / 2) >= best_cost) break;
    /* from three blocks on update_pointwise keeps each channel's stream state (co words) */
    const int32_t p =
        tt_dsp_wbig_positions(rows, cb, bytes - 4 * co * cb - (blocks > 2 ? 4 * co : 0) - 8);
    if (p <= 0) continue;                  /* (else a multiple of 8, or every position) */
    const int32_t chunks = (rows + p - 1) / p;
    const int64_t tiles = (int64_t)((co + 1) >> 1) * ((cb + 3) >> 2);
    const int64_t cost = blocks * (chunks * (25 * tiles + 60 * ((co + 3) >> 2)) +
                                   3 * (int64_t)rows * co / 2) +
                         (blocks > 1 ? 4 * (int64_t)co * k : 0);
    if (best == 0 || cost < best_cost) best = cb, best_cost = cost;
  }
  return best;
}

/* The gradient of a pointwise layer of 2+ positions: where one chunk takes every position
 * (maps of 8x8 and below), the floats straight from the walk's tiles (round 22: 4x4 1.13-1.16
 * -> 0.99-1.02 a MAC, 3x3 2.2 -> 1.35, 6x6 1.12 -> 0.93, 8x8 -3%; mcu_grad_dsp.py, QEMU
 * instructions); else the walk's sums in dw's own words, block of input channels by block,
 * then converted in place. */
static __attribute__((noinline)) void weight_grad_big(const conv_weight_grad_s8 *a,
                                                      int32_t cb, float *dw) {
  tt_dsp_word mem[WBIG_WORDS] __attribute__((aligned(8)));
  const int32_t rows = a->n * a->h * a->wd, k = a->k, co = a->co;
  tt_dsp_word *const acc = (tt_dsp_word *)(void *)dw;
  if (tt_dsp_wfloat_fits(rows, co, k, cb, (int32_t)sizeof mem)) {
    /* the float mode's own block (its chunk is the exact pairs: at least cb) */
    const int32_t fb = tt_dsp_wfloat_block(rows, co, k, (int32_t)sizeof mem);
    for (int32_t c0 = 0; c0 < k; c0 += fb)
      tt_dsp_pointwise_weight_floats(a->dy, a->mask, rows, co, a->saved, k, c0,
                                     k - c0 < fb ? k - c0 : fb, a->x_zp, a->unit, dw, mem,
                                     (int32_t)sizeof mem);
    return;
  }
  tt_dsp_zero_words(acc, co * k);
  for (int32_t c0 = 0; c0 < k; c0 += cb)
    tt_dsp_pointwise_weight_sums(a->dy, a->mask, rows, co, a->saved, k, c0,
                                 k - c0 < cb ? k - c0 : cb, a->x_zp, acc + c0, k, mem,
                                 (int32_t)sizeof mem);
  tt_dsp_sums_to_floats(dw, co * k, a->unit);
}

/* The gradient of a pointwise layer of one position: its input's differences as floats once
 * (and negated, tt_dsp_pointwise_weight_row), on this frame's stack. */
static __attribute__((noinline)) void weight_grad_row(const conv_weight_grad_s8 *a, float *dw) {
  float xf[WBIG_WORDS];
  for (int32_t c = 0; c < a->k; ++c) {
    xf[c] = (float)(a->saved[c] - a->x_zp);
    xf[a->k + c] = (float)(a->x_zp - a->saved[c]);
  }
  tt_dsp_pointwise_weight_row(a->dy, a->mask, a->co, xf, a->k, a->unit, dw);
}
#endif

void tt_conv2d_weight_grad_s8(const int8_t *dy, const float *dy_scale, const uint8_t *mask,
                              int32_t n, int32_t oh, int32_t ow, int32_t co, const int8_t *saved,
                              float x_scale, int32_t x_zp, int32_t h, int32_t wd, int32_t k,
                              int32_t kh, int32_t kw, const tt_window *win, float *dw,
                              void *stage, int32_t stage_bytes) {
  const conv_weight_grad_s8 a = {dy, mask, n, oh, ow, co, saved, x_zp, h, wd, k, kh, kw,
                                 *win, *dy_scale * x_scale};
#if TT_GRAD_DSP
  /* Every pointwise layer of 2+ positions takes the large-map walk, given a staging or not:
   * since round 21 it costs less than the whole staging's channel by channel at every map
   * of the two models (mcu_grad_dsp.py, RESULTS' pwwg21: 8x8 1.08-1.11 -> 0.92-0.95 a MAC,
   * 6x6 1.32 -> 1.12, 4x4 1.61-1.62 -> 1.13-1.16, 3x3 2.87-2.92 -> 2.16-2.23; QEMU
   * instructions, not cycles). The fused update still takes
   * the staging (its walk blocks the input channels by co words each). */
  (void)stage, (void)stage_bytes;
  const int32_t cb = pointwise_s8(&a) && n * h * wd >= 2
                         ? wbig_block(n * h * wd, k, 0, 4 * WBIG_WORDS) : 0;
  if (cb > 0) {
    weight_grad_big(&a, cb, dw);
    return;
  }
  if (pointwise_s8(&a) && n * h * wd == 1 && 2 * k <= WBIG_WORDS) {
    weight_grad_row(&a, dw);
    return;
  }
  if (direct_s8(&a)) {
    for (int32_t o = 0; o < co; ++o) conv_channel_direct(&a, o, dw + o * k);
    return;
  }
#else
  (void)stage, (void)stage_bytes;
#endif
  for (int32_t o = 0; o < co; ++o) conv2d_weight_grad_channel_s8(&a, o, dw + o * kh * kw * k);
}

void tt_depthwise_conv2d_weight_grad_s8(const int8_t *dy, const float *dy_scale,
                                        const uint8_t *mask, int32_t n, int32_t oh,
                                        int32_t ow, int32_t c, int32_t m,
                                        const int8_t *saved, float x_scale, int32_t x_zp,
                                        int32_t h, int32_t wd, int32_t kh, int32_t kw,
                                        const tt_window *win, float *dw, void *stage,
                                        int32_t stage_bytes) {
  const tt_window v = *win;
  const int32_t cm = c * m;
  const float unit = *dy_scale * x_scale;
#if TT_GRAD_DSP
  if (tt_dsp_depthwise_weight_grad_s8(dy, mask, n, oh, ow, c, m, saved, x_zp, h, wd, kh, kw,
                                      win, unit, dw, stage, stage_bytes))
    return;
#else
  (void)stage, (void)stage_bytes;
#endif
  for (int32_t ky = 0; ky < kh; ++ky)
    for (int32_t kx = 0; kx < kw; ++kx) {
      int32_t oy0, oy1, ox0, ox1;
      tt_out_range(ky, v.stride_h, v.dilation_h, v.pad_top, h, oh, &oy0, &oy1);
      tt_out_range(kx, v.stride_w, v.dilation_w, v.pad_left, wd, ow, &ox0, &ox1);
      if (ox0 == ox1) oy1 = oy0;                         /* no column: no row to walk */
      float *out = dw + (ky * kw + kx) * cm;
      int32_t o = 0;
      if (m == 1)
        for (; o + 8 <= cm; o += 8) {
          int32_t t0 = 0, t1 = 0, t2 = 0, t3 = 0, t4 = 0, t5 = 0, t6 = 0, t7 = 0;
          for (int32_t b = 0; b < n; ++b)
            for (int32_t oy = oy0; oy < oy1; ++oy) {
              const int32_t iy = oy * v.stride_h + ky * v.dilation_h - v.pad_top;
              const int8_t *xp = saved + ((b * h + iy) * wd + ox0 * v.stride_w +
                                          kx * v.dilation_w - v.pad_left) * c + o;
              int32_t i = ((b * oh + oy) * ow + ox0) * cm + o;
              for (int32_t ox = ox0; ox < ox1; ++ox, i += cm, xp += v.stride_w * c) {
                t0 += live_s8(dy, mask, i) * (xp[0] - x_zp);
                t1 += live_s8(dy, mask, i + 1) * (xp[1] - x_zp);
                t2 += live_s8(dy, mask, i + 2) * (xp[2] - x_zp);
                t3 += live_s8(dy, mask, i + 3) * (xp[3] - x_zp);
                t4 += live_s8(dy, mask, i + 4) * (xp[4] - x_zp);
                t5 += live_s8(dy, mask, i + 5) * (xp[5] - x_zp);
                t6 += live_s8(dy, mask, i + 6) * (xp[6] - x_zp);
                t7 += live_s8(dy, mask, i + 7) * (xp[7] - x_zp);
              }
            }
          convert_8(out + o, t0, t1, t2, t3, t4, t5, t6, t7, unit);
        }
      for (; o < cm; ++o) {
        int32_t t = 0;
        for (int32_t b = 0; b < n; ++b)
          for (int32_t oy = oy0; oy < oy1; ++oy) {
            const int32_t iy = oy * v.stride_h + ky * v.dilation_h - v.pad_top;
            const int8_t *xp = saved + ((b * h + iy) * wd + ox0 * v.stride_w +
                                        kx * v.dilation_w - v.pad_left) * c + o / m;
            int32_t i = ((b * oh + oy) * ow + ox0) * cm + o;
            for (int32_t ox = ox0; ox < ox1; ++ox, i += cm, xp += v.stride_w * c)
              t += live_s8(dy, mask, i) * (xp[0] - x_zp);
          }
        out[o] = (float)t * unit;
      }
    }
}

/* dw_u [k]: unit u's weight gradient (shared by the separate and fused kernels). */
static void fully_connected_weight_grad_unit_s8(const int8_t *dy, const uint8_t *mask,
                                                int32_t batches, int32_t units, int32_t u,
                                                const int8_t *saved, float unit, int32_t x_zp,
                                                int32_t k, float *dw_u) {
  if (batches == 1) {            /* one sample: T = g (x - x_zp), g tested once per unit */
    const int32_t g = live_s8(dy, mask, u);
    for (int32_t j = 0; j < k; ++j) dw_u[j] = (float)(g * (saved[j] - x_zp)) * unit;
    return;
  }
  for (int32_t j = 0; j < k; ++j) {
    int32_t t = 0;
    for (int32_t b = 0; b < batches; ++b)
      t += live_s8(dy, mask, b * units + u) * (saved[b * k + j] - x_zp);
    dw_u[j] = (float)t * unit;
  }
}

void tt_fully_connected_weight_grad_s8(const int8_t *dy, const float *dy_scale, const uint8_t *mask,
                                       int32_t batches, int32_t units, const int8_t *saved,
                                       float x_scale, int32_t x_zp, int32_t k, float *dw) {
  const float unit = *dy_scale * x_scale;
  for (int32_t u = 0; u < units; ++u)
    fully_connected_weight_grad_unit_s8(dy, mask, batches, units, u, saved, unit, x_zp, k,
                                        dw + u * k);
}

void tt_bias_grad_s8(const int8_t *dy, const float *dy_scale, const uint8_t *mask, int32_t outer,
                     int32_t channels, float *db) {
  int32_t c = 0;
#if TT_GRAD_DSP
  for (; c + 8 <= channels; c += 8) {
    int32_t t[8];
    tt_dsp_bias_sums_8(dy, mask, outer, channels, c, t);
    convert_8(db + c, t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], *dy_scale);
  }
#endif
  for (; c + 8 <= channels; c += 8) {
    int32_t t0 = 0, t1 = 0, t2 = 0, t3 = 0, t4 = 0, t5 = 0, t6 = 0, t7 = 0;
    for (int32_t p = 0; p < outer; ++p) {
      const int32_t i = p * channels + c;
      t0 += live_s8(dy, mask, i);
      t1 += live_s8(dy, mask, i + 1);
      t2 += live_s8(dy, mask, i + 2);
      t3 += live_s8(dy, mask, i + 3);
      t4 += live_s8(dy, mask, i + 4);
      t5 += live_s8(dy, mask, i + 5);
      t6 += live_s8(dy, mask, i + 6);
      t7 += live_s8(dy, mask, i + 7);
    }
    convert_8(db + c, t0, t1, t2, t3, t4, t5, t6, t7, *dy_scale);
  }
  for (; c < channels; ++c) {
    int32_t t = 0;
    for (int32_t p = 0; p < outer; ++p) t += live_s8(dy, mask, p * channels + c);
    db[c] = (float)t * *dy_scale;
  }
}

/* ---- QAS SGD updates -------------------------------------------------------------------- */

/* The learning rate of this call; the step counter advances once per update-op call. Out of
 * line: inlined into each of the dozen update kernels it took 884 bytes of the M7's code
 * (tt_param_grad.o at -O2), for a few instructions a call. */
static __attribute__((noinline)) tt_sgd_call begin_update(const tt_sgd *o, tt_update_state *s,
                                                          const float *momentum) {
  tt_sgd_call c;
  c.neg_lr = -tt_learning_rate(o, s->step);
  ++s->step;
  c.momentum = o->momentum;
  c.use_momentum = o->momentum > 0.0f && momentum != 0;
  c.qas = o->qas;
  c.stochastic = o->rounding != 0;
  c.rng = s->rng;
  return c;
}

#if TT_FPV5
/* The default rule (tt_qas_weight, nan_free 0: any gradient and scale) on a row's first
 * multiple of four of its n weights w, gradients g, four at a time (tt_qas_steps4_cols,
 * tt_qas_weights4: 69 instructions a four in QEMU's count, against about 31 a weight one
 * at a time), in the row's draw order; s: the scales of the first four, then of each next
 * four `step` floats on (4: per-column scales, 0: the same four). w's words may be
 * unaligned (a depthwise row of c * m weights): LDR and STR take them on the M7. Returns
 * how many it updated. Out of line: its registers' saves once a row, not in
 * update_rows_s8's frame. */
static __attribute__((noinline)) int32_t update_fours(int8_t *w, const float *g,
                                                      const float *s, int32_t step, int32_t n,
                                                      tt_sgd_call *call) {
  tt_sgd_call c = *call;                  /* the stream in a register across w's stores */
  int32_t j = 0;
  for (; j + 4 <= n; j += 4, s += step) {
    int32_t q[4];
    tt_qas_steps4_cols(&c, q, g + j, s);
    uint32_t word;
    memcpy(&word, w + j, 4);
    word = tt_qas_weights4(word, q);
    memcpy(w + j, &word, 4);
  }
  call->rng = c.rng;
  return j;
}
#endif

/* `rows` rows of int8 weights (row stride `depth`) updated in place on their first
 * `channels` elements, row-major: the order of the RNG draws. grad and momentum (or NULL)
 * are [rows, channels]; element (r, j) has scale scales[j] when per_column, else scales[0].
 * Every weight update, separate or fused, goes through here, but the DSP pointwise one's
 * default rule, which applies tt_qas_weight itself from its sums' registers. */
static void update_rows_s8(int8_t *w, int32_t rows, int32_t depth, int32_t channels,
                           const float *scales, int per_column, const float *grad,
                           float *momentum, tt_sgd_call *c) {
  tt_sgd_call call = *c;
  const int32_t scale_step = per_column ? 1 : 0;
  const int common = call.qas && call.stochastic && !call.use_momentum;   /* the defaults */
  float unused = 0.0f;
#if TT_FPV5
  /* the defaults four weights at a time (update_fours), with the scales of a row's four
   * columns (a depthwise filter's, per channel) or the one scale four times */
  const float one[4] = {scales[0], scales[0], scales[0], scales[0]};
  const float *scales4 = per_column ? scales : one;
  const int32_t step4 = per_column ? 4 : 0;
  const int fast = 0;   /* the defaults' fewer than four of a row: the general form's code */
#else
  const int fast = common;   /* every flag a constant */
  if (common && !per_column) {
    /* the fused updates' case (one output channel's rows, its one scale): a loop of its
     * own, every flag a constant and the scale in a register (the same operations) */
    const float scale = scales[0];
    for (int32_t r = 0; r < rows; ++r) {
      int8_t *wr = w + r * depth;
      const float *gr = grad + r * channels;
      for (int32_t j = 0; j < channels; ++j) {
        wr[j] = tt_qas_weight(&call, wr[j], gr[j], scale, 0);
      }
    }
    c->rng = call.rng;
    return;
  }
#endif
  for (int32_t r = 0; r < rows; ++r) {
    int8_t *wr = w + r * depth;
    const float *gr = grad + r * channels;
    float *mr = call.use_momentum ? momentum + r * channels : 0;
    int32_t j = 0;
#if TT_FPV5
    if (common) j = update_fours(wr, gr, scales4, step4, channels, &call);
#endif
    for (; j < channels; ++j) {
      const float scale = scales[j * scale_step];
      const float v = fast ? tt_sgd_value(&call, gr[j], scale, &unused, 1, 0, 1)
                             : tt_sgd_value(&call, gr[j], scale, mr ? &mr[j] : &unused,
                                            call.qas, call.use_momentum, call.stochastic);
      wr[j] = tt_clamp_weight((int32_t)wr[j] +
                              tt_round_step_s32(tt_clamp_step(v, 256.0f), call.stochastic));
    }
  }
  c->rng = call.rng;
}

/* update_rows_s8 with the weights' rounding residual (schema: input residual, [rows,
 * channels] like grad): the float32 value of every element as there, without a draw, then
 * tt_residual_weight. Only the new head's update has one (a few thousand weights), so
 * one general loop serves every flag. */
static void update_rows_residual_s8(int8_t *w, int32_t rows, int32_t depth, int32_t channels,
                                    const float *scales, int per_column, const float *grad,
                                    float *momentum, int8_t *residual, tt_sgd_call *c) {
  tt_sgd_call call = *c;
  const int32_t scale_step = per_column ? 1 : 0;
  float unused = 0.0f;
  for (int32_t r = 0; r < rows; ++r) {
    int8_t *wr = w + r * depth, *rr = residual + r * channels;
    const float *gr = grad + r * channels;
    float *mr = call.use_momentum ? momentum + r * channels : 0;
    for (int32_t j = 0; j < channels; ++j) {
      const float v = tt_sgd_value(&call, gr[j], scales[j * scale_step],
                                   mr ? &mr[j] : &unused, call.qas, call.use_momentum, 0);
      wr[j] = tt_residual_weight(wr[j], v, &rr[j]);
    }
  }
  c->rng = call.rng;
}

/* update_rows_s8, or its residual form when the op has one. */
static void update_rows_any_s8(int8_t *w, int32_t rows, int32_t depth, int32_t channels,
                               const float *scales, int per_column, const float *grad,
                               float *momentum, int8_t *residual, tt_sgd_call *c) {
  if (residual)
    update_rows_residual_s8(w, rows, depth, channels, scales, per_column, grad, momentum,
                            residual, c);
  else
    update_rows_s8(w, rows, depth, channels, scales, per_column, grad, momentum, c);
}

/* c int32 biases updated in place, saturating; grad and momentum (or NULL) are [c]. A step
 * is clamped to 2^33 (beyond the int32 range either way); float32 values of 2^23 and more
 * are integers already. */
static void update_biases_s32(int32_t *b, int32_t c, const float *scales, const float *grad,
                              float *momentum, tt_sgd_call *call) {
  float unused = 0.0f;
  for (int32_t i = 0; i < c; ++i) {
    const float v = tt_clamp_step(tt_sgd_value(call, grad[i], scales[i],
                                               call->use_momentum ? &momentum[i] : &unused,
                                               call->qas, call->use_momentum, call->stochastic),
                                  8589934592.0f);
    int64_t q;
    if (v < 8388608.0f && v > -8388608.0f) {     /* the common case: a hardware conversion */
#if TT_FPV5
      b[i] = __qadd(b[i], tt_round_step_s32(v, call->stochastic));  /* saturating: QADD */
      continue;
#else
      q = (int64_t)b[i] + (int32_t)tt_round_step(v, call->stochastic);
#endif
    } else {
      q = (int64_t)b[i] + (int64_t)v;
    }
    b[i] = (int32_t)(q < INT32_MIN ? INT32_MIN : q > INT32_MAX ? INT32_MAX : q);
  }
}

/* The RNG state back into the op's state at the end of a call. */
static void end_update(const tt_sgd_call *c, tt_update_state *s) { s->rng = c->rng; }

void tt_update_weight_residual_s8(int8_t *w, const int32_t *dims, int32_t rank, int32_t axis,
                                  const float *scales, int32_t n_scales, const float *grad,
                                  int32_t channels, float *momentum_buf, int8_t *residual,
                                  const tt_sgd *o, tt_update_state *s) {
  tt_sgd_call c = begin_update(o, s, momentum_buf);
  const int32_t depth = dims[rank - 1];
  int32_t outer = 1;
  for (int32_t d = 0; d < rank - 1; ++d) outer *= dims[d];
  if (n_scales == 1 || axis != 0) {
    update_rows_any_s8(w, outer, depth, channels, scales, n_scales > 1, grad, momentum_buf,
                       residual, &c);
  } else {
    /* per-channel scales along the first axis: one run of rows per output channel */
    const int32_t first = rank > 1 ? dims[0] : 1;
    const int32_t rows = outer / first;
    for (int32_t i = 0; i < first; ++i) {
      const int32_t e = i * rows * channels;
      update_rows_any_s8(w + i * rows * depth, rows, depth, channels, &scales[i], 0, grad + e,
                         momentum_buf ? momentum_buf + e : 0, residual ? residual + e : 0, &c);
    }
  }
  end_update(&c, s);
}

void tt_update_weight_s8(int8_t *w, const int32_t *dims, int32_t rank, int32_t axis,
                         const float *scales, int32_t n_scales, const float *grad,
                         int32_t channels, float *momentum_buf, const tt_sgd *o,
                         tt_update_state *s) {
  tt_update_weight_residual_s8(w, dims, rank, axis, scales, n_scales, grad, channels,
                               momentum_buf, 0, o, s);
}

void tt_update_bias_s32(int32_t *b, int32_t c, const float *scales, const float *grad,
                        float *momentum_buf, const tt_sgd *o, tt_update_state *s) {
  tt_sgd_call call = begin_update(o, s, momentum_buf);
  update_biases_s32(b, c, scales, grad, momentum_buf, &call);
  end_update(&call, s);
}

/* ---- the batch (gradient accumulation) ----------------------------------------------------- */

/* Between Invokes s->step counts training Invokes (n); during the update of a batch's last
 * Invoke it holds the updates made before (n / batch), what the schedule reads, and the
 * update kernel's own increment plus tt_batch_end_f32's multiplication make it n + 1 again
 * ((n / batch + 1) * batch = n + 1 when n + 1 is a multiple of batch). */
int32_t tt_batch_accumulate_f32(float *acc, const float *g, int32_t n, int32_t batch,
                                tt_update_state *s) {
  for (int32_t i = 0; i < n; ++i) acc[i] = acc[i] + g[i];
  const int32_t step = s->step;
  if ((step + 1) % batch != 0) {
    s->step = step + 1;
    return 0;
  }
  const float r = 1.0f / (float)batch;
  for (int32_t i = 0; i < n; ++i) acc[i] = acc[i] * r;
  s->step = step / batch;
  return 1;
}

void tt_batch_end_f32(float *acc, int32_t n, int32_t batch, tt_update_state *s) {
  memset(acc, 0, (size_t)n * sizeof *acc);     /* +0.0f: all bits zero */
  s->step *= batch;
}

/* ---- fused gradient + update ------------------------------------------------------------ */

/* One output channel's (or unit's) weight gradient into `out`, from the kernel's operands. */
typedef void (*channel_grad)(const void *args, int32_t o, float *out);

/* The fused update of `channels` filters, each `rows` rows of `depth` int8 weights trained on
 * their first k: one filter's gradient at a time into scratch, updated at once. */
static void update_channels_residual(channel_grad grad, const void *args, int32_t channels,
                                     int8_t *w, int32_t rows, int32_t depth, int32_t k,
                                     const float *w_scales, int32_t n_scales, float *momentum,
                                     int8_t *residual, const tt_sgd *o, tt_update_state *s,
                                     float *scratch) {
  tt_sgd_call call = begin_update(o, s, momentum);
  for (int32_t c = 0; c < channels; ++c) {
    grad(args, c, scratch);
    update_rows_any_s8(w + c * rows * depth, rows, depth, k, &w_scales[n_scales > 1 ? c : 0],
                       0, scratch, momentum ? momentum + c * rows * k : 0,
                       residual ? residual + c * rows * k : 0, &call);
  }
  end_update(&call, s);
}

/* The same without a residual (the conv updates', which never have one). */
static void update_channels(channel_grad grad, const void *args, int32_t channels, int8_t *w,
                            int32_t rows, int32_t depth, int32_t k, const float *w_scales,
                            int32_t n_scales, float *momentum, const tt_sgd *o,
                            tt_update_state *s, float *scratch) {
  update_channels_residual(grad, args, channels, w, rows, depth, k, w_scales, n_scales,
                           momentum, 0, o, s, scratch);
}

static void conv_channel(const void *args, int32_t o, float *out) {
  conv2d_weight_grad_channel((const conv_weight_grad_args *)args, o, out);
}

static void conv_channel_s8(const void *args, int32_t o, float *out) {
  conv2d_weight_grad_channel_s8((const conv_weight_grad_s8 *)args, o, out);
}

/* The operands of a fully connected weight gradient (float32 or int8 dy). */
typedef struct {
  const void *dy;
  const uint8_t *mask;
  int32_t batches, units;
  const int8_t *saved;
  float scale;                  /* x_scale, or dy_scale * x_scale for int8 dy */
  int32_t x_zp, k;
} fc_grad_args;

static void fc_unit(const void *args, int32_t u, float *out) {
  const fc_grad_args *a = (const fc_grad_args *)args;
  fully_connected_weight_grad_unit((const float *)a->dy, a->mask, a->batches, a->units, u,
                                   a->saved, a->scale, a->x_zp, a->k, out);
}

static void fc_unit_s8(const void *args, int32_t u, float *out) {
  const fc_grad_args *a = (const fc_grad_args *)args;
  fully_connected_weight_grad_unit_s8((const int8_t *)a->dy, a->mask, a->batches, a->units, u,
                                      a->saved, a->scale, a->x_zp, a->k, out);
}

void tt_conv2d_weight_update_s8(const float *dy, const uint8_t *mask, int32_t n, int32_t oh,
                                int32_t ow, int32_t co, const int8_t *saved, float x_scale,
                                int32_t x_zp, int32_t h, int32_t wd, int32_t k, int8_t *w,
                                int32_t kh, int32_t kw, int32_t ci, const float *w_scales,
                                int32_t n_scales, const tt_window *win, float *momentum,
                                const tt_sgd *o, tt_update_state *s, float *scratch) {
  const conv_weight_grad_args a = {dy, mask, n, oh, ow, co, saved, x_scale, x_zp,
                                   h, wd, k, kh, kw, win};
  /* one output channel's filter: kh * kw rows of ci */
  update_channels(conv_channel, &a, co, w, kh * kw, ci, k, w_scales, n_scales, momentum, o, s,
                  scratch);
}

void tt_depthwise_conv2d_weight_update_s8(const float *dy, const uint8_t *mask, int32_t n,
                                          int32_t oh, int32_t ow, int32_t c, int32_t m,
                                          const int8_t *saved, float x_scale, int32_t x_zp,
                                          int32_t h, int32_t wd, int8_t *w, int32_t kh,
                                          int32_t kw, const float *w_scales, int32_t n_scales,
                                          const tt_window *win, float *momentum,
                                          const tt_sgd *o, tt_update_state *s, float *scratch) {
  /* the scales run along the last axis, so no output channel is a contiguous run of rows;
   * the gradient is small (kh * kw * c * m) and is computed whole */
  tt_sgd_call call = begin_update(o, s, momentum);
  tt_depthwise_conv2d_weight_grad_f32(dy, mask, n, oh, ow, c, m, saved, x_scale, x_zp, h, wd,
                                      kh, kw, win, scratch);
  update_rows_s8(w, kh * kw, c * m, c * m, w_scales, n_scales > 1, scratch, momentum, &call);
  end_update(&call, s);
}

void tt_fully_connected_weight_update_residual_s8(
    const float *dy, const uint8_t *mask, int32_t batches, int32_t units, const int8_t *saved,
    float x_scale, int32_t x_zp, int32_t k, int8_t *w, int32_t depth, const float *w_scales,
    int32_t n_scales, float *momentum, int8_t *residual, const tt_sgd *o, tt_update_state *s,
    float *scratch) {
  const fc_grad_args a = {dy, mask, batches, units, saved, x_scale, x_zp, k};
  update_channels_residual(fc_unit, &a, units, w, 1, depth, k, w_scales, n_scales, momentum,
                           residual, o, s, scratch);
}

void tt_fully_connected_weight_update_s8(const float *dy, const uint8_t *mask,
                                         int32_t batches, int32_t units, const int8_t *saved,
                                         float x_scale, int32_t x_zp, int32_t k, int8_t *w,
                                         int32_t depth, const float *w_scales,
                                         int32_t n_scales, float *momentum, const tt_sgd *o,
                                         tt_update_state *s, float *scratch) {
  tt_fully_connected_weight_update_residual_s8(dy, mask, batches, units, saved, x_scale, x_zp,
                                               k, w, depth, w_scales, n_scales, momentum, 0, o,
                                               s, scratch);
}

void tt_bias_update_s32(const float *dy, const uint8_t *mask, int32_t outer, int32_t channels,
                        int32_t *b, const float *b_scales, float *momentum, const tt_sgd *o,
                        tt_update_state *s, float *scratch) {
  tt_sgd_call call = begin_update(o, s, momentum);
  tt_bias_grad_f32(dy, mask, outer, channels, scratch);
  update_biases_s32(b, channels, b_scales, scratch, momentum, &call);
  end_update(&call, s);
}

/* The fused updates of int8 dy: the int8-dy gradient kernels' values, then the same update
 * path, so they equal tt_*_weight_grad_s8 followed by tt_update_weight_s8 bit for bit. */

#if TT_GRAD_DSP
/* How update_pointwise makes a block's sums T (dw = (float)T unit) of every output channel. */
enum {
  PW_STAGED,    /* from a staging: the caller's of the whole input, else a chunk's in `mem` */
  PW_BIG,       /* the large-map walk's, in `mem` before the walk's own words */
  PW_ROW        /* one position: T = g_o (x_c - x_zp), the differences once in `mem` */
};

/* The fused update of a pointwise layer, the sums of `sums` (above) of blocks of `per` input
 * channels (all k but for PW_BIG and a chunked staging), block by block, every output
 * channel for each: the weights of channel o, inputs c0 .. c0 + n - 1 take draws o k + c0 ..
 * of the call's stream, the draws of the unstaged order (update_channels: output channel by
 * output channel), by skipping the stream ahead between them (tt_gdsp_skip). The default
 * rule's runs take the channels they can from the sums; the others (momentum, nearest
 * rounding, no QAS, values that could be NaN) go through scratch as update_channels'. `whole`
 * is the caller's staging of the whole input, or NULL; `mem` (TT_WDSP_CHUNK_BYTES, 8-byte
 * aligned) is update_pointwise_mem's, NULL with `whole`. */
static __attribute__((noinline)) void update_pointwise(
    const conv_weight_grad_s8 *a, int sums, int32_t per, tt_wdsp_stage *whole,
    tt_dsp_word *mem, int8_t *w, int32_t ci, const float *w_scales, int32_t n_scales,
    float *momentum, const tt_sgd *o, tt_update_state *s, float *scratch) {
  int32_t *const t = (int32_t *)(void *)mem;  /* PW_BIG's sums [co, n], PW_ROW's xz [k] */
  const int32_t rows = a->n * a->h * a->wd, k = a->k, co = a->co;
  if (sums == PW_ROW) {
    const int8_t *const x = a->saved;         /* locals: t's stores may alias *a's int8 */
    const int32_t zp = a->x_zp;
    for (int32_t c = 0; c < k; ++c) t[c] = x[c] - zp;
  }
  tt_sgd_call call = begin_update(o, s, momentum);
  const int rule = call.qas && call.stochastic && !call.use_momentum;     /* the defaults */
  const uint32_t first = call.rng;                    /* before draw 0: (0, 0) */
  uint32_t end = first;
  /* Each output channel's state at its block's first draw (c, c0), kept block to block in
   * mem's last co words where the block leaves them: k draws stepped a channel in all, in
   * place of k - n a channel and block (3.8 instructions a draw and a call a skip; MCUNet's
   * 160->40 @8x8 in 7 blocks skipped 144 K of its 718 K). The large-map walk's chunks of
   * positions may shrink for them: only from three blocks on (16->48 @32x32, 2 blocks,
   * 11 -> 12 chunks: +8 K), and since kern27 wherever a chunk is left (wbig_block_fused
   * counts the reserve; before, only where 64 positions were: MCUNet's 120->24 @16x16 in
   * blocks of 16 at 48 positions skipped about 76 K) */
  uint32_t *states = 0;
  if (call.stochastic &&
      (sums == PW_STAGED
           ? per < k && tt_wdsp_stage_bytes(rows, per) <= 4 * (WBIG_WORDS - co)
           : 2 * per < k && tt_dsp_wbig_positions(rows, per,
                                                   4 * (WBIG_WORDS - co * per - co) - 8) > 0)) {
    states = mem + WBIG_WORDS - co;
    states[0] = first;
    for (int32_t c = 1; c < co; ++c) states[c] = tt_gdsp_skip(states[c - 1], k);
  }
  for (int32_t c0 = 0; c0 < k; c0 += per) {
    const int32_t n = k - c0 < per ? k - c0 : per;
    tt_wdsp_stage st;
    if (whole) st = *whole;
    else if (sums == PW_STAGED) {
      tt_dsp_pointwise_weight_stage_part(a->saved + c0, rows, k, n, a->x_zp, mem,
                                         4 * (WBIG_WORDS - (states ? co : 0)), &st);
    } else if (sums == PW_BIG) {
      memset(mem, 0, (size_t)co * (size_t)n * 4u);
      tt_dsp_pointwise_weight_sums(a->dy, a->mask, rows, co, a->saved, k, c0, n, a->x_zp, mem,
                                   n, mem + co * n,
                                   4 * (WBIG_WORDS - co * n - (states ? co : 0)));
    }
    if (!states) call.rng = call.stochastic ? tt_gdsp_skip(first, c0) : first;  /* (0, c0) */
    for (int32_t c = 0; c < co;) {
      /* runs of the default rule, the channels it cannot take one at a time between */
      if (rule)
        c = sums == PW_STAGED
                ? tt_dsp_pointwise_weight_update_run(&st, a->dy, a->mask, rows, co, c, n,
                                                     a->x_zp, a->unit, w + c0, ci, w_scales,
                                                     n_scales > 1, k - n, states, &call)
            : sums == PW_BIG
                ? tt_dsp_pointwise_weight_update_sums(mem, n, co, c, a->unit, w + c0, ci,
                                                      w_scales, n_scales > 1, k - n, states,
                                                      &call)
                : tt_dsp_pointwise_weight_update_row(a->dy, a->mask, co, c, t, k, a->unit, w,
                                                     ci, w_scales, n_scales > 1, &call);
      if (c == co) break;
      if (sums == PW_STAGED) {
        tt_dsp_pointwise_weight_channel(&st, a->dy, a->mask, rows, co, c, n, a->x_zp, a->unit,
                                        scratch);
      } else {      /* T = g t[j]: PW_BIG's sums of channel c (g 1), PW_ROW's g_o xz */
        const int32_t g = sums == PW_ROW ? live_s8(a->dy, a->mask, c) : 1;
        const int32_t *tc = sums == PW_ROW ? t : t + c * n;
        for (int32_t j = 0; j < n; ++j) scratch[j] = (float)(g * tc[j]) * a->unit;
      }
      const float scale = w_scales[n_scales > 1 ? c : 0];
      if (states) call.rng = states[c];
      update_rows_s8(w + c * ci + c0, 1, ci, n, &scale, 0, scratch,
                     momentum ? momentum + c * k + c0 : 0, &call);
      if (states)
        states[c] = call.rng;
      else if (c + 1 < co && call.stochastic)
        call.rng = tt_gdsp_skip(call.rng, k - n);                        /* (c + 1, c0) */
      ++c;
    }
    end = call.rng;               /* the last block's last channel: the call's end state */
  }
  call.rng = end;
  end_update(&call, s);
}

/* update_pointwise with its buffer (TT_WDSP_CHUNK_BYTES) in this frame: its caller asks
 * chunk_channels, wbig_block or for one position first, so no call that takes none of them
 * (nor one staged whole by the caller) puts it on the stack. */
static __attribute__((noinline)) void update_pointwise_mem(
    const conv_weight_grad_s8 *a, int sums, int32_t per, int8_t *w, int32_t ci,
    const float *w_scales, int32_t n_scales, float *momentum, const tt_sgd *o,
    tt_update_state *s, float *scratch) {
  tt_dsp_word mem[WBIG_WORDS] __attribute__((aligned(8)));
  update_pointwise(a, sums, per, 0, mem, w, ci, w_scales, n_scales, momentum, o, s, scratch);
}
#endif

void tt_conv2d_weight_update_s8_s8(const int8_t *dy, const float *dy_scale, const uint8_t *mask,
                                   int32_t n, int32_t oh, int32_t ow, int32_t co,
                                   const int8_t *saved, float x_scale, int32_t x_zp, int32_t h,
                                   int32_t wd, int32_t k, int8_t *w, int32_t kh, int32_t kw,
                                   int32_t ci, const float *w_scales, int32_t n_scales,
                                   const tt_window *win, float *momentum, const tt_sgd *o,
                                   tt_update_state *s, float *scratch, void *stage,
                                   int32_t stage_bytes) {
  const conv_weight_grad_s8 a = {dy, mask, n, oh, ow, co, saved, x_zp, h, wd, k, kh, kw,
                                 *win, *dy_scale * x_scale};
#if TT_GRAD_DSP
  /* the input staged whole in the caller's stage, else in chunks, else the large-map walk's
   * blocks, else one position */
  const int32_t rows = n * h * wd;
  tt_wdsp_stage st = {0, 0, -1};
  if (pointwise_s8(&a) && tt_dsp_pointwise_weight_stage(saved, rows, k, x_zp, stage,
                                                        stage_bytes, &st)) {
    update_pointwise(&a, PW_STAGED, k, &st, 0, w, ci, w_scales, n_scales, momentum, o, s,
                     scratch);
    return;
  }
  int sums = PW_STAGED;
  int32_t per = pointwise_s8(&a) ? chunk_channels(rows, k, 4 * WBIG_WORDS) : 0;
  if (per == 0 && pointwise_s8(&a) && rows >= 2) {
    sums = PW_BIG;
    per = wbig_block_fused(rows, k, co, 4 * WBIG_WORDS);
  }
  if (per == 0 && pointwise_s8(&a) && rows == 1 && k <= WBIG_WORDS) sums = PW_ROW, per = k;
  if (per > 0) {
    update_pointwise_mem(&a, sums, per, w, ci, w_scales, n_scales, momentum, o, s, scratch);
    return;
  }
  if (direct_s8(&a)) {
    update_channels(conv_channel_direct, &a, co, w, 1, ci, k, w_scales, n_scales, momentum, o,
                    s, scratch);
    return;
  }
#else
  (void)stage, (void)stage_bytes;
#endif
  update_channels(conv_channel_s8, &a, co, w, kh * kw, ci, k, w_scales, n_scales, momentum, o,
                  s, scratch);
}

void tt_depthwise_conv2d_weight_update_s8_s8(const int8_t *dy, const float *dy_scale,
                                             const uint8_t *mask, int32_t n, int32_t oh,
                                             int32_t ow, int32_t c, int32_t m,
                                             const int8_t *saved, float x_scale, int32_t x_zp,
                                             int32_t h, int32_t wd, int8_t *w, int32_t kh,
                                             int32_t kw, const float *w_scales,
                                             int32_t n_scales, const tt_window *win,
                                             float *momentum, const tt_sgd *o,
                                             tt_update_state *s, float *scratch,
                                             void *stage, int32_t stage_bytes) {
  tt_sgd_call call = begin_update(o, s, momentum);
  tt_depthwise_conv2d_weight_grad_s8(dy, dy_scale, mask, n, oh, ow, c, m, saved, x_scale, x_zp,
                                     h, wd, kh, kw, win, scratch, stage, stage_bytes);
  update_rows_s8(w, kh * kw, c * m, c * m, w_scales, n_scales > 1, scratch, momentum, &call);
  end_update(&call, s);
}

void tt_fully_connected_weight_update_residual_s8_s8(
    const int8_t *dy, const float *dy_scale, const uint8_t *mask, int32_t batches,
    int32_t units, const int8_t *saved, float x_scale, int32_t x_zp, int32_t k, int8_t *w,
    int32_t depth, const float *w_scales, int32_t n_scales, float *momentum, int8_t *residual,
    const tt_sgd *o, tt_update_state *s, float *scratch) {
  const fc_grad_args a = {dy, mask, batches, units, saved, *dy_scale * x_scale, x_zp, k};
  update_channels_residual(fc_unit_s8, &a, units, w, 1, depth, k, w_scales, n_scales,
                           momentum, residual, o, s, scratch);
}

void tt_fully_connected_weight_update_s8_s8(const int8_t *dy, const float *dy_scale,
                                            const uint8_t *mask, int32_t batches, int32_t units,
                                            const int8_t *saved, float x_scale, int32_t x_zp,
                                            int32_t k, int8_t *w, int32_t depth,
                                            const float *w_scales, int32_t n_scales,
                                            float *momentum, const tt_sgd *o,
                                            tt_update_state *s, float *scratch) {
  tt_fully_connected_weight_update_residual_s8_s8(dy, dy_scale, mask, batches, units, saved,
                                                  x_scale, x_zp, k, w, depth, w_scales,
                                                  n_scales, momentum, 0, o, s, scratch);
}

void tt_bias_update_s32_s8(const int8_t *dy, const float *dy_scale, const uint8_t *mask,
                           int32_t outer, int32_t channels, int32_t *b, const float *b_scales,
                           float *momentum, const tt_sgd *o, tt_update_state *s,
                           float *scratch) {
  tt_sgd_call call = begin_update(o, s, momentum);
#if TT_GRAD_DSP && TT_FPV5
  if (call.qas && call.stochastic && !call.use_momentum && (channels & 7) == 0) {
    tt_dsp_bias_update_default(dy, *dy_scale, mask, outer, channels, b, b_scales, &call);
    end_update(&call, s);
    return;
  }
#endif
  tt_bias_grad_s8(dy, dy_scale, mask, outer, channels, scratch);
  update_biases_s32(b, channels, b_scales, scratch, momentum, &call);
  end_update(&call, s);
}
