/* tflite-train int8 forward kernels: portable C99, no TFLM types, no malloc.
 *
 * One function per forward operator and data type, bit-exact with TFLM's reference kernels
 * (tensorflow/lite/kernels/internal/reference/integer_ops) as built in the pinned
 * tflite-micro wheel, i.e. WITHOUT TFLITE_SINGLE_ROUNDING: requantization is gemmlowp's
 * double-rounding MultiplyByQuantizedMultiplier (saturating rounding doubling high multiply,
 * then a rounding right shift).
 *
 * Quantization parameters are computed once, before any kernel runs (in Python,
 * tflite_train/runtime/c_forward.py, from the same functions the numpy forward uses, or by a
 * code generator); every kernel does integer arithmetic per element (plus float32 in
 * QUANTIZE/DEQUANTIZE), never double: the target FPU is single precision (fpv5-sp-d16).
 * Sums are int32 as in TFLM; a layer whose int32 accumulator overflows is outside what TFLM
 * defines and outside what these kernels promise.
 *
 * Layouts: activations NHWC, row-major. CONV_2D filters [co, kh, kw, ci]; DEPTHWISE_CONV_2D
 * filters [1, kh, kw, c * m] (output channel c * m + j reads input channel c);
 * FULLY_CONNECTED weights [units, depth]. Weights are symmetric (zero point 0); biases int32.
 *
 * Requantization of an accumulator `acc` of output channel k:
 *   y = clamp(MBQM(acc, multiplier[k], shift[k]) + output_offset, act_min, act_max)
 * with multiplier an int32 Q31 value in [2^30, 2^31) (or 0) and shift an int8 in [-31, 31],
 * > 0 a left shift, < 0 a right shift (TFLite's QuantizeMultiplier of the real scale
 * s_x * s_w[k] / s_y). Per-tensor weights pass the same pair for every channel. The shifts
 * are `const int8_t *` because a training model keeps them in flash, one per output channel
 * (TT_CONV2D & co., schema/training_ops.json): 1 byte a channel instead of 4; every shift
 * QuantizeMultiplier gives for a multiplier TFLM can requantize fits. The kernels read each
 * shift once per channel (sign-extended into a register), so the narrower type changes no
 * bit and no inner loop. act_min/act_max are the fused activation's
 * range in the output's int8 domain (CalculateActivationRangeQuantized: [-128, 127] for
 * NONE, [zp, 127] for RELU, ...).
 *
 * Arrays of parameters and shapes are read-only and may live in flash. No parameter struct
 * holds a pointer, so a code generator can emit them as `static const` data.
 *
 * Cortex-M DSP versions. On a core with the DSP extension (__ARM_FEATURE_DSP: Cortex-M4,
 * M7, M33, ...) the convolution, fully connected and depthwise kernels compile to versions
 * that stage int8 data as int16 pairs and multiply-accumulate two at a time (SMLAD),
 * requantizing with one SMMLAR, and the same-shape ADD (tt_add_s8) to one that looks both
 * inputs' rescaled values up in two 256-entry tables (2 KB of stack, built per call) and
 * requantizes their sum with one SMMLAR; every other core (M0+, M3, x86) compiles the
 * portable C99.
 * Same signatures, same bits (the DSP build is tested against the portable one on the
 * Cortex-M7, tests/test_cortex_m7_dsp.py); -DTT_PORTABLE forces the portable code (the
 * build flag TFLITE_TRAIN_KERNELS=portable: tflite_train.inc, CMakeLists.txt). The
 * DSP versions' only extra memory is a stack buffer of TT_FWD_DSP_STAGE_BYTES (default 2048,
 * src/tt_fwd_dsp.h): their deepest call chain takes about 3.0 KB of stack instead of 0.6 KB
 * (arm-none-eabi-gcc 12 -O2 -fstack-usage). A layer whose data does not fit that buffer runs
 * the portable code: convolution windows (kh kw ci) of more than 1024 elements, except
 * pointwise and fully connected layers of a multiple of 8 pixels (batches), whole groups of
 * four channels and no split (taken in chunks); depthwise kernels taller than 8 rows or
 * whose packed filter and one window do not fit (a depth multiplier > 1 then tries an
 * im2col form first).
 */
