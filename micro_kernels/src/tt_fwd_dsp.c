/* The DSP matrix product of the forward kernels (tt_fwd_dsp.h): staged int16 columns times
 * int8 filter rows with SMLAD, shared by the convolutions (pointwise and im2col), the fully
 * connected layers and the depthwise convolutions with a depth multiplier.
 *
 * One row (output channel) at a time against a block of P columns: a filter word is loaded
 * and sign-extended once ([w0, w2], [w1, w3]) and meets the P staged columns in 2P SMLADs;
 * the P accumulators share the row's requantization constants. Per four input elements and
 * P columns: one load and two extensions of weights, P double-word loads, 2P SMLADs. */
#include "tt_fwd_internal.h"

#if TT_FWD_DSP
#include "tt_fwd_dsp.h"

int32_t tt_dsp_block_columns(const tt_dsp_mm *m, int32_t bytes) {
  const int32_t column = 4 * tt_dsp_column_words(m);
  for (int32_t P = 8; P >= 1; P >>= 1)
    if (P * column <= bytes) return P;
  return 0;
}

void tt_dsp_stage(tt_dsp_word *stage, int32_t P, int32_t p, int32_t i0, const int8_t *x,
                  int32_t n, int32_t input_offset) {
  int32_t i = 0;
  for (; i < n && ((i0 + i) & 3); ++i) tt_dsp_stage_one(stage, P, p, i0 + i, x[i] + input_offset);
  const uint32_t off = tt_dsp_offset_pair(input_offset);
  tt_dsp_word *s = stage + 2 * (((i0 + i) >> 2) * P + p);
  for (; i + 4 <= n; i += 4, s += 2 * P) {
    const uint32_t v = tt_dsp_load4(x + i);
    s[0] = __sxtab16(off, v);
    s[1] = tt_dsp_sxtab16_odd(off, v);
  }
  for (; i < n; ++i) tt_dsp_stage_one(stage, P, p, i0 + i, x[i] + input_offset);
}

void tt_dsp_stage_zeros(tt_dsp_word *stage, int32_t P, int32_t p, int32_t i0, int32_t n) {
  int32_t i = 0;
  for (; i < n && ((i0 + i) & 3); ++i) tt_dsp_stage_one(stage, P, p, i0 + i, 0);
  tt_dsp_word *s = stage + 2 * (((i0 + i) >> 2) * P + p);
  for (; i + 4 <= n; i += 4, s += 2 * P) s[0] = s[1] = 0;
  for (; i < n; ++i) tt_dsp_stage_one(stage, P, p, i0 + i, 0);
}

void tt_dsp_stage_pad(const tt_dsp_mm *m, tt_dsp_word *stage, int32_t P, int32_t p) {
  const int32_t lo = (m->n_lo + 3) & ~3, hi = (m->n_hi + 3) & ~3;
  tt_dsp_stage_zeros(stage, P, p, m->n_lo, lo - m->n_lo);
  tt_dsp_stage_zeros(stage, P, p, lo + m->n_hi, hi - m->n_hi);
}

/* tt_dsp_ldrd that also advances s by `step` bytes (post-indexed): saves the add. */
#define TT_DSP_LDRD_NEXT(s, lo, hi, step)                                                   \
  __asm__("ldrd %0, %1, [%2], %4" : "=r"(lo), "=r"(hi), "+r"(s)                           \
          : "m"(*(const tt_dsp_dword *)(s)), "i"(step))

/* acc[p] += the four weights in v times group 0 of the block at *s; *s moves to the next
 * group. With `from` the sums start there instead (the bias, as SMLAD's accumulator operand:
 * no instruction to set them). */
static inline __attribute__((always_inline)) void mac_group(const tt_dsp_word **s, uint32_t v,
                                                            const int32_t P, int32_t acc[8],
                                                            const int start, int32_t from) {
  const uint32_t even = __sxtb16(v), odd = tt_dsp_sxtb16_odd(v);
  const tt_dsp_word *t = *s;
  uint32_t x0, x1;
#pragma GCC unroll 8
  for (int32_t p = 0; p < P - 1; ++p) {
    tt_dsp_ldrd(t + 2 * p, &x0, &x1);
    acc[p] = __smlad(x0, even, start ? from : acc[p]);
    acc[p] = __smlad(x1, odd, acc[p]);
  }
  t += 2 * (P - 1);
  TT_DSP_LDRD_NEXT(t, x0, x1, 8);
  acc[P - 1] = __smlad(x0, even, start ? from : acc[P - 1]);
  acc[P - 1] = __smlad(x1, odd, acc[P - 1]);
  *s = t;
}

