/* Cortex-M DSP versions of the int8 input gradients (tt_grad_dsp.h), beside the portable
 * ones of tt_input_grad.c, which calls them.
 *
 * Pointwise layers (1x1 convolution of stride 1 without padding, fully connected): dx is the
 * matrix product of dy [rows, co] and the weights [co, ci] with the per-channel multipliers
 * in between. SMLAD takes two int16 x int16 products whose pairs run along the reduction
 * (o), but the weights run along ci in memory: they are staged transposed, a chunk of CB
 * input channels at a time, as int16 wm[o, c] = w[o, c] * mult[o] (|w| <= 128 and
 * 0 <= mult <= 2^TT_GRAD_MAX_SHIFT = 256, so wm lies in [-32768, 32512]: an int16). Then
 * h * w = dy * wm term by term, and the int8 dy rows are used as they are: one word of four
 * dy values, sign-extended in two halves by SXTB16, meets the CB staged columns in 2 CB
 * SMLADs. Per four o and CB channels: one load and two extensions of dy (plus two
 * instructions for a mask), CB double-word loads, 2 CB SMLADs; the staging, about four
 * instructions per weight (3.6 four columns at a time), is shared by all the rows. The
 * unmasked rows of blocks of 8, 6, 4 and 3 columns run that loop in inline assembly
 * (mac_pairs8, mac_pairs6/4/3): gcc 12 runs out of registers there and spills the loop's
 * end or sums; masked rows whose mask starts on a byte too, at 8, 4 and 3 columns (rows8m,
 * masked_pairs8/4/3: all-zero words skipped). Where co is a multiple of 8 (every row whole pairs of dy words), the first
 * pass's whole blocks (first_rows, the maximum's test in assembly: within; at 8 columns
 * unmasked the whole row loop in assembly: tt_dsp_pw_rows8) and the second's
 * steady ones (steady_rows; eight columns rounded in registers: round8) run their rows
 * without row_sums' per-row work. The first pass's unmasked blocks of 8 columns go in
 * blocks of 6 where rows are many (tt_dsp_pw_rows6, an assembly function: one LDM takes two
 * columns' staged words beside six sums, 0.78 a MAC against 0.89 at 8 columns).
 *
 * The accumulators are the portable kernel's integers: each is the exact sum of the same
 * co terms (factored dy * (w * mult) instead of (dy * mult) * w), bounded below 2^31 by the
 * layer's shift (tt_kernels.h); SMLAD's sums wrap modulo 2^32 like the portable code's
 * int32 additions, so even an intermediate overflow would leave the same final integer.
 * Chunks are walked channel block by channel block, not in dx's row-major order, which
 * matters only for the random draws of stochastic rounding: draw i of the op's xorshift
 * stream rounds element i of dx in row-major order (tt_round_grad), so the walk keeps the
 * stream's state at (row p, channel c0) and, after a row's nc draws, steps it over the
 * row's other ci - nc elements to (p + 1, c0); each block starts from the state at (0, c0)
 * and the last row of the last block leaves the state the portable walk leaves. The step
 * over ci - nc draws is one jump (tt_gdsp_jumper: eight table lookups, about 26
 * instructions) where the call makes enough of them to pay for the tables, else 3
 * instructions a draw; where the rows' states fit beside the staged block, only the first
 * block jumps and records each row's state after its draws, from which the next block
 * continues (pointwise.states). */
#include <string.h>

#include "tt_grad_dsp.h"

#if TT_GRAD_DSP
#include "tt_dsp_common.h"

typedef int16_t tt_gdsp_half __attribute__((may_alias));

/* The byte lanes of four mask bits. */
static const uint32_t lanes_of[16] = {
    0x00000000u, 0x000000FFu, 0x0000FF00u, 0x0000FFFFu, 0x00FF0000u, 0x00FF00FFu,
    0x00FFFF00u, 0x00FFFFFFu, 0xFF000000u, 0xFF0000FFu, 0xFF00FF00u, 0xFF00FFFFu,
    0xFFFF0000u, 0xFFFF00FFu, 0xFFFFFF00u, 0xFFFFFFFFu};

/* The n <= 4 mask bits of elements i .. i + n - 1 (zeros above): reads no byte past the
 * one holding bit i + n - 1. */
static inline uint32_t mask_bits(const uint8_t *mask, int32_t i, int32_t n) {
  const int32_t at = i >> 3, bit = i & 7;
  uint32_t v = mask[at];
  if (bit + n > 8) v |= (uint32_t)mask[at + 1] << 8;
  return (v >> bit) & ((1u << n) - 1u);
}

/* The layer's operands. */
typedef struct {
  const int8_t *dy;
  const uint8_t *mask;
  int32_t mask_at;                 /* the mask bit of dy[0] */
  int32_t rows, co, groups;        /* groups = ceil(co / 4) */
  const int8_t *w_lo, *w_hi;
  int32_t k, ci;
  const int16_t *mult;
  /* stochastic rounding: each row's stream state after its last block's draws (the walk's
   * first block records them, the others read and advance them: no jump over a row's other
   * draws but in the first block), or NULL (every block jumps) */
  uint32_t *states;
} pointwise;


/* The products of 16-bit lanes (SMULBB, SMULBT, SMULTB, SMULTT: gcc's arm_acle.h has no
 * intrinsics for them; it compiles these forms to them). */
static inline uint32_t mul_bb(uint32_t a, uint32_t b) {
  return (uint32_t)((int32_t)(int16_t)a * (int16_t)b);
}
static inline uint32_t mul_bt(uint32_t a, uint32_t b) {
  return (uint32_t)((int32_t)(int16_t)a * ((int32_t)b >> 16));
}
static inline uint32_t mul_tb(uint32_t a, uint32_t b) {
  return (uint32_t)(((int32_t)a >> 16) * (int16_t)b);
}
static inline uint32_t mul_tt(uint32_t a, uint32_t b) {
  return (uint32_t)(((int32_t)a >> 16) * ((int32_t)b >> 16));
}

#if TT_DSP_ASM_ALL_REGS
/* stage_quad's four or three columns (`cols`, a constant) in assembly, [m, mend) the whole
 * groups' multipliers (at least one group), d stepped by `step` bytes a group: gcc 12
 * spills the loop's pointers, 62 instructions per group of 16 weights; here all fourteen
 * registers hold them (the pointers and the step 6, the multipliers' two words, a half's
 * four extensions and two products) and two LDRs take the group's four multipliers (not
 * one LDRD: the int16 multipliers may be only 2-byte aligned, which LDRD faults on and
 * LDR does not): 54 per 16 (42 per 12). The words stored one at a time (STR for STRD: a
 * column's two words are not live together) at the same places; the same products (SMULxy
 * of the same halves) packed by the same PKHBT: the same bits. Six columns (blocks of 6,
 * pwig30) in one loop: the quad's, then columns 4 and 5 by bytes (13 a half), 80 per 24
 * where the quad and then C's pairs of columns (about 45 per 8) took 99; eight the same
 * way (the rows' second words for columns 4-7): 98 per 32 where two quads took 108. */
#define TT_GDSP_SQ_HALF(mm, w0, w1, w2)                                                     \
  "sxtb16 %[g], %[e], ror #8\n\tsxtb16 %[e], %[e]\n\t"                                     \
  "sxtb16 %[h], %[f], ror #8\n\tsxtb16 %[f], %[f]\n\t"                                     \
  "smulbb %[p], %[e], %[" mm "]\n\tsmulbt %[q], %[f], %[" mm "]\n\t"                       \
  "pkhbt %[p], %[p], %[q], lsl #16\n\tstr %[p], [%[d], #" w0 "]\n\t"                       \
  "smultb %[e], %[e], %[" mm "]\n\tsmultt %[f], %[f], %[" mm "]\n\t"                       \
  "pkhbt %[e], %[e], %[f], lsl #16\n\tstr %[e], [%[d], #" w2 "]\n\t"                       \
  "smulbb %[p], %[g], %[" mm "]\n\tsmulbt %[q], %[h], %[" mm "]\n\t"                       \
  "pkhbt %[p], %[p], %[q], lsl #16\n\tstr %[p], [%[d], #" w1 "]\n\t"
/* blocks of 6: columns 4 and 5 of the half's two outputs, their weights as bytes (LDRSB:
 * no word past the row's end; the bottom halves are the int16 weights SMULxy reads) */
#define TT_GDSP_SQ_PAIR(mm, w4, w5)                                                         \
  "ldrsb %[e], [%[s], #4]\n\tldrsb %[g], [%[s], #5]\n\tadd %[f], %[s], %[st], lsl #1\n\t"    \
  "ldrsb %[h], [%[f], #5]\n\tldrsb %[f], [%[f], #4]\n\t"                                     \
  "smulbb %[p], %[e], %[" mm "]\n\tsmulbt %[q], %[f], %[" mm "]\n\t"                       \
  "pkhbt %[p], %[p], %[q], lsl #16\n\tstr %[p], [%[d], #" w4 "]\n\t"                       \
  "smulbb %[p], %[g], %[" mm "]\n\tsmulbt %[q], %[h], %[" mm "]\n\t"                       \
  "pkhbt %[p], %[p], %[q], lsl #16\n\tstr %[p], [%[d], #" w5 "]\n\t"
/* blocks of 8: columns 4-7 of the half's two outputs, from their rows' second words */
#define TT_GDSP_SQ_QUAD2(mm, w0, w1, w2, w3)                                                \
  "ldr %[e], [%[s], #4]\n\tadd %[f], %[s], %[st], lsl #1\n\tldr %[f], [%[f], #4]\n\t"       \
  TT_GDSP_SQ_HALF(mm, w0, w1, w2) TT_GDSP_SQ_COL3(mm, w3)
/* the fourth column's word */
#define TT_GDSP_SQ_COL3(mm, w3)                                                             \
  "smultb %[g], %[g], %[" mm "]\n\tsmultt %[h], %[h], %[" mm "]\n\t"                       \
  "pkhbt %[g], %[g], %[h], lsl #16\n\tstr %[g], [%[d], #" w3 "]\n\t"
#define TT_GDSP_SQ_LOOP(FIRST, SECOND)                                                      \
  "1:\n\t"                                                                                  \
  "ldr %[p], [%[m]], #4\n\t"                          /* [m0, m1] */                        \
  "ldr %[q], [%[m]], #4\n\t"                          /* [m2, m3] */                        \
  "pkhbt %[m02], %[p], %[q], lsl #16\n\t"                                                   \
  "pkhtb %[m13], %[q], %[p], asr #16\n\t"                                                   \
  "ldr %[e], [%[s]]\n\t"                              /* outputs o and o + 2 */             \
  "ldr %[f], [%[s], %[st], lsl #1]\n\t" FIRST                                               \
  "add %[s], %[s], %[st]\n\t"                         /* outputs o + 1 and o + 3 */         \
  "ldr %[e], [%[s]]\n\t"                                                                    \
  "ldr %[f], [%[s], %[st], lsl #1]\n\t" SECOND                                              \
  "add %[s], %[s], %[st], lsl #1\n\t"                                                       \
  "add %[s], %[s], %[st]\n\t"                                                               \
  "add %[d], %[d], %[step]\n\t"                                                             \
  "cmp %[m], %[mend]\n\t"                                                                   \
  "bne 1b\n\t"
#define TT_GDSP_SQ_ARGS                                                                     \
  : [s] "+r"(s), [m] "+r"(m), [d] "+r"(d), [m02] "=&r"(m02), [m13] "=&r"(m13),              \
    [e] "=&r"(e), [f] "=&r"(f), [g] "=&r"(g), [h] "=&r"(h), [p] "=&r"(p), [q] "=&r"(q)      \
  : [st] "r"(stride), [mend] "r"(mend), [step] "r"(step)                                    \
  : "cc", "memory"
static inline __attribute__((always_inline)) void stage_quad_asm(const int8_t *s,
                                                                 int32_t stride,
                                                                 const int16_t *m,
                                                                 const int16_t *mend,
                                                                 tt_dsp_word *d, int32_t step,
                                                                 const int cols) {
  uint32_t m02, m13, e, f, g, h, p, q;
  if (cols == 8)
    __asm__ volatile(TT_GDSP_SQ_LOOP(TT_GDSP_SQ_HALF("m02", "0", "8", "16")
                                         TT_GDSP_SQ_COL3("m02", "24")
                                             TT_GDSP_SQ_QUAD2("m02", "32", "40", "48", "56"),
                                     TT_GDSP_SQ_HALF("m13", "4", "12", "20")
                                         TT_GDSP_SQ_COL3("m13", "28")
                                             TT_GDSP_SQ_QUAD2("m13", "36", "44", "52", "60"))
                         TT_GDSP_SQ_ARGS);
  else if (cols == 6)
    __asm__ volatile(TT_GDSP_SQ_LOOP(TT_GDSP_SQ_HALF("m02", "0", "8", "16")
                                         TT_GDSP_SQ_COL3("m02", "24")
                                             TT_GDSP_SQ_PAIR("m02", "32", "40"),
                                     TT_GDSP_SQ_HALF("m13", "4", "12", "20")
                                         TT_GDSP_SQ_COL3("m13", "28")
                                             TT_GDSP_SQ_PAIR("m13", "36", "44")) TT_GDSP_SQ_ARGS);
  else if (cols == 4)
    __asm__ volatile(TT_GDSP_SQ_LOOP(TT_GDSP_SQ_HALF("m02", "0", "8", "16")
                                         TT_GDSP_SQ_COL3("m02", "24"),
                                     TT_GDSP_SQ_HALF("m13", "4", "12", "20")
                                         TT_GDSP_SQ_COL3("m13", "28")) TT_GDSP_SQ_ARGS);
  else
    __asm__ volatile(TT_GDSP_SQ_LOOP(TT_GDSP_SQ_HALF("m02", "0", "8", "16"),
                                     TT_GDSP_SQ_HALF("m13", "4", "12", "20")) TT_GDSP_SQ_ARGS);
}
#undef TT_GDSP_SQ_HALF
#undef TT_GDSP_SQ_COL3
#undef TT_GDSP_SQ_PAIR
#undef TT_GDSP_SQ_QUAD2
#undef TT_GDSP_SQ_LOOP
#undef TT_GDSP_SQ_ARGS
#endif

/* Four columns (three or two: `cols`, a constant) of the whole groups of four outputs, the groups
 * in the inner loop (no set-up per group): each output's four weights are one word load
 * (s: output 0's weight of the first column), SXTB16 splits it into [w(c), w(c + 2)] and
 * [w(c + 1), w(c + 3)], SMULxy takes the half and the output's multiplier (the group's
 * four in two words, [m0, m2] and [m1, m3]), PKHBT packs two outputs' products and STRD
 * stores a column's two words: about 56 instructions for 16 weights against 72 one column
 * at a time (gcc 12 spills the loop's pointers). */
static inline __attribute__((always_inline)) void stage_quad(const pointwise *a, const int8_t *s,
                                                             int32_t stride, int32_t CB,
                                                             tt_dsp_word *d, const int cols) {
  const int32_t full = a->co & ~3;
#if TT_DSP_ASM_ALL_REGS
  if (cols >= 3) {
    if (full > 0) stage_quad_asm(s, stride, a->mult, a->mult + full, d, 8 * CB, cols);
    return;
  }
#endif
  const int8_t *t = s + 2 * stride;                       /* outputs o + 2, o + 3 */
  const int16_t *m = a->mult;
  for (int32_t o = 0; o < full; o += 4, s += 4 * stride, t += 4 * stride, m += 4,
               d += 2 * CB) {
    uint32_t m01, m23;
    memcpy(&m01, m, 4);
    memcpy(&m23, m + 2, 4);
    const uint32_t m02 = tt_dsp_low_halves(m01, m23), m13 = tt_dsp_high_halves(m01, m23);
    const uint32_t w0 = tt_dsp_load4(s), w2 = tt_dsp_load4(t);
    uint32_t e = __sxtb16(w0), f = __sxtb16(w2), g = tt_dsp_sxtb16_odd(w0),
             h = tt_dsp_sxtb16_odd(w2);
    const uint32_t c0 = tt_dsp_low_halves(mul_bb(e, m02), mul_bt(f, m02));
    const uint32_t c2 = cols >= 3 ? tt_dsp_low_halves(mul_tb(e, m02), mul_tt(f, m02)) : 0u;
    const uint32_t c1 = tt_dsp_low_halves(mul_bb(g, m02), mul_bt(h, m02));
    const uint32_t c3 = cols == 4 ? tt_dsp_low_halves(mul_tb(g, m02), mul_tt(h, m02)) : 0u;
    const uint32_t w1 = tt_dsp_load4(s + stride), w3 = tt_dsp_load4(t + stride);
    e = __sxtb16(w1), f = __sxtb16(w3), g = tt_dsp_sxtb16_odd(w1), h = tt_dsp_sxtb16_odd(w3);
    tt_dsp_strd(d, c0, tt_dsp_low_halves(mul_bb(e, m13), mul_bt(f, m13)));
    if (cols >= 3)
      tt_dsp_strd(d + 4, c2, tt_dsp_low_halves(mul_tb(e, m13), mul_tt(f, m13)));
    tt_dsp_strd(d + 2, c1, tt_dsp_low_halves(mul_bb(g, m13), mul_bt(h, m13)));
    if (cols == 4)
      tt_dsp_strd(d + 6, c3, tt_dsp_low_halves(mul_tb(g, m13), mul_tt(h, m13)));
  }
}

/* Columns j0 .. j0 + j - 1 of the whole groups by stage_quad, for the largest j <= n it
 * takes: fours, and a last three where a word of four weights stays inside the filter's
 * rows (`room` columns from src's on); returns j. */
