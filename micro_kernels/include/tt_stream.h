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
 * tt_conv2d_rows_s8 runs a CONV_2D one output row at a time so that its output may be
 * placed over the part of its input already read.
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

/* CONV_2D one output row at a time, so that its output may overlap its input.
 *
 * Same arguments and bits as tt_conv2d_s8 (batch 1; any other batch returns
 * TT_FWD_UNSUPPORTED and touches nothing). Output rows are computed in ascending order,
 * row oy by one tt_conv2d_s8 call that reads input rows [r_lo(oy), r_hi(oy)] only (r_lo(oy)
 * = max(0, oy * stride_h - pad_top)) and writes output row oy only. So the output may start
 * `shift` bytes before the input (output + shift == input) as long as no output row is
 * written over an input row still to be read:
 *   shift >= (oy + 1) * out_row - r_lo(oy) * in_row for every oy with r_lo(oy) < h
 * (out_row, in_row: bytes of an output and an input row);
 * tt_conv2d_rows_s8_shift returns the least such shift >= 0. With it, a layer whose output
 * rows are no larger than its input rows (a pointwise projection) needs one output row
 * more than its input, and a stem convolution (128x128x3 -> 64x64x16) about its output
 * plus a quarter of its input, instead of both tensors whole. */
int32_t tt_conv2d_rows_s8_shift(const tt_fwd_conv_params *p, const tt_fwd_dims *input_dims,
                                const tt_fwd_dims *filter_dims, const tt_fwd_dims *output_dims);
int tt_conv2d_rows_s8(const tt_fwd_conv_params *p, const int32_t *multiplier,
                      const int32_t *shift, const tt_fwd_dims *input_dims, const int8_t *input,
                      const tt_fwd_dims *filter_dims, const int8_t *filter, const int32_t *bias,
                      const tt_fwd_dims *output_dims, int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* TT_STREAM_H */
