/* tflite-train training kernels: portable C99, no TFLM types.
 *
 * One function per TT_* operation of schema/training_ops.json (read it for the semantics;
 * the comments here give shapes and quantization). Layouts are NHWC and row-major; weights
 * are [Co, KH, KW, Ci] (CONV_2D), [1, KH, KW, C*M] (DEPTHWISE_CONV_2D) or [units, depth]
 * (FULLY_CONNECTED), int8 with per-output-channel scales. Gradients are float32 and are
 * gradients with respect to REAL values; sums are accumulated in double and stored as float
 * so that the results agree with the numpy reference to float32 rounding. A `mask` is the
 * bit-packed activation mask (bit i, LSB first, of element i of dy); NULL means none.
 * Label gating (label < 0: do nothing) is the caller's job.
 */
#ifndef TT_KERNELS_H
#define TT_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TT_OK 0
#define TT_ERROR_LABEL 1

/* Geometry of a convolution or pooling window: leading pads of the forward op. */
typedef struct {
  int stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left;
} tt_window;

/* SGD + QAS options shared by the update kernels (schema: TT_UPDATE_WEIGHT). */
typedef struct {
  double lr;           /* learning rate before decay (the option, a double) */
  float momentum;      /* 0: no momentum buffer */
  int qas;             /* 1: g = grad / scale (QAS); 0: g = grad * scale */
  int rounding;        /* 0 nearest (rintf), 1 stochastic */
  int decay_steps;     /* 0 constant; N cosine decay to 0 over N steps */
} tt_sgd;

/* Per-op state kept across Invokes: the xorshift32 stream and the step counter. */
typedef struct {
  uint32_t rng;
  int32_t step;
} tt_update_state;

/* xorshift32: x ^= x << 13; x ^= x >> 17; x ^= x << 5. A zero state becomes 2463534242. */
uint32_t tt_xorshift32_next(uint32_t *state);
void tt_update_state_init(tt_update_state *s, uint32_t seed);
/* lr_t = lr * 0.5 * (1 + tt_cos_pi_ratio(min(t, N), N)), in double, returned as float. */
float tt_learning_rate(const tt_sgd *o, int32_t step);

/* libm-free elementary functions in double arithmetic (src/tt_math.c; formulas in the
 * schema's "math"). glibc and newlib differ in the last bits of exp/log/cos; these give the
 * same bits on every IEEE-754 target compiled without FMA contraction, and
 * tflite_train/training_ops.py repeats tt_cos_pi_ratio exactly. Within about 1 ulp of double
 * (exp, log) and 2 ulp (cos_pi_ratio), tested; not correctly rounded. */
double tt_exp(double x);                       /* any x (softmax: x <= 0); 0 below -745.13 */
double tt_log(double x);                       /* x > 0, finite */
double tt_cos_pi_ratio(int32_t t, int32_t n);  /* cos(pi * t / n), 0 <= t <= n, n > 0 */

/* TT_INIT: copy bytes. */
void tt_init_copy(const void *src, void *dst, int32_t bytes);

/* TT_SAVE_MASK: mask[ceil(size/8)], bit i = lo < y[i] < hi. */
void tt_save_mask_s8(const int8_t *y, int32_t size, int32_t lo, int32_t hi, uint8_t *mask);

/* TT_SAVE_SLICE: out[outer, channels] = x[outer, :channels] of x[outer, depth]. */
void tt_save_slice_s8(const int8_t *x, int32_t outer, int32_t depth, int32_t channels,
                      int8_t *out);

/* TT_LOSS_SOFTMAX_CE: p = softmax(scale * (logits - zp)); loss = -log p[label];
 * dlogits = p - onehot(label). logits [classes] int8; dlogits [classes]; loss [1]. float32
 * arithmetic with tt_exp / tt_log rounded to float. 0 <= label; returns TT_ERROR_LABEL when
 * label >= classes. */
int tt_loss_softmax_ce_s8(const int8_t *logits, int32_t classes, float scale, int32_t zp,
                          int32_t label, float *loss, float *dlogits);

/* TT_BIAS_GRAD: db[c] = sum over outer of (dy * mask)[outer, c]. */
void tt_bias_grad_f32(const float *dy, const uint8_t *mask, int32_t outer, int32_t channels,
                      float *db);

/* TT_MASK_GRAD: dx = dy * mask. */
void tt_mask_grad_f32(const float *dy, const uint8_t *mask, int32_t size, float *dx);

/* TT_SUM_GRAD with two inputs: dx = a + b. */
void tt_add_grad_f32(const float *a, const float *b, int32_t size, float *dx);

