/* CONV_2D and FULLY_CONNECTED, int8 (include/tt_forward.h). A fully connected layer is a
 * 1x1 convolution over `batches` pixels, so both run through conv_core.
 *
 * Arithmetic is TFLM's ConvPerChannel: acc = bias + sum over in-image taps of
 * w * (x + input_offset) in int32, then requantized. The order and grouping of the integer
 * sums differ (loads are shared between output channels and pixels; the offset's products
 * are summed apart where every tap is inside the image), which changes nothing: int32
 * addition wraps and is associative, and TFLM's own sum does not overflow. */
#include "tt_forward.h"
#include "tt_fwd_conv_rows.h"
#include "tt_fwd_internal.h"
#if TT_FWD_DSP
#include <string.h>

#include "tt_fwd_dsp.h"

/* The bytes a stream's im2col row call has past the staging buffer's, for its filter's rows
 * widened (tt_dsp_widen): MCUNet's and MobileNetV2's stems, 16 rows of 36 weights (48 before
 * trailing_zero_rows), took 1,152 bytes, their plan 32; packed (stem_packs: 16 rows of 28)
 * the filter's copy takes 448, its widened rows 896, the staging the other 1,344 (4 blocks
 * of 6 columns of 14 words). */
#ifndef TT_FWD_DSP_WIDE_EXTRA
#define TT_FWD_DSP_WIDE_EXTRA 672
#endif

#endif

/* acc[j] += sum_i (x[i] + offset) * w_j[i] for the four filter rows w_0 = w, w_j = w + o[j]
 * (a block of fewer than four channels repeats its last row: o[j] = o[j - 1]). */
static inline void dot4(const int8_t *x, const int8_t *w, const int32_t o[4], int32_t n,
                        int32_t offset, int32_t acc[4]) {
  const int8_t *w0 = w, *w1 = w + o[1], *w2 = w + o[2], *w3 = w + o[3];
  int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
  for (int32_t i = 0; i < n; ++i) {
    const int32_t v = x[i] + offset;
    a0 += v * w0[i];
    a1 += v * w1[i];
    a2 += v * w2[i];
    a3 += v * w3[i];
  }
  acc[0] = a0;
  acc[1] = a1;
  acc[2] = a2;
  acc[3] = a3;
}

/* acc[j] += sum_i x0[i] * w_j[i], acc[4 + j] += sum_i x1[i] * w_j[i], w_j = w + j * w_stride:
 * two pixels by four output channels, each load feeding two or four products. */
static inline void dot2x4(const int8_t *x0, const int8_t *x1, const int8_t *w,
                          int32_t w_stride, int32_t n, int32_t acc[8]) {
  const int8_t *w0 = w, *w1 = w + w_stride, *w2 = w1 + w_stride, *w3 = w2 + w_stride;
  int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
  int32_t b0 = acc[4], b1 = acc[5], b2 = acc[6], b3 = acc[7];
  for (int32_t i = 0; i < n; ++i) {
    const int32_t u = x0[i], v = x1[i];
    int32_t t = w0[i];
    a0 += u * t;
    b0 += v * t;
    t = w1[i];
    a1 += u * t;
    b1 += v * t;
    t = w2[i];
    a2 += u * t;
    b2 += v * t;
    t = w3[i];
    a3 += u * t;
    b3 += v * t;
  }
  acc[0] = a0;
  acc[1] = a1;
  acc[2] = a2;
  acc[3] = a3;
  acc[4] = b0;
  acc[5] = b1;
  acc[6] = b2;
  acc[7] = b3;
}

/* A 1x1, stride-1, unpadded convolution over `pixels` pixels (a FULLY_CONNECTED layer is
 * one): a matrix product. Every tap is inside the image, so the input offset is folded into
 * the bias once per output channel: acc = bias + offset * sum(w) + sum(w * x), the same
 * integer as TFLM's sum of w * (x + offset). */
static void pointwise(const tt_fwd_conv_params *p, const int32_t *multiplier,
                      const int8_t *shift, int32_t pixels, int32_t ci, const int8_t *input,
                      int32_t co, const int8_t *filter_lo, int32_t k, const int8_t *filter_hi,
                      const int32_t *bias, int8_t *output) {
  const int32_t rest = ci - k, off = p->input_offset, out_off = p->output_offset;
  const int32_t lo = p->act_min, hi = p->act_max;
  for (int32_t c = 0; c < co; c += 4) {
    const int32_t g = co - c < 4 ? co - c : 4;
    int32_t folded[4] = {0, 0, 0, 0};
    for (int32_t j = 0; j < g; ++j) {
      int32_t sum = 0;
      for (int32_t i = 0; i < k; ++i) sum += filter_lo[(c + j) * k + i];
      for (int32_t i = 0; i < rest; ++i) sum += filter_hi[(c + j) * rest + i];
      folded[j] = (bias ? bias[c + j] : 0) + off * sum;
    }
    const int32_t *m = multiplier + c;
    const int8_t *sh = shift + c;
    int32_t px = 0;
    if (g == 4) {
      for (; px + 2 <= pixels; px += 2) {
        const int8_t *x = input + px * ci;
        int32_t acc[8] = {folded[0], folded[1], folded[2], folded[3],
                          folded[0], folded[1], folded[2], folded[3]};
        dot2x4(x, x + ci, filter_lo + c * k, k, k, acc);
        if (rest > 0) dot2x4(x + k, x + ci + k, filter_hi + c * rest, rest, rest, acc);
        int8_t *y = output + px * co + c;
        for (int32_t j = 0; j < 4; ++j) {
          y[j] = tt_fwd_requantize(acc[j], m[j], sh[j], out_off, lo, hi);
          y[co + j] = tt_fwd_requantize(acc[4 + j], m[j], sh[j], out_off, lo, hi);
        }
      }
    }
    for (; px < pixels; ++px) {                  /* the odd pixel, and channels past 4k */
      const int8_t *x = input + px * ci;
      for (int32_t j = 0; j < g; ++j) {
        int32_t acc = folded[j];
        for (int32_t i = 0; i < k; ++i) acc += x[i] * filter_lo[(c + j) * k + i];
        for (int32_t i = 0; i < rest; ++i) acc += x[k + i] * filter_hi[(c + j) * rest + i];
        output[px * co + c + j] = tt_fwd_requantize(acc, m[j], sh[j], out_off, lo, hi);
      }
    }
  }
}

