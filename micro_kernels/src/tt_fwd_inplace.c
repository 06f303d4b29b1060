/* A 1x1 convolution whose output is written over its input (include/tt_forward.h). Each
 * output row reads only its own input row, so rows are computed one at a time into scratch
 * by the out-of-place kernel (the same arithmetic, so the same bits) and copied to their
 * place, which by then holds only input rows already read. */
#include <string.h>

#include "tt_forward.h"

int32_t tt_conv2d_split_inplace_s8(const tt_fwd_conv_params *p, const int32_t *multiplier,
                                   const int8_t *shift, const tt_fwd_dims *input_dims,
                                   const int8_t *input, const tt_fwd_dims *filter_dims,
                                   const int8_t *filter_lo, int32_t k,
                                   const int8_t *filter_hi, const int32_t *bias,
                                   const tt_fwd_dims *output_dims, int8_t *output,
                                   int8_t *scratch) {
  const tt_fwd_dims *x = input_dims, *w = filter_dims, *y = output_dims;
  if (w->h != 1 || w->w != 1 || p->stride_h != 1 || p->stride_w != 1 || p->pad_top != 0 ||
      p->pad_left != 0 || x->n != y->n || x->h != y->h || x->w != y->w || w->c != x->c ||
      w->n != y->c)
    return TT_FWD_UNSUPPORTED;
  const int32_t rows = x->n * x->h;
  const int32_t in_row = x->w * x->c, out_row = y->w * y->c;
  /* Where the input may start: at the output's start when the output is no larger, else
   * far enough after it that writing row r never reaches input row r + 1; or anywhere the
   * two do not overlap at all. Compared as integers (the buffers may be unrelated). */
  const uintptr_t in = (uintptr_t)input, out = (uintptr_t)output;
  const uintptr_t in_end = in + (uintptr_t)rows * (uintptr_t)in_row;
  const uintptr_t out_end = out + (uintptr_t)rows * (uintptr_t)out_row;
  const uintptr_t grow = out_row > in_row ? (uintptr_t)rows * (uintptr_t)(out_row - in_row) : 0;
  if (!(in_end <= out || out_end <= in || in >= out + grow)) return TT_FWD_UNSUPPORTED;
  const tt_fwd_dims row_in = {1, 1, x->w, x->c}, row_out = {1, 1, y->w, y->c};
  for (int32_t r = 0; r < rows; ++r) {
    tt_conv2d_split_s8(p, multiplier, shift, &row_in, input + (size_t)r * (size_t)in_row, w,
                       filter_lo, k, filter_hi, bias, &row_out, scratch);
    memcpy(output + (size_t)r * (size_t)out_row, scratch, (size_t)out_row);
  }
  return TT_FWD_OK;
}
