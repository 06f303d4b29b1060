/* The DSP matrix product of the forward kernels (tt_fwd_dsp.h): staged int16 columns times
 * int8 filter rows with SMLAD, shared by the convolutions (pointwise and im2col), the fully
 * connected layers and the depthwise convolutions with a depth multiplier.
 *
 * One row (output channel) at a time against a block of P columns: a filter word is loaded
 * and sign-extended once ([w0, w2], [w1, w3]) and meets the P staged columns in 2P SMLADs;
 * the P accumulators share the row's requantization constants. Per four input elements and
 * P columns: one load and two extensions of weights, P double-word loads, 2P SMLADs.
 *
 * The row loop itself (sums from the bias, the groups, requantization and stores) is
 * assembly, tt_dsp_rows8/4/2/1, generated per block width: with 8 columns it needs every
 * register of the core, which gcc 12 cannot allocate (see tt_dsp_rows8). Assembly inside a
 * C file keeps the sources and build rules as they are; it is only compiled where
 * TT_FWD_DSP holds (Thumb-2 with the DSP extension), and the portable C99 stays the
 * reference it is tested against bit for bit. Hand-written, not copied: the instruction
 * sequences are the C above, register-allocated by hand. */
#include "tt_fwd_internal.h"

#if TT_FWD_DSP
#include <stddef.h>

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

/* The arguments of tt_dsp_rows8 besides its pointers, at the offsets its assembly reads. */
typedef struct {
  int32_t bias;           /*  0: every sum's start when part_in is NULL */
  int32_t b2, c, e;       /*  4, 8, 12: the row's tt_dsp_rq_params (when part_out is NULL) */
  int8_t *y;              /* 16: the first block's column 0's output */
  int32_t stride;         /* 20: bytes from one column's output to the next's */
  int32_t *part_in;       /* 24: the 8 sums' starts, or NULL (the bias) */
  int32_t *part_out;      /* 28: where the 8 sums go, or NULL: requantized into y */
  int32_t blocks;         /* 32: blocks of 8 columns, one after the other (1 with part_out) */
} tt_dsp_rows8_args;
typedef char tt_dsp_rows8_layout[offsetof(tt_dsp_rows8_args, blocks) == 32 ? 1 : -1];

/* void tt_dsp_rows8(const tt_dsp_rows8_args *a, const tt_dsp_word *s, const int8_t *w,
 *                   const int8_t *end): one filter row [w, end) (end - w a positive
 * multiple of 4: whole groups) times a->blocks blocks of 8 staged columns, the first at s,
 * each right after the one before. Per block, the sums start from a->part_in or a->bias and
 * end in a->part_out, or requantized by the one-multiply form (tt_dsp_rq; int8's whole
 * range: SSAT) into y + p * a->stride, y = a->y + 8 * a->stride * block.
 *
 * A function in assembly because its loop holds 14 values (8 sums, the two pointers, a
 * weight word's two sign-extended halves, a staged double word), every register the core
 * has: gcc 12 spills three of them from the C version (35 instructions a group instead of
 * 27 + the loop), and an asm statement with 14 register operands is "impossible" for it at
 * -O0/-O1/-Og (r7 is the frame pointer) and in some callers at -O2. Per group of four
 * weights: LDR, 2 SXTB16, 8 LDRD, 16 SMLAD (27 instructions, 32 MACs); per four groups the
 * loop's end (from the stack), CMP and BNE: 111 instructions per 128 MACs. The first group
 * of a block starts its sums from the bias as SMLAD's accumulator operand (no moves); the
 * other groups enter the four-group loop at the copy that leaves a multiple of four. Per
 * output 6.5 instructions (ADD, ADD, SMMLAR, ASR, SSAT, STRB, half the address's ADD), per
 * block about 20 more (the entry, the loop over blocks, saving the stage pointer), per
 * call about 12. */
