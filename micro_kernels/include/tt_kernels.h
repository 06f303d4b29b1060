/* tflite-train training kernels: portable C99, no TFLM types.
 *
 * One function per TT_* operation and data type of schema/training_ops.json (read it for the
 * semantics); the comments here give every argument's shape and quantization and, for every
 * kernel that sums, the order of its float32 sum. The sources are one file per operation
 * family, as CMSIS-NN does it (int8-gradient and Cortex-M DSP versions go beside the float32
 * ones, behind the same signatures):
 *   src/tt_input_grad.c  activation gradients through convolutions and fully connected layers
 *   src/tt_param_grad.c  weight and bias gradients, the QAS SGD updates, fused gradient+update
 *   src/tt_loss.c        softmax cross-entropy loss, softmax gradient
 *   src/tt_pool_grad.c   average- and max-pool gradients
 *   src/tt_plumbing.c    init copies, saved masks and slices, element-wise and data-movement
 *                        gradients (mask, add, broadcast sum, mean, pad, transpose)
 *   src/tt_math.c        once-per-step double math: libm-free exp, log, cos(pi t / n), the
 *                        learning-rate decay
 *   src/tt_grad_quant.c  int8 gradients: the quantization rule, the layers' multipliers
 *   src/tt_input_grad_dsp.c, src/tt_param_grad_dsp.c
 *                        Cortex-M DSP versions (SMLAD, SXTB16) of the int8-gradient input and
 *                        weight gradients of pointwise layers and of the bias gradient's sums,
 *                        which the kernels above call when the target has the DSP extension
 *                        (__ARM_FEATURE_DSP) and TT_PORTABLE is not defined: same signatures,
 *                        same bits (src/tt_grad_dsp.h says which layers and what stack they
 *                        take); likewise TT_SAVE_MASK's SSUB8/SEL bytes (tt_plumbing.c) and,
 *                        on FPv5 (the M7; -DTT_NO_FPV5 for a Cortex-M4), the updates' VCVTM,
 *                        VMAXNM and SSAT forms (tt_param_grad.c)
 *
 * Conventions. Layouts are NHWC and row-major; weights are [Co, KH, KW, Ci] (CONV_2D),
 * [1, KH, KW, C*M] (DEPTHWISE_CONV_2D) or [units, depth] (FULLY_CONNECTED), int8, symmetric
 * (zero point 0), with per-output-channel float32 scales (one scale means per-tensor). Saved
 * activations are int8 with a float32 scale and an int32 zero point; a real value is
 * scale * (q - zero_point). Gradients are float32 gradients with respect to REAL values.
 * A `mask` is the bit-packed activation mask of dy (bit i, LSB first, of byte i / 8 belongs to
 * element i of dy); NULL means none. An element whose bit is 0 contributes nothing: its terms
 * are skipped. Label gating (label < 0: do nothing) is the caller's job.
 *
 * Arithmetic. Every per-element operation is float32 (+, -, *, / correctly rounded, no FMA:
 * build with -ffp-contract=off and without fast-math), so that the kernels run on the
 * single-precision FPU of the Cortex-M7 (-mfpu=fpv5-sp-d16), where a double would be a
 * software call. Only once-per-step scalar math is double: the loss's exp/log and the
 * learning-rate decay (tests/test_micro_kernels.py checks the objects for __aeabi_d* calls).
 * A sum is a float32 accumulator that starts at +0.0f and adds its terms one at a time in the
 * order documented at the kernel; a skipped term (masked, or a tap outside the image) changes
 * nothing, exactly as adding +0.0f would. The numpy reference kernels (tflite_train/ops/) add
 * in the same orders, so numpy and C agree bit for bit.
 *
 * Int8 gradients (`tflite-train augment --grad int8`; the `_s8` kernels below, beside their
 * `_f32` versions). An activation gradient is an int8 tensor q (zero point 0) plus a float32
 * scale s found at run time: real value s * q. A kernel that makes one sums exact int32
 * accumulators acc[i] whose real values are unit * acc[i] (unit: a float32 per-tensor
 * factor the kernel documents), then applies THE RULE:
 *   A = max |acc[i]| over the whole output;
 *   A <= 127: q[i] = acc[i], s = unit (exact: nothing is rounded, nothing drawn);
 *   else, with b the bit length of A (A < 2^b), shift = b + 23 and the int32
 *   r = floor(127 * 2^shift / A) (one 64-bit division per call; 127 * 2^23 <= r <= 127 * 2^24):
 *     q[i] = (acc[i] * r + bias_i) >> shift   (int64 product, arithmetic shift: a floor)
 *     bias_i = 2^(shift - 1) to round to nearest (a tie rounds up), or
 *     bias_i = (x_i >> 8) << (shift - 24) to round stochastically, x_i the next xorshift32
 *              state of the op's stream, one per element in the output's row-major order;
 *     s = (unit * (float)A) / 127.0f.
 *   |q[i]| <= 127 always. acc[i] * r / 2^shift is acc[i] * 127 / A up to a relative 2^-30,
 *   so a nearest q is the nearest integer to acc[i] * 127 / A except within 1.2e-7 of a
 *   half; each element's error is at most half a step (s / 2) to nearest, below one step
 *   stochastically (unbiased to 2^-24 of a step).
 * Accumulators are integers, so their order does not matter: every kernel below bounds its
 * sums below 2^31 (stated at each) and any order or factoring gives the same bits. All the
 * per-element arithmetic is integer; float32 appears only in the per-tensor and
 * per-channel scale factors, so numpy, x86, the Cortex-M7 and TFLM agree bit for bit.
 * A scale travels as its float32 [1] tensor: the kernels read *dy_scale (*a_scale, *b_scale)
 * and write *dx_scale. `rounding` arguments: NULL rounds to nearest, else the op's
 * tt_update_state, whose stream the stochastic rounding draws from and whose step counter
 * advances once per call.
 * Layer input gradients fold the per-channel weight scales into int16 multipliers
 * (tt_grad_shift, tt_grad_multiplier_s16) so that their inner products are int16 x int8
 * terms: pairs of them are what the Cortex-M DSP's SMLAD takes.
 */
