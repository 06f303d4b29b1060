/* The DSP matrix product of the forward kernels (tt_fwd_dsp.h): staged int16 columns times
 * int8 filter rows with SMLAD, shared by the convolutions (pointwise and im2col), the fully
 * connected layers and the depthwise convolutions with a depth multiplier.
 *
 * One row (output channel) at a time against a block of P columns: a filter word is loaded
 * and sign-extended once ([w0, w2], [w1, w3]) and meets the P staged columns in 2P SMLADs;
 * the P accumulators share the row's requantization constants. Per four input elements and
 * P columns: one load and two extensions of weights, P double-word loads (P / 2 LDMs of
 * four words where registers are left for them), 2P SMLADs. A pointwise convolution runs
 * blocks of 6 columns, the fewest instructions a MAC (0.75 in the loop against 0.84 for 8).
 *
 * The loop over rows itself (sums from the bias, the groups, requantization and stores) is
 * assembly, tt_dsp_rows8/6/4/2/1, generated per block width (and variants of the widths
 * 6 and 4: tt_dsp_rows6w, rows widened once a call where a call runs 4 or more blocks,
 * tt_dsp_rows6p/4p, rows widened before the call (the im2col stems' per row call, a frozen
 * filter's in flash: tt_dsp_mm_contiguous_wide), and tt_dsp_rows6s/4s, rows of a split
 * filter's two segments, each read as whole groups whatever the seam: split_columns): with
 * 8 columns it needs every register of the core, which gcc 12 cannot allocate (see
 * tt_dsp_rows8). Assembly inside a C file keeps the sources and build rules as they are;
 * it is only compiled where TT_FWD_DSP holds (Thumb-2 with the DSP extension), and the
 * portable C99 stays the reference it is tested against bit for bit. Hand-written, not
 * copied: the instruction sequences are the C above, register-allocated by hand. */
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
  for (; i < n && ((i0 + i) & 3); ++i)
    tt_dsp_stage_one(stage, P, p, i0 + i, 2 * (x[i] + input_offset));
  const uint32_t off = tt_dsp_stage_offset(input_offset);
  tt_dsp_word *s = stage + 2 * (((i0 + i) >> 2) * P + p);
  for (; i + 4 <= n; i += 4, s += 2 * P) tt_dsp_stage4(s, off, tt_dsp_load4(x + i));
  for (; i < n; ++i) tt_dsp_stage_one(stage, P, p, i0 + i, 2 * (x[i] + input_offset));
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

/* The arguments of the assembly rows (tt_dsp_rows8/6/4/2/1), at the offsets it reads. */
typedef struct {
  const int8_t *w;            /*  0: row 0's first weight (the first of a group) */
  int32_t n;                  /*  4: weights per row, a positive multiple of 4 */
  int32_t w_stride;           /*  8: bytes from one row's weights to the next's */
  const tt_dsp_word *s;       /* 12: the first block of staged columns */
  int32_t blocks;             /* 16: blocks of P columns, one after the other, > 0 */
  int32_t rows;               /* 20: rows, > 0 */
  const int32_t *start;       /* 24: per row, the sums' start, or NULL (0) */
  int32_t start_shift;        /* 28: the start is start[r] << start_shift */
  const int32_t *part_in;     /* 32: NULL, or row r's P sums' starts at + 8 r (1 block) */
  int32_t *part_out;          /* 36: where row r's P sums go, + 8 r (1 block), or NULL: */
  const int32_t *multiplier;  /* 40:   requantized (tt_dsp_rq_doubled, int8's range) */
  const int8_t *shift;        /* 44:   with these per row (tt_dsp_rq_init must hold) */
  int32_t c_unit;             /* 48:   2 output_offset + 1: c = c_unit << (e - 1) */
  int8_t *y;                  /* 52:   into y + r + (block P + p) stride */
  int32_t stride;             /* 56 */
  const int8_t *w_hi;         /* 60: tt_dsp_rows6s/4s: row 0's second segment (the */
  int32_t n_hi;               /* 64:   frozen part of a split filter), n_hi weights a row, */
  int32_t hi_stride;          /* 68:   a positive multiple of 4, staged after the first's */
} tt_dsp_rows_args;
typedef char tt_dsp_rows_layout[offsetof(tt_dsp_rows_args, hi_stride) == 68 ? 1 : -1];

/* void tt_dsp_rows8(const tt_dsp_rows_args *a): every row r < a->rows of weights
 * a->w + r a->w_stride (a->n of them) times a->blocks blocks of 8 staged columns, requantized
 * into y or summed into part_out. tt_dsp_rows4/2/1: the same for blocks of 4, 2 and 1
 * columns (and 6, below); all from one template, TT_DSP_ROWS_ASM. Assembly because the
 * 8-column loop holds 14 values (8 sums, the two pointers, a weight word's two
 * sign-extended halves, a staged double word), every register the core has: gcc 12 spills three
 * of them from the C version (35 instructions a group instead of 27 + the loop), and an asm
 * statement with 14 register operands is "impossible" for it at -O0/-O1/-Og (r7 is the
 * frame pointer) and in some callers at -O2; and because the loop over rows in C cost 60-80
 * instructions a row and call, about 36 here.
 * Per group of four weights (P = 8): LDR, 2 SXTB16, 8 LDRD, 16 SMLAD (27 instructions, 32
 * MACs); per four groups the loop's end (from the stack), CMP and BNE. The first group of a
 * block starts its sums from the row's start as SMLAD's accumulator operand (no moves); the
 * other groups enter the four-group loop at the copy that leaves a multiple of four, an
 * address worked out once per call (as is where the sums go after the groups: BX to either).
 * Per output 5.5 instructions (TT_DSP_ASM_RQ's 4, STRB, half an address ADD), per block 20
 * more (14 in blocks of 6 and 4, which start and requantize with fewer: below), per row 36.
 * Registers in the loop: r0/r3 the weight word's halves, r1 the staged block, r2 the weights,
 * r4.. the sums (r11 the start in the first group; with 6 and 4 columns the last sum's
 * register), r12/lr a staged double word (r10-lr two columns' with 6, r8-r11 with 4).
 * Frame: [sp] the output stride, +4 three times it, +8/+12/+16 the row's e, m, c, +20 the
 * output (the words a block's outputs need, one LDM: TT_DSP_OUTS_*), +24 r, +28 the loop's
 * entry, +32 the start, +36 the row's end, +40 its start, +44 the staged blocks' end, +48
 * the sums' exit, +52 a. */
#define TT_DSP_LDW "  ldr r0, [r2], #4\n  sxtb16 r3, r0, ror #8\n  sxtb16 r0, r0\n"
#define TT_DSP_MAC(acc, from, off)                                                          \
  "  ldrd r12, lr, [r1, #" #off "]\n"                                                      \
  "  smlad " #acc ", r12, r0, " #from "\n"                                                  \
  "  smlad " #acc ", lr, r3, " #acc "\n"
#define TT_DSP_MAC_NEXT(acc, step)                                                          \
  "  ldrd r12, lr, [r1], #" #step "\n"                                                     \
  "  smlad " #acc ", r12, r0, " #acc "\n"                                                   \
  "  smlad " #acc ", lr, r3, " #acc "\n"
/* One output of column 2k (at r12) or 2k + 1 (r12 + stride r0, then r12 moves two columns).
 * With 8 columns every other register holds a sum, so the outputs borrow r1-r3 for the
 * row's m, c, e (the staged block's pointer saved across them, TT_DSP_OUTS_SAVING); with 6
 * or fewer, the LDM words' registers r10, r11 are free for m and c (TT_DSP_OUTS_FREE: two
 * instructions fewer a block). Both leave r1 at the next block. */
#define TT_DSP_OUT_EVEN_IN(acc, m, c, e) TT_DSP_ASM_RQ_IN(acc, lr, m, c, e) "  strb " #acc ", [r12]\n"
#define TT_DSP_OUT_ODD_IN(acc, m, c, e)                                                     \
  TT_DSP_ASM_RQ_IN(acc, lr, m, c, e) "  strb " #acc ", [r12, r0]\n"                         \
  "  add r12, r12, r0, lsl #1\n"
#define TT_DSP_OUT_EVEN(acc) TT_DSP_OUT_EVEN_IN(acc, r3, r1, r2)
#define TT_DSP_OUT_ODD(acc) TT_DSP_OUT_ODD_IN(acc, r3, r1, r2)
#define TT_DSP_OUT_EVEN_FREE(acc) TT_DSP_OUT_EVEN_IN(acc, r10, r11, r3)
#define TT_DSP_OUT_ODD_FREE(acc) TT_DSP_OUT_ODD_IN(acc, r10, r11, r3)
#define TT_DSP_OUTS_SAVING(outputs)                                                         \
  "  str r1, [sp, #4]\n" /* over 3 stride, which these rows do not read */                 \
  "  ldm sp, {r0-r3}\n"  /* stride, -, e, m */                                             \
  "  ldrd r1, r12, [sp, #16]\n" /* c, the output */                                        \
  outputs                                                                                   \
  "  str r12, [sp, #20]\n"                                                                  \
  "  ldr r1, [sp, #4]\n"
#define TT_DSP_OUTS_FREE(outputs)                                                           \
  "  ldm sp, {r0, r2, r3, r10, r11, r12}\n" /* stride, 3 stride, e, m, c, the output */   \
  outputs                                                                                   \
  "  str r12, [sp, #20]\n"
/* The first group's sums start from the row's start ([sp, #32]) as SMLAD's accumulator */
#define TT_DSP_START_R11 "  ldr r11, [sp, #32]\n"


/* Where the staged blocks end ([sp, #44]), worked out once a call from a (r0): s + blocks
 * blocks of P columns of n (+ n_hi, split) doubled int16 each, 2 P (n + n_hi) bytes a block.
 * Each block's end compares the staged block's pointer (r1, just past the block) with it:
 * LDRD, CMP, BNE where a count in the frame took LDR, LDR, SUBS, STR, BNE. The `pro` of every
 * TT_DSP_ROWS_ASM (with TT_DSP_SPLIT_PRO for the split rows). */
#define TT_DSP_END(weights, bytes)                                                          \
  "  ldrd r1, r12, [r0, #12]\n" /* s, blocks */                                             \
  "  ldr lr, [r0, #4]\n"                                                                    \
  weights                                                                                   \
  "  mul r12, r12, lr\n"                                                                    \
  bytes                                                                                     \
  "  str r12, [sp, #44]\n"
#define TT_DSP_END_SPLIT "  ldr r2, [r0, #64]\n  add lr, lr, r2\n"
#define TT_DSP_END_SHIFT(k) "  add r12, r1, r12, lsl #" #k "\n"
#define TT_DSP_END_SIX "  add r12, r12, r12, lsl #1\n" TT_DSP_END_SHIFT(2)
#define TT_DSP_END8 TT_DSP_END("", TT_DSP_END_SHIFT(4))
#define TT_DSP_END6 TT_DSP_END("", TT_DSP_END_SIX)
#define TT_DSP_END6S TT_DSP_END(TT_DSP_END_SPLIT, TT_DSP_END_SIX)
#define TT_DSP_END4 TT_DSP_END("", TT_DSP_END_SHIFT(3))
#define TT_DSP_END4S TT_DSP_END(TT_DSP_END_SPLIT, TT_DSP_END_SHIFT(3))
#define TT_DSP_END2 TT_DSP_END("", TT_DSP_END_SHIFT(2))
#define TT_DSP_END1 TT_DSP_END("", TT_DSP_END_SHIFT(1))

/* After a block's groups, to where its sums go ([sp, #48]: outputs, part_out, or a split
 * row's second segment): TT_DSP_EXIT. Rows that are never given part_out (and have one
 * segment) fall through to the outputs instead (TT_DSP_ROWS_ASM_X with exit ""): two
 * instructions fewer a block and row. */
#define TT_DSP_EXIT "  ldr r0, [sp, #48]\n  bx r0\n"
#define TT_DSP_ROWS_ASM(name, regs, frame, pro, widen, first, group, outputs, tail)          \
  TT_DSP_ROWS_ASM_X(name, regs, frame, pro, widen, first, group, outputs, tail, TT_DSP_EXIT)
#define TT_DSP_ROWS_ASM_X(name, regs, frame, pro, widen, first, group, outputs, tail, exit) \
  __asm__(TT_DSP_ASM_ENTRY(name)                                                          \
          "  sub sp, sp, #" #frame "\n"                                                      \
          "  str r0, [sp, #52]\n"                                                                \
          "  ldr r12, [r0, #4]\n" /* loop entry */                                          \
          "  subs r12, r12, #4\n"                                                           \
          "  beq 5f\n"                                                                      \
          "  and r12, r12, #12\n"                                                           \
          "  cmp r12, #8\n"                                                                 \
          "  beq 6f\n"                                                                      \
          "  bhi 7f\n"                                                                      \
          "  cmp r12, #4\n"                                                                 \
          "  beq 8f\n"                                                                      \
          "  adr.w r12, 1f\n"                                                               \
          "  b 9f\n"                                                                        \
          "5:\n"                                                                            \
          "  adr.w r12, 13f\n"                                                              \
          "  b 9f\n"                                                                        \
          "6:\n"                                                                            \
          "  adr.w r12, 3f\n"                                                               \
          "  b 9f\n"                                                                        \
          "7:\n"                                                                            \
          "  adr.w r12, 2f\n"                                                               \
          "  b 9f\n"                                                                        \
          "8:\n"                                                                            \
          "  adr.w r12, 4f\n"                                                               \
          "9:\n"                                                                            \
          "  orr r12, r12, #1\n"                                                            \
          "  str r12, [sp, #28]\n"                                                          \
          "  ldr r12, [r0, #36]\n" /* sums' exit */                                         \
          "  cmp r12, #0\n"                                                                 \
          "  beq 5f\n"                                                                      \
          "  adr.w r12, 15f\n"                                                              \
          "  b 6f\n"                                                                        \
          "5:\n"                                                                            \
          "  adr.w r12, 14f\n"                                                              \
          "6:\n"                                                                            \
          "  orr r12, r12, #1\n"                                                            \
          "  str r12, [sp, #48]\n"                                                          \
            pro                                                                             \
          "  ldr r12, [r0, #56]\n"                                                          \
          "  str r12, [sp]\n"                                                               \
          "  add r12, r12, r12, lsl #1\n"                                                   \
          "  str r12, [sp, #4]\n" /* 3 stride */                                            \
          "  movs r3, #0\n"                                                                 \
          "20:\n"                                                                           \
          "  str r3, [sp, #24]\n" /* row r3 of a (r0) */                                    \
          "  ldm r0, {r2, r4, r5}\n" /* w, n, w_stride (r4-r11 free until the sums) */     \
          "  mla r2, r5, r3, r2\n"                                                          \
          "  add r12, r2, r4\n"                                                             \
          "  strd r12, r2, [sp, #36]\n"                                                      \
            widen                                                                           \
          "  ldr r1, [r0, #12]\n"                                                           \
          "  ldrd r4, r5, [r0, #24]\n" /* the start (or NULL: 0), its shift */             \
          "  cbz r4, 23f\n"                                                                 \
          "  ldr r4, [r4, r3, lsl #2]\n"                                                    \
          "23:\n"                                                                           \
          "  lsl r4, r4, r5\n"                                                              \
          "  str r4, [sp, #32]\n"                                                           \
          "  ldr r4, [r0, #36]\n" /* part_out: no outputs (CBNZ: r4-r11 free here) */      \
          "  cbnz r4, 21f\n"                                                                \
          "  add r4, r0, #40\n"                                                             \
          "  ldm r4, {r4-r7}\n" /* multipliers, shifts, c_unit, y */                        \
          "  ldr r4, [r4, r3, lsl #2]\n"                                                    \
          "  ldrsb r5, [r5, r3]\n" /* shift[r3]: int8 */                                    \
          "  mvn r8, r5\n" /* e - 1 */                                                      \
          "  rsb r5, r5, #0\n" /* e */                                                      \
          "  lsl r6, r6, r8\n" /* c */                                                      \
          "  add r7, r7, r3\n" /* the row's first output */                                 \
          "  strd r5, r4, [sp, #8]\n" /* e, m */                                            \
          "  strd r6, r7, [sp, #16]\n" /* c, the output */                                  \
          "21:\n"                                                                           \
          "  ldr r4, [r0, #32]\n" /* part_in */                                            \
          "  cbz r4, 10f\n"                                                                 \
          "  add r12, r4, r3, lsl #5\n"                                                     \
          "  ldm r12, {" regs "}\n"                                                         \
            group                                                                           \
          "  ldr r0, [sp, #28]\n"                                                           \
          "  bx r0\n"                                                                       \
          "10:\n" /* a block */                                                             \
            first                                                                           \
          "  ldr r0, [sp, #28]\n"                                                           \
          "  bx r0\n"                                                                       \
          "1:\n"                                                                            \
            group                                                                           \
          "2:\n"                                                                            \
            group                                                                           \
          "3:\n"                                                                            \
            group                                                                           \
          "4:\n"                                                                            \
            group                                                                           \
          "  ldr r0, [sp, #36]\n"                                                            \
          "  cmp r2, r0\n"                                                                  \
          "  bne 1b\n"                                                                      \
          "13:\n"                                                                           \
            exit                                                                            \
          "14:\n"                                                                           \
            outputs                                                                         \
          "  ldrd r2, r3, [sp, #40]\n" /* the row's start, the blocks' end */               \
          "  cmp r1, r3\n"                                                                  \
          "  bne 10b\n"                                                                     \
          "16:\n"                                                                           \
          "  ldr r0, [sp, #52]\n" /* the next row */                                             \
          "  ldr r3, [sp, #24]\n"                                                           \
          "  adds r3, r3, #1\n"                                                             \
          "  ldr r12, [r0, #20]\n"                                                          \
          "  cmp r3, r12\n"                                                                 \
          "  blt 20b\n"                                                                     \
          "  add sp, sp, #" #frame "\n"                                                      \
          "  pop {r4-r11, pc}\n"                                                            \
          "15:\n" /* the sums into part_out */                                              \
          "  ldr r0, [sp, #52]\n"                                                           \
          "  ldr r12, [r0, #36]\n"                                                          \
          "  ldr r3, [sp, #24]\n"                                                           \
          "  add r12, r12, r3, lsl #5\n"                                                    \
          "  stm r12, {" regs "}\n"                                                         \
          "  b 16b\n"                                                                       \
            tail                                                                            \
          "  .size " #name ", . - " #name "\n"                                              \
          "  .text\n")

