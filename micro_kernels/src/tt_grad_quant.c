/* Int8 gradients: the quantization rule (include/tt_kernels.h) and the int16 multipliers
 * that fold per-channel weight scales into the layers' integer input gradients. */
#include "tt_common.h"
#include "tt_grad_dsp.h"

#if TT_GRAD_DSP
#include "tt_dsp_common.h"
#endif

#if TT_GRAD_DSP && TT_DSP_ASM_ALL_REGS
/* tt_round_stochastic (times 1) over n accumulators, n a positive multiple of 4, in
 * assembly: returns the stream's state after the n draws. gcc 12 compiles the C rule to 9
 * instructions an element and 4 of loop per four (10 an element: the load, the draw's three
 * EORs, BIC, UMULL, SMLAL, ASR, STRB); here one LDM takes four sums, the four bytes go out
 * in one word (three BFIs and a STR for four STRBs), and the loop's test is once per eight:
 * 68 instructions per eight elements. Each element: the draw, the noise's two words (BIC,
 * UMULL by 2^hi_shift), the sum times the multiplier onto them (SMLAL), the high word's
 * arithmetic shift; a sum's register is the next element's high word once its SMLAL has
 * read it. Same bits: the same 64-bit sums and draws in the same order. The four sums are
 * pinned to ascending registers (LDM's list); the loop takes thirteen registers. */
#define TT_GQ_FOUR                                                                          \
  "ldmia %[src]!, {%[a0], %[a1], %[a2], %[a3]}\n\t" TT_GDSP_RULE0("a0", "h")                  \
  TT_GDSP_RULE("a1", "a0", "h", "8") TT_GDSP_RULE("a2", "a0", "h", "16")                        \
  TT_GDSP_RULE("a3", "a0", "h", "24") "str %[h], [%[dst]], #4\n\t"