/* void tt_dsp_mac8(int32_t acc[8], const tt_dsp_word *s, const int8_t *w,
 *                  const int8_t *end): acc[p] += the groups of weights [w, end) (end - w a
 * positive multiple of 4) times column p of the block of 8 staged columns at s.
 *
 * A function in assembly because its loop holds 14 values (8 sums, the two pointers, a
 * weight word's two sign-extended halves, a staged double word), every register the core
 * has: gcc 12 spills three of them from the C version (35 instructions a group instead of
 * 27 + the loop), and an asm statement with 14 register operands is "impossible" for it at
 * -O0/-O1/-Og (r7 is the frame pointer) and in some callers at -O2. Per group of four
 * weights: LDR, 2 SXTB16, 8 LDRD, 16 SMLAD (27 instructions, 32 MACs); per two groups the
 * loop's end (from the stack), CMP and BNE: 57 instructions per 64 MACs, and about 12 per
 * call (PUSH, LDM and STM of the sums, POP). An odd group count enters at the second copy. */
#define TT_DSP_MAC8_GROUP \
  "  ldr r0, [r2], #4\n" \
  "  sxtb16 r3, r0, ror #8\n" \
  "  sxtb16 r0, r0\n" \
  "  ldrd r12, lr, [r1, #8]\n" \
  "  smlad r5, r12, r0, r5\n" \
  "  smlad r5, lr, r3, r5\n" \
  "  ldrd r12, lr, [r1, #16]\n" \
  "  smlad r6, r12, r0, r6\n" \
  "  smlad r6, lr, r3, r6\n" \
  "  ldrd r12, lr, [r1, #24]\n" \
  "  smlad r7, r12, r0, r7\n" \
  "  smlad r7, lr, r3, r7\n" \
  "  ldrd r12, lr, [r1, #32]\n" \
  "  smlad r8, r12, r0, r8\n" \
  "  smlad r8, lr, r3, r8\n" \
  "  ldrd r12, lr, [r1, #40]\n" \
  "  smlad r9, r12, r0, r9\n" \
  "  smlad r9, lr, r3, r9\n" \
  "  ldrd r12, lr, [r1, #48]\n" \
  "  smlad r10, r12, r0, r10\n" \
  "  smlad r10, lr, r3, r10\n" \
  "  ldrd r12, lr, [r1, #56]\n" \
  "  smlad r11, r12, r0, r11\n" \
  "  smlad r11, lr, r3, r11\n" \
  "  ldrd r12, lr, [r1], #64\n" \
  "  smlad r4, r12, r0, r4\n" \
  "  smlad r4, lr, r3, r4\n"
__asm__(
    "  .section .text.tt_dsp_mac8,\"ax\",%progbits\n"
    "  .syntax unified\n"
    "  .thumb\n"
    "  .p2align 2\n"
    "  .global tt_dsp_mac8\n"
    "  .type tt_dsp_mac8, %function\n"
    "  .thumb_func\n"
    "tt_dsp_mac8:\n"
    "  push {r4-r11, lr}\n"
    "  strd r0, r3, [sp, #-8]!\n"       /* acc and end: no register is left for them */
    "  ldm r0, {r4-r11}\n"
    "  eor r0, r3, r2\n"                /* w and end differ by 4 (mod 8) iff the count is odd */
    "  tst r0, #4\n"
    "  bne 2f\n"
    "1:\n" TT_DSP_MAC8_GROUP
    "2:\n" TT_DSP_MAC8_GROUP
    "  ldr r0, [sp, #4]\n"
    "  cmp r2, r0\n"
    "  bne 1b\n"
    "  ldr r0, [sp], #8\n"
    "  stm r0, {r4-r11}\n"
    "  pop {r4-r11, pc}\n"
    "  .size tt_dsp_mac8, . - tt_dsp_mac8\n"
    "  .text\n");