#ifndef TT_FORWARD_H
#define TT_FORWARD_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TT_FWD_OK 0
#define TT_FWD_UNSUPPORTED 1

/* Shape of a 4-D tensor: activations [n, h, w, c]; filters [co, kh, kw, ci]. */
typedef struct {
  int32_t n, h, w, c;
} tt_fwd_dims;

/* A convolution's window and quantization. pad_top/pad_left are the leading padding of
 * TFLM's ComputePaddingWithOffset (SAME: total // 2, the odd pixel after; VALID: 0). Taps
 * outside the image contribute nothing (TFLM skips them: they are the input zero point). */
typedef struct {
  int32_t stride_h, stride_w;
  int32_t dilation_h, dilation_w;
  int32_t pad_top, pad_left;
  int32_t input_offset;        /* minus the input's zero point */
  int32_t output_offset;       /* the output's zero point */
  int32_t act_min, act_max;    /* fused activation, output domain */
} tt_fwd_conv_params;

/* FULLY_CONNECTED's quantization. */
typedef struct {
  int32_t input_offset;        /* minus the input's zero point */
  int32_t output_offset;       /* the output's zero point */
  int32_t act_min, act_max;
} tt_fwd_fc_params;

/* CONV_2D (TFLM reference ConvPerChannel).
 * input [n, h, w, ci] int8; filter [co, kh, kw, ci] int8; bias [co] int32 or NULL;
 * multiplier[co], shift[co]; output [n, oh, ow, co] int8 (oh, ow as given: the caller's
 * padding rule decided them). Output must not overlap the input. */
void tt_conv2d_s8(const tt_fwd_conv_params *p, const int32_t *multiplier, const int8_t *shift,
                  const tt_fwd_dims *input_dims, const int8_t *input,
                  const tt_fwd_dims *filter_dims, const int8_t *filter, const int32_t *bias,
                  const tt_fwd_dims *output_dims, int8_t *output);

/* tt_conv2d_s8 with, beside the int8 filter, the same filter pre-widened for SMLAD (`wide`,
 * 4-byte aligned, or NULL): per output channel, per group of four input channels
 * w0..w3, the int16 [w0, w2, w1, w3] (co * ci int16 in all; tflite_train/codegen/layouts.py
 * makes it). The DSP version's pointwise blocks of 6 or 4 pixels (a 1x1 filter at stride 1
 * without padding, ci a multiple of 4 and more than 16) load it for the output channels
 * that requantize by the one-multiply form into int8's whole range, where they would
 * sign-extend the filter's words again in every block: 2 instructions fewer per 4 input
 * channels, channel and block. For frozen filters (the generated program keeps both in
 * flash); every other case, and the portable version, read `filter` only. Bit-identical to
 * tt_conv2d_s8. For such a filter of 8 or 16 input channels and an even number of output
 * channels `wide` is instead the DSP version's row records (layouts.py's `records`: co
 * (ci / 2 + 8) int16), given only where every channel requantizes by the one-multiply form
 * into int8's whole range: the DSP version skips testing and building them in every call.
 * For a stem (3 input channels, a 4x4 kernel undilated whose last row and every row's last
 * tap are zero in every channel, its third row not: the importer's grown 3x3) `wide` is
 * instead its filter as the DSP im2col path packs it, co rows of 28 bytes padded to 8
 * bytes, followed by those rows pre-widened as above (co * 42 int16 for co * 28 a multiple
 * of 8; layouts.py's `stem_wide`), given only where every channel requantizes by the
 * one-multiply form into int8's whole range: the DSP version trusts the zero taps and the
 * requantization, and skips checking, packing and widening the filter in every call. */
void tt_conv2d_wide_s8(const tt_fwd_conv_params *p, const int32_t *multiplier,
                       const int8_t *shift, const tt_fwd_dims *input_dims, const int8_t *input,
                       const tt_fwd_dims *filter_dims, const int8_t *filter,
                       const int16_t *wide, const int32_t *bias,
                       const tt_fwd_dims *output_dims, int8_t *output);