#if TT_FWD_DSP
/* Stages the kh runs of `words` words (4 int8 each, whole groups) of a window, `pitch`
 * bytes from one run's start to the next's, into the column at s of a block of P
 * (tt_dsp_stage4's form, its two words by one STRD). With P and `words` known to the
 * compiler (the 4x4 stems over 3 channels: blocks of 6, 3 words a run) the run is unrolled
 * with constant offsets: LDR, 4 SXTAB16, STRD a word, where the general loop took 10. */
static inline __attribute__((always_inline)) void stage_runs(tt_dsp_word *s, const int32_t P,
                                                             const int8_t *x, int32_t kh,
                                                             const int32_t words, int32_t pitch,
                                                             uint32_t off) {
  for (int32_t ky = 0; ky < kh; ++ky, x += pitch) {
#pragma GCC unroll 4
    for (int32_t i = 0; i < words; ++i, s += 2 * P) {
      const uint32_t v = tt_dsp_load4(x + 4 * i);
      tt_dsp_strd(s, __sxtab16(__sxtab16(off, v), v),
                  tt_dsp_sxtab16_odd(tt_dsp_sxtab16_odd(off, v), v));
    }
  }
}

/* A window whose columns are all inside the image but whose rows [0, ky0) and [ky1, kh)
 * are not (x: row ky0's run): those stage as zeros, the others as stage_runs does. A
 * function of its own, out of the interior windows' loop, which it would slow down. */
static __attribute__((noinline)) void stage_rows_in(tt_dsp_word *s, int32_t P, const int8_t *x,
                                                    int32_t kh, int32_t ky0, int32_t ky1,
                                                    int32_t run, int32_t pitch, uint32_t off) {
  for (int32_t i = 0; i < ky0 * run; ++i, s += 2 * P) tt_dsp_strd(s, 0, 0);
  stage_runs(s, P, x, ky1 - ky0, run, pitch, off);
  s += 2 * P * (ky1 - ky0) * run;
  for (int32_t i = ky1 * run; i < kh * run; ++i, s += 2 * P) tt_dsp_strd(s, 0, 0);
}

/* A window that reaches past the image (kh runs of `run` words, whole groups, the run of
 * row iy starting at byte x0 of that row, which may lie before the row: x0 < 0), staged
 * straight from the image into the column at s of a block of P: a run above or below the
 * image as zeros (TFLM skips those taps: they add nothing either way), a word wholly in
 * [lo, hi) (the run's bytes inside the image) by one load, a word across lo or hi with the
 * bytes outside as `pad` = -input_offset, which stages as 2 (pad + offset) = 0 (before, the
 * window was copied byte by byte into a padded local window and staged from there). */
static void stage_border(tt_dsp_word *s, int32_t P,
                         const int8_t *image, int32_t row_bytes,
                         int32_t h, int32_t iy0, int32_t dilation_h, int32_t kh, int32_t run,
                         int32_t x0, int32_t lo, int32_t hi, uint32_t off, int8_t pad) {
  for (int32_t ky = 0, iy = iy0; ky < kh; ++ky, iy += dilation_h) {
    if (iy < 0 || iy >= h) {
      for (int32_t i = 0; i < run; ++i, s += 2 * P) tt_dsp_strd(s, 0, 0);
      continue;
    }
    const int8_t *row = image + iy * row_bytes;     /* byte b of the run: row[x0 + b] */
    for (int32_t b = 0; b < 4 * run; b += 4, s += 2 * P) {
      if (b >= lo && b + 4 <= hi) {
        tt_dsp_stage4(s, off, tt_dsp_load4(row + x0 + b));
      } else if (b + 4 <= lo || b >= hi) {
        tt_dsp_strd(s, 0, 0);
      } else if (hi - lo >= 4) {
        /* the word's bytes inside by one load of four inside, moved into place (the
         * bytes from lo up, or up to hi), the others padding */
        const uint32_t fill = (uint32_t)(uint8_t)pad * 0x01010101u;
        uint32_t v;
        if (b < lo) {
          const int32_t sh = 8 * (lo - b);
          v = tt_dsp_load4(row + x0 + lo) << sh | (fill >> (32 - sh));
        } else {
          const int32_t sh = 8 * (b + 4 - hi);
          v = tt_dsp_load4(row + x0 + hi - 4) >> sh | (fill << (32 - sh));
        }
        tt_dsp_stage4(s, off, v);
      } else {
        int8_t v[4];
        for (int32_t i = 0; i < 4; ++i) v[i] = b + i >= lo && b + i < hi ? row[x0 + b + i] : pad;
        tt_dsp_stage4(s, off, tt_dsp_load4(v));
      }
    }
  }
}