static TT_DSP_ASM_FN int32_t stage_quads(const pointwise *a, const int8_t *src, int32_t stride,
                                         int32_t room, int32_t j0, int32_t n, int32_t CB,
                                         tt_dsp_word *stage) {
  int32_t j = 0;
#if TT_DSP_ASM_ALL_REGS
  if (n == 6 || n == 8) {          /* blocks of 6 and 8: one loop (6: cols 4, 5 by bytes) */
    if (n == 8) stage_quad(a, src, stride, CB, stage + 2 * j0, 8);
    else stage_quad(a, src, stride, CB, stage + 2 * j0, 6);
    return n;
  }
#endif
  for (; j + 4 <= n; j += 4) stage_quad(a, src + j, stride, CB, stage + 2 * (j0 + j), 4);
  if (n - j == 3 && j + 4 <= room) {
    stage_quad(a, src + j, stride, CB, stage + 2 * (j0 + j), 3);
    j += 3;
  } else if (n - j == 2 && j + 4 <= room) {     /* blocks of 6 columns: their last two */
    stage_quad(a, src + j, stride, CB, stage + 2 * (j0 + j), 2);
    j += 2;
  }
  return j;
}

/* Stages n columns of one part of the filter (src: its weight of output 0 and column j0's
 * input channel, `stride` bytes to the next output, `room` columns from src's to the row's
 * end) as columns j0 .. j0 + n - 1: the whole groups' columns by stage_quads, the other columns group by group of four
 * outputs, whose four multipliers stay in registers while the columns run, each column's
 * two words packed from its four products (not one halfword store each). */
static TT_DSP_ASM_FN void stage_part(const pointwise *a, const int8_t *src, int32_t stride,
                                     int32_t room, int32_t j0, int32_t n, int32_t CB,
                                     tt_dsp_word *stage) {
  const int16_t *mult = a->mult;
  const int32_t full = a->co & ~3;
  const int32_t n4 = full > 0 ? stage_quads(a, src, stride, room, j0, n, CB, stage) : 0;
  tt_dsp_word *group = stage + 2 * j0;
  int32_t o = 0;
  if (n4 < n) {
    for (; o < full; o += 4, src += 4 * stride, group += 2 * CB) {
      const int32_t m0 = mult[o], m1 = mult[o + 1], m2 = mult[o + 2], m3 = mult[o + 3];
      const int8_t *s0 = src + n4, *s1 = s0 + stride, *s2 = s0 + 2 * stride,
                   *s3 = s0 + 3 * stride;
      tt_dsp_word *d = group + 2 * n4;
      for (int32_t j = n4; j < n; ++j, d += 2) {
        const int32_t e0 = *s0++ * m0, e1 = *s1++ * m1, e2 = *s2++ * m2, e3 = *s3++ * m3;
        d[0] = tt_dsp_low_halves((uint32_t)e0, (uint32_t)e2);
        d[1] = tt_dsp_low_halves((uint32_t)e1, (uint32_t)e3);
      }
    }
  } else {
    o = full;
    src += full * stride;
    group += (full >> 1) * CB;
  }
  /* the last group's 1-3 outputs (the rest of it is zero) */
  tt_gdsp_half *half = (tt_gdsp_half *)group;
  for (int32_t e = 0; o < a->co; ++o, ++e, src += stride)
    for (int32_t j = 0; j < n; ++j)
      half[4 * j + ((e & 1) << 1) + (e >> 1)] = (int16_t)(src[j] * mult[o]);
}

/* Stages input channels [c0, c0 + nc) as columns j < nc of a block of CB, zero columns
 * nc .. CB - 1 and zero padding past co: group g of column j is the two words at
 * 2 (g CB + j), [wm(4g), wm(4g + 2)] and [wm(4g + 1), wm(4g + 3)], the lanes SXTB16 gives a
 * dy word's [dy0, dy2] and (rotated) [dy1, dy3]. */
static void stage_columns(const pointwise *a, int32_t c0, int32_t nc, int32_t CB,
                          tt_dsp_word *stage) {
  /* zeros where no weight is staged: columns past nc, outputs past co */
  if (nc < CB || (a->co & 3) != 0)
    memset(stage, 0, sizeof(uint32_t) * 2 * (size_t)a->groups * (size_t)CB);
  /* columns [0, lo) from w_lo, the rest from w_hi (a split filter) */
  const int32_t lo = a->k - c0 >= nc ? nc : (a->k > c0 ? a->k - c0 : 0);
  if (lo > 0) stage_part(a, a->w_lo + c0, a->k, a->k - c0, 0, lo, CB, stage);
  if (lo < nc)
    stage_part(a, a->w_hi + (c0 + lo - a->k), a->ci - a->k, a->ci - c0 - lo, lo, nc - lo, CB,
               stage);
}

/* acc[j] += group q's four dy of the row (in v, masked) times the staged columns at s. */
static inline __attribute__((always_inline)) void mac_group(uint32_t v, const tt_dsp_word *s,
                                                            const int32_t CB, int32_t *acc) {
  const uint32_t even = __sxtb16(v), odd = tt_dsp_sxtb16_odd(v);
#pragma GCC unroll 8
  for (int32_t j = 0; j < CB; ++j) {
    uint32_t x0, x1;
    tt_dsp_ldrd(s + 2 * j, &x0, &x1);
    acc[j] = __smlad(x0, even, acc[j]);
    acc[j] = __smlad(x1, odd, acc[j]);
  }
}

/* The assembly loops' pieces (operands: sums %[aJ], dy pointer %[g], staged pointer %[s],
 * the dy word's halves %[e] and %[o], a staged column's two words %[x] and %[y]). A dy word
 * of four outputs, sign-extended in two halves as mac_group's: */
#define TT_GDSP_DY "ldr %[e], [%[g]], #4\n\tsxtb16 %[o], %[e], ror #8\n\tsxtb16 %[e], %[e]\n\t"
/* one staged column's group into sum j (onto 0: SMUAD is SMLAD with a zero addend): */
#define TT_GDSP_COL(j)                                                                     \
  "ldrd %[x], %[y], [%[s]], #8\n\tsmlad %[" j "], %[x], %[e], %[" j "]\n\t"                \
  "smlad %[" j "], %[y], %[o], %[" j "]\n\t"
#define TT_GDSP_COL0(j)                                                                    \
  "ldrd %[x], %[y], [%[s]], #8\n\tsmuad %[" j "], %[x], %[e]\n\t"                          \
  "smlad %[" j "], %[y], %[o], %[" j "]\n\t"
#define TT_GDSP_COLS8                                                                      \
  TT_GDSP_COL("a0") TT_GDSP_COL("a1") TT_GDSP_COL("a2") TT_GDSP_COL("a3") TT_GDSP_COL("a4")  \
  TT_GDSP_COL("a5") TT_GDSP_COL("a6") TT_GDSP_COL("a7")
#define TT_GDSP_COLS6                                                                      \
  TT_GDSP_COL("a0") TT_GDSP_COL("a1") TT_GDSP_COL("a2") TT_GDSP_COL("a3") TT_GDSP_COL("a4")  \
  TT_GDSP_COL("a5")

/* t[j] = the row's dy words [g, end) (a whole number of pairs, at least one) times the
 * staged columns from s on, eight columns, two groups an iteration, the first group's SMUAD
 * starting the sums (no zeroing). In assembly because the loop needs all fourteen free
 * registers (eight sums, two pointers, four operands): gcc 12 spills the loop's end and
 * reloads it every group (31 instructions per 32 MACs), and unrolled in C it spills sums;
 * here the end is read from memory once per two groups and the staged pointer steps in the
 * loads: 57 per 64. Same sums: the same products added in the same order per accumulator
 * (SMLAD wraps as the int32 additions do). */
static inline __attribute__((always_inline)) void mac_pairs8(const int8_t *g, const int8_t *end,
                                                             const tt_dsp_word *s, int32_t *t) {
  int32_t a0, a1, a2, a3, a4, a5, a6, a7;
  uint32_t e, o, x, y;
  __asm__ volatile(TT_GDSP_DY TT_GDSP_COL0("a0") TT_GDSP_COL0("a1") TT_GDSP_COL0("a2")
                   TT_GDSP_COL0("a3") TT_GDSP_COL0("a4") TT_GDSP_COL0("a5") TT_GDSP_COL0("a6")
                   TT_GDSP_COL0("a7") TT_GDSP_DY TT_GDSP_COLS8
                   "ldr %[x], %[end]\n\t"
                   "cmp %[g], %[x]\n\t"
                   "beq 2f\n"
                   "1:\n\t" TT_GDSP_DY TT_GDSP_COLS8 TT_GDSP_DY TT_GDSP_COLS8
                   "ldr %[x], %[end]\n\t"
                   "cmp %[g], %[x]\n\t"
                   "bne 1b\n"
                   "2:\n\t"
                   : [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3),
                     [a4] "=&r"(a4), [a5] "=&r"(a5), [a6] "=&r"(a6), [a7] "=&r"(a7),
                     [g] "+r"(g), [s] "+r"(s), [e] "=&r"(e), [o] "=&r"(o), [x] "=&r"(x),
                     [y] "=&r"(y)
                   : [end] "m"(end)
                   : "cc", "memory");
  t[0] = a0, t[1] = a1, t[2] = a2, t[3] = a3, t[4] = a4, t[5] = a5, t[6] = a6, t[7] = a7;
}

#define TT_GDSP_COLS4 TT_GDSP_COL("a0") TT_GDSP_COL("a1") TT_GDSP_COL("a2") TT_GDSP_COL("a3")
#define TT_GDSP_COLS3 TT_GDSP_COL("a0") TT_GDSP_COL("a1") TT_GDSP_COL("a2")
#define TT_GDSP_SUMS6                                                                      \
  [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [a4] "+r"(a4), [a5] "+r"(a5)
#define TT_GDSP_SUMS4 [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3)
#define TT_GDSP_SUMS3 [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2)

/* t[j] += the same for N = 6, 4 or 3 columns (MobileNetV2's 336 outputs: six; MCUNet's 384
 * and 576: four and three), the end in a register: 3 + 3 N instructions a group and 2 a
 * pair (44 per 48 MACs at six, 32 per 32 at four). Masked rows must skip the all-zero words
 * as row_sums' C loop does: these loops masked (the mask's lanes ANDed in the loop, or the
 * row masked into the staging's free words first) measured faster on dense masks but up to
 * 1.5x slower where a step's masks and zero gradients leave many words all zero; their own
 * loops (masked_pairs4/3 below, rows8m at 8) skip them. */
#define TT_GDSP_PAIRS(N)                                                                    \
  static inline __attribute__((always_inline)) void mac_pairs##N(                          \
      const int8_t *g, const int8_t *end, const tt_dsp_word *s, int32_t *t) {              \
    int32_t a0 = t[0], a1 = t[1], a2 = t[2], a3 = N > 3 ? t[3] : 0, a4 = N > 4 ? t[4] : 0, \
            a5 = N > 5 ? t[5] : 0;                                                          \
    uint32_t e, o, x, y;                                                                    \
    __asm__ volatile("1:\n\t" TT_GDSP_DY TT_GDSP_COLS##N TT_GDSP_DY TT_GDSP_COLS##N        \
                     "cmp %[g], %[end]\n\t"                                                 \
                     "bne 1b\n\t"                                                           \
                     : TT_GDSP_SUMS##N, [g] "+r"(g), [s] "+r"(s), [e] "=&r"(e),             \
                       [o] "=&r"(o), [x] "=&r"(x), [y] "=&r"(y)                             \
                     : [end] "r"(end)                                                       \
                     : "cc", "memory");                                                     \
    t[0] = a0, t[1] = a1, t[2] = a2;                                                        \
    if (N > 3) t[3] = a3;                                                                   \
    if (N > 4) t[4] = a4, t[5] = a5;                                                        \
  }
TT_GDSP_PAIRS(6)
TT_GDSP_PAIRS(4)
TT_GDSP_PAIRS(3)
#undef TT_GDSP_PAIRS
/* t[j] += the same for a masked row of N = 4 or 3 columns whose mask starts on a byte
 * (bits: the byte of g's first word), [g, end) whole pairs: one mask byte's two nibbles
 * mask a pair's two words through the byte lanes' table, an all-zero word (masked, or zero
 * gradients) skipped as in row_sums' C loop. In C gcc 12 reloads the table and spills
 * around the pair; here all fourteen registers hold the sums, the pointers, the table, the
 * end and the pair's words: 10 a pair, then 3 + 3 N a nonzero word (43 a dense pair at
 * four columns). Same sums: the same nonzero products in the same order per sum. */
#define TT_GDSP_MCOL(j, off)                                                                \
  "ldrd %[x], %[y], [%[s], #" off "]\n\tsmlad %[" j "], %[x], %[e], %[" j "]\n\t"          \
  "smlad %[" j "], %[y], %[o], %[" j "]\n\t"
#define TT_GDSP_MCOLS4(o0, o1, o2, o3)                                                      \
  TT_GDSP_MCOL("a0", o0) TT_GDSP_MCOL("a1", o1) TT_GDSP_MCOL("a2", o2) TT_GDSP_MCOL("a3", o3)
#define TT_GDSP_MCOLS3(o0, o1, o2, o3)                                                      \
  TT_GDSP_MCOL("a0", o0) TT_GDSP_MCOL("a1", o1) TT_GDSP_MCOL("a2", o2)
#define TT_GDSP_MPAIRS(N, FIRST, SECOND, STEP)                                              \
  static inline __attribute__((always_inline)) void masked_pairs##N(                       \
      const int8_t *g, const int8_t *end, const tt_dsp_word *s, const uint8_t *b,          \
      int32_t *t) {                                                                         \
    int32_t a0 = t[0], a1 = t[1], a2 = t[2], a3 = N > 3 ? t[3] : 0;                         \
    uint32_t e, o, x, y, w;                                                                 \
    const uint32_t *lanes = lanes_of;                                                       \
    __asm__ volatile("1:\n\t"                                                               \
                     "ldrb %[y], [%[b]], #1\n\tand %[e], %[y], #15\n\tlsr %[y], %[y], #4\n\t" \
                     "ldr %[e], [%[l], %[e], lsl #2]\n\tldr %[w], [%[l], %[y], lsl #2]\n\t"    \
                     "ldr %[x], [%[g]], #4\n\tldr %[y], [%[g]], #4\n\t"                      \
                     "and %[w], %[w], %[y]\n\tands %[e], %[e], %[x]\n\tbeq 2f\n\t"          \
                     "sxtb16 %[o], %[e], ror #8\n\tsxtb16 %[e], %[e]\n\t" TT_GDSP_MCOLS##N FIRST \
                     "2:\n\tcmp %[w], #0\n\tbeq 3f\n\t"                                      \
                     "sxtb16 %[o], %[w], ror #8\n\tsxtb16 %[e], %[w]\n\t" TT_GDSP_MCOLS##N SECOND \
                     "3:\n\tadd %[s], %[s], #" STEP "\n\tcmp %[g], %[end]\n\tbne 1b\n\t"       \
                     : TT_GDSP_SUMS##N, [g] "+r"(g), [s] "+r"(s), [b] "+r"(b), [e] "=&r"(e),  \
                       [o] "=&r"(o), [x] "=&r"(x), [y] "=&r"(y), [w] "=&r"(w)               \
                     : [end] "r"(end), [l] "r"(lanes)                                       \
                     : "cc", "memory");                                                     \
    t[0] = a0, t[1] = a1, t[2] = a2;                                                        \
    if (N > 3) t[3] = a3;                                                                   \
  }
TT_GDSP_MPAIRS(4, ("0", "8", "16", "24"), ("32", "40", "48", "56"), "64")
TT_GDSP_MPAIRS(3, ("0", "8", "16", ""), ("24", "32", "40", ""), "48")
#undef TT_GDSP_MPAIRS
#undef TT_GDSP_MCOLS4
#undef TT_GDSP_MCOLS3
/* mac_pairs8/6/4/3 by CB (a constant of each inlined copy): t[j] for CB columns. */
static inline __attribute__((always_inline)) void mac_pairs(const int32_t CB, const int8_t *g,
                                                            const int8_t *end,
                                                            const tt_dsp_word *s, int32_t *t) {
  if (CB == 8) mac_pairs8(g, end, s, t);
  else if (CB == 6) mac_pairs6(g, end, s, t);
  else if (CB == 4) mac_pairs4(g, end, s, t);
  else mac_pairs3(g, end, s, t);
}
/* The row tail of rows8m (first_rows' masked rows of 8 columns, the row loop in inline
 * assembly; round 21's first_rows8 had the unmasked one, now tt_dsp_pw_rows8): each row's
 * sums tested against the maximum *m (within's test: |v| <= m where (uint32_t)(v + m) <=
 * 2m, chained on the carry); where one passes, the maximum taken over the row's magnitudes
 * (|v| as v ^ (v >> 31) minus v >> 31, an unsigned compare: tt_magnitude's value, 2^31 for
 * -2^31). In C, gcc 12 keeps the row's pointers, the keeping pointer and the test's
 * operands on the stack around the loop's fourteen registers and reloads them through
 * several moves; here the row's state is in memory operands read where needed. Same sums
 * and the same maximum as first_rows. */
#define TT_GDSP_F_TWO(a, b)                                                                 \
  "itttt cs\n\taddcs %[x], %[" a "], %[e]\n\tcmpcs %[o], %[x]\n\t"                          \
  "addcs %[x], %[" b "], %[e]\n\tcmpcs %[o], %[x]\n\t"