TT_DSP_ROWS_ASM(tt_dsp_rows8, "r4-r11", 56, TT_DSP_END8, "",
                TT_DSP_START_R11 TT_DSP_LDW TT_DSP_MAC(r5, r11, 8) TT_DSP_MAC(r6, r11, 16)
                TT_DSP_MAC(r7, r11, 24) TT_DSP_MAC(r8, r11, 32) TT_DSP_MAC(r9, r11, 40)
                TT_DSP_MAC(r10, r11, 48) TT_DSP_MAC(r4, r11, 0) TT_DSP_MAC(r11, r11, 56)
                "  adds r1, r1, #64\n",
                TT_DSP_LDW TT_DSP_MAC(r5, r5, 8) TT_DSP_MAC(r6, r6, 16) TT_DSP_MAC(r7, r7, 24)
                TT_DSP_MAC(r8, r8, 32) TT_DSP_MAC(r9, r9, 40) TT_DSP_MAC(r10, r10, 48)
                TT_DSP_MAC(r11, r11, 56) TT_DSP_MAC_NEXT(r4, 64),
                TT_DSP_OUTS_SAVING(TT_DSP_OUT_EVEN(r4) TT_DSP_OUT_ODD(r5) TT_DSP_OUT_EVEN(r6)
                                   TT_DSP_OUT_ODD(r7) TT_DSP_OUT_EVEN(r8) TT_DSP_OUT_ODD(r9)
                                   TT_DSP_OUT_EVEN(r10) TT_DSP_OUT_ODD(r11)), "");
/* Blocks of 6 and 4 columns leave registers for four staged words: one LDM (with
 * writeback) loads two columns' double words, one instruction where two LDRDs were. Per
 * group of four weights: LDR, 2 SXTB16, 3 LDM, 12 SMLAD for 6 columns (18 instructions, 24
 * MACs: 0.75 a MAC against 27 for 32 with 8 columns); LDR, 2 SXTB16, 2 LDM, 8 SMLAD for 4.
 * The first group of a block loads the row's start into the last column's sum register and
 * the other columns' SMLADs take it as their accumulator before that one does (TT_DSP_MAC2
 * with `from`): LDMs there too, no pointer ADD (4 instructions fewer a block of 6 than
 * starting from r11 with LDRDs). */
#define TT_DSP_MAC2_ACC(a, b, from_a, from_b, x0, x1, x2, x3)                              \
  "  ldm r1!, {" #x0 ", " #x1 ", " #x2 ", " #x3 "}\n"                                       \
  "  smlad " #a ", " #x0 ", r0, " #from_a "\n"                                             \
  "  smlad " #a ", " #x1 ", r3, " #a "\n"                                                   \
  "  smlad " #b ", " #x2 ", r0, " #from_b "\n"                                             \
  "  smlad " #b ", " #x3 ", r3, " #b "\n"
#define TT_DSP_MAC2(a, b, x0, x1, x2, x3) TT_DSP_MAC2_ACC(a, b, a, b, x0, x1, x2, x3)
#define TT_DSP_MAC2_FROM(a, b, from, x0, x1, x2, x3)                                        \
  TT_DSP_MAC2_ACC(a, b, from, from, x0, x1, x2, x3)
/* `from` is read by a's first SMLAD and b's first, before b is written: it may be b itself
 * (the last pair). */
#define TT_DSP_ROWS6_FIRST(ldw)                                                             \
  "  ldr r9, [sp, #32]\n" ldw TT_DSP_MAC2_FROM(r4, r5, r9, r10, r11, r12, lr)                \
  TT_DSP_MAC2_FROM(r6, r7, r9, r10, r11, r12, lr) TT_DSP_MAC2_FROM(r8, r9, r9, r10, r11, r12, lr)
#define TT_DSP_ROWS6_GROUP(ldw)                                                             \
  ldw TT_DSP_MAC2(r4, r5, r10, r11, r12, lr) TT_DSP_MAC2(r6, r7, r10, r11, r12, lr)          \
  TT_DSP_MAC2(r8, r9, r10, r11, r12, lr)
/* A block of 6's outputs at y + p stride: columns 0, 1, 2 and 4 by the stride (r0) scaled
 * in the address, then y moves 3 strides (r2, loaded with the row's constants) and 3 and 5
 * follow the same way: two ADDs a block where the pairs of TT_DSP_OUT_EVEN/ODD took three. */
#define TT_DSP_OUT6(rq, a0, a1, a2, a3, a4, a5)                                             \
  rq(a0) "  strb " #a0 ", [r12]\n" rq(a1) "  strb " #a1 ", [r12, r0]\n"                      \
  rq(a2) "  strb " #a2 ", [r12, r0, lsl #1]\n" rq(a4) "  strb " #a4 ", [r12, r0, lsl #2]\n"  \
  "  add r12, r12, r2\n" rq(a3) "  strb " #a3 ", [r12]\n"                                    \
  rq(a5) "  strb " #a5 ", [r12, r0, lsl #1]\n"                                              \
  "  add r12, r12, r2\n"
#define TT_DSP_RQ6(acc) TT_DSP_ASM_RQ_IN(acc, lr, r10, r11, r3)
#define TT_DSP_RQ6_LOW(acc) TT_DSP_ASM_RQ_LOW_IN(acc, r10, r11, r3)
#define TT_DSP_ROWS6_OUTPUTS                                                                \
  TT_DSP_OUTS_FREE(TT_DSP_OUT6(TT_DSP_RQ6, r4, r5, r6, r7, r8, r9))
#define TT_DSP_ROWS6_OUTPUTS_LOW                                                            \
  TT_DSP_OUTS_FREE(TT_DSP_OUT6(TT_DSP_RQ6_LOW, r4, r5, r6, r7, r8, r9))
TT_DSP_ROWS_ASM(tt_dsp_rows6, "r4-r9", 56, TT_DSP_END6, "", TT_DSP_ROWS6_FIRST(TT_DSP_LDW),
                TT_DSP_ROWS6_GROUP(TT_DSP_LDW), TT_DSP_ROWS6_OUTPUTS, "");
TT_DSP_ROWS_ASM(tt_dsp_rows6_low, "r4-r9", 56, TT_DSP_END6, "", TT_DSP_ROWS6_FIRST(TT_DSP_LDW),
                TT_DSP_ROWS6_GROUP(TT_DSP_LDW), TT_DSP_ROWS6_OUTPUTS_LOW, "");
/* tt_dsp_rows6 with each row's weights sign-extended once per call into the frame (at
 * sp + 56, up to TT_DSP_WIDE_MAX of them: 2 bytes each, 80 bytes more stack) instead of
 * once per block: per group of a block LDRD where LDR and 2 SXTB16 were (16 instructions
 * for 24 MACs), for 5 a group per row and call (two a step: 2 LDR, 4 SXTB16, 2 STRD, CMP,
 * BNE). Pays from 4 blocks a call, which the staging buffer holds for columns of up to 40
 * elements
 * (TT_FWD_DSP_STAGE_BYTES / (6 * 2 * 4) = 42): the layers of few input channels. Their
 * sums always go to the outputs (rows() calls them over 4 or more blocks, so first and last:
 * part_in and part_out NULL), and the groups fall through to them (no TT_DSP_EXIT). */
#define TT_DSP_WIDE_MAX 40
#define TT_DSP_WIDEN                                                                        \
  "  add r1, sp, #56\n"                                                                     \
  "  tst r4, #4\n" /* n: an odd group first, then two a step (r4-r11 free here) */          \
  "  beq 22f\n"                                                                             \
  "  ldr r3, [r2], #4\n"                                                                    \
  "  sxtb16 lr, r3, ror #8\n"                                                               \
  "  sxtb16 r3, r3\n"                                                                       \
  "  strd r3, lr, [r1], #8\n"                                                               \
  "  cmp r2, r12\n"                                                                         \
  "  beq 28f\n"                                                                             \
  "22:\n"                                                                                   \
  "  ldr r3, [r2], #4\n"                                                                    \
  "  ldr r6, [r2], #4\n"                                                                    \
  "  sxtb16 lr, r3, ror #8\n"                                                               \
  "  sxtb16 r3, r3\n"                                                                       \
  "  sxtb16 r7, r6, ror #8\n"                                                               \
  "  sxtb16 r6, r6\n"                                                                       \
  "  strd r3, lr, [r1], #8\n"                                                               \
  "  strd r6, r7, [r1], #8\n"                                                               \
  "  cmp r2, r12\n"                                                                         \
  "  bne 22b\n"                                                                             \
  "28:\n"                                                                                   \
  "  add r2, sp, #56\n"                                                                     \
  "  strd r1, r2, [sp, #36]\n"                                                               \
  "  ldr r3, [sp, #24]\n"
#define TT_DSP_LDW_WIDE "  ldrd r0, r3, [r2], #8\n"
TT_DSP_ROWS_ASM_X(tt_dsp_rows6w, "r4-r9", 136, TT_DSP_END6, TT_DSP_WIDEN,
                  TT_DSP_ROWS6_FIRST(TT_DSP_LDW_WIDE), TT_DSP_ROWS6_GROUP(TT_DSP_LDW_WIDE),
                  TT_DSP_ROWS6_OUTPUTS, "", "");
TT_DSP_ROWS_ASM_X(tt_dsp_rows6w_low, "r4-r9", 136, TT_DSP_END6, TT_DSP_WIDEN,
                  TT_DSP_ROWS6_FIRST(TT_DSP_LDW_WIDE), TT_DSP_ROWS6_GROUP(TT_DSP_LDW_WIDE),
                  TT_DSP_ROWS6_OUTPUTS_LOW, "", "");
/* tt_dsp_rows6 over rows sign-extended beforehand (tt_dsp_widen: a->w the widened rows,
 * a->w_stride 2 a->n bytes apart, a->n the weights a row): the row's end moves to twice its
 * length, and each group loads its two words by LDRD (TT_DSP_LDW_WIDE) where LDR and 2
 * SXTB16 were: 16 instructions a group of 24 MACs, with no widening per call (the im2col
 * stems, whose row calls run 3 blocks of 6 each: tt_dsp_rows6w's widening would cost what
 * it saves there). */
#define TT_DSP_PREWIDE                                                                      \
  "  rsb r12, r2, r12, lsl #1\n"                                                           \
  "  str r12, [sp, #36]\n"
TT_DSP_ROWS_ASM(tt_dsp_rows6p, "r4-r9", 56, TT_DSP_END6, TT_DSP_PREWIDE,
                TT_DSP_ROWS6_FIRST(TT_DSP_LDW_WIDE), TT_DSP_ROWS6_GROUP(TT_DSP_LDW_WIDE),
                TT_DSP_ROWS6_OUTPUTS, "");
TT_DSP_ROWS_ASM(tt_dsp_rows6p_low, "r4-r9", 56, TT_DSP_END6, TT_DSP_PREWIDE,
                TT_DSP_ROWS6_FIRST(TT_DSP_LDW_WIDE), TT_DSP_ROWS6_GROUP(TT_DSP_LDW_WIDE),
                TT_DSP_ROWS6_OUTPUTS_LOW, "");
/* tt_dsp_rows6 over rows of two segments (a split filter: w, n, w_stride then w_hi, n_hi,
 * hi_stride), staged one after the other in each column: where the first segment's groups
 * end (the sums' exit, [sp, #48], is label 17) the weight pointer moves to the row's second
 * segment and the group loop is entered again at that segment's copy ([sp, #56]); at its end
 * the sums go where they would (the exit saved at [sp, #60]). 11 instructions a block more
 * than one segment, where a call per segment and row cost about 60 more and the C
 * requantization of the sums. Frame: +64/+68 the row's second segment's start and end, +72
 * the first's end. */
#define TT_DSP_SPLIT_PRO                                                                    \
  "  ldr r12, [r0, #64]\n"                                                                  \
  "  and r12, r12, #12\n"                                                                   \
  "  cmp r12, #8\n"                                                                         \
  "  beq 24f\n"                                                                             \
  "  bhi 25f\n"                                                                             \
  "  cmp r12, #4\n"                                                                         \
  "  beq 26f\n"                                                                             \
  "  adr.w r12, 1f\n"                                                                       \
  "  b 27f\n"                                                                               \
  "24:\n"                                                                                   \
  "  adr.w r12, 3f\n"                                                                       \
  "  b 27f\n"                                                                               \
  "25:\n"                                                                                   \
  "  adr.w r12, 2f\n"                                                                       \
  "  b 27f\n"                                                                               \
  "26:\n"                                                                                   \
  "  adr.w r12, 4f\n"                                                                       \
  "27:\n"                                                                                   \
  "  orr r12, r12, #1\n"                                                                    \
  "  str r12, [sp, #56]\n"                                                                  \
  "  ldr r12, [sp, #48]\n"                                                                  \
  "  str r12, [sp, #60]\n"                                                                  \
  "  adr.w r12, 17f\n"                                                                      \
  "  orr r12, r12, #1\n"                                                                    \
  "  str r12, [sp, #48]\n"
