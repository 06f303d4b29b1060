/* DEPTHWISE_CONV_2D, int8, out of place and in place (include/tt_forward.h).
 * Arithmetic is TFLM's DepthwiseConvPerChannel: acc = bias + sum over in-image taps of
 * w * (x + input_offset) in int32, then requantized per output channel. Both kernels of
 * depth multiplier 1 compute through dw_row, so in place and out of place are the same
 * arithmetic; only where the rows go differs. */
#include <stddef.h>
#include <string.h>

#include "tt_forward.h"
#include "tt_dw_pack.h"
#include "tt_fwd_internal.h"
#if TT_FWD_DSP
#include "tt_fwd_dsp.h"
#endif

/* One output element of any depth multiplier: output channel oc (input channel c = oc / m,
 * cm = c_in * m channels) at the window origin (iy0, ix0) of batch b. */
static inline int32_t tap_sum(const tt_fwd_conv_params *p, const tt_fwd_dims *in,
                              const int8_t *input, int32_t b, int32_t c, const int8_t *filter,
                              int32_t cm, int32_t oc, int32_t iy0, int32_t ky0, int32_t ky1,
                              int32_t ix0, int32_t kx0, int32_t kx1, int32_t kw) {
  int32_t acc = 0;
  for (int32_t ky = ky0; ky < ky1; ++ky) {
    const int8_t *x = input + ((b * in->h + iy0 + ky * p->dilation_h) * in->w + ix0 +
                               kx0 * p->dilation_w) * in->c + c;
    const int8_t *w = filter + (ky * kw + kx0) * cm + oc;
    for (int32_t kx = 0; kx < kx1 - kx0; ++kx)
      acc += (x[kx * p->dilation_w * in->c] + p->input_offset) * w[kx * cm];
  }
  return acc;
}

/* A depth-multiplier-1 layer, as the row routine reads it. kh x kw are the taps computed,
 * the filter's leading rows and columns: fewer than it holds (fw taps a row) where its
 * trailing ones are all zero (dw_trim). */
typedef struct {
  const tt_fwd_conv_params *p;
  const int32_t *multiplier;
  const int8_t *shift;  /* int8: the model stores it so (flash) */
  const int32_t *bias;
  const tt_fwd_dims *in, *out;
  const int8_t *input, *filter;
  int32_t kh, kw, fw;
} dw_layer;

/* Drops L's trailing filter rows and columns whose taps are zero in every channel (cm of
 * them): the importer grows the reference's 3x3/2 (7x7/2) kernels to 4x4 (8x8) with a zero
 * last row and column to express its padding as SAME. A zero tap adds w (x + input_offset)
 * = 0 to TFLM's sum whether its input is in the image or not, and the leading pads stay, so
 * the smaller window gives the same bits; it takes the 3x3 kernels' road and stages and
 * multiplies 9 taps, not 16. Checked on the filter at every call: a trained filter's grown
 * taps need not stay zero. The DSP build's only: the portable one computes every tap, the
 * reference its bits are checked against. */
#if TT_FWD_DSP
static void dw_trim(dw_layer *L, int32_t cm) {
  const int32_t row = L->fw * cm;
  while (L->kh > 1 && tt_fwd_zero_runs(L->filter + (L->kh - 1) * row, L->kw, cm, cm)) --L->kh;
  while (L->kw > 1 && tt_fwd_zero_runs(L->filter + (L->kw - 1) * cm, L->kh, row, cm)) --L->kw;
}
#endif

/* Output row oy of batch b for channels [c, c + g), g <= 4, element (ox, j) written to
 * out[ox * stride + j]. A window wholly inside the image sums w * x and starts from
 * bias + input_offset * (sum of the channel's weights), the same integer as TFLM's
 * sum of w * (x + input_offset) but one add per tap cheaper; border windows add the offset
 * per tap, over their in-image taps only. */
static void dw_row(const dw_layer *L, int32_t b, int32_t oy, int32_t c, int32_t g, int8_t *out,
                   int32_t stride) {
  const tt_fwd_conv_params *p = L->p;
  const int32_t C = L->in->c, kh = L->kh, kw = L->kw, off = p->input_offset;
  const int32_t tap_step = p->dilation_w * C, row_step = p->dilation_h * L->in->w * C;
  const int32_t out_off = p->output_offset, lo = p->act_min, hi = p->act_max;
  const int32_t *mult = L->multiplier + c;
  const int8_t *shift = L->shift + c;
  int32_t bias[4] = {0, 0, 0, 0}, folded[4] = {0, 0, 0, 0};
  for (int32_t j = 0; j < g; ++j) {
    int32_t sum = 0;
    for (int32_t ky = 0; ky < kh; ++ky)
      for (int32_t kx = 0; kx < kw; ++kx) sum += L->filter[(ky * L->fw + kx) * C + c + j];
    if (L->bias) bias[j] = L->bias[c + j];
    folded[j] = bias[j] + off * sum;
  }
  const int32_t iy0 = oy * p->stride_h - p->pad_top;
  int32_t ky0, ky1;
  tt_fwd_tap_range(iy0, p->dilation_h, kh, L->in->h, &ky0, &ky1);
  const int32_t rows = ky1 - ky0;
  /* offsets of the first in-image tap row; pointers are formed only when a tap exists */
  const int32_t x_row = (b * L->in->h + iy0 + ky0 * p->dilation_h) * L->in->w * C + c;
  const int32_t w_row = ky0 * L->fw * C + c, w_step = L->fw * C;
  for (int32_t ox = 0; ox < L->out->w; ++ox, out += stride) {
    const int32_t ix0 = ox * p->stride_w - p->pad_left;
    int32_t kx0, kx1;
    tt_fwd_tap_range(ix0, p->dilation_w, kw, L->in->w, &kx0, &kx1);
    const int32_t taps = kx1 - kx0;
    const int full = rows == kh && taps == kw;
    const int32_t *start = full ? folded : bias;
    if (rows <= 0 || taps <= 0) {
      for (int32_t j = 0; j < g; ++j)
        out[j] = tt_fwd_requantize(start[j], mult[j], shift[j], out_off, lo, hi);
      continue;
    }
    const int8_t *x = L->input + x_row + (ix0 + kx0 * p->dilation_w) * C;
    const int8_t *w = L->filter + w_row + kx0 * C;
    if (g == 4) {
      int32_t a0 = start[0], a1 = start[1], a2 = start[2], a3 = start[3];
      const int32_t o = full ? 0 : off;
      for (int32_t r = 0; r < rows; ++r, x += row_step, w += w_step) {
        const int8_t *xt = x, *wt = w;
        if (full) {
          for (int32_t t = 0; t < taps; ++t, xt += tap_step, wt += C) {
            a0 += xt[0] * wt[0];
            a1 += xt[1] * wt[1];
            a2 += xt[2] * wt[2];
            a3 += xt[3] * wt[3];
          }
        } else {
          for (int32_t t = 0; t < taps; ++t, xt += tap_step, wt += C) {
            a0 += (xt[0] + o) * wt[0];
            a1 += (xt[1] + o) * wt[1];
            a2 += (xt[2] + o) * wt[2];
            a3 += (xt[3] + o) * wt[3];
          }
        }
      }
      out[0] = tt_fwd_requantize(a0, mult[0], shift[0], out_off, lo, hi);
      out[1] = tt_fwd_requantize(a1, mult[1], shift[1], out_off, lo, hi);
      out[2] = tt_fwd_requantize(a2, mult[2], shift[2], out_off, lo, hi);
      out[3] = tt_fwd_requantize(a3, mult[3], shift[3], out_off, lo, hi);
    } else {
      const int32_t o = full ? 0 : off;
      for (int32_t j = 0; j < g; ++j) {
        int32_t acc = start[j];
        for (int32_t r = 0; r < rows; ++r)
          for (int32_t t = 0; t < taps; ++t)
            acc += (x[r * row_step + t * tap_step + j] + o) * w[r * w_step + t * C + j];
        out[j] = tt_fwd_requantize(acc, mult[j], shift[j], out_off, lo, hi);
      }
    }
  }
}

/* The DSP versions' staging buffer (tt_fwd_dsp.h's default where that header is not
 * included): the portable build needs its size too, as a packed layer (tt_dw_pack.h) is as
 * large on every target. */
#ifndef TT_FWD_DSP_STAGE_BYTES
#define TT_FWD_DSP_STAGE_BYTES 2048
#endif
#define DW_DSP_MAX_KH 8            /* the paper's models: 3, 5, 7; imported: 4, 8 */

/* Whether the DSP version of depth multiplier 1 (or 4k) takes a layer: its packed filter (kw
 * columns of *wc words) and the columns of one window leave *free words of the staging
 * buffer, enough for a chunk of one output (its columns and 4 sums). */
static int dw_dsp_fits(const tt_fwd_conv_params *p, int32_t kh, int32_t kw, int32_t *wc,
                       int32_t *free) {
  const int32_t sw = p->stride_w, span = (kw - 1) * p->dilation_w + 1;
  *wc = 4 * (kh >> 1) + 2 * (kh & 1);
  *free = TT_FWD_DSP_STAGE_BYTES / 4 - kw * *wc - span * *wc + sw * *wc;
  return kh <= DW_DSP_MAX_KH && *free >= sw * *wc + 4;
}

#if TT_FWD_DSP
/* --- DSP: depth multiplier 1 --------------------------------------------------------------
 * Four channels, one output row at a time, as dw_row. The window's rows are taken in pairs
 * (2q, 2q + 1): staged per input column, channel j's two taps (x + input_offset) make one
 * int16 pair, and one SMLAD multiplies it with the filter's matching pair, packed once per
 * channel group. An odd last row is staged as [x0, x2], [x1, x3] and meets SMLABB/SMLATT.
 * A column is wc = 4 (kh / 2) + 2 (kh % 2) words; the columns an output row's windows cover
 * are staged once (in chunks that fit the band) and shared by the kw / stride_w windows that
 * read each. Taps outside the image are staged as zeros (TFLM skips them: the same sum).
 * 3x3 windows of four channels requantized by the one-multiply form (the paper's models'
 * depthwise layers) take a shorter road: dw3_rows stages the rows in assembly
 * (tt_dsp_dw3_stage) and sums, requantizes and stores pairs of windows in assembly
 * (tt_dsp_dw3x3_s1/_s2), their sums never in memory. */
/* The columns of chunk [ox0, ox0 + n): [ix, ix + cols), of which [a, a + mid) are inside
 * the image, `left` zero columns before them, the rest zeros after. */
typedef struct {
  int32_t ix, cols, a, mid, left;
} dw_chunk;


typedef struct {
  tt_dsp_word *w, *band;      /* packed filter (kw * wc words), staged columns */
  int32_t *sums;              /* a chunk's accumulators, [4][chunk] */
  int32_t wc, chunk;          /* words per column, outputs per chunk */
  int32_t whole;              /* 1: one chunk spans the row, its zero columns staged once */
  int32_t m;                  /* depth multiplier: 1, or a multiple of 4 (the group's four
                                 output channels then read one input channel) */
  int32_t bias[4];
  tt_dsp_rq_params q[4];
  int fast, full;
  int pairs3;                 /* 3x3 windows through tt_dsp_dw3x3_* (no sums in memory) */
  dw_chunk row;               /* a whole row's columns (whole) */
  int8_t *tail;               /* the buffer past a whole row's band: tail_bytes, else 0 */
  int32_t tail_bytes;
  uint32_t slow;              /* bit j: channel j of a fast group requantized in C
                                 (dw_dsp_slow), its sums from 0, its bias slow_bias[j] */
  int32_t slow_bias[4];
  int32_t shared;             /* groups whose 3x3 pairs read this one's band (dw_dsp_shared:
                                 the records after it), 1 for the rest */
} dw_dsp;

static dw_chunk chunk_columns(const dw_layer *L, int32_t ox0, int32_t n) {
  const tt_fwd_conv_params *p = L->p;
  const int32_t W = L->in->w, span = (L->kw - 1) * p->dilation_w + 1;
  dw_chunk k;
  k.ix = ox0 * p->stride_w - p->pad_left;
  k.cols = (n - 1) * p->stride_w + span;
  k.a = k.ix < 0 ? 0 : (k.ix < W ? k.ix : W);
  const int32_t e = k.ix + k.cols < 0 ? 0 : (k.ix + k.cols < W ? k.ix + k.cols : W);
  k.left = k.a - k.ix;
  k.mid = e > k.a ? e - k.a : 0;
  return k;
}

/* Zeros for the chunk's columns outside the image. */
static void zero_columns(const dw_dsp *D, const dw_chunk *k) {
  const int32_t wc = D->wc;                      /* even: two words a store */
  for (tt_dsp_word *z = D->band, *e = z + k->left * wc; z != e; z += 2) tt_dsp_strd(z, 0, 0);
  for (tt_dsp_word *z = D->band + (k->left + k->mid) * wc, *e = D->band + k->cols * wc; z != e;
       z += 2)
    tt_dsp_strd(z, 0, 0);
}

/* g (1..4) int8 of a channel group; nothing past them is read. */
static inline uint32_t load_group(const int8_t *p, int32_t g) {
  return g == 4 ? tt_dsp_load4(p) : tt_dsp_load_partial(p, g);
}

/* The input lanes of a group: its four channels, or (a depth multiplier of 4k) the one
 * input channel its four output channels read, in every lane. */
static inline uint32_t load_lanes(const int8_t *p, int32_t g, const int one) {
  return one ? (uint8_t)*p * 0x01010101u : load_group(p, g);
}

/* Channels 0..3 of two rows a, b as the four pairs [a_j, b_j] (+ the offset pair off). */
static inline __attribute__((always_inline)) void stage_pair(tt_dsp_word *s, uint32_t a,
                                                             uint32_t b, uint32_t off) {
  const uint32_t lo = tt_dsp_low_halves(a, b), hi = tt_dsp_high_halves(a, b);
  tt_dsp_strd(s, __sxtab16(off, lo), tt_dsp_sxtab16_odd(off, lo));
  tt_dsp_strd(s + 2, __sxtab16(off, hi), tt_dsp_sxtab16_odd(off, hi));
}

/* Channels 0..3 of one row as [x0, x2], [x1, x3] (+ off). */
static inline __attribute__((always_inline)) void stage_single(tt_dsp_word *s, uint32_t a,
                                                               uint32_t off) {
  tt_dsp_strd(s, __sxtab16(off, a), tt_dsp_sxtab16_odd(off, a));
}

/* What every channel group of one kernel call shares, worked out once per call (a streamed
 * layer calls once per output row, so per row, not per group and row): the column layout,
 * whether the sums are bounded, and for both splits of the buffer (3x3 pairs keep no sums in
 * memory, the other windows 4 per output) the chunk and a whole row's columns. */
typedef struct {
  int32_t ok;                 /* 0: the kernel does not fit the buffer (portable code) */
  int32_t wc, m, fast, full, shape3;
  int16_t kh, kw;             /* the taps computed (dw_layer's); 16 bits: no padding before
                                 max_sum, the record being on the kernels' stack */
  int64_t max_sum;            /* the largest |sum of w (x + input_offset)| */
  int32_t chunk[2], whole[2]; /* [1]: 3x3 pairs (no sums), [0]: sums in memory */
  dw_chunk row[2];            /* a whole row's columns (whole[i]) */
  const tt_dsp_word *zeroed;  /* the band whose zero columns are staged (NULL: none) */
  int32_t run3;               /* a pack's: every group 3x3 pairs without a slow channel
                                 (dw3_packed_rows' tt_dsp_dw3_run) */
} dw_dsp_shape;