/* TT_SUM_GRAD with one input: dx = dy summed over the axes where the forward input was
 * broadcast. dy [dy_dims]; dx [dx_dims] of the same rank (a lower-rank forward input is
 * given leading 1s), each dx_dims[d] either dy_dims[d] or 1. rank <= 6. */
void tt_sum_broadcast_grad_f32(const float *dy, const int32_t *dy_dims,
                               const int32_t *dx_dims, int32_t rank, float *dx);

/* TT_CONV2D_INPUT_GRAD. dy [n, oh, ow, co]; w [co, kh, kw, ci] with w_scales[co];
 * dx [n, h, w, ci]. */
void tt_conv2d_input_grad_f32(const float *dy, const uint8_t *mask, int32_t n, int32_t oh,
                              int32_t ow, int32_t co, const int8_t *w, const float *w_scales,
                              int32_t kh, int32_t kw, const tt_window *win, int32_t h,
                              int32_t wd, int32_t ci, float *dx);

/* TT_CONV2D_WEIGHT_GRAD. saved [n, h, w, k] int8 (scale x_scale, zero point x_zp);
 * dw [co, kh, kw, k]. */
void tt_conv2d_weight_grad_f32(const float *dy, const uint8_t *mask, int32_t n, int32_t oh,
                               int32_t ow, int32_t co, const int8_t *saved, float x_scale,
                               int32_t x_zp, int32_t h, int32_t wd, int32_t k, int32_t kh,
                               int32_t kw, const tt_window *win, float *dw);

/* TT_DEPTHWISE_CONV2D_INPUT_GRAD. dy [n, oh, ow, c*m]; w [1, kh, kw, c*m]; dx [n, h, w, c]. */
void tt_depthwise_conv2d_input_grad_f32(const float *dy, const uint8_t *mask, int32_t n,
                                        int32_t oh, int32_t ow, int32_t c, int32_t m,
                                        const int8_t *w, const float *w_scales, int32_t kh,
                                        int32_t kw, const tt_window *win, int32_t h,
                                        int32_t wd, float *dx);

/* TT_DEPTHWISE_CONV2D_WEIGHT_GRAD. saved [n, h, w, c]; dw [1, kh, kw, c*m]. */
void tt_depthwise_conv2d_weight_grad_f32(const float *dy, const uint8_t *mask, int32_t n,
                                         int32_t oh, int32_t ow, int32_t c, int32_t m,
                                         const int8_t *saved, float x_scale, int32_t x_zp,
                                         int32_t h, int32_t wd, int32_t kh, int32_t kw,
                                         const tt_window *win, float *dw);

/* TT_FULLY_CONNECTED_INPUT_GRAD. dy [b, units]; w [units, depth]; dx [b, depth]. */
void tt_fully_connected_input_grad_f32(const float *dy, const uint8_t *mask, int32_t batches,
                                       int32_t units, const int8_t *w, const float *w_scales,
                                       int32_t depth, float *dx);

/* TT_FULLY_CONNECTED_WEIGHT_GRAD. saved [b, k]; dw [units, k]. */
void tt_fully_connected_weight_grad_f32(const float *dy, const uint8_t *mask, int32_t batches,
                                        int32_t units, const int8_t *saved, float x_scale,
                                        int32_t x_zp, int32_t k, float *dw);

/* TT_AVERAGE_POOL_GRAD: dy [n, oh, ow, c] shared among each window's in-image taps. */
void tt_average_pool_grad_f32(const float *dy, int32_t n, int32_t oh, int32_t ow, int32_t c,
                              int32_t fh, int32_t fw, const tt_window *win, int32_t h,
                              int32_t wd, float *dx);

/* TT_MAX_POOL_GRAD: to the first (row-major) in-image tap holding the window's maximum. */
void tt_max_pool_grad_f32(const float *dy, const int8_t *saved, int32_t n, int32_t oh,
                          int32_t ow, int32_t c, int32_t fh, int32_t fw, const tt_window *win,
                          int32_t h, int32_t wd, float *dx);

/* TT_SOFTMAX_GRAD: p = scale * (saved - zp); dx = p * (dy - sum(p * dy)) per row. */
void tt_softmax_grad_f32(const float *dy, const int8_t *saved, float scale, int32_t zp,
                         int32_t rows, int32_t depth, float *dx);

/* TT_MEAN_GRAD: dy has the input's shape with the reduced axes of size 1; dx [dims] gets
 * dy / count broadcast. `reduced[d]` is 1 for a reduced axis. rank <= 6. */
void tt_mean_grad_f32(const float *dy, const int32_t *dims, const int32_t *reduced,
                      int32_t rank, float *dx);