#ifndef TT_KERNELS_H
#define TT_KERNELS_H

#include <stdint.h>

/* 1 where these sources compile their Cortex-M DSP versions (a core with the DSP extension,
 * __ARM_FEATURE_DSP, and TT_PORTABLE not defined), else 0. Only the DSP versions use a
 * kernel's `stage`: a caller may size that buffer by it (generated programs do). */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && !defined(TT_PORTABLE)
#define TT_KERNELS_DSP 1
#else
#define TT_KERNELS_DSP 0
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define TT_OK 0
#define TT_ERROR_LABEL 1

/* Positions per partial sum of the bias gradient (see tt_bias_grad_f32). */
#define TT_BIAS_GRAD_BLOCK 16

/* Int8 gradients: the largest shift of the layers' weight-scale multipliers (tt_grad_shift),
 * and the shift of TT_SUM_GRAD's two scale multipliers (tt_add_grad_s8). */
#define TT_GRAD_MAX_SHIFT 8
#define TT_ADD_GRAD_SHIFT 14

/* Positions a weight gradient of int8 dy may sum: |dy * (saved - x_zp)| <= 127 * 255, and
 * 66311 * 127 * 255 < 2^31. */
#define TT_GRAD_MAX_POSITIONS 66311

/* Geometry of a convolution or pooling window: leading pads of the forward op. Output
 * position o's tap k reads input position o * stride + k * dilation - pad (per axis). */
typedef struct {
  int stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left;
} tt_window;

/* SGD + QAS options shared by the update kernels (schema: TT_UPDATE_WEIGHT). */
typedef struct {
  float lr;            /* learning rate before decay: the option rounded to float32 */
  float momentum;      /* 0: no momentum buffer */
  int qas;             /* 1: g = grad / scale (QAS); 0: g = grad * scale */
  int rounding;        /* 0 nearest (rintf), 1 stochastic */
  int decay_steps;     /* 0, or N > 0: cosine decay to 0 over N steps */
  int half_life;       /* 0, or T > 0: inverse-time decay lr * T / (T + t), half at step T;
                        * at most one of decay_steps and half_life is non-zero (neither:
                        * constant) */
} tt_sgd;

/* Per-op state kept across Invokes: the xorshift32 stream and the step counter. */
typedef struct {
  uint32_t rng;
  int32_t step;
} tt_update_state;

/* ==== src/tt_input_grad.c: activation gradients through the layers ======================= */

/* TT_CONV2D_INPUT_GRAD. dy [n, oh, ow, co] float32 (mask over dy or NULL); w [co, kh, kw, ci]
 * int8 with w_scales[co] (per-tensor weights: the one scale repeated co times); win: the
 * forward's strides, dilations and leading pads; dx [n, h, wd, ci] float32, overwritten.
 * Order: dx[b, iy, ix, c] sums, over the dy positions (b, oy, ox) whose tap (ky, kx) reads
 * (iy, ix), in row-major order (so ky and kx descending), and within a position over o
 * ascending, the terms (dy[b, oy, ox, o] * w_scales[o]) * (float)w[o, ky, kx, c]. */
void tt_conv2d_input_grad_f32(const float *dy, const uint8_t *mask, int32_t n, int32_t oh,
                              int32_t ow, int32_t co, const int8_t *w, const float *w_scales,
                              int32_t kh, int32_t kw, const tt_window *win, int32_t h,
                              int32_t wd, int32_t ci, float *dx);

/* TT_DEPTHWISE_CONV2D_INPUT_GRAD. dy [n, oh, ow, c*m] float32 (mask over dy or NULL); m the
 * depth multiplier; w [1, kh, kw, c*m] int8 with w_scales[c*m] (per-tensor: repeated);
 * dx [n, h, wd, c] float32, overwritten. Order: dx[b, iy, ix, ch] sums, over the dy positions
 * whose tap reads (iy, ix) in row-major order (ky and kx descending), and within a position
 * over j = 0..m-1, the terms (dy[b, oy, ox, o] * w_scales[o]) * (float)w[0, ky, kx, o] with
 * o = ch * m + j. */
void tt_depthwise_conv2d_input_grad_f32(const float *dy, const uint8_t *mask, int32_t n,
                                        int32_t oh, int32_t ow, int32_t c, int32_t m,
                                        const int8_t *w, const float *w_scales, int32_t kh,
                                        int32_t kw, const tt_window *win, int32_t h,
                                        int32_t wd, float *dx);

/* TT_FULLY_CONNECTED_INPUT_GRAD. dy [batches, units] float32 (mask over dy or NULL);
 * w [units, depth] int8 with w_scales[units] (per-tensor: repeated); dx [batches, depth]
 * float32, overwritten. Order: dx[b, d] sums over u ascending the terms
 * (dy[b, u] * w_scales[u]) * (float)w[u, d]. */
void tt_fully_connected_input_grad_f32(const float *dy, const uint8_t *mask, int32_t batches,
                                       int32_t units, const int8_t *w, const float *w_scales,
                                       int32_t depth, float *dx);