/* The filter [co, kh, kw * ci]'s last rows whose taps are zero in every output channel (at
 * most kh - 1): the importer grows the reference's 3x3/2 stems to 4x4/2 with a zero last
 * row and column to express its padding as SAME. A zero tap adds w (x + input_offset) = 0
 * to TFLM's sum, in the image or not, so the im2col path stages and multiplies kh - z rows
 * of taps, not kh, for the same bits (the zero column: stem_packs below). Checked at every
 * call: a trained filter's grown taps need not stay zero. */
static int32_t trailing_zero_rows(const int8_t *filter, int32_t co, int32_t kh, int32_t row) {
  int32_t z = 0;
  /* row kh - 1 - z of every output channel: co runs of `row` bytes, kh rows apart */
  while (z < kh - 1 && tt_fwd_zero_runs(filter + (kh - 1 - z) * row, co, kh * row, row)) ++z;
  return z;
}

/* The stems' packed columns. A stem (3 channels, 3x3/2 grown to 4x4/2) whose last row and
 * column are zero in every channel has 27 real taps, 9 bytes a row: not whole words of the
 * image's rows, so the runs above stage 36 values (the zero column with them). Packed, a
 * column is 7 groups: each row's bytes 0-7 as two words of the image, then one group of the
 * three rows' byte 8 (channel 2 of the third tap), filled from the words at bytes 5-8 (all
 * inside the real window): their odd lanes [x6, x8] by SXTAB16 ror 8, so the group stages as
 * [r1 x8, r0 x8] and [r2 x6, r2 x8] by one PKHTB, r2 x6 against a zero weight. The filter is
 * copied into the same order once a call (stem_pack_filter); a zero tap adds nothing to
 * TFLM's sum, so the same bits with 28 values a column for 36. */
#define STEM_VALUES 28

/* The shape a stem's filter packed and widened by the code generator (the `prewide` of
 * dsp_im2col: tflite_train/codegen/layouts.py, stem_wide) is made for: 3 channels, a 4x4
 * kernel, undilated. Its zero taps (trailing_zero_rows: 1, stem_packs) and its rows'
 * requantization (all in the assembly) were checked on the frozen filter when the program
 * was generated, so a call given it checks only the shape. */
static int stem_shape(const tt_fwd_conv_params *p, int32_t ci, int32_t k,
                      const tt_fwd_dims *f) {
  return ci == 3 && k == 3 && f->w == 4 && f->h == 4 && p->dilation_h == 1 &&
         p->dilation_w == 1;
}

/* Whether the stem's packed columns apply: 3 channels, a 4x4 kernel of which kh = 3 rows
 * are left (trailing_zero_rows), undilated, and every row's last tap zero in every channel
 * (checked at every call, as trailing_zero_rows is: a trained filter need not keep it). */
static int stem_packs(const tt_fwd_conv_params *p, int32_t ci, int32_t k, const int8_t *filter,
                      const tt_fwd_dims *f, int32_t kh) {
  if (ci != 3 || k != 3 || f->w != 4 || kh != 3 || p->dilation_h != 1 || p->dilation_w != 1)
    return 0;
  const int32_t row = 4 * 3, stride = f->h * row;
  for (int32_t r = 0; r < kh; ++r)
    if (!tt_fwd_zero_runs(filter + r * row + 9, f->n, stride, 3)) return 0;
  return 1;
}

/* filter [co, fh, 4, 3] (fh >= 3) into packed [co, 28]: each row's taps 0-2 and 1 channel of
 * 3 as 8 bytes, then the group [w1[8], 0, w0[8], w2[8]] (wr: row r's 12 bytes), whose lanes
 * [w1[8], w0[8]] and [0, w2[8]] meet the staged [r1 x8, r0 x8] and [r2 x6, r2 x8]. */
static void stem_pack_filter(const int8_t *filter, int32_t co, int32_t fh, int8_t *packed) {
  for (int32_t c = 0; c < co; ++c, filter += fh * 12, packed += STEM_VALUES) {
    for (int32_t r = 0; r < 3; ++r) memcpy(packed + 8 * r, filter + 12 * r, 8);
    packed[24] = filter[12 + 8];
    packed[25] = 0;
    packed[26] = filter[8];
    packed[27] = filter[24 + 8];
  }
}

/* A packed column of a window inside the image (x: its first byte, rows `pitch` apart) into
 * the column at s of a block of P: per row two words of bytes 0-7, then the rows' byte 8. */
