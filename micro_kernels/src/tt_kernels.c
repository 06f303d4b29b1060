/* Portable C99 reference kernels of the TT_* training ops (see include/tt_kernels.h). */
#include "tt_kernels.h"

#include <string.h>

#define TT_DEFAULT_SEED 2463534242u

static float mask_bit(const uint8_t *mask, int32_t i) {
  return mask ? (float)((mask[i >> 3] >> (i & 7)) & 1) : 1.0f;
}

/* Row-major strides of a shape. */
static void strides_of(const int32_t *dims, int32_t rank, int32_t *strides) {
  int32_t s = 1;
  for (int32_t d = rank - 1; d >= 0; --d) {
    strides[d] = s;
    s *= dims[d];
  }
}

static int32_t count_of(const int32_t *dims, int32_t rank) {
  int32_t n = 1;
  for (int32_t d = 0; d < rank; ++d) n *= dims[d];
  return n;
}

/* Advance a row-major multi-index over `dims` (wraps to all zeros after the last). */
static void next_index(int32_t *index, const int32_t *dims, int32_t rank) {
  for (int32_t d = rank - 1; d >= 0; --d) {
    if (++index[d] < dims[d]) return;
    index[d] = 0;
  }
}

uint32_t tt_xorshift32_next(uint32_t *state) {
  uint32_t x = *state;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  *state = x;
  return x;
}

void tt_update_state_init(tt_update_state *s, uint32_t seed) {
  s->rng = seed ? seed : TT_DEFAULT_SEED;
  s->step = 0;
}

float tt_learning_rate(const tt_sgd *o, int32_t step) {
  if (o->decay_steps <= 0) return (float)o->lr;
  const int32_t t = step < o->decay_steps ? step : o->decay_steps;
  return (float)(o->lr * 0.5 * (1.0 + tt_cos_pi_ratio(t, o->decay_steps)));
}

void tt_init_copy(const void *src, void *dst, int32_t bytes) { memcpy(dst, src, (size_t)bytes); }

void tt_save_mask_s8(const int8_t *y, int32_t size, int32_t lo, int32_t hi, uint8_t *mask) {
  memset(mask, 0, (size_t)((size + 7) / 8));
  for (int32_t i = 0; i < size; ++i) {
    if (y[i] > lo && y[i] < hi) mask[i >> 3] |= (uint8_t)(1u << (i & 7));
  }
}

void tt_save_slice_s8(const int8_t *x, int32_t outer, int32_t depth, int32_t channels,
                      int8_t *out) {
  for (int32_t o = 0; o < outer; ++o) {
    memcpy(out + (size_t)o * channels, x + (size_t)o * depth, (size_t)channels);
  }
}

int tt_loss_softmax_ce_s8(const int8_t *logits, int32_t classes, float scale, int32_t zp,
                          int32_t label, float *loss, float *dlogits) {
  if (label >= classes) return TT_ERROR_LABEL;
  float top = 0.0f;
  for (int32_t i = 0; i < classes; ++i) {
    const float v = scale * ((float)logits[i] - (float)zp);
    dlogits[i] = v;
    if (i == 0 || v > top) top = v;
  }
  /* float32 throughout, as the numpy reference; only exp and log are the double,
   * libm-free tt_exp / tt_log rounded to float, so that every target gets the same bits */
  float total = 0.0f;
  for (int32_t i = 0; i < classes; ++i) {
    dlogits[i] = (float)tt_exp((double)(dlogits[i] - top));
    total += dlogits[i];
  }
  const float shifted_label = scale * ((float)logits[label] - (float)zp) - top;
  *loss = (float)tt_log((double)total) - shifted_label;
  for (int32_t i = 0; i < classes; ++i) dlogits[i] /= total;
  dlogits[label] -= 1.0f;
  return TT_OK;
}

void tt_bias_grad_f32(const float *dy, const uint8_t *mask, int32_t outer, int32_t channels,
                      float *db) {
  for (int32_t c = 0; c < channels; ++c) {
    double acc = 0.0;
    for (int32_t o = 0; o < outer; ++o) {
      const int32_t i = o * channels + c;
      acc += (double)(dy[i] * mask_bit(mask, i));
    }
    db[c] = (float)acc;
  }
}

void tt_mask_grad_f32(const float *dy, const uint8_t *mask, int32_t size, float *dx) {
  for (int32_t i = 0; i < size; ++i) dx[i] = dy[i] * mask_bit(mask, i);
}

