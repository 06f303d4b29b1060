/* AVERAGE_POOL_2D, MAX_POOL_2D and MEAN, int8 (include/tt_forward.h). */
#include "tt_forward.h"
#include "tt_fwd_internal.h"

/* Every output element of a pooling window: x0 the offset of its first in-image tap, y its
 * output pixel. */
#define TT_FWD_POOL_LOOP(p, in, out, ...)                                                 \
  TT_FWD_FOR_EACH_WINDOW(in, out, (p)->stride_h, (p)->stride_w, (p)->pad_top,             \
                         (p)->pad_left, 1, 1, (p)->filter_h, (p)->filter_w, {             \
    const int32_t x0 = ((b * (in)->h + iy0 + ky0) * (in)->w + ix0 + kx0) * (in)->c;       \
    int8_t *y = output + ((b * (out)->h + oy) * (out)->w + ox) * (out)->c;                \
    __VA_ARGS__                                                                           \
  })

void tt_avg_pool_s8(const tt_fwd_pool_params *p, const tt_fwd_dims *input_dims,
                    const int8_t *input, const tt_fwd_dims *output_dims, int8_t *output) {
  const int32_t c = input_dims->c, row = input_dims->w * c;
  TT_FWD_POOL_LOOP(p, input_dims, output_dims, {
    /* TFLM divides by the taps inside the image, not by the window size */
    const int32_t count = (ky1 - ky0) * (kx1 - kx0);
    for (int32_t ch = 0; ch < c; ++ch) {
      int32_t sum = 0;
      for (int32_t ky = 0; ky < ky1 - ky0; ++ky)
        for (int32_t kx = 0; kx < kx1 - kx0; ++kx) sum += input[x0 + ky * row + kx * c + ch];
      const int32_t avg = sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
      y[ch] = (int8_t)tt_fwd_clamp(avg, p->act_min, p->act_max);
    }
  })
}

void tt_max_pool_s8(const tt_fwd_pool_params *p, const tt_fwd_dims *input_dims,
                    const int8_t *input, const tt_fwd_dims *output_dims, int8_t *output) {
  const int32_t c = input_dims->c, row = input_dims->w * c;
  TT_FWD_POOL_LOOP(p, input_dims, output_dims, {
    for (int32_t ch = 0; ch < c; ++ch) {
      int32_t top = -128;
      for (int32_t ky = 0; ky < ky1 - ky0; ++ky)
        for (int32_t kx = 0; kx < kx1 - kx0; ++kx) {
          const int32_t v = input[x0 + ky * row + kx * c + ch];
          if (v > top) top = v;
        }
      y[ch] = (int8_t)tt_fwd_clamp(top, p->act_min, p->act_max);
    }
  })
}

void tt_mean_s8(const int8_t *input, const int32_t *dims, const int32_t *reduced,
                int32_t rank, int32_t input_zp, int32_t multiplier, int32_t shift,
                int32_t output_zp, int8_t *output) {
  /* Split the axes into kept and reduced ones, each with its input stride; then for each
   * output element (kept index, row-major) sum the elements of its reduced sub-tensor. */
  int32_t kept_dims[TT_FWD_MAX_RANK], kept_strides[TT_FWD_MAX_RANK];
  int32_t red_dims[TT_FWD_MAX_RANK], red_strides[TT_FWD_MAX_RANK];
  int32_t n_kept = 0, n_red = 0, stride = 1, outputs = 1, count = 1;
  for (int32_t d = rank - 1; d >= 0; --d) {
    if (reduced[d]) {
      red_dims[n_red] = dims[d];
      red_strides[n_red++] = stride;
      count *= dims[d];
    } else {
      kept_dims[n_kept] = dims[d];
      kept_strides[n_kept++] = stride;
      outputs *= dims[d];
    }
    stride *= dims[d];
  }
  /* axes are listed innermost first: index[0] moves fastest */
  int32_t kept_index[TT_FWD_MAX_RANK] = {0}, base = 0;
  for (int32_t o = 0; o < outputs; ++o) {
    int32_t red_index[TT_FWD_MAX_RANK] = {0}, offset = base;
    uint32_t sum = 0;                      /* int32 wrap-around, as TFLM's int32 sum */
    for (int32_t i = 0; i < count; ++i) {
      sum += (uint32_t)(int32_t)input[offset];
      for (int32_t d = 0; d < n_red; ++d) {
        offset += red_strides[d];
        if (++red_index[d] < red_dims[d]) break;
        offset -= red_index[d] * red_strides[d];
        red_index[d] = 0;
      }
    }
    sum -= (uint32_t)input_zp * (uint32_t)count;
    const int32_t v = tt_fwd_mbqm((int32_t)sum, multiplier, shift) + output_zp;
    output[o] = (int8_t)tt_fwd_clamp(v, -128, 127);
    for (int32_t d = 0; d < n_kept; ++d) {
      base += kept_strides[d];
      if (++kept_index[d] < kept_dims[d]) break;
      base -= kept_index[d] * kept_strides[d];
      kept_index[d] = 0;
    }
  }
}
