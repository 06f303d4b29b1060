/* Cortex-M DSP building blocks of the int8 forward kernels (SMLAD, SXTB16, SMMLAR, SSAT of
 * ARMv7E-M), used by tt_fwd_conv.c, tt_fwd_depthwise.c and tt_fwd_dsp.c only when
 * TT_FWD_DSP is set (tt_fwd_internal.h). Everything here is integer arithmetic that gives
 * the portable kernels' bits; where that needs an argument, the argument is next to the code.
 *
 * The kernels stage int8 inputs as int16 pairs (x + input_offset, doubled for the matrix
 * product below) so that one SMLAD does two
 * multiply-accumulates; the staging buffers are arrays on the stack of at most
 * TT_FWD_DSP_STAGE_BYTES (default 2048) per kernel call, the only memory the DSP versions
 * use besides the portable kernels' arguments. A layer whose staging does not fit runs the
 * portable code (tt_forward.h says which). */
#ifndef TT_FWD_DSP_H
#define TT_FWD_DSP_H

#include <arm_acle.h>
#include <stdint.h>
#include <string.h>

#include "tt_dsp_common.h"
#include "tt_fwd_internal.h"

#ifndef TT_FWD_DSP_STAGE_BYTES
#define TT_FWD_DSP_STAGE_BYTES 2048
#endif

typedef int16_t tt_dsp_half __attribute__((may_alias));

/* SMMLAR: bits 63..32 of c * 2^32 + a * b + 2^31 (computed modulo 2^64). No ACLE name. */
static inline int32_t tt_dsp_smmlar(int32_t a, int32_t b, int32_t c) {
  int32_t r;
  __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(c));
  return r;
}


/* The input offset in both 16-bit lanes, for SXTAB16. */
static inline uint32_t tt_dsp_offset_pair(int32_t input_offset) {
  return ((uint32_t)input_offset & 0xFFFFu) * 0x10001u;
}

/* --- requantization in one multiply --------------------------------------------------------
 * For an output channel whose multiplier m lies in [2^30, 2^31) and shift in [-21, -1]
 * (a right shift e = -shift, every real convolution's case), with output offset o in
 * [-256, 255], and an accumulator |a| < 2^29, tt_fwd_requantize(a, m, shift, o, ...) before
 * the clamp equals
 *     SMMLAR(a, b2, a + c + (a >> 31)) >> e,   b2 = 2m mod 2^32 (as int32), c = (2o + 1) 2^(e-1).
 * Proof. tt_fwd_high_mul gives h = floor((a m + 2^30) / 2^31) = floor((2 a m + 2^31) / 2^32)
 * (m != INT32_MIN, so no saturation). tt_fwd_divide_pot rounds h / 2^e half away from zero,
 * which is floor((h + 2^(e-1) - [h < 0]) / 2^e); [h < 0] may be replaced by [a < 0]: they
 * differ only when a < 0 and h = 0, and then both give 0 (0 <= 2^(e-1) - 1 < 2^e). Adding o
 * inside the floor, the result is floor(Y / 2^e) with Y = h + c - [a < 0]. SMMLAR's operand
 * b2 = 2m - 2^32, so a b2 = 2 a m - a 2^32, and with its accumulator R = a + c - [a < 0]
 * (mod 2^32; a wrap changes R 2^32 by a multiple of 2^64, i.e. nothing) it returns
 * (R - a) + floor((2 a m + 2^31) / 2^32) = Y mod 2^32. |h| <= |a| < 2^29 and
 * |c| <= 511 * 2^20 < 2^29, so Y fits in int32, the result is Y itself and the arithmetic
 * shift is floor(Y / 2^e). Outside those ranges the kernels call tt_fwd_requantize. */
typedef struct {
  int32_t b2, m, c, e;
} tt_dsp_rq_params;

/* Whether the one-multiply form applies to an output offset (once per call). */
static inline int tt_dsp_rq_offset_ok(int32_t output_offset) {
  return output_offset >= -256 && output_offset <= 255;
}