#define TT_GDSP_F_MAX(a)                                                                    \
  "eor %[x], %[" a "], %[" a "], asr #31\n\tsub %[x], %[x], %[" a "], asr #31\n\t"          \
  "cmp %[x], %[e]\n\tit hi\n\tmovhi %[e], %[x]\n\t"
/* The rows' tail (rows8m's; round 29's first_rows8 had it too), after a row's sums (KEEP kept them): the
 * test against the maximum *m and, where one fails, the maximum over the row; then the
 * next row until gend. */
#define TT_GDSP_ROWS_TAIL                                                                   \
  "ldr %[e], %[m]\n\tlsl %[o], %[e], #1\n\t"                                                \
  "add %[x], %[a0], %[e]\n\tcmp %[o], %[x]\n\t" TT_GDSP_F_TWO("a1", "a2")                  \
  TT_GDSP_F_TWO("a3", "a4") TT_GDSP_F_TWO("a5", "a6")                                       \
  "itt cs\n\taddcs %[x], %[a7], %[e]\n\tcmpcs %[o], %[x]\n\t"                               \
  "bcs 3f\n\t" TT_GDSP_F_MAX("a0") TT_GDSP_F_MAX("a1") TT_GDSP_F_MAX("a2")                  \
  TT_GDSP_F_MAX("a3") TT_GDSP_F_MAX("a4") TT_GDSP_F_MAX("a5") TT_GDSP_F_MAX("a6")           \
  TT_GDSP_F_MAX("a7") "str %[e], %[m]\n"                                                    \
  "3:\n\t"                                                                                  \
  "ldr %[x], %[gend]\n\tcmp %[g], %[x]\n\tbne 0b\n\t"
/* the rows' operands (rows8m's), M the maximum's lvalue */
#define TT_GDSP_ROWS_OUT(M)                                                                 \
  : [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [a4] "=&r"(a4),         \
    [a5] "=&r"(a5), [a6] "=&r"(a6), [a7] "=&r"(a7), [g] "+r"(g), [s] "=&r"(s),               \
    [e] "=&r"(e), [o] "=&r"(o), [x] "=&r"(x), [y] "=&r"(y), [rowend] "+m"(rowend),         \
    [kept] "+m"(kept), [m] "+m"(M)
#define TT_GDSP_ROWS_IN                                                                     \
  : [co] "m"(co), [stage] "m"(stage), [gend] "m"(gend), [step] "m"(step)
#if TT_DSP_ASM_ALL_REGS
/* tt_dsp_pw_rows8's masked twin (rows8m): first_rows' masked rows of 8 columns, each row's mask
 * starting on a byte (mask_at and co multiples of 8), so the rows' mask bytes follow one
 * another from *bits on. In C (first_rows' masked loop) gcc 12 spills three sums and the
 * loop's end around the mask's pointer and table: 43 instructions a dy word on a dense mask
 * against 28.5 unmasked. Here the sums stay in registers and the mask's pointer, table and
 * the pair's second word go through memory: per pair of dy words (one mask byte) 3 for the
 * byte, 5 for its two nibbles' byte lanes, 4 for the two masked words, then each nonzero
 * word's 26 (two extensions, eight LDRD and 16 SMLAD, the staged words at fixed offsets),
 * 4 for the loop's end: about 36.5 a word on a dense mask, 9.5 on an all-zero pair. A word
 * that is all zero (masked, or zero gradients) is skipped as in C: it adds nothing. Same
 * sums (the same nonzero products added in the same order per sum), same keeping, same
 * test and maximum as tt_dsp_pw_rows8's. */
#define TT_GDSP_M_WORD(o0, o1, o2, o3, o4, o5, o6, o7)                                      \
  "sxtb16 %[o], %[e], ror #8\n\tsxtb16 %[e], %[e]\n\t" TT_GDSP_MCOL("a0", o0)              \
  TT_GDSP_MCOL("a1", o1) TT_GDSP_MCOL("a2", o2) TT_GDSP_MCOL("a3", o3)                    \
  TT_GDSP_MCOL("a4", o4) TT_GDSP_MCOL("a5", o5) TT_GDSP_MCOL("a6", o6)                    \
  TT_GDSP_MCOL("a7", o7)
/* the rows' pair loop, [g, *rowend) (at least one pair), the sums in a0-a7 */
#define TT_GDSP_M_LOOP                                                                      \
  "b 1f\n"                                                                                  \
  "6:\n\t"                                 /* the pair's first word is zero */              \
  "mov %[e], %[o]\n\tcmp %[e], #0\n\tbeq 8f\n\tb 7f\n"                                      \
  "1:\n\t"                                                                                  \
  "ldr %[x], %[bits]\n\tldrb %[y], [%[x]], #1\n\tstr %[x], %[bits]\n\t"                     \
  "ldr %[x], %[lanes]\n\tand %[e], %[y], #15\n\tlsr %[y], %[y], #4\n\t"                     \
  "ldr %[e], [%[x], %[e], lsl #2]\n\tldr %[o], [%[x], %[y], lsl #2]\n\t"                      \
  "ldr %[x], [%[g]], #4\n\tldr %[y], [%[g]], #4\n\tand %[o], %[o], %[y]\n\t"                 \
  "ands %[e], %[e], %[x]\n\tbeq 6b\n\tstr %[o], %[w1]\n\t"                                   \
  TT_GDSP_M_WORD("0", "8", "16", "24", "32", "40", "48", "56")                               \
  "ldr %[e], %[w1]\n\tcmp %[e], #0\n\tbeq 8f\n"                                             \
  "7:\n\t" TT_GDSP_M_WORD("64", "72", "80", "88", "96", "104", "112", "120")                 \
  "8:\n\t"                                                                                  \
  "add %[s], %[s], #128\n\tldr %[x], %[rowend]\n\tcmp %[g], %[x]\n\tbne 1b\n\t"
#define TT_GDSP_M_ROWS(KEEP)                                                                \
  "0:\n\t"                                                                                  \
  "ldr %[x], %[co]\n\tadd %[x], %[g], %[x]\n\tstr %[x], %[rowend]\n\t"                      \
  "ldr %[s], %[stage]\n\tmov %[a0], #0\n\tmov %[a1], #0\n\tmov %[a2], #0\n\t"                \
  "mov %[a3], #0\n\tmov %[a4], #0\n\tmov %[a5], #0\n\tmov %[a6], #0\n\tmov %[a7], #0\n\t"  \
  TT_GDSP_M_LOOP KEEP TT_GDSP_ROWS_TAIL
#define TT_GDSP_M_ARGS                                                                      \
  TT_GDSP_ROWS_OUT(m), [bits] "+m"(bits), [w1] "+m"(w1) TT_GDSP_ROWS_IN, [lanes] "m"(lanes)  \
  : "cc", "memory"
static __attribute__((noinline)) TT_DSP_ASM_FN uint32_t rows8m(const int8_t *g,
                                                               const int8_t *gend, int32_t co,
                                                               const tt_dsp_word *stage,
                                                               int32_t *kept, int32_t step,
                                                               uint32_t m,
                                                               const uint8_t *bits) {
  int32_t a0, a1, a2, a3, a4, a5, a6, a7;
  const tt_dsp_word *s;
  uint32_t e, o, x, y, w1 = 0;
  const int8_t *rowend = g;
  const uint32_t *lanes = lanes_of;
  /* one copy (the unkept rows test kept, 3 instructions a row): two were 0.5 KB more */
  __asm__ volatile(TT_GDSP_M_ROWS("ldr %[x], %[kept]\n\tcmp %[x], #0\n\tbeq 9f\n\t"
                                  "strd %[a0], %[a1], [%[x]]\n\tstrd %[a2], %[a3], [%[x], #8]\n\t"
                                  "strd %[a4], %[a5], [%[x], #16]\n\t"
                                  "strd %[a6], %[a7], [%[x], #24]\n\t"
                                  "ldr %[o], %[step]\n\tadd %[x], %[x], %[o]\n\t"
                                  "str %[x], %[kept]\n"
                                  "9:\n\t") TT_GDSP_M_ARGS);
  return m;
}
/* rows8m's pair loop for one row (row_sums' masked rows of 8 columns whose mask starts on
 * a byte: the rounding walk's rows, the probes): t[j] += the pairs [g, rowend) (at least
 * one), bits the byte of g's first word. */
static inline __attribute__((always_inline)) void masked_pairs8(const int8_t *g,
                                                                const int8_t *rowend,
                                                                const tt_dsp_word *s,
                                                                const uint8_t *bits,
                                                                int32_t *t) {
  int32_t a0 = t[0], a1 = t[1], a2 = t[2], a3 = t[3], a4 = t[4], a5 = t[5], a6 = t[6],
          a7 = t[7];
  uint32_t e, o, x, y, w1 = 0;
  const uint32_t *lanes = lanes_of;
  __asm__ volatile(TT_GDSP_M_LOOP
                   : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3),
                     [a4] "+r"(a4), [a5] "+r"(a5), [a6] "+r"(a6), [a7] "+r"(a7), [g] "+r"(g),
                     [s] "+r"(s), [e] "=&r"(e), [o] "=&r"(o), [x] "=&r"(x), [y] "=&r"(y),
                     [bits] "+m"(bits), [w1] "+m"(w1)
                   : [rowend] "m"(rowend), [lanes] "m"(lanes)
                   : "cc", "memory");
  t[0] = a0, t[1] = a1, t[2] = a2, t[3] = a3, t[4] = a4, t[5] = a5, t[6] = a6, t[7] = a7;
}
#undef TT_GDSP_M_LOOP
#undef TT_GDSP_M_WORD
#undef TT_GDSP_M_ROWS
#undef TT_GDSP_M_ARGS
#endif
#undef TT_GDSP_MCOL
#undef TT_GDSP_F_TWO
#undef TT_GDSP_F_MAX
#undef TT_GDSP_ROWS_TAIL
#undef TT_GDSP_ROWS_OUT
#undef TT_GDSP_ROWS_IN
#undef TT_GDSP_COLS4
#undef TT_GDSP_COLS3
#undef TT_GDSP_SUMS6
#undef TT_GDSP_SUMS4
#undef TT_GDSP_SUMS3
#undef TT_GDSP_DY
#undef TT_GDSP_COL
#undef TT_GDSP_COL0
#undef TT_GDSP_COLS8
#undef TT_GDSP_COLS6

/* The rule to nearest where the high word is shifted (tt_round_grads' hi_shift > 0, times
 * 1; up = 2^(hi_shift - 1)) of n <= 4 sums (a constant), their bytes in the low n bytes of
 * the word returned: SMMLA and ASR an element and a BFI for each but the first
 * (TT_GDSP_NEAR0/NEAR: the C rule's high word plus up, shifted: the same bits). */
static inline __attribute__((always_inline)) uint32_t near_word(int32_t a0, int32_t a1,
                                                                int32_t a2, int32_t a3,
                                                                int32_t rr, int32_t up,
                                                                int32_t hs, const int n) {
  uint32_t w;
#define TT_GDSP_NW_ARGS                                                                     \
  : [w] "=&r"(w), [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3)               \
  : [rr] "r"(rr), [up] "r"(up), [hs] "r"(hs)
  if (n == 4)
    __asm__(TT_GDSP_NEAR0("a0", "w") TT_GDSP_NEAR("a1", "w", "8") TT_GDSP_NEAR("a2", "w", "16")
                TT_GDSP_NEAR("a3", "w", "24") TT_GDSP_NW_ARGS);
  else if (n == 3)
    __asm__(TT_GDSP_NEAR0("a0", "w") TT_GDSP_NEAR("a1", "w", "8") TT_GDSP_NEAR("a2", "w", "16")
                TT_GDSP_NW_ARGS);
  else if (n == 2)
    __asm__(TT_GDSP_NEAR0("a0", "w") TT_GDSP_NEAR("a1", "w", "8") TT_GDSP_NW_ARGS);
  else
    __asm__(TT_GDSP_NEAR0("a0", "w") TT_GDSP_NW_ARGS);
#undef TT_GDSP_NW_ARGS
  return w;
}

/* near_word over a whole block's CB sums t (8, 6, 4, 3, 2 or 1: a constant) into out[0 ..
 * CB - 1] (any alignment: STR and STRH take unaligned addresses on these cores). */
static inline __attribute__((always_inline)) void near_block(const int32_t *t, const int32_t CB,
                                                             int32_t rr, int32_t up,
                                                             int32_t hs, int8_t *out) {
  if (CB >= 4) {
    const uint32_t w = near_word(t[0], t[1], t[2], t[3], rr, up, hs, 4);
    memcpy(out, &w, 4);
  }
  const int32_t j = CB >= 4 ? 4 : 0, n = CB - j;
  if (n == 4) {
    const uint32_t w = near_word(t[4], t[5], t[6], t[7], rr, up, hs, 4);
    memcpy(out + 4, &w, 4);
  } else if (n == 3) {
    const uint32_t w = near_word(t[j], t[j + 1], t[j + 2], 0, rr, up, hs, 3);
    const uint16_t lo = (uint16_t)w;
    memcpy(out + j, &lo, 2);
    out[j + 2] = (int8_t)(w >> 16);
  } else if (n == 2) {
    const uint16_t lo = (uint16_t)near_word(t[j], t[j + 1], 0, 0, rr, up, hs, 2);
    memcpy(out + j, &lo, 2);
  } else if (n == 1) {
    out[j] = (int8_t)near_word(t[j], 0, 0, 0, rr, up, hs, 1);
  }
}

/* acc[j] = the accumulators of row p against the CB staged columns. `masked` is a constant
 * of each compiled copy: without a mask the loop is loads, extensions and SMLADs only; with
 * one, each dy word is ANDed with its four mask bits' byte lanes, and a word that is all
 * zeros (masked, or zero gradients) is skipped (a row whose mask starts on a byte: its pairs
 * in assembly at 8, 4 and 3 columns, masked_pairs8/4/3). */
static inline __attribute__((always_inline)) uint32_t row_sums(const pointwise *a, int32_t p,
                                                           const tt_dsp_word *stage,
                                                           const int32_t CB, const int masked,
                                                           int32_t *to, const int measure,
                                                           uint32_t m, int32_t *acc) {
  const int8_t *g = a->dy + p * a->co;
  const int8_t *const end = g + (a->co & ~3);
  const int32_t tail = a->co & 3;
  int32_t t[8];              /* constant indices only: registers (acc is indexed by nc) */
#pragma GCC unroll 8
  for (int32_t j = 0; j < CB; ++j) t[j] = 0;
  const tt_dsp_word *s = stage;
  if (!masked) {
#if TT_DSP_ASM_ALL_REGS
    if ((CB == 8 || CB == 6 || CB == 4 || CB == 3) && end - g >= 8) {
      const int32_t paired = (int32_t)(end - g) & ~7;
      mac_pairs(CB, g, g + paired, s, t);
      g += paired, s += (paired >> 2) * 2 * CB;
    }
#endif
    for (; g != end; g += 4, s += 2 * CB) mac_group(tt_dsp_load4(g), s, CB, t);
    if (tail) mac_group(tt_dsp_load_partial(g, tail), s, CB, t);
  } else {
    int32_t i = a->mask_at + p * a->co;
    if ((i & 7) == 0) {
      /* the row's mask starts on a byte: one byte's two nibbles mask two words */
      const uint8_t *bits = a->mask + (i >> 3);
      const int8_t *const pairs = g + ((end - g) & ~7);
#if TT_DSP_ASM_ALL_REGS
      if ((CB == 8 || CB == 4 || CB == 3) && pairs != g) {
        if (CB == 8) masked_pairs8(g, pairs, s, bits, t);
        else if (CB == 4) masked_pairs4(g, pairs, s, bits, t);
        else masked_pairs3(g, pairs, s, bits, t);
        s += ((pairs - g) >> 2) * 2 * CB, bits += (pairs - g) >> 3, g = pairs;
      }
#endif
      for (; g != pairs; g += 8, s += 4 * CB, ++bits) {
        const uint32_t v0 = tt_dsp_load4(g) & lanes_of[*bits & 15u];
        const uint32_t v1 = tt_dsp_load4(g + 4) & lanes_of[*bits >> 4];
        if (v0 != 0) mac_group(v0, s, CB, t);
        if (v1 != 0) mac_group(v1, s + 2 * CB, CB, t);
      }
      i = (int32_t)(bits - a->mask) << 3;
    }
    for (; g != end; g += 4, s += 2 * CB, i += 4) {
      const uint32_t v = tt_dsp_load4(g) & lanes_of[mask_bits(a->mask, i, 4)];
      if (v != 0) mac_group(v, s, CB, t);
    }
    if (tail)
      mac_group(tt_dsp_load_partial(g, tail) & lanes_of[mask_bits(a->mask, i, tail)], s, CB, t);
  }
  /* a whole block's sums, still in registers: kept and their largest magnitude here */
  if (to != 0) {
#pragma GCC unroll 8
    for (int32_t j = 0; j < CB; ++j) to[j] = t[j];
  }
  if (measure) {
    /* first whether any |v| passes m, three instructions a sum: v ^ sign is |v| or
     * |v| - 1, so m - 1 - (v ^ sign) >= 0 for all the block's v means none does (m < 2^31:
     * no overflow); the maximum only where one may (a new maximum is rare after the first
     * rows) */
    const int32_t m1 = (int32_t)m - 1;
    int32_t below = 0;
#pragma GCC unroll 8
    for (int32_t j = 0; j < CB; ++j) below |= m1 - (t[j] ^ (t[j] >> 31));
    if (below < 0) {
#pragma GCC unroll 8
      for (int32_t j = 0; j < CB; ++j) {
        const uint32_t v = tt_magnitude(t[j]);
        m = v > m ? v : m;
      }
    }
  }
#pragma GCC unroll 8
  for (int32_t j = 0; j < CB; ++j) acc[j] = t[j];
  return m;
}

