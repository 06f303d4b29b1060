/* Row-streamed forward operators (tflite-train codegen): two or three int8 layers computed
 * together so that the tensors between them never exist whole.
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

/* A stream's layers and shapes, grouped so that every stream takes a few pointers.
 *
 * One layer of a stream (its first CONV_2D `a` or 1x1 `pw`, its DEPTHWISE_CONV_2D `dw`, a
 * three-layer stream's 1x1 projection `pw`): the tensors and quantization tt_conv2d_s8 or
 * tt_depthwise_conv2d_s8 (tt_forward.h) take, less its input and output.
 *   params       stride, padding, dilation, input/output zero points, activation clamps
 *                (a 1x1 layer: stride 1, pads 0);
 *   multiplier,  [c_out] per-channel requantization (int32 Q31 multiplier, int8 shift: a
 *   shift        right shift where negative, as tt_forward.h), c_out the layer's output
 *                channels;
 *   filter_dims  a CONV_2D's [c_out, kh, kw, c_in]; a depthwise layer's [1, kh, kw, c * m];
 *   filter       int8, filter_dims' shape, symmetric per output channel (zero point 0);
 *   wide         a 1x1 layer's filter pre-widened for SMLAD as tt_conv2d_wide_s8 takes it:
 *                [c_out * c_in] int16 in tflite_train/codegen/layouts.py's order, 4-byte
 *                aligned (or its row records), or a stem first layer's packed and widened
 *                filter (both as tt_conv2d_wide_s8 takes them); or NULL (the layer reads
 *                its int8 filter; always NULL for `dw`). Same bits either way: a stream
 *                computes its 1x1 layers a row or two at a time, and without it each such
 *                call sign-extends the filter's words in every block of pixels or widens
 *                the whole filter once more (tt_dsp_rows6w); a frozen filter kept widened
 *                in flash saves that every call;
 *   bias         [c_out] int32 at scale input_scale * filter_scale[c], or NULL (zero). */
typedef struct {
  const tt_fwd_conv_params *params;
  const int32_t *multiplier;
  const int8_t *shift;
  const tt_fwd_dims *filter_dims;
  const int8_t *filter;
  const int16_t *wide;
  const int32_t *bias;
} tt_stream_layer;

/* A stream's tensor shapes, [n, h, w, c] each (batch n = 1):
 *   input      the first layer's input [1, H, W, ci];
 *   mid        the first layer's output, the depthwise layer's input [1, h, w, cm];
 *   dw_output  the depthwise layer's output [1, oh, ow, cm * m] (a two-layer stream: the
 *              same as `output`);
 *   output     the stream's output: the depthwise output (two layers) or the projection's
 *              [1, oh, ow, co] (three). */
typedef struct {
  const tt_fwd_dims *input;
  const tt_fwd_dims *mid;
  const tt_fwd_dims *dw_output;
  const tt_fwd_dims *output;
} tt_stream_dims;

/* Bytes of the window: ((kh - 1) * dilation_h + 1, capped at the pointwise output's h)
 * rows of w * c bytes, for the depthwise layer's parameters and shapes (mid_dims: its input,
 * the pointwise output [1, h, w, c]; dw_filter_dims [1, kh, kw, c * m]; output_dims). */
int32_t tt_pointwise_depthwise_s8_window_bytes(const tt_fwd_conv_params *dw,
                                               const tt_fwd_dims *mid_dims,
                                               const tt_fwd_dims *dw_filter_dims,
                                               const tt_fwd_dims *output_dims);

/* The pointwise layer `pw` (1x1, stride 1, unpadded; input dims->input [1, h, w, ci], output
 * dims->mid [1, h, w, cm]) and the depthwise layer `dw` (input dims->mid, output
 * dims->output [1, oh, ow, cm * m]; dims->dw_output: the same). input: int8 dims->input,
 * output: int8 dims->output. window: tt_pointwise_depthwise_s8_window_bytes bytes, not
 * overlapping anything else. Returns TT_FWD_OK, or TT_FWD_UNSUPPORTED (touching nothing) for
 * a batch other than 1 or a pointwise layer that is not 1x1, stride 1, unpadded. */
int tt_pointwise_depthwise_s8(const tt_stream_layer *pw, const tt_stream_layer *dw,
                              const tt_stream_dims *dims, const int8_t *input, int8_t *output,
                              int8_t *window);