void tt_add_grad_f32(const float *a, const float *b, int32_t size, float *dx) {
  for (int32_t i = 0; i < size; ++i) dx[i] = a[i] + b[i];
}

/* The double sum of the dy elements at `dy` + every index of `dims` (the broadcast axes'
 * sizes, 1 on the kept axes) under dy's strides. */
static double sum_broadcast_axes(const float *dy, const int32_t *dims, const int32_t *strides,
                                 int32_t rank) {
  int32_t index[6] = {0};
  const int32_t count = count_of(dims, rank);
  double acc = 0.0;
  for (int32_t j = 0; j < count; ++j) {
    int32_t offset = 0;
    for (int32_t d = 0; d < rank; ++d) offset += index[d] * strides[d];
    acc += (double)dy[offset];
    next_index(index, dims, rank);
  }
  return acc;
}

void tt_sum_broadcast_grad_f32(const float *dy, const int32_t *dy_dims,
                               const int32_t *dx_dims, int32_t rank, float *dx) {
  int32_t dy_strides[6], broadcast[6], index[6] = {0};
  strides_of(dy_dims, rank, dy_strides);
  for (int32_t d = 0; d < rank; ++d) broadcast[d] = dx_dims[d] == dy_dims[d] ? 1 : dy_dims[d];
  const int32_t total = count_of(dx_dims, rank);
  for (int32_t i = 0; i < total; ++i) {
    int32_t base = 0;       /* index[d] is 0 on the broadcast axes */
    for (int32_t d = 0; d < rank; ++d) base += index[d] * dy_strides[d];
    dx[i] = (float)sum_broadcast_axes(dy + base, broadcast, dy_strides, rank);
    next_index(index, dx_dims, rank);
  }
}

/* The output position whose window tap `k` reads input position `i` along one axis, or -1:
 * o * stride + k * dilation - pad == i. Shared by the transposed (input-gradient) walks. */
static int32_t out_of_tap(int32_t i, int32_t k, int32_t pad, int32_t dilation, int32_t stride,
                          int32_t out) {
  const int32_t t = i + pad - k * dilation;
  if (t < 0 || t % stride) return -1;
  return t / stride < out ? t / stride : -1;
}

/* dx[n, ih, iw, ci] += dy[n, oy, ox, co] * s_w[co] * w[co, ky, kx, ci]; accumulated in
 * double per input element by walking the output positions that read it. */
void tt_conv2d_input_grad_f32(const float *dy, const uint8_t *mask, int32_t n, int32_t oh,
                              int32_t ow, int32_t co, const int8_t *w, const float *w_scales,
                              int32_t kh, int32_t kw, const tt_window *win, int32_t h,
                              int32_t wd, int32_t ci, float *dx) {
  for (int32_t b = 0; b < n; ++b)
    for (int32_t iy = 0; iy < h; ++iy)
      for (int32_t ix = 0; ix < wd; ++ix)
        for (int32_t c = 0; c < ci; ++c) {
          double acc = 0.0;
          for (int32_t ky = 0; ky < kh; ++ky) {
            const int32_t oy = out_of_tap(iy, ky, win->pad_top, win->dilation_h,
                                          win->stride_h, oh);
            if (oy < 0) continue;
            for (int32_t kx = 0; kx < kw; ++kx) {
              const int32_t ox = out_of_tap(ix, kx, win->pad_left, win->dilation_w,
                                            win->stride_w, ow);
              if (ox < 0) continue;
              const int32_t base = ((b * oh + oy) * ow + ox) * co;
              for (int32_t o = 0; o < co; ++o) {
                const double g = (double)(dy[base + o] * mask_bit(mask, base + o));
                const double wr = (double)w[((o * kh + ky) * kw + kx) * ci + c] *
                                  (double)w_scales[o];
                acc += g * wr;
              }
            }
          }
          dx[((b * h + iy) * wd + ix) * ci + c] = (float)acc;
        }
}

/* The operands of a CONV_2D weight gradient (the arguments of tt_conv2d_weight_grad_f32). */
typedef struct {
  const float *dy;
  const uint8_t *mask;
  int32_t n, oh, ow, co;
  const int8_t *saved;
  float x_scale;
  int32_t x_zp, h, wd, k, kh, kw;
  const tt_window *win;
} conv_weight_grad_args;