/* TT_PAD_GRAD: dx[dims] = dy[before + index] with dy of shape dims + paddings. rank <= 6. */
void tt_pad_grad_f32(const float *dy, const int32_t *dy_dims, const int32_t *before,
                     const int32_t *dims, int32_t rank, float *dx);

/* TT_TRANSPOSE_GRAD: dx = transpose(dy, inverse of perm); dy_dims are dy's. rank <= 6. */
void tt_transpose_grad_f32(const float *dy, const int32_t *dy_dims, const int32_t *perm,
                           int32_t rank, float *dx);

/* TT_UPDATE_WEIGHT: w [outer..., depth] int8, updated in place on its first `channels`
 * input channels (last axis); scales along `axis` (0: first axis, else last axis);
 * grad [..., channels]; momentum_buf like grad or NULL. */
void tt_update_weight_s8(int8_t *w, const int32_t *dims, int32_t rank, int32_t axis,
                         const float *scales, int32_t n_scales, const float *grad,
                         int32_t channels, float *momentum_buf, const tt_sgd *o,
                         tt_update_state *s);

/* TT_UPDATE_BIAS: b [c] int32 with scales[c] (s_x * s_w), saturating. */
void tt_update_bias_s32(int32_t *b, int32_t c, const float *scales, const float *grad,
                        float *momentum_buf, const tt_sgd *o, tt_update_state *s);

/* In-place fused gradient + update (TT_*_WEIGHT_UPDATE, TT_BIAS_UPDATE): bit-identical to the
 * gradient kernel followed by the update kernel (same values, same RNG order: one uniform
 * per trained element, row-major over the parameter), without the whole gradient ever
 * existing. `scratch` is caller-provided float memory of the size given; `momentum` is
 * shaped like the trained region or NULL. The learning rate and step advance once per call. */

/* TT_CONV2D_WEIGHT_UPDATE, one output channel at a time. w [co, kh, kw, ci] int8 with
 * w_scales[n_scales] (1 or co), updated on its first k input channels; saved [n, h, wd, k];
 * momentum [co, kh, kw, k]; scratch kh * kw * k floats. */
void tt_conv2d_weight_update_s8(const float *dy, const uint8_t *mask, int32_t n, int32_t oh,
                                int32_t ow, int32_t co, const int8_t *saved, float x_scale,
                                int32_t x_zp, int32_t h, int32_t wd, int32_t k, int8_t *w,
                                int32_t kh, int32_t kw, int32_t ci, const float *w_scales,
                                int32_t n_scales, const tt_window *win, float *momentum,
                                const tt_sgd *o, tt_update_state *s, float *scratch);

/* TT_DEPTHWISE_CONV2D_WEIGHT_UPDATE. w [1, kh, kw, c*m] with w_scales[n_scales] (1 or c*m,
 * along the last axis); saved [n, h, wd, c]; momentum [1, kh, kw, c*m];
 * scratch kh * kw * c * m floats (the whole, small, depthwise gradient). */
void tt_depthwise_conv2d_weight_update_s8(const float *dy, const uint8_t *mask, int32_t n,
                                          int32_t oh, int32_t ow, int32_t c, int32_t m,
                                          const int8_t *saved, float x_scale, int32_t x_zp,
                                          int32_t h, int32_t wd, int8_t *w, int32_t kh,
                                          int32_t kw, const float *w_scales, int32_t n_scales,
                                          const tt_window *win, float *momentum,
                                          const tt_sgd *o, tt_update_state *s, float *scratch);

/* TT_FULLY_CONNECTED_WEIGHT_UPDATE, one unit at a time. w [units, depth] with
 * w_scales[n_scales] (1 or units), updated on its first k columns; saved [batches, k];
 * momentum [units, k]; scratch k floats. */
void tt_fully_connected_weight_update_s8(const float *dy, const uint8_t *mask,
                                         int32_t batches, int32_t units, const int8_t *saved,
                                         float x_scale, int32_t x_zp, int32_t k, int8_t *w,
                                         int32_t depth, const float *w_scales,
                                         int32_t n_scales, float *momentum, const tt_sgd *o,
                                         tt_update_state *s, float *scratch);

/* TT_BIAS_UPDATE. dy [outer, channels]; b [channels] int32 with b_scales[channels];
 * momentum [channels]; scratch channels floats. */
void tt_bias_update_s32(const float *dy, const uint8_t *mask, int32_t outer, int32_t channels,
                        int32_t *b, const float *b_scales, float *momentum, const tt_sgd *o,
                        tt_update_state *s, float *scratch);

#ifdef __cplusplus
}
#endif

#endif /* TT_KERNELS_H */