/* Both streams with the depthwise layer packed once per call (..._packed_s8, last argument
 * `pack`): every depthwise output row is one depthwise call, and without a pack each call
 * works out every channel group's requantization constants and packed filter again (on the
 * Cortex-M7 320-410 instructions a group and row). pack: tt_stream_depthwise_pack_bytes
 * bytes, 4-aligned, overlapping nothing else (its contents after a call are unspecified), or
 * NULL (as the forms without a pack; the three-layer stream has only this form: its callers
 * pass NULL where they lend none); 0 bytes: the layer has no pack (pass NULL). Same bits as
 * without; the portable build leaves the pack alone. The size is the same on every target,
 * so a program planned on the host fits the Cortex-M7. Arguments as for the depthwise layer
 * of tt_pointwise_depthwise_s8 (dw_output_dims: output_dims there). */
int32_t tt_stream_depthwise_pack_bytes(const tt_fwd_conv_params *dw, const tt_fwd_dims *mid_dims,
                                       const tt_fwd_dims *dw_filter_dims,
                                       const tt_fwd_dims *dw_output_dims);
int tt_pointwise_depthwise_packed_s8(const tt_stream_layer *pw, const tt_stream_layer *dw,
                                     const tt_stream_dims *dims, const int8_t *input,
                                     int8_t *output, int8_t *window, int8_t *pack);

/* The least shift >= 0 such that tt_pointwise_depthwise_s8 may write its output starting
 * `shift` bytes before its input (output + shift == input): output row oy is written after
 * the pointwise rows it reads were computed, i.e. after input rows [0, r1(oy)) were read
 * (r1(oy): one past the last mid row it reads, monotonic in oy), and input rows from r1(oy)
 * on are read later, so the condition is
 *   shift >= (oy + 1) * out_row - r1(oy) * in_row for every oy with r1(oy) < h.
 * A stride-2 depthwise layer whose output rows are no larger than two input rows (an
 * inverted-residual block's first, 64x64x8 -> 32x32x32) needs 0: its output fits over its
 * input as it is read. Same parameters as the kernel; the window is outside the input. */
int32_t tt_pointwise_depthwise_s8_shift(const tt_fwd_conv_params *dw, const tt_fwd_dims *input_dims,
                                        const tt_fwd_dims *mid_dims,
                                        const tt_fwd_dims *dw_filter_dims,
                                        const tt_fwd_dims *output_dims);

/* Three layers streamed: a CONV_2D (`a`: any kernel, stride and padding; an inverted-residual
 * block's 1x1 expansion, or a stem convolution), the DEPTHWISE_CONV_2D that alone reads its
 * output (any stride) and the 1x1 CONV_2D (`pw`: stride 1, unpadded) that alone reads the
 * depthwise output (the block's projection), one output row at a time: the rows of a's
 * output (mid, [1, h, w, cm]) a depthwise row reads are computed into `window` (each once,
 * one tt_conv2d_s8 call on the input rows it reads), the depthwise row into the window's
 * last dims->dw_output->w * c bytes (tt_depthwise_conv2d_s8), the output row from it
 * (tt_conv2d_s8). Neither mid nor the depthwise output ever exists whole; same kernels,
 * same taps, bit-identical to the three layers run whole.
 * a: input dims->input [1, H, W, ci], filter [cm, kh, kw, ci], output dims->mid. dw: input
 * dims->mid, output dims->dw_output [1, oh, ow, cm * m]. pw: input dims->dw_output, filter
 * [co, 1, 1, cm * m], output dims->output [1, oh, ow, co]. input, output: int8 of those shapes.
 * window: tt_conv_depthwise_pointwise_s8_window_bytes bytes (the span of mid rows plus one
 * depthwise row), overlapping nothing else. Returns TT_FWD_OK, or TT_FWD_UNSUPPORTED
 * (touching nothing) for a batch other than 1 or a `pw` that is not 1x1, stride 1,
 * unpadded. `pack`: as above, or NULL. */
int32_t tt_conv_depthwise_pointwise_s8_window_bytes(const tt_fwd_conv_params *dw,
                                                    const tt_fwd_dims *mid_dims,
                                                    const tt_fwd_dims *dw_filter_dims,
                                                    const tt_fwd_dims *dw_output_dims);
