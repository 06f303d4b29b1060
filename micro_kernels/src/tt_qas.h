/* The QAS SGD rule of one int8 weight or int32 bias (private): the float32 operations of the
 * schema's order, their integer step and the clamps. tt_param_grad.c's updates and the fused
 * DSP weight updates (tt_param_grad_dsp.c, which apply it from the gradient's registers) both
 * inline it, so that they give the same bits by construction. */
#ifndef TT_QAS_H
#define TT_QAS_H

#include <string.h>

#include "tt_common.h"

/* The loop-invariant part of one update-op call, in locals: the kernels store int8 weights,
 * which may alias anything, so options and RNG state read through pointers would be
 * reloaded for every element. */
typedef struct {
  float neg_lr;        /* -lr of this call */
  float momentum;
  int use_momentum;    /* momentum > 0 and a buffer given */
  int qas;
  int stochastic;
  uint32_t rng;
} tt_sgd_call;

/* FPv5 (the Cortex-M7's -mfpu=fpv5-sp-d16; the gate below takes ARMv7E-M only) converts to an
 * integer rounding toward minus infinity or to nearest even in one instruction (VCVTM,
 * VCVTN) and has IEEE 754-2008 maxNum/minNum (VMAXNM, VMINNM: a NaN operand gives the other
 * one). They compute exactly what the portable forms below compute, in fewer instructions
 * per weight. GCC predefines nothing that tells FPv5 from the Cortex-M4's FPv4, which has
 * none of them: a Cortex-M4 build defines TT_NO_FPV5 (without it the assembler rejects
 * VCVTM for that FPU, it does not miscompile). */
#if defined(__ARM_ARCH_7EM__) && defined(__ARM_FP) && (__ARM_FP & 4) && !defined(TT_NO_FPV5) && \
    !defined(TT_PORTABLE)
#define TT_FPV5 1
#include <arm_acle.h>
#else
#define TT_FPV5 0
#endif

/* u = (x >> 8) * 2^-24, exact (24 bits): on the M7 one fixed-point conversion of 24
 * fraction bits instead of a conversion and a multiplication. */
static inline float tt_uniform24(uint32_t x) {
#if TT_FPV5
  float u;
  __asm__("vmov %0, %1\n\tvcvt.f32.u32 %0, %0, #24" : "=&t"(u) : "r"(x >> 8));
  return u;
#else
  return (float)(x >> 8) * (1.0f / 16777216.0f);
#endif
}

/* The float32 value to round, in the schema's operation order: g = grad / scale (QAS) or
 * grad * scale; m = momentum * m + g, g = m; delta = (-lr) * g; plus the uniform
 * u = (x >> 8) * 2^-24 of the next xorshift32 state x when rounding stochastically. The
 * flags are arguments so that a call with constants compiles to a loop without tests. */
static inline float tt_sgd_value(tt_sgd_call *c, float grad, float scale, float *m, int qas,
                              int use_momentum, int stochastic) {
  float g = qas ? grad / scale : grad * scale;
  if (use_momentum) {
    *m = c->momentum * *m + g;
    g = *m;
  }
  float v = c->neg_lr * g;
  if (stochastic) {
    const uint32_t x = tt_xorshift32(c->rng);
    c->rng = x;
    v = v + tt_uniform24(x);
  }
  return v;
}

/* v clamped to [-limit, limit], NaN to -limit: a step beyond the limit saturates the
 * parameter either way, and the clamp keeps the rounding below exact and the conversion to
 * an integer defined. Clamping before rounding gives the same integer as after. */
static inline float tt_clamp_step(float v, float limit) {
#if TT_FPV5
  return __builtin_fminf(__builtin_fmaxf(v, -limit), limit);    /* VMAXNM: NaN to -limit */
#else
  if (!(v > -limit)) return -limit;
  return v > limit ? limit : v;
#endif
}

/* The integer step of a value |v| < 2^23, without libm: floorf (stochastic,
 * floor(v + u)) or rintf (nearest, half to even). For floor the conversion truncates toward
 * zero; for rint adding and subtracting 2^23 in float32 rounds to an integer, half to even
 * (the default rounding mode). */
static inline float tt_round_step(float v, int stochastic) {
  if (stochastic) {
    const float t = (float)(int32_t)v;
    return t > v ? t - 1.0f : t;
  }
  const float big = 8388608.0f;
  return v >= 0.0f ? (v + big) - big : (v - big) + big;
}

