/* The pointwise input gradient of a few rows without staging (tt_grad_dsp.h:
 * tt_dsp_pointwise_input_grad_rows_s8), beside the staged walk of tt_input_grad_dsp.c.
 *
 * The staged walk widens every weight once per call (about 3.6 instructions a weight) so
 * that each row then costs 0.84 a MAC; a call of a few rows (the second pass of a layer
 * that kept most of its positions: MCUNet's blocks.13.pointwise2 recomputes 3 of 16) pays
 * the widening for almost nothing. Here the rows' h = dy * mult (int16: |dy| <= 128,
 * 0 <= mult <= 256) are staged instead, as pairs along the reduction (h[o], h[o + 1]), and
 * the int8 weights are read where they are: two outputs' words of four columns, SXTB16
 * and PKHBT/PKHTB turn them into four (w[o, c], w[o + 1, c]) pairs, each one SMLAD per
 * row, for two rows at once (a last odd row alone). The pairs are built once per two rows
 * instead of once per call, which pays where the rows are few (the caller's cost rule).
 *
 * Same integers as the staged walk and the portable code: each accumulator is the exact
 * int32 sum of the same co terms h * w (bounded below 2^31, tt_kernels.h; SMLAD wraps as
 * int32 additions do). Rounding keeps dx's row-major draws: a chunk of columns of both rows
 * is rounded row by row, each row from its own stream state (the second row's state is the
 * first's ci draws further), so the last row leaves the stream where the portable walk
 * does. */
#include <string.h>

#include "tt_grad_dsp.h"

#if TT_GRAD_DSP
#include "tt_dsp_common.h"

/* The rows' h are interleaved in hh as pairs along the reduction: word 2q row 0's
 * (h[2q], h[2q + 1]), word 2q + 1 row 1's (co odd: the last pair's second half 0, its
 * weight never read). */

/* h of output o of the row whose pairs start at word `row` of hh. */
static inline int32_t h_of(const tt_dsp_word *hh, int32_t row, int32_t o) {
  const tt_dsp_word v = hh[2 * (o >> 1) + row];
  return (o & 1) ? (int32_t)v >> 16 : (int16_t)v;
}

/* acc_r[j] = the sum over o < co of h_r[o] * w[o * stride + j] for the columns j < n of the
 * last 1-3 (word loads there would pass the last output's row): rows 0 and, R == 2, 1. */
static void tail_columns(const int8_t *w, int32_t stride, int32_t co, int32_t j, int32_t n,
                         const tt_dsp_word *hh, int32_t *acc0, int32_t *acc1, int R) {
  for (; j < n; ++j) {
    int32_t a = 0, b = 0;
    for (int32_t o = 0; o < co; ++o) {
      a += h_of(hh, 0, o) * w[o * stride + j];
      if (R == 2) b += h_of(hh, 1, o) * w[o * stride + j];
    }
    acc0[j] = a;
    if (R == 2) acc1[j] = b;
  }
}

#if TT_DSP_ASM_ALL_REGS
/* one_row's pairs of outputs in assembly, two pairs an iteration: the two outputs' words
 * (a0 a1 a2 a3) and (b0 b1 b2 b3) packed first, PKHBT (a0 a1 b0 b1) and PKHTB (a2 a3 b2 b3),
 * so that four SXTB16 give the four pairs (a_c, b_c) where C's extensions then packing take
 * eight: 15 instructions a pair of outputs and four columns (8 MACs) where gcc's loop took
 * 19. The same pairs times the same h, one SMLAD each, added in the same order: the same
 * sums. */
#define TT_GDSP_ROW_PAIR                                                                    \
  "ldr %[w0], [%[s]]\n\tldr %[w1], [%[s], %[st]]\n\tadd %[s], %[s], %[st], lsl #1\n\t"    \
  "ldr %[x], [%[h]], #8\n\t"                                                                \
  "pkhbt %[t], %[w0], %[w1], lsl #16\n\tpkhtb %[w1], %[w1], %[w0], asr #16\n\t"             \
  "sxtb16 %[w0], %[t]\n\tsxtb16 %[t], %[t], ror #8\n\t"                                     \
  "smlad %[a0], %[w0], %[x], %[a0]\n\tsmlad %[a1], %[t], %[x], %[a1]\n\t"                   \
  "sxtb16 %[w0], %[w1]\n\tsxtb16 %[w1], %[w1], ror #8\n\t"                                  \
  "smlad %[a2], %[w0], %[x], %[a2]\n\tsmlad %[a3], %[w1], %[x], %[a3]\n\t"
#endif

/* One row's accumulators acc0[j], j < n (the sums of tail_columns): two outputs' words of
 * four columns make the four pairs (w[o, c], w[o + 1, c]), one SMLAD each, all four
 * accumulators in registers (18 instructions for 8 MACs in C, 15 in assembly). */