static inline __attribute__((always_inline)) void stage_stem(tt_dsp_word *s, const int32_t P,
                                                             const int8_t *x, int32_t pitch,
                                                             uint32_t off) {
  uint32_t t[3];
#pragma GCC unroll 3
  for (int32_t r = 0; r < 3; ++r, x += pitch) {
    uint32_t v = tt_dsp_load4(x);
    tt_dsp_strd(s, __sxtab16(__sxtab16(off, v), v),
                tt_dsp_sxtab16_odd(tt_dsp_sxtab16_odd(off, v), v));
    s += 2 * P;
    v = tt_dsp_load4(x + 4);
    tt_dsp_strd(s, __sxtab16(__sxtab16(off, v), v),
                tt_dsp_sxtab16_odd(tt_dsp_sxtab16_odd(off, v), v));
    s += 2 * P;
    v = tt_dsp_load4(x + 5);
    t[r] = tt_dsp_sxtab16_odd(tt_dsp_sxtab16_odd(off, v), v);
  }
  tt_dsp_strd(s, (t[0] & 0xFFFF0000u) | (t[1] >> 16), t[2]);
}

/* A packed column of a window whose columns are inside the image but whose rows [0, ky0)
 * and [ky1, 3) are not (x: row ky0's first byte): those rows stage as zeros (the output's
 * first and last rows; out of stage_stem's loop, which it would slow down). */
static __attribute__((noinline)) void stage_stem_rows(tt_dsp_word *s, int32_t P,
                                                      const int8_t *x, int32_t pitch,
                                                      int32_t ky0, int32_t ky1, uint32_t off) {
  uint32_t t[3];
  for (int32_t r = 0; r < 3; ++r) {
    if (r < ky0 || r >= ky1) {
      tt_dsp_strd(s, 0, 0);
      tt_dsp_strd(s + 2 * P, 0, 0);
      s += 4 * P;
      t[r] = 0;
      continue;
    }
    for (int32_t i = 0; i < 8; i += 4, s += 2 * P) tt_dsp_stage4(s, off, tt_dsp_load4(x + i));
    const uint32_t v = tt_dsp_load4(x + 5);
    t[r] = tt_dsp_sxtab16_odd(tt_dsp_sxtab16_odd(off, v), v);
    x += pitch;
  }
  tt_dsp_strd(s, (t[0] & 0xFFFF0000u) | (t[1] >> 16), t[2]);
}

/* A packed column of a window that reaches past the image (rows iy0.., columns ix0.. of
 * an h x w image of 3 channels): each value staged as 2 (x + input_offset), or 0 for a tap
 * outside (TFLM skips those) and for the zero weight's lane. Few windows (the first row
 * and column of output pixels), so value by value. */
static __attribute__((noinline)) void stage_stem_border(tt_dsp_word *stage, int32_t P,
                                                        int32_t p, const int8_t *image,
                                                        int32_t h, int32_t w, int32_t iy0,
                                                        int32_t ix0, int32_t input_offset) {
  /* value i's row and byte of its row; byte 12 marks the zero weight */
  static const uint8_t row_of[STEM_VALUES] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1,
                                              1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 1, 2, 0, 2};
  static const uint8_t byte_of[STEM_VALUES] = {0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5,
                                               6, 7, 0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 8, 8};
  for (int32_t i = 0; i < STEM_VALUES; ++i) {   /* in place: no array on the stack's peak */
    const int32_t iy = iy0 + row_of[i], ix = ix0 + byte_of[i] / 3;
    tt_dsp_stage_one(stage, P, p, i,
                     byte_of[i] < 9 && iy >= 0 && iy < h && ix >= 0 && ix < w
                         ? 2 * (image[(iy * w + ix) * 3 + byte_of[i] % 3] + input_offset)
                         : 0);
  }
}

/* A convolution as a matrix product over im2col columns (one per output pixel): the window's
 * in-image taps staged as 2 (x + input_offset) (tt_fwd_dsp.h), padding as zeros (TFLM skips
 * those taps: they add nothing either way), the trained channels of every tap first, then
 * the frozen ones, in the
 * order of the rows of filter_lo [co, kh, kw, k] and filter_hi [co, kh, kw, ci - k] (an
 * unsplit filter's trailing zero rows left out: trailing_zero_rows). Returns 0 when a column
 * does not fit the staging budget. `prewide`: NULL, or a frozen stem's filter (stem_shape)
 * as the code generator made it once: packed (stem_pack_filter, 8-byte aligned) followed by
 * its rows widened (tt_dsp_widen); every call of a stream's stem (64 a step) then skips the
 * checks, the packing and the widening, and stages in the whole buffer. */