/* tt_round_step's integer for |v| < 2^23: on the M7 one VCVTM or VCVTN. */
static inline int32_t tt_round_step_s32(float v, int stochastic) {
#if TT_FPV5
  float t;
  if (stochastic)
    __asm__("vcvtm.s32.f32 %0, %1" : "=t"(t) : "t"(v));
  else
    __asm__("vcvtn.s32.f32 %0, %1" : "=t"(t) : "t"(v));
  int32_t q;
  memcpy(&q, &t, sizeof q);
  return q;
#else
  return (int32_t)tt_round_step(v, stochastic);
#endif
}

/* q clamped to [-127, 127]: on the M7 SSAT's [-128, 127], then -128 to -127 by negating
 * the low byte twice with QSUB8 (saturating: -(-128) is 127), two instructions where a
 * comparison takes three. */
static inline int8_t tt_clamp_weight(int32_t q) {
#if TT_FPV5
  return (int8_t)__qsub8(0, __qsub8(0, (uint32_t)__ssat(q, 8)));
#else
  return (int8_t)(q < -127 ? -127 : q > 127 ? 127 : q);
#endif
}

/* The residual's units per LSB of the weight (schema: the weight updates' input residual). */
#define TT_RESIDUAL_UNITS 256

/* Weight w after its float32 value v (tt_sgd_value's, no draw) by the schema's residual
 * rule, *r its int8 rounding remainder in 1/256 LSB: q = rint(256 clamp(v, +-256)) (the
 * multiplication exact, half to even), c = r + q, step = floor((c + 128) / 256), r := c -
 * 256 step in [-128, 127], w = clamp(w + step, -127, 127). The floor of a dividend shifted
 * by 256 * 257 to be non-negative (|c| <= 65536 + 128) is an unsigned division's. */
static inline int8_t tt_residual_weight(int8_t w, float v, int8_t *r) {
  const int32_t q = tt_round_step_s32((float)TT_RESIDUAL_UNITS * tt_clamp_step(v, 256.0f), 0);
  const int32_t c = (int32_t)*r + q;
  const int32_t step = (int32_t)((uint32_t)(c + TT_RESIDUAL_UNITS / 2 + 257 * TT_RESIDUAL_UNITS) /
                                 TT_RESIDUAL_UNITS) - 257;
  *r = (int8_t)(c - TT_RESIDUAL_UNITS * step);
  return tt_clamp_weight((int32_t)w + step);
}

/* Whether no weight's value v = neg_lr ((float)T unit / scale) + u of a fused update can be
 * NaN, for any int32 T: every NaN of that chain needs a NaN operand, 0 * inf, 0 / 0 or
 * inf / inf, and with unit finite, scale finite and nonzero and neg_lr finite and nonzero
 * the products and the quotient are finite or +-inf, never NaN (u is finite). */
static inline int tt_qas_nan_free(float neg_lr, float unit, float scale) {
  return unit - unit == 0.0f && scale - scale == 0.0f && scale != 0.0f &&
         neg_lr - neg_lr == 0.0f && neg_lr != 0.0f;
}

/* Weight w after the default rule (QAS, stochastic rounding, no momentum) with gradient grad
 * and scale. Where v cannot be NaN (nan_free, tt_qas_nan_free) the M7 skips the step's
 * clamp: VCVTM saturates (+-inf and |v| >= 2^31 to the int32 extremes) and QADD adds
 * saturating, so a step of |v| >= 256 still saturates the weight to +-127 (|w| <= 128), and
 * the weight is the clamped form's; only a NaN (to -256 there, to 0 by VCVTM) would differ. */
static inline int8_t tt_qas_weight(tt_sgd_call *c, int8_t w, float grad, float scale,
                                   int nan_free) {
  float unused = 0.0f;
  const float v = tt_sgd_value(c, grad, scale, &unused, 1, 0, 1);
#if TT_FPV5
  if (nan_free) return tt_clamp_weight(__qadd(w, tt_round_step_s32(v, 1)));
#else
  (void)nan_free;
#endif
  return tt_clamp_weight((int32_t)w + tt_round_step_s32(tt_clamp_step(v, 256.0f), 1));
}

#if TT_FPV5
/* The asm text both four-weight rules below share (tt_qas_steps4, tt_qas_steps4_cols): s0-s3
 * hold the four gradients over their scales; then -lr times them, the draws of the stream
 * (x) in the order j into the q registers, u = the draws' fixed-point conversions in s4-s7,
 * v = s + u (tt_sgd_value's operations and order, the same bits). */
#define TT_QAS_4(op) op(0) op(1) op(2) op(3)
#define TT_QAS_LR(j) "vmul.f32 s" #j ", s" #j ", %[lr]\n\t"
#define TT_QAS_DRAW(j)                                                        \
  "eor %[x], %[x], %[x], lsl #13\n\teor %[x], %[x], %[x], lsr #17\n\t"      \
  "eor %[x], %[x], %[x], lsl #5\n\tlsr %[q" #j "], %[x], #8\n\t"
