/* In-place activation gradients (include/tt_inplace_grad.h). */
#include "tt_inplace_grad.h"

#include <string.h>

static int32_t ring_rows(int32_t kh, const tt_window *win) {
  const int32_t lag = (kh - 1) * win->dilation_h - win->pad_top;
  return lag + 1 > 1 ? lag + 1 : 1;
}

int32_t tt_depthwise_conv2d_input_grad_inplace_f32_scratch_bytes(
    int32_t n, int32_t oh, int32_t ow, int32_t c, int32_t m, int32_t kh, int32_t kw,
    const tt_window *win, int32_t h, int32_t wd, int32_t mask_used) {
  (void)kw;
  if (n != 1 || m != 1 || win->stride_h != 1 || win->stride_w != 1 || oh != h || ow != wd ||
      (mask_used && (ow * c) % 8 != 0))
    return 0;
  const int32_t rows = ring_rows(kh, win);
  return (rows < h ? rows : h) * wd * c * (int32_t)sizeof(float);
}

int tt_depthwise_conv2d_input_grad_inplace_f32(float *data, const uint8_t *mask, int32_t n,
                                               int32_t oh, int32_t ow, int32_t c, int32_t m,
                                               const int8_t *w, const float *w_scales,
                                               int32_t kh, int32_t kw, const tt_window *win,
                                               int32_t h, int32_t wd, float *scratch) {
  if (tt_depthwise_conv2d_input_grad_inplace_f32_scratch_bytes(n, oh, ow, c, m, kh, kw, win, h,
                                                               wd, mask != 0) == 0)
    return 1;
  const int32_t row = wd * c, span = (kh - 1) * win->dilation_h;
  const int32_t lag = span - win->pad_top;        /* dy row i is last read by dx row i + lag */
  int32_t slots = ring_rows(kh, win);
  if (slots > h) slots = h;
  int32_t flushed = 0;                            /* dx rows [0, flushed) are in place */
  for (int32_t j = 0; j < h; ++j) {
    /* the dy rows dx row j reads: oy = j + pad_top - ky * dilation_h, within [0, oh) */
    int32_t o0 = j + win->pad_top - span, o1 = j + win->pad_top + 1;
    if (o0 < 0) o0 = 0;
    if (o1 > oh) o1 = oh;
    if (o1 < o0) o1 = o0;
    tt_window v = *win;
    v.pad_top = win->pad_top + j - o0;            /* dx row j is row 0 of this call */
    tt_depthwise_conv2d_input_grad_f32(data + o0 * row, mask ? mask + (o0 * row) / 8 : 0, 1,
                                       o1 - o0, ow, c, 1, w, w_scales, kh, kw, &v, 1, wd,
                                       scratch + (j % slots) * row);
    /* dy rows no later dx row reads: their dx rows go to their place */
    for (; flushed <= j && flushed + lag <= j; ++flushed)
      memcpy(data + flushed * row, scratch + (flushed % slots) * row, sizeof(float) * (size_t)row);
  }
  for (; flushed < h; ++flushed)
    memcpy(data + flushed * row, scratch + (flushed % slots) * row, sizeof(float) * (size_t)row);
  return TT_OK;
}

/* The least output index o < outs whose window reads input index i (o * s - pad + t * d == i
 * for a tap t < k), or outs where none does. The largest such tap gives it. */
static int32_t first_reader(int32_t i, int32_t s, int32_t d, int32_t pad, int32_t k,
                            int32_t outs) {
  for (int32_t t = k - 1; t >= 0; --t) {
    const int32_t at = i + pad - t * d;
    if (at >= 0 && at % s == 0 && at / s < outs) return at / s;
  }
  return outs;
}

int32_t tt_depthwise_conv2d_input_grad_over_s8_lead(int32_t n, int32_t oh, int32_t ow, int32_t c,
                                                    int32_t m, int32_t kh, int32_t kw,
                                                    const tt_window *win, int32_t h,
                                                    int32_t wd) {
  if (m != 1 || win->stride_h < 1 || win->stride_w < 1) return -1;
  if (win->stride_h == 1 && win->stride_w == 1) {
    if (oh != h || ow != wd) return -1;
    const int32_t lag = (kh - 1) * win->dilation_h - win->pad_top;
    const int32_t lag_w = (kw - 1) * win->dilation_w - win->pad_left;
    const int32_t positions = lag * wd + lag_w + 1;
    return positions > 0 ? positions * c : 0;
  }
  /* A strided layer's dx is larger than dy and its positions read dy unevenly: walk them
   * from the last, keeping the least dy position any later one reads (`least`); position p
   * may overwrite only dy positions below it, so dy starts at least p - least + 1 positions
   * after dx. The window rows and columns are independent: dy position (b, oy, ox) with the
   * least oy and the least ox is the least one a dx position reads. */
  const int32_t none = n * oh * ow;             /* no later position reads dy */
  int32_t least = none, lead = 0;
  for (int32_t p = n * h * wd - 1; p >= 0; --p) {
    if (least < none && p - least + 1 > lead) lead = p - least + 1;
    const int32_t b = p / (h * wd), y = p / wd % h, x = p % wd;
    const int32_t oy = first_reader(y, win->stride_h, win->dilation_h, win->pad_top, kh, oh);
    const int32_t ox = first_reader(x, win->stride_w, win->dilation_w, win->pad_left, kw, ow);
    if (oy < oh && ox < ow && (b * oh + oy) * ow + ox < least) least = (b * oh + oy) * ow + ox;
  }
  return lead * c;
}