static __attribute__((noinline)) TT_DSP_ASM_FN void one_row(const int8_t *w, int32_t stride,
                                                            int32_t co, int32_t n,
                                                            const tt_dsp_word *hh,
                                                            int32_t *acc0) {
  const tt_dsp_word *const end = hh + 2 * (co >> 1);
  int32_t j = 0;
  for (; j + 4 <= n; j += 4) {
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    const int8_t *s = w + j;
    const tt_dsp_word *h = hh;
#if TT_DSP_ASM_ALL_REGS
    /* an odd number of pairs: the first alone, then two an iteration */
    const tt_dsp_word *const even = hh + 4 * (co >> 2);
    uint32_t w0, w1, t, x;
    if (even != end)
      __asm__ volatile(TT_GDSP_ROW_PAIR
                       : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3),
                         [s] "+r"(s), [h] "+r"(h), [w0] "=&r"(w0), [w1] "=&r"(w1),
                         [t] "=&r"(t), [x] "=&r"(x)
                       : [st] "r"(stride)
                       : "memory");
    if (h != end)
      __asm__ volatile("1:\n\t" TT_GDSP_ROW_PAIR TT_GDSP_ROW_PAIR
                       "cmp %[h], %[end]\n\tbne 1b\n\t"
                       : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3),
                         [s] "+r"(s), [h] "+r"(h), [w0] "=&r"(w0), [w1] "=&r"(w1),
                         [t] "=&r"(t), [x] "=&r"(x)
                       : [st] "r"(stride), [end] "r"(end)
                       : "cc", "memory");
#endif
    for (; h != end; h += 2, s += 2 * stride) {
      const uint32_t w0 = tt_dsp_load4(s), w1 = tt_dsp_load4(s + stride);
      const uint32_t e0 = __sxtb16(w0), e1 = __sxtb16(w1);
      const uint32_t g0 = tt_dsp_sxtb16_odd(w0), g1 = tt_dsp_sxtb16_odd(w1);
      const uint32_t x = h[0];
      a0 = __smlad(tt_dsp_low_halves(e0, e1), x, a0);
      a2 = __smlad(tt_dsp_high_halves(e0, e1), x, a2);
      a1 = __smlad(tt_dsp_low_halves(g0, g1), x, a1);
      a3 = __smlad(tt_dsp_high_halves(g0, g1), x, a3);
    }
    if (co & 1) {                          /* the last output alone */
      const int32_t x = (int16_t)h[0];
      a0 += x * s[0], a1 += x * s[1], a2 += x * s[2], a3 += x * s[3];
    }
    acc0[j] = a0, acc0[j + 1] = a1, acc0[j + 2] = a2, acc0[j + 3] = a3;
  }
  tail_columns(w, stride, co, j, n, hh, acc0, 0, 1);
}

/* Two rows' columns j, j + 2 (odd: j + 1, j + 3) of a block of four: four accumulators,
 * so that the loop's operands stay in registers (13 instructions for 8 MACs; all eight
 * accumulators at once spill four of them: 39 for 16). */
static inline __attribute__((always_inline)) void half_block(const int8_t *s, int32_t stride,
                                                             const tt_dsp_word *h,
                                                             const tt_dsp_word *end,
                                                             int32_t *acc0, int32_t *acc1,
                                                             const int odd) {
  int32_t a0 = 0, a2 = 0, b0 = 0, b2 = 0;
  for (; h != end; h += 2, s += 2 * stride) {
    const uint32_t w0 = tt_dsp_load4(s), w1 = tt_dsp_load4(s + stride);
    const uint32_t e0 = odd ? tt_dsp_sxtb16_odd(w0) : (uint32_t)__sxtb16(w0);
    const uint32_t e1 = odd ? tt_dsp_sxtb16_odd(w1) : (uint32_t)__sxtb16(w1);
    const uint32_t p0 = tt_dsp_low_halves(e0, e1), p2 = tt_dsp_high_halves(e0, e1);
    const uint32_t x = h[0], y = h[1];
    a0 = __smlad(p0, x, a0);
    a2 = __smlad(p2, x, a2);
    b0 = __smlad(p0, y, b0);
    b2 = __smlad(p2, y, b2);
  }
  acc0[odd] = a0, acc0[odd + 2] = a2, acc1[odd] = b0, acc1[odd + 2] = b2;
}

/* Two rows' accumulators acc0[j], acc1[j], j < n. */
static __attribute__((noinline)) void two_rows(const int8_t *w, int32_t stride, int32_t co,
                                               int32_t n, const tt_dsp_word *hh, int32_t *acc0,
                                               int32_t *acc1) {
  const tt_dsp_word *const end = hh + 2 * (co >> 1);
  int32_t j = 0;
  for (; j + 4 <= n; j += 4) {
    half_block(w + j, stride, hh, end, acc0 + j, acc1 + j, 0);
    half_block(w + j, stride, hh, end, acc0 + j, acc1 + j, 1);
    if (co & 1) {                          /* the last output alone: its pair's half 0 */
      const int8_t *s = w + (co - 1) * stride + j;
      const int32_t x = (int16_t)end[0], y = (int16_t)end[1];
      for (int32_t i = 0; i < 4; ++i) acc0[j + i] += x * s[i], acc1[j + i] += y * s[i];
    }
  }
  tail_columns(w, stride, co, j, n, hh, acc0, acc1, 2);
}