/* Int8 gradients (the rule at the top). dy int8 with scale *dy_scale (mask or NULL); the
 * weights' per-channel scales enter as int16 multipliers and one float unit,
 *   k = tt_grad_shift(terms), w_mult[o] = tt_grad_multiplier_s16(w_scales[o], max w_scales, k),
 *   w_unit = tt_grad_unit(max w_scales, k),
 * terms = co * kh * kw (conv), kh * kw * m (depthwise), units (fully connected): the most
 * products one dx element sums. Then h = dy[.., o] * w_mult[o] (0 where masked;
 * |h| <= 127 * 2^k <= 32512, an int16) and acc = the sum of h * w over the terms of the f32
 * kernel (|acc| < terms * 127 * 128 * 2^k < 2^31 by the choice of k),
 * unit = *dy_scale * w_unit; dx [.., ci] int8 and *dx_scale by the rule. `rounding`: NULL
 * or the op's state. `scratch`: int32 memory for the accumulators of `scratch_positions`
 * dx positions (scratch_positions * ci int32; a position is one [.., ci] row of dx), or NULL
 * (then scratch_positions is ignored). Every position: one pass. Fewer: two passes, the
 * first for A, the second to round; the first keeps the accumulators of dx's first quarter
 * of positions in dx's own bytes (when dx is 4-byte aligned) and of the next
 * scratch_positions in scratch, the second computes only the others again. A pointwise
 * layer (1x1, stride 1, no padding; fully connected) guesses A instead from the kept
 * positions and a few unkept ones (the probes: largest sum of dy^2 over the live outputs,
 * of (dy * mult)^2 where the layer is masked or 40 or more rows are unkept),
 * rounds the others with that guess in one pass while measuring them, and rounds
 * everything again with the true A only if one passed the guess; one whose dy rows are all
 * the same, unmasked, with a scratch of one position or more, computes one row there and
 * rounds every position from it. Same bits whatever the split or the guess. The depthwise kernel's `stage` (`stage_bytes`, or NULL and 0) is the
 * staging of its Cortex-M DSP version (tt_*_stage_bytes below), used from its first 8-byte
 * boundary (4-byte aligned: 4 bytes more than tt_*_stage_bytes); other builds ignore it. */
void tt_conv2d_input_grad_s8(const int8_t *dy, const float *dy_scale, const uint8_t *mask,
                             int32_t n, int32_t oh, int32_t ow, int32_t co, const int8_t *w,
                             const int16_t *w_mult, float w_unit, int32_t kh, int32_t kw,
                             const tt_window *win, int32_t h, int32_t wd, int32_t ci,
                             int8_t *dx, float *dx_scale, tt_update_state *rounding,
                             int32_t *scratch, int32_t scratch_positions);

void tt_depthwise_conv2d_input_grad_s8(const int8_t *dy, const float *dy_scale, const uint8_t *mask,
                                       int32_t n, int32_t oh, int32_t ow, int32_t c, int32_t m,
                                       const int8_t *w, const int16_t *w_mult, float w_unit,
                                       int32_t kh, int32_t kw, const tt_window *win, int32_t h,
                                       int32_t wd, int8_t *dx, float *dx_scale,
                                       tt_update_state *rounding, int32_t *scratch,
                                       int32_t scratch_positions, void *stage,
                                       int32_t stage_bytes);

void tt_fully_connected_input_grad_s8(const int8_t *dy, const float *dy_scale, const uint8_t *mask,
                                      int32_t batches, int32_t units, const int8_t *w,
                                      const int16_t *w_mult, float w_unit, int32_t depth,
                                      int8_t *dx, float *dx_scale, tt_update_state *rounding,
                                      int32_t *scratch, int32_t scratch_positions);

/* ==== src/tt_param_grad.c: weight and bias gradients and their QAS SGD updates ============ */

/* xorshift32: x ^= x << 13; x ^= x >> 17; x ^= x << 5. A zero state becomes 2463534242. */
uint32_t tt_xorshift32_next(uint32_t *state);
void tt_update_state_init(tt_update_state *s, uint32_t seed);

/* The weight gradients sum over the dy positions row by row: a row partial R (b, oy fixed)
 * sums over ox ascending, then the gradient's accumulator T sums the row partials over
 * (b, oy) in row-major order, and the result is x_scale * T. Terms of taps outside the
 * image and of masked dy elements are skipped. */

/* TT_CONV2D_WEIGHT_GRAD. dy [n, oh, ow, co] float32 (mask or NULL); saved [n, h, wd, k] int8
 * (scale x_scale, zero point x_zp): the forward input's first k channels; dw [co, kh, kw, k]
 * float32, overwritten. Terms: dy[b, oy, ox, o] * (float)(saved[b, iy, ix, c] - x_zp) with
 * (iy, ix) the input position tap (ky, kx) of (oy, ox) reads. */
void tt_conv2d_weight_grad_f32(const float *dy, const uint8_t *mask, int32_t n, int32_t oh,
                               int32_t ow, int32_t co, const int8_t *saved, float x_scale,
                               int32_t x_zp, int32_t h, int32_t wd, int32_t k, int32_t kh,
                               int32_t kw, const tt_window *win, float *dw);

/* TT_DEPTHWISE_CONV2D_WEIGHT_GRAD. dy [n, oh, ow, c*m] (mask or NULL); saved [n, h, wd, c]
 * int8 (x_scale, x_zp); dw [1, kh, kw, c*m] float32, overwritten. Terms:
 * dy[b, oy, ox, o] * (float)(saved[b, iy, ix, o / m] - x_zp). */
void tt_depthwise_conv2d_weight_grad_f32(const float *dy, const uint8_t *mask, int32_t n,
                                         int32_t oh, int32_t ow, int32_t c, int32_t m,
                                         const int8_t *saved, float x_scale, int32_t x_zp,
                                         int32_t h, int32_t wd, int32_t kh, int32_t kw,
                                         const tt_window *win, float *dw);

/* TT_FULLY_CONNECTED_WEIGHT_GRAD. dy [batches, units] (mask or NULL); saved [batches, k] int8
 * (x_scale, x_zp): the input's first k columns; dw [units, k] float32, overwritten.
 * dw[u, j] = x_scale * T, T summing over b ascending dy[b, u] * (float)(saved[b, j] - x_zp)
 * (every batch row is one term: the row rule above). */
void tt_fully_connected_weight_grad_f32(const float *dy, const uint8_t *mask, int32_t batches,
                                        int32_t units, const int8_t *saved, float x_scale,
                                        int32_t x_zp, int32_t k, float *dw);

/* TT_BIAS_GRAD. dy [outer, channels] float32 (mask or NULL); db [channels], overwritten.
 * Order: db[c] sums block partials in block order; block q's partial sums
 * dy[p, c] over p = q * TT_BIAS_GRAD_BLOCK .. (q + 1) * TT_BIAS_GRAD_BLOCK - 1 (< outer),
 * ascending. */