/* dw_o [kh, kw, k]: the gradient of output channel o's filter. The separate and the fused
 * kernel both call this, so their gradients are the same values by construction. */
static void conv2d_weight_grad_channel(const conv_weight_grad_args *args, int32_t o,
                                       float *dw_o) {
  const conv_weight_grad_args a = *args;   /* a local copy: dw_o cannot alias it */
  const tt_window win = *a.win;
  for (int32_t ky = 0; ky < a.kh; ++ky)
    for (int32_t kx = 0; kx < a.kw; ++kx)
      for (int32_t c = 0; c < a.k; ++c) {
        double acc = 0.0;
        for (int32_t b = 0; b < a.n; ++b)
          for (int32_t oy = 0; oy < a.oh; ++oy) {
            const int32_t iy = oy * win.stride_h + ky * win.dilation_h - win.pad_top;
            if (iy < 0 || iy >= a.h) continue;
            for (int32_t ox = 0; ox < a.ow; ++ox) {
              const int32_t ix = ox * win.stride_w + kx * win.dilation_w - win.pad_left;
              if (ix < 0 || ix >= a.wd) continue;
              const int32_t i = ((b * a.oh + oy) * a.ow + ox) * a.co + o;
              const double g = (double)(a.dy[i] * mask_bit(a.mask, i));
              const int8_t x = a.saved[((b * a.h + iy) * a.wd + ix) * a.k + c];
              const double xr = (double)a.x_scale * ((double)x - a.x_zp);
              acc += g * xr;
            }
          }
        dw_o[(ky * a.kw + kx) * a.k + c] = (float)acc;
      }
}

void tt_conv2d_weight_grad_f32(const float *dy, const uint8_t *mask, int32_t n, int32_t oh,
                               int32_t ow, int32_t co, const int8_t *saved, float x_scale,
                               int32_t x_zp, int32_t h, int32_t wd, int32_t k, int32_t kh,
                               int32_t kw, const tt_window *win, float *dw) {
  const conv_weight_grad_args a = {dy, mask, n, oh, ow, co, saved, x_scale, x_zp,
                                   h, wd, k, kh, kw, win};
  for (int32_t o = 0; o < co; ++o) conv2d_weight_grad_channel(&a, o, dw + o * kh * kw * k);
}

void tt_depthwise_conv2d_input_grad_f32(const float *dy, const uint8_t *mask, int32_t n,
                                        int32_t oh, int32_t ow, int32_t c, int32_t m,
                                        const int8_t *w, const float *w_scales, int32_t kh,
                                        int32_t kw, const tt_window *win, int32_t h,
                                        int32_t wd, float *dx) {
  const int32_t co = c * m;
  for (int32_t b = 0; b < n; ++b)
    for (int32_t iy = 0; iy < h; ++iy)
      for (int32_t ix = 0; ix < wd; ++ix)
        for (int32_t ch = 0; ch < c; ++ch) {
          double acc = 0.0;
          for (int32_t ky = 0; ky < kh; ++ky) {
            const int32_t oy = out_of_tap(iy, ky, win->pad_top, win->dilation_h,
                                          win->stride_h, oh);
            if (oy < 0) continue;
            for (int32_t kx = 0; kx < kw; ++kx) {
              const int32_t ox = out_of_tap(ix, kx, win->pad_left, win->dilation_w,
                                            win->stride_w, ow);
              if (ox < 0) continue;
              for (int32_t j = 0; j < m; ++j) {
                const int32_t o = ch * m + j;
                const int32_t i = ((b * oh + oy) * ow + ox) * co + o;
                const double g = (double)(dy[i] * mask_bit(mask, i));
                acc += g * (double)w[(ky * kw + kx) * co + o] * (double)w_scales[o];
              }
            }
          }
          dx[((b * h + iy) * wd + ix) * c + ch] = (float)acc;
        }
}

