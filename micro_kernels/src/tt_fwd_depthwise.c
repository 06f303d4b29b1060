/* DEPTHWISE_CONV_2D, int8, out of place and in place (include/tt_forward.h).
 * Arithmetic is TFLM's DepthwiseConvPerChannel: acc = bias + sum over in-image taps of
 * w * (x + input_offset) in int32, then requantized per output channel. */
#include "tt_forward.h"
#include "tt_fwd_internal.h"

/* One output element: output channel oc (input channel oc / m) at (oy, ox) of batch b. */
static inline int32_t tap_sum(const tt_fwd_conv_params *p, const tt_fwd_dims *in,
                              const int8_t *input, int32_t b, int32_t c, const int8_t *filter,
                              int32_t cm, int32_t oc, int32_t iy0, int32_t ky0, int32_t ky1,
                              int32_t ix0, int32_t kx0, int32_t kx1, int32_t kw) {
  int32_t acc = 0;
  for (int32_t ky = ky0; ky < ky1; ++ky) {
    const int8_t *x = input + ((b * in->h + iy0 + ky * p->dilation_h) * in->w + ix0 +
                               kx0 * p->dilation_w) * in->c + c;
    const int8_t *w = filter + (ky * kw + kx0) * cm + oc;
    for (int32_t kx = 0; kx < kx1 - kx0; ++kx)
      acc += (x[kx * p->dilation_w * in->c] + p->input_offset) * w[kx * cm];
  }
  return acc;
}

void tt_depthwise_conv2d_s8(const tt_fwd_conv_params *p, const int32_t *multiplier,
                            const int32_t *shift, const tt_fwd_dims *input_dims,
                            const int8_t *input, const tt_fwd_dims *filter_dims,
                            const int8_t *filter, const int32_t *bias,
                            const tt_fwd_dims *output_dims, int8_t *output) {
  const tt_fwd_dims *in = input_dims, *out = output_dims;
  const int32_t c_in = in->c, cm = out->c, m = cm / c_in, kh = filter_dims->h,
                kw = filter_dims->w, off = p->input_offset;
  for (int32_t b = 0; b < out->n; ++b) {
    for (int32_t oy = 0; oy < out->h; ++oy) {
      const int32_t iy0 = oy * p->stride_h - p->pad_top;
      int32_t ky0, ky1;
      tt_fwd_tap_range(iy0, p->dilation_h, kh, in->h, &ky0, &ky1);
      for (int32_t ox = 0; ox < out->w; ++ox) {
        const int32_t ix0 = ox * p->stride_w - p->pad_left;
        int32_t kx0, kx1;
        tt_fwd_tap_range(ix0, p->dilation_w, kw, in->w, &kx0, &kx1);
        int8_t *y = output + ((b * out->h + oy) * out->w + ox) * cm;
        int32_t oc = 0;
        if (m == 1) {
          /* four neighbouring channels per pass: their inputs and weights are contiguous */
          for (; oc + 4 <= cm; oc += 4) {
            int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
            for (int32_t ky = ky0; ky < ky1; ++ky) {
              const int8_t *xr = input + ((b * in->h + iy0 + ky * p->dilation_h) * in->w) * c_in;
              const int8_t *wr = filter + ky * kw * cm + oc;
              for (int32_t kx = kx0; kx < kx1; ++kx) {
                const int8_t *x = xr + (ix0 + kx * p->dilation_w) * c_in + oc;
                const int8_t *w = wr + kx * cm;
                a0 += (x[0] + off) * w[0];
                a1 += (x[1] + off) * w[1];
                a2 += (x[2] + off) * w[2];
                a3 += (x[3] + off) * w[3];
              }
            }
            const int32_t acc[4] = {a0, a1, a2, a3};
            for (int32_t j = 0; j < 4; ++j)
              y[oc + j] = tt_fwd_requantize(acc[j] + (bias ? bias[oc + j] : 0),
                                            multiplier[oc + j], shift[oc + j],
                                            p->output_offset, p->act_min, p->act_max);
          }
        }
        for (; oc < cm; ++oc) {
          const int32_t acc = tap_sum(p, in, input, b, oc / m, filter, cm, oc, iy0, ky0, ky1,
                                      ix0, kx0, kx1, kw);
          y[oc] = tt_fwd_requantize(acc + (bias ? bias[oc] : 0), multiplier[oc], shift[oc],
                                    p->output_offset, p->act_min, p->act_max);
        }
      }
    }
  }
}