__asm__(
    "  .section .text.tt_dsp_rows8,\"ax\",%progbits\n"
    "  .syntax unified\n"
    "  .thumb\n"
    "  .p2align 2\n"
    "  .global tt_dsp_rows8\n"
    "  .type tt_dsp_rows8, %function\n"
    "  .thumb_func\n"
    "tt_dsp_rows8:\n"
    "  push {r4-r11, lr}\n"
    "  sub sp, sp, #24\n"
    "  strd r0, r3, [sp]\n"
    "  str r2, [sp, #8]\n"
    "  ldr r12, [r0, #32]\n"
    "  str r12, [sp, #12]\n"
    "  ldr r12, [r0, #16]\n"
    "  str r12, [sp, #20]\n"
    "10:\n"
    "  ldr r0, [sp]\n"
    "  ldr r12, [r0, #24]\n"
    "  cmp r12, #0\n"
    "  beq 11f\n"
    "  ldm r12, {r4-r11}\n"
    "  b 12f\n"
    "11:\n"
    "  ldr r11, [r0]\n"
    "  ldr r0, [r2], #4\n"
    "  sxtb16 r3, r0, ror #8\n"
    "  sxtb16 r0, r0\n"
    "  ldrd r12, lr, [r1, #8]\n"
    "  smlad r5, r12, r0, r11\n"
    "  smlad r5, lr, r3, r5\n"
    "  ldrd r12, lr, [r1, #16]\n"
    "  smlad r6, r12, r0, r11\n"
    "  smlad r6, lr, r3, r6\n"
    "  ldrd r12, lr, [r1, #24]\n"
    "  smlad r7, r12, r0, r11\n"
    "  smlad r7, lr, r3, r7\n"
    "  ldrd r12, lr, [r1, #32]\n"
    "  smlad r8, r12, r0, r11\n"
    "  smlad r8, lr, r3, r8\n"
    "  ldrd r12, lr, [r1, #40]\n"
    "  smlad r9, r12, r0, r11\n"
    "  smlad r9, lr, r3, r9\n"
    "  ldrd r12, lr, [r1, #48]\n"
    "  smlad r10, r12, r0, r11\n"
    "  smlad r10, lr, r3, r10\n"
    "  ldrd r12, lr, [r1, #0]\n"
    "  smlad r4, r12, r0, r11\n"
    "  smlad r4, lr, r3, r4\n"
    "  ldrd r12, lr, [r1, #56]\n"
    "  smlad r11, r12, r0, r11\n"
    "  smlad r11, lr, r3, r11\n"
    "  adds r1, r1, #64\n"
    "12:\n"
    "  ldr r0, [sp, #4]\n"
    "  subs r0, r0, r2\n"
    "  beq 13f\n"
    "  and r0, r0, #12\n"
    "  cmp r0, #8\n"
    "  beq 3f\n"
    "  bhi 2f\n"
    "  cmp r0, #4\n"
    "  beq 4f\n"
    "1:\n"
    "  ldr r0, [r2], #4\n"
    "  sxtb16 r3, r0, ror #8\n"
    "  sxtb16 r0, r0\n"
    "  ldrd r12, lr, [r1, #8]\n"
    "  smlad r5, r12, r0, r5\n"
    "  smlad r5, lr, r3, r5\n"
    "  ldrd r12, lr, [r1, #16]\n"
    "  smlad r6, r12, r0, r6\n"
    "  smlad r6, lr, r3, r6\n"
    "  ldrd r12, lr, [r1, #24]\n"
    "  smlad r7, r12, r0, r7\n"
    "  smlad r7, lr, r3, r7\n"
    "  ldrd r12, lr, [r1, #32]\n"
    "  smlad r8, r12, r0, r8\n"
    "  smlad r8, lr, r3, r8\n"
    "  ldrd r12, lr, [r1, #40]\n"
    "  smlad r9, r12, r0, r9\n"
    "  smlad r9, lr, r3, r9\n"
    "  ldrd r12, lr, [r1, #48]\n"
    "  smlad r10, r12, r0, r10\n"
    "  smlad r10, lr, r3, r10\n"
    "  ldrd r12, lr, [r1, #56]\n"
    "  smlad r11, r12, r0, r11\n"
    "  smlad r11, lr, r3, r11\n"
    "  ldrd r12, lr, [r1], #64\n"
    "  smlad r4, r12, r0, r4\n"
    "  smlad r4, lr, r3, r4\n"
    "2:\n"
    "  ldr r0, [r2], #4\n"
    "  sxtb16 r3, r0, ror #8\n"
    "  sxtb16 r0, r0\n"
    "  ldrd r12, lr, [r1, #8]\n"
    "  smlad r5, r12, r0, r5\n"
    "  smlad r5, lr, r3, r5\n"
    "  ldrd r12, lr, [r1, #16]\n"
    "  smlad r6, r12, r0, r6\n"
    "  smlad r6, lr, r3, r6\n"
    "  ldrd r12, lr, [r1, #24]\n"
    "  smlad r7, r12, r0, r7\n"
    "  smlad r7, lr, r3, r7\n"
    "  ldrd r12, lr, [r1, #32]\n"
    "  smlad r8, r12, r0, r8\n"
    "  smlad r8, lr, r3, r8\n"
    "  ldrd r12, lr, [r1, #40]\n"
    "  smlad r9, r12, r0, r9\n"
    "  smlad r9, lr, r3, r9\n"
    "  ldrd r12, lr, [r1, #48]\n"
    "  smlad r10, r12, r0, r10\n"
    "  smlad r10, lr, r3, r10\n"
    "  ldrd r12, lr, [r1, #56]\n"
    "  smlad r11, r12, r0, r11\n"
    "  smlad r11, lr, r3, r11\n"
    "  ldrd r12, lr, [r1], #64\n"
    "  smlad r4, r12, r0, r4\n"
    "  smlad r4, lr, r3, r4\n"
    "3:\n"
    "  ldr r0, [r2], #4\n"
    "  sxtb16 r3, r0, ror #8\n"
    "  sxtb16 r0, r0\n"
    "  ldrd r12, lr, [r1, #8]\n"
    "  smlad r5, r12, r0, r5\n"
    "  smlad r5, lr, r3, r5\n"
    "  ldrd r12, lr, [r1, #16]\n"
    "  smlad r6, r12, r0, r6\n"
    "  smlad r6, lr, r3, r6\n"
    "  ldrd r12, lr, [r1, #24]\n"
    "  smlad r7, r12, r0, r7\n"
    "  smlad r7, lr, r3, r7\n"
    "  ldrd r12, lr, [r1, #32]\n"
    "  smlad r8, r12, r0, r8\n"
    "  smlad r8, lr, r3, r8\n"
    "  ldrd r12, lr, [r1, #40]\n"
    "  smlad r9, r12, r0, r9\n"
    "  smlad r9, lr, r3, r9\n"
    "  ldrd r12, lr, [r1, #48]\n"
    "  smlad r10, r12, r0, r10\n"
    "  smlad r10, lr, r3, r10\n"
    "  ldrd r12, lr, [r1, #56]\n"
    "  smlad r11, r12, r0, r11\n"
    "  smlad r11, lr, r3, r11\n"
    "  ldrd r12, lr, [r1], #64\n"
    "  smlad r4, r12, r0, r4\n"
    "  smlad r4, lr, r3, r4\n"
    "4:\n"
    "  ldr r0, [r2], #4\n"
    "  sxtb16 r3, r0, ror #8\n"
    "  sxtb16 r0, r0\n"
    "  ldrd r12, lr, [r1, #8]\n"
    "  smlad r5, r12, r0, r5\n"
    "  smlad r5, lr, r3, r5\n"
    "  ldrd r12, lr, [r1, #16]\n"
    "  smlad r6, r12, r0, r6\n"
    "  smlad r6, lr, r3, r6\n"
    "  ldrd r12, lr, [r1, #24]\n"
    "  smlad r7, r12, r0, r7\n"
    "  smlad r7, lr, r3, r7\n"
    "  ldrd r12, lr, [r1, #32]\n"
    "  smlad r8, r12, r0, r8\n"
    "  smlad r8, lr, r3, r8\n"
    "  ldrd r12, lr, [r1, #40]\n"
    "  smlad r9, r12, r0, r9\n"
    "  smlad r9, lr, r3, r9\n"
    "  ldrd r12, lr, [r1, #48]\n"
    "  smlad r10, r12, r0, r10\n"
    "  smlad r10, lr, r3, r10\n"
    "  ldrd r12, lr, [r1, #56]\n"
    "  smlad r11, r12, r0, r11\n"
    "  smlad r11, lr, r3, r11\n"
    "  ldrd r12, lr, [r1], #64\n"
    "  smlad r4, r12, r0, r4\n"
    "  smlad r4, lr, r3, r4\n"
    "  ldr r0, [sp, #4]\n"
    "  cmp r2, r0\n"
    "  bne 1b\n"
    "13:\n"
    "  ldr r0, [sp]\n"
    "  ldr r12, [r0, #28]\n"
    "  cmp r12, #0\n"
    "  beq 14f\n"
    "  stm r12, {r4-r11}\n"
    "  b 15f\n"
    "14:\n"
    "  str r1, [sp, #16]\n"
    "  ldrd r1, r2, [r0, #4]\n"
    "  ldr r3, [r0, #12]\n"
    "  ldr lr, [r0, #20]\n"
    "  ldr r12, [sp, #20]\n"
    "  add r0, r4, r2\n"
    "  add r0, r0, r4, asr #31\n"
    "  smmlar r0, r4, r1, r0\n"
    "  asr r0, r0, r3\n"
    "  ssat r0, #8, r0\n"
    "  strb r0, [r12]\n"
    "  add r0, r5, r2\n"
    "  add r0, r0, r5, asr #31\n"
    "  smmlar r0, r5, r1, r0\n"
    "  asr r0, r0, r3\n"
    "  ssat r0, #8, r0\n"
    "  strb r0, [r12, lr]\n"
    "  add r12, r12, lr, lsl #1\n"
    "  add r0, r6, r2\n"
    "  add r0, r0, r6, asr #31\n"
    "  smmlar r0, r6, r1, r0\n"
    "  asr r0, r0, r3\n"
    "  ssat r0, #8, r0\n"
    "  strb r0, [r12]\n"
    "  add r0, r7, r2\n"
    "  add r0, r0, r7, asr #31\n"
    "  smmlar r0, r7, r1, r0\n"
    "  asr r0, r0, r3\n"
    "  ssat r0, #8, r0\n"
    "  strb r0, [r12, lr]\n"
    "  add r12, r12, lr, lsl #1\n"
    "  add r0, r8, r2\n"
    "  add r0, r0, r8, asr #31\n"
    "  smmlar r0, r8, r1, r0\n"
    "  asr r0, r0, r3\n"
    "  ssat r0, #8, r0\n"
    "  strb r0, [r12]\n"
    "  add r0, r9, r2\n"
    "  add r0, r0, r9, asr #31\n"
    "  smmlar r0, r9, r1, r0\n"
    "  asr r0, r0, r3\n"
    "  ssat r0, #8, r0\n"
    "  strb r0, [r12, lr]\n"
    "  add r12, r12, lr, lsl #1\n"
    "  add r0, r10, r2\n"
    "  add r0, r0, r10, asr #31\n"
    "  smmlar r0, r10, r1, r0\n"
    "  asr r0, r0, r3\n"
    "  ssat r0, #8, r0\n"
    "  strb r0, [r12]\n"
    "  add r0, r11, r2\n"
    "  add r0, r0, r11, asr #31\n"
    "  smmlar r0, r11, r1, r0\n"
    "  asr r0, r0, r3\n"
    "  ssat r0, #8, r0\n"
    "  strb r0, [r12, lr]\n"
    "  add r12, r12, lr, lsl #1\n"
    "  str r12, [sp, #20]\n"
    "  ldr r1, [sp, #16]\n"
    "  ldr r2, [sp, #8]\n"
    "  ldr r3, [sp, #12]\n"
    "  subs r3, r3, #1\n"
    "  str r3, [sp, #12]\n"
    "  bne 10b\n"
    "15:\n"
    "  add sp, sp, #24\n"
    "  pop {r4-r11, pc}\n"
    "  .size tt_dsp_rows8, . - tt_dsp_rows8\n"
    "  .text\n");