/* The xorshift stream n steps further (tt_round_grad's draw, unrolled by four). */
uint32_t tt_gdsp_skip(uint32_t x, int32_t n) {
  for (; n >= 4; n -= 4) {
#pragma GCC unroll 4
    for (int32_t i = 0; i < 4; ++i) x = tt_xorshift32(x);
  }
  for (; n > 0; --n) x = tt_xorshift32(x);
  return x;
}

/* j's tables from J's columns col[i] = J(1 << i). */
static void gdsp_fill(tt_gdsp_jumper *j, const uint32_t *col) {
  for (int32_t k = 0; k < 8; ++k) {
    const uint32_t b0 = col[4 * k], b1 = col[4 * k + 1], b2 = col[4 * k + 2], b3 = col[4 * k + 3];
    uint32_t *t = j->t[k];
    t[0] = 0;
    t[1] = b0;
    t[2] = b1;
    t[3] = b1 ^ b0;
    for (int32_t v = 4; v < 8; ++v) t[v] = t[v - 4] ^ b2;
    for (int32_t v = 8; v < 16; ++v) t[v] = t[v - 8] ^ b3;
  }
}

void tt_gdsp_jump_init(tt_gdsp_jumper *j, int32_t n, int32_t jumps) {
  j->n = n;
  /* J's columns J(1 << i), then the tables. Two ways, by instruction count (measured on the
   * rig): stepping each bit n times, about 100 n + 600; or by squaring, from the columns
   * of M^a (M: one step) those of M^2a as M^a of them (32 table jumps and a fill) and of
   * M^(2a+1) one step more, n's bits from the top: about 1,700 per bit after the first,
   * 130 per set bit and 700 (MCUNet's n = 432: 15 K against 41 K). Built where the jumps,
   * about 26 each against stepping's 3 n, pay for the cheaper way. */
  int32_t bits = 0, ones = 0;
  for (uint32_t v = (uint32_t)n; v != 0; v >>= 1) ++bits, ones += (int32_t)(v & 1u);
  const int64_t stepped = 100 * (int64_t)n + 600;
  const int64_t squared = 1700 * (int64_t)(bits - 1) + 130 * ones + 700;
  const int square = squared < stepped;
  j->built = n > 0 && (int64_t)jumps * (3 * n - 26) > (square ? squared : stepped);
  if (!j->built) return;
  uint32_t col[32];
  if (!square) {
    for (int32_t i = 0; i < 32; ++i) col[i] = tt_gdsp_skip(1u << i, n);
  } else {
    for (int32_t i = 0; i < 32; ++i) col[i] = tt_xorshift32(1u << i);
    for (int32_t b = bits - 2; b >= 0; --b) {
      gdsp_fill(j, col);
      for (int32_t i = 0; i < 32; ++i) col[i] = tt_gdsp_jump(j, col[i]);
      if (((uint32_t)n >> b) & 1u)
        for (int32_t i = 0; i < 32; ++i) col[i] = tt_xorshift32(col[i]);
    }
  }
  gdsp_fill(j, col);
}

/* The optimistic pass's probes (tt_common.h tt_keep, rows past the kept ones): their largest
 * magnitude against the staged block, max(m, it) returned; not kept. */
static inline __attribute__((always_inline)) uint32_t probe_rows(const pointwise *a,
                                                                 const tt_dsp_word *stage,
                                                                 const int32_t CB,
                                                                 const int masked,
                                                                 const tt_keep *keep,
                                                                 uint32_t m) {
  int32_t acc[8];
  for (int32_t i = 0; keep != 0 && i < keep->probes; ++i)
    m = row_sums(a, keep->probe[i], stage, CB, masked, 0, 1, m, acc);
  return m;
}

/* Every row against one staged block: the accumulators of channels [c0, c0 + nc) kept, or
 * their largest magnitude into *top (`rounds` 0: r is NULL), or rounded into dx (`rounds`
 * 1: keep is NULL, and top, where not NULL, takes the rounded rows' largest magnitude: the
 * optimistic pass; stochastically: r's stream at row 0, channel c0 on entry; at
 * the last row's channel c0 + nc on return; `skip` jumps over a row's other ci - nc draws).
 * `rounds` is a constant of each compiled copy: the two passes' rows test none of the
 * other's cases. `lean` (a constant: the unmasked rounding copies) keeps the operands, the
 * stream and the rule in locals and rounds a whole block in unrolled fours (192->32 at 8x8,
 * two passes: 1,069,760 -> 1,042,280 instructions); the masked copies measured slower with
 * it (48->192 masked, two passes: 1,527,800 -> 1,561,040: the mask's loop spills).
 * `steady` (a constant: the unmasked rounding copies' blocks after the first, whole,
 * stochastic, times 1, the rows' states recorded) tests none of those cases per row
 * (192->32: 1,042,280 -> 1,010,000). */
static inline __attribute__((always_inline)) void block(const pointwise *a,
                                                        const tt_dsp_word *stage,
                                                        const int32_t CB, const int masked,
                                                        int32_t c0, int32_t nc,
                                                        const tt_keep *keep, uint32_t *top,
                                                        tt_rounder *r,
                                                        const tt_gdsp_jumper *skip,
                                                        int8_t *dx, const int rounds,
                                                        const int lean, const int steady) {
  /* a rounding walk may also measure (tt_input_grad.c's optimistic pass checks its guess) */
  if (rounds) keep = 0;
  else r = 0;
  /* the operands and the rounder in locals: dx's and the kept rows' stores may alias what
   * a and r point to, so gcc would reload each field through its pointer every row */
  pointwise local;
  if (lean) local = *a, a = &local;
  uint32_t *const states = rounds ? a->states : 0;
  const int stochastic = steady || (lean && r->stochastic && !r->exact);
  /* a whole block rounded stochastically (A >= 256, times 1): inline, from the locals */
  const int whole = steady || (stochastic && nc == CB && r->times == 1);
  /* or to nearest where the high word is shifted (A >= 512): near_block, inline, at 4 and
   * 3 columns (MCUNet's 384 and 576 outputs; the whole blocks of 8 take steady_rows, and
   * the others tt_round_grads: each copy here costs 100-200 B) */
  const int near = (CB == 4 || CB == 3) && !steady && lean && !r->stochastic && !r->exact &&
                   r->hi_shift > 0 && nc == CB;
  const int32_t rr = whole || near ? r->r : 0, hi_shift = whole || near ? r->hi_shift : 0,
                noise_shift = whole ? r->noise_shift : 8;
  const int32_t up = near ? (int32_t)1 << (hi_shift - 1) : 0;
  uint32_t x = lean ? r->rng : 0u;
  int8_t *out = lean ? dx + c0 : 0;
  const int first = !steady && c0 == 0;
  int32_t acc[8];
  uint32_t m = top != 0 ? *top : 0u;
  /* the kept rows' accumulators: a running pointer, moved to the scratch after row n0 */
  const int32_t n0 = keep != 0 ? keep->n0 : 0, n1 = keep != 0 ? keep->n1 : 0;
  int32_t *kept = tt_kept(keep, 0, a->ci);
  for (int32_t p = 0; p < a->rows; ++p) {
    /* a whole block's sums are kept and measured while in registers, but for the masked
     * narrow blocks: there the sinks' pointers cost the loop registers (measured slower) */
    const int kept_row = p < n1, sink = nc == CB && (!masked || CB == 8);
    m = row_sums(a, p, stage, CB, masked, sink && kept_row ? kept + c0 : 0,
                 sink && top != 0, m, acc);
    if (!sink) {
      if (kept_row)
        for (int32_t j = 0; j < nc; ++j) kept[c0 + j] = acc[j];
      if (top != 0)
        for (int32_t j = 0; j < nc; ++j) {
          const uint32_t v = tt_magnitude(acc[j]);
          if (v > m) m = v;
        }
    }
    if (kept_row) kept = p + 1 == n0 ? keep->a1 : kept + a->ci;
    if (rounds && !lean) {
      /* the masked rounding copies (lean was measured slower there), and compiled unused in
       * the masked keeping copies: through r, as their registers were measured */
      int8_t *o = dx + p * a->ci + c0;
      if (states != 0 && !first) r->rng = states[p];
      if (nc == CB && r->stochastic && !r->exact && r->times == 1)
        r->rng = tt_round_stochastic(acc, CB, o, r->rng, 1, r->r, r->hi_shift, r->noise_shift);
      else
        tt_round_grads(r, acc, nc, o);
      if (r->stochastic && !r->exact) {
        if (states != 0) states[p] = r->rng;
        if ((states == 0 || first) && p + 1 < a->rows) r->rng = tt_gdsp_jump(skip, r->rng);
      }
    } else if (rounds) {
      if (steady || (states != 0 && !first)) x = states[p];
      if (near) {
        near_block(acc, CB, rr, up, hi_shift, out);
      } else if (whole) {
        /* by fours: each call's loop unrolled whole (no loop counter) */
#pragma GCC unroll 2
        for (int32_t j = 0; j < CB; j += 4)
          x = tt_round_stochastic(acc + j, CB - j < 4 ? CB - j : 4, out + j, x, 1, rr, hi_shift,
                                  noise_shift);
      } else {
        r->rng = x;
        tt_round_grads(r, acc, nc, out);
        x = r->rng;
      }
      if (stochastic) {
        if (steady || states != 0) states[p] = x;
        if (!steady && (states == 0 || first) && p + 1 < a->rows) x = tt_gdsp_jump(skip, x);
      }
      out += a->ci;
    }
  }
  if (lean) r->rng = x;
  if (top != 0) *top = m;
}

#if TT_DSP_ASM_ALL_REGS
/* Whether |t[j]| <= m for every j < CB (8, 6, 4 or 3; m < 2^31): the maximum's test of
 * first_rows, two instructions a sum and an IT per two (20 for eight, against row_sums'
 * three a sum). |v| <= m exactly where (uint32_t)(v + m) <= 2m: v + m lies in [0, 2m] where
 * |v| <= m, in [2m + 1, 2^31 - 1 + m] (no wrap) where v > m, and in [-2^31 + m, -1], so
 * [2^31 + m, 2^32 - 1] as uint32_t, where v < -m (any int32 v, -2^31 too), above 2m as
 * m < 2^31. The sums are tested in turn while the carry (2m >= v + m, unsigned) holds; the
 * carry after the last is the answer. */
#define TT_GDSP_W_FIRST "add %[x], %[t0], %[m]\n\tcmp %[m2], %[x]\n\t"
#define TT_GDSP_W_TWO(a, b)                                                                 \
  "itttt cs\n\taddcs %[x], %[" a "], %[m]\n\tcmpcs %[m2], %[x]\n\t"                         \
  "addcs %[x], %[" b "], %[m]\n\tcmpcs %[m2], %[x]\n\t"
#define TT_GDSP_W_ONE(a) "itt cs\n\taddcs %[x], %[" a "], %[m]\n\tcmpcs %[m2], %[x]\n\t"
static inline __attribute__((always_inline)) int within(const int32_t *t, const int32_t CB,
                                                        uint32_t m) {
#ifndef __GCC_ASM_FLAG_OUTPUTS__
  /* a compiler without asm flag outputs (gcc before 10): row_sums' test, three a sum (v ^
   * sign is |v| or |v| - 1: m - 1 - (v ^ sign) < 0 for some v where one may pass m) */
  const int32_t m1 = (int32_t)m - 1;
  int32_t below = 0;
#pragma GCC unroll 8
  for (int32_t j = 0; j < CB; ++j) below |= m1 - (t[j] ^ (t[j] >> 31));
  return below >= 0;
#else
  uint32_t x;
  int ok;
  /* the sums past CB are t[0] again (not read by the CB's test) */
  const int32_t t0 = t[0], t1 = t[1], t2 = t[2], t3 = CB > 3 ? t[3] : t0,
                t4 = CB > 4 ? t[4] : t0, t5 = CB > 4 ? t[5] : t0, t6 = CB > 6 ? t[6] : t0,
                t7 = CB > 6 ? t[7] : t0;
#define TT_GDSP_W_ARGS                                                                      \
  : [x] "=&r"(x), "=@cccs"(ok)                                                              \
  : [t0] "r"(t0), [t1] "r"(t1), [t2] "r"(t2), [t3] "r"(t3), [t4] "r"(t4), [t5] "r"(t5),     \
    [t6] "r"(t6), [t7] "r"(t7), [m] "r"(m), [m2] "r"(2u * m)
  if (CB == 8)
    __asm__(TT_GDSP_W_FIRST TT_GDSP_W_TWO("t1", "t2") TT_GDSP_W_TWO("t3", "t4")
                TT_GDSP_W_TWO("t5", "t6") TT_GDSP_W_ONE("t7") TT_GDSP_W_ARGS);
  else if (CB == 6)
    __asm__(TT_GDSP_W_FIRST TT_GDSP_W_TWO("t1", "t2") TT_GDSP_W_TWO("t3", "t4")
                TT_GDSP_W_ONE("t5") TT_GDSP_W_ARGS);
  else if (CB == 4)
    __asm__(TT_GDSP_W_FIRST TT_GDSP_W_TWO("t1", "t2") TT_GDSP_W_ONE("t3") TT_GDSP_W_ARGS);
  else
    __asm__(TT_GDSP_W_FIRST TT_GDSP_W_TWO("t1", "t2") TT_GDSP_W_ARGS);
#undef TT_GDSP_W_ARGS
  return ok;
#endif
}
#undef TT_GDSP_W_FIRST
#undef TT_GDSP_W_TWO
#undef TT_GDSP_W_ONE

#if TT_DSP_ASM_ALL_REGS
/* first_rows' unmasked rows of 6 columns, a whole assembly function (tt_dsp_pw_rows6): the
 * measuring walk's blocks where tt_dsp_pw_rows8 would run (co a multiple of 8), and blocks of 6.
 * Six sums leave four registers for the staged words: one LDM takes two columns' four (the
 * LDRDs of mac_pairs8 take one's two), so a group of four outputs is 18 instructions for 24
 * MACs and eight groups with the loop's end 147 per 192 (mac_pairs8: 57 per 64, 0.77
 * against 0.89 a MAC). LDM and STM name their registers by number (the lowest address to the
 * lowest register), so the registers are fixed: sums r0-r5 (one STM keeps a row's six),
 * dy's halves r6 (even) and r7 (odd), the staged words r8-r11, dy r12, the staged pointer
 * lr; the rows' state on the stack. A row ends where the staged pointer reaches the block's
 * end (the same for every row: no per-row end). Same sums (the same products added in the
 * same order per sum, SMUAD then SMLADs), the same test (within's) and maximum. */
typedef struct {
  const int8_t *g, *gend;             /* the rows, whole rows of co bytes */
  const tt_dsp_word *stage, *send;    /* the staged block, its end (12 words a group) */
  int32_t *kept;                      /* the first row's six sums, then `step` bytes on */
  int32_t step;
  uint32_t m;                         /* the maximum so far */
  int32_t skip;                       /* (-co / 4) % 8: the groups a row's first pass skips */
} pw_rows6_args;
/* a group's 24 MACs: the six sums r0-r5 += 6 staged weight word pairs (lr) x the dy pairs
 * r6, r7 */
#define PW6_SUMS                                                                            \
  "  ldm lr!, {r8-r11}\n  smlad r0, r8, r6, r0\n  smlad r0, r9, r7, r0\n"                   \
  "  smlad r1, r10, r6, r1\n  smlad r1, r11, r7, r1\n"                                      \
  "  ldm lr!, {r8-r11}\n  smlad r2, r8, r6, r2\n  smlad r2, r9, r7, r2\n"                   \
  "  smlad r3, r10, r6, r3\n  smlad r3, r11, r7, r3\n"                                      \
  "  ldm lr!, {r8-r11}\n  smlad r4, r8, r6, r4\n  smlad r4, r9, r7, r4\n"                   \
  "  smlad r5, r10, r6, r5\n  smlad r5, r11, r7, r5\n"
#define PW6_GROUP                                                                           \
  "  ldr r6, [r12], #4\n  sxtb16 r7, r6, ror #8\n  sxtb16 r6, r6\n" PW6_SUMS
/* the stack: six zero words and the staged block (one LDM starts a row: its sums and the
 * staged pointer), the row's entry (the first pair's address or the second's, with the
 * Thumb bit: one LDR to pc a row, no test), then send kept step m 2m gend (one LDM at a
 * row's end: the kept row and the maximum's test's m and 2m together): 92 bytes, 36 pushed
 * (TT_DSP_ASM_ENTRY's r4-r11, lr) and a frame of 56, which -fstack-usage does not see (an
 * assembly function has no .su line), like the dw3 pairs' 68 (36 + 32). Eight groups an
 * iteration (the loop's end 3 instructions per 192 MACs), a row entering at pair skip / 2
 * of the four (co a multiple of 8: whole pairs; (co / 4 + skip) % 8 == 0, so a row's first
 * iteration ends at the loop's end). A row's work beside its groups: 2
 * to start, 5 to keep it, 16 for the test, 2 to end (31 before round 22's pwig22).
 * One function of this shape per block width: GROUP the instructions of a group, KEEP the
 * sums a row stores, WITHIN the test of all but the first, N the sums kept.
 * The entry: 1f and `skip` / 2 pairs of groups on (a pair's length from 5f). Within's test:
 * |v| <= m where (uint32_t)(v + m) <= 2m, chained on the carry; a sum passing m (rare after
 * the first rows) takes the maximum over the kept N. */