#define TT_DSP_SPLIT_ROW                                                                    \
  "  ldr r12, [r0, #60]\n"                                                                  \
  "  ldr lr, [r0, #68]\n"                                                                   \
  "  mla r12, lr, r3, r12\n"                                                                \
  "  ldr lr, [r0, #64]\n"                                                                   \
  "  add lr, r12, lr\n"                                                                     \
  "  strd r12, lr, [sp, #64]\n"                                                             \
  "  ldr r12, [sp, #36]\n"                                                                   \
  "  str r12, [sp, #72]\n"
#define TT_DSP_SPLIT_TAIL                                                                   \
  "17:\n"                                                                                   \
  "  ldr r0, [sp, #68]\n"                                                                   \
  "  cmp r2, r0\n"                                                                          \
  "  beq 18f\n"                                                                             \
  "  ldr r2, [sp, #64]\n"                                                                   \
  "  str r0, [sp, #36]\n"                                                                    \
  "  ldr r0, [sp, #56]\n"                                                                   \
  "  bx r0\n"                                                                               \
  "18:\n"                                                                                   \
  "  ldr r0, [sp, #72]\n"                                                                   \
  "  str r0, [sp, #36]\n"                                                                    \
  "  ldr r0, [sp, #60]\n"                                                                   \
  "  bx r0\n"
TT_DSP_ROWS_ASM(tt_dsp_rows6s, "r4-r9", 80, TT_DSP_SPLIT_PRO TT_DSP_END6S, TT_DSP_SPLIT_ROW,
                TT_DSP_ROWS6_FIRST(TT_DSP_LDW), TT_DSP_ROWS6_GROUP(TT_DSP_LDW),
                TT_DSP_ROWS6_OUTPUTS, TT_DSP_SPLIT_TAIL);
#define TT_DSP_ROWS4_FIRST_W(ldw)                                                           \
  "  ldr r7, [sp, #32]\n" ldw TT_DSP_MAC2_FROM(r4, r5, r7, r8, r9, r10, r11)                  \
  TT_DSP_MAC2_FROM(r6, r7, r7, r8, r9, r10, r11)
#define TT_DSP_ROWS4_GROUP_W(ldw)                                                           \
  ldw TT_DSP_MAC2(r4, r5, r8, r9, r10, r11) TT_DSP_MAC2(r6, r7, r8, r9, r10, r11)
#define TT_DSP_ROWS4_FIRST TT_DSP_ROWS4_FIRST_W(TT_DSP_LDW)
#define TT_DSP_ROWS4_GROUP TT_DSP_ROWS4_GROUP_W(TT_DSP_LDW)
#define TT_DSP_ROWS4_OUTPUTS                                                                \
  TT_DSP_OUTS_FREE(TT_DSP_OUT_EVEN_FREE(r4) TT_DSP_OUT_ODD_FREE(r5) TT_DSP_OUT_EVEN_FREE(r6)  \
                   TT_DSP_OUT_ODD_FREE(r7))
TT_DSP_ROWS_ASM(tt_dsp_rows4, "r4-r7", 56, TT_DSP_END4, "", TT_DSP_ROWS4_FIRST, TT_DSP_ROWS4_GROUP,
                TT_DSP_ROWS4_OUTPUTS, "");
TT_DSP_ROWS_ASM(tt_dsp_rows4s, "r4-r7", 80, TT_DSP_SPLIT_PRO TT_DSP_END4S, TT_DSP_SPLIT_ROW,
                TT_DSP_ROWS4_FIRST, TT_DSP_ROWS4_GROUP, TT_DSP_ROWS4_OUTPUTS, TT_DSP_SPLIT_TAIL);
/* tt_dsp_rows4 over pre-widened rows, as tt_dsp_rows6p: 13 -> 11 instructions a group of 16
 * MACs (the pointwise layers of 132-256 channels, whose blocks are of 4 columns). */
TT_DSP_ROWS_ASM(tt_dsp_rows4p, "r4-r7", 56, TT_DSP_END4, TT_DSP_PREWIDE,
                TT_DSP_ROWS4_FIRST_W(TT_DSP_LDW_WIDE), TT_DSP_ROWS4_GROUP_W(TT_DSP_LDW_WIDE),
                TT_DSP_ROWS4_OUTPUTS, "");
TT_DSP_ROWS_ASM(tt_dsp_rows2, "r4-r5", 56, TT_DSP_END2, "",
                TT_DSP_START_R11 TT_DSP_LDW TT_DSP_MAC(r5, r11, 8) TT_DSP_MAC(r4, r11, 0)
                "  adds r1, r1, #16\n",
                TT_DSP_LDW TT_DSP_MAC(r5, r5, 8) TT_DSP_MAC_NEXT(r4, 16),
                TT_DSP_OUTS_SAVING(TT_DSP_OUT_EVEN(r4) TT_DSP_OUT_ODD(r5)), "");
TT_DSP_ROWS_ASM(tt_dsp_rows1, "r4", 56, TT_DSP_END1, "",
                TT_DSP_START_R11 TT_DSP_LDW TT_DSP_MAC(r4, r11, 0) "  adds r1, r1, #8\n",
                TT_DSP_LDW TT_DSP_MAC_NEXT(r4, 8),
                TT_DSP_OUTS_SAVING(TT_DSP_OUT_EVEN(r4) "  add r12, r12, r0\n"), "");
typedef void tt_dsp_rows_fn(const tt_dsp_rows_args *a);

/* One row of 8 weights (a pointwise convolution of 8 input channels) over columns staged
 * one after the other (blocks of 1: 4 words a column), requantized into int8's whole range
 * (tt_dsp_rq_doubled, then SSAT): the row's weights stay sign-extended in four registers for
 * every column instead of being loaded again per block of columns. Per column: LDRD, 2 LDR,
 * 4 SMLAD, TT_DSP_ASM_RQ's 4 (its registers differ), STRB, and per two columns an ADD of
 * the output pointer, CMP and BNE (13.5 instructions for 8 MACs; the block form took 16-18
 * a column on the rig, with its per-block work). Registers: r0-r3 the weights [w0, w2],
 * [w1, w3], [w4, w6], [w5, w7]; r4 the start (twice the bias), r5 m, r6 c, r7 e; r8 the
 * staged column, r9 the end; r10 the output, r11 its stride; r12/lr a column's words, its
 * sum. */
typedef struct {
  const int8_t *w;           /*  0: the row's 8 weights */
  const tt_dsp_word *s;      /*  4: the first staged column */
  const tt_dsp_word *end;    /*  8: s + 4 columns (columns >= 1) */
  int32_t start, m, c, e;    /* 12: twice the bias, and tt_dsp_rq_params' m, c, e */
  int8_t *y;                 /* 28: column k's output at y + k stride */
  int32_t stride;            /* 32 */
} tt_dsp_row8_args;
typedef char tt_dsp_row8_layout[offsetof(tt_dsp_row8_args, stride) == 32 ? 1 : -1];
#define TT_DSP_ROW8_COLUMN                                                                  \
  "  ldrd r12, lr, [r8], #16\n"                                                             \
  "  smlad r12, r12, r0, r4\n"                                                              \
  "  smlad r12, lr, r1, r12\n"                                                              \
  "  ldr lr, [r8, #-8]\n"                                                                   \
  "  smlad r12, lr, r2, r12\n"                                                              \
  "  ldr lr, [r8, #-4]\n"                                                                   \
  "  smlad r12, lr, r3, r12\n"                                                              \
  "  add lr, r6, r12, asr #31\n" /* TT_DSP_ASM_RQ with m, c, e in r5, r6, r7 */            \
  "  smmlar r12, r12, r5, lr\n"                                                             \
  "  asr r12, r12, r7\n"                                                                    \
  "  ssat r12, #8, r12\n"
__asm__(TT_DSP_ASM_ENTRY(tt_dsp_row8)
        "  ldr r1, [r0]\n"
        "  ldr r2, [r1, #4]\n"
        "  ldr r1, [r1]\n"
        "  sxtb16 r3, r2, ror #8\n"
        "  sxtb16 r2, r2\n"
        "  ldrd r8, r9, [r0, #4]\n"
        "  ldrd r4, r5, [r0, #12]\n"
        "  ldrd r6, r7, [r0, #20]\n"
        "  ldrd r10, r11, [r0, #28]\n"
        "  sxtb16 r0, r1\n"
        "  sxtb16 r1, r1, ror #8\n"
        "  sub r12, r9, r8\n"
        "  tst r12, #16\n"          /* an odd number of columns: one first */
        "  beq 1f\n"
        TT_DSP_ROW8_COLUMN
        "  strb r12, [r10]\n"
        "  add r10, r10, r11\n"
        "  cmp r8, r9\n"
        "  beq 2f\n"
        "1:\n"
        TT_DSP_ROW8_COLUMN
        "  strb r12, [r10]\n"
        TT_DSP_ROW8_COLUMN
        "  strb r12, [r10, r11]\n"
        "  add r10, r10, r11, lsl #1\n"
        "  cmp r8, r9\n"
        "  bne 1b\n"
        "2:\n"
        "  pop {r4-r11, pc}\n"
        "  .size tt_dsp_row8, . - tt_dsp_row8\n"
        "  .text\n");
void tt_dsp_row8(const tt_dsp_row8_args *a);

/* A pointwise product of 8-element columns (n_lo = 8, n_hi = 0) whose every row
 * requantizes in the assembly (`known` 1) and whose rows are odd (the even: tt_dsp_col8):
 * up to 128 columns staged at a time, then tt_dsp_row8 for each row over all of them. */
static void mm_k8(const tt_dsp_mm *m, int32_t columns, const int8_t *input, int32_t in_stride,
                  int8_t *output, int32_t col_stride, tt_dsp_word *stage) {
  const uint32_t off = tt_dsp_stage_offset(m->input_offset);
  const int32_t c_unit = 2 * m->output_offset + 1;
  for (int32_t c = 0; c < columns; c += TT_FWD_DSP_STAGE_BYTES / 16) {
    const int32_t n = columns - c < TT_FWD_DSP_STAGE_BYTES / 16 ? columns - c
                                                               : TT_FWD_DSP_STAGE_BYTES / 16;
    const int8_t *x = input + c * in_stride;
    for (tt_dsp_word *s = stage, *end = stage + 4 * n; s != end; s += 4, x += in_stride) {
      tt_dsp_stage4(s, off, tt_dsp_load4(x));
      tt_dsp_stage4(s + 2, off, tt_dsp_load4(x + 4));
    }
    for (int32_t r = 0; r < m->rows; ++r) {
      const int32_t e = -m->shift[r];
      const tt_dsp_row8_args a = {m->w_lo + r * m->lo_stride, stage, stage + 4 * n,
                                  m->bias ? 2 * m->bias[r] : 0, m->multiplier[r],
                                  c_unit * (1 << (e - 1)), e, output + c * col_stride + r,
                                  col_stride};
      tt_dsp_row8(&a);
    }
  }
}
/* --- pointwise columns of 8 or 16 elements the other way round --------------------------
 * One column's inputs staged in registers (x + input_offset, not doubled: one SXTAB16 a pair
 * of lanes; r0-r3 for 8, r0-r7 for 16) and the rows streamed past it from records made once
 * per call (cols_records), K / 2 + 4 words a row: [start, W0 .. W(K/2 - 1), m, c, e], Wj the
 * row's weights sign-extended and doubled ([2 w0, 2 w2], [2 w1, 2 w3], [2 w4, 2 w6], ...:
 * |2 w| <= 256 fits a lane), so that the sums are twice the accumulator as with doubled
 * inputs (the same products in the same int32 sums), start twice the bias, and m, c, e the
 * row's tt_dsp_rq_params. A column's outputs are consecutive channels: STRB with
 * post-increment. The rows end at the record whose e carries bit 8 (ASR by a register
 * shifts by its low byte only, and e <= 21: the marker does not change the shift); a call
 * takes an even number of rows, two a loop. Against tt_dsp_row8 (8 elements: 13.5
 * instructions an output in its loop, and every column staged) and the blocks of 6
 * (16 elements: about 21.5 an output in the loop, and the blocks' and rows' set-up):
 *   8:  LDM of the whole record into r4-r11, 4 SMLAD, TT_DSP_ASM_RQ's 4, STRB, and per two
 *       rows TST and BEQ: 11.5 instructions for 8 MACs;
 *   16: four registers are left for a record: three LDMs and an LDRD, 8 SMLAD, the same 6.5:
 *       18 for 16 MACs.
 * Where a call's rows are a multiple of 8 (MobileNetV2's 8 -> 48 and 16 -> 8 layers, most
 * others), tt_dsp_col8x8/16x8 run 8 rows a loop: TST and BEQ per 8 rows, 0.75 instructions
 * an output fewer.
 * Per column about 11 (8 elements) or 16 (16): the inputs loaded (one LDM with write-back:
 * the columns are contiguous and word-aligned, cols_ok) and staged, the input
 * pointer, the column's end. The output pointer r12 is never reloaded: the rows' STRBs leave
 * it at the column's last row + 1, and one ADD of y_stride - rows moves it to the next
 * column's first (where the last column's rows end, y_last, is also the loop's test: CMP
 * before the ADD, no count). Frame (a copy of the arguments): [sp] x, +4 the offset pair,
 * +8 x_stride, +12 the records, +16 y_last, +20 y_stride - rows. */
typedef struct {
  const int8_t *x;           /*  0: column 0's K inputs (word-aligned), then column 1's */
  uint32_t off;              /*  4: tt_dsp_offset_pair(input_offset) */
  int32_t x_stride;          /*  8: K (the LDM's write-back steps; not read) */
  const tt_dsp_word *rec;    /* 12: the rows' records (cols_records), an even number */
  const int8_t *y_last;      /* 16: the last column's outputs' end: y + (columns - 1)
                                    y_stride + rows, columns > 0 */
  int32_t y_skip;            /* 20: y_stride - rows */
  int8_t *y;                 /* 24: column 0's outputs, record j's row at y + j */
} tt_dsp_cols_args;
typedef char tt_dsp_cols_layout[offsetof(tt_dsp_cols_args, y) == 24 ? 1 : -1];
#define TT_DSP_COLS_ASM(name, column, rows, e)                                              \
  __asm__(TT_DSP_ASM_ENTRY(name)                                                          \
          "  sub sp, sp, #24\n"                                                             \
          "  ldm r0, {r4-r9, r12}\n"                                                        \
          "  stm sp, {r4-r9}\n"                                                             \
          "1:\n"                                                                            \
            column                                                                          \
          "2:\n"                                                                            \
            rows                                                                            \
          "  tst " #e ", #256\n"                                                            \
          "  beq 2b\n"                                                                      \
          "  ldrd r4, r5, [sp, #16]\n"                                                      \
          "  cmp r12, r4\n"                                                                 \
          "  add r12, r12, r5\n"                                                            \
          "  bne 1b\n"                                                                      \
          "  add sp, sp, #24\n"                                                             \
          "  pop {r4-r11, pc}\n"                                                            \
          "  .size " #name ", . - " #name "\n"                                              \
          "  .text\n")