/* Whether it applies to a channel (and its output offset is ok); fills q when it does. */
static inline int tt_dsp_rq_init(int32_t multiplier, int32_t shift, int32_t output_offset,
                                 tt_dsp_rq_params *q) {
  if (multiplier < (1 << 30) || (uint32_t)(-shift - 1) >= 21u) return 0;
  q->e = -shift;
  q->m = multiplier;
  q->b2 = (int32_t)((uint32_t)multiplier << 1);
  q->c = (2 * output_offset + 1) * (1 << (q->e - 1));
  return 1;
}

/* A channel whose requantized output is one value v for every accumulator a kernel can make,
 * bias + (a sum of magnitude <= max_sum): the "dead" channels of quantized models (shifts
 * down to -29, biases up to int32's ends). MultiplyByQuantizedMultiplier is non-decreasing
 * in its argument for a multiplier >= 0 and a shift <= 0 (a rounded product, then a
 * rounded right shift), so it is v on [bias - max_sum, bias + max_sum] when both ends give
 * v and the interval lies inside int32 (no sum wraps). For the doubled form
 * (tt_dsp_rq_doubled) q = {m = 0, c = 2 (v + o) + 1, e = 1} gives exactly v + o, whatever
 * the accumulator: SMMLAR(a2, 0, R) is R = c - [a2 < 0], and R >> 1 = v + o. */
static inline int tt_dsp_rq_init_constant(int32_t multiplier, int32_t shift, int32_t bias,
                                          int64_t max_sum, int32_t output_offset,
                                          tt_dsp_rq_params *q) {
  const int64_t lo = (int64_t)bias - max_sum, hi = (int64_t)bias + max_sum;
  if (multiplier < 0 || shift > 0 || lo < INT32_MIN || hi > INT32_MAX) return 0;
  const int64_t v = tt_fwd_mbqm((int32_t)lo, multiplier, shift);
  if (tt_fwd_mbqm((int32_t)hi, multiplier, shift) != v) return 0;
  const int64_t c = 2 * (v + output_offset) + 1;
  if (c < INT32_MIN || c > INT32_MAX) return 0;
  q->b2 = 0;
  q->m = 0;
  q->c = (int32_t)c;
  q->e = 1;
  return 1;
}

/* The requantized accumulator plus output offset, not yet clamped, from twice the
 * accumulator, a2 = 2a (sums of doubled weights and bias, or of doubled staged inputs; the
 * same conditions, so |a2| < 2^30 and [a < 0] = [a2 < 0]): SMMLAR(a2, m, R) returns
 * R + floor((2 a m + 2^31) / 2^32) = R + h, so R = c - [a < 0] and m needs no doubling: one
 * instruction fewer than SMMLAR(a, b2, a + c + (a >> 31)) >> e from a itself. The
 * activation clamp is a single SSAT when its range is all of int8. */
static inline int32_t tt_dsp_rq_doubled(int32_t acc2, const tt_dsp_rq_params *q) {
  return tt_dsp_smmlar(acc2, q->m, q->c + (acc2 >> 31)) >> q->e;
}


/* Accumulators of `taps` products (x + input_offset) * w plus a bias |bias| < 2^28 stay
 * below 2^29 when taps * (128 + |input_offset|) * 128 < 2^28 (|x| <= 128, |w| <= 128). */
static inline int tt_dsp_sums_bounded(int32_t taps, int32_t input_offset) {
  const int32_t off = input_offset < 0 ? -input_offset : input_offset;
  return off < (1 << 20) && (int64_t)taps * (128 + off) < (1 << 21);
}

static inline int tt_dsp_bias_bounded(int32_t bias) {
  return bias > -(1 << 28) && bias < (1 << 28);
}

