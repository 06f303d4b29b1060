/* DEPTHWISE_CONV_2D, int8, out of place and in place (include/tt_forward.h).
 * Arithmetic is TFLM's DepthwiseConvPerChannel: acc = bias + sum over in-image taps of
 * w * (x + input_offset) in int32, then requantized per output channel. Both kernels of
 * depth multiplier 1 compute through dw_row, so in place and out of place are the same
 * arithmetic; only where the rows go differs. */
#include "tt_forward.h"
#include "tt_fwd_internal.h"

/* One output element of any depth multiplier: output channel oc (input channel c = oc / m,
 * cm = c_in * m channels) at the window origin (iy0, ix0) of batch b. */
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

/* A depth-multiplier-1 layer, as the row routine reads it. */
typedef struct {
  const tt_fwd_conv_params *p;
  const int32_t *multiplier, *shift, *bias;
  const tt_fwd_dims *in, *out;
  const int8_t *input, *filter;
  int32_t kh, kw;
} dw_layer;

/* Output row oy of batch b for channels [c, c + g), g <= 4, element (ox, j) written to
 * out[ox * stride + j]. A window wholly inside the image sums w * x and starts from
 * bias + input_offset * (sum of the channel's weights), the same integer as TFLM's
 * sum of w * (x + input_offset) but one add per tap cheaper; border windows add the offset
 * per tap, over their in-image taps only. */
static void dw_row(const dw_layer *L, int32_t b, int32_t oy, int32_t c, int32_t g, int8_t *out,
                   int32_t stride) {
  const tt_fwd_conv_params *p = L->p;
  const int32_t C = L->in->c, kh = L->kh, kw = L->kw, off = p->input_offset;
  const int32_t tap_step = p->dilation_w * C, row_step = p->dilation_h * L->in->w * C;
  const int32_t out_off = p->output_offset, lo = p->act_min, hi = p->act_max;
  const int32_t *mult = L->multiplier + c, *shift = L->shift + c;
  int32_t bias[4] = {0, 0, 0, 0}, folded[4] = {0, 0, 0, 0};
  for (int32_t j = 0; j < g; ++j) {
    int32_t sum = 0;
    for (int32_t t = 0; t < kh * kw; ++t) sum += L->filter[t * C + c + j];
    if (L->bias) bias[j] = L->bias[c + j];
    folded[j] = bias[j] + off * sum;
  }
  const int32_t iy0 = oy * p->stride_h - p->pad_top;
  int32_t ky0, ky1;
  tt_fwd_tap_range(iy0, p->dilation_h, kh, L->in->h, &ky0, &ky1);
  const int32_t rows = ky1 - ky0;
  /* offsets of the first in-image tap row; pointers are formed only when a tap exists */
  const int32_t x_row = (b * L->in->h + iy0 + ky0 * p->dilation_h) * L->in->w * C + c;
  const int32_t w_row = ky0 * kw * C + c;
  for (int32_t ox = 0; ox < L->out->w; ++ox, out += stride) {
    const int32_t ix0 = ox * p->stride_w - p->pad_left;
    int32_t kx0, kx1;
    tt_fwd_tap_range(ix0, p->dilation_w, kw, L->in->w, &kx0, &kx1);
    const int32_t taps = kx1 - kx0;
    const int full = rows == kh && taps == kw;
    const int32_t *start = full ? folded : bias;
    if (rows <= 0 || taps <= 0) {
      for (int32_t j = 0; j < g; ++j)
        out[j] = tt_fwd_requantize(start[j], mult[j], shift[j], out_off, lo, hi);
      continue;
    }
    const int8_t *x = L->input + x_row + (ix0 + kx0 * p->dilation_w) * C;
    const int8_t *w = L->filter + w_row + kx0 * C;
    if (g == 4) {
      int32_t a0 = start[0], a1 = start[1], a2 = start[2], a3 = start[3];
      const int32_t o = full ? 0 : off;
      for (int32_t r = 0; r < rows; ++r, x += row_step, w += kw * C) {
        const int8_t *xt = x, *wt = w;
        if (full) {
          for (int32_t t = 0; t < taps; ++t, xt += tap_step, wt += C) {
            a0 += xt[0] * wt[0];
            a1 += xt[1] * wt[1];
            a2 += xt[2] * wt[2];
            a3 += xt[3] * wt[3];
          }
        } else {
          for (int32_t t = 0; t < taps; ++t, xt += tap_step, wt += C) {
            a0 += (xt[0] + o) * wt[0];
            a1 += (xt[1] + o) * wt[1];
            a2 += (xt[2] + o) * wt[2];
            a3 += (xt[3] + o) * wt[3];
          }
        }
      }
      out[0] = tt_fwd_requantize(a0, mult[0], shift[0], out_off, lo, hi);
      out[1] = tt_fwd_requantize(a1, mult[1], shift[1], out_off, lo, hi);
      out[2] = tt_fwd_requantize(a2, mult[2], shift[2], out_off, lo, hi);
      out[3] = tt_fwd_requantize(a3, mult[3], shift[3], out_off, lo, hi);
    } else {
      const int32_t o = full ? 0 : off;
      for (int32_t j = 0; j < g; ++j) {
        int32_t acc = start[j];
        for (int32_t r = 0; r < rows; ++r)
          for (int32_t t = 0; t < taps; ++t)
            acc += (x[r * row_step + t * tap_step + j] + o) * w[r * kw * C + t * C + j];
        out[j] = tt_fwd_requantize(acc, mult[j], shift[j], out_off, lo, hi);
      }
    }
  }
}