void tt_depthwise_conv2d_weight_grad_f32(const float *dy, const uint8_t *mask, int32_t n,
                                         int32_t oh, int32_t ow, int32_t c, int32_t m,
                                         const int8_t *saved, float x_scale, int32_t x_zp,
                                         int32_t h, int32_t wd, int32_t kh, int32_t kw,
                                         const tt_window *win, float *dw) {
  const int32_t co = c * m;
  for (int32_t ky = 0; ky < kh; ++ky)
    for (int32_t kx = 0; kx < kw; ++kx)
      for (int32_t o = 0; o < co; ++o) {
        const int32_t ch = o / m;
        double acc = 0.0;
        for (int32_t b = 0; b < n; ++b)
          for (int32_t oy = 0; oy < oh; ++oy) {
            const int32_t iy = oy * win->stride_h + ky * win->dilation_h - win->pad_top;
            if (iy < 0 || iy >= h) continue;
            for (int32_t ox = 0; ox < ow; ++ox) {
              const int32_t ix = ox * win->stride_w + kx * win->dilation_w - win->pad_left;
              if (ix < 0 || ix >= wd) continue;
              const int32_t i = ((b * oh + oy) * ow + ox) * co + o;
              const double g = (double)(dy[i] * mask_bit(mask, i));
              acc += g * (double)x_scale *
                     ((double)saved[((b * h + iy) * wd + ix) * c + ch] - x_zp);
            }
          }
        dw[(ky * kw + kx) * co + o] = (float)acc;
      }
}

void tt_fully_connected_input_grad_f32(const float *dy, const uint8_t *mask, int32_t batches,
                                       int32_t units, const int8_t *w, const float *w_scales,
                                       int32_t depth, float *dx) {
  for (int32_t b = 0; b < batches; ++b)
    for (int32_t d = 0; d < depth; ++d) {
      double acc = 0.0;
      for (int32_t u = 0; u < units; ++u) {
        const int32_t i = b * units + u;
        acc += (double)(dy[i] * mask_bit(mask, i)) * (double)w[u * depth + d] *
               (double)w_scales[u];
      }
      dx[b * depth + d] = (float)acc;
    }
}

/* dw_u [k]: the gradient of unit u's weights (shared by the separate and fused kernels). */
static void fully_connected_weight_grad_unit(const float *dy, const uint8_t *mask,
                                             int32_t batches, int32_t units, int32_t u,
                                             const int8_t *saved, float x_scale, int32_t x_zp,
                                             int32_t k, float *dw_u) {
  for (int32_t j = 0; j < k; ++j) {
    double acc = 0.0;
    for (int32_t b = 0; b < batches; ++b) {
      const int32_t i = b * units + u;
      acc += (double)(dy[i] * mask_bit(mask, i)) * (double)x_scale *
             ((double)saved[b * k + j] - x_zp);
    }
    dw_u[j] = (float)acc;
  }
}

void tt_fully_connected_weight_grad_f32(const float *dy, const uint8_t *mask, int32_t batches,
                                        int32_t units, const int8_t *saved, float x_scale,
                                        int32_t x_zp, int32_t k, float *dw) {
  for (int32_t u = 0; u < units; ++u)
    fully_connected_weight_grad_unit(dy, mask, batches, units, u, saved, x_scale, x_zp, k,
                                     dw + u * k);
}

static int32_t in_image_taps(int32_t oy, int32_t ox, int32_t fh, int32_t fw,
                             const tt_window *win, int32_t h, int32_t wd) {
  int32_t count = 0;
  for (int32_t ky = 0; ky < fh; ++ky) {
    const int32_t iy = oy * win->stride_h + ky - win->pad_top;
    if (iy < 0 || iy >= h) continue;
    for (int32_t kx = 0; kx < fw; ++kx) {
      const int32_t ix = ox * win->stride_w + kx - win->pad_left;
      if (ix >= 0 && ix < wd) ++count;
    }
  }
  return count;
}

void tt_average_pool_grad_f32(const float *dy, int32_t n, int32_t oh, int32_t ow, int32_t c,
                              int32_t fh, int32_t fw, const tt_window *win, int32_t h,
                              int32_t wd, float *dx) {
  for (int32_t b = 0; b < n; ++b)
    for (int32_t iy = 0; iy < h; ++iy)
      for (int32_t ix = 0; ix < wd; ++ix)
        for (int32_t ch = 0; ch < c; ++ch) {
          double acc = 0.0;
          for (int32_t ky = 0; ky < fh; ++ky) {
            const int32_t oy = out_of_tap(iy, ky, win->pad_top, 1, win->stride_h, oh);
            if (oy < 0) continue;
            for (int32_t kx = 0; kx < fw; ++kx) {
              const int32_t ox = out_of_tap(ix, kx, win->pad_left, 1, win->stride_w, ow);
              if (ox < 0) continue;
              acc += (double)dy[((b * oh + oy) * ow + ox) * c + ch] /
                     (double)in_image_taps(oy, ox, fh, fw, win, h, wd);
            }
          }
          dx[((b * h + iy) * wd + ix) * c + ch] = (float)acc;
        }
}