static __attribute__((noinline)) int dsp_im2col(
    const tt_fwd_conv_params *p, const int32_t *multiplier, const int8_t *shift,
    const tt_fwd_dims *in, const int8_t *input, const tt_fwd_dims *f, const int8_t *filter_lo,
    int32_t k, const int8_t *filter_hi, const int32_t *bias, const tt_fwd_dims *out,
    int8_t *output, tt_dsp_word *buf, int32_t all, const int16_t *prewide) {
  const int32_t ci = in->c, co = f->n, kw = f->w, rest = ci - k;
  const int given = prewide && rest == 0 && stem_shape(p, ci, k, f);
  const int32_t kh = given  ? 3
                     : rest ? f->h
                            : f->h - trailing_zero_rows(filter_lo, co, f->h, kw * k);
  const int32_t taps = kh * kw;
  /* the packed filter at the buffer's start, the staging after it (8-byte aligned) */
  const int32_t packed_bytes = (co * STEM_VALUES + 7) & ~7;
  const int stem = given || (rest == 0 && packed_bytes <= all / 2 &&
                             stem_packs(p, ci, k, filter_lo, f, kh));
  if (given) {
    filter_lo = (const int8_t *)prewide;
  } else if (stem) {
    stem_pack_filter(filter_lo, co, f->h, (int8_t *)buf);
    filter_lo = (const int8_t *)buf;
    buf += packed_bytes / 4;
    all -= packed_bytes;
  }
  const tt_dsp_mm m = {filter_lo, filter_hi, stem ? STEM_VALUES : f->h * kw * k, taps * rest,
                       stem ? STEM_VALUES : taps * k, taps * rest, co, bias, multiplier, shift,
                       p->input_offset, p->output_offset, p->act_min, p->act_max};
  if (!tt_dsp_mm_ok(&m)) return 0;
  tt_dsp_word *const stage = buf;
  const int32_t columns = out->n * out->h * out->w;
  const int six = p->act_min == -128 && p->act_max == 127;   /* the assembly requantizes */
  const int known = given && six ? 1 : tt_dsp_mm_rows_one(&m);
  /* rows the assembly cannot requantize: their classes once (the plan), in the buffer's tail */
  const int32_t plan_bytes = known != 1 && co <= TT_DSP_PLAN_ROWS ? (2 * co + 3) & ~3 : 0;
  /* the rows widened once a call (tt_dsp_mm_blocks6_wide) at the buffer's end, where the
   * rest holds 2 or more blocks of 6 and the call runs 18 columns or more (a stem's row
   * call: 64; widening costs about 4 instructions a group and row, each block of 6 saves 2);
   * the rows the assembly does not requantize then need the plan */
  const int32_t wide_bytes = co * 2 * m.n_lo, left = all - wide_bytes - plan_bytes;
  const int widened = given ? six
                   : six && rest == 0 && (m.n_lo & 3) == 0 && (known == 1 || plan_bytes) &&
                         columns >= 18 && left > 0 && tt_dsp_block_columns(&m, left) == 8 &&
                         left / 4 / (6 * tt_dsp_column_words(&m)) >= 2;
  /* by integer arithmetic: where the rows are not widened, all - wide_bytes may be negative
   * and the address (never used) outside buf */
  tt_dsp_word *const room = (tt_dsp_word *)((uintptr_t)buf + (uintptr_t)(all - wide_bytes));
  const tt_dsp_word *const wide =
      given ? (const tt_dsp_word *)((const int8_t *)prewide + packed_bytes) : room;
  if (widened && !given) tt_dsp_widen(&m, room);
  int32_t bytes = widened && !given ? all - wide_bytes
                  : all < TT_FWD_DSP_STAGE_BYTES ? all : TT_FWD_DSP_STAGE_BYTES;
  const int8_t *plan = 0;
  if (plan_bytes && (widened || tt_dsp_block_columns(&m, bytes - plan_bytes) ==
                                    tt_dsp_block_columns(&m, bytes))) {
    bytes -= plan_bytes;                      /* where it costs no column of a block */
    tt_dsp_mm_plan(&m, (int8_t *)(stage + bytes / 4));
    plan = (const int8_t *)(stage + bytes / 4);
  }
  const int32_t fit = tt_dsp_block_columns(&m, bytes);
  if (fit == 0) return 0;
  const int32_t words = tt_dsp_column_words(&m);
  const int whole_rows = rest == 0 && p->dilation_w == 1;
  /* border windows staged straight from the image, padding as -input_offset */
  const int border = whole_rows && (kw * ci & 3) == 0 && p->input_offset >= -127 &&
                     p->input_offset <= 128;
  const int8_t pad = (int8_t)-p->input_offset;
  const int32_t hi0 = (m.n_lo + 3) & ~3;
  const uint32_t off_pair = tt_dsp_stage_offset(p->input_offset);
  /* windows inside the image stage as runs (stage_runs): kh of `run` words, `pitch` apart */
  const int runs = whole_rows && (kw * ci & 3) == 0;
  const int32_t pitch = p->dilation_h * in->w * ci, run = kw * ci >> 2;
  const int32_t span_h = (kh - 1) * p->dilation_h, x_step = p->stride_w * ci;
  for (int32_t c = 0, P, Q; c < columns; c += P * Q) {
    /* as many blocks of 6 as fit (tt_dsp_rows6: the fewest instructions a MAC, a row's
     * constants shared by all of them), else the widest block that fits */
    if (fit == 8 && columns - c >= 8 &&
        (!six || (columns - c) % 6 == 2 || (columns - c) % 6 == 3)) {
      P = 8;                     /* as tt_dsp_mm_contiguous chooses (tt_fwd_dsp.c) */
      Q = 1;
    } else if (fit == 8 && six && columns - c >= 6) {
      P = 6;
      Q = (bytes / 4) / (6 * words);
      if (Q > (columns - c) / 6) Q = (columns - c) / 6;
    } else {
      for (P = fit, Q = 1; c + P > columns; P >>= 1) {
      }
    }
    /* the first column's pixel; the others' by counting, its window's origin and first
     * input byte moving with it */
    int32_t b = c / (out->h * out->w), oy = c % (out->h * out->w) / out->w, ox = c % out->w;
    int32_t iy0 = oy * p->stride_h - p->pad_top, ix0 = ox * p->stride_w - p->pad_left;
    int rows_in = iy0 >= 0 && iy0 + span_h < in->h;
    int32_t xo = ((b * in->h + iy0) * in->w + ix0) * ci;   /* an offset: it may be < 0 */
    tt_dsp_word *blk = stage;
    for (int32_t col = 0, j = 0; col < P * Q; ++col, ++ox, ++j, ix0 += p->stride_w,
                 xo += x_step) {
      if (j == P) {
        j = 0;
        blk += P * words;
      }
      if (ox == out->w) {
        ox = 0;
        if (++oy == out->h) {
          oy = 0;
          ++b;
        }
        iy0 = oy * p->stride_h - p->pad_top;
        ix0 = -p->pad_left;
        rows_in = iy0 >= 0 && iy0 + span_h < in->h;
        xo = ((b * in->h + iy0) * in->w + ix0) * ci;
      }
      if (stem) {
        if (rows_in && ix0 >= 0 && ix0 + 3 <= in->w) {
          if (P == 6)
            stage_stem(blk + 2 * j, 6, input + xo, pitch, off_pair);
          else
            stage_stem(blk + 2 * j, P, input + xo, pitch, off_pair);
        } else if (ix0 >= 0 && ix0 + 3 <= in->w) {
          int32_t ky0, ky1;
          tt_fwd_tap_range(iy0, 1, 3, in->h, &ky0, &ky1);
          stage_stem_rows(blk + 2 * j, P, input + (xo + ky0 * pitch), pitch, ky0, ky1,
                          off_pair);
        } else {
          stage_stem_border(blk, P, j, input + b * in->h * in->w * ci, in->h, in->w, iy0, ix0,
                            p->input_offset);
        }
        continue;
      }
      if (runs && rows_in && ix0 >= 0 && ix0 + kw <= in->w) {
        /* the whole window inside the image: kh runs of kw * ci bytes, whole groups */
        const int8_t *x = input + xo;
        if (P == 6 && run == 3)
          stage_runs(blk + 2 * j, 6, x, kh, 3, pitch, off_pair);
        else if (P == 6)
          stage_runs(blk + 2 * j, 6, x, kh, run, pitch, off_pair);
        else
          stage_runs(blk + 2 * j, P, x, kh, run, pitch, off_pair);
        continue;
      }
      if (runs && ix0 >= 0 && ix0 + kw <= in->w) {
        /* every column inside, rows above or below: the rows inside, [ky0, ky1), as runs,
         * the others as zeros (the padding TFLM skips) */
        int32_t ky0, ky1;
        tt_fwd_tap_range(iy0, p->dilation_h, kh, in->h, &ky0, &ky1);
        stage_rows_in(blk + 2 * j, P, input + (xo + ky0 * pitch), kh, ky0, ky1, run, pitch,
                      off_pair);
        continue;
      }
      int32_t kx0, kx1;
      tt_fwd_tap_range(ix0, p->dilation_w, kw, in->w, &kx0, &kx1);
      if (border) {
        stage_border(blk + 2 * j, P, input + b * in->h * in->w * ci, in->w * ci, in->h, iy0,
                     p->dilation_h, kh, run, ix0 * ci, kx0 * ci, kx1 * ci, off_pair, pad);
        continue;
      }
      for (int32_t ky = 0; ky < kh; ++ky) {
        const int32_t iy = iy0 + ky * p->dilation_h, t0 = ky * kw;
        if (iy < 0 || iy >= in->h) {
          tt_dsp_stage_zeros(blk, P, j, t0 * k, kw * k);
          tt_dsp_stage_zeros(blk, P, j, hi0 + t0 * rest, kw * rest);
          continue;
        }
        const int8_t *row = input + (b * in->h + iy) * in->w * ci;
        if (whole_rows && kx0 == 0 && kx1 == kw && (t0 * k & 3) == 0 && (kw * ci & 3) == 0) {
          /* kw * ci contiguous bytes, whole groups: a word at a time, inline */
          const int8_t *x = row + ix0 * ci, *end = x + kw * ci;
          for (tt_dsp_word *s = blk + 2 * ((t0 * k >> 2) * P + j); x != end; x += 4, s += 2 * P)
            tt_dsp_stage4(s, off_pair, tt_dsp_load4(x));
        } else if (whole_rows && kx0 == 0 && kx1 == kw) {
          tt_dsp_stage(blk, P, j, t0 * k, row + ix0 * ci, kw * ci, p->input_offset);
        } else {
          for (int32_t kx = 0; kx < kw; ++kx) {
            const int32_t t = t0 + kx;
            if (kx < kx0 || kx >= kx1) {
              tt_dsp_stage_zeros(blk, P, j, t * k, k);
              tt_dsp_stage_zeros(blk, P, j, hi0 + t * rest, rest);
            } else {
              const int8_t *x = row + (ix0 + kx * p->dilation_w) * ci;
              tt_dsp_stage(blk, P, j, t * k, x, k, p->input_offset);
              tt_dsp_stage(blk, P, j, hi0 + t * rest, x + k, rest, p->input_offset);
            }
          }
        }
      }
      tt_dsp_stage_pad(&m, blk, P, j);
    }
    if (widened && P == 6)
      tt_dsp_mm_blocks6_wide(&m, wide, plan, stage, Q, output + c * co, co);
    else if (plan)
      tt_dsp_mm_blocks_planned(&m, plan, stage, P, Q, output + c * co, co);
    else
      tt_dsp_mm_blocks(&m, stage, P, Q, output + c * co, co, known);
  }
  return 1;
}