__asm__(
    "  .section .text.tt_dsp_rows4,\"ax\",%progbits\n"
    "  .syntax unified\n"
    "  .thumb\n"
    "  .p2align 2\n"
    "  .global tt_dsp_rows4\n"
    "  .type tt_dsp_rows4, %function\n"
    "  .thumb_func\n"
    "tt_dsp_rows4:\n"
    "  push {r4-r11, lr}\n"
    "  sub sp, sp, #24\n"
    "  strd r0, r3, [sp]\n"
    "  str r2, [sp, #8]\n"
    "  ldr r12, [r0, #32]\n"
    "  str r12, [sp, #12]\n"
    "  ldr r12, [r0, #16]\n"
    "  str r12, [sp, #20]\n"
    "10:\n"
    "  ldr r0, [sp]\n"
    "  ldr r12, [r0, #24]\n"
    "  cmp r12, #0\n"
    "  beq 11f\n"
    "  ldm r12, {r4-r7}\n"
    "  b 12f\n"
    "11:\n"
    "  ldr r11, [r0]\n"
    "  ldr r0, [r2], #4\n"
    "  sxtb16 r3, r0, ror #8\n"
    "  sxtb16 r0, r0\n"
    "  ldrd r12, lr, [r1, #8]\n"
    "  smlad r5, r12, r0, r11\n"
    "  smlad r5, lr, r3, r5\n"
    "  ldrd r12, lr, [r1, #16]\n"
    "  smlad r6, r12, r0, r11\n"
    "  smlad r6, lr, r3, r6\n"
    "  ldrd r12, lr, [r1, #24]\n"
    "  smlad r7, r12, r0, r11\n"
    "  smlad r7, lr, r3, r7\n"
    "  ldrd r12, lr, [r1, #0]\n"
    "  smlad r4, r12, r0, r11\n"
    "  smlad r4, lr, r3, r4\n"
    "  adds r1, r1, #32\n"
    "12:\n"
    "  ldr r0, [sp, #4]\n"
    "  subs r0, r0, r2\n"
    "  beq 13f\n"
    "  and r0, r0, #12\n"
    "  cmp r0, #8\n"
    "  beq 3f\n"
    "  bhi 2f\n"
    "  cmp r0, #4\n"
    "  beq 4f\n"
    "1:\n"
    "  ldr r0, [r2], #4\n"
    "  sxtb16 r3, r0, ror #8\n"
    "  sxtb16 r0, r0\n"
    "  ldrd r12, lr, [r1, #8]\n"
    "  smlad r5, r12, r0, r5\n"
    "  smlad r5, lr, r3, r5\n"
    "  ldrd r12, lr, [r1, #16]\n"
    "  smlad r6, r12, r0, r6\n"
    "  smlad r6, lr, r3, r6\n"
    "  ldrd r12, lr, [r1, #24]\n"
    "  smlad r7, r12, r0, r7\n"
    "  smlad r7, lr, r3, r7\n"
    "  ldrd r12, lr, [r1], #32\n"
    "  smlad r4, r12, r0, r4\n"
    "  smlad r4, lr, r3, r4\n"
    "2:\n"
    "  ldr r0, [r2], #4\n"
    "  sxtb16 r3, r0, ror #8\n"
    "  sxtb16 r0, r0\n"
    "  ldrd r12, lr, [r1, #8]\n"
    "  smlad r5, r12, r0, r5\n"
    "  smlad r5, lr, r3, r5\n"
    "  ldrd r12, lr, [r1, #16]\n"
    "  smlad r6, r12, r0, r6\n"
    "  smlad r6, lr, r3, r6\n"
    "  ldrd r12, lr, [r1, #24]\n"
    "  smlad r7, r12, r0, r7\n"
    "  smlad r7, lr, r3, r7\n"
    "  ldrd r12, lr, [r1], #32\n"
    "  smlad r4, r12, r0, r4\n"
    "  smlad r4, lr, r3, r4\n"
    "3:\n"
    "  ldr r0, [r2], #4\n"
    "  sxtb16 r3, r0, ror #8\n"
    "  sxtb16 r0, r0\n"
    "  ldrd r12, lr, [r1, #8]\n"
    "  smlad r5, r12, r0, r5\n"
    "  smlad r5, lr, r3, r5\n"
    "  ldrd r12, lr, [r1, #16]\n"
    "  smlad r6, r12, r0, r6\n"
    "  smlad r6, lr, r3, r6\n"
    "  ldrd r12, lr, [r1, #24]\n"
    "  smlad r7, r12, r0, r7\n"
    "  smlad r7, lr, r3, r7\n"
    "  ldrd r12, lr, [r1], #32\n"
    "  smlad r4, r12, r0, r4\n"
    "  smlad r4, lr, r3, r4\n"
    "4:\n"
    "  ldr r0, [r2], #4\n"
    "  sxtb16 r3, r0, ror #8\n"
    "  sxtb16 r0, r0\n"
    "  ldrd r12, lr, [r1, #8]\n"
    "  smlad r5, r12, r0, r5\n"
    "  smlad r5, lr, r3, r5\n"
    "  ldrd r12, lr, [r1, #16]\n"
    "  smlad r6, r12, r0, r6\n"
    "  smlad r6, lr, r3, r6\n"
    "  ldrd r12, lr, [r1, #24]\n"
    "  smlad r7, r12, r0, r7\n"
    "  smlad r7, lr, r3, r7\n"
    "  ldrd r12, lr, [r1], #32\n"
    "  smlad r4, r12, r0, r4\n"
    "  smlad r4, lr, r3, r4\n"
    "  ldr r0, [sp, #4]\n"
    "  cmp r2, r0\n"
    "  bne 1b\n"
    "13:\n"
    "  ldr r0, [sp]\n"
    "  ldr r12, [r0, #28]\n"
    "  cmp r12, #0\n"
    "  beq 14f\n"
    "  stm r12, {r4-r7}\n"
    "  b 15f\n"
    "14:\n"
    "  str r1, [sp, #16]\n"
    "  ldrd r1, r2, [r0, #4]\n"
    "  ldr r3, [r0, #12]\n"
    "  ldr lr, [r0, #20]\n"
    "  ldr r12, [sp, #20]\n"
    "  add r0, r4, r2\n"
    "  add r0, r0, r4, asr #31\n"
    "  smmlar r0, r4, r1, r0\n"
    "  asr r0, r0, r3\n"
    "  ssat r0, #8, r0\n"
    "  strb r0, [r12]\n"
    "  add r0, r5, r2\n"
    "  add r0, r0, r5, asr #31\n"
    "  smmlar r0, r5, r1, r0\n"
    "  asr r0, r0, r3\n"
    "  ssat r0, #8, r0\n"
    "  strb r0, [r12, lr]\n"
    "  add r12, r12, lr, lsl #1\n"
    "  add r0, r6, r2\n"
    "  add r0, r0, r6, asr #31\n"
    "  smmlar r0, r6, r1, r0\n"
    "  asr r0, r0, r3\n"
    "  ssat r0, #8, r0\n"
    "  strb r0, [r12]\n"
    "  add r0, r7, r2\n"
    "  add r0, r0, r7, asr #31\n"
    "  smmlar r0, r7, r1, r0\n"
    "  asr r0, r0, r3\n"
    "  ssat r0, #8, r0\n"
    "  strb r0, [r12, lr]\n"
    "  add r12, r12, lr, lsl #1\n"
    "  str r12, [sp, #20]\n"
    "  ldr r1, [sp, #16]\n"
    "  ldr r2, [sp, #8]\n"
    "  ldr r3, [sp, #12]\n"
    "  subs r3, r3, #1\n"
    "  str r3, [sp, #12]\n"
    "  bne 10b\n"
    "15:\n"
    "  add sp, sp, #24\n"
    "  pop {r4-r11, pc}\n"
    "  .size tt_dsp_rows4, . - tt_dsp_rows4\n"
    "  .text\n");