static void dw_dsp_shape_init(dw_dsp_shape *S, const dw_layer *L) {
  const tt_fwd_conv_params *p = L->p;
  const int32_t kh = L->kh, kw = L->kw, sw = p->stride_w;
  /* n outputs need ((n - 1) sw + span) wc words of columns and 4 n of sums */
  int32_t wc, free;
  S->zeroed = 0;
  S->run3 = 0;
  S->kh = (int16_t)kh;
  S->kw = (int16_t)kw;
  S->ok = dw_dsp_fits(p, kh, kw, &wc, &free);
  if (!S->ok) return;
  S->wc = wc;
  S->m = L->out->c / L->in->c;
  S->fast = tt_dsp_sums_bounded(kh * kw, p->input_offset) &&
            tt_dsp_rq_offset_ok(p->output_offset);
  S->full = p->act_min == -128 && p->act_max == 127;
  const int64_t off = p->input_offset < 0 ? -(int64_t)p->input_offset : p->input_offset;
  S->max_sum = (int64_t)kh * kw * (128 + off) * 128;
  S->shape3 = kh == 3 && kw == 3 && p->dilation_w == 1 && sw <= 2;
  for (int32_t i = 0; i < 2; ++i) {
    S->chunk[i] = free / (sw * wc + (i ? 0 : 4));
    S->whole[i] = S->chunk[i] >= L->out->w;
    if (S->whole[i]) S->chunk[i] = L->out->w;
    S->row[i] = chunk_columns(L, 0, S->chunk[i]);
  }
}

/* Channel j's filter taps of column kx, rows 2q and 2q + 1, as stage_pair's four words (and
 * an odd last row as stage_single's two), doubled when dbl: kw columns of wc words. */
static inline __attribute__((always_inline)) void pack_filter(tt_dsp_word *w,
                                                              const dw_layer *L, int32_t c,
                                                              int32_t g, const int dbl,
                                                              const int32_t kh,
                                                              const int32_t kw) {
  const int32_t C = L->out->c, row = L->fw * C;
#pragma GCC unroll 4
  for (int32_t kx = 0; kx < kw; ++kx) {
    const int8_t *f = L->filter + kx * C + c;
    for (int32_t q = 0; q < kh >> 1; ++q, w += 4, f += 2 * row) {
      const uint32_t a = load_group(f, g), b = load_group(f + row, g);
      const uint32_t lo = tt_dsp_low_halves(a, b), hi = tt_dsp_high_halves(a, b);
      uint32_t v0 = __sxtb16(lo), v1 = tt_dsp_sxtb16_odd(lo);
      uint32_t v2 = __sxtb16(hi), v3 = tt_dsp_sxtb16_odd(hi);
      if (dbl) {
        v0 = __sadd16(v0, v0);
        v1 = __sadd16(v1, v1);
        v2 = __sadd16(v2, v2);
        v3 = __sadd16(v3, v3);
      }
      tt_dsp_strd(w, v0, v1);
      tt_dsp_strd(w + 2, v2, v3);
    }
    if (kh & 1) {
      const uint32_t a = load_group(f, g);
      uint32_t v0 = __sxtb16(a), v1 = tt_dsp_sxtb16_odd(a);
      if (dbl) {
        v0 = __sadd16(v0, v0);
        v1 = __sadd16(v1, v1);
      }
      tt_dsp_strd(w, v0, v1);
      w += 2;
    }
  }
}

/* Channel j of a fast group outside the one-multiply form: 1 when its output is one value
 * (constants from tt_dsp_rq_init_constant), else 2: a slow channel, whose doubled sums start
 * from 0 and which dw_dsp_slow requantizes in C from them and its bias (a bias near int32's
 * ends whose sums may wrap, a multiplier or shift out of the form's range); the group stays
 * fast and what the fast code writes for it first is overwritten. Rare: not inlined. */
static __attribute__((noinline)) int odd_channel(dw_dsp *D, const dw_dsp_shape *S, int32_t j,
                                                 int32_t bias, int32_t m, int32_t sh,
                                                 int32_t oo) {
  if (tt_dsp_rq_init_constant(m, sh, bias, S->max_sum, oo, &D->q[j])) return 1;
  D->slow_bias[j] = bias;
  tt_dsp_rq_params *q = &D->q[j];
  q->b2 = q->m = 0;
  q->c = 1;
  q->e = 1;
  return 2;
}

/* Channel j's requantization constants (D->q[j]) and its bias, undoubled, into bias[j] for the
 * channels of a group of g; returns the constant (bits 0-3) and slow (bits 4-7) channels.
 * g and fast are constants where it is inlined for the usual group. */
static inline __attribute__((always_inline)) uint32_t group_constants(
    dw_dsp *D, const dw_dsp_shape *S, const int32_t *bp, const int32_t *mp, const int8_t *sp,
    int32_t oo, const int32_t g, const int fast, int32_t *bias) {
  uint32_t constant = 0, slow = 0;
#pragma GCC unroll 4
  for (int32_t j = 0; j < 4; ++j) {
    bias[j] = j < g && bp ? bp[j] : 0;
    if (j >= g || !fast) continue;
    if (tt_dsp_bias_bounded(bias[j]) && tt_dsp_rq_init(mp[j], sp[j], oo, &D->q[j])) continue;
    if (odd_channel(D, S, j, bias[j], mp[j], sp[j], oo) == 1)
      constant |= 1u << j;
    else
      slow |= 1u << j;
  }
  return constant | slow << 4;
}

/* Channel group [c, c + g)'s constants into D and its filter, packed, at w (kw * wc words);
 * D's buffer pointers are dw_dsp_place's. */
static void dw_dsp_pack(dw_dsp *D, const dw_dsp_shape *S, const dw_layer *L, int32_t c,
                        int32_t g, tt_dsp_word *w) {
  const tt_fwd_conv_params *p = L->p;
  D->wc = S->wc;
  D->m = S->m;
  D->w = w;
  D->full = S->full;
  const int fast = S->fast;
  /* the arguments in registers: the stores to D may alias them as far as C knows */
  const int32_t *const bp = L->bias ? L->bias + c : 0, *const mp = L->multiplier + c,
                oo = p->output_offset;
  const int8_t *const sp = L->shift + c;
  int32_t bias[4];
  const uint32_t kinds = g == 4 && bp && fast ? group_constants(D, S, bp, mp, sp, oo, 4, 1, bias)
                                              : group_constants(D, S, bp, mp, sp, oo, g, fast, bias);
  const uint32_t constant = kinds & 15u, slow = kinds >> 4;
  D->fast = fast;
  D->slow = slow;
  /* On the fast path the weights and biases are doubled (|2w| <= 256 fits the lanes,
   * |2 acc| < 2^30): the sums come out as 2 acc, which tt_dsp_rq_doubled requantizes one
   * instruction cheaper; a constant channel's sums do not matter: from 0 (no overflow when
   * doubled). */
  if (fast) {
    const uint32_t zero = constant | slow;
#pragma GCC unroll 4
    for (int32_t j = 0; j < 4; ++j) D->bias[j] = zero >> j & 1u ? 0 : 2 * bias[j];
    if (g == 4 && L->kh == 3 && L->kw == 3)   /* the usual groups: unrolled, no load tests */
      pack_filter(w, L, c, 4, 1, 3, 3);
    else if (g == 4 && L->kh == 4 && L->kw == 4)   /* the imported models' stride 2 */
      pack_filter(w, L, c, 4, 1, 4, 4);
    else if (g == 4 && L->kh == 5 && L->kw == 5)   /* MCUNet's, on 4x4 maps packed per row */
      pack_filter(w, L, c, 4, 1, 5, 5);
    else if (g == 4)
      pack_filter(w, L, c, 4, 1, L->kh, L->kw);
    else
      pack_filter(w, L, c, g, 1, L->kh, L->kw);
  } else {
    for (int32_t j = 0; j < 4; ++j) D->bias[j] = bias[j];
    pack_filter(w, L, c, g, 0, L->kh, L->kw);
  }
  /* 3x3 windows in pairs (tt_dsp_dw3x3_*) keep their sums in registers: no room for them */
  D->pairs3 = S->shape3 && g == 4 && fast && D->full;
  D->shared = 1;
}

/* Splits buf (the kernel call's staging buffer; its first kw * wc words are the filter's,
 * used or not) for the packed group D by the call's shape S (S->ok): its sums, its band of
 * staged columns and, for a whole row, the buffer's free tail; a whole row's zero columns
 * are staged here unless the previous group of the call staged the same ones. */
static void dw_dsp_place(dw_dsp *D, dw_dsp_shape *S, const dw_layer *L, tt_dsp_word *buf) {
  const int32_t wc = S->wc, i = D->pairs3;
  D->chunk = S->chunk[i];
  D->whole = S->whole[i];
  D->row = S->row[i];
  D->sums = (int32_t *)(buf + L->kw * wc);
  D->band = buf + L->kw * wc + (i ? 0 : 4) * D->chunk;
  D->tail_bytes = 0;
  if (D->whole) {
    tt_dsp_word *const end = D->band + D->row.cols * wc;
    D->tail = (int8_t *)end;
    D->tail_bytes = (int32_t)(buf + TT_FWD_DSP_STAGE_BYTES / 4 - end) * 4;
  }
  if (!D->whole)                           /* its chunks stage their own zeros */
    S->zeroed = 0;
  else if (S->zeroed != D->band) {         /* unless the last group staged the same zeros */
    zero_columns(D, &D->row);
    S->zeroed = D->band;
  }
}

/* Packs channel group [c, c + g)'s filter into buf and splits buf by the call's shape S
 * (S->ok). */
static void dw_dsp_init(dw_dsp *D, dw_dsp_shape *S, const dw_layer *L, int32_t c, int32_t g,
                        tt_dsp_word *buf) {
  dw_dsp_pack(D, S, L, c, g, buf);
  dw_dsp_place(D, S, L, buf);
}

/* Stages n in-image columns from column ix of the window rows `rows` (NULL: a row outside
 * the image, staged as zeros) for a group of g channels. */
static void dw_dsp_stage(tt_dsp_word *s, const int8_t *const *rows, int32_t kh, int32_t C,
                         int32_t g, int32_t ix, int32_t n, uint32_t off, int one) {
  const int32_t pairs = kh >> 1;
  uint32_t off_pair[DW_DSP_MAX_KH / 2], off_last = rows[kh - 1] ? off : 0;
  for (int32_t q = 0; q < pairs; ++q)   /* the offset only in the lanes of in-image rows */
    off_pair[q] = (rows[2 * q] ? off & 0xFFFFu : 0) | (rows[2 * q + 1] ? off & 0xFFFF0000u : 0);
  for (int32_t at = ix * C, end = (ix + n) * C; at != end; at += C) {
    for (int32_t q = 0; q < pairs; ++q, s += 4)
      stage_pair(s, rows[2 * q] ? load_lanes(rows[2 * q] + at, g, one) : 0,
                 rows[2 * q + 1] ? load_lanes(rows[2 * q + 1] + at, g, one) : 0, off_pair[q]);
    if (kh & 1) {
      stage_single(s, rows[kh - 1] ? load_lanes(rows[kh - 1] + at, g, one) : 0, off_last);
      s += 2;
    }
  }
}

/* dw_dsp_stage when every window row is inside the image and the group has four channels:
 * the hot case, without a test per load; kh a constant where it is inlined. */
static inline __attribute__((always_inline)) void dw_dsp_stage_inner(
    tt_dsp_word *s, const int8_t *const *rows, const int32_t kh, int32_t C, int32_t ix,
    int32_t n, uint32_t off, const int one) {
  const int8_t *r[DW_DSP_MAX_KH];
  for (int32_t k = 0; k < kh; ++k) r[k] = rows[k] + ix * C;
  for (int32_t j = 0, at = 0; j < n; ++j, at += C) {
#pragma GCC unroll 8
    for (int32_t q = 0; q < kh >> 1; ++q, s += 4)
      stage_pair(s, load_lanes(r[2 * q] + at, 4, one), load_lanes(r[2 * q + 1] + at, 4, one),
                 off);
    if (kh & 1) {
      stage_single(s, load_lanes(r[kh - 1] + at, 4, one), off);
      s += 2;
    }
  }
}

/* tt_dsp_rq_doubled and SSAT to int8, m and c loaded by one LDRD (gcc loads them apart). */
static inline __attribute__((always_inline)) int32_t dw_dsp_output(int32_t acc2,
                                                                   const tt_dsp_rq_params *q) {
  uint32_t m, c;
  tt_dsp_ldrd((const tt_dsp_word *)&q->m, &m, &c);
  const tt_dsp_rq_params r = {0, (int32_t)m, (int32_t)c, q->e};
  return __ssat(tt_dsp_rq_doubled(acc2, &r), 8);
}

/* v with byte `lsb` / 8 replaced by b's low byte: one BFI (gcc masks, shifts and ORs). */
static inline __attribute__((always_inline)) uint32_t dw_dsp_bfi8(uint32_t v, int32_t b,
                                                                  const int lsb) {
  __asm__("bfi %0, %1, %2, #8" : "+r"(v) : "r"(b), "i"(lsb));
  return v;
}

/* One staged column of a window (kh rows) times the filter's: *s and *w move past it. */
static inline __attribute__((always_inline)) void dw_dsp_column(const tt_dsp_word **sp,
                                                                const tt_dsp_word **wp,
                                                                const int32_t kh, int32_t *a0,
                                                                int32_t *a1, int32_t *a2,
                                                                int32_t *a3) {
  const tt_dsp_word *s = *sp, *w = *wp;
#pragma GCC unroll 8
  for (int32_t q = 0; q < kh >> 1; ++q, s += 4, w += 4) {
    uint32_t x0, x1, w0, w1;
    tt_dsp_ldrd(s, &x0, &x1);
    tt_dsp_ldrd(w, &w0, &w1);
    *a0 = __smlad(x0, w0, *a0);
    *a1 = __smlad(x1, w1, *a1);
    tt_dsp_ldrd(s + 2, &x0, &x1);
    tt_dsp_ldrd(w + 2, &w0, &w1);
    *a2 = __smlad(x0, w0, *a2);
    *a3 = __smlad(x1, w1, *a3);
  }
  if (kh & 1) {
    uint32_t x0, x1, w0, w1;
    tt_dsp_ldrd(s, &x0, &x1);
    tt_dsp_ldrd(w, &w0, &w1);
    *a0 = __smlabb((int32_t)x0, (int32_t)w0, *a0);
    *a2 = __smlatt((int32_t)x0, (int32_t)w0, *a2);
    *a1 = __smlabb((int32_t)x1, (int32_t)w1, *a1);
    *a3 = __smlatt((int32_t)x1, (int32_t)w1, *a3);
    s += 2;
    w += 2;
  }
  *sp = s;
  *wp = w;
}

/* The sums of the n windows of a staged chunk (window k starts at column k * stride_w) into
 * D->sums; the window rows make kh / 2 pairs and kh % 2 single rows. kh, kw are constants
 * where it is inlined for the usual kernels. Windows wider than 4 loop over their columns:
 * unrolled (as 3 and 4 are), gcc 12 keeps the loop's pointers on the stack (5x5: 1.19
 * instructions a MAC in the sums, 0.99 as a loop); so do any kh, kw unless `unrolled`. */
static inline __attribute__((always_inline)) void dw_dsp_sums(const dw_dsp *D,
                                                              const dw_layer *L, int32_t n,
                                                              const int32_t kh,
                                                              const int32_t kw,
                                                              const int32_t dilation,
                                                              const int unrolled, int8_t *y,
                                                              int32_t stride) {
  const int32_t step = L->p->stride_w * D->wc;
  const int32_t skip = (dilation - 1) * D->wc;
  const int32_t b0 = D->bias[0], b1 = D->bias[1], b2 = D->bias[2], b3 = D->bias[3];
  int32_t *sum = D->sums;
  const int32_t chunk = D->chunk;
  const tt_dsp_word *start = D->band;
  for (int32_t k = 0; k < n; ++k, ++sum, start += step) {
    const tt_dsp_word *s = start, *w = D->w;
    int32_t a0 = b0, a1 = b1, a2 = b2, a3 = b3;
    if (kw > 4 || !unrolled) {
#pragma GCC unroll 1
      for (int32_t kx = 0; kx < kw; ++kx, s += skip)
        dw_dsp_column(&s, &w, kh, &a0, &a1, &a2, &a3);
    } else {
#pragma GCC unroll 3
      for (int32_t kx = 0; kx < kw; ++kx, s += skip)
        dw_dsp_column(&s, &w, kh, &a0, &a1, &a2, &a3);
    }
    if (y) {          /* the window's four outputs from the registers, one word */
      uint32_t v = (uint32_t)dw_dsp_output(a0, &D->q[0]);
      v = dw_dsp_bfi8(v, dw_dsp_output(a1, &D->q[1]), 8);
      v = dw_dsp_bfi8(v, dw_dsp_output(a2, &D->q[2]), 16);
      v = dw_dsp_bfi8(v, dw_dsp_output(a3, &D->q[3]), 24);
      memcpy(y, &v, 4);
      y += stride;
      continue;
    }
    sum[0] = a0;
    sum[chunk] = a1;
    sum[2 * chunk] = a2;
    sum[3 * chunk] = a3;
  }
}