#define TT_GQ_ARGS                                                                          \
  : [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [x] "+r"(x),           \
    [l] "=&r"(l), [h] "=&r"(h), [src] "+r"(acc), [dst] "+r"(out)                           \
  : [sc] "r"(sc), [rr] "r"(r), [hs] "r"(hi_shift), [end] "r"(end)                          \
  : "cc", "memory"
static __attribute__((noinline)) TT_DSP_ASM_FN uint32_t
round_fours(const int32_t *acc, int32_t n, int8_t *out, uint32_t x, int32_t r,
            int32_t hi_shift) {
  register int32_t a0 __asm__("r8"), a1 __asm__("r10"), a2 __asm__("r11"), a3 __asm__("r12");
  uint32_t l, h;
  const uint32_t sc = (uint32_t)1 << hi_shift;        /* 2^(noise_shift - 8) */
  const int32_t *const end = acc + n;
  if (n & 4) __asm__ volatile(TT_GQ_FOUR TT_GQ_ARGS);
  if (acc != end) __asm__ volatile("1:\n\t" TT_GQ_FOUR TT_GQ_FOUR
                                   "cmp %[src], %[end]\n\tbne 1b\n\t" TT_GQ_ARGS);
  return x;
}
#undef TT_GQ_FOUR
#undef TT_GQ_ARGS

/* tt_round_grads' rule to nearest where hi_shift > 0 (times 1) over n accumulators, n a
 * positive multiple of 4, in assembly: one LDM takes four sums, each is SMMLA and ASR
 * (TT_GDSP_NEAR), the bytes go out in one word (three BFIs and a STR): 28 instructions per
 * eight where gcc 12's C loop takes about 7 an element. Same bits: the same high words plus
 * up, the same shift. */
#define TT_GQ_NEAR_FOUR                                                                     \
  "ldmia %[src]!, {%[a0], %[a1], %[a2], %[a3]}\n\t" TT_GDSP_NEAR0("a0", "h")                 \
  TT_GDSP_NEAR("a1", "h", "8") TT_GDSP_NEAR("a2", "h", "16") TT_GDSP_NEAR("a3", "h", "24")     \
  "str %[h], [%[dst]], #4\n\t"
#define TT_GQ_NEAR_ARGS                                                                     \
  : [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [h] "=&r"(h),           \
    [src] "+r"(acc), [dst] "+r"(out)                                                       \
  : [up] "r"(up), [rr] "r"(r), [hs] "r"(hi_shift), [end] "r"(end)                          \
  : "cc", "memory"
static __attribute__((noinline)) TT_DSP_ASM_FN void
round_fours_nearest(const int32_t *acc, int32_t n, int8_t *out, int32_t r, int32_t hi_shift) {
  register int32_t a0 __asm__("r8"), a1 __asm__("r10"), a2 __asm__("r11"), a3 __asm__("r12");
  uint32_t h;
  const int32_t up = (int32_t)1 << (hi_shift - 1);
  const int32_t *const end = acc + n;
  if (n & 4) __asm__ volatile(TT_GQ_NEAR_FOUR TT_GQ_NEAR_ARGS);
  if (acc != end) __asm__ volatile("1:\n\t" TT_GQ_NEAR_FOUR TT_GQ_NEAR_FOUR
                                   "cmp %[src], %[end]\n\tbne 1b\n\t" TT_GQ_NEAR_ARGS);
}
#undef TT_GQ_NEAR_FOUR
#undef TT_GQ_NEAR_ARGS

/* round_fours_nearest eight at a time (pwig30), a whole assembly function: one LDM takes
 * eight sums into r0-r7, each SMMLA and ASR in place, the bytes BFI'd into r0 and r4, two
 * STRs (not STRD: out may be only byte-aligned), the loop's test once per sixteen: 52
 * instructions per sixteen where round_fours_nearest takes 56 (a second LDM per eight, the
 * loop's test per eight), 3.25 an element against 3.5. The multiplier r11, 2^(hi_shift -
 * 1) r10, hi_shift r12 (the fifth argument, on the stack), src r8, dst r9, end lr. Same
 * bits: the same high words plus up, the same shift, the same bytes in the same order. n a
 * positive multiple of 8. */
#define TT_GQ_NEAR_WORD(a, b, c, d)                                                         \
  "  smmla " a ", " a ", r11, r10\n  asr " a ", " a ", r12\n"                                  \
  "  smmla " b ", " b ", r11, r10\n  asr " b ", " b ", r12\n  bfi " a ", " b ", #8, #8\n"       \
  "  smmla " c ", " c ", r11, r10\n  asr " c ", " c ", r12\n  bfi " a ", " c ", #16, #8\n"      \
  "  smmla " d ", " d ", r11, r10\n  asr " d ", " d ", r12\n  bfi " a ", " d ", #24, #8\n"      \
  "  str " a ", [r9], #4\n"
#define TT_GQ_NEAR_EIGHT                                                                    \
  "  ldm r8!, {r0-r7}\n" TT_GQ_NEAR_WORD("r0", "r1", "r2", "r3")                              \
  TT_GQ_NEAR_WORD("r4", "r5", "r6", "r7")
__asm__(TT_DSP_ASM_ENTRY(tt_round_eights_nearest)
        "  ldr r12, [sp, #36]\n"
        "  mov r8, r0\n  mov r9, r2\n  mov r11, r3\n  add lr, r0, r1, lsl #2\n"
        "  movs r10, #1\n  sub r4, r12, #1\n  lsl r10, r10, r4\n"
        "  tst r1, #8\n  beq 1f\n"
        TT_GQ_NEAR_EIGHT
        "  cmp r8, lr\n  beq 2f\n"
        "1:\n" TT_GQ_NEAR_EIGHT TT_GQ_NEAR_EIGHT
        "  cmp r8, lr\n  bne 1b\n"
        "2:\n"
        "  pop {r4-r11, pc}\n"
        "  .size tt_round_eights_nearest, . - tt_round_eights_nearest\n"
        "  .text\n");
#undef TT_GQ_NEAR_EIGHT
#undef TT_GQ_NEAR_WORD
void tt_round_eights_nearest(const int32_t *acc, int32_t n, int8_t *out, int32_t r,
                             int32_t hi_shift);

/* tt_largest_magnitude over n accumulators, n a positive multiple of 8, in assembly:
 * max(top, the largest |v|). Each |v| <= m test is within's (tt_input_grad_dsp.c): (uint32_t)
 * (v + m) <= 2m, two instructions chained on the carry, an IT per two; a group of eight
 * where one fails takes the exact magnitudes (v ^ (v >> 31) minus v >> 31, an unsigned
 * compare: tt_magnitude's value) and m, 2m again. 25 instructions per eight where gcc 12's
 * C loop takes about 36 (4.5 an element: the one-pass depthwise rows' scan before the
 * rule). Same maximum: any |v| above m is taken exactly. */
#define TT_GQ_MAG(a)                                                                        \
  "eor %[x], %[" a "], %[" a "], asr #31\n\tsub %[x], %[x], %[" a "], asr #31\n\t"          \
  "cmp %[x], %[m]\n\tit hi\n\tmovhi %[m], %[x]\n\t"
#define TT_GQ_WITHIN4                                                                       \
  "add %[x], %[a0], %[m]\n\tcmp %[m2], %[x]\n\t"                                            \
  "itttt cs\n\taddcs %[x], %[a1], %[m]\n\tcmpcs %[m2], %[x]\n\t"                              \
  "addcs %[x], %[a2], %[m]\n\tcmpcs %[m2], %[x]\n\t"                                          \
  "itt cs\n\taddcs %[x], %[a3], %[m]\n\tcmpcs %[m2], %[x]\n\t"
static __attribute__((noinline)) TT_DSP_ASM_FN uint32_t
largest_eights(const int32_t *v, int32_t n, uint32_t top) {
  register int32_t a0 __asm__("r8"), a1 __asm__("r10"), a2 __asm__("r11"), a3 __asm__("r12");
  uint32_t x, m = top, m2 = 2u * top;
  const int32_t *const end = v + n;
  __asm__ volatile("1:\n\t"
                   "ldmia %[v]!, {%[a0], %[a1], %[a2], %[a3]}\n\t" TT_GQ_WITHIN4
                   "bcc 3f\n"
                   "2:\n\t"
                   "ldmia %[v]!, {%[a0], %[a1], %[a2], %[a3]}\n\t" TT_GQ_WITHIN4
                   "bcc 5f\n"
                   "4:\n\t"
                   "cmp %[v], %[end]\n\tbne 1b\n\t"
                   "b 6f\n"
                   "3:\n\t" TT_GQ_MAG("a0") TT_GQ_MAG("a1") TT_GQ_MAG("a2") TT_GQ_MAG("a3")
                   "lsl %[m2], %[m], #1\n\tb 2b\n"
                   "5:\n\t" TT_GQ_MAG("a0") TT_GQ_MAG("a1") TT_GQ_MAG("a2") TT_GQ_MAG("a3")
                   "lsl %[m2], %[m], #1\n\tb 4b\n"
                   "6:\n\t"
                   : [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3),
                     [x] "=&r"(x), [m] "+r"(m), [m2] "+r"(m2), [v] "+r"(v)
                   : [end] "r"(end)
                   : "cc", "memory");
  return m;
}
#undef TT_GQ_MAG
#undef TT_GQ_WITHIN4
#endif

void tt_rounder_begin(tt_rounder *q, uint32_t amax, float unit, const tt_update_state *state,
                      float *scale) {
  q->stochastic = state != 0;
  q->rng = state != 0 ? state->rng : 0u;
  q->exact = amax <= 127u;
  q->r = 0;
  q->times = 1;
  q->hi_shift = q->noise_shift = 0;
  q->half = 0;
  if (q->exact) {
    *scale = unit;
    return;
  }
  int32_t bits = 0;
  while (bits < 32 && (amax >> bits) != 0u) ++bits;
  const int32_t shift = bits + 23;                      /* 31 to 55 */
  /* 127 * 2^shift < 2^62; the quotient lies in [127 * 2^23, 127 * 2^24] */
  q->r = (int32_t)(((uint64_t)127u << shift) / amax);
  const int32_t wide = shift < 32 ? 32 : shift;         /* shift 31: acc doubled */
  q->times = shift < 32 ? 2 : 1;
  q->hi_shift = wide - 32;
  q->noise_shift = wide - 24;
  q->half = (int64_t)1 << (wide - 1);
  *scale = (unit * (float)amax) / 127.0f;
}

void tt_quantize_grad_s8(const int32_t *acc, int32_t n, float unit, tt_update_state *rounding,
                         int8_t *q, float *scale) {
  uint32_t top = 0u;
#if TT_GRAD_DSP && TT_DSP_ASM_ALL_REGS
  const int32_t eights = n & ~7;
  if (eights > 0) top = largest_eights(acc, eights, top);
  top = tt_largest_magnitude(acc + eights, n - eights, top);
#else
  top = tt_largest_magnitude(acc, n, top);
#endif
  tt_quantize_grad_s8_max(acc, n, top, unit, rounding, q, scale);
}

void tt_quantize_grad_s8_max(const int32_t *acc, int32_t n, uint32_t amax, float unit,
                             tt_update_state *rounding, int8_t *q, float *scale) {
  tt_rounder r;
  tt_rounder_begin(&r, amax, unit, rounding, scale);
  tt_round_grads(&r, acc, n, q);
  tt_rounder_end(&r, rounding);
}

void tt_round_grads(tt_rounder *q, const int32_t *acc, int32_t n, int8_t *out) {
  /* the rounder's fields in locals, one loop per case: q[i] stores may alias nothing the
   * compiler can prove, so the fields would be reloaded for every element */
  if (q->exact) {
    for (int32_t i = 0; i < n; ++i) out[i] = (int8_t)acc[i];
    return;
  }
  const int32_t times = q->times, r = q->r, hi_shift = q->hi_shift;
  if (!q->stochastic) {
    if (hi_shift > 0) {
      /* shift > 32, times 1: 2^(shift - 1) is a multiple of 2^32, so
       * (acc r + 2^(shift - 1)) >> shift = ((acc r >> 32) + 2^(hi_shift - 1)) >> hi_shift:
       * a multiply-high and an addition, no 64-bit sum */
      const int32_t up = (int32_t)1 << (hi_shift - 1);
#if TT_GRAD_DSP && TT_DSP_ASM_ALL_REGS
      const int32_t eights = n & ~7;
      if (eights > 0) {
        tt_round_eights_nearest(acc, eights, out, r, hi_shift);
        acc += eights, out += eights, n -= eights;
      }
      if (n >= 4) {
        round_fours_nearest(acc, 4, out, r, hi_shift);
        acc += 4, out += 4, n -= 4;
      }
#endif
      for (int32_t i = 0; i < n; ++i)
        out[i] = (int8_t)(((int32_t)(((int64_t)acc[i] * r) >> 32) + up) >> hi_shift);
      return;
    }
    const int64_t half = q->half;
    for (int32_t i = 0; i < n; ++i)
      out[i] = (int8_t)((int32_t)(((int64_t)tt_times(acc[i], times) * r + half) >> 32) >>
                        hi_shift);
    return;
  }
  if (times == 2) {
    q->rng = tt_round_stochastic(acc, n, out, q->rng, 2, r, hi_shift, q->noise_shift);
    return;
  }
  uint32_t x = q->rng;
#if TT_GRAD_DSP && TT_DSP_ASM_ALL_REGS
  const int32_t fours = n & ~3;
  if (fours > 0) {
    x = round_fours(acc, fours, out, x, r, hi_shift);
    acc += fours, out += fours, n -= fours;
  }
#endif
  q->rng = tt_round_stochastic(acc, n, out, x, 1, r, hi_shift, q->noise_shift);
}

int32_t tt_grad_shift(int32_t terms) {
  if (terms < 1) return -1;
  /* terms * 127 * 128 * 2^k < 2^31, as 64-bit integers */
  for (int32_t k = TT_GRAD_MAX_SHIFT; k >= 0; --k)
    if ((int64_t)terms * (127 * 128) << k < ((int64_t)1 << 31)) return k;
  return -1;
}

int16_t tt_grad_multiplier_s16(float scale, float scale_max, int32_t shift) {
  if (!(scale_max > 0.0f) || !(scale > 0.0f)) return 0;
  if (scale >= scale_max) return (int16_t)(1 << shift);     /* the ratio's bound, 1 */
  /* float32, in this order: the ratio (<= 1), times 2^shift (exact), plus one half; the
   * conversion truncates, a floor for the positive value */
  const float v = (scale / scale_max) * (float)(1 << shift) + 0.5f;
  return (int16_t)(int32_t)v;
}

float tt_grad_unit(float scale_max, int32_t shift) {
  return scale_max * (1.0f / (float)(1 << shift));
}