#define TT_QAS_NOISE                                                            \
  TT_QAS_4(TT_QAS_LR) TT_QAS_4(TT_QAS_DRAW)                                     \
  "vmov s4, s5, %[q0], %[q1]\n\tvmov s6, s7, %[q2], %[q3]\n\t"                 \
  "vcvt.f32.u32 s4, s4, #24\n\tvcvt.f32.u32 s5, s5, #24\n\t"                   \
  "vcvt.f32.u32 s6, s6, #24\n\tvcvt.f32.u32 s7, s7, #24\n\t"                   \
  "vadd.f32 s0, s0, s4\n\tvadd.f32 s1, s1, s5\n\t"                             \
  "vadd.f32 s2, s2, s6\n\tvadd.f32 s3, s3, s7\n\t"
/* VCVTM of s0-s3 into q0-q3 */
#define TT_QAS_FLOOR                                                            \
  "vcvtm.s32.f32 s0, s0\n\tvcvtm.s32.f32 s1, s1\n\t"                           \
  "vcvtm.s32.f32 s2, s2\n\tvcvtm.s32.f32 s3, s3\n\t"                           \
  "vmov %[q0], %[q1], s0, s1\n\tvmov %[q2], %[q3], s2, s3"

/* tt_qas_weight's nan_free integer steps of four weights: q[j] in, their sums T_j; out,
 * VCVTM of v_j = neg_lr ((float)T_j unit / scale) + u_j, u_j from the stream's next draws in
 * the order j (tt_sgd_value's and tt_round_step_s32's operations, the same bits). Written
 * out because gcc moves every value between the core and FP registers alone: VMOV of a pair
 * (two core registers to two consecutive S registers, or back) does it two at a time, 6
 * moves for the four weights' 12, and the draws reuse T's registers. Takes s0-s7; five core
 * registers (eight weights at once found none at -O0). */
static inline __attribute__((always_inline)) void tt_qas_steps4(tt_sgd_call *c, int32_t *q,
                                                                float unit, float scale) {
  uint32_t x = c->rng;
#define TT_QAS_CVT(j) "vcvt.f32.s32 s" #j ", s" #j "\n\t"
#define TT_QAS_UNIT(j) "vmul.f32 s" #j ", s" #j ", %[unit]\n\t"
#define TT_QAS_DIV(j) "vdiv.f32 s" #j ", s" #j ", %[scale]\n\t"
  __asm__(
    "vmov s0, s1, %[q0], %[q1]\n\tvmov s2, s3, %[q2], %[q3]\n\t"
    TT_QAS_4(TT_QAS_CVT) TT_QAS_4(TT_QAS_UNIT) TT_QAS_4(TT_QAS_DIV) TT_QAS_NOISE TT_QAS_FLOOR
    : [q0] "+r"(q[0]), [q1] "+r"(q[1]), [q2] "+r"(q[2]), [q3] "+r"(q[3]), [x] "+r"(x)
    : [unit] "t"(unit), [scale] "t"(scale), [lr] "t"(c->neg_lr)
    : "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7");
#undef TT_QAS_CVT
#undef TT_QAS_UNIT
#undef TT_QAS_DIV
  c->rng = x;
}

/* tt_qas_weight's integer steps (nan_free 0: the clamp kept) of four consecutive weights
 * from their float32 gradients g[0..3] over their own scales s[0..3] (per-channel scales
 * along the row: a depthwise filter's taps): q[j] = VCVTM of clamp(neg_lr (g_j / s_j) +
 * u_j, +-256), u_j from the stream's next draws in the order j. Any gradient and scale
 * (NaN, inf, 0): VMAXNM/VMINNM are tt_clamp_step's. One VLDM each loads the four gradients
 * and scales; takes s0-s7, five core registers. */
