/* Cortex-M DSP (ARMv7E-M) helpers shared by the forward (tt_fwd_dsp.h) and the gradient
 * (tt_grad_dsp.h) DSP kernels: loads of packed int8 and the byte extensions ACLE lacks.
 * Included only where the DSP versions are compiled. */
#ifndef TT_DSP_COMMON_H
#define TT_DSP_COMMON_H

#include <stdint.h>
#include <string.h>

#include "tt_dsp_words.h"

/* 1 where an inline-assembly loop may take all fourteen free registers: not in unoptimized
 * builds (r7 kept for the frame: CMake's default build type) nor PIC ones (r9); there the
 * C loops beside them run, with the same bits. A build with -fno-omit-frame-pointer, which
 * no macro reveals, defines it 0 itself (-DTT_DSP_ASM_ALL_REGS=0). */
#ifndef TT_DSP_ASM_ALL_REGS
#if defined(__OPTIMIZE__) && !defined(__PIC__)
#define TT_DSP_ASM_ALL_REGS 1
#else
#define TT_DSP_ASM_ALL_REGS 0
#endif
#endif

/* An assembly function's label: its own section (so --gc-sections drops it unused), Thumb,
 * global; TT_DSP_ASM_ENTRY pushes the callee-saved registers and lr after it. */
#define TT_DSP_ASM_LABEL(name)                                                            \
  "  .section .text." #name ",\"ax\",%progbits\n"                                           \
  "  .syntax unified\n"                                                                     \
  "  .thumb\n"                                                                              \
  "  .p2align 2\n"                                                                          \
  "  .global " #name "\n"                                                                   \
  "  .type " #name ", %function\n"                                                          \
  "  .thumb_func\n"                                                                         \
  #name ":\n"
#define TT_DSP_ASM_ENTRY(name) TT_DSP_ASM_LABEL(name) "  push {r4-r11, lr}\n"

/* On the functions whose inlined code holds such a loop: -Og (PlatformIO's and Zephyr's
 * debug builds) defines the same macros as -O2 but cannot hand the loop fourteen registers
 * ("impossible constraints"); compiled as at -O2 it can (test_kernels_compile_in_a_debug_build).
 * -fno-omit-frame-pointer keeps r7 whatever a function asks: such a build defines
 * TT_DSP_ASM_ALL_REGS 0 (above). On Armv8.1-M (the Cortex-M55) gcc counts loops down in lr
 * for its low-overhead LE loops, one register fewer: no-branch-count-reg (no such loops on
 * the M7, whose code it leaves as it was). */
#if TT_DSP_ASM_ALL_REGS && defined(__GNUC__) && !defined(__clang__) && !defined(__OPTIMIZE_SIZE__)
#define TT_DSP_ASM_FN __attribute__((optimize("O2", "omit-frame-pointer", "no-branch-count-reg")))
#else
#define TT_DSP_ASM_FN
#endif

/* Four int8 at any address: ARMv7E-M and v8-M load them with one LDR unless CCR.UNALIGN_TRP
 * is set (it is clear after reset); memcpy says so to C. */
/* The staging of a DSP gradient kernel from its next 8-byte boundary (LDRD/STRD and the
 * 16-byte blocks want it): a generated program's arena aligns buffers to 4 bytes only, and a
 * staging that starts 4 bytes off ran the portable code (2.7 M instructions more on one
 * depthwise layer of the person detector's step). NULL where nothing is left. */
static inline void *tt_dsp_stage_align8(void *mem, int32_t *bytes) {
  if (mem == 0) return 0;
  const int32_t skip = (int32_t)((8u - ((uintptr_t)mem & 7u)) & 7u);
  if (*bytes < skip) return 0;
  *bytes -= skip;
  return (char *)mem + skip;
}

static inline uint32_t tt_dsp_load4(const int8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

/* The first n (0..4) int8 at p in the low bytes, zeros above: reads nothing past p + n. */
static inline uint32_t tt_dsp_load_partial(const int8_t *p, int32_t n) {
  uint32_t v = 0;
  for (int32_t i = n - 1; i >= 0; --i) v = (v << 8) | (uint8_t)p[i];
  return v;
}

/* Lanes 1 and 3 of x sign-extended to two int16 ([x1, x3]); __sxtb16(x) gives [x0, x2].
 * The rotated forms are single instructions; gcc 12 does not fold the C rotate into them. */
static inline uint32_t tt_dsp_sxtb16_odd(uint32_t x) {
  uint32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
  return r;
}

/* [x1 + a.lo, x3 + a.hi] (16-bit lanes); __sxtab16(a, x) gives [x0 + a.lo, x2 + a.hi]. */
static inline uint32_t tt_dsp_sxtab16_odd(uint32_t a, uint32_t x) {
  uint32_t r;
  __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(x));
  return r;
}

/* PKHBT a, b, LSL #16: [a.lo, b.lo] (16-bit lanes; gcc 12 makes UXTH and ORR
 * of the C); PKHTB b, a, ASR #16: [a.hi, b.hi]. */
static inline uint32_t tt_dsp_low_halves(uint32_t a, uint32_t b) {
  uint32_t r;
  __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(a), "r"(b));
  return r;
}
static inline uint32_t tt_dsp_high_halves(uint32_t a, uint32_t b) {
  uint32_t r;
  __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(r) : "r"(b), "r"(a));
  return r;
}

/* Two consecutive words with one LDRD (gcc splits a 64-bit load whose halves are used apart
 * into two LDRs). The words must be 4-byte aligned. */
static inline void tt_dsp_ldrd(const tt_dsp_word *s, uint32_t *lo, uint32_t *hi) {
  __asm__("ldrd %0, %1, %2" : "=r"(*lo), "=r"(*hi) : "m"(*(const tt_dsp_dword *)s));
}

/* Writes two words with one STRD (8-byte store of a 4-byte aligned address). */
static inline void tt_dsp_strd(tt_dsp_word *s, uint32_t lo, uint32_t hi) {
  __asm__("strd %1, %2, %0" : "=m"(*(tt_dsp_dword *)s) : "r"(lo), "r"(hi));
}

/* The byte lanes (0xFF where set) of four mask bits (bit j: byte j). */
static inline uint32_t tt_dsp_mask_lanes(uint32_t bits) {
  static const uint32_t lanes[16] = {
      0x00000000u, 0x000000FFu, 0x0000FF00u, 0x0000FFFFu, 0x00FF0000u, 0x00FF00FFu,
      0x00FFFF00u, 0x00FFFFFFu, 0xFF000000u, 0xFF0000FFu, 0xFF00FF00u, 0xFF00FFFFu,
      0xFFFF0000u, 0xFFFF00FFu, 0xFFFFFF00u, 0xFFFFFFFFu};
  return lanes[bits & 15u];
}

/* The n <= 8 mask bits of elements i .. i + n - 1 (zeros above): reads no byte past the
 * one holding bit i + n - 1. */
static inline uint32_t tt_dsp_mask_bits(const uint8_t *mask, int32_t i, int32_t n) {
  const int32_t at = i >> 3, bit = i & 7;
  uint32_t v = mask[at];
  if (bit + n > 8) v |= (uint32_t)mask[at + 1] << 8;
  return (v >> bit) & ((1u << n) - 1u);
}

#endif /* TT_DSP_COMMON_H */