void tt_bias_grad_f32(const float *dy, const uint8_t *mask, int32_t outer, int32_t channels,
                      float *db);

/* The weight and bias gradients of int8 dy (scale dy_scale; mask or NULL): the same sums as
 * the f32 kernels in exact int32, T = the sum of dy * (saved - x_zp) over the positions
 * (any order), converted once: dw = (float)T * (dy_scale * x_scale) (float32, in this order),
 * db = (float)T_b * dy_scale with T_b = the sum of dy. |dy * (saved - x_zp)| <= 127 * 255, so
 * a weight gradient sums at most TT_GRAD_MAX_POSITIONS positions (n * oh * ow, or batches),
 * which callers check; dw and db are float32, as the f32 kernels'. The conv and depthwise
 * kernels' `stage` (`stage_bytes`; or NULL and 0) is their Cortex-M DSP version's staging,
 * the size tt_*_stage_bytes gives, used from its first 8-byte boundary (4-byte aligned: 4
 * bytes more); other builds ignore it. */
void tt_conv2d_weight_grad_s8(const int8_t *dy, const float *dy_scale, const uint8_t *mask,
                              int32_t n, int32_t oh, int32_t ow, int32_t co, const int8_t *saved,
                              float x_scale, int32_t x_zp, int32_t h, int32_t wd, int32_t k,
                              int32_t kh, int32_t kw, const tt_window *win, float *dw,
                              void *stage, int32_t stage_bytes);

void tt_depthwise_conv2d_weight_grad_s8(const int8_t *dy, const float *dy_scale,
                                        const uint8_t *mask, int32_t n, int32_t oh,
                                        int32_t ow, int32_t c, int32_t m,
                                        const int8_t *saved, float x_scale, int32_t x_zp,
                                        int32_t h, int32_t wd, int32_t kh, int32_t kw,
                                        const tt_window *win, float *dw, void *stage,
                                        int32_t stage_bytes);

/* The staging the Cortex-M DSP versions of the int8-gradient kernels above take for a layer
 * (the arguments of the kernel's shapes), at most `limit` bytes (<= 0: no limit): the bytes
 * of its fastest walk within the limit and the TT_GRAD_DSP_*_STAGE_BYTES defaults; 0 where
 * no DSP version takes the layer with that much. The same number on every target, so that a
 * plan of the arena is the same for all of them. A smaller staging walks smaller blocks of
 * channels (depthwise); a depthwise kernel given less than any walk needs runs the portable
 * code: the same bits in every case, only the instructions differ. The pointwise weight
 * gradient takes none (0 for every layer): since round 21 its DSP version walks every
 * pointwise layer of 2+ positions in chunks of positions with the sums kept in dw (0.92-1.16
 * instructions a MAC down to 4x4 maps, where the staging of its whole input as int16 took
 * 1.08-1.62; one position: T = g (x - x_zp) without sums); the fused update's staging has
 * its own query (tt_conv2d_weight_update_s8_s8_stage_bytes). */
int32_t tt_conv2d_weight_grad_s8_stage_bytes(int32_t n, int32_t oh, int32_t ow, int32_t co,
                                             int32_t h, int32_t wd, int32_t k, int32_t kh,
                                             int32_t kw, const tt_window *win,
                                             int32_t limit);
int32_t tt_depthwise_conv2d_weight_grad_s8_stage_bytes(int32_t n, int32_t oh, int32_t ow,
                                                       int32_t c, int32_t m, int32_t h,
                                                       int32_t wd, int32_t kh, int32_t kw,
                                                       const tt_window *win, int32_t limit);
int32_t tt_depthwise_conv2d_input_grad_s8_stage_bytes(int32_t n, int32_t oh, int32_t ow,
                                                      int32_t c, int32_t m, int32_t kh,
                                                      int32_t kw, const tt_window *win,
                                                      int32_t h, int32_t wd, int32_t limit);

/* The staging tt_conv2d_weight_update_s8_s8's DSP version takes for a layer, at most `limit`
 * bytes (<= 0: no limit): its whole input as int16 (2 bytes an element, plus the
 * accumulators and the staged dy columns, four at a time), where the layer is pointwise with
 * 2+ positions and that is within TT_GRAD_DSP_WEIGHT_STAGE_BYTES (8 KB) besides the dy
 * columns; else 0. The same number on every target. Given less, its DSP version stages its
 * input in chunks of channels on its own stack within TT_GRAD_DSP_STAGE_BYTES, where a chunk
 * of 8 fits and the draws it skips cost less than the staging saves, else walks the
 * positions in chunks with a block of input channels' sums in its frame: the same bits in
 * every case, only the instructions differ. (Until round 20 a layer past the int16 staging
 * took its input's int8 form, 2.2-2.6 instructions a MAC where the walk in chunks takes
 * 1.0-1.35.) `grad_stage_bytes` (a build's TT_GRAD_DSP_STAGE_BYTES, which chose between the
 * int8 form and the chunked path until round 20) is not used. */
int32_t tt_conv2d_weight_update_s8_s8_stage_bytes(int32_t n, int32_t oh, int32_t ow, int32_t co,
                                                  int32_t h, int32_t wd, int32_t k, int32_t kh,
                                                  int32_t kw, const tt_window *win,
                                                  int32_t grad_stage_bytes, int32_t limit);

void tt_fully_connected_weight_grad_s8(const int8_t *dy, const float *dy_scale, const uint8_t *mask,
                                       int32_t batches, int32_t units, const int8_t *saved,
                                       float x_scale, int32_t x_zp, int32_t k, float *dw);

void tt_bias_grad_s8(const int8_t *dy, const float *dy_scale, const uint8_t *mask, int32_t outer,
                     int32_t channels, float *db);

