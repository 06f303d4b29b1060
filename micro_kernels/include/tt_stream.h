/* Row-streamed forward operators (tflite-train codegen): two int8 layers computed together
 * so that the tensor between them never exists whole.
 *
 * tt_pointwise_depthwise_s8 runs a 1x1 CONV_2D (stride 1, no padding) and the
 * DEPTHWISE_CONV_2D that reads its output (the expansion and depthwise layers of an
 * inverted-residual block) one depthwise output row at a time: the rows of the pointwise
 * output that row needs are computed into `window` (each exactly once, by tt_conv2d_s8 on
 * that input row) and tt_depthwise_conv2d_s8 computes the output row from them. Same
 * kernels, same taps, so the output is bit-identical to the two layers run whole (tested
 * by tests/test_codegen.py on the host and on the Cortex-M7); the memory is the window,
 * tt_pointwise_depthwise_s8_window_bytes: (kh - 1) * dilation_h + 1 rows of the pointwise
 * output instead of all of its h rows. Worth it when the depthwise layer has stride 2:
 * its output is then a quarter of its input.
 *
 * Portable C99, no malloc, no double; batch 1. */
#ifndef TT_STREAM_H
#define TT_STREAM_H

#include <stdint.h>

#include "tt_forward.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of the window: ((kh - 1) * dilation_h + 1, capped at the pointwise output's h)
 * rows of w * c bytes, for the depthwise layer's parameters and shapes (mid_dims: its input,
 * the pointwise output [1, h, w, c]; dw_filter_dims [1, kh, kw, c * m]; output_dims). */
int32_t tt_pointwise_depthwise_s8_window_bytes(const tt_fwd_conv_params *dw,
                                               const tt_fwd_dims *mid_dims,
                                               const tt_fwd_dims *dw_filter_dims,
                                               const tt_fwd_dims *output_dims);

/* The pointwise layer: pw, pw_multiplier, pw_shift, input [1, h, w, ci], pw_filter
 * [cm, 1, 1, ci], pw_bias [cm] or NULL, as tt_conv2d_s8 takes them (pw's stride 1, pads 0).
 * The depthwise layer: dw, dw_multiplier, dw_shift, mid_dims [1, h, w, cm], dw_filter
 * [1, kh, kw, cm * m], dw_bias or NULL, output [1, oh, ow, cm * m], as
 * tt_depthwise_conv2d_s8 takes them. window: tt_pointwise_depthwise_s8_window_bytes bytes,
 * not overlapping anything else. Returns TT_FWD_OK, or TT_FWD_UNSUPPORTED (touching
 * nothing) for a batch other than 1 or a pointwise layer that is not 1x1, stride 1,
 * unpadded. */
int tt_pointwise_depthwise_s8(const tt_fwd_conv_params *pw, const int32_t *pw_multiplier,
                              const int32_t *pw_shift, const tt_fwd_dims *input_dims,
                              const int8_t *input, const tt_fwd_dims *pw_filter_dims,
                              const int8_t *pw_filter, const int32_t *pw_bias,
                              const tt_fwd_conv_params *dw, const int32_t *dw_multiplier,
                              const int32_t *dw_shift, const tt_fwd_dims *mid_dims,
                              const tt_fwd_dims *dw_filter_dims, const int8_t *dw_filter,
                              const int32_t *dw_bias, const tt_fwd_dims *output_dims,
                              int8_t *output, int8_t *window);

#ifdef __cplusplus
}
#endif

#endif /* TT_STREAM_H */