/* A slow channel's output (D->slow) from its doubled sum of w (x + input_offset), 2 S, bounded
 * (|2 S| < 2^30, the layer's sums being fast): the accumulator is S plus the bias, wrapping
 * modulo 2^32 as TFLM's int32 sum does (the same integer whatever order it is added in). */
static inline int8_t dw_dsp_slow(const dw_dsp *D, const dw_layer *L, int32_t c, int32_t j,
                                 int32_t sum2) {
  const tt_fwd_conv_params *p = L->p;
  const int32_t acc = (int32_t)((uint32_t)(sum2 >> 1) + (uint32_t)D->slow_bias[j]);
  return tt_fwd_requantize(acc, L->multiplier[c + j], L->shift[c + j], p->output_offset,
                           p->act_min, p->act_max);
}

/* The slow channels' outputs of the n 3x3 windows (dilation 1) of a staged chunk, from the
 * band and the packed filter (dw_dsp_sums' layout: per column channel j's word of the row
 * pair is j, of the third row j & 1, in half j >> 1), written over what the assembly wrote. */
static inline __attribute__((always_inline)) int32_t dw3_slow_sum(const tt_dsp_word *x,
                                                                  const tt_dsp_word *w,
                                                                  int32_t j, const int top) {
  int32_t a = 0;
#pragma GCC unroll 3
  for (int32_t kx = 0; kx < 3; ++kx, x += 6, w += 6) {
    a = __smlad(x[j], w[j], a);
    a = top ? __smlatt((int32_t)x[4 + (j & 1)], (int32_t)w[4 + (j & 1)], a)
            : __smlabb((int32_t)x[4 + (j & 1)], (int32_t)w[4 + (j & 1)], a);
  }
  return a;
}

/* Channel j's n windows (the requantization's arguments in registers: the int8 stores may
 * alias nothing they are read from). */
static inline __attribute__((always_inline)) void dw3_slow_channel(
    const tt_dsp_word *x, const tt_dsp_word *w, int32_t j, const int top, int32_t n,
    int32_t step, int8_t *y, int32_t stride, uint32_t bias, int32_t m, int32_t sh,
    int32_t out_off, int32_t lo, int32_t hi) {
  for (int32_t k = 0; k < n; ++k, x += step, y += stride) {
    const int32_t acc = (int32_t)((uint32_t)(dw3_slow_sum(x, w, j, top) >> 1) + bias);
    *y = tt_fwd_requantize(acc, m, sh, out_off, lo, hi);
  }
}

static __attribute__((noinline)) void dw3_slow_fix(const dw_dsp *D, const dw_layer *L,
                                                  int32_t c, int32_t n, int8_t *out,
                                                  int32_t stride) {
  const tt_fwd_conv_params *p = L->p;
  const int32_t step = p->stride_w * 6;
  for (int32_t j = 0; j < 4; ++j) {
    if (!(D->slow >> j & 1u)) continue;
    const uint32_t bias = (uint32_t)D->slow_bias[j];
    const int32_t m = L->multiplier[c + j], sh = L->shift[c + j];
    if (j >> 1)
      dw3_slow_channel(D->band, D->w, j, 1, n, step, out + j, stride, bias, m, sh,
                       p->output_offset, p->act_min, p->act_max);
    else
      dw3_slow_channel(D->band, D->w, j, 0, n, step, out + j, stride, bias, m, sh,
                       p->output_offset, p->act_min, p->act_max);
  }
}



/* Channel j of the n sums requantized to out[k * stride + j]: one channel's constants at a
 * time, in registers; the full-range case two outputs a pass. */
static void dw_dsp_store(const dw_dsp *D, const dw_layer *L, int32_t c, int32_t g, int32_t n,
                         int8_t *out, int32_t stride) {
  const int32_t lo = L->p->act_min, hi = L->p->act_max, out_off = L->p->output_offset;
  const int32_t *sums = D->sums;
  if (D->fast && D->full) {
    for (int32_t j = 0; j < g; ++j, sums += D->chunk) {
      const tt_dsp_rq_params q = D->q[j];
      const int32_t *sum = sums, *end = sums + (n & ~1);
      int8_t *y = out + j;
      for (; sum != end; sum += 2, y += 2 * stride) {
        y[0] = (int8_t)__ssat(tt_dsp_rq_doubled(sum[0], &q), 8);
        y[stride] = (int8_t)__ssat(tt_dsp_rq_doubled(sum[1], &q), 8);
      }
      if (n & 1) *y = (int8_t)__ssat(tt_dsp_rq_doubled(*sum, &q), 8);
    }
  } else if (D->fast) {
    for (int32_t j = 0; j < g; ++j, sums += D->chunk) {
      const tt_dsp_rq_params q = D->q[j];
      int8_t *y = out + j;
      for (int32_t k = 0; k < n; ++k, y += stride)
        *y = (int8_t)tt_fwd_clamp(tt_dsp_rq_doubled(sums[k], &q), lo, hi);
    }
  } else {
    for (int32_t j = 0; j < g; ++j, sums += D->chunk) {
      const int32_t m = L->multiplier[c + j], sh = L->shift[c + j];
      int8_t *y = out + j;
      for (int32_t k = 0; k < n; ++k, y += stride)
        *y = tt_fwd_requantize(sums[k], m, sh, out_off, lo, hi);
    }
  }
  /* a fast group's slow channels: their sums are fast (from 0), over what was written */
  for (int32_t j = 0; D->slow >> j; ++j)
    if (D->slow >> j & 1u)
      for (int32_t k = 0; k < n; ++k)
        out[k * stride + j] = dw_dsp_slow(D, L, c, j, D->sums[j * D->chunk + k]);
}

/* --- DSP: 3x3, dilation 1, stride 1 or 2, four channels, requantized by the one-multiply form
 * (int8's whole range) ---------------------------------------------------------------------
 * tt_dsp_dw3x3_s1/_s2(dw3_args *a): a->pairs pairs of adjacent windows of a staged band (the
 * layout of dw_dsp_sums: per column a row pair's four channel words, then the third row's
 * two), each pair's 8 sums in registers: the two windows share every filter load (the
 * filter's 18 words are loaded once per pair), and are requantized (doubled weights and
 * bias: tt_dsp_rq_doubled) and stored as one word per window (the four channels' bytes,
 * BFI-packed) at a->y + k a->y_stride for window k. Per pair of windows (72 MACs): 27
 * LDRD, 24 SMLAD and 24 SMLABB/SMLATT for the sums (75), 36 for the 8 requantizations (LDM
 * of a channel's constants, ADD, SMMLAR, ASR, SSAT), 6 BFI, 2 STR, 10 for the loop (129):
 * the biases copied to the frame (LDM from sp, no pointer to load), the band pointer kept
 * through the requantization (its constants' unused first word loaded as the temporary),
 * and the loop ended by the band reaching its end, not by a count in memory (134 before).
 * In assembly for the same reason as tt_dsp_rows8 (tt_fwd_dsp.c): 14 live values. */
typedef struct {
  const tt_dsp_word *band;    /*  0: window 0's first column */
  const tt_dsp_word *w;       /*  4: the packed, doubled filter (3 columns of 6 words) */
  const int32_t *bias;        /*  8: the 4 doubled biases */
  const int32_t *q;           /* 12: the 4 channels' tt_dsp_rq_params (b2, m, c, e) */
  int8_t *y;                  /* 16: window 0's four outputs */
  int32_t y_stride;           /* 20: bytes between consecutive windows' outputs */
  int32_t pairs;              /* 24: pairs of windows, > 0 */
} dw3_args;
typedef char dw3_args_layout[offsetof(dw3_args, pairs) == 24 ? 1 : -1];
typedef char dw3_rq_layout[sizeof(tt_dsp_rq_params) == 16 && offsetof(tt_dsp_rq_params, m) == 4 &&
                                   offsetof(tt_dsp_rq_params, c) == 8 &&
                                   offsetof(tt_dsp_rq_params, e) == 12 ? 1 : -1];
/* One pair function: window 1 starts SECOND bytes after window 0 in the band (24: stride
 * 1, the next column; 48: stride 2); RQ(acc) requantizes a sum with the channel's constants
 * in {r0 (b2, free), r2 (m), r3 (c), lr (e)}: TT_DW3_RQ, or TT_DW3_RQ_LOW where the output
 * offset is -128 (tt_dsp_rq_low_ok: no sign correction, 8 instructions a pair fewer, 121;
 * the ReLU6 outputs of MobileNetV2's and MCUNet's depthwise layers). A constant channel
 * (tt_dsp_rq_init_constant: m = 0, e = 1, c odd) gives c >> 1 either way, as
 * (c - 1) >> 1 = c >> 1. */
#define TT_DW3_RQ(acc) TT_DSP_ASM_RQ_IN(acc, r0, r2, r3, lr)
#define TT_DW3_RQ_LOW(acc) TT_DSP_ASM_RQ_LOW_IN(acc, r2, r3, lr)
/* The pair functions' set-up: the biases, q, y and its stride, w and the band's end in the
 * frame (r1 the band, r2 w). */
#define TT_DW3X3_SETUP(SECOND) \
    "  sub sp, sp, #40\n" \
    "  ldrd r1, r2, [r0]\n" \
    "  ldrd r3, r12, [r0, #8]\n" \
    "  str r12, [sp, #32]\n" \
    "  ldm r3, {r4-r7}\n" \
    "  stm sp, {r4-r7}\n" \
    "  ldrd r3, r12, [r0, #16]\n" \
    "  strd r3, r12, [sp, #16]\n" \
    "  ldr r3, [r0, #24]\n" \
    "  mov r12, #2*" #SECOND "\n" \
    "  mla r3, r3, r12, r1\n" \
    "  strd r2, r3, [sp, #24]\n"
/* One pair of windows at r1 (r2 = w): the 8 sums, requantized, BFI-packed into r4 and r8;
 * r1 moved on to the next pair. */
#define TT_DW3X3_PAIR(SECOND, RQ) \
    "  ldm sp, {r4-r7}\n" \
    "  ldm sp, {r8-r11}\n" \
    "  ldrd r0, r3, [r2, #0]\n" \
    "  ldrd r12, lr, [r1, #0]\n" \
    "  smlad r4, r12, r0, r4\n" \
    "  smlad r5, lr, r3, r5\n" \
    "  ldrd r12, lr, [r1, #0+" #SECOND "]\n" \
    "  smlad r8, r12, r0, r8\n" \
    "  smlad r9, lr, r3, r9\n" \
    "  ldrd r0, r3, [r2, #8]\n" \
    "  ldrd r12, lr, [r1, #8]\n" \
    "  smlad r6, r12, r0, r6\n" \
    "  smlad r7, lr, r3, r7\n" \
    "  ldrd r12, lr, [r1, #8+" #SECOND "]\n" \
    "  smlad r10, r12, r0, r10\n" \
    "  smlad r11, lr, r3, r11\n" \
    "  ldrd r0, r3, [r2, #16]\n" \
    "  ldrd r12, lr, [r1, #16]\n" \
    "  smlabb r4, r12, r0, r4\n" \
    "  smlatt r6, r12, r0, r6\n" \
    "  smlabb r5, lr, r3, r5\n" \
    "  smlatt r7, lr, r3, r7\n" \
    "  ldrd r12, lr, [r1, #16+" #SECOND "]\n" \
    "  smlabb r8, r12, r0, r8\n" \
    "  smlatt r10, r12, r0, r10\n" \
    "  smlabb r9, lr, r3, r9\n" \
    "  smlatt r11, lr, r3, r11\n" \
    "  ldrd r0, r3, [r2, #24]\n" \
    "  ldrd r12, lr, [r1, #24]\n" \
    "  smlad r4, r12, r0, r4\n" \
    "  smlad r5, lr, r3, r5\n" \
    "  ldrd r12, lr, [r1, #24+" #SECOND "]\n" \
    "  smlad r8, r12, r0, r8\n" \
    "  smlad r9, lr, r3, r9\n" \
    "  ldrd r0, r3, [r2, #32]\n" \
    "  ldrd r12, lr, [r1, #32]\n" \
    "  smlad r6, r12, r0, r6\n" \
    "  smlad r7, lr, r3, r7\n" \
    "  ldrd r12, lr, [r1, #32+" #SECOND "]\n" \
    "  smlad r10, r12, r0, r10\n" \
    "  smlad r11, lr, r3, r11\n" \
    "  ldrd r0, r3, [r2, #40]\n" \
    "  ldrd r12, lr, [r1, #40]\n" \
    "  smlabb r4, r12, r0, r4\n" \
    "  smlatt r6, r12, r0, r6\n" \
    "  smlabb r5, lr, r3, r5\n" \
    "  smlatt r7, lr, r3, r7\n" \
    "  ldrd r12, lr, [r1, #40+" #SECOND "]\n" \
    "  smlabb r8, r12, r0, r8\n" \
    "  smlatt r10, r12, r0, r10\n" \
    "  smlabb r9, lr, r3, r9\n" \
    "  smlatt r11, lr, r3, r11\n" \
    "  ldrd r0, r3, [r2, #48]\n" \
    "  ldrd r12, lr, [r1, #48]\n" \
    "  smlad r4, r12, r0, r4\n" \
    "  smlad r5, lr, r3, r5\n" \
    "  ldrd r12, lr, [r1, #48+" #SECOND "]\n" \
    "  smlad r8, r12, r0, r8\n" \
    "  smlad r9, lr, r3, r9\n" \
    "  ldrd r0, r3, [r2, #56]\n" \
    "  ldrd r12, lr, [r1, #56]\n" \
    "  smlad r6, r12, r0, r6\n" \
    "  smlad r7, lr, r3, r7\n" \
    "  ldrd r12, lr, [r1, #56+" #SECOND "]\n" \
    "  smlad r10, r12, r0, r10\n" \
    "  smlad r11, lr, r3, r11\n" \
    "  ldrd r0, r3, [r2, #64]\n" \
    "  ldrd r12, lr, [r1, #64]\n" \
    "  smlabb r4, r12, r0, r4\n" \
    "  smlatt r6, r12, r0, r6\n" \
    "  smlabb r5, lr, r3, r5\n" \
    "  smlatt r7, lr, r3, r7\n" \
    "  ldrd r12, lr, [r1, #64+" #SECOND "]\n" \
    "  smlabb r8, r12, r0, r8\n" \
    "  smlatt r10, r12, r0, r10\n" \
    "  smlabb r9, lr, r3, r9\n" \
    "  smlatt r11, lr, r3, r11\n" \
    "  add r1, r1, #2*" #SECOND "\n" \
    "  ldr r12, [sp, #32]\n" \
    "  ldm r12!, {r0, r2, r3, lr}\n" \
    RQ(r4) RQ(r8) \
    "  ldm r12!, {r0, r2, r3, lr}\n" \
    RQ(r5) RQ(r9) \
    "  ldm r12!, {r0, r2, r3, lr}\n" \
    RQ(r6) RQ(r10) \
    "  ldm r12!, {r0, r2, r3, lr}\n" \
    RQ(r7) RQ(r11) \
    "  bfi r4, r5, #8, #8\n" \
    "  bfi r4, r6, #16, #8\n" \
    "  bfi r4, r7, #24, #8\n" \
    "  bfi r8, r9, #8, #8\n" \
    "  bfi r8, r10, #16, #8\n" \
    "  bfi r8, r11, #24, #8\n"
/* The pairs loops' end, shared by both forms: back to 1 while r1 differs from the frame's
 * end word (sp + 28), then the frame and the function closed. */