/* Requantizes the doubled sum in register `acc` in place (tt_dsp_rq_doubled, then SSAT to
 * int8: the activation clamp must be int8's whole range), with the channel's m, c and e in
 * registers `m`, `c`, `e`; `tmp` is clobbered. The one sequence every assembly kernel's
 * outputs go through (tt_fwd_dsp.c's rows, tt_fwd_depthwise.c's 3x3 windows); most keep
 * m, c, e in r1, r2, r3 (TT_DSP_ASM_RQ). */
#define TT_DSP_ASM_RQ_IN(acc, tmp, m, c, e)                                                 \
  "  add " #tmp ", " #c ", " #acc ", asr #31\n"                                            \
  "  smmlar " #acc ", " #acc ", " #m ", " #tmp "\n"                                        \
  "  asr " #acc ", " #acc ", " #e "\n"                                                     \
  "  ssat " #acc ", #8, " #acc "\n"
#define TT_DSP_ASM_RQ(acc, tmp) TT_DSP_ASM_RQ_IN(acc, tmp, r1, r2, r3)

/* TT_DSP_ASM_RQ_IN without the sign correction, for an output offset o of -128 only
 * (tt_dsp_rq_low_ok): SMMLAR(a2, m, c) >> e, then SSAT. For a2 >= 0 it is the same sequence
 * ([a < 0] = 0). For a2 < 0, a2 m <= -2^31 (m >= 2^30), so h = floor((a2 m + 2^31) / 2^32)
 * <= 0, and with c = (2 o + 1) 2^(e-1) = -255 * 2^(e-1) both (h + c) >> e and
 * (h + c - 1) >> e are <= floor(-255 / 2) = -128: SSAT makes both -128. Y stays in int32 as
 * there. One instruction fewer an output where it applies (ReLU outputs of zero point -128). */
#define TT_DSP_ASM_RQ_LOW_IN(acc, m, c, e)                                                  \
  "  smmlar " #acc ", " #acc ", " #m ", " #c "\n"                                          \
  "  asr " #acc ", " #acc ", " #e "\n"                                                     \
  "  ssat " #acc ", #8, " #acc "\n"

static inline int tt_dsp_rq_low_ok(int32_t output_offset) { return output_offset == -128; }

/* --- matrix product over staged columns (tt_fwd_dsp.c) --------------------------------------
 * Output channel r of a convolution (or fully connected unit) is a row of weights in two
 * segments along the reduction, w_lo + r * lo_stride (n_lo int8) then w_hi + r * hi_stride
 * (n_hi int8, the frozen part of a split filter; n_hi = 0 for a whole one). A column is the
 * matching input vector (a pixel's channels, or an im2col window), staged as int16
 * 2 (x + input_offset) (0 for padding), each segment padded with zeros to a multiple of four:
 * doubled, so that the sums are twice the accumulator and requantize by tt_dsp_rq_doubled
 * (one instruction fewer per output). The DSP versions run only where that is exact
 * (tt_dsp_mm_ok): |input_offset| <= 16255, so 2 (x + input_offset) fits an int16 lane, and
 * tt_dsp_sums_bounded, so a sum of doubled products stays below 2^30 in magnitude and
 * acc >> 1 is the accumulator; a bias is the sums' start (doubled) where
 * tt_dsp_bias_bounded holds, else added to acc >> 1.
 * Columns are staged in blocks of P (1, 2, 4, 6 or 8), interleaved by groups of four elements:
 * group j of column p is the two words at 2 (j P + p): [x0, x2] and [x1, x3], the lanes
 * SXTB16 gives a filter word's [w0, w2] and (rotated) [w1, w3], so one SMLAD pairs them. */
typedef struct {
  const int8_t *w_lo, *w_hi;
  int32_t lo_stride, hi_stride, n_lo, n_hi;
  int32_t rows;
  const int32_t *bias, *multiplier;  /* [rows]; bias may be NULL */
  const int8_t *shift;                /* [rows] */
  int32_t input_offset, output_offset, act_min, act_max;
} tt_dsp_mm;