__asm__(
    "  .section .text.tt_dsp_rows2,\"ax\",%progbits\n"
    "  .syntax unified\n"
    "  .thumb\n"
    "  .p2align 2\n"
    "  .global tt_dsp_rows2\n"
    "  .type tt_dsp_rows2, %function\n"
    "  .thumb_func\n"
    "tt_dsp_rows2:\n"
    "  push {r4-r11, lr}\n"
    "  sub sp, sp, #24\n"
    "  strd r0, r3, [sp]\n"
    "  str r2, [sp, #8]\n"
    "  ldr r12, [r0, #32]\n"
    "  str r12, [sp, #12]\n"
    "  ldr r12, [r0, #16]\n"
    "  str r12, [sp, #20]\n"
    "10:\n"
    "  ldr r0, [sp]\n"
    "  ldr r12, [r0, #24]\n"
    "  cmp r12, #0\n"
    "  beq 11f\n"
    "  ldm r12, {r4-r5}\n"
    "  b 12f\n"
    "11:\n"
    "  ldr r11, [r0]\n"
    "  ldr r0, [r2], #4\n"
    "  sxtb16 r3, r0, ror #8\n"
    "  sxtb16 r0, r0\n"
    "  ldrd r12, lr, [r1, #8]\n"
    "  smlad r5, r12, r0, r11\n"
    "  smlad r5, lr, r3, r5\n"
    "  ldrd r12, lr, [r1, #0]\n"
    "  smlad r4, r12, r0, r11\n"
    "  smlad r4, lr, r3, r4\n"
    "  adds r1, r1, #16\n"
    "12:\n"
    "  ldr r0, [sp, #4]\n"
    "  subs r0, r0, r2\n"
    "  beq 13f\n"
    "  and r0, r0, #12\n"
    "  cmp r0, #8\n"
    "  beq 3f\n"
    "  bhi 2f\n"
    "  cmp r0, #4\n"
    "  beq 4f\n"
    "1:\n"
    "  ldr r0, [r2], #4\n"
    "  sxtb16 r3, r0, ror #8\n"
    "  sxtb16 r0, r0\n"
    "  ldrd r12, lr, [r1, #8]\n"
    "  smlad r5, r12, r0, r5\n"
    "  smlad r5, lr, r3, r5\n"
    "  ldrd r12, lr, [r1], #16\n"
    "  smlad r4, r12, r0, r4\n"
    "  smlad r4, lr, r3, r4\n"
    "2:\n"
    "  ldr r0, [r2], #4\n"
    "  sxtb16 r3, r0, ror #8\n"
    "  sxtb16 r0, r0\n"
    "  ldrd r12, lr, [r1, #8]\n"
    "  smlad r5, r12, r0, r5\n"
    "  smlad r5, lr, r3, r5\n"
    "  ldrd r12, lr, [r1], #16\n"
    "  smlad r4, r12, r0, r4\n"
    "  smlad r4, lr, r3, r4\n"
    "3:\n"
    "  ldr r0, [r2], #4\n"
    "  sxtb16 r3, r0, ror #8\n"
    "  sxtb16 r0, r0\n"
    "  ldrd r12, lr, [r1, #8]\n"
    "  smlad r5, r12, r0, r5\n"
    "  smlad r5, lr, r3, r5\n"
    "  ldrd r12, lr, [r1], #16\n"
    "  smlad r4, r12, r0, r4\n"
    "  smlad r4, lr, r3, r4\n"
    "4:\n"
    "  ldr r0, [r2], #4\n"
    "  sxtb16 r3, r0, ror #8\n"
    "  sxtb16 r0, r0\n"
    "  ldrd r12, lr, [r1, #8]\n"
    "  smlad r5, r12, r0, r5\n"
    "  smlad r5, lr, r3, r5\n"
    "  ldrd r12, lr, [r1], #16\n"
    "  smlad r4, r12, r0, r4\n"
    "  smlad r4, lr, r3, r4\n"
    "  ldr r0, [sp, #4]\n"
    "  cmp r2, r0\n"
    "  bne 1b\n"
    "13:\n"
    "  ldr r0, [sp]\n"
    "  ldr r12, [r0, #28]\n"
    "  cmp r12, #0\n"
    "  beq 14f\n"
    "  stm r12, {r4-r5}\n"
    "  b 15f\n"
    "14:\n"
    "  str r1, [sp, #16]\n"
    "  ldrd r1, r2, [r0, #4]\n"
    "  ldr r3, [r0, #12]\n"
    "  ldr lr, [r0, #20]\n"
    "  ldr r12, [sp, #20]\n"
    "  add r0, r4, r2\n"
    "  add r0, r0, r4, asr #31\n"
    "  smmlar r0, r4, r1, r0\n"
    "  asr r0, r0, r3\n"
    "  ssat r0, #8, r0\n"
    "  strb r0, [r12]\n"
    "  add r0, r5, r2\n"
    "  add r0, r0, r5, asr #31\n"
    "  smmlar r0, r5, r1, r0\n"
    "  asr r0, r0, r3\n"
    "  ssat r0, #8, r0\n"
    "  strb r0, [r12, lr]\n"
    "  add r12, r12, lr, lsl #1\n"
    "  str r12, [sp, #20]\n"
    "  ldr r1, [sp, #16]\n"
    "  ldr r2, [sp, #8]\n"
    "  ldr r3, [sp, #12]\n"
    "  subs r3, r3, #1\n"
    "  str r3, [sp, #12]\n"
    "  bne 10b\n"
    "15:\n"
    "  add sp, sp, #24\n"
    "  pop {r4-r11, pc}\n"
    "  .size tt_dsp_rows2, . - tt_dsp_rows2\n"
    "  .text\n");