#define TT_DW3X3_NEXT_END(NAME) \
    "  ldrd r2, r3, [sp, #24]\n" \
    "  cmp r1, r3\n" \
    "  bne 1b\n" \
    "  add sp, sp, #40\n" \
    "  pop {r4-r11, pc}\n" \
    "  .size " #NAME ", . - " #NAME "\n" \
    "  .text\n"
#define TT_DW3X3_PAIRS_ASM(NAME, SECOND, RQ) \
  __asm__( \
    TT_DSP_ASM_ENTRY(NAME) \
    TT_DW3X3_SETUP(SECOND) \
    "1:\n" \
    TT_DW3X3_PAIR(SECOND, RQ) \
    "  ldrd r0, r2, [sp, #16]\n" \
    "  str r4, [r0]\n" \
    "  str r8, [r0, r2]\n" \
    "  add r0, r0, r2, lsl #1\n" \
    "  str r0, [sp, #16]\n" \
    TT_DW3X3_NEXT_END(NAME))
/* The same, two pairs a loop (an odd count enters at the second with y a pair back): the
 * first pair neither moves y on in the frame nor tests the end, 13 instructions of stores and
 * loop for two pairs where one pair a loop takes 16; for the stride-1 pairs without the sign
 * correction (the paper's models' ReLU6 layers: most of their depthwise MACs), 0.5 KB of code
 * more. */
#define TT_DW3X3_PAIRS2_ASM(NAME, SECOND, RQ) \
  __asm__( \
    TT_DSP_ASM_ENTRY(NAME) \
    TT_DW3X3_SETUP(SECOND) \
    "  ldr r3, [r0, #24]\n" \
    "  tst r3, #1\n" \
    "  beq 1f\n" \
    "  ldrd r0, r3, [sp, #16]\n" \
    "  sub r0, r0, r3, lsl #1\n" \
    "  str r0, [sp, #16]\n" \
    "  b 2f\n" \
    "1:\n" \
    TT_DW3X3_PAIR(SECOND, RQ) \
    "  ldrd r0, r2, [sp, #16]\n" \
    "  str r4, [r0]\n" \
    "  str r8, [r0, r2]\n" \
    "  ldr r2, [sp, #24]\n" \
    "2:\n" \
    TT_DW3X3_PAIR(SECOND, RQ) \
    "  ldrd r0, r2, [sp, #16]\n" \
    "  add r0, r0, r2, lsl #1\n" \
    "  str r4, [r0]\n" \
    "  str r8, [r0, r2]\n" \
    "  add r0, r0, r2, lsl #1\n" \
    "  str r0, [sp, #16]\n" \
    TT_DW3X3_NEXT_END(NAME))
TT_DW3X3_PAIRS_ASM(tt_dsp_dw3x3_s1, 24, TT_DW3_RQ);
TT_DW3X3_PAIRS2_ASM(tt_dsp_dw3x3_s1_low, 24, TT_DW3_RQ_LOW);
__asm__(
    TT_DSP_ASM_ENTRY(tt_dsp_dw3x3_1)
    "  sub sp, sp, #32\n"
    "  ldrd r1, r2, [r0]\n"
    "  ldrd r3, r12, [r0, #8]\n"
    "  strd r3, r12, [sp]\n"
    "  ldrd r3, r12, [r0, #16]\n"
    "  strd r3, r12, [sp, #8]\n"
    "  ldr r3, [r0, #24]\n"
    "  str r3, [sp, #20]\n"
    "  str r2, [sp, #24]\n"
    "1:\n"
    "  ldr r3, [sp]\n"
    "  ldm r3, {r4-r7}\n"
    "  ldrd r0, r3, [r2, #0]\n"
    "  ldrd r12, lr, [r1, #0]\n"
    "  smlad r4, r12, r0, r4\n"
    "  smlad r5, lr, r3, r5\n"
    "  ldrd r0, r3, [r2, #8]\n"
    "  ldrd r12, lr, [r1, #8]\n"
    "  smlad r6, r12, r0, r6\n"
    "  smlad r7, lr, r3, r7\n"
    "  ldrd r0, r3, [r2, #16]\n"
    "  ldrd r12, lr, [r1, #16]\n"
    "  smlabb r4, r12, r0, r4\n"
    "  smlatt r6, r12, r0, r6\n"
    "  smlabb r5, lr, r3, r5\n"
    "  smlatt r7, lr, r3, r7\n"
    "  ldrd r0, r3, [r2, #24]\n"
    "  ldrd r12, lr, [r1, #24]\n"
    "  smlad r4, r12, r0, r4\n"
    "  smlad r5, lr, r3, r5\n"
    "  ldrd r0, r3, [r2, #32]\n"
    "  ldrd r12, lr, [r1, #32]\n"
    "  smlad r6, r12, r0, r6\n"
    "  smlad r7, lr, r3, r7\n"
    "  ldrd r0, r3, [r2, #40]\n"
    "  ldrd r12, lr, [r1, #40]\n"
    "  smlabb r4, r12, r0, r4\n"
    "  smlatt r6, r12, r0, r6\n"
    "  smlabb r5, lr, r3, r5\n"
    "  smlatt r7, lr, r3, r7\n"
    "  ldrd r0, r3, [r2, #48]\n"
    "  ldrd r12, lr, [r1, #48]\n"
    "  smlad r4, r12, r0, r4\n"
    "  smlad r5, lr, r3, r5\n"
    "  ldrd r0, r3, [r2, #56]\n"
    "  ldrd r12, lr, [r1, #56]\n"
    "  smlad r6, r12, r0, r6\n"
    "  smlad r7, lr, r3, r7\n"
    "  ldrd r0, r3, [r2, #64]\n"
    "  ldrd r12, lr, [r1, #64]\n"
    "  smlabb r4, r12, r0, r4\n"
    "  smlatt r6, r12, r0, r6\n"
    "  smlabb r5, lr, r3, r5\n"
    "  smlatt r7, lr, r3, r7\n"
    "  add r1, r1, #24\n"
    "  str r1, [sp, #16]\n"
    "  ldr r12, [sp, #4]\n"
    "  ldm r12!, {r0, r1, r2, r3}\n"
    TT_DSP_ASM_RQ(r4, lr)
    "  ldm r12!, {r0, r1, r2, r3}\n"
    TT_DSP_ASM_RQ(r5, lr)
    "  ldm r12!, {r0, r1, r2, r3}\n"
    TT_DSP_ASM_RQ(r6, lr)
    "  ldm r12!, {r0, r1, r2, r3}\n"
    TT_DSP_ASM_RQ(r7, lr)
    "  bfi r4, r5, #8, #8\n"
    "  bfi r4, r6, #16, #8\n"
    "  bfi r4, r7, #24, #8\n"
    "  ldrd r0, r1, [sp, #8]\n"
    "  str r4, [r0]\n"
    "  add r0, r0, r1\n"
    "  str r0, [sp, #8]\n"
    "  ldrd r1, r3, [sp, #16]\n"
    "  ldr r2, [sp, #24]\n"
    "  subs r3, r3, #1\n"
    "  str r3, [sp, #20]\n"
    "  bne 1b\n"
    "  add sp, sp, #32\n"
    "  pop {r4-r11, pc}\n"
    "  .size tt_dsp_dw3x3_1, . - tt_dsp_dw3x3_1\n"
    "  .text\n");
TT_DW3X3_PAIRS_ASM(tt_dsp_dw3x3_s2, 48, TT_DW3_RQ);
TT_DW3X3_PAIRS_ASM(tt_dsp_dw3x3_s2_low, 48, TT_DW3_RQ_LOW);
void tt_dsp_dw3x3_s1(dw3_args *a);
void tt_dsp_dw3x3_s2(dw3_args *a);
void tt_dsp_dw3x3_s1_low(dw3_args *a);
void tt_dsp_dw3x3_s2_low(dw3_args *a);
void tt_dsp_dw3x3_1(dw3_args *a);   /* a->pairs single windows, at stride 1 */

/* The pair function of a layer: by its stride, without the sign correction where the output
 * offset allows (tt_dsp_rq_low_ok). */
typedef void dw3_pairs_fn(dw3_args *);
static dw3_pairs_fn *dw3_pairs(const tt_fwd_conv_params *p) {
  if (tt_dsp_rq_low_ok(p->output_offset))
    return p->stride_w == 1 ? tt_dsp_dw3x3_s1_low : tt_dsp_dw3x3_s2_low;
  return p->stride_w == 1 ? tt_dsp_dw3x3_s1 : tt_dsp_dw3x3_s2;
}

/* One output row of four channels from the staged band: n >> 1 pairs of windows, then an odd
 * last one (its band at `last`), then the channels requantized in C (D->slow). */
static inline __attribute__((always_inline)) void dw3_row(
    void (*pairs_of)(dw3_args *), const tt_dsp_word *band, const tt_dsp_word *last,
    const dw_dsp *D, const dw_layer *L, int32_t c, int32_t n, int8_t *y, int32_t stride) {
  dw3_args a = {band, D->w, D->bias, &D->q[0].b2, y, stride, n >> 1};
  if (a.pairs) pairs_of(&a);
  if (n & 1) {
    a.band = last;
    a.y = y + (n - 1) * stride;
    a.pairs = 1;
    tt_dsp_dw3x3_1(&a);
  }
  if (D->slow) dw3_slow_fix(D, L, c, n, y, stride);
}

/* The instances dw_dsp_row calls, each compiled on its own (inlined together, gcc 12
 * spills their loop registers). */
static __attribute__((noinline)) void stage_inner_3(tt_dsp_word *s, const int8_t *const *rows,
                                                    int32_t C, int32_t ix, int32_t n,
                                                    uint32_t off) {
  dw_dsp_stage_inner(s, rows, 3, C, ix, n, off, 0);
}
#define DW_STAGE_INNER(name, kh)                                                            \
  static __attribute__((noinline)) void name(tt_dsp_word *s, const int8_t *const *rows,      \
                                             int32_t C, int32_t ix, int32_t n, uint32_t off) { \
    dw_dsp_stage_inner(s, rows, kh, C, ix, n, off, 0);                                      \
  }
DW_STAGE_INNER(stage_inner_4, 4)      /* the imported models' grown stride-2 kernels */
DW_STAGE_INNER(stage_inner_5, 5)      /* MCUNet */
DW_STAGE_INNER(stage_inner_7, 7)
DW_STAGE_INNER(stage_inner_8, 8)
static __attribute__((noinline)) void stage_inner_any(tt_dsp_word *s,
                                                      const int8_t *const *rows, int32_t kh,
                                                      int32_t C, int32_t ix, int32_t n,
                                                      uint32_t off) {
  dw_dsp_stage_inner(s, rows, kh, C, ix, n, off, 0);
}
/* dw_dsp_stage for a group of four channels, window rows outside the image included: their
 * pointers are any row of the image (every load is inside it) and mask[k] = 0 zeros what
 * they load; the offset is in the lanes of the rows inside only (off_pair, off_last). No
 * test per load. */
static inline __attribute__((always_inline)) void stage_masked_k(
    tt_dsp_word *s, const int8_t *const *rows, const uint32_t *mask, const int32_t kh,
    int32_t C, int32_t ix, int32_t n, const uint32_t *off_pair, uint32_t off_last) {
  if (kh <= 3) {           /* three rows' pointers and masks fit the registers */
    for (int32_t at = ix * C, end = (ix + n) * C; at != end; at += C) {
      for (int32_t q = 0; q < kh >> 1; ++q, s += 4)
        stage_pair(s, tt_dsp_load4(rows[2 * q] + at) & mask[2 * q],
                   tt_dsp_load4(rows[2 * q + 1] + at) & mask[2 * q + 1], off_pair[q]);
      if (kh & 1) {
        stage_single(s, tt_dsp_load4(rows[kh - 1] + at) & mask[kh - 1], off_last);
        s += 2;
      }
    }
    return;
  }
  /* more: a row pair (or the odd row) at a time over the columns, its two pointers and
   * masks in registers */
  const int32_t wc = 4 * (kh >> 1) + 2 * (kh & 1), end = (ix + n) * C;
  for (int32_t q = 0; q < kh >> 1; ++q, s += 4) {
    const int8_t *const a = rows[2 * q], *const b = rows[2 * q + 1];
    const uint32_t ma = mask[2 * q], mb = mask[2 * q + 1], o = off_pair[q];
    tt_dsp_word *t = s;
    for (int32_t at = ix * C; at != end; at += C, t += wc)
      stage_pair(t, tt_dsp_load4(a + at) & ma, tt_dsp_load4(b + at) & mb, o);
  }
  if (kh & 1) {
    const int8_t *const a = rows[kh - 1];
    const uint32_t ma = mask[kh - 1];
    for (int32_t at = ix * C; at != end; at += C, s += wc)
      stage_single(s, tt_dsp_load4(a + at) & ma, off_last);
  }
}
static __attribute__((noinline)) void stage_masked_3(tt_dsp_word *s,
                                                     const int8_t *const *rows,
                                                     const uint32_t *mask, int32_t C,
                                                     int32_t ix, int32_t n,
                                                     const uint32_t *off_pair,
                                                     uint32_t off_last) {
  stage_masked_k(s, rows, mask, 3, C, ix, n, off_pair, off_last);
}
/* Per row count as the inner staging (a variable kh keeps its loop over the row pairs, its
 * pointers and masks in memory: 5x5 on MCUNet's 4x4 maps, every row a border row, staged
 * 2.5 times slower that way). */
#define DW_STAGE_MASKED(name, kh)                                                           \
  static __attribute__((noinline)) void name(tt_dsp_word *s, const int8_t *const *rows,      \
                                             const uint32_t *mask, int32_t C, int32_t ix,    \
                                             int32_t n, const uint32_t *off_pair,            \
                                             uint32_t off_last) {                            \
    stage_masked_k(s, rows, mask, kh, C, ix, n, off_pair, off_last);                         \
  }
DW_STAGE_MASKED(stage_masked_4, 4)
DW_STAGE_MASKED(stage_masked_5, 5)
DW_STAGE_MASKED(stage_masked_7, 7)
DW_STAGE_MASKED(stage_masked_8, 8)
static __attribute__((noinline)) void stage_masked(tt_dsp_word *s, const int8_t *const *rows,
                                                   const uint32_t *mask, int32_t kh, int32_t C,
                                                   int32_t ix, int32_t n,
                                                   const uint32_t *off_pair,
                                                   uint32_t off_last) {
  stage_masked_k(s, rows, mask, kh, C, ix, n, off_pair, off_last);
}

/* dw_dsp_stage_inner for a depth multiplier of 4k: the four lanes hold one input channel,
 * so each pair word is built once and stored four times. kh a constant where inlined: 3
 * (the person detector's first layer) keeps its three row pointers in registers, about 13
 * instructions a column where the loop over the row pairs took 29. */
static inline __attribute__((always_inline)) void stage_one_k(tt_dsp_word *s,
                                                              const int8_t *const *rows,
                                                              const int32_t kh, int32_t C,
                                                              int32_t ix, int32_t n,
                                                              uint32_t off) {
  const int32_t o = (int16_t)(off & 0xFFFFu);
  const int8_t *r[DW_DSP_MAX_KH];
#pragma GCC unroll 8
  for (int32_t k = 0; k < kh; ++k) r[k] = rows[k] + ix * C;
  for (int32_t at = 0, end = n * C; at != end; at += C) {
#pragma GCC unroll 4
    for (int32_t q = 0; q < kh >> 1; ++q, s += 4) {
      const uint32_t v = tt_dsp_low_halves((uint32_t)(r[2 * q][at] + o),
                                           (uint32_t)(r[2 * q + 1][at] + o));
      tt_dsp_strd(s, v, v);
      tt_dsp_strd(s + 2, v, v);
    }
    if (kh & 1) {
      const uint32_t x = (uint32_t)(r[kh - 1][at] + o);
      const uint32_t v = tt_dsp_low_halves(x, x);
      tt_dsp_strd(s, v, v);
      s += 2;
    }
  }
}
static __attribute__((noinline)) void stage_inner_one(tt_dsp_word *s,
                                                      const int8_t *const *rows, int32_t kh,
                                                      int32_t C, int32_t ix, int32_t n,
                                                      uint32_t off) {
  if (kh == 3)
    stage_one_k(s, rows, 3, C, ix, n, off);
  else
    stage_one_k(s, rows, kh, C, ix, n, off);
}
#define DW_DSP_SUMS(name, kh, kw, dilation)                                                \
  static __attribute__((noinline)) void name(const dw_dsp *D, const dw_layer *L, int32_t n) { \
    dw_dsp_sums(D, L, n, kh, kw, dilation, 1, 0, 0);                                        \
  }