void tt_max_pool_grad_f32(const float *dy, const int8_t *saved, int32_t n, int32_t oh,
                          int32_t ow, int32_t c, int32_t fh, int32_t fw, const tt_window *win,
                          int32_t h, int32_t wd, float *dx) {
  memset(dx, 0, sizeof(float) * (size_t)(n * h * wd * c));
  for (int32_t b = 0; b < n; ++b)
    for (int32_t oy = 0; oy < oh; ++oy)
      for (int32_t ox = 0; ox < ow; ++ox)
        for (int32_t ch = 0; ch < c; ++ch) {
          int32_t best = -1, best_v = -1000;
          for (int32_t ky = 0; ky < fh; ++ky) {
            const int32_t iy = oy * win->stride_h + ky - win->pad_top;
            if (iy < 0 || iy >= h) continue;
            for (int32_t kx = 0; kx < fw; ++kx) {
              const int32_t ix = ox * win->stride_w + kx - win->pad_left;
              if (ix < 0 || ix >= wd) continue;
              const int32_t i = ((b * h + iy) * wd + ix) * c + ch;
              if (saved[i] > best_v) {
                best_v = saved[i];
                best = i;
              }
            }
          }
          if (best >= 0) dx[best] += dy[((b * oh + oy) * ow + ox) * c + ch];
        }
}

void tt_softmax_grad_f32(const float *dy, const int8_t *saved, float scale, int32_t zp,
                         int32_t rows, int32_t depth, float *dx) {
  for (int32_t r = 0; r < rows; ++r) {
    double dot = 0.0;
    for (int32_t i = 0; i < depth; ++i) {
      const double p = (double)scale * ((double)saved[r * depth + i] - zp);
      dot += p * (double)dy[r * depth + i];
    }
    for (int32_t i = 0; i < depth; ++i) {
      const double p = (double)scale * ((double)saved[r * depth + i] - zp);
      dx[r * depth + i] = (float)(p * ((double)dy[r * depth + i] - dot));
    }
  }
}

/* rintf without libm: for |v| < 2^23, adding and subtracting 2^23 in float32 leaves v rounded
 * to an integer, half to even (the default rounding mode); larger magnitudes are integers
 * already, NaN passes through. Only the sign of a zero result can differ from rintf. */
static float round_half_even(float v) {
  const float big = 8388608.0f;
  if (!(v < big && v > -big)) return v;
  return v >= 0.0f ? (v + big) - big : (v - big) + big;
}

/* floorf without libm: the conversion truncates toward zero, exactly for |v| < 2^23. */
static float floor_f32(float v) {
  const float big = 8388608.0f;
  if (!(v < big && v > -big)) return v;
  const float t = (float)(int32_t)v;
  return t > v ? t - 1.0f : t;
}

/* The learning rate of this call; the step counter advances once per update-op call. */
static float next_learning_rate(const tt_sgd *o, tt_update_state *s) {
  const float lr = tt_learning_rate(o, s->step);
  ++s->step;
  return lr;
}

/* The float32 update of one element, in the schema's operation order. */
static float sgd_delta(float grad, float scale, float *m, const tt_sgd *o, float lr) {
  float g = o->qas ? grad / scale : grad * scale;
  if (o->momentum > 0.0f && m) {
    *m = o->momentum * *m + g;
    g = *m;
  }
  return (-lr) * g;
}

/* The rounded integer step of one element, clamped to [-limit, limit] (NaN to -limit): a
 * step beyond the limit saturates the parameter either way, and clamping first keeps the
 * float-to-integer conversion defined. Stochastic rounding draws one uniform. */
static inline float integer_step(float grad, float scale, float *m, const tt_sgd *o,
                                float lr, tt_update_state *s, float limit) {
  const float delta = sgd_delta(grad, scale, m, o, lr);
  float step;
  if (o->rounding) {
    const float u = (float)(tt_xorshift32_next(&s->rng) >> 8) * (1.0f / 16777216.0f);
    step = floor_f32(delta + u);
  } else {
    step = round_half_even(delta);
  }
  if (!(step > -limit)) step = -limit;
  if (step > limit) step = limit;
  return step;
}

/* `rows` rows of int8 weights (row stride `depth`) updated in place on their first
 * `channels` elements, row-major: the order of the RNG draws. grad and momentum (or NULL)
 * are [rows, channels]; element (r, j) has scale scales[j] when per_column, else scales[0].
 * Every weight update, separate or fused, goes through here. */