#define PW_ROWS_ADDCS(a) "  addcs r11, " a ", r8\n  cmpcs r9, r11\n"
/* within's test of six sums r0-r5 (r8 the maximum, r9 2m: carry set while each is within) */
#define PW6_WITHIN                                                                          \
  "  itttt cs\n" PW_ROWS_ADDCS("r1") PW_ROWS_ADDCS("r2")                                     \
  "  itttt cs\n" PW_ROWS_ADDCS("r3") PW_ROWS_ADDCS("r4")                                     \
  "  itt cs\n" PW_ROWS_ADDCS("r5")
/* The maximum (r8) over the sums at r6, counted down in CNT, stored with its double (m, 2m)
 * at [sp, #OFF] */
#define PW_ROWS_LARGEST(CNT, OFF)                                                           \
  "4:\n"                                                                                    \
  "  ldr r11, [r6], #4\n  eor r9, r11, r11, asr #31\n  sub r9, r9, r11, asr #31\n"          \
  "  cmp r9, r8\n  it hi\n  movhi r8, r9\n  subs " CNT ", " CNT ", #1\n  bne 4b\n"          \
  "  lsl r9, r8, #1\n  strd r8, r9, [sp, #" OFF "]\n"
#define PW_ROWS_ASM(NAME, GROUP, KEEP, WITHIN, N)                                          \
  __asm__(TT_DSP_ASM_ENTRY(NAME)                                                           \
          "  sub sp, sp, #56\n"                                                            \
          "  ldm r0, {r1-r8}\n"                                                            \
          "  mov r12, r1\n"                                                                \
          "  str r3, [sp, #24]\n  str r4, [sp, #32]\n"                                     \
          "  lsl r9, r7, #1\n  mov r10, r2\n  add r0, sp, #36\n"                           \
          "  stm r0, {r5, r6, r7, r9, r10}\n"                                              \
          "  adr.w r9, 1f\n  adr.w r10, 5f\n  sub r10, r10, r9\n  lsr r8, r8, #1\n"        \
          "  mla r9, r8, r10, r9\n  orr r9, r9, #1\n  str r9, [sp, #28]\n"                 \
          "  movs r0, #0\n  movs r1, #0\n  movs r2, #0\n  movs r3, #0\n  movs r4, #0\n"   \
          "  movs r5, #0\n  stm sp, {r0-r5}\n"                                             \
          "0:\n"                                                                           \
          "  ldm sp, {r0-r5, lr}\n  ldr pc, [sp, #28]\n"                                   \
          "1:\n" GROUP GROUP                                                               \
          "5:\n" GROUP GROUP GROUP GROUP GROUP GROUP                                        \
          "  ldr r8, [sp, #32]\n  cmp lr, r8\n  bne 1b\n"                                  \
          "  add r6, sp, #36\n  ldm r6, {r6-r10}\n  stm r6, " KEEP "\n  add r7, r6, r7\n"  \
          "  str r7, [sp, #36]\n"                                                          \
          "  add r11, r0, r8\n  cmp r9, r11\n" WITHIN                                      \
          "  bcs 3f\n"                                                                     \
          "  mov lr, #" #N "\n"                                                            \
          PW_ROWS_LARGEST("lr", "44")                                                      \
          "3:\n"                                                                           \
          "  cmp r12, r10\n  bne 0b\n"                                                     \
          "  ldr r0, [sp, #44]\n"                                                          \
          "  add sp, sp, #56\n"                                                            \
          "  pop {r4-r11, pc}\n"                                                           \
          "  .size " #NAME ", . - " #NAME "\n"                                              \
          "  .text\n")
PW_ROWS_ASM(tt_dsp_pw_rows6, PW6_GROUP, "{r0-r5}",
            PW6_WITHIN, 6);
#undef PW6_GROUP
uint32_t tt_dsp_pw_rows6(const pw_rows6_args *a);

/* tt_dsp_pw_rows6 for blocks of 4 columns (the measuring walk's last block where ci = 4
 * mod 6: first_rows' C loop took 1.08-1.15 a MAC there against 0.80 for the sixes): the
 * same frame, entry and row work (r4 and r5 loaded as zero sums, never added to), a group
 * two LDMs for the four columns' eight staged words (13 instructions for 16 MACs), STM of
 * four sums, within's test of four, the maximum over four. pw_rows6_args with send at
 * stage + 2 co (8 words a group). Same sums (the same products added in the same order per
 * sum), the same test and maximum. */
#define PW4_GROUP                                                                           \
  "  ldr r6, [r12], #4\n  sxtb16 r7, r6, ror #8\n  sxtb16 r6, r6\n"                         \
  "  ldm lr!, {r8-r11}\n  smlad r0, r8, r6, r0\n  smlad r0, r9, r7, r0\n"                   \
  "  smlad r1, r10, r6, r1\n  smlad r1, r11, r7, r1\n"                                      \
  "  ldm lr!, {r8-r11}\n  smlad r2, r8, r6, r2\n  smlad r2, r9, r7, r2\n"                   \
  "  smlad r3, r10, r6, r3\n  smlad r3, r11, r7, r3\n"
PW_ROWS_ASM(tt_dsp_pw_rows4, PW4_GROUP, "{r0-r3}",
            "  itttt cs\n" PW_ROWS_ADDCS("r1") PW_ROWS_ADDCS("r2")
            "  itt cs\n" PW_ROWS_ADDCS("r3"), 4);
#undef PW4_GROUP

/* tt_dsp_pw_rows6 for blocks of 3 columns (MCUNet's 576 outputs: the staging holds three
 * columns; first_rows' C loop, mac_pairs3, took about 13.3 instructions a group there): the
 * same frame, entry and row work (r3-r5 loaded as zero sums and then overwritten: the dy
 * halves are r3 and r4 here), a group one LDM of the three columns' six staged words into
 * r5-r10 (10 instructions for 12 MACs: 0.83 a MAC against mac_pairs3's 1.0 and its loop's
 * end every two groups), STM of three sums, within's test of three, the maximum over three.
 * pw_rows6_args with send at stage + 3 co / 2 (6 words a group). Same sums (the same
 * products added in the same order per sum), the same test and maximum. */
#define PW3_GROUP                                                                           \
  "  ldr r3, [r12], #4\n  sxtb16 r4, r3, ror #8\n  sxtb16 r3, r3\n"                         \
  "  ldm lr!, {r5-r10}\n  smlad r0, r5, r3, r0\n  smlad r0, r6, r4, r0\n"                   \
  "  smlad r1, r7, r3, r1\n  smlad r1, r8, r4, r1\n"                                        \
  "  smlad r2, r9, r3, r2\n  smlad r2, r10, r4, r2\n"
PW_ROWS_ASM(tt_dsp_pw_rows3, PW3_GROUP, "{r0-r2}",
            "  itt cs\n" PW_ROWS_ADDCS("r1") "  itt cs\n" PW_ROWS_ADDCS("r2"), 3);
#undef PW3_GROUP

/* tt_dsp_pw_rows6 row-major over a chunk of blocks of 6 (the measuring walk's sixes, co a
 * multiple of 8, where three or more blocks' staging fits and the walk has no probes:
 * sixes_by_rows), each row's dy sign-extended once into `wide` (co / 2 words: SXTB16's
 * even and odd halves of each dy word in turn) and then read by every block: a group is
 * one LDM of its two halves where rows6 loads and extends each block's (16 instructions
 * per 24 MACs against 18). The blocks' staged words follow one another (3 co words a block), so the
 * staged pointer runs on from one block into the next; a block's groups end where the
 * widened pointer reaches wide's end (the same for every block and row). A row keeps its
 * blocks' sums side by side (6 words a block from `kept` on), then steps `rowstep` bytes
 * (step - 24 nb: rows not kept write one dummy row again and again). Same sums (the same
 * products added in the same order per sum as rows6: SMLAD of the same halves from zero),
 * the same test (within's, against the maximum so far) and maximum. Frame of 80 bytes
 * beside the 36 pushed: six zero words, wide (one LDM starts a block: the sums and the
 * widened pointer), wide's end, the groups' entry (as rows6's: the first pair's address or
 * the second's, with the Thumb bit), the kept pointer and rowstep (one LDRD a row), m and
 * 2m (one a block), the chunk's staged end, g, gend, stage, the widening's entry (its loop
 * takes 16 dy a trip, entered at its second half where co / 8 is odd: 8 instructions per 8
 * dy), a pad. */
typedef struct {
  const int8_t *g, *gend;             /* the rows, whole rows of co bytes */
  const tt_dsp_word *stage, *send;    /* nb staged blocks of 6 (3 co words each), their end */
  int32_t *kept;                      /* the first row's first block's six sums */
  int32_t rowstep;                    /* bytes from a row's last block's sums' end to the next row's */
  uint32_t m;                         /* the maximum so far */
  int32_t skip;                       /* (-co / 4) % 8: the groups a block's first pass skips */
  uint32_t *wide;                     /* co / 2 words, 4-byte aligned */
  int32_t co;
} pw_rows6x_args;
#define PW6X_GROUP "  ldm r12!, {r6, r7}\n" PW6_SUMS
__asm__(TT_DSP_ASM_ENTRY(tt_dsp_pw_rows6x)
        "  sub sp, sp, #80\n"
        "  ldm r0, {r1-r10}\n"
        "  adr.w r11, 7f\n  adr.w r0, 17f\n  tst r10, #8\n  it ne\n  movne r11, r0\n"
        "  orr r11, r11, #1\n  str r11, [sp, #68]\n"
        "  add r10, r9, r10, lsl #1\n  strd r9, r10, [sp, #24]\n"
        "  strd r5, r6, [sp, #36]\n  lsl r11, r7, #1\n  strd r7, r11, [sp, #44]\n"
        "  str r4, [sp, #52]\n  strd r1, r2, [sp, #56]\n  str r3, [sp, #64]\n"
        "  adr.w r9, 1f\n  adr.w r10, 5f\n  sub r10, r10, r9\n  lsr r8, r8, #1\n"
        "  mla r9, r8, r10, r9\n  orr r9, r9, #1\n  str r9, [sp, #32]\n"
        "  movs r0, #0\n  movs r1, #0\n  movs r2, #0\n  movs r3, #0\n  movs r4, #0\n"
        "  movs r5, #0\n  stm sp, {r0-r5}\n"
        "6:\n"                                      /* a row: its dy widened */
        "  ldrd r12, r1, [sp, #56]\n  cmp r12, r1\n  beq 9f\n"
        "  ldrd r0, r1, [sp, #24]\n  ldr pc, [sp, #68]\n"
        "7:\n"
        "  ldr r6, [r12], #4\n  ldr r7, [r12], #4\n"
        "  sxtb16 r8, r6\n  sxtb16 r9, r6, ror #8\n  sxtb16 r10, r7\n  sxtb16 r11, r7, ror #8\n"
        "  stm r0!, {r8-r11}\n"
        "17:\n"
        "  ldr r6, [r12], #4\n  ldr r7, [r12], #4\n"
        "  sxtb16 r8, r6\n  sxtb16 r9, r6, ror #8\n  sxtb16 r10, r7\n  sxtb16 r11, r7, ror #8\n"
        "  stm r0!, {r8-r11}\n  cmp r0, r1\n  bne 7b\n"
        "  str r12, [sp, #56]\n  ldr lr, [sp, #64]\n"
        "0:\n"                                      /* a block */
        "  ldm sp, {r0-r5, r12}\n  ldr pc, [sp, #32]\n"
        "1:\n" PW6X_GROUP PW6X_GROUP
        "5:\n" PW6X_GROUP PW6X_GROUP PW6X_GROUP PW6X_GROUP PW6X_GROUP PW6X_GROUP
        "  ldr r8, [sp, #28]\n  cmp r12, r8\n  bne 1b\n"
        "  ldr r6, [sp, #36]\n  stm r6!, {r0-r5}\n  str r6, [sp, #36]\n"
        "  ldrd r8, r9, [sp, #44]\n"
        "  add r11, r0, r8\n  cmp r9, r11\n"
        PW6_WITHIN
        "  bcs 3f\n"
        "  sub r6, r6, #24\n  mov r7, #6\n"
        PW_ROWS_LARGEST("r7", "44")
        "3:\n"
        "  ldr r8, [sp, #52]\n  cmp lr, r8\n  bne 0b\n"
        "  ldrd r6, r7, [sp, #36]\n  add r6, r6, r7\n  str r6, [sp, #36]\n"
        "  b 6b\n"
        "9:\n"
        "  ldr r0, [sp, #44]\n"
        "  add sp, sp, #80\n"
        "  pop {r4-r11, pc}\n"
        "  .size tt_dsp_pw_rows6x, . - tt_dsp_pw_rows6x\n"
        "  .text\n");
#undef PW6X_GROUP
uint32_t tt_dsp_pw_rows6x(const pw_rows6x_args *a);

/* first_rows' unmasked rows of 8 columns (the first pass's blocks of 8 and their probes, co
 * a multiple of 8), a whole assembly function: first_rows8's sums, test and maximum with
 * rows6's row work. first_rows8 (inline assembly, gcc's registers) spent about 41
 * instructions a row and block beside its groups: the row's end computed and stored, the
 * staged pointer loaded, a loop test every two groups, four STRDs and the kept pointer's
 * three, the maximum's operands loaded and shifted; at co 8 (MCUNet's 16->8 @64x64) that is
 * 41 of every 95. Here the registers are fixed: sums r0-r7 (one STM keeps a row), dy's
 * halves r8 (even) and r9 (odd), a column's two staged words r10 and r11 (LDRD), dy r12,
 * the staged pointer lr. A row starts with one LDM of eight zero sums and the staged
 * pointer and one LDR to pc (rows6's entry: eight groups an iteration, a row of co / 4
 * groups entering at pair skip / 2), ends with one LDM of kept, step, m, 2m and gend, one
 * STM, within's test of eight and the loop's: about 31 a row beside its groups. The frame:
 * eight zero words, stage, the entry, send, kept, step, m, 2m, gend (64 bytes beside the 36
 * pushed; no .su line, as rows6's). pw_rows6_args with send at stage + 4 co (16 words a
 * group). Same sums (the same products added in the same order per sum: SMLAD onto zero
 * where first_rows8 began with SMUAD, the same value), the same test and maximum. */
#define PW8_COL(j) "  ldrd r10, r11, [lr], #8\n  smlad " j ", r10, r8, " j "\n  smlad " j ", r11, r9, " j "\n"
#define PW8_GROUP                                                                           \
  "  ldr r8, [r12], #4\n  sxtb16 r9, r8, ror #8\n  sxtb16 r8, r8\n"                         \
  PW8_COL("r0") PW8_COL("r1") PW8_COL("r2") PW8_COL("r3") PW8_COL("r4") PW8_COL("r5")        \
  PW8_COL("r6") PW8_COL("r7")
__asm__(TT_DSP_ASM_ENTRY(tt_dsp_pw_rows8)
        "  sub sp, sp, #64\n"
        "  ldm r0, {r1-r8}\n"
        "  mov r12, r1\n"
        "  str r3, [sp, #32]\n  str r4, [sp, #40]\n"
        "  lsl r9, r7, #1\n  mov r10, r2\n  add r0, sp, #44\n"
        "  stm r0, {r5, r6, r7, r9, r10}\n"
        "  adr.w r9, 1f\n  adr.w r10, 5f\n  sub r10, r10, r9\n  lsr r8, r8, #1\n"
        "  mla r9, r8, r10, r9\n  orr r9, r9, #1\n  str r9, [sp, #36]\n"
        "  movs r0, #0\n  movs r1, #0\n  movs r2, #0\n  movs r3, #0\n  movs r4, #0\n"
        "  movs r5, #0\n  movs r6, #0\n  movs r7, #0\n  stm sp, {r0-r7}\n"
        "0:\n"
        "  ldm sp, {r0-r7, lr}\n  ldr pc, [sp, #36]\n"
        "1:\n" PW8_GROUP PW8_GROUP
        "5:\n" PW8_GROUP PW8_GROUP PW8_GROUP PW8_GROUP PW8_GROUP PW8_GROUP
        "  ldr r8, [sp, #40]\n  cmp lr, r8\n  bne 1b\n"
        "  add r8, sp, #44\n  ldm r8, {r8-r11, lr}\n  stm r8, {r0-r7}\n  add r9, r8, r9\n"
        "  str r9, [sp, #44]\n"
        "  add r9, r0, r10\n  cmp r11, r9\n"
        "  itttt cs\n  addcs r9, r1, r10\n  cmpcs r11, r9\n  addcs r9, r2, r10\n  cmpcs r11, r9\n"
        "  itttt cs\n  addcs r9, r3, r10\n  cmpcs r11, r9\n  addcs r9, r4, r10\n  cmpcs r11, r9\n"
        "  itttt cs\n  addcs r9, r5, r10\n  cmpcs r11, r9\n  addcs r9, r6, r10\n  cmpcs r11, r9\n"
        "  itt cs\n  addcs r9, r7, r10\n  cmpcs r11, r9\n"
        "  bcs 3f\n"
        "  mov r0, #8\n"
        "4:\n"
        "  ldr r1, [r8], #4\n  eor r2, r1, r1, asr #31\n  sub r2, r2, r1, asr #31\n"
        "  cmp r2, r10\n  it hi\n  movhi r10, r2\n  subs r0, r0, #1\n  bne 4b\n"
        "  lsl r11, r10, #1\n  strd r10, r11, [sp, #52]\n"
        "3:\n"
        "  cmp r12, lr\n  bne 0b\n"
        "  ldr r0, [sp, #52]\n"
        "  add sp, sp, #64\n"
        "  pop {r4-r11, pc}\n"
        "  .size tt_dsp_pw_rows8, . - tt_dsp_pw_rows8\n"
        "  .text\n");