DW_DSP_SUMS(sums_3x3, 3, 3, 1)                /* MobileNets */
DW_DSP_SUMS(sums_5x5, 5, 5, 1)                /* MCUNet */
DW_DSP_SUMS(sums_7x7, 7, 7, 1)
DW_DSP_SUMS(sums_4x4, 4, 4, 1)                /* the imported models' grown stride-2 kernels */
DW_DSP_SUMS(sums_8x8, 8, 8, 1)
static __attribute__((noinline)) void sums_any(const dw_dsp *D, const dw_layer *L, int32_t n) {
  dw_dsp_sums(D, L, n, L->kh, L->kw, L->p->dilation_w, 0, 0, 0);
}
/* The same windows stored as outputs (a fast group of four channels, int8's whole range, no
 * slow channel): no sums in memory, no second pass over them. MCUNet's shapes. */
#define DW_DSP_OUTPUTS(name, kh, kw)                                                        \
  static __attribute__((noinline)) void name(const dw_dsp *D, const dw_layer *L, int32_t n,  \
                                             int8_t *y, int32_t stride) {                   \
    dw_dsp_sums(D, L, n, kh, kw, 1, 1, y, stride);                                          \
  }
DW_DSP_OUTPUTS(outputs_4x4, 4, 4)
DW_DSP_OUTPUTS(outputs_7x7, 7, 7)
DW_DSP_OUTPUTS(outputs_8x8, 8, 8)

/* tt_dsp_dw5x5(a, band, n), tt_dsp_dw5x5_low(a, band, n): outputs_5x5 in assembly, each window summed over its
 * columns inside the image only, [a->lo, a->hi) of the band (the others are staged zeros:
 * they add nothing to a sum, and the MACs skipped are not counted out of the layer's). On
 * MCUNet's 4x4 maps a window has 3.5 such columns of 5 on average, on its 8x8 maps 4.25.
 * A column (two row pairs and the fifth row, wc = 10 words, as dw_dsp_column sums it): 10
 * LDRD, 8 SMLAD, 4 SMLABB/SMLATT and the loop's CMP and BNE, 24 (gcc's loop: 25, and it
 * walked every column); a window: about 50 more (its columns clipped, the biases, the four
 * requantizations, BFI and the store). The sums are the same integers in another order, so
 * the same bits. _low: the output offset -128 (TT_DSP_ASM_RQ_LOW_IN), one instruction fewer
 * an output. The record is updated in place (y). */
typedef struct {
  const tt_dsp_word *lo, *hi; /*  0,  4: the band's columns inside the image */
  const tt_dsp_word *w;       /*  8: the packed, doubled filter (5 columns of 10 words) */
  const int32_t *bias;        /* 12: the 4 doubled biases */
  const int32_t *q;           /* 16: the 4 channels' tt_dsp_rq_params */
  int8_t *y;                  /* 20: window 0's four outputs */
  int32_t y_stride;           /* 24: bytes between consecutive windows' outputs */
  int32_t step;               /* 28: bytes between consecutive windows' first columns */
} dw5_args;
typedef char dw5_args_layout[offsetof(dw5_args, step) == 28 ? 1 : -1];
/* lr the record, r0 this window's first column, r2 the windows left; r1 and r12 the
 * window's clipped columns [r1, r12), r3 its filter column, r4-r7 the four sums. */
#define TT_DW5_ASM(NAME, RQ)                                                                \
  __asm__(                                                                                  \
      TT_DSP_ASM_ENTRY(NAME)                                                                \
      "  mov lr, r0\n"                                                                      \
      "  mov r0, r1\n"                                                                      \
      "1:\n"                                                                                \
      "  ldrd r1, r12, [lr]\n"                                                              \
      "  add r3, r0, #200\n"             /* the window's end: 5 columns of 40 bytes */      \
      "  cmp r3, r12\n"                                                                     \
      "  it lt\n"                                                                           \
      "  movlt r12, r3\n"                                                                   \
      "  cmp r1, r0\n"                                                                      \
      "  it lt\n"                                                                           \
      "  movlt r1, r0\n"                                                                    \
      "  ldrd r3, r4, [lr, #8]\n"                                                           \
      "  add r3, r3, r1\n"                                                                  \
      "  sub r3, r3, r0\n"                                                                  \
      "  ldm r4, {r4-r7}\n"                                                                 \
      "  cmp r1, r12\n"                                                                     \
      "  bhs 3f\n"                                                                          \
      "2:\n"                                                                                \
      "  ldrd r8, r9, [r1, #8]\n"                                                           \
      "  ldrd r10, r11, [r3, #8]\n"                                                         \
      "  smlad r6, r8, r10, r6\n"                                                           \
      "  smlad r7, r9, r11, r7\n"                                                           \
      "  ldrd r8, r9, [r1, #16]\n"                                                          \
      "  ldrd r10, r11, [r3, #16]\n"                                                        \
      "  smlad r4, r8, r10, r4\n"                                                           \
      "  smlad r5, r9, r11, r5\n"                                                           \
      "  ldrd r8, r9, [r1, #24]\n"                                                          \
      "  ldrd r10, r11, [r3, #24]\n"                                                        \
      "  smlad r6, r8, r10, r6\n"                                                           \
      "  smlad r7, r9, r11, r7\n"                                                           \
      "  ldrd r8, r9, [r1, #32]\n"                                                          \
      "  ldrd r10, r11, [r3, #32]\n"                                                        \
      "  smlabb r4, r8, r10, r4\n"                                                          \
      "  smlatt r6, r8, r10, r6\n"                                                          \
      "  smlabb r5, r9, r11, r5\n"                                                          \
      "  smlatt r7, r9, r11, r7\n"                                                          \
      "  ldrd r8, r9, [r1], #40\n"                                                          \
      "  ldrd r10, r11, [r3], #40\n"                                                        \
      "  smlad r4, r8, r10, r4\n"                                                           \
      "  smlad r5, r9, r11, r5\n"                                                           \
      "  cmp r1, r12\n"                                                                     \
      "  bne 2b\n"                                                                          \
      "3:\n"                                                                                \
      "  ldr r1, [lr, #16]\n"                                                               \
      "  ldm r1!, {r8-r11}\n"                                                               \
      RQ(r4, r8, r9, r10, r11)                                                              \
      "  ldm r1!, {r8-r11}\n"                                                               \
      RQ(r5, r8, r9, r10, r11)                                                              \
      "  ldm r1!, {r8-r11}\n"                                                               \
      RQ(r6, r8, r9, r10, r11)                                                              \
      "  ldm r1, {r8-r11}\n"                                                                \
      RQ(r7, r8, r9, r10, r11)                                                              \
      "  bfi r4, r5, #8, #8\n"                                                              \
      "  bfi r4, r6, #16, #8\n"                                                             \
      "  bfi r4, r7, #24, #8\n"                                                             \
      "  ldrd r1, r3, [lr, #20]\n"                                                          \
      "  str r4, [r1]\n"                                                                    \
      "  add r1, r1, r3\n"                                                                  \
      "  ldr r3, [lr, #28]\n"                                                               \
      "  str r1, [lr, #20]\n"                                                               \
      "  add r0, r0, r3\n"                                                                  \
      "  subs r2, r2, #1\n"                                                                 \
      "  bne 1b\n"                                                                          \
      "  pop {r4-r11, pc}\n"                                                                \
      "  .size " #NAME ", . - " #NAME "\n"                                                  \
      "  .text\n")
#define TT_DW5_RQ(acc, tmp, m, c, e) TT_DSP_ASM_RQ_IN(acc, tmp, m, c, e)
#define TT_DW5_RQ_LOW(acc, tmp, m, c, e) TT_DSP_ASM_RQ_LOW_IN(acc, m, c, e)
TT_DW5_ASM(tt_dsp_dw5x5, TT_DW5_RQ);
TT_DW5_ASM(tt_dsp_dw5x5_low, TT_DW5_RQ_LOW);
void tt_dsp_dw5x5(dw5_args *a, const tt_dsp_word *band, int32_t n);   /* window 0, n > 0 */
void tt_dsp_dw5x5_low(dw5_args *a, const tt_dsp_word *band, int32_t n);
/* The record in a frame of its own, not in dw_dsp_rows' (on the deepest stack path of a
 * generated program: this frame and the assembly's pushes are less than outputs_5x5's). */
static __attribute__((noinline)) void dw5_outputs(const dw_dsp *D, const dw_layer *L,
                                                  const dw_chunk *k, int32_t n, int8_t *y,
                                                  int32_t stride) {
  const int32_t wc = D->wc;
  dw5_args a = {D->band + k->left * wc, D->band + (k->left + k->mid) * wc, D->w, D->bias,
                &D->q[0].b2, y, stride, 4 * L->p->stride_w * wc};
  if (tt_dsp_rq_low_ok(L->p->output_offset))
    tt_dsp_dw5x5_low(&a, D->band, n);
  else
    tt_dsp_dw5x5(&a, D->band, n);
}

/* Whether outputs_* store group D's windows of layer L directly: 1 when they did (5x5:
 * dw5_outputs, before this). */
static int dw_dsp_outputs_of(const dw_dsp *D, const dw_layer *L, int32_t g, int32_t n,
                             int8_t *y, int32_t stride) {
  if (!(D->fast && D->full && !D->slow && g == 4) || L->p->dilation_w != 1 || L->kh != L->kw)
    return 0;
  switch (L->kh) {
    case 4: outputs_4x4(D, L, n, y, stride); return 1;
    case 7: outputs_7x7(D, L, n, y, stride); return 1;
    case 8: outputs_8x8(D, L, n, y, stride); return 1;
    default: return 0;
  }
}

static void dw_dsp_sums_of(const dw_dsp *D, const dw_layer *L, int32_t n) {
  const int32_t k = L->p->dilation_w == 1 && L->kh == L->kw ? L->kh : 0;
  switch (k) {
    case 3: sums_3x3(D, L, n); break;
    case 4: sums_4x4(D, L, n); break;
    case 5: sums_5x5(D, L, n); break;
    case 7: sums_7x7(D, L, n); break;
    case 8: sums_8x8(D, L, n); break;
    default: sums_any(D, L, n); break;
  }
}

/* Output rows [oy0, oy1) of batch b for channels [c, c + g) with the group packed in D, row
 * oy0 + k at out + k * row_step (dw_row's element layout). D->shared > 1 (dw_dsp_shared): the
 * 3x3 pairs of D[0], ..., D[shared - 1], channels c + 4 j, on the one band staged. */
static void dw_dsp_rows(const dw_dsp *D, const dw_layer *L, int32_t c, int32_t g, int32_t b,
                        int32_t oy0, int32_t oy1, int8_t *out, int32_t row_step,
                        int32_t stride) {
  const tt_fwd_conv_params *p = L->p;
  const int32_t C = L->in->c, H = L->in->h, W = L->in->w, kh = L->kh, wc = D->wc;
  const int32_t ow = L->out->w, chunk = D->chunk;
  const int8_t *const base = L->input + b * H * W * C + c / D->m;
  const uint32_t off = tt_dsp_offset_pair(p->input_offset);
  const int pairs3 = D->pairs3;
  for (int32_t oy = oy0; oy < oy1; ++oy, out += row_step) {
    const int8_t *rows[DW_DSP_MAX_KH];
    int inner = g == 4;
    for (int32_t ky = 0, iy = oy * p->stride_h - p->pad_top; ky < kh; ++ky, iy += p->dilation_h) {
      rows[ky] = iy >= 0 && iy < H ? base + iy * W * C : 0;
      inner = inner && rows[ky];
    }
    /* a border row of a four-channel group: rows outside the image masked, not tested */
    const int masked = !inner && g == 4 && D->m == 1;
    const int8_t *any[DW_DSP_MAX_KH];
    uint32_t mask[DW_DSP_MAX_KH], off_pair[DW_DSP_MAX_KH / 2], off_last = 0;
    if (masked) {
      for (int32_t ky = 0; ky < kh; ++ky) {
        any[ky] = rows[ky] ? rows[ky] : base;
        mask[ky] = rows[ky] ? 0xFFFFFFFFu : 0;
      }
      for (int32_t q = 0; q < kh >> 1; ++q)
        off_pair[q] = (off & mask[2 * q] & 0xFFFFu) | (off & mask[2 * q + 1] & 0xFFFF0000u);
      off_last = off & mask[kh - 1];
    }
    int8_t *y = out;
    for (int32_t ox0 = 0; ox0 < ow; ox0 += chunk, y += chunk * stride) {
      const int32_t n = ow - ox0 < chunk ? ow - ox0 : chunk;
      dw_chunk k = D->row;
      if (!D->whole) {                          /* a whole row's zeros were staged once */
        k = chunk_columns(L, ox0, n);
        zero_columns(D, &k);
      }
      tt_dsp_word *s = D->band + k.left * wc;
      if (masked)
        switch (kh) {
          case 3: stage_masked_3(s, any, mask, C, k.a, k.mid, off_pair, off_last); break;
          case 4: stage_masked_4(s, any, mask, C, k.a, k.mid, off_pair, off_last); break;
          case 5: stage_masked_5(s, any, mask, C, k.a, k.mid, off_pair, off_last); break;
          case 7: stage_masked_7(s, any, mask, C, k.a, k.mid, off_pair, off_last); break;
          case 8: stage_masked_8(s, any, mask, C, k.a, k.mid, off_pair, off_last); break;
          default: stage_masked(s, any, mask, kh, C, k.a, k.mid, off_pair, off_last); break;
        }
      else if (!inner)
        dw_dsp_stage(s, rows, kh, C, g, k.a, k.mid, off, D->m > 1);
      else if (D->m > 1)
        stage_inner_one(s, rows, kh, C, k.a, k.mid, off);
      else
        switch (kh) {
          case 3: stage_inner_3(s, rows, C, k.a, k.mid, off); break;
          case 4: stage_inner_4(s, rows, C, k.a, k.mid, off); break;
          case 5: stage_inner_5(s, rows, C, k.a, k.mid, off); break;
          case 7: stage_inner_7(s, rows, C, k.a, k.mid, off); break;
          case 8: stage_inner_8(s, rows, C, k.a, k.mid, off); break;
          default: stage_inner_any(s, rows, kh, C, k.a, k.mid, off); break;
        }
      if (pairs3) {       /* pairs of windows in assembly, an odd last one alone */
        for (int32_t j = 0; j < D->shared; ++j)
          dw3_row(dw3_pairs(L->p), D->band, D->band + (n - 1) * L->p->stride_w * wc, D + j, L,
                  c + 4 * j, n, y + 4 * j, stride);
        continue;
      }
      if (L->kh == 5 && L->kw == 5 && p->dilation_w == 1 && D->fast && D->full && !D->slow &&
          g == 4) {      /* MCUNet's: the windows' columns inside the image only */
        dw5_outputs(D, L, &k, n, y, stride);
        continue;
      }
      if (dw_dsp_outputs_of(D, L, g, n, y, stride)) continue;
      dw_dsp_sums_of(D, L, n);
      dw_dsp_store(D, L, c, g, n, y, stride);
    }
  }
}

/* tt_dsp_dw3_stage(const dw3_stage_args *a): dw_dsp_stage_inner for three rows inside the
 * image and four channels (n > 0 columns), in assembly: per column 3 LDR, 2 PKH, 6 SXTAB16,
 * 3 STRD; two columns a loop, the second's rows (one step on) in registers of their own, and
 * one index for all six, counted up to 0 so that its ADDS ends the loop (no CMP): 15
 * instructions a column (one column a loop with a CMP, round 11: 17; gcc's: 22). Thumb-2 has
 * no post-indexed load by a register, hence the index. An odd count stages its first column
 * alone. */