/* TT_UPDATE_WEIGHT: w [dims[0], ..., dims[rank-1]] int8, updated in place on its first
 * `channels` elements of the last axis; scales[n_scales] float32 (1, or one per output
 * channel along `axis`: 0 the first axis, else the last); grad [..., channels] float32;
 * momentum_buf like grad, or NULL. One learning-rate step per call; stochastic rounding
 * draws one uniform per updated element, row-major. The per-element update is float32:
 * g = qas ? grad / scale : grad * scale; m = momentum * m + g; delta = (-lr) * (m or g);
 * w = clamp(w + round(delta), -127, 127). */
void tt_update_weight_s8(int8_t *w, const int32_t *dims, int32_t rank, int32_t axis,
                         const float *scales, int32_t n_scales, const float *grad,
                         int32_t channels, float *momentum_buf, const tt_sgd *o,
                         tt_update_state *s);

/* TT_UPDATE_WEIGHT with the schema's optional input residual: `residual` int8 shaped like
 * grad (the trained region, row-major), or NULL (then exactly tt_update_weight_s8). With it,
 * each element's delta (the float32 above, same order) is rounded by the residual rule
 * instead of o->rounding, and the stream draws nothing: v = clamp(delta, -256, 256) (NaN to
 * -256); q = (int32)rint(256.0f * v) (exact, half to even); c = r + q; step = floor((c +
 * 128) / 256); r = c - 256 * step (in [-128, 127]); w = clamp(w + step, -127, 127). r carries
 * each weight's rounding remainder in 1/256 LSB across calls, so sub-LSB steps add up
 * without rounding noise. One inline rule (tt_qas.h, tt_residual_weight) serves every
 * kernel that takes a residual, on every build (no DSP form). */
void tt_update_weight_residual_s8(int8_t *w, const int32_t *dims, int32_t rank, int32_t axis,
                                  const float *scales, int32_t n_scales, const float *grad,
                                  int32_t channels, float *momentum_buf, int8_t *residual,
                                  const tt_sgd *o, tt_update_state *s);

/* TT_UPDATE_BIAS: b [c] int32 with scales[c] (s_x * s_w[c]), updated in place, saturating;
 * grad [c]; momentum_buf [c] or NULL. Arithmetic as tt_update_weight_s8. */
void tt_update_bias_s32(int32_t *b, int32_t c, const float *scales, const float *grad,
                        float *momentum_buf, const tt_sgd *o, tt_update_state *s);

/* The batch (schema: an update op's option batch B > 1 and its input accumulator, float32
 * of the trained region's n elements). Every training Invoke of such an op: its gradient g
 * [n] (the grad input, or a fused op's gradient from the plain gradient kernel: the same
 * values) goes to tt_batch_accumulate_f32, acc[i] = acc[i] + g[i] in float32. It returns 0
 * unless this Invoke ends a batch ((s->step + 1) % B == 0): then no update runs and s->step
 * has advanced by one. It returns 1 at a batch's end, with acc[i] = acc[i] * (1.0f / B) (the
 * batch's mean, the reciprocal rounded to float32 once) and s->step = the updates made
 * before (the schedule's t): the caller runs the update kernel with grad = acc (the same
 * state and momentum buffer), then tt_batch_end_f32, which zeroes acc and sets s->step to
 * the Invokes counted. The stream draws only in the update, so update k draws what a batch-1
 * op's update k draws. */
int32_t tt_batch_accumulate_f32(float *acc, const float *g, int32_t n, int32_t batch,
                                tt_update_state *s);
void tt_batch_end_f32(float *acc, int32_t n, int32_t batch, tt_update_state *s);

/* In-place fused gradient + update (TT_*_WEIGHT_UPDATE, TT_BIAS_UPDATE): bit-identical to the
 * gradient kernel followed by the update kernel (same values, same RNG order: one uniform
 * per trained element, row-major over the parameter), without the whole gradient ever
 * existing. `scratch` is caller-provided float memory of the size given (working memory:
 * its contents after the call are unspecified); `momentum` is shaped like the trained region
 * or NULL. The learning rate and step advance once per call. */

/* TT_CONV2D_WEIGHT_UPDATE, one output channel at a time. dy, mask, saved, x_scale, x_zp as
 * tt_conv2d_weight_grad_f32; w [co, kh, kw, ci] int8 with w_scales[n_scales] (1 or co),
 * updated on its first k input channels; momentum [co, kh, kw, k] or NULL;
 * scratch kh * kw * k floats. */
void tt_conv2d_weight_update_s8(const float *dy, const uint8_t *mask, int32_t n, int32_t oh,
                                int32_t ow, int32_t co, const int8_t *saved, float x_scale,
                                int32_t x_zp, int32_t h, int32_t wd, int32_t k, int8_t *w,
                                int32_t kh, int32_t kw, int32_t ci, const float *w_scales,
                                int32_t n_scales, const tt_window *win, float *momentum,
                                const tt_sgd *o, tt_update_state *s, float *scratch);

/* TT_DEPTHWISE_CONV2D_WEIGHT_UPDATE. dy, mask, saved as tt_depthwise_conv2d_weight_grad_f32;
 * w [1, kh, kw, c*m] int8 with w_scales[n_scales] (1 or c*m, along the last axis);
 * momentum [1, kh, kw, c*m] or NULL; scratch kh * kw * c * m floats (the whole, small,
 * depthwise gradient). */
void tt_depthwise_conv2d_weight_update_s8(const float *dy, const uint8_t *mask, int32_t n,
                                          int32_t oh, int32_t ow, int32_t c, int32_t m,
                                          const int8_t *saved, float x_scale, int32_t x_zp,
                                          int32_t h, int32_t wd, int8_t *w, int32_t kh,
                                          int32_t kw, const float *w_scales, int32_t n_scales,
                                          const tt_window *win, float *momentum,
                                          const tt_sgd *o, tt_update_state *s, float *scratch);

/* TT_FULLY_CONNECTED_WEIGHT_UPDATE, one unit at a time. dy, mask, saved as
 * tt_fully_connected_weight_grad_f32; w [units, depth] int8 with w_scales[n_scales] (1 or
 * units), updated on its first k columns; momentum [units, k] or NULL; scratch k floats. */