#undef PW8_GROUP
#undef PW8_COL
uint32_t tt_dsp_pw_rows8(const pw_rows6_args *a);
/* tt_dsp_pw_rows6 for tiny maps with the multiplier on dy (tt_dsp_pw_rows6h, pwig31): where
 * few rows meet many outputs (the person detector's 3x3 maps: 9 rows, 256 outputs) the
 * staging, about 3.4 instructions a weight (SMULxy a weight by its output's multiplier), was
 * 0.37 a MAC over 9 rows. Here the rows' h = dy * mult are staged instead (pairs along the
 * reduction, [h(o), h(o + 2)] and [h(o + 1), h(o + 3)]: the lanes SXTB16 gives a dy word,
 * times the same multipliers) and the weights go unmultiplied (stage_w6: no product, about
 * 1.7 a weight). The rows' h and a block of 6 staged columns do not fit the staging together
 * at 256 outputs (9 x 512 B of h), so the outputs go in chunks of n (h_chunk: a multiple of
 * 16 for which rows n / 2 + 3 n words fit): the chunk's h, then each block of 6 columns of
 * the chunk's weights, whose rows add the chunk's terms to the sums kept so far (the first
 * chunk from zero) and whose last chunk tests the maximum. A group is one LDM of the row's
 * two h words (rows6's LDR and two SXTB16 of dy: 16 instructions per 24 MACs against 18);
 * four groups an iteration (eight were 256 B more code and 1.5% fewer instructions on these
 * rows). Same integers: each sum the exact int32 sum of the same co terms, h * w = dy * (w *
 * mult) (tt_kernels.h: any order or factoring gives the same integer; the kept partial sums
 * are int32 additions that wrap as the portable ones do), the same test (within's) and
 * maximum, over the final sums only. The frame (64 bytes beside the 36 pushed, no .su line,
 * as rows8's): six zero words, stage, send, kept, step, m, 2m, hend, the row's entry (from
 * zero or from the kept sums, with the Thumb bit), the test's (the test, or past it: one LDR
 * to pc a row where pwig31's LDR, CMP and BEQ of a flag were; pwig31b: MCUNet's 4x4 rows
 * -0.4 to -0.6%), a pad. A row's work beside its groups: 2 or 4 to start, 3 a loop of four
 * groups, 4 to keep, 1 to skip the test or 13 to run it, 3 to end. */
typedef struct {
  const tt_dsp_word *h, *hend;        /* the rows' h, n / 2 words a row */
  const tt_dsp_word *stage, *send;    /* one staged block of 6 (3 n words) */
  int32_t *kept;                      /* the first row's six sums, then `step` bytes on */
  int32_t step;
  uint32_t m;                         /* the maximum so far */
  int32_t flags;                      /* 1: add to the kept sums (else from zero); 2: test */
} pw_rows6h_args;
#define PW6H_GROUP "  ldm r12!, {r6, r7}\n" PW6_SUMS
__asm__(TT_DSP_ASM_ENTRY(tt_dsp_pw_rows6h)
        "  sub sp, sp, #64\n"
        "  ldm r0, {r1-r8}\n"
        "  mov r12, r1\n  str r2, [sp, #48]\n  strd r3, r4, [sp, #24]\n  strd r5, r6, [sp, #32]\n"
        "  lsl r9, r7, #1\n  strd r7, r9, [sp, #40]\n"
        "  adr.w r9, 3f\n  adr.w r10, 6f\n  tst r8, #2\n  it ne\n  movne r9, r10\n"
        "  orr r9, r9, #1\n  str r9, [sp, #56]\n"
        "  adr.w r9, 7f\n  adr.w r10, 8f\n  tst r8, #1\n  it ne\n  movne r9, r10\n"
        "  orr r9, r9, #1\n  str r9, [sp, #52]\n"
        "  movs r0, #0\n  movs r1, #0\n  movs r2, #0\n  movs r3, #0\n  movs r4, #0\n"
        "  movs r5, #0\n  stm sp, {r0-r5}\n"
        "0:\n"
        "  ldr pc, [sp, #52]\n"
        "7:\n"
        "  ldm sp, {r0-r5, lr}\n  b 1f\n"
        "8:\n"
        "  ldr r6, [sp, #32]\n  ldm r6, {r0-r5}\n  ldr lr, [sp, #24]\n"
        "1:\n" PW6H_GROUP PW6H_GROUP PW6H_GROUP PW6H_GROUP
        "  ldr r8, [sp, #28]\n  cmp lr, r8\n  bne 1b\n"
        "  ldrd r6, r7, [sp, #32]\n  stm r6, {r0-r5}\n  add r6, r6, r7\n  str r6, [sp, #32]\n"
        "  ldr pc, [sp, #56]\n"
        "6:\n"
        "  ldrd r8, r9, [sp, #40]\n"
        "  add r11, r0, r8\n  cmp r9, r11\n"
        PW6_WITHIN
        "  bcs 3f\n"
        "  sub r6, r6, r7\n  mov r7, #6\n"
        PW_ROWS_LARGEST("r7", "40")
        "3:\n"
        "  ldr r8, [sp, #48]\n  cmp r12, r8\n  bne 0b\n"
        "  ldr r0, [sp, #40]\n"
        "  add sp, sp, #64\n"
        "  pop {r4-r11, pc}\n"
        "  .size tt_dsp_pw_rows6h, . - tt_dsp_pw_rows6h\n"
        "  .text\n");
#undef PW6H_GROUP
uint32_t tt_dsp_pw_rows6h(const pw_rows6h_args *a);

/* The one-pass measuring walk at co = 8 (MCUNet's 16->8 @64x64: tt_dsp_pw_rows8 was 85
 * instructions per 64 MACs there, two groups of 27 and 31 of row work a row and block): a
 * row's whole ci in one pass, its dy (two words) as four SXTB16 halves kept in registers,
 * the staged weights column pair by column pair (stage_columns' blocks of 2: group 0's two
 * columns' four words, then group 1's: two LDMs), four SMLADs a column into one sum, the
 * pair's sums stored by one STRD as they come and within's test chained across four pairs
 * (8 columns an iteration: 16 instructions per 16 MACs, 3 an iteration's end). A row's work
 * beside: 6 to start, 3 to end. Within's test |v| <= m as (uint32_t)(v + m) <= 2m with 2m
 * the shifted operand of CMP (no register for it: the chain on LS, a pass leaving C clear or
 * Z set). Registers fixed: the staged words r0-r3 (r0 the test's scratch once a pair's
 * products are taken), m r4, the staged end r5, the sums r6 r7, dy's halves r8-r11, the
 * kept pointer r12 (every row kept: ci sums a row, one row after another), the staged
 * pointer lr. The frame: g, gend, stage (one LDM a row: the next row's dy, its end test,
 * the staged pointer; 12 bytes beside the 36 pushed, no .su line, as rows8's).
 * ci a multiple of 8. Same integers: each sum the exact int32 sum of the same eight terms
 * (SMUAD then SMLADs: any order gives the same integer, tt_kernels.h), the same test
 * (within's: a sum passing m sends the iteration's eight to the maximum) and maximum. */
typedef struct {
  const int8_t *g, *gend;             /* the rows, 8 bytes each */
  const tt_dsp_word *stage, *send;    /* ci / 2 blocks of 2 (8 words each), their end */
  int32_t *kept;                      /* the first row's ci sums, the next rows' after */
  uint32_t m;                         /* the maximum so far */
} pw_rows_co8_args;
#define PW8C_PAIR(TEST)                                                                     \
  "  ldm lr!, {r0-r3}\n  smuad r6, r0, r8\n  smlad r6, r1, r9, r6\n"                        \
  "  smuad r7, r2, r8\n  smlad r7, r3, r9, r7\n"                                            \
  "  ldm lr!, {r0-r3}\n  smlad r6, r0, r10, r6\n  smlad r6, r1, r11, r6\n"                  \
  "  smlad r7, r2, r10, r7\n  smlad r7, r3, r11, r7\n  strd r6, r7, [r12], #8\n" TEST
#define PW8C_TEST                                                                           \
  "  itttt ls\n  addls r0, r6, r4\n  cmpls r0, r4, lsl #1\n  addls r0, r7, r4\n"            \
  "  cmpls r0, r4, lsl #1\n"
__asm__(TT_DSP_ASM_ENTRY(tt_dsp_pw_rows_co8)
        "  sub sp, sp, #12\n"
        "  ldm r0, {r0-r5}\n  stm sp, {r0-r2}\n"
        "  mov r12, r4\n  mov r4, r5\n  mov r5, r3\n  mov lr, r2\n"
        "0:\n"
        "  ldrd r1, r2, [r0], #8\n  str r0, [sp]\n"
        "  sxtb16 r8, r1\n  sxtb16 r9, r1, ror #8\n  sxtb16 r10, r2\n  sxtb16 r11, r2, ror #8\n"
        "1:\n"
        PW8C_PAIR("  adds r0, r6, r4\n  cmp r0, r4, lsl #1\n  itt ls\n  addls r0, r7, r4\n"
                  "  cmpls r0, r4, lsl #1\n")
        PW8C_PAIR(PW8C_TEST) PW8C_PAIR(PW8C_TEST) PW8C_PAIR(PW8C_TEST)
        "  bhi 2f\n"
        "3:\n"
        "  cmp lr, r5\n  bne 1b\n"
        "  ldm sp, {r0, r1, lr}\n  cmp r0, r1\n  bne 0b\n"
        "  mov r0, r4\n"
        "  add sp, sp, #12\n"
        "  pop {r4-r11, pc}\n"
        "2:\n"                                      /* the maximum over the eight just kept */
        "  sub r6, r12, #32\n  movs r7, #8\n"
        "4:\n"
        "  ldr r0, [r6], #4\n  eor r1, r0, r0, asr #31\n  sub r1, r1, r0, asr #31\n"
        "  cmp r1, r4\n  it hi\n  movhi r4, r1\n  subs r7, r7, #1\n  bne 4b\n"
        "  b 3b\n"
        "  .size tt_dsp_pw_rows_co8, . - tt_dsp_pw_rows_co8\n"
        "  .text\n");
#undef PW8C_PAIR
#undef PW8C_TEST
uint32_t tt_dsp_pw_rows_co8(const pw_rows_co8_args *a);
#undef PW_ROWS_ASM
#undef PW_ROWS_ADDCS
uint32_t tt_dsp_pw_rows4(const pw_rows6_args *a);
uint32_t tt_dsp_pw_rows3(const pw_rows6_args *a);
#endif

/* The first pass's unmasked whole blocks of 8, 6, 4 or 3 columns where every row is whole
 * pairs of dy words (co a multiple of 8) and the largest magnitude is asked for: block's
 * keeping rows without its per-row work. The row's dy and its end step by co (row_sums
 * computes both, its tail and the mask's index again every row), the sums go from the
 * assembly loop to the kept row and the maximum's test and nowhere else (block stores them
 * for the rows it cannot sink), and the maximum's test is within's. Same sums, same
 * maximum: the same loop, and a new maximum taken wherever a sum passes the old one. */
static inline __attribute__((always_inline)) void first_rows(const pointwise *a,
                                                             const tt_dsp_word *stage,
                                                             const int32_t CB,
                                                             const int masked, int32_t c0,
                                                             const tt_keep *keep,
                                                             uint32_t *top) {
  const int8_t *g = a->dy;
  const int32_t co = a->co, ci = a->ci, rows = a->rows;
  const int32_t n0 = keep != 0 ? keep->n0 : 0, n1 = keep != 0 ? keep->n1 : 0;
  int32_t *kept = tt_kept(keep, 0, ci);
  /* masked: every row's mask starts on a byte (mask_at and co multiples of 8), so the
   * rows' bytes follow one another */
  const uint8_t *bits = masked ? a->mask + (a->mask_at >> 3) : 0;
  uint32_t m = *top;
#if TT_DSP_ASM_ALL_REGS
  if (!masked && CB >= 3 && CB != 5 && CB != 7) {
    /* the rows kept at a0, at a1, and not kept (into a dummy row, not stepped) */
    uint32_t (*const rows_fn)(const pw_rows6_args *) =
        CB == 8   ? tt_dsp_pw_rows8
        : CB == 6 ? tt_dsp_pw_rows6
        : CB == 4 ? tt_dsp_pw_rows4
                  : tt_dsp_pw_rows3;
    const int32_t e0 = n0 < rows ? n0 : rows, e1 = n1 < rows ? n1 : rows;
    int32_t dummy[8];
    pw_rows6_args r6 = {g, g + e0 * co, stage, stage + (CB * co) / 2,
                        e0 > 0 ? keep->a0 + c0 : 0, 4 * ci, m, -(co >> 2) & 7};
    if (e0 > 0) r6.m = rows_fn(&r6);
    if (e1 > e0)
      r6.g = g + e0 * co, r6.gend = g + e1 * co, r6.kept = keep->a1 + c0,
      r6.m = rows_fn(&r6);
    if (rows > e1)
      r6.g = g + e1 * co, r6.gend = g + rows * co, r6.kept = dummy, r6.step = 0,
      r6.m = rows_fn(&r6);
    *top = r6.m;
    return;
  }
  if (masked && CB == 8) {
    /* the rows kept at a0, at a1, and not kept, each run whole in assembly; row p's mask
     * bytes from bits + p co / 8 on */
    const int32_t e0 = n0 < rows ? n0 : rows, e1 = n1 < rows ? n1 : rows, cb = co >> 3;
    if (e0 > 0) m = rows8m(g, g + e0 * co, co, stage, keep->a0 + c0, 4 * ci, m, bits);
    if (e1 > e0)
      m = rows8m(g + e0 * co, g + e1 * co, co, stage, keep->a1 + c0, 4 * ci, m,
                 bits + e0 * cb);
    if (rows > e1) m = rows8m(g + e1 * co, g + rows * co, co, stage, 0, 0, m, bits + e1 * cb);
    *top = m;
    return;
  }
#endif
  for (int32_t p = 0; p < rows; ++p) {
    int32_t t[8];
#pragma GCC unroll 8
    for (int32_t j = 0; j < CB; ++j) t[j] = 0;
    if (masked) {
      /* row_sums' masked loop: a byte's two nibbles mask two words, all-zero words skipped */
      const int8_t *const end = g + co;
#if TT_DSP_ASM_ALL_REGS
      if (CB == 4 || CB == 3) {
        if (CB == 4) masked_pairs4(g, end, stage, bits, t);
        else masked_pairs3(g, end, stage, bits, t);
        g = end, bits += co >> 3;
      }
#endif
      for (const tt_dsp_word *s = stage; g != end; g += 8, s += 4 * CB, ++bits) {
        const uint32_t v0 = tt_dsp_load4(g) & lanes_of[*bits & 15u];
        const uint32_t v1 = tt_dsp_load4(g + 4) & lanes_of[*bits >> 4];
        if (v0 != 0) mac_group(v0, s, CB, t);
        if (v1 != 0) mac_group(v1, s + 2 * CB, CB, t);
      }
    } else {
      mac_pairs(CB, g, g + co, stage, t);
      g += co;
    }
    if (p < n1) {
      int32_t *to = kept + c0;
      /* one register: gcc 12 otherwise keeps c0 + j's offsets on the stack, a load a store */
      __asm__("" : "+r"(to));
#pragma GCC unroll 8
      for (int32_t j = 0; j < CB; ++j) to[j] = t[j];
      kept = p + 1 == n0 ? keep->a1 : kept + ci;
    }
    /* the maximum only where a sum passes it (rare after the first rows) */
    if (!within(t, CB, m)) {
#pragma GCC unroll 8
      for (int32_t j = 0; j < CB; ++j) {
        const uint32_t v = tt_magnitude(t[j]);
        m = v > m ? v : m;
      }
    }
  }
  *top = m;
}
/* tt_round_stochastic (times 1) over eight sums in registers, into out[0..7]: returns the
 * stream's state after the eight draws. In assembly because the rule's operands (the
 * multiplier, the noise's scale 2^hi_shift, hi_shift) and the stream beside eight live sums
 * take all fourteen registers: gcc 12 spills the operands, three loads an element (12 an
 * element against 8 here). Each element: the draw (three EORs), the noise's two words
 * (BIC, UMULL by the scale), the sum times the multiplier onto them (SMLAL), the high
 * word's arithmetic shift and the byte into the output word (BFI); a sum's register is the
 * next element's high word once its SMLAL has read it. Same bits: the same 64-bit sums. */
static inline __attribute__((always_inline)) uint32_t round8(const int32_t *t, uint32_t x,
                                                             int32_t rr, uint32_t sc,
                                                             int32_t hs, int8_t *out) {
  int32_t a0 = t[0], a1 = t[1], a2 = t[2], a3 = t[3], a4 = t[4], a5 = t[5], a6 = t[6],
          a7 = t[7];
  uint32_t l, h;
  __asm__(TT_GDSP_RULE0("a0", "h") TT_GDSP_RULE("a1", "a0", "h", "8")
          TT_GDSP_RULE("a2", "a0", "h", "16") TT_GDSP_RULE("a3", "a0", "h", "24")
          TT_GDSP_RULE0("a4", "a1") TT_GDSP_RULE("a5", "a0", "a1", "8")
          TT_GDSP_RULE("a6", "a0", "a1", "16") TT_GDSP_RULE("a7", "a0", "a1", "24")
          : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [a4] "+r"(a4),
            [a5] "+r"(a5), [a6] "+r"(a6), [a7] "+r"(a7), [x] "+r"(x), [l] "=&r"(l),
            [h] "=&r"(h)
          : [sc] "r"(sc), [rr] "r"(rr), [hs] "r"(hs));
  memcpy(out, &h, 4);
  memcpy(out + 4, &a1, 4);
  return x;
}

