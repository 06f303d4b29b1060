/* An activation gradient written over the gradient it is computed from (tflite-train
 * codegen): the float32 gradients of the backward pass are the largest tensors a training
 * step holds, and through a stride-1 depthwise layer dx has dy's shape.
 *
 * tt_depthwise_conv2d_input_grad_inplace_f32 is TT_DEPTHWISE_CONV2D_INPUT_GRAD with dy and
 * dx in the same memory, `data`: dx row by dx row, each by one tt_depthwise_conv2d_input_grad_f32
 * call on the dy rows it reads (so the same sums in the same order: bit-identical, tested by
 * tests/test_codegen.py), into a ring of rows in `scratch` that go to their place once no
 * later dx row reads the dy row they cover. Portable C99, no malloc. */
#ifndef TT_INPLACE_GRAD_H
#define TT_INPLACE_GRAD_H

#include <stdint.h>

#include "tt_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of scratch: rows * wd * c floats, rows = (kh - 1) * dilation_h - pad_top + 1 (at
 * least 1): 2 rows for a 3x3 SAME layer. 0 when the layer is not supported: batch other
 * than 1, depth multiplier other than 1, a stride other than 1, dx of another shape than
 * dy, or a mask whose rows do not start on a byte ((ow * c) % 8 != 0; mask_used 1). */
int32_t tt_depthwise_conv2d_input_grad_inplace_f32_scratch_bytes(
    int32_t n, int32_t oh, int32_t ow, int32_t c, int32_t m, int32_t kh, int32_t kw,
    const tt_window *win, int32_t h, int32_t wd, int32_t mask_used);

/* data: dy [1, oh, ow, c] on entry, dx [1, h, wd, c] (h == oh, wd == ow) on return; mask
 * over dy or NULL; w [1, kh, kw, c] int8 with w_scales[c]. TT_OK, or 1 (unsupported:
 * nothing touched) where the scratch size is 0. */
int tt_depthwise_conv2d_input_grad_inplace_f32(float *data, const uint8_t *mask, int32_t n,
                                               int32_t oh, int32_t ow, int32_t c, int32_t m,
                                               const int8_t *w, const float *w_scales,
                                               int32_t kh, int32_t kw, const tt_window *win,
                                               int32_t h, int32_t wd, float *scratch);

/* The int8 form, TT_DEPTHWISE_CONV2D_INPUT_GRAD of int8 dy, any stride: dx overlapping dy,
 * starting tt_depthwise_conv2d_input_grad_over_s8_lead bytes before it, or further back by
 * whole positions (a multiple of c bytes: the DSP version's channel blocks write their channels
 * over dy's same channels, so a shift by part of a position would overwrite other blocks'
 * dy before they read it). Two passes, as
 * tt_depthwise_conv2d_input_grad_s8 (tt_kernels.h), whose arguments it takes: the first
 * reads all of dy for dx's scale (so no ring of dx rows can stand in: nothing may be
 * written before it ends) and keeps accumulators only in `scratch`, never in dx's bytes;
 * the second writes dx position p over dy position p - lead / c (or an earlier one), one
 * before the first that it reads, which no later position reads either (stride 1: position
 * p reads dy's positions from p - lag * wd - lag_w on, lag = (kh - 1) * dilation_h -
 * pad_top, lag_w likewise; the DSP version stages the dy rows a dx row reads when it starts
 * that row, and its channel blocks read and write only their own channels, at the same
 * offsets in dy and dx). Same bits as
 * tt_depthwise_conv2d_input_grad_s8 (the accumulators kept change only which are computed
 * again). */
void tt_depthwise_conv2d_input_grad_over_s8(const int8_t *dy, const float *dy_scale,
                                            const uint8_t *mask, int32_t n, int32_t oh,
                                            int32_t ow, int32_t c, int32_t m, const int8_t *w,
                                            const int16_t *w_mult, float w_unit, int32_t kh,
                                            int32_t kw, const tt_window *win, int32_t h,
                                            int32_t wd, int8_t *dx, float *dx_scale,
                                            tt_update_state *rounding, int32_t *scratch,
                                            int32_t scratch_positions, void *stage,
                                            int32_t stage_bytes);

/* The bytes dx starts before dy for the call above. Stride 1: (lag * wd + lag_w + 1) * c
 * (0 where that is negative, a window reading only below and right of its position).
 * Other strides: dx is larger than dy (4x at stride 2), and dy may lie inside dx's tail:
 * c times the most positions p - q + 1 over dx positions p, q the least dy position any dx
 * position after p reads (so the writes up to p cover only dy positions no later one
 * reads). -1 where the layer is not supported: depth multiplier other than 1, or stride 1
 * with dx of another shape than dy. */
int32_t tt_depthwise_conv2d_input_grad_over_s8_lead(int32_t n, int32_t oh, int32_t ow, int32_t c,
                                                    int32_t m, int32_t kh, int32_t kw,
                                                    const tt_window *win, int32_t h,
                                                    int32_t wd);

#ifdef __cplusplus
}
#endif

#endif /* TT_INPLACE_GRAD_H */