/* dsp_im2col with its buffer on this frame, only while it runs: the staging buffer and
 * TT_FWD_DSP_WIDE_EXTRA bytes more, which the widened rows share with the staging (a
 * stream's row calls, tt_conv2d_rows_call_s8: each call widens the rows again, as a buffer
 * kept for the stream would lie on the stack under the stream's other layers too). */
static __attribute__((noinline)) int dsp_im2col_wide(
    const tt_fwd_conv_params *p, const int32_t *multiplier, const int8_t *shift,
    const tt_fwd_dims *in, const int8_t *input, const tt_fwd_dims *f, const int8_t *filter_lo,
    int32_t k, const int8_t *filter_hi, const int32_t *bias, const tt_fwd_dims *out,
    int8_t *output) {
  tt_dsp_word buf[(TT_FWD_DSP_STAGE_BYTES + TT_FWD_DSP_WIDE_EXTRA) / 4];
  return dsp_im2col(p, multiplier, shift, in, input, f, filter_lo, k, filter_hi, bias, out,
                    output, buf, (int32_t)sizeof buf, 0);
}

/* The other calls: the staging buffer alone (their stack as it was; they widen too where a
 * small filter leaves 2 blocks of 6 in what is left of it, e.g. 3x3x4 -> 8 channels). */