void tt_fully_connected_weight_update_s8(const float *dy, const uint8_t *mask,
                                         int32_t batches, int32_t units, const int8_t *saved,
                                         float x_scale, int32_t x_zp, int32_t k, int8_t *w,
                                         int32_t depth, const float *w_scales,
                                         int32_t n_scales, float *momentum, const tt_sgd *o,
                                         tt_update_state *s, float *scratch);

/* TT_FULLY_CONNECTED_WEIGHT_UPDATE with the schema's optional input residual ([units, k]
 * int8, or NULL: exactly tt_fully_connected_weight_update_s8): each unit's gradient as
 * there, then the residual rule of tt_update_weight_residual_s8 (no draw). */
void tt_fully_connected_weight_update_residual_s8(
    const float *dy, const uint8_t *mask, int32_t batches, int32_t units, const int8_t *saved,
    float x_scale, int32_t x_zp, int32_t k, int8_t *w, int32_t depth, const float *w_scales,
    int32_t n_scales, float *momentum, int8_t *residual, const tt_sgd *o, tt_update_state *s,
    float *scratch);

/* TT_BIAS_UPDATE. dy [outer, channels] float32 (mask or NULL); b [channels] int32 with
 * b_scales[channels] (s_x * s_w[c]); momentum [channels] or NULL; scratch channels floats. */
void tt_bias_update_s32(const float *dy, const uint8_t *mask, int32_t outer, int32_t channels,
                        int32_t *b, const float *b_scales, float *momentum, const tt_sgd *o,
                        tt_update_state *s, float *scratch);

/* The fused updates of int8 dy (first suffix: the parameters' type, second: dy's): the
 * arguments of the f32-dy versions with dy int8 and its scale after it; gradients of the
 * _s8 gradient kernels, the same update, the same scratch; conv and depthwise take their
 * gradient kernel's `stage` too. */
void tt_conv2d_weight_update_s8_s8(const int8_t *dy, const float *dy_scale, const uint8_t *mask,
                                   int32_t n, int32_t oh, int32_t ow, int32_t co,
                                   const int8_t *saved, float x_scale, int32_t x_zp, int32_t h,
                                   int32_t wd, int32_t k, int8_t *w, int32_t kh, int32_t kw,
                                   int32_t ci, const float *w_scales, int32_t n_scales,
                                   const tt_window *win, float *momentum, const tt_sgd *o,
                                   tt_update_state *s, float *scratch, void *stage,
                                   int32_t stage_bytes);

void tt_depthwise_conv2d_weight_update_s8_s8(const int8_t *dy, const float *dy_scale,
                                             const uint8_t *mask, int32_t n, int32_t oh,
                                             int32_t ow, int32_t c, int32_t m,
                                             const int8_t *saved, float x_scale, int32_t x_zp,
                                             int32_t h, int32_t wd, int8_t *w, int32_t kh,
                                             int32_t kw, const float *w_scales,
                                             int32_t n_scales, const tt_window *win,
                                             float *momentum, const tt_sgd *o,
                                             tt_update_state *s, float *scratch, void *stage,
                                             int32_t stage_bytes);

void tt_fully_connected_weight_update_s8_s8(const int8_t *dy, const float *dy_scale,
                                            const uint8_t *mask, int32_t batches, int32_t units,
                                            const int8_t *saved, float x_scale, int32_t x_zp,
                                            int32_t k, int8_t *w, int32_t depth,
                                            const float *w_scales, int32_t n_scales,
                                            float *momentum, const tt_sgd *o,
                                            tt_update_state *s, float *scratch);

/* ... and its int8-dy form (residual as tt_fully_connected_weight_update_residual_s8). */
void tt_fully_connected_weight_update_residual_s8_s8(
    const int8_t *dy, const float *dy_scale, const uint8_t *mask, int32_t batches,
    int32_t units, const int8_t *saved, float x_scale, int32_t x_zp, int32_t k, int8_t *w,
    int32_t depth, const float *w_scales, int32_t n_scales, float *momentum, int8_t *residual,
    const tt_sgd *o, tt_update_state *s, float *scratch);

void tt_bias_update_s32_s8(const int8_t *dy, const float *dy_scale, const uint8_t *mask,
                           int32_t outer, int32_t channels, int32_t *b, const float *b_scales,
                           float *momentum, const tt_sgd *o, tt_update_state *s,
                           float *scratch);

/* ==== src/tt_loss.c: the loss and the softmax gradient ==================================== */

/* TT_LOSS_SOFTMAX_CE: logits [classes] int8 (scale, zp); label in [0, classes) (returns
 * TT_ERROR_LABEL when label >= classes); loss [1] and dlogits [classes] float32.
 * v_i = scale * ((float)logits_i - (float)zp); m = max v_i; e_i = (float)tt_exp(v_i - m);
 * total = sum of e_i over i ascending; loss = (float)tt_log(total) - (v_label - m);
 * dlogits_i = e_i / total, then dlogits_label -= 1. Float32 except tt_exp / tt_log, which
 * are double (once per class per step). */
int tt_loss_softmax_ce_s8(const int8_t *logits, int32_t classes, float scale, int32_t zp,
                          int32_t label, float *loss, float *dlogits);

/* TT_SOFTMAX_GRAD: dy [rows, depth] float32; saved [rows, depth] int8, the softmax's output
 * (scale, zp); dx [rows, depth] float32. Per row: p_i = scale * (float)(saved_i - zp);
 * dot = sum over i ascending of p_i * dy_i; dx_i = p_i * (dy_i - dot). */
void tt_softmax_grad_f32(const float *dy, const int8_t *saved, float scale, int32_t zp,
                         int32_t rows, int32_t depth, float *dx);

/* TT_LOSS_SOFTMAX_CE with an int8 gradient: loss and d_i as tt_loss_softmax_ce_s8 computes
 * dlogits (into `scratch`, classes floats), then acc_i = (int32)(d_i * 2^30) (exact scaling,
 * truncated: |d_i| <= 1) and dlogits [classes] int8 and *dlogits_scale by the rule with
 * unit 2^-30. Returns TT_ERROR_LABEL as tt_loss_softmax_ce_s8. */