static void update_rows_s8(int8_t *w, int32_t rows, int32_t depth, int32_t channels,
                           const float *scales, int per_column, const float *grad,
                           float *momentum, const tt_sgd *o, float lr, tt_update_state *s) {
  for (int32_t r = 0; r < rows; ++r)
    for (int32_t j = 0; j < channels; ++j) {
      const int32_t e = r * channels + j;
      const float step = integer_step(grad[e], scales[per_column ? j : 0],
                                      momentum ? &momentum[e] : 0, o, lr, s, 256.0f);
      int32_t v = (int32_t)w[r * depth + j] + (int32_t)step;
      if (v < -127) v = -127;
      if (v > 127) v = 127;
      w[r * depth + j] = (int8_t)v;
    }
}

/* c int32 biases updated in place, saturating; grad and momentum (or NULL) are [c]. */
static void update_biases_s32(int32_t *b, int32_t c, const float *scales, const float *grad,
                              float *momentum, const tt_sgd *o, float lr, tt_update_state *s) {
  for (int32_t i = 0; i < c; ++i) {
    /* 2^33: beyond the int32 range either way */
    const float step = integer_step(grad[i], scales[i], momentum ? &momentum[i] : 0, o, lr, s,
                                    8589934592.0f);
    int64_t v = (int64_t)b[i] + (int64_t)step;
    if (v < INT32_MIN) v = INT32_MIN;
    if (v > INT32_MAX) v = INT32_MAX;
    b[i] = (int32_t)v;
  }
}

void tt_update_weight_s8(int8_t *w, const int32_t *dims, int32_t rank, int32_t axis,
                         const float *scales, int32_t n_scales, const float *grad,
                         int32_t channels, float *momentum_buf, const tt_sgd *o,
                         tt_update_state *s) {
  const float lr = next_learning_rate(o, s);
  const int32_t depth = dims[rank - 1];
  int32_t outer = 1;
  for (int32_t d = 0; d < rank - 1; ++d) outer *= dims[d];
  if (n_scales == 1 || axis != 0) {
    update_rows_s8(w, outer, depth, channels, scales, n_scales > 1, grad, momentum_buf, o, lr,
                   s);
    return;
  }
  /* per-channel scales along the first axis: one run of rows per output channel */
  const int32_t first = rank > 1 ? dims[0] : 1;
  const int32_t rows = outer / first;
  for (int32_t i = 0; i < first; ++i) {
    const int32_t e = i * rows * channels;
    update_rows_s8(w + i * rows * depth, rows, depth, channels, &scales[i], 0, grad + e,
                   momentum_buf ? momentum_buf + e : 0, o, lr, s);
  }
}

void tt_update_bias_s32(int32_t *b, int32_t c, const float *scales, const float *grad,
                        float *momentum_buf, const tt_sgd *o, tt_update_state *s) {
  update_biases_s32(b, c, scales, grad, momentum_buf, o, next_learning_rate(o, s), s);
}

void tt_conv2d_weight_update_s8(const float *dy, const uint8_t *mask, int32_t n, int32_t oh,
                                int32_t ow, int32_t co, const int8_t *saved, float x_scale,
                                int32_t x_zp, int32_t h, int32_t wd, int32_t k, int8_t *w,
                                int32_t kh, int32_t kw, int32_t ci, const float *w_scales,
                                int32_t n_scales, const tt_window *win, float *momentum,
                                const tt_sgd *o, tt_update_state *s, float *scratch) {
  const conv_weight_grad_args a = {dy, mask, n, oh, ow, co, saved, x_scale, x_zp,
                                   h, wd, k, kh, kw, win};
  const float lr = next_learning_rate(o, s);
  const int32_t rows = kh * kw;      /* one output channel's filter: kh * kw rows of ci */
  for (int32_t c = 0; c < co; ++c) {
    conv2d_weight_grad_channel(&a, c, scratch);
    update_rows_s8(w + c * rows * ci, rows, ci, k, &w_scales[n_scales > 1 ? c : 0], 0, scratch,
                   momentum ? momentum + c * rows * k : 0, o, lr, s);
  }
}