/* The column's words [x0, x2] into `even`, [x1, x3] into `odd` from the word in `odd`, with
 * the offset pair in `off`. */
#define TT_DSP_COLS_STAGE(even, odd, off)                                                   \
  "  sxtab16 " #even ", " #off ", " #odd "\n"                                               \
  "  sxtab16 " #odd ", " #off ", " #odd ", ror #8\n"
/* A column's inputs into registers, and one row's output (its record, sums, requantization
 * and store), for 8 and 16 elements; each width with two rows a loop (any even count) and
 * eight (a multiple of 8). */
#define TT_DSP_COL8_COLUMN                                                                  \
  "  ldm sp, {r4-r6, lr}\n" /* x, offset, x_stride (unused), records */                     \
  "  ldm r4!, {r1, r3}\n"                                                                   \
  "  str r4, [sp]\n"                                                                        \
  TT_DSP_COLS_STAGE(r0, r1, r5) TT_DSP_COLS_STAGE(r2, r3, r5)
/* A row of the 8-value column: its sums, then the requantization (RQ) and the byte. */
#define TT_DSP_COL8_SUMS                                                                    \
  "  ldm lr!, {r4-r11}\n"                                                                   \
  "  smlad r4, r0, r5, r4\n"                                                                \
  "  smlad r4, r1, r6, r4\n"                                                                \
  "  smlad r4, r2, r7, r4\n"                                                                \
  "  smlad r4, r3, r8, r4\n"
#define TT_DSP_COL8_ROW                                                                     \
  TT_DSP_COL8_SUMS TT_DSP_ASM_RQ_IN(r4, r10, r9, r10, r11)                                  \
  "  strb r4, [r12], #1\n"
/* A column's 16 values at r8 into r0-r7 as the rows take them (r10: the input offset). */
#define TT_DSP_LOAD16                                                                       \
  "  ldr r1, [r8]\n"                                                                        \
  "  ldr r3, [r8, #4]\n"                                                                    \
  "  ldr r5, [r8, #8]\n"                                                                    \
  "  ldr r7, [r8, #12]\n"                                                                   \
  TT_DSP_COLS_STAGE(r0, r1, r10) TT_DSP_COLS_STAGE(r2, r3, r10)                             \
  TT_DSP_COLS_STAGE(r4, r5, r10) TT_DSP_COLS_STAGE(r6, r7, r10)
#define TT_DSP_COL16_COLUMN                                                                 \
  "  ldrd r8, r10, [sp]\n" /* x, offset */                                                  \
  "  ldm r8!, {r1, r3, r5, r7}\n"                                                           \
  TT_DSP_COLS_STAGE(r0, r1, r10) TT_DSP_COLS_STAGE(r2, r3, r10)                             \
  TT_DSP_COLS_STAGE(r4, r5, r10) TT_DSP_COLS_STAGE(r6, r7, r10)                             \
  "  ldr lr, [sp, #12]\n" /* records */                                                     \
  "  str r8, [sp]\n"
/* A row's 16 products with the staged values in r0-r7 (its words at lr, r8 the sum; r9-r11
 * free after): the 16-value column's rows and tt_dsp_colk's parts end it differently. */
#define TT_DSP_SUMS16                                                                       \
  "  ldm lr!, {r8-r11}\n"                                                                   \
  "  smlad r8, r0, r9, r8\n"                                                                \
  "  smlad r8, r1, r10, r8\n"                                                               \
  "  smlad r8, r2, r11, r8\n"                                                               \
  "  ldm lr!, {r9-r11}\n"                                                                   \
  "  smlad r8, r3, r9, r8\n"                                                                \
  "  smlad r8, r4, r10, r8\n"                                                               \
  "  smlad r8, r5, r11, r8\n"                                                               \
  "  ldm lr!, {r9-r11}\n"                                                                   \
  "  smlad r8, r6, r9, r8\n"                                                                \
  "  smlad r8, r7, r10, r8\n"
#define TT_DSP_COL16_SUMS                                                                   \
  TT_DSP_SUMS16                                                                             \
  "  ldrd r9, r10, [lr], #8\n"
#define TT_DSP_COL16_ROW                                                                    \
  TT_DSP_COL16_SUMS TT_DSP_ASM_RQ_IN(r8, r9, r11, r9, r10)                                  \
  "  strb r8, [r12], #1\n"
/* The same rows for an output offset of -128 (TT_DSP_ASM_RQ_LOW_IN: no sign correction, one
 * instruction fewer an output): the K = 8 and 16 expansions and the stems, whose ReLU6
 * outputs have zero point -128. */
#define TT_DSP_COL8_ROW_LOW                                                                 \
  TT_DSP_COL8_SUMS TT_DSP_ASM_RQ_LOW_IN(r4, r9, r10, r11)                                   \
  "  strb r4, [r12], #1\n"
#define TT_DSP_COL16_ROW_LOW                                                                \
  TT_DSP_COL16_SUMS TT_DSP_ASM_RQ_LOW_IN(r8, r11, r9, r10)                                  \
  "  strb r8, [r12], #1\n"
#define TT_DSP_X2(row) row row
#define TT_DSP_X8(row) TT_DSP_X2(row) TT_DSP_X2(row) TT_DSP_X2(row) TT_DSP_X2(row)
TT_DSP_COLS_ASM(tt_dsp_col8, TT_DSP_COL8_COLUMN, TT_DSP_X2(TT_DSP_COL8_ROW), r11);
TT_DSP_COLS_ASM(tt_dsp_col8x8, TT_DSP_COL8_COLUMN, TT_DSP_X8(TT_DSP_COL8_ROW), r11);
TT_DSP_COLS_ASM(tt_dsp_col8x8_low, TT_DSP_COL8_COLUMN, TT_DSP_X8(TT_DSP_COL8_ROW_LOW), r11);
TT_DSP_COLS_ASM(tt_dsp_col16, TT_DSP_COL16_COLUMN, TT_DSP_X2(TT_DSP_COL16_ROW), r10);
TT_DSP_COLS_ASM(tt_dsp_col16x8, TT_DSP_COL16_COLUMN, TT_DSP_X8(TT_DSP_COL16_ROW), r10);
TT_DSP_COLS_ASM(tt_dsp_col16x8_low, TT_DSP_COL16_COLUMN, TT_DSP_X8(TT_DSP_COL16_ROW_LOW),
                r10);
void tt_dsp_col8(const tt_dsp_cols_args *a);
void tt_dsp_col16(const tt_dsp_cols_args *a);
void tt_dsp_col8x8(const tt_dsp_cols_args *a);
void tt_dsp_col16x8(const tt_dsp_cols_args *a);
void tt_dsp_col8x8_low(const tt_dsp_cols_args *a);
void tt_dsp_col16x8_low(const tt_dsp_cols_args *a);

/* --- the K = 8 and 16 columns with one shift for every row (output offset -128) ----------
 * TT_DSP_ASM_RQ_LOW_IN spends SMMLAR, ASR by the row's e, SSAT. Where every row's e lies in
 * [E - 7, E - 1] for the constant E = TT_DSP_COLS_E, the row's record holds its sums scaled
 * by 2^s, s = E - e in [1, 7] (the doubled weights and bias times 2^s: |2 w 2^s| <= 2^15
 * still fits a lane), and R = c 2^s + 2^(s - 1) where c was, so that
 *     SSAT(8, SMMLA(A, m, R) >> E),   A = 2^s a2,
 * two instructions, SSAT shifting by the immediate E, gives the low form's
 * floor((h + c) / 2^e), h = floor((a2 m + 2^31) / 2^32). Proof: SMMLA returns
 * R + floor(A m / 2^32) = 2^s c + floor(2^s (a2 m + 2^31) / 2^32); with
 * a2 m + 2^31 = 2^32 h + r, 0 <= r < 2^32, that is 2^s (h + c) + f, 0 <= f < 2^s, and
 * floor((2^s (h + c) + f) / 2^(s + e)) = floor((h + c) / 2^e) (h + c is an integer). No
 * value wraps where |A| < 2^31 (the sums' bound, tested per row with the bias and the
 * input offset: cols_e_ok): |A m / 2^32| < 2^30 and |R| < 2^19. The last word of a record
 * is 0, 256 on the pass's last row (the loop's end, as e's bit 8 is in cols_records'). Only
 * for the rows loops that fit what MCUNet and the person detector have: 16 rows a loop of 8
 * elements, 8 of 16 (MCUNet's 64x64x8 -> 32 and 32x32x16 -> 48, the person detector's
 * 48x48x8 -> 16: 8 and 16 instructions an output where they were 9 and 17). */
#define TT_DSP_COLS_E 11
#define TT_DSP_COLS_E_SSAT(acc) "  ssat " #acc ", #8, " #acc ", asr #11\n"
#define TT_DSP_COL8_ROW_E                                                                   \
  TT_DSP_COL8_SUMS "  smmla r4, r4, r9, r10\n" TT_DSP_COLS_E_SSAT(r4) "  strb r4, [r12], #1\n"
#define TT_DSP_COL16_ROW_E                                                                  \
  TT_DSP_COL16_SUMS "  smmla r8, r8, r11, r9\n" TT_DSP_COLS_E_SSAT(r8)                      \
  "  strb r8, [r12], #1\n"
TT_DSP_COLS_ASM(tt_dsp_col8x16_e, TT_DSP_COL8_COLUMN,
                TT_DSP_X8(TT_DSP_COL8_ROW_E) TT_DSP_X8(TT_DSP_COL8_ROW_E), r11);
TT_DSP_COLS_ASM(tt_dsp_col16x8_e, TT_DSP_COL16_COLUMN, TT_DSP_X8(TT_DSP_COL16_ROW_E), r10);
void tt_dsp_col8x16_e(const tt_dsp_cols_args *a);
void tt_dsp_col16x8_e(const tt_dsp_cols_args *a);

/* The one-shift records (above) of n records `rec` (cols_records' layout, `words` a row)
 * into `to` (rec itself: the code generator makes its records in flash so itself,
 * codegen/layouts.py's `records`) where every row qualifies: e in [E - 7, E - 1] and the scaled sums' bound
 * 2^(s + 1) (|bias| + `sums`) < 2^31, `sums` = K (128 + |input_offset|) 128 (< 2^21,
 * tt_dsp_sums_bounded); returns 0 and writes nothing where one does not. For products
 * whose every row requantizes in the assembly (m in [2^30, 2^31), e in [1, 21],
 * |bias| < 2^28) with output offset -128 (so c = -255 2^(e - 1), R = c 2^s + 2^(s - 1)). */
static __attribute__((noinline)) int records_e(tt_dsp_word *to, const tt_dsp_word *rec,
                                               int32_t n, int32_t words, int32_t sums) {
  for (const tt_dsp_word *r = rec, *end = rec + n * words; r != end; r += words) {
    const int32_t s = TT_DSP_COLS_E - (int32_t)(r[words - 1] & 255u), b2 = (int32_t)r[0];
    if (s < 1 || s > 7 || (int64_t)((b2 < 0 ? -b2 : b2) + 2 * sums) << s >= (1ll << 31))
      return 0;
  }
  for (tt_dsp_word *t = to, *end = to + n * words; t != end; t += words, rec += words) {
    const int32_t s = TT_DSP_COLS_E - (int32_t)(rec[words - 1] & 255u);
    t[0] = rec[0] << s;
    for (int32_t j = 1; j < words - 3; ++j)   /* each lane on its own (the values fit) */
      t[j] = ((rec[j] << s) & 0xFFFFu) | ((rec[j] & 0xFFFF0000u) << s);
    t[words - 3] = rec[words - 3];
    t[words - 2] = (uint32_t)(-255 * (1 << (TT_DSP_COLS_E - 1)) + (1 << (s - 1)));
    t[words - 1] = 0;
  }
  to[n * words - 1] = 256u;
  return 1;
}

/* Whether tt_dsp_col8/16 take a product: one segment of 8 or 16 elements, contiguous and
 * word-aligned columns (one LDM loads one: TT_DSP_COL8_COLUMN), an even number of rows;
 * `known` 1 (every row requantizes in the assembly) where the records are made here. */
static int cols_ok(const tt_dsp_mm *m, int known, const int8_t *input, int32_t in_stride) {
  return (m->n_lo == 8 || m->n_lo == 16) && m->n_hi == 0 && known == 1 &&
         (m->rows & 1) == 0 && in_stride == m->n_lo && ((uintptr_t)input & 3) == 0;
}

/* The records of rows [r0, r1) (the last one marked) for K = 4 groups: built in every call
 * (the streams call a pointwise layer once per row of its output, 32-64 columns), so each
 * width has its own unrolled copy (about 6 instructions a group, 15 a row). */
static inline __attribute__((always_inline)) void cols_records(const tt_dsp_mm *m, int32_t r0,
                                                               int32_t r1, tt_dsp_word *rec,
                                                               const int32_t groups) {
  const int32_t c_unit = 2 * m->output_offset + 1;
  const int32_t *bias = m->bias, *mult = m->multiplier;
  const int8_t *shift = m->shift;
  const int8_t *w = m->w_lo + r0 * m->lo_stride;
  for (int32_t r = r0; r < r1; ++r, w += m->lo_stride, rec += 2 * groups + 4) {
    rec[0] = bias ? (uint32_t)(2 * bias[r]) : 0;
#pragma GCC unroll 4
    for (int32_t j = 0; j < groups; ++j) {
      const uint32_t v = tt_dsp_load4(w + 4 * j), even = __sxtb16(v),
                     odd = tt_dsp_sxtb16_odd(v);
      tt_dsp_strd(rec + 1 + 2 * j, __sadd16(even, even), __sadd16(odd, odd));
    }
    const int32_t e = -shift[r];
    rec[2 * groups + 1] = (uint32_t)mult[r];
    rec[2 * groups + 2] = (uint32_t)(c_unit * (1 << (e - 1)));
    rec[2 * groups + 3] = (uint32_t)e;
  }
  rec[-1] |= 256u;
}

/* Rows [r0, r0 + n) of a product cols_ok takes (n even), from their records `rec` (the
 * last one marked), over all the columns; inlined in mm_cols's two calls (a frame of its
 * own would add 40 B to the deepest forward stack). */
static inline __attribute__((always_inline)) void cols_pass(const tt_dsp_mm *m,
                                                            int32_t columns,
                                                            const int8_t *input,
                                                            int32_t in_stride, int8_t *output,
                                                            int32_t col_stride,
                                                            const tt_dsp_word *rec,
                                                            int32_t r0, int32_t n) {
  int8_t *const y = output + r0;
  const tt_dsp_cols_args a = {input, tt_dsp_offset_pair(m->input_offset), in_stride, rec,
                              y + (columns - 1) * col_stride + n, col_stride - n, y};
  if (n % 8 == 0 && tt_dsp_rq_low_ok(m->output_offset))
    (m->n_lo == 8 ? tt_dsp_col8x8_low : tt_dsp_col16x8_low)(&a);
  else if (n % 8 == 0)
    (m->n_lo == 8 ? tt_dsp_col8x8 : tt_dsp_col16x8)(&a);
  else
    (m->n_lo == 8 ? tt_dsp_col8 : tt_dsp_col16)(&a);
}

