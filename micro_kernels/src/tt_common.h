/* Helpers shared by the kernel sources (private: not part of the kernels' interface). */
#ifndef TT_COMMON_H
#define TT_COMMON_H

#include "tt_kernels.h"

/* Whether element i of dy takes part: its mask bit, or always without a mask. */
static inline int tt_live(const uint8_t *mask, int32_t i) {
  return !mask || ((mask[i >> 3] >> (i & 7)) & 1);
}

/* floor(a / b) for b > 0 (C's division truncates toward zero). */
static inline int32_t tt_div_floor(int32_t a, int32_t b) {
  const int32_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

/* Along one axis: the taps k in [*lo, *hi) of output position o that read inside [0, size),
 * i.e. 0 <= o * stride + k * dilation - pad < size. Once per output position, no division
 * per tap. */
static inline void tt_tap_range(int32_t o, int32_t stride, int32_t dilation, int32_t pad,
                                int32_t size, int32_t kernel, int32_t *lo, int32_t *hi) {
  const int32_t start = o * stride - pad;
  int32_t a = start < 0 ? -tt_div_floor(start, dilation) : 0;      /* ceil(-start / dil) */
  int32_t b = tt_div_floor(size - 1 - start, dilation) + 1;
  if (a > kernel) a = kernel;
  if (b > kernel) b = kernel;
  if (b < a) b = a;
  *lo = a;
  *hi = b;
}

/* Along one axis: the output positions o in [*lo, *hi) (of `out`) whose tap k reads inside
 * [0, size). Once per tap. */
static inline void tt_out_range(int32_t k, int32_t stride, int32_t dilation, int32_t pad,
                                int32_t size, int32_t out, int32_t *lo, int32_t *hi) {
  const int32_t shift = k * dilation - pad;          /* input position = o * stride + shift */
  int32_t a = shift < 0 ? -tt_div_floor(shift, stride) : 0;         /* ceil(-shift / stride) */
  int32_t b = tt_div_floor(size - 1 - shift, stride) + 1;
  if (a > out) a = out;
  if (b > out) b = out;
  if (b < a) b = a;
  *lo = a;
  *hi = b;
}

/* Row-major strides of a shape. */
static inline void tt_strides_of(const int32_t *dims, int32_t rank, int32_t *strides) {
  int32_t s = 1;
  for (int32_t d = rank - 1; d >= 0; --d) {
    strides[d] = s;
    s *= dims[d];
  }
}

static inline int32_t tt_count_of(const int32_t *dims, int32_t rank) {
  int32_t n = 1;
  for (int32_t d = 0; d < rank; ++d) n *= dims[d];
  return n;
}

/* Advance a row-major multi-index over `dims` (wraps to all zeros after the last). */
static inline void tt_next_index(int32_t *index, const int32_t *dims, int32_t rank) {
  for (int32_t d = rank - 1; d >= 0; --d) {
    if (++index[d] < dims[d]) return;
    index[d] = 0;
  }
}

#endif /* TT_COMMON_H */