__asm__(
    "  .section .text.tt_dsp_rows1,\"ax\",%progbits\n"
    "  .syntax unified\n"
    "  .thumb\n"
    "  .p2align 2\n"
    "  .global tt_dsp_rows1\n"
    "  .type tt_dsp_rows1, %function\n"
    "  .thumb_func\n"
    "tt_dsp_rows1:\n"
    "  push {r4-r11, lr}\n"
    "  sub sp, sp, #24\n"
    "  strd r0, r3, [sp]\n"
    "  str r2, [sp, #8]\n"
    "  ldr r12, [r0, #32]\n"
    "  str r12, [sp, #12]\n"
    "  ldr r12, [r0, #16]\n"
    "  str r12, [sp, #20]\n"
    "10:\n"
    "  ldr r0, [sp]\n"
    "  ldr r12, [r0, #24]\n"
    "  cmp r12, #0\n"
    "  beq 11f\n"
    "  ldr r4, [r12]\n"
    "  b 12f\n"
    "11:\n"
    "  ldr r11, [r0]\n"
    "  ldr r0, [r2], #4\n"
    "  sxtb16 r3, r0, ror #8\n"
    "  sxtb16 r0, r0\n"
    "  ldrd r12, lr, [r1, #0]\n"
    "  smlad r4, r12, r0, r11\n"
    "  smlad r4, lr, r3, r4\n"
    "  adds r1, r1, #8\n"
    "12:\n"
    "  ldr r0, [sp, #4]\n"
    "  subs r0, r0, r2\n"
    "  beq 13f\n"
    "  and r0, r0, #12\n"
    "  cmp r0, #8\n"
    "  beq 3f\n"
    "  bhi 2f\n"
    "  cmp r0, #4\n"
    "  beq 4f\n"
    "1:\n"
    "  ldr r0, [r2], #4\n"
    "  sxtb16 r3, r0, ror #8\n"
    "  sxtb16 r0, r0\n"
    "  ldrd r12, lr, [r1], #8\n"
    "  smlad r4, r12, r0, r4\n"
    "  smlad r4, lr, r3, r4\n"
    "2:\n"
    "  ldr r0, [r2], #4\n"
    "  sxtb16 r3, r0, ror #8\n"
    "  sxtb16 r0, r0\n"
    "  ldrd r12, lr, [r1], #8\n"
    "  smlad r4, r12, r0, r4\n"
    "  smlad r4, lr, r3, r4\n"
    "3:\n"
    "  ldr r0, [r2], #4\n"
    "  sxtb16 r3, r0, ror #8\n"
    "  sxtb16 r0, r0\n"
    "  ldrd r12, lr, [r1], #8\n"
    "  smlad r4, r12, r0, r4\n"
    "  smlad r4, lr, r3, r4\n"
    "4:\n"
    "  ldr r0, [r2], #4\n"
    "  sxtb16 r3, r0, ror #8\n"
    "  sxtb16 r0, r0\n"
    "  ldrd r12, lr, [r1], #8\n"
    "  smlad r4, r12, r0, r4\n"
    "  smlad r4, lr, r3, r4\n"
    "  ldr r0, [sp, #4]\n"
    "  cmp r2, r0\n"
    "  bne 1b\n"
    "13:\n"
    "  ldr r0, [sp]\n"
    "  ldr r12, [r0, #28]\n"
    "  cmp r12, #0\n"
    "  beq 14f\n"
    "  str r4, [r12]\n"
    "  b 15f\n"
    "14:\n"
    "  str r1, [sp, #16]\n"
    "  ldrd r1, r2, [r0, #4]\n"
    "  ldr r3, [r0, #12]\n"
    "  ldr lr, [r0, #20]\n"
    "  ldr r12, [sp, #20]\n"
    "  add r0, r4, r2\n"
    "  add r0, r0, r4, asr #31\n"
    "  smmlar r0, r4, r1, r0\n"
    "  asr r0, r0, r3\n"
    "  ssat r0, #8, r0\n"
    "  strb r0, [r12]\n"
    "  add r12, r12, lr\n"
    "  str r12, [sp, #20]\n"
    "  ldr r1, [sp, #16]\n"
    "  ldr r2, [sp, #8]\n"
    "  ldr r3, [sp, #12]\n"
    "  subs r3, r3, #1\n"
    "  str r3, [sp, #12]\n"
    "  bne 10b\n"
    "15:\n"
    "  add sp, sp, #24\n"
    "  pop {r4-r11, pc}\n"
    "  .size tt_dsp_rows1, . - tt_dsp_rows1\n"
    "  .text\n");