/* --- in place -------------------------------------------------------------------------------
 * Output element (b, oy, ox, c) lives where input element (pixel P, c) did, P = b*oh*ow +
 * oy*ow + ox counted over all pixels; in batch b's own input that is pixel P - b*h*w (a
 * negative value: an earlier batch, already consumed). Output row q of channel c may be
 * written once no later output row of channel c reads those input pixels, i.e. once they
 * all lie in input rows before the first row the next output row reads. */

/* Whether output row q of batch b may be written after output row oy was computed. */
static int row_writable(const tt_fwd_conv_params *p, const tt_fwd_dims *in,
                        const tt_fwd_dims *out, int32_t b, int32_t q, int32_t oy) {
  if (oy + 1 >= out->h) return 1;
  int32_t first_needed_row = (oy + 1) * p->stride_h - p->pad_top;
  if (first_needed_row < 0) first_needed_row = 0;
  const int32_t last_pixel = (b * out->h + q + 1) * out->w - 1 - b * in->h * in->w;
  return last_pixel < first_needed_row * in->w;
}

/* Rows held in the ring at most: the schedule of tt_depthwise_conv2d_inplace_s8. */
static int32_t ring_lines(const tt_fwd_conv_params *p, const tt_fwd_dims *in,
                          const tt_fwd_dims *out) {
  int32_t most = 0;
  for (int32_t b = 0; b < out->n; ++b) {
    int32_t next = 0;
    for (int32_t oy = 0; oy < out->h; ++oy) {
      if (oy - next + 1 > most) most = oy - next + 1;
      while (next <= oy && row_writable(p, in, out, b, next, oy)) ++next;
    }
  }
  return most;
}

static int inplace_supported(const tt_fwd_dims *in, const tt_fwd_dims *out) {
  return out->c == in->c && out->n == in->n && out->h * out->w <= in->h * in->w;
}

int32_t tt_depthwise_conv2d_inplace_s8_scratch_bytes(const tt_fwd_conv_params *p,
                                                     const tt_fwd_dims *input_dims,
                                                     const tt_fwd_dims *filter_dims,
                                                     const tt_fwd_dims *output_dims) {
  (void)filter_dims;
  if (!inplace_supported(input_dims, output_dims)) return 0;
  return ring_lines(p, input_dims, output_dims) * output_dims->w;
}

int tt_depthwise_conv2d_inplace_s8(const tt_fwd_conv_params *p, const int32_t *multiplier,
                                   const int32_t *shift, const tt_fwd_dims *input_dims,
                                   int8_t *data, const tt_fwd_dims *filter_dims,
                                   const int8_t *filter, const int32_t *bias,
                                   const tt_fwd_dims *output_dims, int8_t *scratch) {
  const tt_fwd_dims *in = input_dims, *out = output_dims;
  if (!inplace_supported(in, out)) return TT_FWD_UNSUPPORTED;
  const int32_t c_in = in->c, kh = filter_dims->h, kw = filter_dims->w;
  const int32_t lines = ring_lines(p, in, out);
  for (int32_t b = 0; b < out->n; ++b) {
    for (int32_t c = 0; c < c_in; ++c) {
      const int32_t bias_c = bias ? bias[c] : 0;
      int32_t next = 0;                                  /* first row not yet written back */
      for (int32_t oy = 0; oy < out->h; ++oy) {
        const int32_t iy0 = oy * p->stride_h - p->pad_top;
        int32_t ky0, ky1;
        tt_fwd_tap_range(iy0, p->dilation_h, kh, in->h, &ky0, &ky1);
        int8_t *line = scratch + (oy % lines) * out->w;
        for (int32_t ox = 0; ox < out->w; ++ox) {
          const int32_t ix0 = ox * p->stride_w - p->pad_left;
          int32_t kx0, kx1;
          tt_fwd_tap_range(ix0, p->dilation_w, kw, in->w, &kx0, &kx1);
          const int32_t acc = tap_sum(p, in, data, b, c, filter, c_in, c, iy0, ky0, ky1, ix0,
                                      kx0, kx1, kw);
          line[ox] = tt_fwd_requantize(acc + bias_c, multiplier[c], shift[c], p->output_offset,
                                       p->act_min, p->act_max);
        }
        for (; next <= oy && row_writable(p, in, out, b, next, oy); ++next) {
          const int8_t *src = scratch + (next % lines) * out->w;
          int8_t *dst = data + ((b * out->h + next) * out->w) * c_in + c;
          for (int32_t ox = 0; ox < out->w; ++ox) dst[ox * c_in] = src[ox];
        }
      }
    }
  }
  return TT_FWD_OK;
}