/* Row p's h = dy * mult (0 where masked) into every other word of hh, as pairs. */
static void stage_h(const int8_t *dy, const uint8_t *mask, int32_t mask_at, int32_t co,
                    const int16_t *mult, tt_dsp_word *hh) {
  for (int32_t o = 0; o < co; o += 2) {
    int32_t h0 = dy[o] * mult[o], h1 = o + 1 < co ? dy[o + 1] * mult[o + 1] : 0;
    if (mask != 0) {
      if (!tt_live(mask, mask_at + o)) h0 = 0;
      if (o + 1 < co && !tt_live(mask, mask_at + o + 1)) h1 = 0;
    }
    hh[o] = (uint16_t)h0 | ((uint32_t)h1 << 16);
  }
}

int tt_dsp_pointwise_input_grad_rows_s8(const int8_t *dy, const uint8_t *mask, int32_t mask_at,
                                        int32_t rows, int32_t co, const int8_t *w_lo,
                                        int32_t k, const int8_t *w_hi, int32_t ci,
                                        const int16_t *mult, const tt_keep *keep,
                                        uint32_t *amax, tt_rounder *r, int8_t *dx) {
  /* hh: two words a pair of outputs; then two rows' chunk of accumulators */
  tt_dsp_word mem[TT_GRAD_DSP_STAGE_BYTES / 4] __attribute__((aligned(8)));
  const int32_t chunk = tt_dsp_rows_chunk(co);
  if (chunk < 4 || rows < 1) return 0;
  tt_dsp_word *const hh = mem;
  int32_t *const buf0 = (int32_t *)(void *)(mem + tt_dsp_rows_h_words(co)),
          *const buf1 = buf0 + chunk;
  const int stochastic = r != 0 && r->stochastic && !r->exact;
  uint32_t top = 0;
  for (int32_t p = 0; p < rows;) {
    const int two = p + 1 < rows;
    stage_h(dy + p * co, mask, mask_at + p * co, co, mult, hh);
    if (two) stage_h(dy + (p + 1) * co, mask, mask_at + (p + 1) * co, co, mult, hh + 1);
    /* the rows' streams at their column 0: the second row's ci draws after the first's */
    uint32_t state[2] = {0, 0};
    if (stochastic) state[0] = r->rng, state[1] = two ? tt_gdsp_skip(r->rng, ci) : 0;
    int32_t *const kept0 = tt_kept(keep, p, ci), *const kept1 = two ? tt_kept(keep, p + 1, ci) : 0;
    for (int32_t c0 = 0; c0 < ci; c0 += chunk) {
      const int32_t nc = ci - c0 < chunk ? ci - c0 : chunk;
      int32_t *const acc0 = kept0 != 0 ? kept0 + c0 : buf0;
      int32_t *const acc1 = kept1 != 0 ? kept1 + c0 : buf1;
      /* columns [c0, c0 + lo) from w_lo, the rest from w_hi (a split filter) */
      const int32_t lo = k - c0 >= nc ? nc : (k > c0 ? k - c0 : 0);
      if (lo > 0) {
        if (two) two_rows(w_lo + c0, k, co, lo, hh, acc0, acc1);
        else one_row(w_lo + c0, k, co, lo, hh, acc0);
      }
      if (lo < nc) {
        const int8_t *const wh = w_hi + (c0 + lo - k);
        if (two) two_rows(wh, ci - k, co, nc - lo, hh, acc0 + lo, acc1 + lo);
        else one_row(wh, ci - k, co, nc - lo, hh, acc0 + lo);
      }
      if (amax != 0) {
        top = tt_largest_magnitude(acc0, nc, top);
        if (two) top = tt_largest_magnitude(acc1, nc, top);
      }
      if (r != 0) {
        if (stochastic) r->rng = state[0];
        tt_round_grads(r, acc0, nc, dx + p * ci + c0);
        if (stochastic) state[0] = r->rng;
        if (two) {
          if (stochastic) r->rng = state[1];
          tt_round_grads(r, acc1, nc, dx + (p + 1) * ci + c0);
          if (stochastic) state[1] = r->rng;
        }
      }
    }
    if (stochastic) r->rng = state[two];
    p += 1 + two;
  }
  if (amax != 0) *amax = top;
  return 1;
}

#else
typedef int tt_input_grad_rows_dsp_unused;  /* ISO C: a translation unit is not empty */
#endif