int tt_loss_softmax_ce_s8_s8(const int8_t *logits, int32_t classes, float scale, int32_t zp,
                             int32_t label, float *loss, int8_t *dlogits, float *dlogits_scale,
                             tt_update_state *rounding, float *scratch);

/* TT_SOFTMAX_GRAD of int8 dy: saved is an int8 softmax output at scale 1/256 (TFLite's int8
 * softmax) with zero point zp, p_i = saved_i - zp in [0, 255]. Per row, dot = the sum of
 * p_i * dy_i (int32), acc_i = (p_i * (256 * dy_i - dot)) >> shift (int64 product,
 * arithmetic shift), shift the least with 255 * 127 * (256 + 255 * depth) < 2^(31 + shift)
 * (0 for depth <= 257), unit = (dy_scale * 2^-16) * 2^shift; dx and *dx_scale by the rule over
 * all rows. depth < 66000. */
void tt_softmax_grad_s8(const int8_t *dy, const float *dy_scale, const int8_t *saved, int32_t zp,
                        int32_t rows, int32_t depth, int8_t *dx, float *dx_scale,
                        tt_update_state *rounding);

/* ==== src/tt_pool_grad.c: pooling gradients =============================================== */

/* TT_AVERAGE_POOL_GRAD: dy [n, oh, ow, c] float32; a fh x fw window (win: strides and leading
 * pads; dilations unused); dx [n, h, wd, c] float32, overwritten. Each dy element is shared
 * equally among its window's in-image taps (TFLM's divisor): share = dy / (float)count, one
 * division per dy element. Order: dx[b, iy, ix, ch] sums the shares of the windows that
 * contain it in row-major order of (b, oy, ox). */
void tt_average_pool_grad_f32(const float *dy, int32_t n, int32_t oh, int32_t ow, int32_t c,
                              int32_t fh, int32_t fw, const tt_window *win, int32_t h,
                              int32_t wd, float *dx);

/* TT_MAX_POOL_GRAD: dy [n, oh, ow, c] float32; saved [n, h, wd, c] int8, the pool's input;
 * dx [n, h, wd, c] float32, overwritten. Each dy element goes to the first (row-major)
 * in-image tap holding its window's maximum; dx sums what it receives in row-major order of
 * (b, oy, ox). */
void tt_max_pool_grad_f32(const float *dy, const int8_t *saved, int32_t n, int32_t oh,
                          int32_t ow, int32_t c, int32_t fh, int32_t fw, const tt_window *win,
                          int32_t h, int32_t wd, float *dx);

/* TT_AVERAGE_POOL_GRAD of int8 dy (scale dy_scale): a window with `count` in-image taps
 * shares each dy element as dy * R(count). cmin, cmax: the least and most taps of a window
 * that has any (products of the per-axis extremes). Every window alike (cmin == cmax): R = 1,
 * unit = dy_scale / (float)cmin, so that a non-overlapping pool moves dy unchanged. Else
 * R(count) = round(2^k * cmin / count) (a tie up, integer division), k the largest <= 16 with
 * 127 * W * 2^k < 2^31, W = ceil(fh / stride_h) * ceil(fw / stride_w) the most windows one
 * element is in, unit = (dy_scale / (float)cmin) * 2^-k. acc = the sum of the shares of the
 * windows containing the element; dx [n, h, wd, c] and *dx_scale by the rule. */
void tt_average_pool_grad_s8(const int8_t *dy, const float *dy_scale, int32_t n, int32_t oh,
                             int32_t ow, int32_t c, int32_t fh, int32_t fw,
                             const tt_window *win, int32_t h, int32_t wd, int8_t *dx,
                             float *dx_scale, tt_update_state *rounding);

/* TT_MAX_POOL_GRAD of int8 dy: acc = the sum of the dy elements whose window's first
 * in-image maximum (tt_max_pool_grad_f32's) is the element; unit = dy_scale; the rule. */
void tt_max_pool_grad_s8(const int8_t *dy, const float *dy_scale, const int8_t *saved, int32_t n,
                         int32_t oh, int32_t ow, int32_t c, int32_t fh, int32_t fw,
                         const tt_window *win, int32_t h, int32_t wd, int8_t *dx,
                         float *dx_scale, tt_update_state *rounding);

/* ==== src/tt_plumbing.c: saved tensors, element-wise and data-movement gradients ========== */

/* TT_INIT: copy `bytes` bytes. */
void tt_init_copy(const void *src, void *dst, int32_t bytes);

/* TT_SAVE_MASK: y [size] int8; mask [ceil(size / 8)], bit i = lo < y[i] < hi. */
void tt_save_mask_s8(const int8_t *y, int32_t size, int32_t lo, int32_t hi, uint8_t *mask);

/* TT_SAVE_SLICE: x [outer, depth] int8; out [outer, channels] = x[:, :channels]. */
void tt_save_slice_s8(const int8_t *x, int32_t outer, int32_t depth, int32_t channels,
                      int8_t *out);

/* TT_MASK_GRAD: dy [size] float32, mask over dy; dx [size] = dy where the bit is 1, else
 * +0.0f. */
void tt_mask_grad_f32(const float *dy, const uint8_t *mask, int32_t size, float *dx);

/* TT_SUM_GRAD with two inputs: a, b, dx [size] float32; dx = a + b. */
void tt_add_grad_f32(const float *a, const float *b, int32_t size, float *dx);

/* TT_SUM_GRAD with one input: dy [dy_dims] float32 summed over the axes where the forward
 * input was broadcast; dx [dx_dims] of the same rank (a lower-rank forward input is given
 * leading 1s), each dx_dims[d] either dy_dims[d] or 1; rank <= 6. Order: each dx element
 * sums its dy elements in row-major order. */