/* Rows [r0, r0 + n) of a product cols_ok takes by the one-shift kernels, from their
 * one-shift records `rec` (records_e's, or the code generator's made so). */
static inline __attribute__((always_inline)) void cols_e(const tt_dsp_mm *m, int32_t columns,
                                                         const int8_t *input, int8_t *output,
                                                         int32_t col_stride,
                                                         const tt_dsp_word *rec, int32_t r0,
                                                         int32_t n) {
  int8_t *const y = output + r0;
  const tt_dsp_cols_args a = {input, tt_dsp_offset_pair(m->input_offset), m->n_lo, rec,
                              y + (columns - 1) * col_stride + n, col_stride - n, y};
  (m->n_lo == 8 ? tt_dsp_col8x16_e : tt_dsp_col16x8_e)(&a);
}

/* A product cols_ok takes, in as few passes over the columns as the staging buffer holds
 * records for (64 rows of 8 elements, 42 of 16), each an even number of rows; or the code
 * generator's records `wide` (all the rows, the last marked) in one pass. A pass of
 * records made here runs the one-shift kernels where records_e turns them (a multiple of
 * 16 rows of 8 elements, 8 of 16, output offset -128, records that fit), else cols_pass.
 * The generator's records are in the one-shift form already where it applies (e's byte 0:
 * codegen/layouts.py's `records`, under records_e's condition), read from flash as they
 * are, with no copy and no staging buffer's bound on the rows (MCUNet's 32x32x16 -> 48);
 * else cols_pass reads them (records_e's test would fail on them: the generator made
 * them so). They skip the passes' arithmetic (about 30 instructions a call: the streams
 * call a layer once a row). */
static void mm_cols(const tt_dsp_mm *m, const tt_dsp_word *wide, int32_t columns,
                    const int8_t *input, int8_t *output, int32_t col_stride,
                    tt_dsp_word *stage) {
  const int32_t words = m->n_lo / 2 + 4;
  if (wide) {
    if (wide[words - 1] & 255u)
      cols_pass(m, columns, input, m->n_lo, output, col_stride, wide, 0, m->rows);
    else
      cols_e(m, columns, input, output, col_stride, wide, 0, m->rows);
    return;
  }
  const int32_t most = (TT_FWD_DSP_STAGE_BYTES / (4 * words)) & ~1;
  const int32_t passes = (m->rows + most - 1) / most;
  const int32_t each = ((m->rows + passes - 1) / passes + 1) & ~1;
  const int32_t off = m->input_offset < 0 ? -m->input_offset : m->input_offset;
  for (int32_t r0 = 0; r0 < m->rows; r0 += each) {
    const int32_t r1 = m->rows - r0 < each ? m->rows : r0 + each, n = r1 - r0;
    if (m->n_lo == 8)
      cols_records(m, r0, r1, stage, 2);
    else
      cols_records(m, r0, r1, stage, 4);
    if (tt_dsp_rq_low_ok(m->output_offset) && n % (m->n_lo == 8 ? 16 : 8) == 0 &&
        records_e(stage, stage, n, words, m->n_lo * (128 + off) * 128))
      cols_e(m, columns, input, output, col_stride, stage, r0, n);
    else
      cols_pass(m, columns, input, m->n_lo, output, col_stride, stage, r0, n);
  }
}

/* --- pointwise columns of 32 or 48 elements, in chunks of 16 ----------------------------
 * tt_dsp_col16's form (a column's 16 inputs in r0-r7, the rows streamed past them from
 * records) for J = 2 or 3 chunks of 16 elements: per column, chunk j's inputs are loaded and
 * every row's sum over them is added to what the chunks before left in the row's record; the
 * last chunk requantizes. Where the rows' blocks of 6 pay the staging (2.4 instructions an
 * element and column) and 37 a block for its outputs, these pay a chunk's inputs once a
 * column and pass: MCUNet's 32x32x48 -> 16 1.14 -> 0.97 a MAC. A row's record is 32 words,
 * J - 1 parts of 10 then one of 12 (the first at word 10 (3 - J)):
 *   a middle part [S, W0 .. W7, e']: S the sum so far (2 bias in the first), Wi the chunk's
 *     weights sign-extended and doubled (cols_records' layout), e' 256 on the pass's last
 *     row (the loop's end), else 0;
 *   the last part [S, W0 .. W7, m, c, e] (cols_records' record, the last row's e | 256).
 * A middle part's row: 3 LDMs, 8 SMLAD and the sum stored in the next part's S, the STR's
 * post-increment moving on to the next row's same part (12 instructions for 16 MACs); the
 * last part's: TT_DSP_COL16_ROW with its last LDRD moving on to the next row (17); both 4
 * rows a loop (TST and BEQ on the marker). Frame: the arguments, then +32 the middle chunks
 * left, +36 the next chunk's inputs, +40 the current part's first row. */
typedef struct {
  const int8_t *x;          /*  0: column 0's inputs */
  uint32_t off;             /*  4: tt_dsp_offset_pair(input_offset) */
  int32_t x_stride;         /*  8 */
  const tt_dsp_word *rec;   /* 12: row 0's first part (colk_records) */
  const int8_t *y_last;     /* 16: the last column's outputs' end, as tt_dsp_cols_args */
  int32_t y_skip;           /* 20: y_stride - rows */
  int8_t *y;                /* 24: column 0's first output */
  int32_t mids;             /* 28: J - 1, 1 or 2 */
} tt_dsp_colk_args;
typedef char tt_dsp_colk_layout[offsetof(tt_dsp_colk_args, mids) == 28 ? 1 : -1];
#define TT_DSP_COLK_MID                                                                     \
  TT_DSP_SUMS16                                                                             \
  "  str r8, [lr], #88\n"
#define TT_DSP_COLK_LAST                                                                    \
  TT_DSP_SUMS16                                                                             \
  "  ldrd r9, r10, [lr], #88\n"                                                             \
  TT_DSP_ASM_RQ_IN(r8, r9, r11, r9, r10)                                                    \
  "  strb r8, [r12], #1\n"
__asm__(TT_DSP_ASM_ENTRY(tt_dsp_colk)
        "  sub sp, sp, #48\n"
        "  ldm r0, {r4-r11}\n"
        "  stm sp, {r4-r11}\n"
        "  mov r12, r10\n"          /* the output */
        "1:\n"                      /* a column */
        "  ldr r8, [sp]\n"
        "  ldr lr, [sp, #12]\n"
        "  ldr r9, [sp, #28]\n"
        "  str r9, [sp, #32]\n"
        "  ldr r10, [sp, #4]\n"
        "3:\n"                      /* a middle chunk */
        TT_DSP_LOAD16
        "  add r8, r8, #16\n"
        "  strd r8, lr, [sp, #36]\n"
        "4:\n"
        TT_DSP_COLK_MID TT_DSP_COLK_MID TT_DSP_COLK_MID TT_DSP_COLK_MID
        "  tst r11, #256\n"
        "  beq 4b\n"
        "  ldrd r8, lr, [sp, #36]\n"
        "  add lr, lr, #40\n"       /* the rows' next part */
        "  ldr r9, [sp, #32]\n"
        "  ldr r10, [sp, #4]\n"
        "  subs r9, r9, #1\n"
        "  str r9, [sp, #32]\n"
        "  bne 3b\n"
        TT_DSP_LOAD16               /* the last chunk */
        "5:\n"
        TT_DSP_COLK_LAST TT_DSP_COLK_LAST TT_DSP_COLK_LAST TT_DSP_COLK_LAST
        "  tst r10, #256\n"
        "  beq 5b\n"
        "  ldrd r4, r5, [sp, #16]\n" /* y_last, y_skip */
        "  ldrd r6, r7, [sp]\n"      /* x, (off) */
        "  ldr r8, [sp, #8]\n"
        "  add r6, r6, r8\n"
        "  str r6, [sp]\n"
        "  cmp r12, r4\n"
        "  add r12, r12, r5\n"
        "  bne 1b\n"
        "  add sp, sp, #48\n"
        "  pop {r4-r11, pc}\n"
        "  .size tt_dsp_colk, . - tt_dsp_colk\n"
        "  .text\n");
void tt_dsp_colk(const tt_dsp_colk_args *a);

/* Rows [r0, r1) of a 16 J-element product into tt_dsp_colk's records at rec (32 words a
 * row), the last row marked in every part. */
static __attribute__((noinline)) void colk_records(const tt_dsp_mm *m, int32_t r0, int32_t r1,
                                                   tt_dsp_word *rec, int32_t J) {
  const int32_t c_unit = 2 * m->output_offset + 1;
  for (int32_t r = r0; r < r1; ++r, rec += 32) {
    const int8_t *w = m->w_lo + r * m->lo_stride;
    tt_dsp_word *t = rec + 10 * (3 - J);
    t[0] = m->bias ? (uint32_t)(2 * m->bias[r]) : 0;
    for (int32_t j = 0; j < J; ++j, t += 10, w += 16) {
#pragma GCC unroll 1
      for (int32_t g = 0; g < 4; ++g) {
        const uint32_t v = tt_dsp_load4(w + 4 * g), even = __sxtb16(v),
                       odd = tt_dsp_sxtb16_odd(v);
        tt_dsp_strd(t + 1 + 2 * g, __sadd16(even, even), __sadd16(odd, odd));
      }
      t[9] = r + 1 == r1 ? 256u : 0u;
    }
    t -= 10;                                    /* the last part: m, c, e */
    const int32_t e = -m->shift[r];
    t[9] = (uint32_t)m->multiplier[r];
    t[10] = (uint32_t)(c_unit * (1 << (e - 1)));
    t[11] = (uint32_t)e | (r + 1 == r1 ? 256u : 0u);
  }
}

/* Whether tt_dsp_colk takes a product: 48 or 32 elements, at most 32 rows (with more, the
 * blocks of 6 cost less: the person detector's 12x12x32 -> 64 1.020 -> 1.078 a MAC, and
 * MCUNet's 8x8x48 -> 240 0.991 -> 1.052 measured with two rows a loop; at 32 rows the person
 * detector's 24x24x32 -> 32 1.060 -> 1.052), one segment, every row requantized in the
 * assembly (`known` 1), a multiple of 4 rows (the middle parts' loop runs 4 rows). */
static int colk_ok(const tt_dsp_mm *m, int known) {
  return (m->n_lo == 48 || m->n_lo == 32) && m->rows <= 32 && m->n_hi == 0 && known == 1 &&
         (m->rows & 3) == 0;
}

/* tt_dsp_colk over all the columns, the rows in passes of at most 16 (multiples of 4, as
 * equal as may be), their records in the staging buffer. */
static __attribute__((noinline)) void mm_colk(const tt_dsp_mm *m, int32_t columns,
                                              const int8_t *input, int32_t in_stride,
                                              int8_t *output, int32_t col_stride,
                                              tt_dsp_word *stage) {
  const int32_t J = m->n_lo >> 4, most = TT_FWD_DSP_STAGE_BYTES / 128;
  const int32_t passes = (m->rows + most - 1) / most;
  const int32_t each = ((m->rows + passes - 1) / passes + 3) & ~3;
  for (int32_t r0 = 0; r0 < m->rows; r0 += each) {
    const int32_t r1 = m->rows - r0 < each ? m->rows : r0 + each;
    colk_records(m, r0, r1, stage, J);
    int8_t *const y = output + r0;
    const tt_dsp_colk_args a = {input, tt_dsp_offset_pair(m->input_offset), in_stride,
                                stage + 10 * (3 - J), y + (columns - 1) * col_stride + (r1 - r0),
                                col_stride - (r1 - r0), y, J - 1};
    tt_dsp_colk(&a);
  }
}

tt_dsp_rows_fn tt_dsp_rows8, tt_dsp_rows6, tt_dsp_rows6w, tt_dsp_rows6p, tt_dsp_rows6s,
    tt_dsp_rows4, tt_dsp_rows4s, tt_dsp_rows4p, tt_dsp_rows2, tt_dsp_rows1, tt_dsp_rows6_low,
    tt_dsp_rows6w_low, tt_dsp_rows6p_low;

/* f's form for an output offset of -128 (tt_dsp_rq_low_ok), where it has one; f otherwise.
 * The forms differ only where they requantize, so rows that store their sums may take
 * either. Blocks of 6 only: blocks of 4 are the tails of MobileNetV2's and MCUNet's
 * expansions (their ReLU6 outputs) and the pre-widened projections, whose output offsets
 * are not -128 (1.4 KB of code for a few thousand instructions a step). */
static __attribute__((noinline)) tt_dsp_rows_fn *rows_low(tt_dsp_rows_fn *f,
                                                          int32_t output_offset) {
  if (!tt_dsp_rq_low_ok(output_offset)) return f;
  return f == tt_dsp_rows6    ? tt_dsp_rows6_low
         : f == tt_dsp_rows6w ? tt_dsp_rows6w_low
         : f == tt_dsp_rows6p ? tt_dsp_rows6p_low
                              : f;
}

/* acc[p] += sum over the n weights w[i] and the staged elements of column p; with `start`
 * the sums begin at `from` instead (the first group's SMLADs take it as their accumulator). */