int tt_conv_depthwise_pointwise_packed_s8(const tt_stream_layer *a, const tt_stream_layer *dw,
                                          const tt_stream_layer *pw, const tt_stream_dims *dims,
                                          const int8_t *input, int8_t *output, int8_t *window,
                                          int8_t *pack);

/* Two three-layer streams chained: the first's output (`dims->output`, a model's first
 * 64x64 block output: 32 KB in MobileNetV2-w0.35) never exists whole. The second stream's
 * first layer (b, its input b_dims->input: the first's dims->output) takes the first's
 * output rows from a ring (`ring`: (kh - 1) * dilation_h + 1 rows of b's filter, at most
 * dims->output->h, of dims->output->w * c bytes), each computed by the first stream when it
 * is asked for, in ascending order, once. The first stream's arguments are
 * tt_conv_depthwise_pointwise_packed_s8's without `output`; the second's (b*) are too without
 * its input; the windows and packs (either pack NULL) as there, none overlapping another.
 * Same kernels on the same rows: bit-identical to the two streams called one after the
 * other. TT_FWD_OK, or TT_FWD_UNSUPPORTED where either stream is (touching nothing but the
 * first stream's pack, which it may have filled before it checks the second). */
int tt_conv_depthwise_pointwise_chain_s8(const tt_stream_layer *a, const tt_stream_layer *dw,
                                         const tt_stream_layer *pw, const tt_stream_dims *dims,
                                         const int8_t *input, int8_t *window, int8_t *pack,
                                         int8_t *ring, const tt_stream_layer *b,
                                         const tt_stream_layer *b_dw,
                                         const tt_stream_layer *b_pw,
                                         const tt_stream_dims *b_dims, int8_t *b_output,
                                         int8_t *b_window, int8_t *b_pack);

/* The least shift >= 0 such that tt_conv_depthwise_pointwise_packed_s8 may write its output
 * starting `shift` bytes before its input (output + shift == input), as for
 * tt_pointwise_depthwise_s8_shift: output row oy is written after mid rows [0, m(oy)) were
 * computed, and the input rows from the first one mid row m(oy) reads (r_lo) are read later:
 *   shift >= (oy + 1) * out_row - r_lo(m(oy)) * in_row while m(oy) < h. */
int32_t tt_conv_depthwise_pointwise_s8_shift(const tt_fwd_conv_params *a,
                                             const tt_fwd_dims *input_dims,
                                             const tt_fwd_dims *a_filter_dims,
                                             const tt_fwd_conv_params *dw,
                                             const tt_fwd_dims *mid_dims,
                                             const tt_fwd_dims *dw_filter_dims,
                                             const tt_fwd_dims *output_dims);

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
                      const int8_t *shift, const tt_fwd_dims *input_dims, const int8_t *input,
                      const tt_fwd_dims *filter_dims, const int8_t *filter, const int32_t *bias,
                      const tt_fwd_dims *output_dims, int8_t *output);

/* CONV_2D one output row at a time from the last row up, so that its output may start
 * `lead` bytes after its input (input + lead == output) and run past the input's end: the
 * form for a layer whose output is larger than its input (a stem convolution, 128x128x3 ->
 * 64x64x16). Row oy is written by one tt_conv2d_s8 call after the rows below it, reading
 * input rows [r_lo(oy), r_hi(oy)]; the rows above it read input rows up to r_hi(oy), so
 *   lead >= (r_hi(oy) + 1) * in_row - oy * out_row for every oy
 * and tt_conv2d_rows_reverse_s8_lead returns the least such lead >= 0 (MCUNet's stem: 768
 * bytes, output and input together 768 bytes more than the output alone). Same arguments
 * and bits as tt_conv2d_s8 (batch 1; any other returns TT_FWD_UNSUPPORTED, touching
 * nothing). */
int32_t tt_conv2d_rows_reverse_s8_lead(const tt_fwd_conv_params *p, const tt_fwd_dims *input_dims,
                                       const tt_fwd_dims *filter_dims,
                                       const tt_fwd_dims *output_dims);
int tt_conv2d_rows_reverse_s8(const tt_fwd_conv_params *p, const int32_t *multiplier,
                              const int8_t *shift, const tt_fwd_dims *input_dims,
                              const int8_t *input, const tt_fwd_dims *filter_dims,
                              const int8_t *filter, const int32_t *bias,
                              const tt_fwd_dims *output_dims, int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* TT_STREAM_H */
