/* Row-streamed forward operators (include/tt_stream.h). */
#include "tt_stream.h"

#include <string.h>

static int32_t span_rows(const tt_fwd_conv_params *dw, const tt_fwd_dims *mid,
                         const tt_fwd_dims *dw_filter) {
  const int32_t span = (dw_filter->h - 1) * dw->dilation_h + 1;
  return span < mid->h ? span : mid->h;
}

int32_t tt_pointwise_depthwise_s8_window_bytes(const tt_fwd_conv_params *dw,
                                               const tt_fwd_dims *mid_dims,
                                               const tt_fwd_dims *dw_filter_dims,
                                               const tt_fwd_dims *output_dims) {
  (void)output_dims;
  return span_rows(dw, mid_dims, dw_filter_dims) * mid_dims->w * mid_dims->c;
}

int tt_pointwise_depthwise_s8(const tt_fwd_conv_params *pw, const int32_t *pw_multiplier,
                              const int32_t *pw_shift, const tt_fwd_dims *input_dims,
                              const int8_t *input, const tt_fwd_dims *pw_filter_dims,
                              const int8_t *pw_filter, const int32_t *pw_bias,
                              const tt_fwd_conv_params *dw, const int32_t *dw_multiplier,
                              const int32_t *dw_shift, const tt_fwd_dims *mid_dims,
                              const tt_fwd_dims *dw_filter_dims, const int8_t *dw_filter,
                              const int32_t *dw_bias, const tt_fwd_dims *output_dims,
                              int8_t *output, int8_t *window) {
  if (input_dims->n != 1 || pw_filter_dims->h != 1 || pw_filter_dims->w != 1 ||
      pw->stride_h != 1 || pw->stride_w != 1 || pw->pad_top != 0 || pw->pad_left != 0)
    return TT_FWD_UNSUPPORTED;
  const int32_t h = mid_dims->h, w = mid_dims->w, cm = mid_dims->c, ci = input_dims->c;
  const int32_t row_bytes = w * cm, span = (dw_filter_dims->h - 1) * dw->dilation_h + 1;
  const tt_fwd_dims in_row = {1, 1, w, ci}, mid_row = {1, 1, w, cm};
  const tt_fwd_dims out_row = {1, 1, output_dims->w, output_dims->c};
  const int32_t out_row_bytes = output_dims->w * output_dims->c;
  int32_t have0 = 0, have1 = 0;               /* the window holds mid rows [have0, have1) */
  for (int32_t oy = 0; oy < output_dims->h; ++oy) {
    /* the mid rows this output row reads: [r0, r1) (taps outside are padding) */
    const int32_t top = oy * dw->stride_h - dw->pad_top;
    const int32_t r0 = top > 0 ? top : 0;
    const int32_t r1 = top + span < h ? top + span : h;
    if (r0 >= r1) {                           /* no row in the image: all taps are padding */
      have0 = have1 = r0;
    } else {
      if (r0 > have0) {                       /* drop the rows above r0 */
        const int32_t keep = have1 > r0 ? have1 - r0 : 0;
        /* row by row, each moving down by at least a row: source and destination of one
         * memcpy never overlap */
        for (int32_t j = 0; j < keep; ++j)
          memcpy(window + j * row_bytes, window + (r0 - have0 + j) * row_bytes, (size_t)row_bytes);
        have0 = r0;
        if (have1 < r0) have1 = r0;
      }
      for (int32_t r = have1; r < r1; ++r)    /* compute the rows not there yet */
        tt_conv2d_s8(pw, pw_multiplier, pw_shift, &in_row, input + r * w * ci, pw_filter_dims,
                     pw_filter, pw_bias, &mid_row, window + (r - have0) * row_bytes);
      if (r1 > have1) have1 = r1;
    }
    /* output row oy from the window: its first row is mid row r0, so the top padding left
     * is what lies above the image */
    tt_fwd_conv_params p = *dw;
    p.pad_top = top < 0 ? -top : 0;
    const tt_fwd_dims win = {1, r1 > r0 ? r1 - r0 : 0, w, cm};
    tt_depthwise_conv2d_s8(&p, dw_multiplier, dw_shift, &win, window, dw_filter_dims,
                           dw_filter, dw_bias, &out_row, output + oy * out_row_bytes);
  }
  return TT_FWD_OK;
}

/* The input rows output row oy reads: [*r0, *r1) (the rest of its taps are padding). */
static void rows_read(const tt_fwd_conv_params *p, int32_t oy, int32_t kh, int32_t h,
                      int32_t *r0, int32_t *r1) {
  const int32_t top = oy * p->stride_h - p->pad_top;
  const int32_t end = top + (kh - 1) * p->dilation_h + 1;
  *r0 = top > 0 ? top : 0;
  *r1 = end < h ? end : h;
  if (*r1 < *r0) *r1 = *r0;
}

int32_t tt_conv2d_rows_s8_shift(const tt_fwd_conv_params *p, const tt_fwd_dims *input_dims,
                                const tt_fwd_dims *filter_dims, const tt_fwd_dims *output_dims) {
  const int32_t in_row = input_dims->w * input_dims->c;
  const int32_t out_row = output_dims->w * output_dims->c;
  int32_t shift = 0;
  for (int32_t oy = 0; oy < output_dims->h; ++oy) {
    int32_t r0, r1;
    rows_read(p, oy, filter_dims->h, input_dims->h, &r0, &r1);
    if (r0 >= input_dims->h) continue;
    const int32_t need = (oy + 1) * out_row - r0 * in_row;
    if (need > shift) shift = need;
  }
  return shift;
}

int tt_conv2d_rows_s8(const tt_fwd_conv_params *p, const int32_t *multiplier,
                      const int32_t *shift, const tt_fwd_dims *input_dims, const int8_t *input,
                      const tt_fwd_dims *filter_dims, const int8_t *filter, const int32_t *bias,
                      const tt_fwd_dims *output_dims, int8_t *output) {
  if (input_dims->n != 1 || output_dims->n != 1) return TT_FWD_UNSUPPORTED;
  const int32_t in_row = input_dims->w * input_dims->c;
  const int32_t out_row = output_dims->w * output_dims->c;
  const tt_fwd_dims out = {1, 1, output_dims->w, output_dims->c};
  for (int32_t oy = 0; oy < output_dims->h; ++oy) {
    int32_t r0, r1;
    rows_read(p, oy, filter_dims->h, input_dims->h, &r0, &r1);
    /* the window's first row is input row r0: the top padding left is what lies above */
    tt_fwd_conv_params q = *p;
    const int32_t top = oy * p->stride_h - p->pad_top;
    q.pad_top = top < 0 ? -top : 0;
    const tt_fwd_dims win = {1, r1 - r0, input_dims->w, input_dims->c};
    tt_conv2d_s8(&q, multiplier, shift, &win, input + r0 * in_row, filter_dims, filter, bias,
                 &out, output + oy * out_row);
  }
  return TT_FWD_OK;
}