/* CONV_2D whose filter is stored in two parts along its input channels (a layer that trains
 * only its first k input channels keeps them in SRAM, the frozen rest in flash):
 * filter_lo [co, kh, kw, k], filter_hi [co, kh, kw, ci - k] (NULL when k == ci).
 * Bit-identical to tt_conv2d_s8 on the concatenated filter. filter_dims is the whole
 * filter's [co, kh, kw, ci]. */
void tt_conv2d_split_s8(const tt_fwd_conv_params *p, const int32_t *multiplier,
                        const int8_t *shift, const tt_fwd_dims *input_dims,
                        const int8_t *input, const tt_fwd_dims *filter_dims,
                        const int8_t *filter_lo, int32_t k, const int8_t *filter_hi,
                        const int32_t *bias, const tt_fwd_dims *output_dims, int8_t *output);

/* tt_conv2d_split_s8 of a 1x1 filter at stride 1 without padding (output [n, h, w, co] of
 * input [n, h, w, ci]) whose output may overlap its input: `input` may start at `output`
 * when co <= ci, and must start at least n*h*w*(co - ci) bytes after it when co > ci (the
 * input at the end of the output's bytes); or the two may not overlap at all. Rows of w
 * pixels are computed one at a time into `scratch` (w * co bytes) and copied over input
 * rows already read. Bit-identical to tt_conv2d_split_s8. Returns TT_FWD_UNSUPPORTED,
 * touching nothing, for another filter, window or placement. */
int32_t tt_conv2d_split_inplace_s8(const tt_fwd_conv_params *p, const int32_t *multiplier,
                                   const int8_t *shift, const tt_fwd_dims *input_dims,
                                   const int8_t *input, const tt_fwd_dims *filter_dims,
                                   const int8_t *filter_lo, int32_t k,
                                   const int8_t *filter_hi, const int32_t *bias,
                                   const tt_fwd_dims *output_dims, int8_t *output,
                                   int8_t *scratch);

/* DEPTHWISE_CONV_2D (TFLM reference DepthwiseConvPerChannel), any depth multiplier
 * m = output c / input c and dilation. input [n, h, w, c]; filter [1, kh, kw, c * m];
 * bias [c * m] or NULL; multiplier/shift [c * m]; output [n, oh, ow, c * m], not overlapping
 * the input. */
void tt_depthwise_conv2d_s8(const tt_fwd_conv_params *p, const int32_t *multiplier,
                            const int8_t *shift, const tt_fwd_dims *input_dims,
                            const int8_t *input, const tt_fwd_dims *filter_dims,
                            const int8_t *filter, const int32_t *bias,
                            const tt_fwd_dims *output_dims, int8_t *output);

/* In-place DEPTHWISE_CONV_2D: the output [n, oh, ow, c] is written over its input
 * [n, h, w, c] in `data` (the output occupies the first n*oh*ow*c bytes; the bytes after
 * it hold leftovers of the input). Bit-identical to tt_depthwise_conv2d_s8.
 *
 * Supported: depth multiplier 1 (output channels == input channels), any batch, kernel,
 * stride, dilation and padding with oh*ow <= h*w (always true for SAME and VALID; the
 * paper's models use 3x3, 5x5 and 7x7 kernels at stride 1 and 2, and 4x4 or 8x8 at stride 2
 * once imported with grown kernels). Anything else returns TT_FWD_UNSUPPORTED and touches
 * nothing.
 *
 * How: four channels at a time (output channel j reads only input channel j), one output
 * row at a time into a ring of line buffers in `scratch`, each ow * min(c, 4) bytes (one
 * output row of the four channels); a finished row is copied to its place once no later row
 * of those channels reads the input pixels it overwrites. The ring holds the rows still
 * waiting: tt_depthwise_conv2d_inplace_s8_scratch_bytes() simulates the schedule and returns
 * lines * ow * min(c, 4) bytes (0 when unsupported). For SAME and VALID windows that is
 * min(oh, pad_top / stride_h + 1) lines: at stride 1 SAME 2 for 3x3, 3 for 5x5, 4 for 7x7
 * (pad_top + 1, dilation included); at stride 2 one line (two for 5x5 with pad_top 2 and
 * for 7x7); VALID one line. E.g. a 3x3 stride-1 layer at 64x64: 2 * 64 * 4 = 512 bytes. The
 * scratch is the only memory besides `data` (and the DSP versions' stack buffer); it holds no
 * state between calls, and what it holds after one is unspecified: where a group's whole
 * output fits the DSP versions' staging buffer beside its staged columns (small maps), it is
 * computed there in one pass and copied over its input channels, which no other group reads,
 * and the scratch is not used. */