void tt_depthwise_conv2d_s8(const tt_fwd_conv_params *p, const int32_t *multiplier,
                            const int32_t *shift, const tt_fwd_dims *input_dims,
                            const int8_t *input, const tt_fwd_dims *filter_dims,
                            const int8_t *filter, const int32_t *bias,
                            const tt_fwd_dims *output_dims, int8_t *output) {
  const tt_fwd_dims *in = input_dims, *out = output_dims;
  const int32_t c_in = in->c, cm = out->c, m = cm / c_in, kh = filter_dims->h,
                kw = filter_dims->w;
  if (m == 1) {
    const dw_layer L = {p, multiplier, shift, bias, in, out, input, filter, kh, kw};
    for (int32_t b = 0; b < out->n; ++b)
      for (int32_t c = 0; c < c_in; c += 4)
        for (int32_t oy = 0; oy < out->h; ++oy)
          dw_row(&L, b, oy, c, c_in - c < 4 ? c_in - c : 4,
                 output + (b * out->h + oy) * out->w * cm + c, cm);
    return;
  }
  TT_FWD_FOR_EACH_WINDOW(in, out, p->stride_h, p->stride_w, p->pad_top, p->pad_left,
                         p->dilation_h, p->dilation_w, kh, kw, {
    int8_t *y = output + ((b * out->h + oy) * out->w + ox) * cm;
    for (int32_t oc = 0; oc < cm; ++oc) {
      const int32_t acc = tap_sum(p, in, input, b, oc / m, filter, cm, oc, iy0, ky0, ky1, ix0,
                                  kx0, kx1, kw);
      y[oc] = tt_fwd_requantize(acc + (bias ? bias[oc] : 0), multiplier[oc], shift[oc],
                                p->output_offset, p->act_min, p->act_max);
    }
  })
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

/* Channels computed together in place: the ring's lines hold this many channels each. */
static int32_t group_of(const tt_fwd_dims *in) { return in->c < 4 ? in->c : 4; }

int32_t tt_depthwise_conv2d_inplace_s8_scratch_bytes(const tt_fwd_conv_params *p,
                                                     const tt_fwd_dims *input_dims,
                                                     const tt_fwd_dims *filter_dims,
                                                     const tt_fwd_dims *output_dims) {
  (void)filter_dims;
  if (!inplace_supported(input_dims, output_dims)) return 0;
  return ring_lines(p, input_dims, output_dims) * output_dims->w * group_of(input_dims);
}

int tt_depthwise_conv2d_inplace_s8(const tt_fwd_conv_params *p, const int32_t *multiplier,
                                   const int32_t *shift, const tt_fwd_dims *input_dims,
                                   int8_t *data, const tt_fwd_dims *filter_dims,
                                   const int8_t *filter, const int32_t *bias,
                                   const tt_fwd_dims *output_dims, int8_t *scratch) {
  const tt_fwd_dims *in = input_dims, *out = output_dims;
  if (!inplace_supported(in, out)) return TT_FWD_UNSUPPORTED;
  const dw_layer L = {p, multiplier, shift, bias, in, out, data, filter, filter_dims->h,
                      filter_dims->w};
  const int32_t C = in->c, lines = ring_lines(p, in, out), line = out->w * group_of(in);
  for (int32_t b = 0; b < out->n; ++b) {
    for (int32_t c = 0; c < C; c += 4) {
      const int32_t g = C - c < 4 ? C - c : 4;
      int32_t next = 0;                                  /* first row not yet written back */
      for (int32_t oy = 0; oy < out->h; ++oy) {
        dw_row(&L, b, oy, c, g, scratch + (oy % lines) * line, g);
        for (; next <= oy && row_writable(p, in, out, b, next, oy); ++next) {
          const int8_t *src = scratch + (next % lines) * line;
          int8_t *dst = data + (b * out->h + next) * out->w * C + c;
          for (int32_t ox = 0; ox < out->w; ++ox)
            for (int32_t j = 0; j < g; ++j) dst[ox * C + j] = src[ox * g + j];
        }
      }
    }
  }
  return TT_FWD_OK;
}