static inline __attribute__((always_inline)) void mac(const tt_dsp_word *s, const int8_t *w,
                                                      int32_t n, const int32_t P,
                                                      int32_t acc[8], const int start,
                                                      int32_t from) {
  const int8_t *end = w + (n & ~3);
  if (P == 8 && w != end) {                        /* the whole groups in tt_dsp_rows8 */
    const tt_dsp_rows_args a = {w, end - w, 0, s, 1, 1, &from, 0, start ? 0 : acc, acc,
                                0, 0, 0, 0, 0, 0, 0, 0};
    tt_dsp_rows8(&a);
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

/* Whether rows [r0, r1) all requantize by the one-multiply form into int8's whole range
 * and start from a bounded bias (the assembly's requantization). */
static __attribute__((noinline)) int rows_one(const tt_dsp_mm *m, int32_t r0, int32_t r1) {
  if (!tt_dsp_rq_offset_ok(m->output_offset) || m->act_min != -128 || m->act_max != 127)
    return 0;
  /* tt_dsp_rq_init's test, the fields loaded once (not once a row: 17 -> 14 instructions a
   * row, every call) */
  const int32_t *bias = m->bias, *mult = m->multiplier;
  const int8_t *shift = m->shift;
  for (int32_t r = r0; r < r1; ++r)
    if ((bias && !tt_dsp_bias_bounded(bias[r])) || mult[r] < (1 << 30) ||
        (uint32_t)(-shift[r] - 1) >= 21u)
      return 0;
  return 1;
}

/* sum |w[i]| over i < n: four at a time by USADA8 (|(w + 128) - 128| summed over the bytes,
 * the signed bytes made unsigned by flipping their top bit), 3 instructions where the scalar
 * loop took about 16: constant_value runs it over a dead row in every call (MCUNet's 4x4x96
 * -> 384 layers have 6 and 14 such rows, 3 calls a layer). n < 2^24: the sum fits. */
static int32_t abs_sum(const int8_t *w, int32_t n) {
  uint32_t acc = 0;
  int32_t i = 0;
  for (; i + 4 <= n; i += 4) acc = __usada8(tt_dsp_load4(w + i) ^ 0x80808080u, 0x80808080u, acc);
  for (; i < n; ++i) acc += (uint32_t)(w[i] < 0 ? -w[i] : w[i]);
  return (int32_t)acc;
}

/* rows_one's test of one row r, its product's output offset and activation range already
 * known to pass (rows() tests them once a call): run once a row and call where some rows of
 * a layer are not the assembly's (MCUNet's dead rows), about half of rows_one's work. Inline
 * (+632 B of .text over rows()'s copies; as a call, +360 B and about 5 instructions a row more:
 * MCUNet's 4x4x96 -> 384 layers 1.0095 and 1.0103 a MAC instead of 0.9983 and 0.9972). */
static inline int row_in_asm(const int32_t *bias, const int32_t *mult, const int8_t *shift,
                             int32_t r) {
  return (!bias || tt_dsp_bias_bounded(bias[r])) && mult[r] >= (1 << 30) &&
         (uint32_t)(-shift[r] - 1) < 21u;
}

/* Whether row r's output is one value whatever its inputs (tt_dsp_rq_init_constant over
 * every sum its products can make: at most sum |w| (128 + |input_offset|) in magnitude,
 * staged padding adding 0); if so, that value goes to *value. Quantized models have such
 * channels (shifts past -21, biases near int32's ends, weights often all zero): two of
 * MCUNet's first layer's 16. Only asked of rows the assembly cannot requantize. */
static int constant_value(const tt_dsp_mm *m, int32_t r, int32_t bias, int8_t *value) {
  /* the rows that can be: a right shift past the one-multiply form's, or a bias past its
   * bound (a live row fails the test below at the cost of a pass over its weights) */
  if (m->multiplier[r] < 0 || m->shift[r] > 0 ||
      (m->shift[r] >= -21 && tt_dsp_bias_bounded(bias)))
    return 0;
  const int64_t weights = abs_sum(m->w_lo + r * m->lo_stride, m->n_lo) +
                          abs_sum(m->w_hi + r * m->hi_stride, m->n_hi);
  const int32_t off = m->input_offset < 0 ? -m->input_offset : m->input_offset;
  tt_dsp_rq_params q;
  if (!tt_dsp_rq_init_constant(m->multiplier[r], m->shift[r], bias, weights * (128 + off),
                               m->output_offset, &q))
    return 0;
  *value = (int8_t)tt_fwd_clamp(q.c >> 1, m->act_min, m->act_max);
  return 1;
}

/* constant_value's test (or the plan's answer) for row r; if it holds, its value is written
 * to the `columns` outputs at y. */
static __attribute__((noinline)) int constant_row(const tt_dsp_mm *m, const int8_t *plan,
                                                  int32_t r, int32_t bias, int8_t *y,
                                                  int32_t columns, int32_t col_stride) {
  int8_t v;
  if (plan) {
    if (plan[2 * r] != 2) return 0;
    v = plan[2 * r + 1];
  } else if (!constant_value(m, r, bias, &v)) {
    return 0;
  }
  for (int32_t k = 0; k < columns; ++k, y += col_stride) *y = v;
  return 1;
}

void tt_dsp_mm_plan(const tt_dsp_mm *m, int8_t *plan) {
  for (int32_t r = 0; r < m->rows; ++r) {
    int8_t v = 0;
    plan[2 * r] = rows_one(m, r, r + 1) ? 1
                  : constant_value(m, r, m->bias ? m->bias[r] : 0, &v) ? 2
                                                                          : 0;
    plan[2 * r + 1] = v;
  }
}

/* Rows [r0, r1) over Q staged blocks of P columns each (block q at stage + q * block words,
 * its outputs P * col_stride bytes after block q - 1's) holding elements [k0, k0 + n) of
 * the low segment (all of both segments when k0 = 0 and n = n_lo). The sums (doubled) start
 * from the bias (`first`) or part[r - r0][p] (Q = 1), and end requantized into out (`last`)
 * or back in part. When every row requantizes by the one-multiply form into int8's whole
 * range, the rows are one call of the assembly. */
static inline __attribute__((always_inline)) void rows(const tt_dsp_mm *m,
                                                       const tt_dsp_word *stage, const int32_t P,
                                                       int32_t Q, int32_t r0, int32_t r1,
                                                       int32_t k0, int32_t n,
                                                       int32_t (*part)[8], const int first,
                                                       const int last, int8_t *out,
                                                       int32_t col_stride, const int known,
                                                       const int8_t *plan,
                                                       const tt_dsp_word *wide) {
  /* locals: every output store could alias *m for the compiler (char type) */
  const int8_t *w_lo = m->w_lo + k0, *w_hi = m->w_hi;
  const int32_t lo_stride = m->lo_stride, hi_stride = m->hi_stride, n_hi = m->n_hi;
  const int32_t *bias = m->bias, *mult = m->multiplier;
  const int8_t *shift = m->shift;
  const int32_t lo = m->act_min, hi = m->act_max, out_off = m->output_offset;
  const int32_t block = tt_dsp_column_words(m) * P, c_unit = 2 * out_off + 1;
  const tt_dsp_word *stage_hi = stage + 2 * P * ((m->n_lo + 3) >> 2);
  const int fast = tt_dsp_rq_offset_ok(out_off);      /* the sums: tt_dsp_mm_ok */
  const int full = lo == -128 && hi == 127;
  /* one segment of whole groups: the assembly rows */
  const int whole = n_hi == 0 && n > 0 && (n & 3) == 0 && (P >= 4 || (first && last));
  tt_dsp_rows_fn *const asm_rows = rows_low(P == 8   ? tt_dsp_rows8
                                             : P == 6 ? tt_dsp_rows6
                                             : P == 4 ? tt_dsp_rows4
                                             : P == 2 ? tt_dsp_rows2
                                                      : tt_dsp_rows1,
                                             out_off);
  /* the calls over all Q blocks: with the rows widened once where that pays */
  /* a split filter's two segments of whole groups in one call (blocks of 6) */
  const int split =
      n_hi > 0 && (P == 6 || P == 4) && n > 0 && ((n | n_hi) & 3) == 0 && first && last;
  /* the rows pre-widened by the caller (tt_dsp_mm_contiguous_wide), for the runs below */
  const int pre = wide && !split && whole && (P == 6 || P == 4);
  tt_dsp_rows_fn *const asm_rows_q = rows_low(
      split                                         ? (P == 6 ? tt_dsp_rows6s : tt_dsp_rows4s)
      : pre                                         ? (P == 6 ? tt_dsp_rows6p : tt_dsp_rows4p)
      : P == 6 && Q >= 4 && n <= TT_DSP_WIDE_MAX ? tt_dsp_rows6w
                                                    : asm_rows,
      out_off);
  /* the assembly over every row, or over each run of rows that requantize in it */
  const int runs = (whole && (Q == 1 || (first && last))) || split;
  for (int32_t r = r0, r_end = r0; r < r1; ++r) {
    if (runs && r >= r_end) {
      r_end = known == 1 ? r1 : r;
      if (known != 1)
        while (r_end < r1 && (plan ? plan[2 * r_end] == 1
                                   : fast && full && row_in_asm(bias, mult, shift, r_end)))
          ++r_end;
      if (r_end > r) {
        const tt_dsp_rows_args a = {pre ? (const int8_t *)wide + 2 * (r * lo_stride + k0)
                                        : w_lo + r * lo_stride,
                                    n, pre ? 2 * lo_stride : lo_stride, stage, Q, r_end - r,
                                    bias ? bias + r : 0, 1, first ? 0 : part[r - r0],
                                    last ? 0 : part[r - r0], mult + r, shift + r, c_unit,
                                    out + r, col_stride, split ? w_hi + r * hi_stride : 0,
                                    n_hi, hi_stride};
        asm_rows_q(&a);
        r = r_end - 1;
        continue;
      }
      r_end = r + 1;                                  /* row r: below */
    }
    const int32_t b = bias ? bias[r] : 0;
    const int bounded = tt_dsp_bias_bounded(b);
    const int32_t from = bounded ? 2 * b : 0, rest = bounded ? 0 : b;
    tt_dsp_rq_params q = {0, 0, 0, 0};
    const int one = last && fast && bounded && tt_dsp_rq_init(mult[r], shift[r], out_off, &q);
    const int8_t *wr = w_lo + r * lo_stride, *wh = w_hi + r * hi_stride;
    /* one pointer walks the row's outputs (not P induction variables across rows) */
    int8_t *y = out + r;
    __asm__("" : "+r"(y));
    if (last && !one && constant_row(m, plan, r, b, y, P * Q, col_stride)) continue;
    int32_t acc[8];
    const int direct = (whole || split) && last && one && full; /* requantized by the asm */
    if (direct && (first || Q == 1)) {
      const tt_dsp_rows_args a = {wr, n, 0, stage, Q, 1, &from, 0, first ? 0 : part[r - r0],
                                  0, mult + r, shift + r, c_unit, y, col_stride, wh, n_hi,
                                  hi_stride};
      (pre ? asm_rows : asm_rows_q)(&a);            /* wr: the int8 row */
      continue;
    }
    const tt_dsp_word *blk = stage;
    for (int32_t qb = 0; qb < Q; ++qb, blk += block) {
      if (whole) {
        const tt_dsp_rows_args a = {wr, n, 0, blk, 1, 1, &from, 0, first ? 0 : part[r - r0],
                                    last ? acc : part[r - r0], 0, 0, 0, 0, 0, 0, 0, 0};
        asm_rows(&a);
      } else {
        if (first) {
          mac(blk, wr, n, P, acc, 1, from);
        } else {
#pragma GCC unroll 8
          for (int32_t p = 0; p < P; ++p) acc[p] = part[r - r0][p];
          mac(blk, wr, n, P, acc, 0, 0);
        }
        if (n_hi > 0) mac(blk + (stage_hi - stage), wh, n_hi, P, acc, 0, 0);
        if (!last) {
#pragma GCC unroll 8
          for (int32_t p = 0; p < P; ++p) part[r - r0][p] = acc[p];
        }
      }
      if (!last) continue;
      if (one && full) {
#pragma GCC unroll 8
        for (int32_t p = 0; p < P; ++p, y += col_stride)
          *y = (int8_t)__ssat(tt_dsp_rq_doubled(acc[p], &q), 8);
      } else if (one) {
#pragma GCC unroll 8
        for (int32_t p = 0; p < P; ++p, y += col_stride)
          *y = (int8_t)tt_fwd_clamp(tt_dsp_rq_doubled(acc[p], &q), lo, hi);
      } else {
        /* the sums are below 2^30 in magnitude: halving them is exact; a bias past
         * tt_dsp_bias_bounded joins here, modulo 2^32 like the portable sum */
#pragma GCC unroll 8
        for (int32_t p = 0; p < P; ++p, y += col_stride)
          *y = tt_fwd_requantize((int32_t)((uint32_t)(acc[p] >> 1) + (uint32_t)rest),
                                 mult[r], shift[r], out_off, lo, hi);
      }
    }
  }
}
/* One compiled copy of rows per block width (8 and 6: any number Q of blocks staged one
 * after the other), and one per width of chunked columns (8, 6, 4); `known` is 0, or
 * rows_one's answer for every row plus 1 (made once per call of tt_dsp_mm_contiguous, not
 * once per staged block). */
static __attribute__((noinline)) void rows8q(const tt_dsp_mm *m, const tt_dsp_word *stage,
                                             int32_t Q, int8_t *out, int32_t col_stride,
                                             int known, const int8_t *plan) {
  rows(m, stage, 8, Q, 0, m->rows, 0, m->n_lo, 0, 1, 1, out, col_stride, known, plan, 0);
}
static __attribute__((noinline)) void rows6q(const tt_dsp_mm *m, const tt_dsp_word *stage,
                                             int32_t Q, int8_t *out, int32_t col_stride,
                                             int known, const int8_t *plan,
                                             const tt_dsp_word *wide) {
  rows(m, stage, 6, Q, 0, m->rows, 0, m->n_lo, 0, 1, 1, out, col_stride, known, plan, wide);
}
#define TT_DSP_ROWS(P)                                                                      \
  static __attribute__((noinline)) void rows##P(const tt_dsp_mm *m,                        \
                                                const tt_dsp_word *stage, int8_t *out,      \
                                                int32_t col_stride, int known,              \
                                                const int8_t *plan,                         \
                                                const tt_dsp_word *wide) {                  \
    rows(m, stage, P, 1, 0, m->rows, 0, m->n_lo, 0, 1, 1, out, col_stride, known, plan,     \
         wide);                                                                             \
  }
TT_DSP_ROWS(4)
TT_DSP_ROWS(2)
TT_DSP_ROWS(1)

#define TT_DSP_ROWS_CHUNK(P)                                                                \
  static __attribute__((noinline)) void rows_chunk##P(                                      \
      const tt_dsp_mm *m, const tt_dsp_word *stage, int32_t r0, int32_t r1, int32_t k0,     \
      int32_t n, int32_t(*part)[8], int first, int last, int8_t *out, int32_t col_stride,   \
      int known, const tt_dsp_word *wide) {                                                 \
    rows(m, stage, P, 1, r0, r1, k0, n, part, first, last, out, col_stride, known, 0, wide); \
  }
TT_DSP_ROWS_CHUNK(8)
TT_DSP_ROWS_CHUNK(6)
TT_DSP_ROWS_CHUNK(4)

/* `wide`: m's rows pre-widened, or NULL (tt_dsp_mm_contiguous_wide) */
static void mm_block(const tt_dsp_mm *m, const tt_dsp_word *stage, int32_t P, int32_t Q,
                     int8_t *out, int32_t col_stride, int known, const int8_t *plan,
                     const tt_dsp_word *wide) {
  switch (P) {
    case 8: rows8q(m, stage, Q, out, col_stride, known, plan); break;
    case 6: rows6q(m, stage, Q, out, col_stride, known, plan, wide); break;
    case 4: rows4(m, stage, out, col_stride, known, plan, wide); break;
    case 2: rows2(m, stage, out, col_stride, known, plan, 0); break;
    default: rows1(m, stage, out, col_stride, known, plan, 0); break;
  }
}

/* rows_one over all the rows, once a call (every pointwise layer's, its co rows): the same
 * tests without a branch a row, four rows a step (about 15 -> 7 instructions a row):
 * m in [2^30, 2^31) where m ^ 2^30 has neither bit 31 nor 30, |bias| < 2^28 where |bias|
 * (as unsigned: 2^31 for INT32_MIN) has no bit from 28 up, ORed over the rows as
 * |bias| | (m ^ 2^30) >> 2; e = -shift in [1, 21] where (uint8)(shift + 21) <= 20, four
 * bytes a word (UADD8, then UQSUB8 of 20: 0 where every byte is). */
static __attribute__((noinline)) int rows_one_all(const tt_dsp_mm *m) {
  if (!tt_dsp_rq_offset_ok(m->output_offset) || m->act_min != -128 || m->act_max != 127)
    return 0;
  /* the shifts first, to the first word that fails: the layers with dead rows (shifts
   * -25, -26) stop there, as rows_one does at the row */
  for (const int8_t *sh = m->shift, *sh_end = sh + (m->rows & ~3); sh != sh_end; sh += 4)
    if (__uqsub8(__uadd8(tt_dsp_load4(sh), 0x15151515u), 0x14141414u)) return 0;
  const int32_t *mult = m->multiplier, *const end = mult + (m->rows & ~3);
  const int32_t *bias = m->bias;
  uint32_t bad = 0;
  for (; mult != end; mult += 4)
    bad |= ((uint32_t)mult[0] ^ (1u << 30)) | ((uint32_t)mult[1] ^ (1u << 30)) |
           ((uint32_t)mult[2] ^ (1u << 30)) | ((uint32_t)mult[3] ^ (1u << 30));
  bad >>= 2;
  if (bias)
    for (const int32_t *b = bias, *b_end = bias + (m->rows & ~3); b != b_end; b += 4)
      bad |= (uint32_t)((b[0] ^ (b[0] >> 31)) - (b[0] >> 31)) |
             (uint32_t)((b[1] ^ (b[1] >> 31)) - (b[1] >> 31)) |
             (uint32_t)((b[2] ^ (b[2] >> 31)) - (b[2] >> 31)) |
             (uint32_t)((b[3] ^ (b[3] >> 31)) - (b[3] >> 31));
  return (bad >> 28) == 0 && rows_one(m, m->rows & ~3, m->rows);
}

