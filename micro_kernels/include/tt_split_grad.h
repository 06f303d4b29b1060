/* Activation gradients through a filter stored in two parts (tflite-train codegen).
 *
 * A layer that trains only the first k of its ci input channels keeps those channels in
 * SRAM and the frozen rest in flash (tt_conv2d_split_s8 and tt_fully_connected_split_s8 run
 * its forward). When the gradient must also flow through such a layer to earlier ones, its
 * input gradient reads both parts: these kernels are tt_conv2d_input_grad_f32 and
 * tt_fully_connected_input_grad_f32 with the filter given as w_lo [.., k] and
 * w_hi [.., ci - k] (NULL when k == ci) instead of one [.., ci] array, and give the same bits
 * as those kernels on the concatenated filter (the same float32 sums in the orders
 * tt_kernels.h documents; tested by tests/test_codegen.py on the host and on the
 * Cortex-M7). Portable C99, no double.
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

#ifdef __cplusplus
}
#endif

#endif /* TT_SPLIT_GRAD_H */