/* Rows a plan covers at most (2 bytes each: its home is the staging buffer's tail). */
#define TT_DSP_PLAN_ROWS 64
#define TT_DSP_PLAN_BYTES (2 * TT_DSP_PLAN_ROWS)

/* plan[2 r] = 1 where row r requantizes in the assembly (tt_dsp_mm_rows_one's test), 2 where
 * its output is one value whatever its inputs (that value in plan[2 r + 1]), else 0; for
 * m->rows <= TT_DSP_PLAN_ROWS rows. */
void tt_dsp_mm_plan(const tt_dsp_mm *m, int8_t *plan);

/* tt_dsp_mm_blocks for a product with a plan (tt_dsp_mm_plan, `known` 2): each row's
 * requantization class worked out once per kernel call instead of once per staged block
 * (MCUNet's stem: 16 rows, two of them dead, a call per 18 columns). */
void tt_dsp_mm_blocks_planned(const tt_dsp_mm *m, const int8_t *plan, const tt_dsp_word *stage,
                              int32_t P, int32_t Q, int8_t *out, int32_t col_stride);

/* The rows of m (one segment of whole groups: n_hi = 0, n_lo a multiple of 4) sign-extended
 * as the assembly's SXTB16s give them, per group of four weights [w0, w2] then [w1, w3]:
 * 2 n_lo bytes a row into `wide` (4-byte aligned, m->rows * 2 n_lo bytes). */
void tt_dsp_widen(const tt_dsp_mm *m, tt_dsp_word *wide);

/* tt_dsp_mm_blocks_planned for Q blocks of 6 columns with the rows widened by tt_dsp_widen:
 * the runs of rows the plan requantizes in the assembly (plan[2 r] == 1; every row when plan
 * is NULL, tt_dsp_mm_rows_one(m) == 1) load their weights by LDRD (tt_dsp_rows6p: 2
 * instructions fewer a group and block), the other rows as tt_dsp_mm_blocks_planned does.
 * Same bits. */
void tt_dsp_mm_blocks6_wide(const tt_dsp_mm *m, const tt_dsp_word *wide, const int8_t *plan,
                            const tt_dsp_word *stage, int32_t Q, int8_t *out,
                            int32_t col_stride);

/* 32-bit words of one staged column. */
static inline int32_t tt_dsp_column_words(const tt_dsp_mm *m) {
  return 2 * (((m->n_lo + 3) >> 2) + ((m->n_hi + 3) >> 2));
}

/* Columns per staged block in `bytes` (8, 4, 2 or 1), 0 when one does not fit. */
int32_t tt_dsp_block_columns(const tt_dsp_mm *m, int32_t bytes);

/* The offset operand of tt_dsp_stage4 for an input offset o: 2 o in both 16-bit lanes. */
static inline uint32_t tt_dsp_stage_offset(int32_t input_offset) {
  return tt_dsp_offset_pair(2 * input_offset);
}

/* Four int8 of v staged: s[0] = [2 (x0 + o), 2 (x2 + o)], s[1] = [2 (x1 + o), 2 (x3 + o)], where
 * off = tt_dsp_stage_offset(o); SXTAB16 twice (x + 2 o, then + x). */
static inline void tt_dsp_stage4(tt_dsp_word *s, uint32_t off, uint32_t v) {
  s[0] = __sxtab16(__sxtab16(off, v), v);
  s[1] = tt_dsp_sxtab16_odd(tt_dsp_sxtab16_odd(off, v), v);
}

/* Element i of column p (of a block of P), `value` = 2 (x + input_offset): int16 lane i % 4
 * of group i / 4, i.e. [x0, x2] then [x1, x3]. */
static inline void tt_dsp_stage_one(tt_dsp_word *stage, int32_t P, int32_t p, int32_t i,
                                    int32_t value) {
  ((tt_dsp_half *)stage)[2 * (2 * ((i >> 2) * P + p) + (i & 1)) + ((i >> 1) & 1)] =
      (int16_t)value;
}