int tt_dsp_mm_rows_one(const tt_dsp_mm *m) { return 1 + !rows_one_all(m); }

void tt_dsp_mm_blocks(const tt_dsp_mm *m, const tt_dsp_word *stage, int32_t P, int32_t Q,
                      int8_t *out, int32_t col_stride, int known) {
  mm_block(m, stage, P, Q, out, col_stride, known, 0, 0);
}

void tt_dsp_mm_blocks_planned(const tt_dsp_mm *m, const int8_t *plan, const tt_dsp_word *stage,
                              int32_t P, int32_t Q, int8_t *out, int32_t col_stride) {
  mm_block(m, stage, P, Q, out, col_stride, 2, plan, 0);
}

void tt_dsp_widen(const tt_dsp_mm *m, tt_dsp_word *wide) {
  const int8_t *w = m->w_lo;
  const int32_t n = m->n_lo, stride = m->lo_stride;
  for (tt_dsp_word *end = wide + m->rows * (n >> 1); wide != end; w += stride) {
    const int8_t *x = w, *x_end = w + n;
    if (n & 4) {                                /* an odd group first, then pairs */
      const uint32_t v = tt_dsp_load4(x);
      tt_dsp_strd(wide, __sxtb16(v), tt_dsp_sxtb16_odd(v));
      x += 4;
      wide += 2;
    }
    for (; x != x_end; x += 8, wide += 4) {
      const uint32_t v = tt_dsp_load4(x), u = tt_dsp_load4(x + 4);
      tt_dsp_strd(wide, __sxtb16(v), tt_dsp_sxtb16_odd(v));
      tt_dsp_strd(wide + 2, __sxtb16(u), tt_dsp_sxtb16_odd(u));
    }
  }
}

void tt_dsp_mm_blocks6_wide(const tt_dsp_mm *m, const tt_dsp_word *wide, const int8_t *plan,
                            const tt_dsp_word *stage, int32_t Q, int8_t *out,
                            int32_t col_stride) {
  const int32_t n = m->n_lo, c_unit = 2 * m->output_offset + 1;
  for (int32_t r = 0, e; r < m->rows; r = e) {
    for (e = r; e < m->rows && (!plan || plan[2 * e] == 1); ++e) {
    }
    if (e > r) {                                /* a run of rows requantized in the asm */
      const tt_dsp_rows_args a = {(const int8_t *)(wide + r * (n >> 1)), n, 2 * n, stage, Q,
                                  e - r, m->bias ? m->bias + r : 0, 1, 0, 0,
                                  m->multiplier + r, m->shift + r, c_unit, out + r,
                                  col_stride, 0, 0, 0};
      rows_low(tt_dsp_rows6p, m->output_offset)(&a);
      continue;
    }
    tt_dsp_mm one = *m;                         /* row r as tt_dsp_mm_blocks_planned would */
    one.w_lo += r * m->lo_stride;
    one.rows = 1;
    one.bias = m->bias ? m->bias + r : 0;
    one.multiplier += r;
    one.shift += r;
    mm_block(&one, stage, 6, Q, out + r, col_stride, 2, plan + 2 * r, 0);
    e = r + 1;
  }
}

/* How many leading rows of a split filter (each segment's rows `stride` bytes apart) can
 * read their segments rounded up to whole groups (`pad` weights past a row's end, the next
 * row's first ones) without passing the last row's last weight. */
static int32_t split_rows(int32_t rows, int32_t lo_stride, int32_t lo_pad, int32_t hi_stride,
                          int32_t hi_pad) {
  int32_t end = rows;
  if (lo_pad > 0) {
    const int32_t back = lo_stride > 0 ? (lo_pad + lo_stride - 1) / lo_stride : rows;
    if (end > rows - back) end = rows - back;
  }
  if (hi_pad > 0) {
    const int32_t back = hi_stride > 0 ? (hi_pad + hi_stride - 1) / hi_stride : rows;
    if (end > rows - back) end = rows - back;
  }
  return end > 0 ? end : 0;
}

/* A split filter's next columns of `left` (4 or more) contiguous ones at x in
 * tt_dsp_rows6s/4s: as many blocks of 6 as the staging holds in one call (a row's constants
 * shared by all of them: blocks.14.pointwise1's 16 columns in 2 blocks and a call, where a
 * call a block cost about 47 instructions a row more), or one block of 4. Each segment is
 * read as whole groups: where its length is not a multiple of 4 (blocks.14.pointwise1
 * trains 7 of 56 input channels: 1.91 instructions a MAC by C calls per row and block), its
 * last group runs into the next row's first weights, which meet the staged padding's zeros.
 * The last row or rows, whose rounded-up groups would pass the end of a segment's array,
 * take the C path at their true lengths: nothing is read outside the filter. Out of
 * contiguous's loop, whose registers its unsplit layers need; one tt_dsp_mm on the frame.
 * Returns how many columns it ran. */
static __attribute__((noinline)) int32_t split_columns(const tt_dsp_mm *m, int32_t left,
                                                       const int8_t *x, int32_t in_stride,
                                                       int8_t *out, int32_t col_stride,
                                                       tt_dsp_word *stage, int known) {
  const int32_t W = left >= 6 ? 6 : 4, block = W * tt_dsp_column_words(m);
  const int32_t hi0 = (m->n_lo + 3) & ~3;
  int32_t Q = (TT_FWD_DSP_STAGE_BYTES / 4) / block;
  if (Q > left / W) Q = left / W;
  for (int32_t p = 0; p < W * Q; ++p) {
    tt_dsp_word *blk = stage + p / W * block;
    tt_dsp_stage(blk, W, p % W, 0, x + p * in_stride, m->n_lo, m->input_offset);
    tt_dsp_stage(blk, W, p % W, hi0, x + p * in_stride + m->n_lo, m->n_hi, m->input_offset);
    tt_dsp_stage_pad(m, blk, W, p % W);
  }
  tt_dsp_mm a = *m;
  a.n_lo = hi0;
  a.n_hi = (m->n_hi + 3) & ~3;
  a.rows = split_rows(m->rows, m->lo_stride, a.n_lo - m->n_lo, m->hi_stride,
                      a.n_hi - m->n_hi);
  const int32_t r = a.rows;
  if (r > 0) mm_block(&a, stage, W, Q, out, col_stride, known, 0, 0);
  if (r < m->rows) {                          /* the last rows at their true lengths */
    a = *m;
    a.w_lo += r * m->lo_stride;
    a.w_hi += r * m->hi_stride;
    a.rows -= r;
    a.bias = m->bias ? m->bias + r : 0;
    a.multiplier += r;
    a.shift += r;
    mm_block(&a, stage, W, Q, out + r, col_stride, 0, 0, 0);
  }
  return W * Q;
}

/* --- one column, two rows a step of 8 elements (tt_dsp_gemv2) ----------------------------
 * A product of one column (a 1x1 convolution on a 1x1 map: MCUNet's 160 -> 1000
 * classifier, the person detector's 256 -> 2) reads every weight once. Two rows a step of 8
 * elements: one LDM of the staged column's four words (two groups), and per row an LDRD of
 * its 8 weights, 4 SXTB16 and 4 SMLAD: 19 instructions for 16 MACs, four steps a loop entered
 * where the steps left make whole loops (an indirect branch a block of two rows); per two
 * rows about 37 more (the pointers, the sums from the doubled bias, two requantizations
 * with e and c from the shift, the stores). Round 30's tt_dsp_gemv4 (a weight word by LDR
 * for four rows, the staged double word loaded once for them) took 21 for 16 MACs and 1,012
 * bytes: MCUNet's classifier 248 -> 215 instructions a row. Where the weights are not whole
 * aligned double words (n a multiple of 8, w word-aligned, a stride of whole words), or the
 * rows odd, the rows kernels' block of one column. Registers in the loop: r0/r1 the sums,
 * r2/r3 a row's double word of weights, r4/r5 the rows' weights, r6-r9 the staged groups,
 * r10 a widened weight word, r11 the loop's entry, r12 the column, lr its end. Frame: a copy
 * of the arguments (bias, multipliers, shifts and output moved on a block at a time). */
typedef struct {
  const tt_dsp_word *s;       /*  0: the staged column (tt_dsp_stage's layout, P = 1) */
  const tt_dsp_word *s_end;   /*  4: its end, n / 2 words on */
  const int8_t *w;            /*  8: row 0's first weight (word-aligned) */
  int32_t w_stride;           /* 12: bytes from one row's weights to the next's (4 k) */
  const int32_t *bias;        /* 16: 2 words a block of rows (bias_step 8), or 2 zeros (0) */
  const int32_t *multiplier;  /* 20: rows requantized in the one-multiply form (rows_one), */
  const int8_t *shift;        /* 24:   into int8's whole range */
  int8_t *y;                  /* 28: row r's output at y + r */
  const int8_t *y_end;        /* 32: y + rows, rows even and > 0 */
  int32_t bias_step;          /* 36 */
  int32_t c_unit;             /* 40: 2 output_offset + 1 */
  int32_t w_next;             /* 44: 2 w_stride - n: a block's row 0 end to the next's */
  int32_t skip;               /* 48: steps the loop's first pass skips, (-n / 8) mod 4 */
} tt_dsp_gemv2_args;
typedef char tt_dsp_gemv2_layout[offsetof(tt_dsp_gemv2_args, skip) == 48 ? 1 : -1];
/* Row `acc`'s 8 products: its double word of weights at `p` (post-incremented). */
#define TT_DSP_GEMV2_ROW(acc, p)                                                            \
  "  ldrd r2, r3, [" #p "], #8\n"                                                           \
  "  sxtb16 r10, r2\n"                                                                      \
  "  sxtb16 r2, r2, ror #8\n"                                                               \
  "  smlad " #acc ", r6, r10, " #acc "\n"                                                   \
  "  smlad " #acc ", r7, r2, " #acc "\n"                                                    \
  "  sxtb16 r10, r3\n"                                                                      \
  "  sxtb16 r3, r3, ror #8\n"                                                               \
  "  smlad " #acc ", r8, r10, " #acc "\n"                                                   \
  "  smlad " #acc ", r9, r3, " #acc "\n"
#define TT_DSP_GEMV2_STEP                                                                   \
  "  ldm r12!, {r6-r9}\n" TT_DSP_GEMV2_ROW(r0, r4) TT_DSP_GEMV2_ROW(r1, r5)
/* Row `acc`'s output: its multiplier in `m`, e = -shift from `e`, c = c_unit (r12)
 * << (e - 1) into r5, TT_DSP_ASM_RQ_IN (r10 clobbered) and the byte (lr, post-incremented). */
#define TT_DSP_GEMV2_OUT(acc, m, e)                                                         \
  "  mvn r5, " #e "\n"                                                                      \
  "  rsb " #e ", " #e ", #0\n"                                                              \
  "  lsl r5, r12, r5\n"                                                                     \
  TT_DSP_ASM_RQ_IN(acc, r10, m, r5, e)                                                      \
  "  strb " #acc ", [lr], #1\n"
__asm__(TT_DSP_ASM_ENTRY(tt_dsp_gemv2)
        "  sub sp, sp, #52\n"
        "  ldm r0!, {r1-r7}\n"
        "  stm sp, {r1-r7}\n"
        "  ldm r0, {r1-r6}\n"
        "  add r7, sp, #28\n"
        "  stm r7, {r1-r6}\n"
        "  adr.w r11, 2f\n"          /* the entry: skip steps into the loop */
        "  adr.w r10, 3f\n"
        "  sub r10, r10, r11\n"
        "  mla r11, r6, r10, r11\n"
        "  orr r11, r11, #1\n"
        "  ldr r4, [sp, #8]\n"       /* row 0 */
        "1:\n"
        "  ldr r10, [sp, #12]\n"     /* stride */
        "  add r5, r4, r10\n"
        "  ldrd r12, lr, [sp]\n"     /* the column, its end */
        "  ldr r10, [sp, #16]\n"
        "  ldrd r0, r1, [r10]\n"     /* the rows' bias */
        "  ldr r2, [sp, #36]\n"
        "  add r10, r10, r2\n"
        "  str r10, [sp, #16]\n"
        "  lsl r0, r0, #1\n"
        "  lsl r1, r1, #1\n"
        "  bx r11\n"
        "2:\n"
        TT_DSP_GEMV2_STEP
        "3:\n"
        TT_DSP_GEMV2_STEP TT_DSP_GEMV2_STEP TT_DSP_GEMV2_STEP
        "  cmp r12, lr\n"
        "  bne 2b\n"
        "  ldr r10, [sp, #44]\n"
        "  add r4, r4, r10\n"        /* the next block's row 0 */
        "  ldr r12, [sp, #40]\n"     /* c_unit */
        "  add r10, sp, #20\n"
        "  ldm r10, {r2, r3, lr}\n"  /* multipliers, shifts, output */
        "  ldrd r6, r7, [r2], #8\n"
        "  ldrsb r8, [r3], #1\n"
        "  ldrsb r9, [r3], #1\n"
        TT_DSP_GEMV2_OUT(r0, r6, r8) TT_DSP_GEMV2_OUT(r1, r7, r9)
        "  add r10, sp, #20\n"
        "  stm r10, {r2, r3, lr}\n"
        "  ldr r10, [sp, #32]\n"
        "  cmp lr, r10\n"
        "  bne 1b\n"
        "  add sp, sp, #52\n"
        "  pop {r4-r11, pc}\n"
        "  .size tt_dsp_gemv2, . - tt_dsp_gemv2\n"
        "  .text\n");
void tt_dsp_gemv2(const tt_dsp_gemv2_args *a);

/* Whether tt_dsp_gemv2 takes a product of one column (one segment of whole groups) whose
 * every row requantizes in the assembly: an even number of rows, n a multiple of 8,
 * aligned double words of weights. */
static int gemv2_ok(const tt_dsp_mm *m) {
  return (m->rows & 1) == 0 && (m->n_lo & 7) == 0 && ((uintptr_t)m->w_lo & 3) == 0 &&
         (m->lo_stride & 3) == 0;
}

static void gemv2(const tt_dsp_mm *m, const tt_dsp_word *stage, int8_t *out) {
  static const int32_t zeros[2] = {0, 0};
  const tt_dsp_gemv2_args a = {stage, stage + (m->n_lo >> 1), m->w_lo, m->lo_stride,
                               m->bias ? m->bias : zeros, m->multiplier, m->shift, out,
                               out + m->rows, m->bias ? 8 : 0, 2 * m->output_offset + 1,
                               2 * m->lo_stride - m->n_lo, (-(m->n_lo >> 3)) & 3};
  tt_dsp_gemv2(&a);
}