static inline __attribute__((always_inline)) void tt_qas_steps4_cols(tt_sgd_call *c,
                                                                     int32_t *q,
                                                                     const float *g,
                                                                     const float *s) {
  uint32_t x = c->rng;
  const float lo = -256.0f, hi = 256.0f;
#define TT_QAS_CLAMP(j) "vmaxnm.f32 s" #j ", s" #j ", %[lo]\n\tvminnm.f32 s" #j ", s" #j ", %[hi]\n\t"
  __asm__(
    "vldmia %[g], {s0-s3}\n\tvldmia %[s], {s4-s7}\n\t"
    "vdiv.f32 s0, s0, s4\n\tvdiv.f32 s1, s1, s5\n\t"
    "vdiv.f32 s2, s2, s6\n\tvdiv.f32 s3, s3, s7\n\t"
    TT_QAS_NOISE TT_QAS_4(TT_QAS_CLAMP) TT_QAS_FLOOR
    : [q0] "=r"(q[0]), [q1] "=r"(q[1]), [q2] "=r"(q[2]), [q3] "=r"(q[3]), [x] "+r"(x)
    : [g] "r"(g), [s] "r"(s), "m"(*(const float(*)[4])g), "m"(*(const float(*)[4])s),
      [lr] "t"(c->neg_lr), [lo] "t"(lo), [hi] "t"(hi)
    : "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7");
#undef TT_QAS_CLAMP
  c->rng = x;
}
#undef TT_QAS_4
#undef TT_QAS_LR
#undef TT_QAS_DRAW
#undef TT_QAS_NOISE
#undef TT_QAS_FLOOR

/* tt_qas_weight's nan_free weight from its step q (tt_qas_steps4) before its last step
 * (-128 to -127): SSAT's [-128, 127], for a caller that clamps four weights at once
 * (tt_clamp_weights4). */
static inline int32_t tt_qas_weight_sat8(int8_t w, int32_t q) { return __ssat(__qadd(w, q), 8); }

/* Four bytes of [-128, 127] clamped to [-127, 127] (tt_clamp_weight's QSUB8s, on every lane
 * of the word at once). */
static inline uint32_t tt_clamp_weights4(uint32_t bytes) { return __qsub8(0, __qsub8(0, bytes)); }

/* Four int8 weights (the bytes of `word`, the first lowest) after their steps q[j] of
 * |q| <= 256 (tt_qas_steps4_cols'), clamped to [-127, 127] as tt_clamp_weight: the sums
 * in int16 lanes (w + q cannot overflow them), SSAT16's [-128, 127], the lanes' low bytes
 * back into one word and QSUB8's -128 to -127, 15 instructions with the load and store
 * where a weight at a time takes 18. */
static inline __attribute__((always_inline)) uint32_t tt_qas_weights4(uint32_t word,
                                                                      const int32_t *q) {
  uint32_t even, odd, q0 = (uint32_t)q[0], q1 = (uint32_t)q[1];
  __asm__("sxtb16 %[e], %[w]\n\tsxtb16 %[o], %[w], ror #8\n\t"
          "pkhbt %[q0], %[q0], %[q2], lsl #16\n\tpkhbt %[q1], %[q1], %[q3], lsl #16\n\t"
          "sadd16 %[e], %[e], %[q0]\n\tsadd16 %[o], %[o], %[q1]\n\t"
          "ssat16 %[e], #8, %[e]\n\tssat16 %[o], #8, %[o]\n\t"
          "uxtb16 %[e], %[e]\n\tuxtb16 %[o], %[o]\n\t"
          "orr %[e], %[e], %[o], lsl #8"
          : [e] "=&r"(even), [o] "=&r"(odd), [q0] "+r"(q0), [q1] "+r"(q1)
          : [w] "r"(word), [q2] "r"(q[2]), [q3] "r"(q[3])
          : "cc");
  return tt_clamp_weights4(even);
}


/* Bias b after the default rule (QAS, stochastic rounding, no momentum) with gradient grad
 * and scale: the separate update's result (tt_param_grad.c, update_biases_s32) by another
 * test. VCVTM of the clamped v is floor(v) wherever it does not saturate, and there
 * (|v| < 2^31) QADD of floor(v) is the saturated b + floor(v) of either of its branches
 * (v >= 2^23 is an integer); a saturated conversion (|v| >= 2^31, or v = -2^31, or a NaN
 * clamped to -2^33) takes its int64 form. */
static inline int32_t tt_qas_bias(tt_sgd_call *c, int32_t b, float grad, float scale) {
  float unused = 0.0f;
  const float v =
      tt_clamp_step(tt_sgd_value(c, grad, scale, &unused, 1, 0, 1), 8589934592.0f);
  const int32_t q = tt_round_step_s32(v, 1);
  if (__builtin_expect((uint32_t)q + 0x80000001u > 1u, 1))   /* neither INT32_MAX nor MIN */
    return __qadd(b, q);     /* (expected: gcc put the QADD out of line, a branch back a bias) */
  const int64_t r = (int64_t)b + (int64_t)v;
  return (int32_t)(r < INT32_MIN ? INT32_MIN : r > INT32_MAX ? INT32_MAX : r);
}
#endif

#endif /* TT_QAS_H */