/* The steady rounding blocks (block's `steady`: unmasked, whole, stochastic, times 1, the
 * rows' states recorded) of 8, 6, 4 or 3 columns where every row is whole pairs of dy words:
 * the rows without row_sums' per-row set-up, the sums from the assembly loop straight into
 * the rule. Same bits: the same sums, rule, draws and states as block's steady rows.
 * `near` (a constant; only the 8-column copy, about 970 B): every whole block of 8 rounded
 * to nearest where the high word is shifted (near_block, 3 instructions an element where
 * block's rows called tt_round_grads, about 19), no states, the first block too. */
static inline __attribute__((always_inline)) void steady_rows(const pointwise *a,
                                                              const tt_dsp_word *stage,
                                                              const int32_t CB, int32_t c0,
                                                              tt_rounder *r, int8_t *dx,
                                                              uint32_t *top, const int near) {
  const int8_t *g = a->dy;
  const int32_t co = a->co, ci = a->ci;
  const int8_t *const gend = g + a->rows * co;
  uint32_t *states = a->states;             /* row p's at states[p] (not read: `near`) */
  const int32_t rr = r->r, hi_shift = r->hi_shift, noise_shift = near ? 8 : r->noise_shift;
  const int32_t up = near ? (int32_t)1 << (hi_shift - 1) : 0;
  int8_t *out = dx + c0;
  uint32_t x = 0;
  uint32_t m = *top;
  for (; g != gend; g += co, out += ci, ++states) {
    int32_t t[8];
#pragma GCC unroll 8
    for (int32_t j = 0; j < CB; ++j) t[j] = 0;
    mac_pairs(CB, g, g + co, stage, t);
    /* the optimistic pass's check (a pass that does not measure passes a top of 2^31 - 1,
     * which every sum is within) */
    if (!within(t, CB, m)) {
#pragma GCC unroll 8
      for (int32_t j = 0; j < CB; ++j) {
        const uint32_t v = tt_magnitude(t[j]);
        m = v > m ? v : m;
      }
    }
    if (near) {
      near_block(t, CB, rr, up, hi_shift, out);
      continue;
    }
    x = *states;
    if (CB == 8) {
      x = round8(t, x, rr, (uint32_t)1 << (noise_shift - 8), hi_shift, out);
      *states = x;
      continue;
    }
#pragma GCC unroll 2
    for (int32_t j = 0; j < CB; j += 4)
      x = tt_round_stochastic(t + j, CB - j < 4 ? CB - j : 4, out + j, x, 1, rr, hi_shift,
                              noise_shift);
    *states = x;
  }
  if (!near) r->rng = x;
  *top = m;
}
/* The rounding walk of a call whose every block of 8 columns fits the staging at once (few
 * outputs: groups * ci <= 512 words of it: co = 8 up to ci = 256, co = 16 up to 128),
 * unmasked, stochastic, times 1, co a multiple of 8: row by row, each row's blocks in turn
 * (block b's columns staged at stage + b * 16 groups words; one block where ci is 8), each
 * block's sums straight from mac_pairs8 into the maximum's test and round8. Row-major
 * order is the stream's own, so no row jumps over its other blocks' draws (tt_gdsp_skip, 3
 * instructions a draw where the rows' states do not fit beside the staging: 16->8 at
 * 64x64) and every block is a steady one (block's per-row C rounding: about 230
 * instructions a row and block at co = 8 against about 178 here). Same bits: the same
 * sums, measured the same, rounded by the same rule from the same draws in the same order.
 * Returns the sums' largest magnitude (at least m). */
static __attribute__((noinline)) TT_DSP_ASM_FN uint32_t
row_major8(const pointwise *a, const tt_dsp_word *stage, int32_t blocks, tt_rounder *r,
           int8_t *dx, uint32_t m) {
  const int8_t *g = a->dy;
  const int32_t co = a->co;
  const int32_t rr = r->r, hi_shift = r->hi_shift;
  const uint32_t sc = (uint32_t)1 << (r->noise_shift - 8);
  /* one loop over the rows' blocks (a row loop around a block loop runs out of registers
   * for within's operands): the staged pointer wraps to the first block at a row's end */
  const tt_dsp_word *s = stage, *const last = stage + (blocks - 1) * 16 * a->groups;
  int8_t *const end = dx + a->rows * a->ci;
  uint32_t x = r->rng;
  for (; dx != end; dx += 8) {
    int32_t t[8];
    mac_pairs8(g, g + co, s, t);
    if (s == last) s = stage, g += co;
    else s += 16 * a->groups;
    /* row_sums' test, three instructions a sum (within's operands beside round8's loop
     * state leave gcc 12 no registers here: "impossible constraints") */
    const int32_t m1 = (int32_t)m - 1;
    int32_t below = 0;
#pragma GCC unroll 8
    for (int32_t j = 0; j < 8; ++j) below |= m1 - (t[j] ^ (t[j] >> 31));
    if (below < 0) {
#pragma GCC unroll 8
      for (int32_t j = 0; j < 8; ++j) {
        const uint32_t v = tt_magnitude(t[j]);
        m = v > m ? v : m;
      }
    }
    x = round8(t, x, rr, sc, hi_shift, dx);
  }
  r->rng = x;
  return m;
}
/* One copy, measuring: where no maximum is asked for (the plain second pass, the
 * optimistic pass's redo: few rows), it measures into a dummy from 2^31 - 1, which no sum
 * passes (|sum| < 2^31), about 20 instructions a row and block against a second copy. */
#define TT_GDSP_STEADY_ROWS(CB, NEAR)                                                       \
  if (((CB) == 8 || (CB) == 6 || (CB) == 4 || (CB) == 3) && (a->co & 7) == 0) {            \
    uint32_t unasked = 0x7FFFFFFFu;                                                         \
    steady_rows(a, stage, (CB), c0, r, dx, top != 0 ? top : &unasked, (NEAR));             \
    return;                                                                                 \
  }
#define TT_GDSP_FIRST_ROWS(CB, M)                                                           \
  if (((CB) == 8 || (CB) == 6 || (CB) == 4 || (CB) == 3) && nc == (CB) &&                   \
      (a->co & 7) == 0 && top != 0 && (!(M) || (a->mask_at & 7) == 0)) {                    \
    first_rows(a, stage, (CB), (M), c0, keep, top);                                         \
    return;                                                                                 \
  }
#else
#define TT_GDSP_FIRST_ROWS(CB, M)
#define TT_GDSP_STEADY_ROWS(CB, NEAR)
#endif

/* The optimistic pass's probes against one staged block, one copy per block width and
 * mask (their rows are the keeping walk's last: staged_walk calls them after each block,
 * so that no copy of block or first_rows holds a copy of them, and their frame is not
 * under the block's). At 8 columns unmasked with co a multiple of 8, tt_dsp_pw_rows8
 * row by row (whole rows of co bytes). */
#define TT_GDSP_PROBES(CB, M)                                                               \
  static __attribute__((noinline)) TT_DSP_ASM_FN uint32_t probes##CB##_##M(                 \
      const pointwise *p, const tt_dsp_word *stage, const tt_keep *keep, uint32_t m) {      \
    const pointwise local = *p, *const a = &local;   /* no reload of a field a row */        \
    TT_GDSP_PROBES8(CB, M)                                                                  \
    return probe_rows(a, stage, CB, M, keep, m);                                            \
  }
#if TT_DSP_ASM_ALL_REGS
#define TT_GDSP_PROBES8(CB, M)                                                              \
  if (((CB) == 8 || (CB) == 6 || (CB) == 4 || (CB) == 3) && !(M) && (a->co & 7) == 0) {  \
    int32_t dummy[8];                                                                       \
    pw_rows6_args r6 = {0, 0, stage, stage + ((CB) * a->co) / 2, dummy, 0, m,               \
                        -(a->co >> 2) & 7};                                                 \
    for (int32_t i = 0; i < keep->probes; ++i) {                                            \
      r6.g = a->dy + keep->probe[i] * a->co, r6.gend = r6.g + a->co;                        \
      r6.m = (CB) == 8   ? tt_dsp_pw_rows8(&r6)                                             \
             : (CB) == 6 ? tt_dsp_pw_rows6(&r6)                                             \
             : (CB) == 4 ? tt_dsp_pw_rows4(&r6)                                             \
                         : tt_dsp_pw_rows3(&r6);                                            \
    }                                                                                       \
    return r6.m;                                                                            \
  }
#else
#define TT_GDSP_PROBES8(CB, M)
#endif
TT_GDSP_PROBES(8, 0)
TT_GDSP_PROBES(6, 0)
TT_GDSP_PROBES(4, 0)
TT_GDSP_PROBES(3, 0)
TT_GDSP_PROBES(2, 0)
TT_GDSP_PROBES(1, 0)
TT_GDSP_PROBES(8, 1)
TT_GDSP_PROBES(4, 1)
TT_GDSP_PROBES(3, 1)
TT_GDSP_PROBES(2, 1)
TT_GDSP_PROBES(1, 1)
#undef TT_GDSP_PROBES
#undef TT_GDSP_PROBES8
typedef uint32_t (*probes_fn)(const pointwise *a, const tt_dsp_word *stage,
                              const tt_keep *keep, uint32_t m);

/* One compiled copy per block width, mask and pass (keeping or measuring; rounding). KEEP
 * is the keeping copy's `rounds`: 0, or r != 0 (the copy then compiles the rounding rows
 * too, never run); gcc 12 allocates the masked copies' registers better with r != 0 but for
 * the 3-column one (measured on the rig, masked: 2-3% fewer instructions, and 10% more for
 * 3 columns with it). */
typedef void (*block_fn)(const pointwise *a, const tt_dsp_word *stage, int32_t c0, int32_t nc,
                         const tt_keep *keep, uint32_t *top, tt_rounder *r,
                         const tt_gdsp_jumper *skip, int8_t *dx);
#define TT_GDSP_BLOCK(CB, M, KEEP)                                                          \
  static __attribute__((noinline)) TT_DSP_ASM_FN void block##CB##_##M(                      \
      const pointwise *a, const tt_dsp_word *stage, int32_t c0, int32_t nc,               \
      const tt_keep *keep, uint32_t *top, tt_rounder *r, const tt_gdsp_jumper *skip,       \
      int8_t *dx) {                                                                         \
    TT_GDSP_FIRST_ROWS(CB, M)                                                               \
    block(a, stage, CB, M, c0, nc, keep, top, r, skip, dx, KEEP, 0, 0);                     \
  }                                                                                         \
  static __attribute__((noinline)) TT_DSP_ASM_FN void block##CB##_##M##_r(                  \
      const pointwise *a, const tt_dsp_word *stage, int32_t c0, int32_t nc,               \
      const tt_keep *keep, uint32_t *top, tt_rounder *r, const tt_gdsp_jumper *skip,       \
      int8_t *dx) {                                                                         \
    if (!M && c0 != 0 && nc == CB && a->states != 0 && r->stochastic && !r->exact &&        \
        r->times == 1) {                                                                    \
      TT_GDSP_STEADY_ROWS(CB, 0)                                                            \
      block(a, stage, CB, M, c0, nc, keep, top, r, skip, dx, 1, 1, 1);                      \
    } else {                                                                                \
      /* to nearest (A >= 512) at 8 columns: every whole block steady, no stream */         \
      if ((CB) == 8 && !M && nc == CB && !r->stochastic && !r->exact && r->hi_shift > 0)    \
        TT_GDSP_STEADY_ROWS(CB, 1)                                                          \
      block(a, stage, CB, M, c0, nc, keep, top, r, skip, dx, 1, !M, 0);                     \
    }                                                                                       \
  }
TT_GDSP_BLOCK(8, 0, 0)
TT_GDSP_BLOCK(6, 0, 0)
TT_GDSP_BLOCK(4, 0, 0)
TT_GDSP_BLOCK(3, 0, 0)
TT_GDSP_BLOCK(2, 0, 0)
TT_GDSP_BLOCK(1, 0, 0)
TT_GDSP_BLOCK(8, 1, r != 0)
TT_GDSP_BLOCK(4, 1, r != 0)
TT_GDSP_BLOCK(3, 1, 0)
TT_GDSP_BLOCK(2, 1, r != 0)
TT_GDSP_BLOCK(1, 1, r != 0)

/* The staging's widest block of columns for co outputs (0: not one column fits). */
static int32_t block_width(int32_t co, int masked) {
  /* a dy word's extensions serve all CB columns, so wider is fewer instructions per MAC (3
   * columns, not 2, for MCUNet's 576 outputs: 1.97 -> 1.71 a MAC at 4x4; a copy for 5 gained
   * 0.04 on its 384 and was left out; 6, not 4, for MobileNetV2's 336 with the assembly
   * loops; masked rows run the C loop, slower at 6 than at 4: 534,680 -> 574,160 on 56->336
   * at 4x4) */
  static const int8_t widths[9] = {0, 1, 2, 3, 4, 4, 6, 6, 8};
  const int32_t fit = TT_GRAD_DSP_STAGE_BYTES / (8 * ((co + 3) >> 2));
  const int32_t width = widths[fit < 8 ? fit : 8];
  return masked && width == 6 ? 4 : width;
}

#if TT_DSP_ASM_ALL_REGS
/* The measuring walk's first `six` blocks of 6 (staged_walk's sixes) by tt_dsp_pw_rows6x,
 * in chunks of as many blocks as the staging holds beside the widened row (co / 2 words)
 * and a dummy row's sums (6 words a block), where that is three or more (fewer: 0 columns
 * done, the blocks go one by one as before). Returns the columns done (a multiple of 6). */
static __attribute__((noinline)) int32_t sixes_by_rows(const pointwise *a, int32_t six,
                                                       const tt_keep *keep, uint32_t *top,
                                                       tt_dsp_word *stage) {
  const int32_t co = a->co, ci = a->ci, rows = a->rows, block = 3 * co;
  const int32_t fit = (TT_GRAD_DSP_STAGE_BYTES / 4 - co / 2) / (block + 6);
  if (fit < 3 || six < 3) return 0;
  const int32_t n0 = keep != 0 ? keep->n0 : 0, n1 = keep != 0 ? keep->n1 : 0;
  /* the rows kept at a0, at a1, and not kept: [at[s], at[s + 1]) */
  const int32_t at[4] = {0, n0 < rows ? n0 : rows, n1 < rows ? n1 : rows, rows};
  int32_t c0 = 0;
  pw_rows6x_args x;
  x.m = *top, x.skip = -(co >> 2) & 7, x.co = co, x.stage = stage;
  for (int32_t left = six, k = (six + fit - 1) / fit; left > 0; --k) {
    const int32_t nb = (left + k - 1) / k;                  /* the chunks as even as can be */
    for (int32_t b = 0; b < nb; ++b) stage_columns(a, c0 + 6 * b, 6, 6, stage + b * block);
    x.send = x.wide = stage + nb * block;
    for (int32_t s = 0; s < 3; ++s) {
      if (at[s + 1] <= at[s]) continue;
      x.g = a->dy + at[s] * co, x.gend = a->dy + at[s + 1] * co;
      x.kept = s == 0 ? keep->a0 + c0 : s == 1 ? keep->a1 + c0 : (int32_t *)x.wide + co / 2;
      x.rowstep = (s < 2 ? 4 * ci : 0) - 24 * nb;
      x.m = tt_dsp_pw_rows6x(&x);
    }
    c0 += 6 * nb, left -= nb;
  }
  *top = x.m;
  return c0;
}

/* The chunk of outputs tt_dsp_pw_rows6h's walk takes for `rows` rows: the largest multiple
 * of 16 (four groups, the kernel's loop) whose rows' h (rows n / 2 words) and one block of
 * 6 columns (3 n words) fit the staging, at most co (0: not 16 fit). */
static int32_t h_chunk(int32_t rows, int32_t co) {
  const int32_t n = (2 * (TT_GRAD_DSP_STAGE_BYTES / 4) / (rows + 6)) & ~15;
  return n < co ? n : co;
}

/* The rows' h = dy * mult of outputs [o0, o0 + n) into H, row p's n / 2 words at p n / 2:
 * group g's [h(o), h(o + 2)] and [h(o + 1), h(o + 3)] (o = o0 + 4 g), a dy word's two
 * SXTB16 lanes times the multipliers' (SMULBB, SMULTT; |dy| <= 128, 0 <= mult <= 256: an
 * int16), the rows in the inner loop in assembly (15 instructions per four dy where gcc 12's
 * took 18: it rebuilds the products from the multipliers' halves). */
static void stage_h(const pointwise *a, int32_t o0, int32_t n, tt_dsp_word *H) {
  const int32_t co = a->co;
  for (int32_t g = 0; g < (n >> 2); ++g) {
    const int16_t *const m = a->mult + o0 + 4 * g;
    const uint32_t m02 = (uint16_t)m[0] | ((uint32_t)(uint16_t)m[2] << 16);
    const uint32_t m13 = (uint16_t)m[1] | ((uint32_t)(uint16_t)m[3] << 16);
    const int8_t *d = a->dy + o0 + 4 * g, *const end = d + a->rows * co;
    tt_dsp_word *t = H + 2 * g;
    uint32_t v, e, f;
    __asm__ volatile("1:\n\t"
                     "ldr %[v], [%[d]]\n\tadd %[d], %[d], %[co]\n\t"
                     "sxtb16 %[e], %[v]\n\tsxtb16 %[f], %[v], ror #8\n\t"
                     "smultt %[v], %[e], %[m02]\n\tsmulbb %[e], %[e], %[m02]\n\t"
                     "pkhbt %[e], %[e], %[v], lsl #16\n\t"
                     "smultt %[v], %[f], %[m13]\n\tsmulbb %[f], %[f], %[m13]\n\t"
                     "pkhbt %[f], %[f], %[v], lsl #16\n\t"
                     "strd %[e], %[f], [%[t]]\n\tadd %[t], %[t], %[hb]\n\t"
                     "cmp %[d], %[end]\n\tbne 1b\n\t"
                     : [v] "=&r"(v), [e] "=&r"(e), [f] "=&r"(f), [d] "+r"(d), [t] "+r"(t)
                     : [co] "r"(co), [m02] "r"(m02), [m13] "r"(m13), [hb] "r"(2 * n),
                       [end] "r"(end)
                     : "cc", "memory");
  }
}