/* tt_dsp_stage6(stage, x, in_stride, n, off): n elements (whole groups) of the 6 columns at
 * x, in_stride bytes apart, staged as a block of 6 (tt_dsp_stage4's words, group g of column
 * p at stage + 2 (6 g + p)): an odd group first, then two a step (2 LDR, 8 SXTAB16, 2 STRD,
 * CMP, BNE: 14 instructions where gcc's stage_pairs took 16 and stage_words 20), about 10 a
 * column. LDR, not LDRD: the inputs may be unaligned. tt_dsp_stage_block4: the same for a
 * block of 4 (the blocks and chunks of 4). `end`: lr = x + P in_stride; `step`: 8 P. */
#define TT_DSP_STAGE_ASM(name, end, step, pair)                                            \
  __asm__(TT_DSP_ASM_ENTRY(name)                                                          \
          "  ldr r12, [sp, #36]\n" /* off */                                               \
          end                                                                               \
          "1:\n"                                                                            \
          "  add r4, r1, r3\n"                                                              \
          "  mov r5, r1\n"                                                                  \
          "  mov r6, r0\n"                                                                  \
          "  tst r3, #4\n"                                                                  \
          "  beq 2f\n"                                                                      \
          "  ldr r7, [r5], #4\n"                                                            \
          "  sxtab16 r8, r12, r7\n"                                                         \
          "  sxtab16 r8, r8, r7\n"                                                          \
          "  sxtab16 r9, r12, r7, ror #8\n"                                                 \
          "  sxtab16 r9, r9, r7, ror #8\n"                                                  \
          "  strd r8, r9, [r6], #" #step "\n"                                               \
          "  cmp r5, r4\n"                                                                  \
          "  beq 3f\n"                                                                      \
          "2:\n"                                                                            \
          "  ldr r7, [r5], #4\n"                                                            \
          "  ldr r10, [r5], #4\n"                                                           \
          "  sxtab16 r8, r12, r7\n"                                                         \
          "  sxtab16 r8, r8, r7\n"                                                          \
          "  sxtab16 r9, r12, r7, ror #8\n"                                                 \
          "  sxtab16 r9, r9, r7, ror #8\n"                                                  \
          "  sxtab16 r11, r12, r10\n"                                                       \
          "  sxtab16 r11, r11, r10\n"                                                       \
          "  sxtab16 r7, r12, r10, ror #8\n"                                                \
          "  sxtab16 r7, r7, r10, ror #8\n"                                                 \
          "  strd r11, r7, [r6, #" #step "]\n"                                              \
          "  strd r8, r9, [r6], #" #pair "\n"                                               \
          "  cmp r5, r4\n"                                                                  \
          "  bne 2b\n"                                                                      \
          "3:\n"                                                                            \
          "  add r1, r1, r2\n"                                                              \
          "  add r0, r0, #8\n"                                                              \
          "  cmp r1, lr\n"                                                                  \
          "  bne 1b\n"                                                                      \
          "  pop {r4-r11, pc}\n"                                                            \
          "  .size " #name ", . - " #name "\n"                                              \
          "  .text\n")
TT_DSP_STAGE_ASM(tt_dsp_stage6, "  add lr, r2, r2, lsl #1\n  add lr, r1, lr, lsl #1\n", 48, 96);
TT_DSP_STAGE_ASM(tt_dsp_stage_block4, "  add lr, r1, r2, lsl #2\n", 32, 64);
void tt_dsp_stage6(tt_dsp_word *stage, const int8_t *x, int32_t in_stride, int32_t n,
                   uint32_t off);
void tt_dsp_stage_block4(tt_dsp_word *stage, const int8_t *x, int32_t in_stride, int32_t n,
                         uint32_t off);

/* Elements [k0, k0 + n) (whole groups) of the P contiguous columns at x, staged. */
static void stage_words(tt_dsp_word *stage, int32_t P, const int8_t *x, int32_t in_stride,
                        int32_t k0, int32_t n, uint32_t off) {
  for (int32_t p = 0; p < P; ++p) {
    const int8_t *v = x + p * in_stride + k0, *end = v + n;
    for (tt_dsp_word *s = stage + 2 * p; v != end; v += 4, s += 2 * P)
      tt_dsp_stage4(s, off, tt_dsp_load4(v));
  }
}

/* stage_words for the blocks of 6 or 8 columns of the pointwise path (P a constant): two
 * groups a step, their words stored by two STRDs at constant offsets (about 7.5
 * instructions a group against 10). Called once per block. */
static inline __attribute__((always_inline)) void stage_pairs(tt_dsp_word *stage,
                                                               const int32_t P,
                                                               const int8_t *x,
                                                               int32_t in_stride, int32_t n,
                                                               uint32_t off) {
  for (int32_t p = 0; p < P; ++p) {
    const int8_t *v = x + p * in_stride, *end = v + n;
    tt_dsp_word *s = stage + 2 * p;
    if (n & 4) {
      tt_dsp_stage4(s, off, tt_dsp_load4(v));
      v += 4;
      s += 2 * P;
    }
    for (; v != end; v += 8, s += 4 * P) {
      const uint32_t a = tt_dsp_load4(v), b = tt_dsp_load4(v + 4);
      tt_dsp_strd(s, __sxtab16(__sxtab16(off, a), a),
                  tt_dsp_sxtab16_odd(tt_dsp_sxtab16_odd(off, a), a));
      tt_dsp_strd(s + 2 * P, __sxtab16(__sxtab16(off, b), b),
                  tt_dsp_sxtab16_odd(tt_dsp_sxtab16_odd(off, b), b));
    }
  }
}

/* A block of P (8, 6 or 4) columns of more elements than fit the buffer 4 at a time: the
 * reduction in chunks of KC(P) elements, every chunk staged once per ROW_BLOCK rows, whose
 * sums wait in `part` (after the chunk, 256 words in) between chunks. Staging again costs
 * about 2.4 instructions an element per ROW_BLOCK rows, a chunk about 60 a row; measured on
 * the rig, 8 columns chunked beat 2 or 1 whole ones (1.28 instead of 1.6-2.1
 * instructions/MAC for MCUNet's 384 and 576 channels), and 6 (tt_dsp_rows6) beat 8. Rows
 * 32 at a time (chunks of 84 elements for 6 columns), not 16 (128): MCUNet's 4x4x384 -> 96
 * 1.052 -> 0.999 a MAC, 4x4x576 -> 160 1.051 -> 0.989 (24: 1.018, 1.014; 40: 1.022, 0.994;
 * 48: 1.063, 1.071). One segment of whole groups. */
#define ROW_BLOCK 32
#define KC(P) ((TT_FWD_DSP_STAGE_BYTES / 4 - 8 * ROW_BLOCK) / (2 * (P)) * 4)

static inline __attribute__((always_inline)) void chunked(const tt_dsp_mm *m, const int8_t *x,
                                                          int32_t in_stride, int8_t *out,
                                                          int32_t col_stride,
                                                          tt_dsp_word *stage, int known,
                                                          const int32_t P,
                                                          const tt_dsp_word *wide) {
  int32_t (*part)[8] = (int32_t(*)[8])(stage + KC(P) * P / 2);
  const uint32_t off = tt_dsp_stage_offset(m->input_offset);
  const int32_t K = m->n_lo;
  for (int32_t r0 = 0; r0 < m->rows; r0 += ROW_BLOCK) {
    const int32_t r1 = m->rows - r0 < ROW_BLOCK ? m->rows : r0 + ROW_BLOCK;
    for (int32_t k0 = 0; k0 < K; k0 += KC(P)) {
      const int32_t n = K - k0 < KC(P) ? K - k0 : KC(P);
      if (P == 6)
        tt_dsp_stage6(stage, x + k0, in_stride, n, off);
      else if (P == 4)
        tt_dsp_stage_block4(stage, x + k0, in_stride, n, off);
      else
        stage_words(stage, P, x, in_stride, k0, n, off);
      (P == 8   ? rows_chunk8
       : P == 6 ? rows_chunk6
                : rows_chunk4)(m, stage, r0, r1, k0, n, part, k0 == 0, k0 + n == K, out,
                               col_stride, known, wide);
    }
  }
}

static void chunked_block(const tt_dsp_mm *m, const int8_t *x, int32_t in_stride, int8_t *out,
                          int32_t col_stride, tt_dsp_word *stage, int known, int32_t P,
                          const tt_dsp_word *wide) {
  if (P == 8)
    chunked(m, x, in_stride, out, col_stride, stage, known, 8, 0);
  else if (P == 6)
    chunked(m, x, in_stride, out, col_stride, stage, known, 6, wide);
  else
    chunked(m, x, in_stride, out, col_stride, stage, known, 4, wide);
}

/* tt_dsp_mm_contiguous, with the rows pre-widened (tt_dsp_widen's layout) or NULL. */
static int contiguous(const tt_dsp_mm *m, const tt_dsp_word *wide, int32_t columns,
                      const int8_t *input, int32_t in_stride, int8_t *output,
                      int32_t col_stride) {
  const int32_t fit = tt_dsp_block_columns(m, TT_FWD_DSP_STAGE_BYTES);
  const int chunks = fit < 4 && m->n_hi == 0 && (m->n_lo & 3) == 0;
  if (!tt_dsp_mm_ok(m) || (fit == 0 && !(chunks && columns % 8 == 0))) return 0;
  /* 8 or 16 elements: `wide` is the rows' records, made once by the code generator, which
   * gives them only where rows_one holds for every row (tt_dsp_mm_contiguous_wide): every
   * call would otherwise test and build them again (27-39 instructions a row), and in
   * passes the staging buffer holds; where the columns are not whole aligned words, the
   * paths below from w_lo (`wide` is not their widened rows) */
  tt_dsp_word stage[TT_FWD_DSP_STAGE_BYTES / 4];
  if (wide && (m->n_lo == 8 || m->n_lo == 16) && m->n_hi == 0 && (m->rows & 1) == 0) {
    if (cols_ok(m, 1, input, in_stride)) {
      if (columns > 0) mm_cols(m, wide, columns, input, output, col_stride, stage);
      return 1;
    }
    wide = 0;
  }
  const int known = tt_dsp_mm_rows_one(m);
  const int six = m->act_min == -128 && m->act_max == 127;
  const uint32_t off = tt_dsp_stage_offset(m->input_offset);
  if (cols_ok(m, known, input, in_stride)) {
    if (columns > 0) mm_cols(m, 0, columns, input, output, col_stride, stage);
    return 1;
  }
  if (m->n_lo == 8 && m->n_hi == 0 && known == 1) {
    mm_k8(m, columns, input, in_stride, output, col_stride, stage);
    return 1;
  }
  if (columns == 1) {   /* one column: tt_dsp_gemv2, or the loop below's block of 1 */
    if (fit > 0 && m->n_hi == 0 && (m->n_lo & 3) == 0) {
      stage_words(stage, 1, input, in_stride, 0, m->n_lo, off);
      if (known == 1 && gemv2_ok(m))  /* MCUNet's 1000 classes */
        gemv2(m, stage, output);
      else
        rows1(m, stage, output, col_stride, known, 0, 0);
      return 1;
    }
  } else if (columns > 0 && !wide && colk_ok(m, known)) {
    /* 32 or 48 elements: tt_dsp_colk; not where the code generator gave the filter
     * pre-widened for the blocks of 6 below (codegen/layouts.py chose it for them) */
    mm_colk(m, columns, input, in_stride, output, col_stride, stage);
    return 1;
  }
  const int32_t hi0 = (m->n_lo + 3) & ~3;
  for (int32_t c = 0, P; c < columns; c += P) {
    const int8_t *x = input + c * in_stride;
    int8_t *out = output + c * col_stride;
    if (chunks) {   /* blocks of 6, then of 4 (as above); of 8 where not even one fits */
      const int32_t left = columns - c;
      P = fit == 0 || !six ? 8 : left >= 6 ? 6 : left >= 4 ? 4 : 0;
      if (P > 0 && left >= P) {
        chunked_block(m, x, in_stride, out, col_stride, stage, known, P, wide);
        continue;
      }
    }
    if (m->n_hi > 0 && six && fit >= 8 && columns - c >= 4) {
      P = split_columns(m, columns - c, x, in_stride, out, col_stride, stage, known);
      continue;
    }
    for (P = fit; c + P > columns; P >>= 1) {
    }
    if (m->n_hi == 0 && (m->n_lo & 3) == 0) {     /* one segment of whole groups: hot */
      /* as many blocks as fit, a row's constants shared by all of them: of 6 pixels
       * (tt_dsp_rows6, the fewest instructions a MAC) where the assembly requantizes (int8's
       * whole range), one of 8 first where 6 would leave 2 or 3 (blocks of 2 and 1 cost
       * 1.1-1.5 a MAC in the loop); else of 8 (the C requantization pays per block). Where
       * 6 columns fit but not 8 (145-170 elements: MCUNet's 8x8 maps of 144 and 160
       * channels), blocks of 6 too, not a call per block of 4 (0.97 -> 0.9 a MAC) */
      const int32_t left = columns - c;
      const int32_t W = fit < 4 || (fit == 4 && (!six || 24 * tt_dsp_column_words(m) >
                                                             TT_FWD_DSP_STAGE_BYTES))
                            ? 0
                        : fit == 4 ? 6
                        : !six || (left >= 8 && (left % 6 == 2 || left % 6 == 3)) ? 8
                                                                                   : 6;
      if (W > 0 && left >= W) {
        const int32_t block = W * tt_dsp_column_words(m);
        int32_t Q = W == 8 && six ? 1 : (TT_FWD_DSP_STAGE_BYTES / 4) / block;
        if (Q > left / W) Q = left / W;
        for (int32_t qb = 0; qb < Q; ++qb) {
          if (W == 6)
            tt_dsp_stage6(stage + qb * block, x + qb * W * in_stride, in_stride, m->n_lo, off);
          else
            stage_pairs(stage + qb * block, 8, x + qb * W * in_stride, in_stride, m->n_lo, off);
        }
        if (W == 6)
          rows6q(m, stage, Q, out, col_stride, known, 0, wide);
        else
          rows8q(m, stage, Q, out, col_stride, known, 0);
        P = W * Q;
        continue;
      }
      if (P == 4)
        tt_dsp_stage_block4(stage, x, in_stride, m->n_lo, off);
      else
        stage_words(stage, P, x, in_stride, 0, m->n_lo, off);
    } else {
      for (int32_t p = 0; p < P; ++p) {
        tt_dsp_stage(stage, P, p, 0, x + p * in_stride, m->n_lo, m->input_offset);
        tt_dsp_stage(stage, P, p, hi0, x + p * in_stride + m->n_lo, m->n_hi, m->input_offset);
        tt_dsp_stage_pad(m, stage, P, p);
      }
    }
    mm_block(m, stage, P, 1, out, col_stride, known, 0, wide);
  }
  return 1;
}

int tt_dsp_mm_contiguous(const tt_dsp_mm *m, int32_t columns, const int8_t *input,
                         int32_t in_stride, int8_t *output, int32_t col_stride) {
  return contiguous(m, 0, columns, input, in_stride, output, col_stride);
}

int tt_dsp_mm_contiguous_wide(const tt_dsp_mm *m, const tt_dsp_word *wide, int32_t columns,
                              const int8_t *input, int32_t in_stride, int8_t *output,
                              int32_t col_stride) {
  return contiguous(m, wide, columns, input, in_stride, output, col_stride);
}

#else
typedef int tt_fwd_dsp_unused;     /* ISO C: a translation unit is not empty */
#endif