typedef struct {
  tt_dsp_word *s;                    /* the first column's 6 words */
  const int8_t *row0, *row1, *row2;  /* the first column's four channels in each row */
  int32_t step;                      /* bytes from one column to the next (C) */
  int32_t end;                       /* n * step */
  uint32_t off;                      /* the input offset in both 16-bit lanes */
  uint32_t off_pair;                 /* _top only: the pair's offset, row 0's lane 0 */
} dw3_stage_args;
/* One column: the pair's row a word in x (r8 loaded, or a register of zeros), row b's in
 * r10, the third row's in r11 (or none: zeros); pair words offset by po, the third row's by
 * r7; at index r9; band words 2-3 (the pair's channels 2 and 3), 4-5 (the third row), then
 * 0-1 by the post-indexed store that moves r1 on. */
#define TT_DW3_STAGE_PAIR_HI(x, po)                                                         \
  "  pkhbt r12, " #x ", r10, lsl #16\n"                                                     \
  "  pkhtb r10, r10, " #x ", asr #16\n"                                                     \
  "  sxtab16 r8, " #po ", r10\n"                                                            \
  "  sxtab16 r10, " #po ", r10, ror #8\n"                                                   \
  "  strd r8, r10, [r1, #8]\n"
#define TT_DW3_STAGE_PAIR_LO(po)                                                            \
  "  sxtab16 r8, " #po ", r12\n"                                                            \
  "  sxtab16 r12, " #po ", r12, ror #8\n"                                                   \
  "  strd r8, r12, [r1], #24\n"
#define TT_DW3_STAGE_THIRD                                                                  \
  "  sxtab16 r8, r7, r11\n"                                                                 \
  "  sxtab16 r11, r7, r11, ror #8\n"                                                        \
  "  strd r8, r11, [r1, #16]\n"
#define TT_DW3_STAGE_COLUMN(a, b, c)                                                        \
  "  ldr r8, [" #a ", r9]\n"                                                                \
  "  ldr r10, [" #b ", r9]\n"                                                               \
  "  ldr r11, [" #c ", r9]\n"                                                               \
  TT_DW3_STAGE_PAIR_HI(r8, r7) TT_DW3_STAGE_THIRD TT_DW3_STAGE_PAIR_LO(r7)
/* The top border row (row 0 above the image): masked as stage_masked_3 masks it, row 0's
 * word zero (r2) and the pair's offset without its lane (r0); 13 a column. */
#define TT_DW3_STAGE_COLUMN_TOP(b, c)                                                       \
  "  ldr r10, [" #b ", r9]\n"                                                               \
  "  ldr r11, [" #c ", r9]\n"                                                               \
  TT_DW3_STAGE_PAIR_HI(r2, r0) TT_DW3_STAGE_THIRD TT_DW3_STAGE_PAIR_LO(r0)
/* The bottom border row (row 2 below the image): its words zeros (r4), 11 a column. */
#define TT_DW3_STAGE_COLUMN_BOTTOM(a, b)                                                    \
  "  ldr r8, [" #a ", r9]\n"                                                                \
  "  ldr r10, [" #b ", r9]\n"                                                               \
  TT_DW3_STAGE_PAIR_HI(r8, r7)                                                              \
  "  strd r4, r4, [r1, #16]\n"                                                              \
  TT_DW3_STAGE_PAIR_LO(r7)
/* The loop of a staging function: an odd count's first column alone, then two a loop (r8:
 * n, for its parity; r5 the step; r9 the index from -n step up to 0). */
#define TT_DW3_STAGE_LOOP(FIRST, SECOND)                                                    \
  "  tst r8, #1\n"                                                                          \
  "  beq 1f\n"                                                                              \
  FIRST                                                                                     \
  "  adds r9, r9, r5\n"                                                                     \
  "  beq 2f\n"                                                                              \
  "1:\n"                                                                                    \
  FIRST                                                                                     \
  SECOND                                                                                    \
  "  adds r9, r9, r5, lsl #1\n"                                                             \
  "  bne 1b\n"                                                                              \
  "2:\n"                                                                                    \
  "  pop {r4-r11, pc}\n"
#define TT_DW3_STAGE_FN(NAME, BODY)                                                         \
  __asm__(                                                                                  \
      TT_DSP_ASM_ENTRY(NAME)                                                                \
      "  ldm r0, {r1-r7}\n"                                                                 \
      "  rsb r9, r6, #0\n"               /* the index runs from -n step up to 0 */          \
      "  udiv r8, r6, r5\n"              /* n, for its parity */                            \
      BODY                                                                                  \
      "  .size " #NAME ", . - " #NAME "\n"                                                  \
      "  .text\n")
TT_DW3_STAGE_FN(tt_dsp_dw3_stage,
    "  add r2, r2, r6\n"
    "  add r3, r3, r6\n"
    "  add r4, r4, r6\n"
    "  add r0, r2, r5\n"               /* the second column of a loop's rows */
    "  add r6, r3, r5\n"
    "  add lr, r4, r5\n"
    TT_DW3_STAGE_LOOP(TT_DW3_STAGE_COLUMN(r2, r3, r4), TT_DW3_STAGE_COLUMN(r0, r6, lr)));
TT_DW3_STAGE_FN(tt_dsp_dw3_stage_top,
    "  ldr r0, [r0, #28]\n"            /* the pair's offset, row 0's lane 0 */
    "  movs r2, #0\n"
    "  add r3, r3, r6\n"
    "  add r4, r4, r6\n"
    "  add r6, r3, r5\n"
    "  add lr, r4, r5\n"
    TT_DW3_STAGE_LOOP(TT_DW3_STAGE_COLUMN_TOP(r3, r4), TT_DW3_STAGE_COLUMN_TOP(r6, lr)));
TT_DW3_STAGE_FN(tt_dsp_dw3_stage_bottom,
    "  add r2, r2, r6\n"
    "  add r3, r3, r6\n"
    "  movs r4, #0\n"
    "  add r0, r2, r5\n"
    "  add r6, r3, r5\n"
    TT_DW3_STAGE_LOOP(TT_DW3_STAGE_COLUMN_BOTTOM(r2, r3), TT_DW3_STAGE_COLUMN_BOTTOM(r0, r6)));
void tt_dsp_dw3_stage(const dw3_stage_args *a);
/* The same with row 0 above the image (a->row0 unused; a->off_pair the offset in row 1's lane
 * only) or row 2 below it (a->row2 unused), the same words as stage_masked_3 stages. */
void tt_dsp_dw3_stage_top(const dw3_stage_args *a);
void tt_dsp_dw3_stage_bottom(const dw3_stage_args *a);

/* dw_dsp_rows for 3x3 windows in pairs (D->pairs3) of depth multiplier 1 whose row is one
 * chunk (D->whole): per output row only its three input rows are found, staged and handed to
 * the assembly, which on 6x6 maps is most of the work (the generic loop's bookkeeping cost
 * about a fifth of a row there). */
/* The three input rows of a 3x3 output row whose rows reach outside the image (iy its
 * first): each row in the image as it is, any other as `base` masked to zeros, and the
 * input offset kept only for the rows in the image (off_pair: rows 0 and 1, off_last: 2). */
static inline __attribute__((always_inline)) void dw3_outside(
    const int8_t *base, int32_t iy, int32_t dilation, int32_t H, int32_t row_bytes,
    uint32_t off, const int8_t *rows[3], uint32_t mask[3], uint32_t *off_pair,
    uint32_t *off_last) {
  for (int32_t ky = 0; ky < 3; ++ky) {
    const int32_t y = iy + ky * dilation;
    const int in_image = y >= 0 && y < H;
    rows[ky] = in_image ? base + y * row_bytes : base;
    mask[ky] = in_image ? 0xFFFFFFFFu : 0;
  }
  *off_pair = (off & mask[0] & 0xFFFFu) | (off & mask[1] & 0xFFFF0000u);
  *off_last = off & mask[2];
}

/* The staging of a 3x3 output row whose first input row is iy, its rows from column a (at
 * byte col of a row): tt_dsp_dw3_stage inside the image, its _top/_bottom forms where only
 * row 0 or only row 2 lies outside (a map's border rows: half of a 4x4 map's), st's rows
 * and offsets set; NULL for any other row (stage_masked_3). */
typedef void dw3_stage_fn(const dw3_stage_args *);
static inline __attribute__((always_inline)) dw3_stage_fn *dw3_stager(
    const int8_t *base, int32_t iy, int32_t dilation, int32_t H, int32_t row_bytes,
    int32_t col, dw3_stage_args *st) {
  const int32_t y1 = iy + dilation, y2 = y1 + dilation, dh = dilation * row_bytes;
  if (y1 < 0 || y1 >= H) return 0;
  if (iy >= 0 && y2 < H) {
    st->row0 = base + iy * row_bytes + col;
    st->row1 = st->row0 + dh;
    st->row2 = st->row1 + dh;
    return tt_dsp_dw3_stage;
  }
  if (iy < 0 && y2 < H) {
    st->row1 = base + y1 * row_bytes + col;
    st->row0 = st->row1;                     /* not read */
    st->row2 = st->row1 + dh;
    st->off_pair = st->off & 0xFFFF0000u;    /* row 1's lane */
    return tt_dsp_dw3_stage_top;
  }
  if (iy >= 0) {                             /* y2 >= H */
    st->row0 = base + iy * row_bytes + col;
    st->row1 = st->row0 + dh;
    st->row2 = st->row1;                     /* not read */
    return tt_dsp_dw3_stage_bottom;
  }
  return 0;
}

/* --- one call for many group rows -------------------------------------------------------
 * tt_dsp_dw3_run(a): a->items group rows of 3x3 pairs, each staged (a->first for item 0,
 * a->last for the last, a->mid between) and then summed, requantized and stored by
 * a->pairs_of, with no slow channel and an even row (no odd last window: the band is
 * restaged by the next item). From one item to the next the staged rows move on by
 * a->src_step bytes, the outputs by a->y_step and the group record by a->D_step: the
 * streams' channel groups of one output row (4, 4, the pack's group bytes) or the rows of
 * one group (a row's bytes times the stride, the output row's, 0). The loop keeps its state
 * in the registers the callees save; per item it costs about 23 instructions besides the
 * callees, where the C loops (dw3_rows, dw3_packed_rows) spent about 40 and built both
 * argument records. The record is updated in place (its rows and the pair fields). */
typedef struct {
  dw3_stage_args st;          /*  0: item 0's staging (its rows, virtual where not read) */
  dw3_args pair;              /* 32: band, y_stride and pairs set; w, bias, q, y per item */
  const dw_dsp *D;            /* 60: item 0's group */
  int32_t D_step;             /* 64: bytes from one item's group record to the next's */
  int32_t y_step;             /* 68: bytes from one item's outputs to the next's */
  int32_t src_step;           /* 72: bytes from one item's input rows to the next's */
  int32_t items;              /* 76: > 0 */
  dw3_stage_fn *first, *mid, *last;  /* 80, 84, 88: stagers of item 0, the inner ones, the last */
  dw3_pairs_fn *pairs_of;     /* 92 */
} dw3_run_args;
typedef char dw3_run_layout[offsetof(dw3_run_args, pair) == 32 &&
                                    offsetof(dw3_run_args, D) == 60 &&
                                    offsetof(dw3_run_args, pairs_of) == 92 &&
                                    offsetof(dw3_stage_args, row2) == 12 &&
                                    offsetof(dw_dsp, bias) == 28 && offsetof(dw_dsp, q) == 44
                                ? 1 : -1];
__asm__(
    TT_DSP_ASM_LABEL(tt_dsp_dw3_run)
    "  push {r3-r11, lr}\n"
    "  mov r4, r0\n"
    "  ldr r5, [r4, #60]\n"            /* the group record */
    "  ldr r6, [r4, #76]\n"            /* items left */
    "  ldr r7, [r4, #80]\n"            /* this item's stager */
    "  ldr r8, [r4, #48]\n"            /* this item's outputs */
    "  ldr r9, [r4, #92]\n"
    "  ldr r10, [r4, #72]\n"
    "  ldr r11, [r4, #68]\n"
    "1:\n"
    "  mov r0, r4\n"
    "  blx r7\n"
    "  ldr r1, [r5]\n"                 /* D->w, D->bias, D->q, y into the pair record */
    "  add r2, r5, #28\n"
    "  add r3, r5, #44\n"
    "  add r0, r4, #36\n"
    "  stm r0, {r1, r2, r3, r8}\n"
    "  add r0, r4, #32\n"
    "  blx r9\n"
    "  subs r6, r6, #1\n"
    "  beq 2f\n"
    "  add r0, r4, #4\n"                /* the rows move on (Thumb-2 has no LDMIB) */
    "  ldm r0, {r1, r2, r3}\n"
    "  add r1, r1, r10\n"
    "  add r2, r2, r10\n"
    "  add r3, r3, r10\n"
    "  stm r0, {r1, r2, r3}\n"
    "  add r8, r8, r11\n"
    "  ldr r0, [r4, #64]\n"
    "  add r5, r5, r0\n"
    "  cmp r6, #1\n"
    "  ite eq\n"
    "  ldreq r7, [r4, #88]\n"
    "  ldrne r7, [r4, #84]\n"
    "  b 1b\n"
    "2:\n"
    "  pop {r3-r11, pc}\n"
    "  .size tt_dsp_dw3_run, . - tt_dsp_dw3_run\n"
    "  .text\n");
void tt_dsp_dw3_run(dw3_run_args *a);

/* The stager of a 3x3 output row whose first input row is iy (dw3_stager's choice, without
 * its rows): NULL where two rows lie outside. */
static inline __attribute__((always_inline)) dw3_stage_fn *dw3_stage_kind(int32_t iy,
                                                                         int32_t dilation,
                                                                         int32_t H) {
  const int32_t y1 = iy + dilation, y2 = y1 + dilation;
  if (y1 < 0 || y1 >= H) return 0;
  if (iy >= 0) return y2 < H ? tt_dsp_dw3_stage : tt_dsp_dw3_stage_bottom;
  return y2 < H ? tt_dsp_dw3_stage_top : 0;
}

static __attribute__((noinline)) void dw3_rows(const dw_dsp *D, const dw_layer *L,
                                               int32_t c, int32_t b, int32_t oy0,
                                               int32_t oy1, int8_t *out, int32_t row_step,
                                               int32_t stride) {
  const tt_fwd_conv_params *p = L->p;
  const int32_t C = L->in->c, H = L->in->h, W = L->in->w, wc = D->wc, n = L->out->w;
  const int8_t *const base = L->input + b * H * W * C + c;
  const uint32_t off = tt_dsp_offset_pair(p->input_offset);
  const dw_chunk k = D->row;
  tt_dsp_word *const s = D->band + k.left * wc;
  dw3_pairs_fn *const pairs_of = dw3_pairs(p);
  const tt_dsp_word *const last = D->band + (n - 1) * p->stride_w * wc;
  /* the rows in one tt_dsp_dw3_run where they take it: an even row, no slow channel, a
   * border row (top, bottom) at most at each end and the rows between inside; a single row
   * (the in-place ring's) costs about as much either way */
  const int32_t items = oy1 - oy0, dil = p->dilation_h, sh = p->stride_h, rb = W * C;
  if (items > 1 && n >= 2 && !(n & 1) && !D->slow && k.mid > 0) {
    const int32_t iy0 = oy0 * sh - p->pad_top, iyl = (oy1 - 1) * sh - p->pad_top;
    dw3_stage_fn *const first = dw3_stage_kind(iy0, dil, H), *const end = dw3_stage_kind(iyl, dil, H);
    if (first && end && (items <= 2 || (iy0 + sh >= 0 && iyl - sh + 2 * dil < H))) {
      const uintptr_t row0 = (uintptr_t)base + (uintptr_t)(iy0 * rb + k.a * C);
      dw3_run_args r = {{s, (const int8_t *)row0, (const int8_t *)(row0 + dil * rb),
                         (const int8_t *)(row0 + 2 * dil * rb), C, k.mid * C, off,
                         off & 0xFFFF0000u},
                        {D->band, 0, 0, 0, out, stride, n >> 1},
                        D, 0, row_step, sh * rb, items, first, tt_dsp_dw3_stage, end, pairs_of};
      tt_dsp_dw3_run(&r);
      return;
    }
  }
  for (int32_t oy = oy0; oy < oy1; ++oy, out += row_step) {
    const int32_t iy = oy * p->stride_h - p->pad_top;
    dw3_stage_args st = {s, 0, 0, 0, C, k.mid * C, off, 0};
    dw3_stage_fn *const stage = dw3_stager(base, iy, p->dilation_h, H, W * C, k.a * C, &st);
    if (stage) {
      if (k.mid > 0) stage(&st);
    } else {
      const int8_t *rows[3];
      uint32_t mask[3], off_pair[1], off_last;
      dw3_outside(base, iy, p->dilation_h, H, W * C, off, rows, mask, off_pair, &off_last);
      stage_masked_3(s, rows, mask, C, k.a, k.mid, off_pair, off_last);
    }
    dw3_row(pairs_of, D->band, last, D, L, c, n, out, stride);
  }
}

