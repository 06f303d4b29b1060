/* Cortex-M DSP versions of the int8-gradient training kernels (private). Chosen at compile
 * time as the forward's are (tt_fwd_internal.h): on a core with the DSP extension
 * (__ARM_FEATURE_DSP: Cortex-M4, M7, M33, ...) unless -DTT_PORTABLE; every other target
 * compiles the portable C99 only. Both give the same bits: the DSP code computes the same
 * exact int32 accumulators in another order (tt_kernels.h: integer sums bounded below 2^31,
 * so any order or factoring gives the same integers) and rounds them with the same rule.
 *
 * The staging buffer is an array on the stack of TT_GRAD_DSP_STAGE_BYTES (default 4096)
 * per call, the only memory the DSP versions use besides the kernels' arguments. */
#ifndef TT_GRAD_DSP_H
#define TT_GRAD_DSP_H

#include "tt_common.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && !defined(TT_PORTABLE)
#define TT_GRAD_DSP 1
#else
#define TT_GRAD_DSP 0
#endif

#ifndef TT_GRAD_DSP_STAGE_BYTES
#define TT_GRAD_DSP_STAGE_BYTES 4096
#endif

/* The weight gradients' staging of a layer's whole saved input (tt_param_grad_dsp.c): about
 * 2 * positions * channels bytes, on the stack of the gradient or fused update call (it
 * holds the person detector's trained pointwise layers: 256 channels at 3x3 take 6 KB). */
#ifndef TT_GRAD_DSP_WEIGHT_STAGE_BYTES
#define TT_GRAD_DSP_WEIGHT_STAGE_BYTES 8192
#endif

typedef uint32_t tt_wdsp_word __attribute__((may_alias));

#if TT_GRAD_DSP
#include <arm_acle.h>
#include <string.h>

typedef uint64_t tt_wdsp_dword __attribute__((may_alias));

/* Two consecutive 4-byte aligned words with one LDRD. */
static inline void tt_gdsp_ldrd(const tt_wdsp_word *s, uint32_t *lo, uint32_t *hi) {
  __asm__("ldrd %0, %1, %2" : "=r"(*lo), "=r"(*hi) : "m"(*(const tt_wdsp_dword *)s));
}

/* The int8 input gradient of a pointwise layer (a 1x1 convolution of stride 1 without
 * padding, or a fully connected layer): dx[p, c] = sum over o < co of h[p, o] * w[o, c],
 * h = dy * mult[o] (0 where masked), for `rows` positions p. dy [rows, co] int8 (mask over
 * dy or NULL); the weights split at input channel k: w_lo [co, k], w_hi [co, ci - k] (NULL
 * when k == ci). One of: `store` [rows, ci] receives the accumulators; `amax` receives
 * their largest magnitude; `r` rounds them into dx [rows, ci] (stochastically with the
 * draws of dx's row-major order, as the portable walk, leaving r's stream where it does).
 * Returns 0, having done nothing, when the layer is not one it takes (a multiplier outside
 * [0, 2^TT_GRAD_MAX_SHIFT], co too large for the buffer, or a single row); the caller then
 * runs the portable code. */
int tt_dsp_pointwise_input_grad_s8(const int8_t *dy, const uint8_t *mask, int32_t rows,
                                   int32_t co, const int8_t *w_lo, int32_t k,
                                   const int8_t *w_hi, int32_t ci, const int16_t *mult,
                                   int32_t *store, uint32_t *amax, tt_rounder *r, int8_t *dx);

/* The weight gradient of a pointwise layer (1x1 convolution of stride 1 without padding):
 * dw[o, c] = (float)T * unit, T = the sum over the positions p < rows of
 * dy[p, o] * (saved[p, c] - x_zp) (dy [rows, co] int8, 0 where masked; saved [rows, k]).
 * tt_dsp_pointwise_weight_stage stages `saved` into `stage` (TT_GRAD_DSP_WEIGHT_STAGE_BYTES,
 * 8-byte aligned; as int16 x - x_zp, or as int8 x when that does not fit) and returns 1, or
 * returns 0 when neither fits or rows < 2 (the caller runs the portable code); then
 * tt_dsp_pointwise_weight_channel (the same rows, k and x_zp) writes output channel o's k
 * gradients into out. */
int tt_dsp_pointwise_weight_stage(const int8_t *saved, int32_t rows, int32_t k, int32_t x_zp,
                                  tt_wdsp_word *stage);
void tt_dsp_pointwise_weight_channel(const tt_wdsp_word *stage, const int8_t *dy,
                                     const uint8_t *mask, int32_t rows, int32_t co, int32_t o,
                                     int32_t k, int32_t x_zp, float unit, float *out);
#endif

#endif /* TT_GRAD_DSP_H */