void tt_sum_broadcast_grad_f32(const float *dy, const int32_t *dy_dims,
                               const int32_t *dx_dims, int32_t rank, float *dx);

/* TT_MEAN_GRAD: dy has the input's shape with the reduced axes of size 1; dx [dims] float32
 * gets dy / (float)count broadcast (count: the number of elements each mean averaged).
 * `reduced[d]` is 1 for a reduced axis. rank <= 6. */
void tt_mean_grad_f32(const float *dy, const int32_t *dims, const int32_t *reduced,
                      int32_t rank, float *dx);

/* TT_PAD_GRAD: dy [dy_dims] float32 = dims + paddings; dx [dims] = dy[before + index].
 * rank <= 6. */
void tt_pad_grad_f32(const float *dy, const int32_t *dy_dims, const int32_t *before,
                     const int32_t *dims, int32_t rank, float *dx);

/* TT_TRANSPOSE_GRAD: dy [dy_dims] float32 = transpose(x, perm); dx = transpose(dy, inverse
 * of perm). rank <= 6. */
void tt_transpose_grad_f32(const float *dy, const int32_t *dy_dims, const int32_t *perm,
                           int32_t rank, float *dx);

/* Int8 gradients. Data movement (mask, pad, transpose, and TT_RESHAPE_GRAD's tt_init_copy)
 * moves the int8 values and leaves the scale as it is (dx's scale is dy's scale tensor). */
void tt_mask_grad_s8(const int8_t *dy, const uint8_t *mask, int32_t size, int8_t *dx);

/* TT_SUM_GRAD, two int8 inputs: with top = max(a_scale, b_scale), ma and mb
 * = tt_grad_multiplier_s16(scale, top, TT_ADD_GRAD_SHIFT), acc = a * ma + b * mb,
 * unit = tt_grad_unit(top, TT_ADD_GRAD_SHIFT); dx and *dx_scale by the rule. */
void tt_add_grad_s8(const int8_t *a, const float *a_scale, const int8_t *b, const float *b_scale,
                    int32_t size, int8_t *dx, float *dx_scale, tt_update_state *rounding);

/* TT_SUM_GRAD, one int8 input: acc = the int32 sum of each dx element's dy elements
 * (tt_sum_broadcast_grad_f32's), unit = dy_scale; the rule. */
void tt_sum_broadcast_grad_s8(const int8_t *dy, const float *dy_scale, const int32_t *dy_dims,
                              const int32_t *dx_dims, int32_t rank, int8_t *dx,
                              float *dx_scale, tt_update_state *rounding);

/* TT_MEAN_GRAD of int8 dy: dx = dy broadcast, unchanged, *dx_scale = dy_scale / (float)count:
 * nothing is rounded. */
void tt_mean_grad_s8(const int8_t *dy, const float *dy_scale, const int32_t *dims,
                     const int32_t *reduced, int32_t rank, int8_t *dx, float *dx_scale);

void tt_pad_grad_s8(const int8_t *dy, const int32_t *dy_dims, const int32_t *before,
                    const int32_t *dims, int32_t rank, int8_t *dx);

void tt_transpose_grad_s8(const int8_t *dy, const int32_t *dy_dims, const int32_t *perm,
                          int32_t rank, int8_t *dx);

/* ==== src/tt_grad_quant.c: int8 gradients' rule and multipliers =========================== */

/* THE RULE on acc [n] (exact accumulators of real value unit * acc): q [n] and *scale.
 * `rounding` NULL rounds to nearest, else stochastically from the op's stream. The kernels
 * apply it element by element as they produce their accumulators; this is the same rule on
 * stored ones (the one-pass input gradients use it). */
void tt_quantize_grad_s8(const int32_t *acc, int32_t n, float unit, tt_update_state *rounding,
                         int8_t *q, float *scale);

/* k of a layer's input gradient: the largest k <= TT_GRAD_MAX_SHIFT with
 * terms * 127 * 128 * 2^k < 2^31 (terms: the most products one dx element sums); -1 when
 * even k = 0 could overflow (more than 132104 terms). */
int32_t tt_grad_shift(int32_t terms);

/* round(2^shift * scale / scale_max) in [0, 2^shift], shift <= 14: float32, in this order,
 * (scale / scale_max) * 2^shift + 0.5f, truncated; 2^shift when scale >= scale_max, 0 when
 * either is not positive. */
int16_t tt_grad_multiplier_s16(float scale, float scale_max, int32_t shift);

/* scale_max * 2^-shift (float32: scale_max * (1.0f / (float)(1 << shift))): the real value
 * of one unit of a multiplier. */
float tt_grad_unit(float scale_max, int32_t shift);

/* ==== src/tt_math.c: once-per-step double math ============================================= */

/* libm-free elementary functions in double arithmetic (formulas in the schema's "math").
 * glibc and newlib differ in the last bits of exp/log/cos; these give the same bits on every
 * IEEE-754 target compiled without FMA contraction, and tflite_train/training_ops.py repeats
 * them exactly. Within about 1 ulp of double (exp, log) and 2 ulp (cos_pi_ratio), tested; not
 * correctly rounded. Double on purpose, and only for the loss and the learning-rate decay:
 * a few calls per training step. */
double tt_exp(double x);                       /* any x (softmax: x <= 0); 0 below -745.13 */
double tt_log(double x);                       /* x > 0, finite */
double tt_cos_pi_ratio(int32_t t, int32_t n);  /* cos(pi * t / n), 0 <= t <= n, n > 0 */

/* The learning rate of update step `step` (the update kernels call it once per call), left
 * to right in double from the float32 lr, rounded to float32:
 *   decay_steps N > 0: (float)((double)o->lr * 0.5 * (1.0 + tt_cos_pi_ratio(min(step, N), N)));
 *   half_life T > 0:   (float)((double)o->lr * (double)T / ((double)T + (double)step));
 *   neither:           o->lr. */
float tt_learning_rate(const tt_sgd *o, int32_t step);

#ifdef __cplusplus
}
#endif

#endif /* TT_KERNELS_H */
