/* Cortex-M DSP versions of the depthwise int8-gradient kernels (private), beside the
 * pointwise ones of tt_grad_dsp.h and chosen the same way (TT_GRAD_DSP: __ARM_FEATURE_DSP
 * and not -DTT_PORTABLE). Each returns 0, having done nothing, for a layer it does not take;
 * the portable code (tt_input_grad.c, tt_param_grad.c) then runs. Same bits as the portable
 * code: the accumulators are the same exact int32 sums (tt_kernels.h bounds them below
 * 2^31), only summed in another order.
 *
 * Memory: the caller's staging (stage_mem, stage_bytes: 8-byte aligned, from the arena of
 * the generated program), whose size tt_depthwise_conv2d_*_grad_s8_stage_bytes gives
 * (tt_kernels.h); with less the channels are walked in smaller blocks, and with too little
 * for one block of four, or NULL, the portable code runs. On the stack: the input
 * gradient's walk about 1.5 KB (its locals and stochastic rounding's jump tables, 520 B,
 * which the staging asked for still counts but no longer holds), under 2.5 KB with its
 * callers: below the pointwise input gradient's frames, which set a program's stack,
 * unless a caller keeps the staging on its own stack (codegen's stage_on_stack). With
 * stochastic rounding over several channel blocks, a word a dx position (the stream's
 * state after a block) in the staging's spare bytes, else on the stack up to 64 positions
 * (256 B; 64 B at a 4x4 map), else none (the stream jumps at every block). */
#ifndef TT_DEPTHWISE_GRAD_DSP_H
#define TT_DEPTHWISE_GRAD_DSP_H

#include "tt_grad_dsp.h"

#if TT_GRAD_DSP
/* The int8 input gradient of a depthwise convolution of depth multiplier 1 (the arguments
 * of tt_depthwise_conv2d_input_grad_s8: dy [n, oh, ow, c] int8 with mask or NULL, w [kh, kw,
 * c] int8, mult [c] int16, dx [n, h, wd, c]): acc[b, iy, ix, ch] = mult[ch] * the sum over
 * the taps reading (iy, ix) of dy[b, oy, ox, ch] * w[ky, kx, ch] (0 where masked), for the
 * dx positions [p0, p1) of the n * h * wd (row-major). `keep` (tt_common.h; NULL: none)
 * receives the accumulators of the positions it names and `amax` their largest magnitude
 * over [p0, p1) (either or both; where `keep` holds every position of [p0, p1) in a0, p0 = 0,
 * a layer other than 3x3 of stride 1 leaves the scan to the caller, *amax = UINT32_MAX,
 * which no magnitude is: its walks track it no faster), or `r` rounds them into dx in dx's row-major order, its stream at
 * position p0 on entry (so stochastic rounding draws as the portable code does). Takes layers with m = 1, dilation 1, padding >= 0, kh, kw <= 8, strides <= 8,
 * whose staging (stage_mem, stage_bytes) holds at least four channels (more are walked
 * block by block; stochastic rounding's stream then jumps between a position's blocks,
 * tt_grad_dsp.h, its tables on the stack). */
int tt_dsp_depthwise_input_grad_s8(const int8_t *dy, const uint8_t *mask, int32_t n,
                                   int32_t oh, int32_t ow, int32_t c, int32_t m,
                                   const int8_t *w, const int16_t *mult, int32_t kh, int32_t kw,
                                   const tt_window *win, int32_t h, int32_t wd, int32_t p0,
                                   int32_t p1, const tt_keep *keep, uint32_t *amax,
                                   tt_rounder *r, int8_t *dx, void *stage_mem,
                                   int32_t stage_bytes);

/* The int8-dy weight gradient of a depthwise convolution of depth multiplier 1 (the
 * arguments of tt_depthwise_conv2d_weight_grad_s8, unit = dy_scale * x_scale): dw [kh, kw,
 * c] float32, dw[ky, kx, ch] = (float)T * unit, T = the sum over the positions whose tap
 * reads inside the image of dy[b, oy, ox, ch] (0 where masked) * (saved[b, iy, ix, ch] -
 * x_zp). dw holds the int32 sums until their conversion. Takes layers with m = 1, dilation
 * 1, kw <= 8, ow >= 4, whose staged dy and x rows (8 (ow + wd) bytes per four channels) fit
 * the staging (stage_mem, stage_bytes) for four channels (more are walked in blocks). */
int tt_dsp_depthwise_weight_grad_s8(const int8_t *dy, const uint8_t *mask, int32_t n,
                                    int32_t oh, int32_t ow, int32_t c, int32_t m,
                                    const int8_t *saved, int32_t x_zp, int32_t h, int32_t wd,
                                    int32_t kh, int32_t kw, const tt_window *win, float unit,
                                    float *dw, void *stage_mem, int32_t stage_bytes);
#endif

#endif /* TT_DEPTHWISE_GRAD_DSP_H */