/* --- DSP: a depth multiplier m > 1 -------------------------------------------------------
 * Input channel c feeds output channels [c m, c m + m): a convolution from one channel to m,
 * i.e. the matrix product of tt_fwd_dsp.c with the m filter rows (the filter's [kh, kw] taps
 * of each output channel, gathered once per input channel) and one im2col column of kh kw
 * taps per output pixel. Returns 0 when the filter and one column do not fit the buffer. */
static int dw_dsp_multiplier(const tt_fwd_conv_params *p, const int32_t *multiplier,
                             const int8_t *shift, const tt_fwd_dims *in, const int8_t *input,
                             const tt_fwd_dims *f, const int8_t *filter, const int32_t *bias,
                             const tt_fwd_dims *out, int8_t *output) {
  const int32_t c_in = in->c, cm = out->c, m = cm / c_in, kh = f->h, kw = f->w, K = kh * kw;
  const int32_t rows_bytes = (m * K + 3) & ~3;
  tt_dsp_word buf[TT_FWD_DSP_STAGE_BYTES / 4];
  if (rows_bytes >= TT_FWD_DSP_STAGE_BYTES) return 0;
  int8_t *rows = (int8_t *)buf;
  tt_dsp_word *stage = buf + rows_bytes / 4;
  tt_dsp_mm mm = {rows, 0, K, 0, K, 0, m, 0, 0, 0, p->input_offset, p->output_offset,
                  p->act_min, p->act_max};
  const int32_t P0 = tt_dsp_block_columns(&mm, TT_FWD_DSP_STAGE_BYTES - rows_bytes);
  if (P0 == 0 || !tt_dsp_mm_ok(&mm)) return 0;
  const int32_t pixels = out->h * out->w, columns = out->n * pixels;
  for (int32_t c = 0; c < c_in; ++c) {
    for (int32_t j = 0; j < m; ++j)
      for (int32_t t = 0; t < K; ++t) rows[j * K + t] = filter[t * cm + c * m + j];
    mm.bias = bias ? bias + c * m : 0;
    mm.multiplier = multiplier + c * m;
    mm.shift = shift + c * m;
    const int known = tt_dsp_mm_rows_one(&mm);
    int32_t P = P0;
    for (int32_t col = 0; col < columns; col += P) {
      while (col + P > columns) P >>= 1;
      for (int32_t q = 0; q < P; ++q) {
        const int32_t b = (col + q) / pixels, pix = (col + q) % pixels;
        const int32_t iy0 = pix / out->w * p->stride_h - p->pad_top;
        const int32_t ix0 = pix % out->w * p->stride_w - p->pad_left;
        for (int32_t ky = 0, t = 0; ky < kh; ++ky) {
          const int32_t iy = iy0 + ky * p->dilation_h;
          for (int32_t kx = 0; kx < kw; ++kx, ++t) {
            const int32_t ix = ix0 + kx * p->dilation_w;
            const int inside = iy >= 0 && iy < in->h && ix >= 0 && ix < in->w;
            tt_dsp_stage_one(stage, P, q, t,
                             inside ? 2 * (input[((b * in->h + iy) * in->w + ix) * c_in + c] +
                                               p->input_offset)
                                    : 0);
          }
        }
        tt_dsp_stage_pad(&mm, stage, P, q);
      }
      tt_dsp_mm_blocks(&mm, stage, P, 1, output + col * cm + c * m, cm, known);
    }
  }
  return 1;
}
#endif

/* The rows of one channel group [c, c + g), however they are computed: the DSP version when
 * the target has one and the group's kernel fits its buffer, else dw_row. */
typedef struct {
  const dw_layer *L;
  int32_t c, g;
#if TT_FWD_DSP
  dw_dsp dsp;
  int use_dsp;
#endif
} dw_group;

/* The DSP versions' buffer and the call's shape, on the kernels' stack (nothing elsewhere). */
#if TT_FWD_DSP
typedef struct {
  tt_dsp_word buf[TT_FWD_DSP_STAGE_BYTES / 4];
  dw_dsp_shape shape;
} dw_buffer;
#else
typedef char dw_buffer;
#endif

/* Once per kernel call, before its groups. */
static void dw_buffer_init(dw_buffer *B, const dw_layer *L) {
#if TT_FWD_DSP
  dw_dsp_shape_init(&B->shape, L);
#else
  (void)B;
  (void)L;
#endif
}

static void dw_group_init(dw_group *G, const dw_layer *L, int32_t c, int32_t g, dw_buffer *B) {
  G->L = L;
  G->c = c;
  G->g = g;
#if TT_FWD_DSP
  G->use_dsp = B->shape.ok;
  if (G->use_dsp) dw_dsp_init(&G->dsp, &B->shape, L, c, g, B->buf);
#else
  (void)B;
#endif
}

/* Where `bytes` of output may be put while the group's rows are computed: the DSP buffer's
 * free tail, or NULL. */
static int8_t *dw_group_spare(const dw_group *G, int32_t bytes) {
#if TT_FWD_DSP
  if (G->use_dsp && G->dsp.tail_bytes >= bytes) return G->dsp.tail;
#else
  (void)G;
  (void)bytes;
#endif
  return 0;
}

/* Rows [oy0, oy1) of batch b, row oy0 + k at out + k * row_step. */
#if TT_FWD_DSP
static void dw_dsp_group_rows(const dw_dsp *D, const dw_layer *L, int32_t c, int32_t g,
                              int32_t b, int32_t oy0, int32_t oy1, int8_t *out,
                              int32_t row_step, int32_t stride) {
  if (D->pairs3 && D->whole && D->m == 1)
    dw3_rows(D, L, c, b, oy0, oy1, out, row_step, stride);
  else
    dw_dsp_rows(D, L, c, g, b, oy0, oy1, out, row_step, stride);
}
#endif

static void dw_group_rows(const dw_group *G, int32_t b, int32_t oy0, int32_t oy1, int8_t *out,
                          int32_t row_step, int32_t stride) {
#if TT_FWD_DSP
  if (G->use_dsp) {
    dw_dsp_group_rows(&G->dsp, G->L, G->c, G->g, b, oy0, oy1, out, row_step, stride);
    return;
  }
#endif
  for (int32_t oy = oy0; oy < oy1; ++oy, out += row_step)
    dw_row(G->L, b, oy, G->c, G->g, out, stride);
}

#if TT_FWD_DSP
/* A depth multiplier m = 4k (2 <= k <= DW_SHARED_MAX) of 3x3 windows in pairs: the k groups
 * of four output channels of one input channel read the same staged band (each of its lanes
 * holds that one channel), so a chunk is staged once for the k of them, not k times (the
 * person detector's first layer, m = 8: staging was a third of its instructions, twice).
 * The buffer holds the k packed filters, the band, and the k group records at its end.
 * Returns 0 (nothing done) where the layer is not of that kind or a chunk of two windows
 * does not fit. The same staging and pair functions as dw_dsp_rows, so the same bits. */
#define DW_SHARED_MAX 4
static __attribute__((noinline)) int dw_dsp_shared(const dw_layer *L, dw_buffer *B,
                                                   int8_t *output) {
  const tt_fwd_conv_params *p = L->p;
  const dw_dsp_shape *const S = &B->shape;
  const int32_t k = S->m >> 2;
  if (!S->ok || !S->shape3 || !S->fast || !S->full || k < 2 || k > DW_SHARED_MAX) return 0;
  const int32_t wc = S->wc, sw = p->stride_w, fw = L->kw * wc, m = S->m;
  const int32_t rec = (int32_t)((sizeof(dw_dsp) + 3) / 4);
  const int32_t band_words = TT_FWD_DSP_STAGE_BYTES / 4 - k * (fw + rec);
  const int32_t chunk = (band_words / wc - L->kw + sw) / sw;   /* (n - 1) sw + 3 columns */
  if (chunk < 2) return 0;
  tt_dsp_word *const band = B->buf + k * fw;
  dw_dsp *const D = (dw_dsp *)(void *)(B->buf + TT_FWD_DSP_STAGE_BYTES / 4 - k * rec);
  const tt_fwd_dims *out = L->out;
  const int32_t whole = chunk >= out->w, cm = out->c;
  for (int32_t b = 0; b < out->n; ++b)
    for (int32_t ci = 0; ci < L->in->c; ++ci) {
      for (int32_t g = 0; g < k; ++g) {
        dw_dsp_pack(&D[g], S, L, ci * m + 4 * g, 4, B->buf + g * fw);
        D[g].band = band;                 /* the slow channels' fix reads it */
      }
      D->chunk = whole ? out->w : chunk;  /* dw_dsp_place's fields that dw_dsp_rows reads */
      D->whole = whole;
      D->row = chunk_columns(L, 0, D->chunk);
      D->shared = k;
      if (whole) zero_columns(D, &D->row);
      dw_dsp_group_rows(D, L, ci * m, 4, b, 0, out->h, output + b * out->h * out->w * cm + ci * m,
                        out->w * cm, cm);
    }
  return 1;
}
#endif


void tt_depthwise_conv2d_s8(const tt_fwd_conv_params *p, const int32_t *multiplier,
                            const int8_t *shift, const tt_fwd_dims *input_dims,
                            const int8_t *input, const tt_fwd_dims *filter_dims,
                            const int8_t *filter, const int32_t *bias,
                            const tt_fwd_dims *output_dims, int8_t *output) {
  const tt_fwd_dims *in = input_dims, *out = output_dims;
  const int32_t c_in = in->c, cm = out->c, m = cm / c_in, kh = filter_dims->h,
                kw = filter_dims->w;
  if (m == 1) {
    dw_layer L = {p, multiplier, shift, bias, in, out, input, filter, kh, kw, kw};
#if TT_FWD_DSP
    dw_trim(&L, cm);
#endif
    dw_buffer buf;
    dw_buffer_init(&buf, &L);
    for (int32_t b = 0; b < out->n; ++b)
      for (int32_t c = 0; c < c_in; c += 4) {
        dw_group G;
        dw_group_init(&G, &L, c, c_in - c < 4 ? c_in - c : 4, &buf);
        dw_group_rows(&G, b, 0, out->h, output + b * out->h * out->w * cm + c, out->w * cm, cm);
      }
    return;
  }
#if TT_FWD_DSP
  if (m % 4 == 0) {         /* groups of four output channels of one input channel */
    dw_layer L = {p, multiplier, shift, bias, in, out, input, filter, kh, kw, kw};
    dw_trim(&L, cm);
    dw_buffer buf;
    dw_buffer_init(&buf, &L);
    if (dw_dsp_shared(&L, &buf, output)) return;
    dw_group G;
    dw_group_init(&G, &L, 0, 4, &buf);
    if (G.use_dsp) {        /* the buffer fits the kernel: then every group's */
      for (int32_t b = 0; b < out->n; ++b)
        for (int32_t c = 0; c < cm; c += 4) {
          if (b > 0 || c > 0) dw_group_init(&G, &L, c, 4, &buf);
          dw_group_rows(&G, b, 0, out->h, output + b * out->h * out->w * cm + c, out->w * cm,
                        cm);
        }
      return;
    }
  }
  if (dw_dsp_multiplier(p, multiplier, shift, in, input, filter_dims, filter, bias, out, output))
    return;
#endif
  TT_FWD_FOR_EACH_WINDOW(in, out, p->stride_h, p->stride_w, p->pad_top, p->pad_left,
                         p->dilation_h, p->dilation_w, kh, kw, {
    int8_t *y = output + ((b * out->h + oy) * out->w + ox) * cm;
    for (int32_t oc = 0; oc < cm; ++oc) {
      const int32_t acc = tap_sum(p, in, input, b, oc / m, filter, cm, oc, iy0, ky0, ky1, ix0,
                                  kx0, kx1, kw);
      y[oc] = tt_fwd_requantize(acc + (bias ? bias[oc] : 0), multiplier[oc], shift[oc],
                                p->output_offset, p->act_min, p->act_max);
    }
  })
}

/* --- packed once per layer (tt_dw_pack.h) --------------------------------------------------
 * A pack: the call's shape (dw_dsp_shape), then per group of four channels its dw_dsp (the
 * requantization constants, doubled biases) and packed filter, what dw_dsp_init works out per
 * call; a streamed layer's calls (one per output row) then only place each group in their
 * staging buffer. The sizes are fixed, not sizeof, so that a pack is as large on every
 * target (a generated program plans it on the host). */
#define DW_PACK_SHAPE_BYTES 112
#define DW_PACK_GROUP_BYTES 176

/* Groups of four channels the DSP version computes the layer in (0: none, the layer's depth
 * multiplier being neither 1 nor a multiple of 4). */
static int32_t dw_pack_groups(const tt_fwd_dims *in, const tt_fwd_dims *out) {
  const int32_t m = out->c / in->c;
  return m == 1 ? (in->c + 3) / 4 : (m % 4 == 0 ? out->c / 4 : 0);
}

int32_t tt_depthwise_conv2d_s8_pack_bytes(const tt_fwd_conv_params *p,
                                          const tt_fwd_dims *input_dims,
                                          const tt_fwd_dims *filter_dims,
                                          const tt_fwd_dims *output_dims) {
  int32_t wc, free;
  const int32_t groups = dw_pack_groups(input_dims, output_dims);
  if (groups == 0 || !dw_dsp_fits(p, filter_dims->h, filter_dims->w, &wc, &free)) return 0;
  return DW_PACK_SHAPE_BYTES + groups * (DW_PACK_GROUP_BYTES + filter_dims->w * wc * 4);
}

#if TT_FWD_DSP
typedef char dw_pack_shape_fits[sizeof(dw_dsp_shape) <= DW_PACK_SHAPE_BYTES ? 1 : -1];
typedef char dw_pack_group_fits[sizeof(dw_dsp) <= DW_PACK_GROUP_BYTES ? 1 : -1];

/* Group i's record in a pack of kw * wc filter words a group. */
static dw_dsp *dw_pack_group(void *pack, int32_t i, int32_t filter_words) {
  return (dw_dsp *)((int8_t *)pack + DW_PACK_SHAPE_BYTES +
                    i * (DW_PACK_GROUP_BYTES + filter_words * 4));
}

/* dw3_rows for every channel group of a packed layer whose groups all take 3x3 pairs of four
 * channels (depth multiplier 1, a row one chunk): per output row its input rows are found
 * once for all the groups, and a group only stages its four channels and hands them to the
 * assembly. A stream calls once per output row, so dw_dsp_place and dw3_rows' own set-up
 * were paid per group and row (on 8x8 maps about a sixth of a group's row); here once per
 * call. The band and its zero columns are the first group's, the same for every group. */