#undef TT_DSP_MAC8_GROUP
void tt_dsp_mac8(int32_t acc[8], const tt_dsp_word *s, const int8_t *w, const int8_t *end);

/* acc[p] += sum over the n weights w[i] and the staged elements of column p; with `start`
 * the sums begin at `from` instead (the first group's SMLADs take it as their accumulator). */
static inline __attribute__((always_inline)) void mac(const tt_dsp_word *s, const int8_t *w,
                                                      int32_t n, const int32_t P,
                                                      int32_t acc[8], const int start,
                                                      int32_t from) {
  const int8_t *end = w + (n & ~3);
  if (start && P == 8 && w != end) {     /* all groups in tt_dsp_mac8, from memory */
#pragma GCC unroll 8
    for (int32_t p = 0; p < P; ++p) acc[p] = from;
  } else if (start) {
    if (w != end) {
      mac_group(&s, tt_dsp_load4(w), P, acc, 1, from);
      w += 4;
    } else {
#pragma GCC unroll 8
      for (int32_t p = 0; p < P; ++p) acc[p] = from;
    }
  }
  if (P == 8 && w != end) {
    tt_dsp_mac8(acc, s, w, end);
    s += 16 * ((end - w) >> 2);
    w = end;
  }
  for (; w != end; w += 4) mac_group(&s, tt_dsp_load4(w), P, acc, 0, 0);
  /* the staged padding is zero: the missing weights may be anything, here zeros */
  if (n & 3) mac_group(&s, tt_dsp_load_partial(w, n & 3), P, acc, 0, 0);
}

/* Rows [r0, r1) over Q staged blocks of P columns each (block q at stage + q * block words,
 * its outputs P * col_stride bytes after block q - 1's) holding elements [k0, k0 + n) of
 * the low segment (all of both segments when k0 = 0 and n = n_lo). The sums start from the
 * bias (`first`) or part[r - r0][p] (Q = 1), and end requantized into out (`last`) or back
 * in part. A row's requantization constants are made once for its Q P outputs. */
static inline __attribute__((always_inline)) void rows(const tt_dsp_mm *m,
                                                       const tt_dsp_word *stage, const int32_t P,
                                                       int32_t Q, int32_t r0, int32_t r1,
                                                       int32_t k0, int32_t n,
                                                       int32_t (*part)[8], const int first,
                                                       const int last, int8_t *out,
                                                       int32_t col_stride) {
  /* locals: every output store could alias *m for the compiler (char type) */
  const int8_t *w_lo = m->w_lo + k0, *w_hi = m->w_hi;
  const int32_t lo_stride = m->lo_stride, hi_stride = m->hi_stride, n_hi = m->n_hi;
  const int32_t *bias = m->bias, *mult = m->multiplier, *shift = m->shift;
  const int32_t lo = m->act_min, hi = m->act_max, out_off = m->output_offset;
  const int32_t block = tt_dsp_column_words(m) * P;
  const tt_dsp_word *stage_hi = stage + 2 * P * ((m->n_lo + 3) >> 2);
  const int fast = tt_dsp_sums_bounded(m->n_lo + n_hi, m->input_offset) &&
                   tt_dsp_rq_offset_ok(out_off);
  const int full = lo == -128 && hi == 127;
  for (int32_t r = r0; r < r1; ++r) {
    const int32_t b = bias ? bias[r] : 0;
    tt_dsp_rq_params q = {0, 0, 0, 0};
    const int one = last && fast && tt_dsp_bias_bounded(b) &&
                    tt_dsp_rq_init(mult[r], shift[r], out_off, &q);
    const int8_t *wr = w_lo + r * lo_stride, *wh = w_hi + r * hi_stride;
    /* one pointer walks the row's outputs (not P induction variables across rows) */
    int8_t *y = out + r;
    __asm__("" : "+r"(y));
    const tt_dsp_word *blk = stage;
    for (int32_t qb = 0; qb < Q; ++qb, blk += block) {
      int32_t acc[8];
      if (first) {
        mac(blk, wr, n, P, acc, 1, b);
      } else {
#pragma GCC unroll 8
        for (int32_t p = 0; p < P; ++p) acc[p] = part[r - r0][p];
        mac(blk, wr, n, P, acc, 0, 0);
      }
      if (n_hi > 0) mac(blk + (stage_hi - stage), wh, n_hi, P, acc, 0, 0);
      if (!last) {
#pragma GCC unroll 8
        for (int32_t p = 0; p < P; ++p) part[r - r0][p] = acc[p];
        continue;
      }
      if (one && full) {
#pragma GCC unroll 8
        for (int32_t p = 0; p < P; ++p, y += col_stride)
          *y = (int8_t)__ssat(tt_dsp_rq(acc[p], &q), 8);
      } else if (one) {
#pragma GCC unroll 8
        for (int32_t p = 0; p < P; ++p, y += col_stride)
          *y = (int8_t)tt_fwd_clamp(tt_dsp_rq(acc[p], &q), lo, hi);
      } else {
#pragma GCC unroll 8
        for (int32_t p = 0; p < P; ++p, y += col_stride)
          *y = tt_fwd_requantize(acc[p], mult[r], shift[r], out_off, lo, hi);
      }
    }
  }
}

