/* Portable C99 reference kernels of the TT_* training ops (see include/tt_kernels.h). */
#include "tt_kernels.h"

#include <math.h>
#include <string.h>

#define TT_DEFAULT_SEED 2463534242u

static float mask_bit(const uint8_t *mask, int32_t i) {
  return mask ? (float)((mask[i >> 3] >> (i & 7)) & 1) : 1.0f;
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
  const double pi = 3.14159265358979323846;
  return (float)(o->lr * 0.5 * (1.0 + cos(pi * (double)t / (double)o->decay_steps)));
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
  float top = -INFINITY;
  for (int32_t i = 0; i < classes; ++i) {
    const float v = scale * ((float)logits[i] - (float)zp);
    dlogits[i] = v;
    if (v > top) top = v;
  }
  float total = 0.0f;
  for (int32_t i = 0; i < classes; ++i) {
    dlogits[i] = expf(dlogits[i] - top);
    total += dlogits[i];
  }
  const float shifted_label = scale * ((float)logits[label] - (float)zp) - top;
  *loss = logf(total) - shifted_label;
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

void tt_conv2d_weight_grad_f32(const float *dy, const uint8_t *mask, int32_t n, int32_t oh,
                               int32_t ow, int32_t co, const int8_t *saved, float x_scale,
                               int32_t x_zp, int32_t h, int32_t wd, int32_t k, int32_t kh,
                               int32_t kw, const tt_window *win, float *dw) {
  for (int32_t o = 0; o < co; ++o)
    for (int32_t ky = 0; ky < kh; ++ky)
      for (int32_t kx = 0; kx < kw; ++kx)
        for (int32_t c = 0; c < k; ++c) {
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
                const double xr = (double)x_scale *
                                  ((double)saved[((b * h + iy) * wd + ix) * k + c] - x_zp);
                acc += g * xr;
              }
            }
          dw[((o * kh + ky) * kw + kx) * k + c] = (float)acc;
        }
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

void tt_fully_connected_weight_grad_f32(const float *dy, const uint8_t *mask, int32_t batches,
                                        int32_t units, const int8_t *saved, float x_scale,
                                        int32_t x_zp, int32_t k, float *dw) {
  for (int32_t u = 0; u < units; ++u)
    for (int32_t j = 0; j < k; ++j) {
      double acc = 0.0;
      for (int32_t b = 0; b < batches; ++b) {
        const int32_t i = b * units + u;
        acc += (double)(dy[i] * mask_bit(mask, i)) * (double)x_scale *
               ((double)saved[b * k + j] - x_zp);
      }
      dw[u * k + j] = (float)acc;
    }
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

/* The float32 update of one element, in the schema's operation order. */
static float sgd_delta(float grad, float scale, float *m, const tt_sgd *o, float lr) {
  float g = o->qas ? grad / scale : grad * scale;
  if (o->momentum > 0.0f && m) {
    *m = o->momentum * *m + g;
    g = *m;
  }
  return (-lr) * g;
}

static float round_step(float delta, const tt_sgd *o, tt_update_state *s) {
  if (!o->rounding) return rintf(delta);
  const float u = (float)(tt_xorshift32_next(&s->rng) >> 8) * (1.0f / 16777216.0f);
  return floorf(delta + u);
}

void tt_update_weight_s8(int8_t *w, const int32_t *dims, int32_t rank, int32_t axis,
                         const float *scales, int32_t n_scales, const float *grad,
                         int32_t channels, float *momentum_buf, const tt_sgd *o,
                         tt_update_state *s) {
  const float lr = tt_learning_rate(o, s->step);
  ++s->step;
  const int32_t depth = dims[rank - 1];
  int32_t outer = 1;
  for (int32_t d = 0; d < rank - 1; ++d) outer *= dims[d];
  const int32_t per_first = rank > 1 ? outer / dims[0] : 1;   /* rows per first-axis index */
  for (int32_t r = 0; r < outer; ++r)
    for (int32_t j = 0; j < channels; ++j) {
      const int32_t e = r * channels + j;
      int32_t ch = 0;
      if (n_scales > 1) ch = axis == 0 ? r / per_first : j;
      const float delta = sgd_delta(grad[e], scales[ch], momentum_buf ? &momentum_buf[e] : 0,
                                    o, lr);
      float step = round_step(delta, o, s);
      /* |step| > 254 saturates either way; clamping first keeps the conversion defined */
      if (!(step > -256.0f)) step = -256.0f;   /* also catches NaN */
      if (step > 256.0f) step = 256.0f;
      int32_t v = (int32_t)w[r * depth + j] + (int32_t)step;
      if (v < -127) v = -127;
      if (v > 127) v = 127;
      w[r * depth + j] = (int8_t)v;
    }
}

void tt_update_bias_s32(int32_t *b, int32_t c, const float *scales, const float *grad,
                        float *momentum_buf, const tt_sgd *o, tt_update_state *s) {
  const float lr = tt_learning_rate(o, s->step);
  ++s->step;
  for (int32_t i = 0; i < c; ++i) {
    const float delta = sgd_delta(grad[i], scales[i], momentum_buf ? &momentum_buf[i] : 0, o,
                                  lr);
    float step = round_step(delta, o, s);
    const float limit = 8589934592.0f;    /* 2^33: beyond the int32 range either way */
    if (!(step > -limit)) step = -limit;
    if (step > limit) step = limit;
    int64_t v = (int64_t)b[i] + (int64_t)step;
    if (v < INT32_MIN) v = INT32_MIN;
    if (v > INT32_MAX) v = INT32_MAX;
    b[i] = (int32_t)v;
  }
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
    for (int32_t d = rank - 1; d >= 0; --d) {      /* next row-major index */
      if (++index[d] < dims[d]) break;
      index[d] = 0;
    }
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
    for (int32_t d = rank - 1; d >= 0; --d) {
      if (++index[d] < dims[d]) break;
      index[d] = 0;
    }
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
    for (int32_t d = rank - 1; d >= 0; --d) {
      if (++index[d] < dims[d]) break;
      index[d] = 0;
    }
  }
}
