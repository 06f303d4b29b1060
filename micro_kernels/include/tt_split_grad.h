/* Activation gradients through a filter stored in two parts (tflite-train codegen).
 *
 * A layer that trains only the first k of its ci input channels keeps those channels in
 * SRAM and the frozen rest in flash (tt_conv2d_split_s8 and tt_fully_connected_split_s8 run
 * its forward). When the gradient must also flow through such a layer to earlier ones, its
 * input gradient reads both parts: these kernels are tt_conv2d_input_grad_f32 and
 * tt_fully_connected_input_grad_f32 (and their int8-gradient forms, at the end) with the
 * filter given as w_lo [.., k] and w_hi [.., ci - k] (NULL when k == ci) instead of one
 * [.., ci] array, and give the same bits as those kernels on the concatenated filter (the
 * same float32 sums in the orders tt_kernels.h documents, or the same exact int32 sums;
 * tested by tests/test_codegen.py on the host and on the Cortex-M7). Portable C99, no
 * double.
 */
#ifndef TT_SPLIT_GRAD_H
#define TT_SPLIT_GRAD_H

#include <stdint.h>

#include "tt_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* TT_CONV2D_INPUT_GRAD, split filter. dy [n, oh, ow, co] (mask over dy or NULL);
 * w_lo [co, kh, kw, k], w_hi [co, kh, kw, ci - k]; w_scales[co]; dx [n, h, wd, ci]. */
void tt_conv2d_input_grad_split_f32(const float *dy, const uint8_t *mask, int32_t n,
                                    int32_t oh, int32_t ow, int32_t co, const int8_t *w_lo,
                                    int32_t k, const int8_t *w_hi, const float *w_scales,
                                    int32_t kh, int32_t kw, const tt_window *win, int32_t h,
                                    int32_t wd, int32_t ci, float *dx);

/* TT_FULLY_CONNECTED_INPUT_GRAD, split weights. dy [batches, units] (mask or NULL);
 * w_lo [units, k], w_hi [units, depth - k]; w_scales[units]; dx [batches, depth]. */
void tt_fully_connected_input_grad_split_f32(const float *dy, const uint8_t *mask,
                                             int32_t batches, int32_t units,
                                             const int8_t *w_lo, int32_t k,
                                             const int8_t *w_hi, const float *w_scales,
                                             int32_t depth, float *dx);

/* The int8-gradient forms (src/tt_input_grad.c, beside the whole-filter kernels they are):
 * tt_conv2d_input_grad_s8 and tt_fully_connected_input_grad_s8 with the filter as
 * w_lo [co, kh, kw, k] / [units, k] and w_hi [co, kh, kw, ci - k] / [units, depth - k]
 * (NULL when k is all of them); every other argument as there. The accumulators are exact
 * int32 sums, so reading a dx channel's weights from either part gives the same bits. */
void tt_conv2d_input_grad_split_s8(const int8_t *dy, const float *dy_scale, const uint8_t *mask,
                                   int32_t n, int32_t oh, int32_t ow, int32_t co,
                                   const int8_t *w_lo, int32_t k, const int8_t *w_hi,
                                   const int16_t *w_mult, float w_unit, int32_t kh, int32_t kw,
                                   const tt_window *win, int32_t h, int32_t wd, int32_t ci,
                                   int8_t *dx, float *dx_scale, tt_update_state *rounding,
                                   int32_t *scratch, int32_t scratch_positions);

void tt_fully_connected_input_grad_split_s8(const int8_t *dy, const float *dy_scale,
                                            const uint8_t *mask, int32_t batches, int32_t units,
                                            const int8_t *w_lo, int32_t k, const int8_t *w_hi,
                                            const int16_t *w_mult, float w_unit, int32_t depth,
                                            int8_t *dx, float *dx_scale,
                                            tt_update_state *rounding, int32_t *scratch,
                                            int32_t scratch_positions);

#ifdef __cplusplus
}
#endif

#endif /* TT_SPLIT_GRAD_H */