/* One compiled copy of rows per block width, and one for chunks of eight columns. */
#define TT_DSP_ROWS(P)                                                                      \
  static __attribute__((noinline)) void rows##P(const tt_dsp_mm *m,                        \
                                                const tt_dsp_word *stage, int8_t *out,      \
                                                int32_t col_stride) {                       \
    rows(m, stage, P, 1, 0, m->rows, 0, m->n_lo, 0, 1, 1, out, col_stride);                 \
  }
TT_DSP_ROWS(8)
TT_DSP_ROWS(4)
TT_DSP_ROWS(2)
TT_DSP_ROWS(1)

/* Blocks of 8 columns, Q of them staged one after the other. */
static __attribute__((noinline)) void rows8q(const tt_dsp_mm *m, const tt_dsp_word *stage,
                                             int32_t Q, int8_t *out, int32_t col_stride) {
  rows(m, stage, 8, Q, 0, m->rows, 0, m->n_lo, 0, 1, 1, out, col_stride);
}

static __attribute__((noinline)) void rows_chunk8(const tt_dsp_mm *m, const tt_dsp_word *stage,
                                                  int32_t r0, int32_t r1, int32_t k0,
                                                  int32_t n, int32_t (*part)[8], int first,
                                                  int last, int8_t *out, int32_t col_stride) {
  if (first && last)
    rows(m, stage, 8, 1, r0, r1, k0, n, part, 1, 1, out, col_stride);
  else if (first)
    rows(m, stage, 8, 1, r0, r1, k0, n, part, 1, 0, out, col_stride);
  else if (last)
    rows(m, stage, 8, 1, r0, r1, k0, n, part, 0, 1, out, col_stride);
  else
    rows(m, stage, 8, 1, r0, r1, k0, n, part, 0, 0, out, col_stride);
}

void tt_dsp_mm_block(const tt_dsp_mm *m, const tt_dsp_word *stage, int32_t P, int8_t *out,
                     int32_t col_stride) {
  switch (P) {
    case 8: rows8(m, stage, out, col_stride); break;
    case 4: rows4(m, stage, out, col_stride); break;
    case 2: rows2(m, stage, out, col_stride); break;
    default: rows1(m, stage, out, col_stride); break;
  }
}

/* Elements [k0, k0 + n) (whole groups) of the P contiguous columns at x, with the offset. */
static void stage_words(tt_dsp_word *stage, int32_t P, const int8_t *x, int32_t in_stride,
                        int32_t k0, int32_t n, uint32_t off) {
  for (int32_t p = 0; p < P; ++p) {
    const int8_t *v = x + p * in_stride + k0, *end = v + n;
    for (tt_dsp_word *s = stage + 2 * p; v != end; v += 4, s += 2 * P) {
      const uint32_t w = tt_dsp_load4(v);
      s[0] = __sxtab16(off, w);
      s[1] = tt_dsp_sxtab16_odd(off, w);
    }
  }
}