void tt_depthwise_conv2d_weight_update_s8(const float *dy, const uint8_t *mask, int32_t n,
                                          int32_t oh, int32_t ow, int32_t c, int32_t m,
                                          const int8_t *saved, float x_scale, int32_t x_zp,
                                          int32_t h, int32_t wd, int8_t *w, int32_t kh,
                                          int32_t kw, const float *w_scales, int32_t n_scales,
                                          const tt_window *win, float *momentum,
                                          const tt_sgd *o, tt_update_state *s, float *scratch) {
  /* the scales run along the last axis, so no output channel is a contiguous run of rows;
   * the gradient is small (kh * kw * c * m) and is computed whole */
  const float lr = next_learning_rate(o, s);
  tt_depthwise_conv2d_weight_grad_f32(dy, mask, n, oh, ow, c, m, saved, x_scale, x_zp, h, wd,
                                      kh, kw, win, scratch);
  update_rows_s8(w, kh * kw, c * m, c * m, w_scales, n_scales > 1, scratch, momentum, o, lr, s);
}

void tt_fully_connected_weight_update_s8(const float *dy, const uint8_t *mask,
                                         int32_t batches, int32_t units, const int8_t *saved,
                                         float x_scale, int32_t x_zp, int32_t k, int8_t *w,
                                         int32_t depth, const float *w_scales,
                                         int32_t n_scales, float *momentum, const tt_sgd *o,
                                         tt_update_state *s, float *scratch) {
  const float lr = next_learning_rate(o, s);
  for (int32_t u = 0; u < units; ++u) {
    fully_connected_weight_grad_unit(dy, mask, batches, units, u, saved, x_scale, x_zp, k,
                                     scratch);
    update_rows_s8(w + u * depth, 1, depth, k, &w_scales[n_scales > 1 ? u : 0], 0, scratch,
                   momentum ? momentum + u * k : 0, o, lr, s);
  }
}

void tt_bias_update_s32(const float *dy, const uint8_t *mask, int32_t outer, int32_t channels,
                        int32_t *b, const float *b_scales, float *momentum, const tt_sgd *o,
                        tt_update_state *s, float *scratch) {
  const float lr = next_learning_rate(o, s);
  tt_bias_grad_f32(dy, mask, outer, channels, scratch);
  update_biases_s32(b, channels, b_scales, scratch, momentum, o, lr, s);
}

void tt_mean_grad_f32(const float *dy, const int32_t *dims, const int32_t *reduced,
                      int32_t rank, float *dx) {
  int32_t out_dims[6], out_strides[6], index[6] = {0};
  int32_t count = 1;
  for (int32_t d = 0; d < rank; ++d) {
    out_dims[d] = reduced[d] ? 1 : dims[d];
    if (reduced[d]) count *= dims[d];
  }
  strides_of(out_dims, rank, out_strides);
  const int32_t total = count_of(dims, rank);
  for (int32_t i = 0; i < total; ++i) {
    int32_t src = 0;
    for (int32_t d = 0; d < rank; ++d) src += (reduced[d] ? 0 : index[d]) * out_strides[d];
    dx[i] = (float)((double)dy[src] / (double)count);
    next_index(index, dims, rank);
  }
}

void tt_pad_grad_f32(const float *dy, const int32_t *dy_dims, const int32_t *before,
                     const int32_t *dims, int32_t rank, float *dx) {
  int32_t dy_strides[6], index[6] = {0};
  strides_of(dy_dims, rank, dy_strides);
  const int32_t total = count_of(dims, rank);
  for (int32_t i = 0; i < total; ++i) {
    int32_t src = 0;
    for (int32_t d = 0; d < rank; ++d) src += (index[d] + before[d]) * dy_strides[d];
    dx[i] = dy[src];
    next_index(index, dims, rank);
  }
}

void tt_transpose_grad_f32(const float *dy, const int32_t *dy_dims, const int32_t *perm,
                           int32_t rank, float *dx) {
  /* dy = transpose(x, perm): dy axis a is x axis perm[a]; walk x (= dx) in row-major order */
  int32_t dims[6], dy_strides[6], index[6] = {0};
  for (int32_t a = 0; a < rank; ++a) dims[perm[a]] = dy_dims[a];
  strides_of(dy_dims, rank, dy_strides);
  const int32_t total = count_of(dims, rank);
  for (int32_t i = 0; i < total; ++i) {
    int32_t src = 0;
    for (int32_t a = 0; a < rank; ++a) src += index[perm[a]] * dy_strides[a];
    dx[i] = dy[src];
    next_index(index, dims, rank);
  }
}