/* Columns [c0, c0 + 6) (c0 + 6 <= k: the filter's first part, w_lo) of outputs [o0, o0 + n)
 * unmultiplied into a block of 6 (stage_columns' layout: group g of column j the words at
 * 2 (6 g + j), [w(o), w(o + 2)] and [w(o + 1), w(o + 3)]): two outputs' words of columns
 * 0-3 packed first (PKHBT, PKHTB), so that four SXTB16 give the four columns' words
 * (one_row's order), and columns 4 and 5 from two halfwords (no byte past column 5 is
 * read): 19 instructions per 12 weights and the loops', where SMULxy a weight took about
 * 3.4 a weight. */
static void stage_w6(const pointwise *a, int32_t c0, int32_t o0, int32_t n, tt_dsp_word *W) {
  const int32_t st = a->k;
  const int8_t *s = a->w_lo + c0 + o0 * st;
  for (tt_dsp_word *const end = W + 3 * n; W != end; W += 12, s += 4 * st) {
    for (int32_t h = 0; h < 2; ++h) {           /* outputs o + h and o + h + 2 */
      const int8_t *const p = s + h * st, *const q = p + 2 * st;
      uint16_t u0, u1;
      memcpy(&u0, p + 4, 2);
      memcpy(&u1, q + 4, 2);
      const uint32_t e = tt_dsp_load4(p), f = tt_dsp_load4(q);
      const uint32_t lo = tt_dsp_low_halves(e, f), hi = tt_dsp_high_halves(e, f);
      const uint32_t u = tt_dsp_low_halves(u0, u1);
      W[h] = __sxtb16(lo), W[2 + h] = tt_dsp_sxtb16_odd(lo);
      W[4 + h] = __sxtb16(hi), W[6 + h] = tt_dsp_sxtb16_odd(hi);
      W[8 + h] = __sxtb16(u), W[10 + h] = tt_dsp_sxtb16_odd(u);
    }
  }
}

/* sixes_by_h at co = 8 (MCUNet's 16->8 @64x64, where staged_walk's blocks of 8 by
 * tt_dsp_pw_rows8 were 1.77 a MAC with the rule): every row kept, without probes, ci a
 * multiple of 8 whose staging (4 ci words) fits: every column by tt_dsp_pw_rows_co8, the
 * rows kept at a0, then at a1. Returns the columns done (ci; 0: not this walk). */
static __attribute__((noinline)) int32_t rows_co8(const pointwise *a, const tt_keep *keep,
                                                  uint32_t *top, tt_dsp_word *stage) {
  const int32_t ci = a->ci, rows = a->rows, e0 = keep->n0 < rows ? keep->n0 : rows;
  if (keep->probes > 0 || (ci & 7) != 0 || ci > TT_GRAD_DSP_STAGE_BYTES / 16) return 0;
  for (int32_t c0 = 0; c0 < ci; c0 += 2) stage_columns(a, c0, 2, 2, stage + 4 * c0);
  pw_rows_co8_args x = {a->dy, a->dy + 8 * e0, stage, stage + 4 * ci, keep->a0, *top};
  if (e0 > 0) x.m = tt_dsp_pw_rows_co8(&x);
  if (rows > e0) x.g = x.gend, x.gend = a->dy + 8 * rows, x.kept = keep->a1,
                 x.m = tt_dsp_pw_rows_co8(&x);
  *top = x.m;
  return ci;
}

/* The measuring walk's first blocks of 6 by tt_dsp_pw_rows6h: the unmasked measuring walk
 * (sixes: staged_walk's blocks of 6, or where it has none, from 5 rows on, every whole six)
 * that keeps every row (keep->n1 >= rows: the partial sums go there between chunks of
 * outputs) without probes, co a multiple of 16, the outputs in chunks of 64 or more
 * (h_chunk; chunks of 32 at 36 rows: PD 64->128 @6x6 +1.9%) or in one; a split filter's
 * first part only (its columns [0, k): stage_w6). Returns the columns done (0: not this
 * walk; staged_walk's blocks do the rest). */
static __attribute__((noinline)) int32_t sixes_by_h(const pointwise *a, int32_t sixes,
                                                    const tt_keep *keep, uint32_t *top,
                                                    tt_dsp_word *stage) {
  const int32_t co = a->co, rows = a->rows, most = h_chunk(rows, co);
  if (co == 8) return rows_co8(a, keep, top, stage);         /* a tail call, as below */
  if (keep->probes > 0 || (co & 15) != 0 || (most < 64 && most != co))
    /* staged_walk's sixes_by_rows where it would have called it (a tail call: its frame
     * is not under this one's) */
    return sixes >= 18 && co >= 16 && keep->probes == 0
               ? sixes_by_rows(a, sixes / 6, keep, top, stage) : 0;
  uint32_t cols = (uint32_t)(sixes >= 6 ? sixes : rows >= 5 ? a->ci : 0);
  if ((uint32_t)a->k < cols) cols = (uint32_t)a->k;     /* w_lo's columns only */
  const int32_t end = (int32_t)(cols / 6u * 6u), e0 = keep->n0 < rows ? keep->n0 : rows;
  pw_rows6h_args x;
  x.m = *top, x.step = 4 * a->ci;
  for (int32_t o0 = 0; o0 < co && end > 0; o0 += most) {
    const int32_t n = co - o0 < most ? co - o0 : most, half = n >> 1;
    stage_h(a, o0, n, stage);
    x.stage = stage + rows * half, x.send = x.stage + 3 * n;
    x.flags = (o0 > 0 ? 1 : 0) | (o0 + n == co ? 2 : 0);
    for (int32_t c0 = 0; c0 < end; c0 += 6) {
      stage_w6(a, c0, o0, n, (tt_dsp_word *)x.stage);
      for (int32_t s = 0, p = 0; s < 2; p = e0, ++s) {
        const int32_t q = s == 0 ? e0 : rows;
        if (q <= p) continue;
        /* the rows kept at a0 (rows [0, e0)), then at a1 (the rest) */
        x.h = stage + p * half, x.hend = stage + q * half,
        x.kept = (s == 0 ? keep->a0 : keep->a1) + c0;
        x.m = tt_dsp_pw_rows6h(&x);
      }
    }
  }
  *top = x.m;
  return end;
}
#endif


/* The staged walk of a layer tt_dsp_pointwise_input_grad_s8 has checked and given to it (its
 * own frame: the staging on the stack is not under the unstaged rows' frames). */
static __attribute__((noinline)) int staged_walk(const int8_t *dy, const uint8_t *mask,
                                                 int32_t mask_at, int32_t rows, int32_t co,
                                                 const int8_t *w_lo, int32_t k,
                                                 const int8_t *w_hi, int32_t ci,
                                                 const int16_t *mult, const tt_keep *keep,
                                                 uint32_t *amax, tt_rounder *r, int8_t *dx) {
  const int32_t groups = (co + 3) >> 2;
  const int32_t CB = block_width(co, mask != 0);
  tt_dsp_word stage[TT_GRAD_DSP_STAGE_BYTES / 4] __attribute__((aligned(8)));
  const int stochastic = r != 0 && r->stochastic && !r->exact;
  /* the rows' stream states after the staged block, where they fit (one word a row): one
   * jump a row instead of one a row and block (about 30 instructions each; 3 a draw where
   * the call makes too few jumps to build the tables) */
  const int32_t staged = 2 * groups * CB;
  uint32_t *const states =
      stochastic && ci > CB && TT_GRAD_DSP_STAGE_BYTES / 4 - staged >= rows ? stage + staged : 0;
  const pointwise a = {dy, mask, mask_at, rows, co, groups, w_lo, w_hi, k, ci, mult, states};
  static const block_fn blocks[2][2][9] = {
      {{0, block1_0, block2_0, block3_0, block4_0, 0, block6_0, 0, block8_0},
       {0, block1_1, block2_1, block3_1, block4_1, 0, 0, 0, block8_1}},
      {{0, block1_0_r, block2_0_r, block3_0_r, block4_0_r, 0, block6_0_r, 0, block8_0_r},
       {0, block1_1_r, block2_1_r, block3_1_r, block4_1_r, 0, 0, 0, block8_1_r}}};
  const block_fn fn = blocks[r != 0][mask != 0][CB];
  static const probes_fn probing[2][9] = {
      {0, probes1_0, probes2_0, probes3_0, probes4_0, 0, probes6_0, 0, probes8_0},
      {0, probes1_1, probes2_1, probes3_1, probes4_1, 0, 0, 0, probes8_1}};
  const probes_fn probes = r == 0 && amax != 0 && keep != 0 && keep->probes > 0
                               ? probing[mask != 0][CB] : 0;
  uint32_t top = 0;
#if TT_DSP_ASM_ALL_REGS
  /* row_major8 neither reads nor writes keep's sums nor runs its probes, and need not: it
   * runs only when stochastic (r != 0), a rounding walk, where block() drops keep too
   * (`if (rounds) keep = 0`) and probes above need r == 0 */
  if (stochastic && r->times == 1 && mask == 0 && CB == 8 && (co & 7) == 0 && ci >= 8 &&
      (ci & 7) == 0 && groups * ci <= TT_GRAD_DSP_STAGE_BYTES / 8) {
    for (int32_t c0 = 0; c0 < ci; c0 += 8) stage_columns(&a, c0, 8, 8, stage + 2 * groups * c0);
    top = row_major8(&a, stage, ci >> 3, r, dx, amax != 0 ? 0u : 0x7FFFFFFFu);
    if (amax != 0) *amax = top;
    return 1;
  }
#endif
  uint32_t start = stochastic ? r->rng : 0u;          /* the stream at (0, c0) */
  tt_gdsp_jumper skip;                                /* over a row's other ci - nc draws */
  skip.n = -1;
  /* the measuring walk of unmasked blocks of 8 (co a multiple of 8) in blocks of 6 up to
   * `sixes`, each walked by tt_dsp_pw_rows6 (0.78 a MAC against round 21's first_rows8's 0.89), then
   * blocks of 8: (ci mod 6) / 2 of them where ci is even (32 columns: 6, 6, 6, 6, 8; none
   * short of a block but where ci is 2, 4 or 10), or at ci = 4 mod 6 from co 16 on one
   * block of 4 (40 columns: 6 x 6, 4; below). From 5 rows and probes on: a third more
   * blocks, each staged and called, and the staging dearer (3.4 a weight against 3.1 at 8),
   * but rows6's 0.78 a MAC against rows8's 0.87 pays for them (on paper) from about 4 rows (round 22
   * chose 10: the optimistic passes of 2-4 kept rows and 4-5 probes at 3x3 and 4x4 were
   * 0.3-0.5% slower in blocks of 6 against first_rows8; against tt_dsp_pw_rows8, pwig30c:
   * PD 256->256 @3x3 one pass 735,280 -> 700,080, its two passes -1.3%, MCUNet's 4x4 two
   * passes -1.3 to -1.8%; below 5 no measured row changes). */
  const int32_t sixes = TT_DSP_ASM_ALL_REGS && r == 0 && mask == 0 && CB == 8 &&
                                (co & 7) == 0 && rows + (probes != 0 ? keep->probes : 0) >= 5
                            ? ci - (ci % 6 == 4 && co >= 16 ? 4 : 8 * ((ci % 6) >> 1)) : 0;
  block_fn walk = sixes >= 6 ? block6_0 : fn;
  probes_fn probe = sixes >= 6 ? probes6_0 : probes;
  int32_t c0 = 0;
#if TT_DSP_ASM_ALL_REGS
  /* a one-pass walk of few rows: its blocks of 6 with the multiplier on dy (sixes_by_h,
   * which falls back to sixes_by_rows by a tail call); else three or more blocks of 6 row by
   * row, where they fit (sixes_by_rows); not with probes, whose calls under sixes_by_rows'
   * frame would deepen the stack's high-water (this path: tflite_train/codegen/program.py
   * stage_on_stack) by about 140 B. One call site: two cost the block loop below 40-760
   * instructions a two-pass row (pwig31: gcc's registers) */
  const int hwalk = r == 0 && mask == 0 && amax != 0 && keep != 0 && keep->n1 >= rows;
  if (hwalk || (sixes >= 18 && amax != 0 && co >= 16 && probes == 0))
    c0 = (hwalk ? sixes_by_h : sixes_by_rows)(&a, hwalk ? sixes : sixes / 6, keep, &top, stage);
#endif
  for (int32_t w = sixes >= 6 ? 6 : CB; c0 < ci; c0 += w) {
    /* ci = 4 mod 6 and co >= 16: a last block of 4 rather than two of 8 after one six
     * fewer (64->64 @12x12: blocks of 8 0.96 a MAC, of 6 0.83, the block of 4 1.15; at co
     * 8, 16->8 @64x64, the rows' own work made 6, 6, 4 2.5% slower than 8, 8). At ci = 2
     * mod 6 one block of 8: round 22 took two of 4 at co >= 32 (32->64 @12x12: 1.012 ->
     * 0.999 a MAC against first_rows8), but tt_dsp_pw_rows8 and the eight columns' one
     * staging loop make the 8 faster again (pwig30: 32->32 @24x24 600,920 -> 597,640,
     * 32->64 @12x12 269,240 -> 268,760). Only after sixes: a walk of CB 6 (co 293-340 unmasked) keeps its own blocks (its
     * rounding walks have no copy of block4_0) */
    if (sixes >= 6 && w == 6 && c0 + 6 > sixes &&
        ci - c0 == 4)
      w = 4, walk = block4_0, probe = probes != 0 ? probes4_0 : 0;
    else if (w == 6 && c0 + 6 > sixes)
      w = CB, walk = fn, probe = probes;
    const int32_t nc = ci - c0 < w ? ci - c0 : w;
    stage_columns(&a, c0, nc, w, stage);
    if (stochastic && states == 0) {
      r->rng = start;
      start = tt_gdsp_skip(start, nc);
      if (skip.n != ci - nc)       /* the blocks' jumps, then the last block's if it is short */
        tt_gdsp_jump_init(&skip, ci - nc, (rows - 1) * (nc == CB ? ci / CB : 1));
    } else if (stochastic && c0 == 0) {
      tt_gdsp_jump_init(&skip, ci - nc, rows - 1);          /* the first block's jumps */
    }
    walk(&a, stage, c0, nc, keep, amax != 0 ? &top : 0, r, &skip, dx);
    if (probes != 0) top = probe(&a, stage, keep, top);
  }
  if (amax != 0) *amax = top;
  return 1;
}

int tt_dsp_pointwise_input_grad_s8(const int8_t *dy, const uint8_t *mask, int32_t mask_at,
                                   int32_t rows,
                                   int32_t co, const int8_t *w_lo, int32_t k,
                                   const int8_t *w_hi, int32_t ci, const int16_t *mult,
                                   const tt_keep *keep, uint32_t *amax, tt_rounder *r,
                                   int8_t *dx) {
  if (rows < 1) return 0;
  for (int32_t o = 0; o < co; ++o)
    if (mult[o] < 0 || mult[o] > (1 << TT_GRAD_MAX_SHIFT)) return 0;
  /* a call keeps (and measures), or rounds (and may measure: the optimistic pass) */
  if (r != 0 && keep != 0) return 0;
  /* staging or not, by instructions per weight (tenths; the loops' counts, checked on the
   * rig): the staging 36 and 8.4 a row; unstaged (tt_input_grad_rows_dsp.c) 35 per two rows,
   * 23 a last odd row: 2 and 3 rows go unstaged, 4 and more staged (a mask makes the staged
   * rows cheaper still). One row never paid for the staging (MCUNet's classifier: 7.8 a MAC
   * against the portable code's 5.2; unstaged 17.6 -> 8.2 K instructions), nor do a few
   * (MCUNet's blocks.13.pointwise2 recomputes 3 of 16 positions: 2.632 -> 2.575 M). Each
   * walk is a call in tail position: neither frame is under the other's. */
  /* the optimistic pass's probes (tt_keep) are rows of the staged walk only: with four or
   * more, staging is the cheaper (no probes in the unstaged walk) */
  const int32_t probes = keep != 0 && amax != 0 ? keep->probes : 0;
  const int can_stage = block_width(co, mask != 0) > 0 && rows + probes >= 2;
  const int32_t unstaged = 35 * (rows >> 1) + 23 * (rows & 1);
  if (probes == 0 && (!can_stage || unstaged < 36 + 84 * rows / 10) && tt_dsp_rows_fit(co))
    return tt_dsp_pointwise_input_grad_rows_s8(dy, mask, mask_at, rows, co, w_lo, k, w_hi, ci,
                                               mult, keep, amax, r, dx);
  if (!can_stage) return 0;
  return staged_walk(dy, mask, mask_at, rows, co, w_lo, k, w_hi, ci, mult, keep, amax, r, dx);
}

#else
typedef int tt_input_grad_dsp_unused;     /* ISO C: a translation unit is not empty */
#endif