static __attribute__((noinline)) void dw3_packed_rows(void *pack, int32_t groups,
                                                      dw_dsp_shape *S, const dw_layer *L,
                                                      tt_dsp_word *buf, int32_t b, int8_t *out,
                                                      int32_t row_step, int32_t stride) {
  const tt_fwd_conv_params *p = L->p;
  const int32_t C = L->in->c, H = L->in->h, W = L->in->w, n = L->out->w, wc = S->wc;
  const int32_t group_bytes = DW_PACK_GROUP_BYTES + L->kw * wc * 4;
  dw_dsp *const first = dw_pack_group(pack, 0, L->kw * wc);
  dw_dsp_place(first, S, L, buf);
  tt_dsp_word *const band = first->band;
  const dw_chunk k = first->row;
  tt_dsp_word *const s = band + k.left * wc;
  const int8_t *const base = L->input + b * H * W * C;
  const uint32_t off = tt_dsp_offset_pair(p->input_offset);
  dw3_pairs_fn *const pairs_of = dw3_pairs(p);
  const tt_dsp_word *const last = band + (n - 1) * p->stride_w * wc;
  for (int32_t oy = 0; oy < L->out->h; ++oy, out += row_step) {
    const int32_t iy = oy * p->stride_h - p->pad_top;
    dw3_stage_args st = {s, 0, 0, 0, C, k.mid * C, off, 0};
    dw3_stage_fn *const stage = dw3_stager(base, iy, p->dilation_h, H, W * C, k.a * C, &st);
    const int8_t *rows[3];
    uint32_t mask[3], off_pair[1], off_last = 0;
    if (!stage)
      dw3_outside(base, iy, p->dilation_h, H, W * C, off, rows, mask, off_pair, &off_last);
    if (stage && k.mid > 0 && S->run3 && n >= 2 && !(n & 1)) {  /* every group in one call */
      dw3_run_args r = {st, {band, 0, 0, 0, out, stride, n >> 1}, first, group_bytes, 4, 4,
                        groups, stage, stage, stage, pairs_of};
      tt_dsp_dw3_run(&r);
      continue;
    }
    int8_t *y = out;
    int8_t *g = (int8_t *)first;
    for (int32_t i = 0; i < groups; ++i, g += group_bytes, y += 4) {
      dw_dsp *const D = (dw_dsp *)g;
      if (!stage) {
        stage_masked_3(s, rows, mask, C, k.a, k.mid, off_pair, off_last);
        rows[0] += 4;
        rows[1] += 4;
        rows[2] += 4;
      } else if (k.mid > 0) {
        stage(&st);
        st.row0 += 4;
        st.row1 += 4;
        st.row2 += 4;
      }
      if (D->slow) D->band = band;  /* its fix reads the band through its record: the shared one */
      dw3_row(pairs_of, band, last, D, L, 4 * i, n, y, stride);
    }
  }
}
#endif

void tt_depthwise_conv2d_s8_pack(const tt_fwd_conv_params *p, const int32_t *multiplier,
                                 const int8_t *shift, const tt_fwd_dims *input_dims,
                                 const tt_fwd_dims *filter_dims, const int8_t *filter,
                                 const int32_t *bias, const tt_fwd_dims *output_dims,
                                 void *pack) {
#if TT_FWD_DSP
  if (!pack) return;
  dw_layer L = {p, multiplier, shift, bias, input_dims, output_dims, 0, filter,
                filter_dims->h, filter_dims->w, filter_dims->w};
  dw_trim(&L, output_dims->c);
  dw_dsp_shape S;              /* copied in and out: a pack is only 4-aligned */
  dw_dsp_shape_init(&S, &L);
  memcpy(pack, &S, sizeof S);
  const int32_t groups = dw_pack_groups(input_dims, output_dims);
  /* A layer with no groups to pack, or one this build's staging does not fit (a target
   * built with another TT_FWD_DSP_STAGE_BYTES than the host that sized the pack): the
   * shape recorded says so and the packed call takes the unpacked kernel. */
  if (!S.ok || groups == 0) return;
  const int32_t words = L.kw * S.wc;
  const int32_t channels = S.m == 1 ? input_dims->c : output_dims->c;
  int run3 = 1;
  for (int32_t i = 0, c = 0; i < groups; ++i, c += 4) {
    dw_dsp *D = dw_pack_group(pack, i, words);
    dw_dsp_pack(D, &S, &L, c, channels - c < 4 ? channels - c : 4,
                (tt_dsp_word *)((int8_t *)D + DW_PACK_GROUP_BYTES));
    run3 &= D->pairs3 && !D->slow;
  }
  S.run3 = run3 && S.m == 1;
  memcpy(pack, &S, sizeof S);
#else
  (void)p, (void)multiplier, (void)shift, (void)input_dims, (void)filter_dims, (void)filter,
      (void)bias, (void)output_dims, (void)pack;
#endif
}

#if TT_FWD_DSP
/* A pack's shape into S (the pack is only 4-aligned, S holds an int64). A stream copies it
 * once per depthwise output row: on a Cortex-M, where the shape is 26 words, by LDM and STM
 * (8 instructions; the C library's memcpy took about 60). */
static inline __attribute__((always_inline)) void shape_of_pack(dw_dsp_shape *S,
                                                                const void *pack) {
#if defined(__thumb2__)
  if (sizeof *S == 104) {
    void *dst = S;
    const void *src = pack;
    __asm__ volatile("ldmia %1!, {r2, r3, r4, r5, r6, r8, r10, r12}\n"
                     "stmia %0!, {r2, r3, r4, r5, r6, r8, r10, r12}\n"
                     "ldmia %1!, {r2, r3, r4, r5, r6, r8, r10, r12}\n"
                     "stmia %0!, {r2, r3, r4, r5, r6, r8, r10, r12}\n"
                     "ldmia %1!, {r2, r3, r4, r5, r6, r8, r10, r12}\n"
                     "stmia %0!, {r2, r3, r4, r5, r6, r8, r10, r12}\n"
                     "ldmia %1!, {r2, r3}\n"
                     "stmia %0!, {r2, r3}\n"
                     : "+r"(dst), "+r"(src)
                     :
                     : "r2", "r3", "r4", "r5", "r6", "r8", "r10", "r12", "memory");
    return;
  }
#endif
  memcpy(S, pack, sizeof *S);
}
#endif

void tt_depthwise_conv2d_packed_s8(const tt_fwd_conv_params *p, const int32_t *multiplier,
                                   const int8_t *shift, const tt_fwd_dims *input_dims,
                                   const int8_t *input, const tt_fwd_dims *filter_dims,
                                   const int8_t *filter, const int32_t *bias,
                                   const tt_fwd_dims *output_dims, int8_t *output, void *pack) {
#if TT_FWD_DSP
  dw_layer L = {p, multiplier, shift, bias, input_dims, output_dims, input, filter,
                filter_dims->h, filter_dims->w, filter_dims->w};
  const tt_fwd_dims *out = output_dims;
  dw_buffer B;
  if (pack) {
    shape_of_pack(&B.shape, pack);
    L.kh = B.shape.kh;         /* the taps it was packed with (dw_trim) */
    L.kw = B.shape.kw;
  }
  const int32_t groups = dw_pack_groups(input_dims, out);
  if (!pack || !B.shape.ok || groups == 0) { /* nothing packed: tt_depthwise_conv2d_s8_pack */
    tt_depthwise_conv2d_s8(p, multiplier, shift, input_dims, input, filter_dims, filter, bias,
                           output_dims, output);
    return;
  }
  B.shape.zeroed = 0;
  const int32_t words = L.kw * B.shape.wc;
  const int32_t channels = B.shape.m == 1 ? input_dims->c : out->c, cm = out->c;
  if (B.shape.m == 1 && channels % 4 == 0 && B.shape.whole[1] &&
      dw_pack_group(pack, 0, words)->pairs3) {   /* then every group's: all have four */
    for (int32_t b = 0; b < out->n; ++b)
      dw3_packed_rows(pack, groups, &B.shape, &L, B.buf, b, output + b * out->h * out->w * cm,
                      out->w * cm, cm);
    return;
  }
  for (int32_t b = 0; b < out->n; ++b)
    for (int32_t i = 0, c = 0; i < groups; ++i, c += 4) {
      dw_dsp *D = dw_pack_group(pack, i, words);
      dw_dsp_place(D, &B.shape, &L, B.buf);
      dw_dsp_group_rows(D, &L, c, channels - c < 4 ? channels - c : 4, b, 0, out->h,
                        output + b * out->h * out->w * cm + c, out->w * cm, cm);
    }
#else
  (void)pack;
  tt_depthwise_conv2d_s8(p, multiplier, shift, input_dims, input, filter_dims, filter, bias,
                         output_dims, output);
#endif
}

/* --- in place -------------------------------------------------------------------------------
 * Output element (b, oy, ox, c) lives where input element (pixel P, c) did, P = b*oh*ow +
 * oy*ow + ox counted over all pixels; in batch b's own input that is pixel P - b*h*w (a
 * negative value: an earlier batch, already consumed). Output row q of channel c may be
 * written once no later output row of channel c reads those input pixels, i.e. once they
 * all lie in input rows before the first row the next output row reads. */

/* Whether output row q of batch b may be written after output row oy was computed. */
static int row_writable(const tt_fwd_conv_params *p, const tt_fwd_dims *in,
                        const tt_fwd_dims *out, int32_t b, int32_t q, int32_t oy) {
  if (oy + 1 >= out->h) return 1;
  int32_t first_needed_row = (oy + 1) * p->stride_h - p->pad_top;
  if (first_needed_row < 0) first_needed_row = 0;
  const int32_t last_pixel = (b * out->h + q + 1) * out->w - 1 - b * in->h * in->w;
  return last_pixel < first_needed_row * in->w;
}

/* Rows held in the ring at most: the schedule of tt_depthwise_conv2d_inplace_s8. */
static int32_t ring_lines(const tt_fwd_conv_params *p, const tt_fwd_dims *in,
                          const tt_fwd_dims *out) {
  int32_t most = 0;
  for (int32_t b = 0; b < out->n; ++b) {
    int32_t next = 0;
    for (int32_t oy = 0; oy < out->h; ++oy) {
      if (oy - next + 1 > most) most = oy - next + 1;
      while (next <= oy && row_writable(p, in, out, b, next, oy)) ++next;
    }
  }
  return most;
}

static int inplace_supported(const tt_fwd_dims *in, const tt_fwd_dims *out) {
  return out->c == in->c && out->n == in->n && out->h * out->w <= in->h * in->w;
}

/* Channels computed together in place: the ring's lines hold this many channels each. */
static int32_t group_of(const tt_fwd_dims *in) { return in->c < 4 ? in->c : 4; }

/* n pixels of g channels from src (packed) to dst (a pixel every C bytes). */
static void put_pixels(int8_t *dst, int32_t C, const int8_t *src, int32_t g, int32_t n) {
  if (g == 4)                 /* a word per pixel (one LDR/STR where unaligned is fine) */
    for (int32_t k = 0; k < n; ++k) memcpy(dst + k * C, src + k * 4, 4);
  else
    for (int32_t k = 0; k < n; ++k)
      for (int32_t j = 0; j < g; ++j) dst[k * C + j] = src[k * g + j];
}

#if TT_FWD_DSP
/* tt_dsp_put_words(dst, C, src, n): put_pixels for four channels from word-aligned src (the
 * DSP buffer's tail, where the small maps' groups are computed whole): four pixels a loop,
 * one LDM and four STR a row's C bytes apart, 2 instructions a pixel where put_pixels' loop
 * takes 5 (gcc's for this loop in C: 3). The stores may be unaligned (any C, any data). */
__asm__(
    TT_DSP_ASM_LABEL(tt_dsp_put_words)
    "  push {r4-r9, lr}\n"
    "  lsl r9, r1, #1\n"
    "  add r8, r9, r1\n"
    "  subs r3, r3, #4\n"
    "  blt 2f\n"
    "1:\n"
    "  ldm r2!, {r4-r7}\n"
    "  str r4, [r0]\n"
    "  str r5, [r0, r1]\n"
    "  str r6, [r0, r9]\n"
    "  str r7, [r0, r8]\n"
    "  add r0, r0, r1, lsl #2\n"
    "  subs r3, r3, #4\n"
    "  bge 1b\n"
    "2:\n"
    "  adds r3, r3, #4\n"
    "  beq 4f\n"
    "3:\n"
    "  ldr r4, [r2], #4\n"
    "  str r4, [r0]\n"
    "  add r0, r0, r1\n"
    "  subs r3, r3, #1\n"
    "  bne 3b\n"
    "4:\n"
    "  pop {r4-r9, pc}\n"
    "  .size tt_dsp_put_words, . - tt_dsp_put_words\n"
    "  .text\n");
void tt_dsp_put_words(int8_t *dst, int32_t C, const tt_dsp_word *src, int32_t n);
#endif

int32_t tt_depthwise_conv2d_inplace_s8_scratch_bytes(const tt_fwd_conv_params *p,
                                                     const tt_fwd_dims *input_dims,
                                                     const tt_fwd_dims *filter_dims,
                                                     const tt_fwd_dims *output_dims) {
  (void)filter_dims;
  if (!inplace_supported(input_dims, output_dims)) return 0;
  return ring_lines(p, input_dims, output_dims) * output_dims->w * group_of(input_dims);
}

int tt_depthwise_conv2d_inplace_s8(const tt_fwd_conv_params *p, const int32_t *multiplier,
                                   const int8_t *shift, const tt_fwd_dims *input_dims,
                                   int8_t *data, const tt_fwd_dims *filter_dims,
                                   const int8_t *filter, const int32_t *bias,
                                   const tt_fwd_dims *output_dims, int8_t *scratch) {
  const tt_fwd_dims *in = input_dims, *out = output_dims;
  if (!inplace_supported(in, out)) return TT_FWD_UNSUPPORTED;
  dw_layer L = {p, multiplier, shift, bias, in, out, data, filter, filter_dims->h,
                filter_dims->w, filter_dims->w};
#if TT_FWD_DSP
  dw_trim(&L, in->c);   /* the ring's schedule depends on the strides and pads only */
#endif
  const int32_t C = in->c, lines = ring_lines(p, in, out), line = out->w * group_of(in);
  dw_buffer buf;
  dw_buffer_init(&buf, &L);
  for (int32_t b = 0; b < out->n; ++b) {
    for (int32_t c = 0; c < C; c += 4) {
      const int32_t g = C - c < 4 ? C - c : 4;
      dw_group G;
      dw_group_init(&G, &L, c, g, &buf);
      int8_t *const group = data + b * out->h * out->w * C + c;
#if TT_FWD_DSP
      /* Each output row writable over its input as soon as it is computed (lines == 1: the
       * stride-2 layers, whose output rows lie in input rows no later row reads) and each
       * row staged whole before any of its outputs is stored (D->whole: one chunk a row):
       * the rows go straight to their place, with no ring and no copy, in one run of the
       * group's rows (dw3_rows' tt_dsp_dw3_run), and without the small maps' copy (below).
       * The same writes as the ring's, earlier. */
      if (lines == 1 && G.use_dsp && G.dsp.whole) {
        dw_group_rows(&G, b, 0, out->h, group, out->w * C, C);
        continue;
      }
#endif
      /* The group's whole output where it fits beside the DSP buffer's staging (small
       * maps): computed as out of place, then put over its input channels, which no other
       * group reads; the same bits as row by row, without a call and a copy per row. */
      int8_t *const spare = dw_group_spare(&G, out->h * out->w * g);
      if (spare) {
        dw_group_rows(&G, b, 0, out->h, spare, out->w * g, g);
#if TT_FWD_DSP
        if (g == 4)    /* the spare is the buffer's word-aligned tail */
          tt_dsp_put_words(group, C, (const tt_dsp_word *)(const void *)spare, out->h * out->w);
        else
#endif
          put_pixels(group, C, spare, g, out->h * out->w);
        continue;
      }
      int32_t next = 0;                                  /* first row not yet written back */
      for (int32_t oy = 0; oy < out->h; ++oy) {
        dw_group_rows(&G, b, oy, oy + 1, scratch + (oy % lines) * line, line, g);
        for (; next <= oy && row_writable(p, in, out, b, next, oy); ++next)
          put_pixels(group + next * out->w * C, C, scratch + (next % lines) * line, g, out->w);
      }
    }
  }
  return TT_FWD_OK;
}