int32_t tt_depthwise_conv2d_inplace_s8_scratch_bytes(const tt_fwd_conv_params *p,
                                                     const tt_fwd_dims *input_dims,
                                                     const tt_fwd_dims *filter_dims,
                                                     const tt_fwd_dims *output_dims);
int tt_depthwise_conv2d_inplace_s8(const tt_fwd_conv_params *p, const int32_t *multiplier,
                                   const int8_t *shift, const tt_fwd_dims *input_dims,
                                   int8_t *data, const tt_fwd_dims *filter_dims,
                                   const int8_t *filter, const int32_t *bias,
                                   const tt_fwd_dims *output_dims, int8_t *scratch);

/* FULLY_CONNECTED (TFLM reference FullyConnected, int8). input [batches, depth];
 * weights [units, depth]; bias [units] or NULL; multiplier/shift [units] (per-tensor
 * weights: the same pair repeated); output [batches, units]. */
void tt_fully_connected_s8(const tt_fwd_fc_params *p, const int32_t *multiplier,
                           const int8_t *shift, int32_t batches, int32_t depth,
                           const int8_t *input, int32_t units, const int8_t *weights,
                           const int32_t *bias, int8_t *output);

/* FULLY_CONNECTED with weights in two parts along depth: weights_lo [units, k] and
 * weights_hi [units, depth - k] (NULL when k == depth); as tt_conv2d_split_s8. */
void tt_fully_connected_split_s8(const tt_fwd_fc_params *p, const int32_t *multiplier,
                                 const int8_t *shift, int32_t batches, int32_t depth,
                                 const int8_t *input, int32_t units, const int8_t *weights_lo,
                                 int32_t k, const int8_t *weights_hi, const int32_t *bias,
                                 int8_t *output);

/* ADD (TFLM add.cc, int8): both inputs shifted left by left_shift (20) and rescaled to a
 * common scale, summed, rescaled to the output:
 *   a' = MBQM((a + input1_offset) << left_shift, input1_multiplier, input1_shift)
 *   y  = clamp(MBQM(a' + b', output_multiplier, output_shift) + output_offset, act_min, act_max)
 */
typedef struct {
  int32_t input1_offset, input2_offset;    /* minus the inputs' zero points */
  int32_t output_offset;                   /* the output's zero point */
  int32_t left_shift;
  int32_t input1_multiplier, input1_shift;
  int32_t input2_multiplier, input2_shift;
  int32_t output_multiplier, output_shift;
  int32_t act_min, act_max;
} tt_fwd_add_params;

/* Same-shape ADD of `size` elements. output may be input1 or input2 (in place). */
void tt_add_s8(const tt_fwd_add_params *p, const int8_t *input1, const int8_t *input2,
               int32_t size, int8_t *output);

/* Broadcasting ADD: input1 [dims1], input2 [dims2], output [output_dims], all of the same
 * rank (<= 6; a lower-rank input is given leading 1s); each input dimension equals the
 * output's or is 1. output must not overlap a broadcast input. */
void tt_add_broadcast_s8(const tt_fwd_add_params *p, const int8_t *input1,
                         const int32_t *dims1, const int8_t *input2, const int32_t *dims2,
                         const int32_t *output_dims, int32_t rank, int8_t *output);

/* PAD / PADV2: output[index + before] = input[index]; every other element is pad_value (PAD:
 * the output zero point; PADV2: its constant). input [input_dims], output [output_dims] of
 * the same rank (<= 6), output_dims[d] >= before[d] + input_dims[d]. */
void tt_pad_s8(const int8_t *input, const int32_t *input_dims, const int32_t *before,
               const int32_t *output_dims, int32_t rank, int8_t pad_value, int8_t *output);

