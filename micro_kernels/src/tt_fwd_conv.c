/* CONV_2D and FULLY_CONNECTED, int8 (include/tt_forward.h). A fully connected layer is a
 * 1x1 convolution over `batches` pixels, so both run through conv_core.
 *
 * Arithmetic is TFLM's ConvPerChannel: acc = bias + sum over in-image taps of
 * w * (x + input_offset) in int32, then requantized. The order of the integer sums differs
 * (four output channels share each input load), which changes nothing: int32 addition is
 * associative. */
#include "tt_forward.h"
#include "tt_fwd_internal.h"

/* acc[j] += sum_i (x[i] + offset) * w[j * w_stride + i] for j < 4. */
static inline void dot4(const int8_t *x, const int8_t *w, int32_t w_stride, int32_t n,
                        int32_t offset, int32_t acc[4]) {
  const int8_t *w0 = w, *w1 = w + w_stride, *w2 = w1 + w_stride, *w3 = w2 + w_stride;
  int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
  for (int32_t i = 0; i < n; ++i) {
    const int32_t v = x[i] + offset;
    a0 += v * w0[i];
    a1 += v * w1[i];
    a2 += v * w2[i];
    a3 += v * w3[i];
  }
  acc[0] = a0;
  acc[1] = a1;
  acc[2] = a2;
  acc[3] = a3;
}

static inline int32_t dot1(const int8_t *x, const int8_t *w, int32_t n, int32_t offset) {
  int32_t a = 0;
  for (int32_t i = 0; i < n; ++i) a += (x[i] + offset) * w[i];
  return a;
}

/* The filter is filter_lo [co, kh, kw, k] followed along input channels by filter_hi
 * [co, kh, kw, ci - k]. */
static void conv_core(const tt_fwd_conv_params *p, const int32_t *multiplier,
                      const int32_t *shift, const tt_fwd_dims *in, const int8_t *input,
                      const tt_fwd_dims *f, const int8_t *filter_lo, int32_t k,
                      const int8_t *filter_hi, const int32_t *bias, const tt_fwd_dims *out,
                      int8_t *output) {
  const int32_t ci = in->c, co = f->n, kh = f->h, kw = f->w, rest = in->c - k;
  const int32_t lo_stride = kh * kw * k, hi_stride = kh * kw * rest; /* between channels */
  const int32_t off = p->input_offset;
  for (int32_t b = 0; b < out->n; ++b) {
    for (int32_t oy = 0; oy < out->h; ++oy) {
      const int32_t iy0 = oy * p->stride_h - p->pad_top;
      int32_t ky0, ky1;
      tt_fwd_tap_range(iy0, p->dilation_h, kh, in->h, &ky0, &ky1);
      for (int32_t ox = 0; ox < out->w; ++ox) {
        const int32_t ix0 = ox * p->stride_w - p->pad_left;
        int32_t kx0, kx1;
        tt_fwd_tap_range(ix0, p->dilation_w, kw, in->w, &kx0, &kx1);
        int8_t *y = output + ((b * out->h + oy) * out->w + ox) * co;
        int32_t c = 0;
        for (; c + 4 <= co; c += 4) {
          int32_t acc[4] = {0, 0, 0, 0};
          for (int32_t ky = ky0; ky < ky1; ++ky) {
            const int32_t iy = iy0 + ky * p->dilation_h;
            for (int32_t kx = kx0; kx < kx1; ++kx) {
              const int32_t ix = ix0 + kx * p->dilation_w;
              const int8_t *x = input + ((b * in->h + iy) * in->w + ix) * ci;
              const int32_t tap = ky * kw + kx;
              dot4(x, filter_lo + c * lo_stride + tap * k, lo_stride, k, off, acc);
              if (rest > 0)
                dot4(x + k, filter_hi + c * hi_stride + tap * rest, hi_stride, rest, off,
                     acc);
            }
          }
          for (int32_t j = 0; j < 4; ++j) {
            const int32_t a = acc[j] + (bias ? bias[c + j] : 0);
            y[c + j] = tt_fwd_requantize(a, multiplier[c + j], shift[c + j], p->output_offset,
                                         p->act_min, p->act_max);
          }
        }
        for (; c < co; ++c) {
          int32_t acc = bias ? bias[c] : 0;
          for (int32_t ky = ky0; ky < ky1; ++ky) {
            const int32_t iy = iy0 + ky * p->dilation_h;
            for (int32_t kx = kx0; kx < kx1; ++kx) {
              const int32_t ix = ix0 + kx * p->dilation_w;
              const int8_t *x = input + ((b * in->h + iy) * in->w + ix) * ci;
              const int32_t tap = ky * kw + kx;
              acc += dot1(x, filter_lo + c * lo_stride + tap * k, k, off);
              if (rest > 0) acc += dot1(x + k, filter_hi + c * hi_stride + tap * rest, rest, off);
            }
          }
          y[c] = tt_fwd_requantize(acc, multiplier[c], shift[c], p->output_offset, p->act_min,
                                   p->act_max);
        }
      }
    }
  }
}

void tt_conv2d_s8(const tt_fwd_conv_params *p, const int32_t *multiplier, const int32_t *shift,
                  const tt_fwd_dims *input_dims, const int8_t *input,
                  const tt_fwd_dims *filter_dims, const int8_t *filter, const int32_t *bias,
                  const tt_fwd_dims *output_dims, int8_t *output) {
  conv_core(p, multiplier, shift, input_dims, input, filter_dims, filter, input_dims->c, 0,
            bias, output_dims, output);
}

void tt_conv2d_split_s8(const tt_fwd_conv_params *p, const int32_t *multiplier,
                        const int32_t *shift, const tt_fwd_dims *input_dims,
                        const int8_t *input, const tt_fwd_dims *filter_dims,
                        const int8_t *filter_lo, int32_t k, const int8_t *filter_hi,
                        const int32_t *bias, const tt_fwd_dims *output_dims, int8_t *output) {
  conv_core(p, multiplier, shift, input_dims, input, filter_dims, filter_lo, k, filter_hi,
            bias, output_dims, output);
}

void tt_fully_connected_split_s8(const tt_fwd_fc_params *p, const int32_t *multiplier,
                                 const int32_t *shift, int32_t batches, int32_t depth,
                                 const int8_t *input, int32_t units, const int8_t *weights_lo,
                                 int32_t k, const int8_t *weights_hi, const int32_t *bias,
                                 int8_t *output) {
  const tt_fwd_conv_params conv = {1, 1, 1, 1, 0, 0, p->input_offset, p->output_offset,
                                   p->act_min, p->act_max};
  const tt_fwd_dims in = {batches, 1, 1, depth}, f = {units, 1, 1, depth},
                    out = {batches, 1, 1, units};
  conv_core(&conv, multiplier, shift, &in, input, &f, weights_lo, k, weights_hi, bias, &out,
            output);
}

void tt_fully_connected_s8(const tt_fwd_fc_params *p, const int32_t *multiplier,
                           const int32_t *shift, int32_t batches, int32_t depth,
                           const int8_t *input, int32_t units, const int8_t *weights,
                           const int32_t *bias, int8_t *output) {
  tt_fully_connected_split_s8(p, multiplier, shift, batches, depth, input, units, weights,
                              depth, 0, bias, output);
}