static __attribute__((noinline)) int dsp_im2col_staged(
    const tt_fwd_conv_params *p, const int32_t *multiplier, const int8_t *shift,
    const tt_fwd_dims *in, const int8_t *input, const tt_fwd_dims *f, const int8_t *filter_lo,
    int32_t k, const int8_t *filter_hi, const int32_t *bias, const tt_fwd_dims *out,
    int8_t *output, const int16_t *prewide) {
  tt_dsp_word buf[TT_FWD_DSP_STAGE_BYTES / 4];
  return dsp_im2col(p, multiplier, shift, in, input, f, filter_lo, k, filter_hi, bias, out,
                    output, buf, (int32_t)sizeof buf, prewide);
}
#endif

/* The filter is filter_lo [co, kh, kw, k] followed along input channels by filter_hi
 * [co, kh, kw, ci - k]. */
static void conv_core(const tt_fwd_conv_params *p, const int32_t *multiplier,
                      const int8_t *shift, const tt_fwd_dims *in, const int8_t *input,
                      const tt_fwd_dims *f, const int8_t *filter_lo, int32_t k,
                      const int8_t *filter_hi, const int32_t *bias, const tt_fwd_dims *out,
                      int8_t *output, int wide, const int16_t *prewide) {
  const int32_t ci = in->c, co = f->n, kh = f->h, kw = f->w, rest = in->c - k;
  const int32_t lo_stride = kh * kw * k, hi_stride = kh * kw * rest; /* between channels */
  const int32_t off = p->input_offset;
  if (kh == 1 && kw == 1 && p->stride_h == 1 && p->stride_w == 1 && p->pad_top == 0 &&
      p->pad_left == 0 && in->h == out->h && in->w == out->w) {
#if TT_FWD_DSP
    const tt_dsp_mm m = {filter_lo, filter_hi, k, rest, k, rest, co, bias, multiplier, shift,
                         off, p->output_offset, p->act_min, p->act_max};
    if (tt_dsp_mm_contiguous_wide(&m, (const tt_dsp_word *)prewide, out->n * out->h * out->w,
                                  input, ci, output, co))
      return;
#endif
    pointwise(p, multiplier, shift, out->n * out->h * out->w, ci, input, co, filter_lo, k,
              filter_hi, bias, output);
    return;
  }
#if TT_FWD_DSP
  /* a stem given packed and widened needs no room for either: the staging buffer alone */
  if (wide && !prewide ? dsp_im2col_wide(p, multiplier, shift, in, input, f, filter_lo, k,
                                         filter_hi, bias, out, output)
                       : dsp_im2col_staged(p, multiplier, shift, in, input, f, filter_lo, k,
                                           filter_hi, bias, out, output, prewide))
    return;
#else
  (void)wide;
  (void)prewide;
#endif
  TT_FWD_FOR_EACH_WINDOW(in, out, p->stride_h, p->stride_w, p->pad_top, p->pad_left,
                         p->dilation_h, p->dilation_w, kh, kw, {
    int8_t *y = output + ((b * out->h + oy) * out->w + ox) * co;
    for (int32_t c = 0; c < co; c += 4) {
      const int32_t g = co - c < 4 ? co - c : 4;
      int32_t lo_rows[4], hi_rows[4], acc[4] = {0, 0, 0, 0};
      for (int32_t j = 0; j < 4; ++j) {
        lo_rows[j] = (j < g ? j : g - 1) * lo_stride;
        hi_rows[j] = (j < g ? j : g - 1) * hi_stride;
      }
      for (int32_t ky = ky0; ky < ky1; ++ky) {
        for (int32_t kx = kx0; kx < kx1; ++kx) {
          const int32_t iy = iy0 + ky * p->dilation_h, ix = ix0 + kx * p->dilation_w;
          const int8_t *x = input + ((b * in->h + iy) * in->w + ix) * ci;
          const int32_t tap = ky * kw + kx;
          dot4(x, filter_lo + c * lo_stride + tap * k, lo_rows, k, off, acc);
          if (rest > 0)
            dot4(x + k, filter_hi + c * hi_stride + tap * rest, hi_rows, rest, off, acc);
        }
      }
      for (int32_t j = 0; j < g; ++j)
        y[c + j] = tt_fwd_requantize(acc[j] + (bias ? bias[c + j] : 0), multiplier[c + j],
                                     shift[c + j], p->output_offset, p->act_min, p->act_max);
    }
  })
}