/* Window of a pooling operator (no dilation). */
typedef struct {
  int32_t stride_h, stride_w;
  int32_t pad_top, pad_left;
  int32_t filter_h, filter_w;
  int32_t act_min, act_max;
} tt_fwd_pool_params;

/* AVERAGE_POOL_2D (TFLM reference AveragePool, int8): the sum of the in-image taps divided
 * by their count, rounded half away from zero; input and output share quantization.
 * input [n, h, w, c]; output [n, oh, ow, c]. */
void tt_avg_pool_s8(const tt_fwd_pool_params *p, const tt_fwd_dims *input_dims,
                    const int8_t *input, const tt_fwd_dims *output_dims, int8_t *output);

/* MAX_POOL_2D: the largest in-image tap, clamped to [act_min, act_max]. */
void tt_max_pool_s8(const tt_fwd_pool_params *p, const tt_fwd_dims *input_dims,
                    const int8_t *input, const tt_fwd_dims *output_dims, int8_t *output);

/* MEAN (TFLM reduce.cc, int8): over the axes with reduced[d] = 1 of input [dims] (rank
 * <= 6), count = product of the reduced dimensions:
 *   y = saturate(MBQM(sum(x) - input_zp * count, multiplier, shift) + output_zp)
 * where multiplier/shift already hold s_x / s_y / count (ops/mean.py: multiplier()).
 * output has the kept dimensions in order (keep_dims or not: the same bytes). */
void tt_mean_s8(const int8_t *input, const int32_t *dims, const int32_t *reduced,
                int32_t rank, int32_t input_zp, int32_t multiplier, int32_t shift,
                int32_t output_zp, int8_t *output);

/* SOFTMAX (TFLM reference Softmax, int8 -> int8, output scale 1/256, zero point -128),
 * over the last axis of input [rows, depth], with gemmlowp's fixed-point exp and
 * reciprocal. input_multiplier, input_left_shift and diff_min as PreprocessSoftmaxScaling
 * makes them from beta * s_x (ops/softmax.py: params()). */
void tt_softmax_s8(const int8_t *input, int32_t rows, int32_t depth, int32_t input_multiplier,
                   int32_t input_left_shift, int32_t diff_min, int8_t *output);

/* QUANTIZE float32 -> int8 (AffineQuantize): y = saturate(round(x / scale) + zero_point),
 * float32 division, rounding half away from zero (roundf). For finite x; infinities
 * saturate and NaN gives zero_point (TFLM leaves non-finite input undefined). */
void tt_quantize_f32_s8(const float *input, int32_t size, float scale, int32_t zero_point,
                        int8_t *output);

/* QUANTIZE int8 -> int8 (TFLM Requantize): y = saturate(MBQM(x + input_offset, multiplier,
 * shift) + output_offset), multiplier/shift from s_x / s_y. output may be input. */
void tt_requantize_s8(const int8_t *input, int32_t size, int32_t input_offset,
                      int32_t multiplier, int32_t shift, int32_t output_offset,
                      int8_t *output);

/* DEQUANTIZE int8 -> float32: y = scale * (x - zero_point). TFLM computes it in double and
 * rounds to float; (x - zero_point) has at most 9 bits and scale 24, so that double product
 * is exact and the float32 product here is the same correctly rounded value. */
void tt_dequantize_s8_f32(const int8_t *input, int32_t size, float scale, int32_t zero_point,
                          float *output);

/* TRANSPOSE: output = transpose(input, perm); input [input_dims] (rank <= 6),
 * output[i_perm[0], ..., i_perm[rank-1]] = input[i_0, ..., i_{rank-1}]. */
void tt_transpose_s8(const int8_t *input, const int32_t *input_dims, const int32_t *perm,
                     int32_t rank, int8_t *output);

/* RESHAPE: the same bytes under another shape (any type: `bytes` of them). output may be
 * input (then nothing moves: a planner that aliases them makes RESHAPE free) or must not
 * overlap it. */
void tt_reshape(const void *input, int32_t bytes, void *output);

#ifdef __cplusplus
}
#endif

#endif /* TT_FORWARD_H */