typedef void tt_dsp_rows_fn(const tt_dsp_rows8_args *a, const tt_dsp_word *s, const int8_t *w,
                            const int8_t *end);
/* tt_dsp_rows4/2/1: the same for blocks of 4, 2 and 1 columns (the bias kept in r11). */
tt_dsp_rows_fn tt_dsp_rows8, tt_dsp_rows4, tt_dsp_rows2, tt_dsp_rows1;

/* acc[p] += sum over the n weights w[i] and the staged elements of column p; with `start`
 * the sums begin at `from` instead (the first group's SMLADs take it as their accumulator). */
static inline __attribute__((always_inline)) void mac(const tt_dsp_word *s, const int8_t *w,
                                                      int32_t n, const int32_t P,
                                                      int32_t acc[8], const int start,
                                                      int32_t from) {
  const int8_t *end = w + (n & ~3);
  if (P == 8 && w != end) {                        /* the whole groups in tt_dsp_rows8 */
    tt_dsp_rows8_args a = {from, 0, 0, 0, 0, 0, start ? 0 : acc, acc, 1};
    tt_dsp_rows8(&a, s, w, end);
    s += 16 * ((end - w) >> 2);
    w = end;
  } else if (start) {
    if (w != end) {
      mac_group(&s, tt_dsp_load4(w), P, acc, 1, from);
      w += 4;
    } else {
#pragma GCC unroll 8
      for (int32_t p = 0; p < P; ++p) acc[p] = from;
    }
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
  /* one segment of whole groups over blocks of 8: each block and row is one call */
  const int whole8 = P == 8 && n_hi == 0 && n > 0 && (n & 3) == 0;
  /* narrower blocks: the row in one call when it ends requantized there */
  tt_dsp_rows_fn *const narrow = P == 4 ? tt_dsp_rows4 : P == 2 ? tt_dsp_rows2 : tt_dsp_rows1;
  const int whole = P < 8 && n_hi == 0 && n > 0 && (n & 3) == 0 && first && last;
  for (int32_t r = r0; r < r1; ++r) {
    const int32_t b = bias ? bias[r] : 0;
    tt_dsp_rq_params q = {0, 0, 0, 0};
    const int one = last && fast && tt_dsp_bias_bounded(b) &&
                    tt_dsp_rq_init(mult[r], shift[r], out_off, &q);
    const int8_t *wr = w_lo + r * lo_stride, *wh = w_hi + r * hi_stride;
    /* one pointer walks the row's outputs (not P induction variables across rows) */
    int8_t *y = out + r;
    __asm__("" : "+r"(y));
    int32_t acc[8];
    tt_dsp_rows8_args a = {b, q.b2, q.c, q.e, y, col_stride, first ? 0 : part[r - r0],
                           !last ? part[r - r0] : (one && full) ? 0 : acc, 1};
    if (whole8 && !a.part_out) {          /* the row's Q blocks in one call */
      a.blocks = Q;
      tt_dsp_rows8(&a, stage, wr, wr + n);
      continue;
    }
    if (whole && !a.part_out) {
      a.blocks = Q;
      narrow(&a, stage, wr, wr + n);
      continue;
    }
    const tt_dsp_word *blk = stage;
    for (int32_t qb = 0; qb < Q; ++qb, blk += block) {
      if (whole8) {
        tt_dsp_rows8(&a, blk, wr, wr + n);
      } else {
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
      }
      if (!last) continue;
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

/* One compiled copy of rows per block width (8: any number Q of blocks staged one after the
 * other), and one for chunks of eight columns. */
static __attribute__((noinline)) void rows8q(const tt_dsp_mm *m, const tt_dsp_word *stage,
                                             int32_t Q, int8_t *out, int32_t col_stride) {
  rows(m, stage, 8, Q, 0, m->rows, 0, m->n_lo, 0, 1, 1, out, col_stride);
}
#define TT_DSP_ROWS(P)                                                                      \
  static __attribute__((noinline)) void rows##P(const tt_dsp_mm *m,                        \
                                                const tt_dsp_word *stage, int8_t *out,      \
                                                int32_t col_stride) {                       \
    rows(m, stage, P, 1, 0, m->rows, 0, m->n_lo, 0, 1, 1, out, col_stride);                 \
  }
TT_DSP_ROWS(4)
TT_DSP_ROWS(2)
TT_DSP_ROWS(1)

static __attribute__((noinline)) void rows_chunk8(const tt_dsp_mm *m, const tt_dsp_word *stage,
                                                  int32_t r0, int32_t r1, int32_t k0,
                                                  int32_t n, int32_t (*part)[8], int first,
                                                  int last, int8_t *out, int32_t col_stride) {
  rows(m, stage, 8, 1, r0, r1, k0, n, part, first, last, out, col_stride);
}

void tt_dsp_mm_block(const tt_dsp_mm *m, const tt_dsp_word *stage, int32_t P, int8_t *out,
                     int32_t col_stride) {
  switch (P) {
    case 8: rows8q(m, stage, 1, out, col_stride); break;
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