/* A block of 8 columns of more elements than fit the buffer 4 at a time: the reduction in
 * chunks of KC elements, every chunk staged once per ROW_BLOCK rows, whose sums wait in
 * `part` between chunks. Staging again costs about 1.5 instructions an element per
 * ROW_BLOCK rows; measured on the rig, 8 columns chunked beat 2 or 1 whole ones (1.28
 * instead of 1.6-2.1 instructions/MAC for MCUNet's 384 and 576 channels), not 4 whole ones.
 * One segment of whole groups. */
#define ROW_BLOCK 16
#define KC ((TT_FWD_DSP_STAGE_BYTES / 4 - 8 * ROW_BLOCK) / 16 * 4)

static void chunked_block(const tt_dsp_mm *m, const int8_t *x, int32_t in_stride, int8_t *out,
                          int32_t col_stride, tt_dsp_word *stage) {
  int32_t (*part)[8] = (int32_t(*)[8])(stage + 4 * KC);
  const uint32_t off = tt_dsp_offset_pair(m->input_offset);
  const int32_t K = m->n_lo;
  for (int32_t r0 = 0; r0 < m->rows; r0 += ROW_BLOCK) {
    const int32_t r1 = m->rows - r0 < ROW_BLOCK ? m->rows : r0 + ROW_BLOCK;
    for (int32_t k0 = 0; k0 < K; k0 += KC) {
      const int32_t n = K - k0 < KC ? K - k0 : KC;
      stage_words(stage, 8, x, in_stride, k0, n, off);
      rows_chunk8(m, stage, r0, r1, k0, n, part, k0 == 0, k0 + n == K, out, col_stride);
    }
  }
}

int tt_dsp_mm_contiguous(const tt_dsp_mm *m, int32_t columns, const int8_t *input,
                         int32_t in_stride, int8_t *output, int32_t col_stride) {
  const int32_t fit = tt_dsp_block_columns(m, TT_FWD_DSP_STAGE_BYTES);
  const int chunks = fit < 4 && m->n_hi == 0 && (m->n_lo & 3) == 0;  /* for blocks of 8 */
  if (fit == 0 && !(chunks && columns % 8 == 0)) return 0;
  tt_dsp_word stage[TT_FWD_DSP_STAGE_BYTES / 4];
  const int32_t hi0 = (m->n_lo + 3) & ~3;
  const uint32_t off = tt_dsp_offset_pair(m->input_offset);
  for (int32_t c = 0, P; c < columns; c += P) {
    const int8_t *x = input + c * in_stride;
    int8_t *out = output + c * col_stride;
    if (chunks && columns - c >= 8) {
      chunked_block(m, x, in_stride, out, col_stride, stage);
      P = 8;
      continue;
    }
    for (P = fit; c + P > columns; P >>= 1) {
    }
    if (m->n_hi == 0 && (m->n_lo & 3) == 0) {     /* one segment of whole groups: hot */
      if (P == 8) {     /* as many blocks of 8 as fit: a row's constants serve them all */
        const int32_t block = 8 * tt_dsp_column_words(m);
        int32_t Q = (TT_FWD_DSP_STAGE_BYTES / 4) / block;
        if (Q > (columns - c) / 8) Q = (columns - c) / 8;
        for (int32_t qb = 0; qb < Q; ++qb)
          stage_words(stage + qb * block, 8, x + qb * 8 * in_stride, in_stride, 0, m->n_lo,
                      off);
        rows8q(m, stage, Q, out, col_stride);
        P = 8 * Q;
        continue;
      }
      stage_words(stage, P, x, in_stride, 0, m->n_lo, off);
    } else {
      for (int32_t p = 0; p < P; ++p) {
        tt_dsp_stage(stage, P, p, 0, x + p * in_stride, m->n_lo, m->input_offset);
        tt_dsp_stage(stage, P, p, hi0, x + p * in_stride + m->n_lo, m->n_hi, m->input_offset);
        tt_dsp_stage_pad(m, stage, P, p);
      }
    }
    tt_dsp_mm_block(m, stage, P, out, col_stride);
  }
  return 1;
}

#else
typedef int tt_fwd_dsp_unused;     /* ISO C: a translation unit is not empty */
#endif