/* Stages elements [i0, i0 + n) of column p (of a block of P) from x[0, n) (doubled, with the
 * offset), or zeros. */
void tt_dsp_stage(tt_dsp_word *stage, int32_t P, int32_t p, int32_t i0, const int8_t *x,
                  int32_t n, int32_t input_offset);
void tt_dsp_stage_zeros(tt_dsp_word *stage, int32_t P, int32_t p, int32_t i0, int32_t n);

/* Zeros the padding of both segments of column p (call after staging the column). */
void tt_dsp_stage_pad(const tt_dsp_mm *m, tt_dsp_word *stage, int32_t P, int32_t p);

/* 1 when every row requantizes by the one-multiply form into int8's whole range from a
 * bounded bias (the assembly's own requantization), else 2: for tt_dsp_mm_blocks' `known`,
 * made once per product rather than once per block. */
int tt_dsp_mm_rows_one(const tt_dsp_mm *m);

/* Every row over Q staged blocks of P columns, one after the other (Q = 1 unless P is 6 or
 * 8): out[p * col_stride + r] for r < rows and the P Q columns p; `known` is
 * tt_dsp_mm_rows_one(m), or 0 (then worked out here). */
void tt_dsp_mm_blocks(const tt_dsp_mm *m, const tt_dsp_word *stage, int32_t P, int32_t Q,
                      int8_t *out, int32_t col_stride, int known);

/* Whether a product of these dimensions may run the DSP versions (its sums bounded). */
static inline int tt_dsp_mm_ok(const tt_dsp_mm *m) {
  return m->input_offset >= -16255 && m->input_offset <= 16255 &&
         tt_dsp_sums_bounded(m->n_lo + m->n_hi, m->input_offset);
}

/* The matrix product of `columns` contiguous input vectors (column p = the n_lo + n_hi
 * elements input[p * in_stride, ...), split at n_lo like the weights): a pointwise
 * convolution or a fully connected layer. Returns 0 (and does nothing) when a column does
 * not fit the staging budget. */
int tt_dsp_mm_contiguous(const tt_dsp_mm *m, int32_t columns, const int8_t *input,
                         int32_t in_stride, int8_t *output, int32_t col_stride);

/* tt_dsp_mm_contiguous with m's rows also given pre-widened (`wide`: tt_dsp_widen's layout,
 * 2 n_lo bytes a row, made once outside the kernel, e.g. frozen in flash; n_hi = 0): the
 * runs of rows that requantize in the assembly, in blocks of 6 or 4 columns (whole or in
 * chunks of the reduction), load them by LDRD (tt_dsp_rows6p/4p) instead of sign-extending
 * w_lo's words in every block (or once a call: tt_dsp_rows6w); every other row and path
 * reads w_lo as tt_dsp_mm_contiguous does. Same bits. A product of 8 or 16 elements
 * (n_hi = 0), an even number of rows and contiguous word-aligned columns (in_stride = K;
 * otherwise the paths from w_lo) takes instead its rows' records in `wide` (the
 * column form's, tt_fwd_dsp.c: K / 2 + 4 words a row, [2 bias, the doubled weights in
 * tt_dsp_widen's order, m, c, e], bit 8 set in the last row's e), and only where every
 * row requantizes in the assembly (tt_dsp_rq_init, tt_dsp_bias_bounded, int8's whole
 * range): the kernel trusts them. Where the one-shift kernels apply (output offset -128,
 * 16 rows of 8 elements a loop or 8 of 16, every e in [4, 10], the scaled sums' bound:
 * tt_fwd_dsp.c's records_e) the records are already in their form, e's byte 0 (weights,
 * bias and c scaled by 2^(11 - e)): read as they are, not converted in every call. */
int tt_dsp_mm_contiguous_wide(const tt_dsp_mm *m, const tt_dsp_word *wide, int32_t columns,
                              const int8_t *input, int32_t in_stride, int8_t *output,
                              int32_t col_stride);

#endif /* TT_FWD_DSP_H */