void tt_conv2d_s8(const tt_fwd_conv_params *p, const int32_t *multiplier, const int8_t *shift,
                  const tt_fwd_dims *input_dims, const int8_t *input,
                  const tt_fwd_dims *filter_dims, const int8_t *filter, const int32_t *bias,
                  const tt_fwd_dims *output_dims, int8_t *output) {
  conv_core(p, multiplier, shift, input_dims, input, filter_dims, filter, input_dims->c, 0,
            bias, output_dims, output, 0, 0);
}

void tt_conv2d_wide_s8(const tt_fwd_conv_params *p, const int32_t *multiplier,
                       const int8_t *shift, const tt_fwd_dims *input_dims, const int8_t *input,
                       const tt_fwd_dims *filter_dims, const int8_t *filter,
                       const int16_t *wide, const int32_t *bias,
                       const tt_fwd_dims *output_dims, int8_t *output) {
  /* the DSP rows load the widened filter by LDRD, which faults on an address that is not
   * word-aligned (a compiler without TT_ALIGNED may place an int16_t array so): the int8
   * filter alone then, same bits */
  if ((uintptr_t)wide & 3u) wide = 0;
  conv_core(p, multiplier, shift, input_dims, input, filter_dims, filter, input_dims->c, 0,
            bias, output_dims, output, 0, wide);
}

void tt_conv2d_rows_call_s8(const tt_fwd_conv_params *p, const int32_t *multiplier,
                            const int8_t *shift, const tt_fwd_dims *input_dims,
                            const int8_t *input, const tt_fwd_dims *filter_dims,
                            const int8_t *filter, const int32_t *bias,
                            const tt_fwd_dims *output_dims, int8_t *output) {
  conv_core(p, multiplier, shift, input_dims, input, filter_dims, filter, input_dims->c, 0,
            bias, output_dims, output, 1, 0);
}

void tt_conv2d_split_s8(const tt_fwd_conv_params *p, const int32_t *multiplier,
                        const int8_t *shift, const tt_fwd_dims *input_dims,
                        const int8_t *input, const tt_fwd_dims *filter_dims,
                        const int8_t *filter_lo, int32_t k, const int8_t *filter_hi,
                        const int32_t *bias, const tt_fwd_dims *output_dims, int8_t *output) {
  conv_core(p, multiplier, shift, input_dims, input, filter_dims, filter_lo, k, filter_hi,
            bias, output_dims, output, 0, 0);
}

void tt_fully_connected_split_s8(const tt_fwd_fc_params *p, const int32_t *multiplier,
                                 const int8_t *shift, int32_t batches, int32_t depth,
                                 const int8_t *input, int32_t units, const int8_t *weights_lo,
                                 int32_t k, const int8_t *weights_hi, const int32_t *bias,
                                 int8_t *output) {
  const tt_fwd_conv_params conv = {1, 1, 1, 1, 0, 0, p->input_offset, p->output_offset,
                                   p->act_min, p->act_max};
  const tt_fwd_dims in = {batches, 1, 1, depth}, f = {units, 1, 1, depth},
                    out = {batches, 1, 1, units};
  conv_core(&conv, multiplier, shift, &in, input, &f, weights_lo, k, weights_hi, bias, &out,
            output, 0, 0);
}

void tt_fully_connected_s8(const tt_fwd_fc_params *p, const int32_t *multiplier,
                           const int8_t *shift, int32_t batches, int32_t depth,
                           const int8_t *input, int32_t units, const int8_t *weights,
                           const int32_t *bias, int8_t *output) {
  tt_fully_connected_split_s8(p, multiplier, shift, batches, depth, input, units, weights,
                              depth, 0, bias, output);
}
