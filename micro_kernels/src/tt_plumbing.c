/* Saved tensors (init copies, activation masks, channel slices) and the element-wise and
 * data-movement gradients: mask, add, broadcast sum, mean, pad, transpose. */
#include <string.h>

#include "tt_common.h"
#include "tt_grad_dsp.h"
#if TT_GRAD_DSP
#include "tt_dsp_common.h"
#endif

void tt_init_copy(const void *src, void *dst, int32_t bytes) { memcpy(dst, src, (size_t)bytes); }

/* lo < v < hi as one unsigned comparison, width = hi - lo - 1: v - lo - 1 (modulo 2^32, so
 * no overflow whatever the options) wraps to a large value for v <= lo. */
static inline uint32_t inside(int32_t v, int32_t lo, uint32_t width) {
  return (uint32_t)v - (uint32_t)lo - 1u < width;
}

#if TT_GRAD_DSP
/* The mask bytes of y [8 n] (n >= 1), inside = [L, U] in every byte lane of `lower` and
 * `upper`: SSUB8 sets a lane's GE flag where y - L >= 0 (the signed difference, not
 * wrapped), SEL keeps that lane, the same for U - y; lanes of elements 0-3 and 4-7 (ANDed
 * with 0x08040201 and 0x80402010) meet in the top byte of one multiplication by 0x01010101
 * (disjoint bits: no carries). */
static void inside_bytes(const int8_t *y, int32_t n, uint32_t lower, uint32_t upper,
                         uint8_t *mask) {
  uint32_t bits_lo = 0x08040201u, bits_hi = 0x80402010u, spread = 0x01010101u;
  uint32_t ones = 0xFFFFFFFFu, zero = 0u;
  /* in registers: gcc would otherwise build each AND from four BICs in the loop */
  __asm__("" : "+r"(bits_lo), "+r"(bits_hi), "+r"(spread), "+r"(ones), "+r"(zero));
  for (const uint8_t *end = mask + n; mask != end; y += 8) {
    const uint32_t x0 = tt_dsp_load4(y), x1 = tt_dsp_load4(y + 4);
    (void)__ssub8(x0, lower);
    uint32_t m0 = __sel(ones, zero);
    (void)__ssub8(upper, x0);
    m0 = __sel(m0, zero);
    (void)__ssub8(x1, lower);
    uint32_t m1 = __sel(ones, zero);
    (void)__ssub8(upper, x1);
    m1 = __sel(m1, zero);
    *mask++ = (uint8_t)(((m0 & bits_lo) | (m1 & bits_hi)) * spread >> 24);
  }
}
#endif

void tt_save_mask_s8(const int8_t *y, int32_t size, int32_t lo, int32_t hi, uint8_t *mask) {
  const uint32_t width = hi > lo ? (uint32_t)hi - (uint32_t)lo - 1u : 0u;  /* values inside */
  int32_t i = 0;
#if TT_GRAD_DSP
  /* lo < y < hi as L <= y <= U in int8: L = lo + 1 and U = hi - 1 clamped to [-128, 127];
   * nothing inside (width 0, or L or U past the other end) is left to the loop below */
  const int64_t lower = (int64_t)lo + 1, upper = (int64_t)hi - 1;
  if (width != 0 && lower <= 127 && upper >= -128) {
    const uint32_t l = (uint8_t)(lower < -128 ? -128 : lower);
    const uint32_t u = (uint8_t)(upper > 127 ? 127 : upper);
    const uint32_t lanes_l = l * 0x01010101u, lanes_u = u * 0x01010101u;
    if (size >= 8) inside_bytes(y, size >> 3, lanes_l, lanes_u, mask);
    i = size & ~7;
  }
#endif
  for (; i + 8 <= size; i += 8)                   /* a whole byte at a time */
    mask[i >> 3] = (uint8_t)(inside(y[i], lo, width) | inside(y[i + 1], lo, width) << 1 |
                             inside(y[i + 2], lo, width) << 2 | inside(y[i + 3], lo, width) << 3 |
                             inside(y[i + 4], lo, width) << 4 | inside(y[i + 5], lo, width) << 5 |
                             inside(y[i + 6], lo, width) << 6 | inside(y[i + 7], lo, width) << 7);
  if (i < size) {
    uint32_t last = 0;
    for (int32_t j = 0; i + j < size; ++j) last |= inside(y[i + j], lo, width) << j;
    mask[i >> 3] = (uint8_t)last;
  }
}

void tt_save_slice_s8(const int8_t *x, int32_t outer, int32_t depth, int32_t channels,
                      int8_t *out) {
  for (int32_t o = 0; o < outer; ++o) {
    memcpy(out + (size_t)o * channels, x + (size_t)o * depth, (size_t)channels);
  }
}

void tt_mask_grad_f32(const float *dy, const uint8_t *mask, int32_t size, float *dx) {
  for (int32_t i = 0; i < size; ++i) dx[i] = tt_live(mask, i) ? dy[i] : 0.0f;
}

void tt_add_grad_f32(const float *a, const float *b, int32_t size, float *dx) {
  for (int32_t i = 0; i < size; ++i) dx[i] = a[i] + b[i];
}

/* The float32 sum, in row-major order, of the dy elements at `dy` + every index of `dims`
 * (the broadcast axes' sizes, 1 on the kept axes) under dy's strides. */
static float sum_broadcast_axes(const float *dy, const int32_t *dims, const int32_t *strides,
                                int32_t rank) {
  int32_t index[6] = {0};
  const int32_t count = tt_count_of(dims, rank);
  float acc = 0.0f;
  for (int32_t j = 0; j < count; ++j) {
    int32_t offset = 0;
    for (int32_t d = 0; d < rank; ++d) offset += index[d] * strides[d];
    acc += dy[offset];
    tt_next_index(index, dims, rank);
  }
  return acc;
}

void tt_sum_broadcast_grad_f32(const float *dy, const int32_t *dy_dims,
                               const int32_t *dx_dims, int32_t rank, float *dx) {
  int32_t dy_strides[6], broadcast[6], index[6] = {0};
  tt_strides_of(dy_dims, rank, dy_strides);
  for (int32_t d = 0; d < rank; ++d) broadcast[d] = dx_dims[d] == dy_dims[d] ? 1 : dy_dims[d];
  const int32_t total = tt_count_of(dx_dims, rank);
  for (int32_t i = 0; i < total; ++i) {
    int32_t base = 0;       /* index[d] is 0 on the broadcast axes */
    for (int32_t d = 0; d < rank; ++d) base += index[d] * dy_strides[d];
    dx[i] = sum_broadcast_axes(dy + base, broadcast, dy_strides, rank);
    tt_next_index(index, dx_dims, rank);
  }
}

/* The data-movement gradients move float32 or int8 elements: one walk serves both. */
static inline void move_element(const void *src, int32_t from, void *dst, int32_t to,
                                int32_t bytes) {
  if (bytes == 4)
    ((float *)dst)[to] = ((const float *)src)[from];
  else
    ((int8_t *)dst)[to] = ((const int8_t *)src)[from];
}

/* dx [dims] = dy broadcast over the reduced axes (dy has the kept ones); returns the number
 * of elements each mean averaged. */
static int32_t broadcast_back(const void *dy, const int32_t *dims, const int32_t *reduced,
                              int32_t rank, int32_t bytes, void *dx) {
  int32_t out_dims[6], out_strides[6], index[6] = {0};
  int32_t count = 1;
  for (int32_t d = 0; d < rank; ++d) {
    out_dims[d] = reduced[d] ? 1 : dims[d];
    if (reduced[d]) count *= dims[d];
  }
  tt_strides_of(out_dims, rank, out_strides);
  const int32_t total = tt_count_of(dims, rank);
  for (int32_t i = 0; i < total; ++i) {
    int32_t src = 0;
    for (int32_t d = 0; d < rank; ++d) src += (reduced[d] ? 0 : index[d]) * out_strides[d];
    move_element(dy, src, dx, i, bytes);
    tt_next_index(index, dims, rank);
  }
  return count;
}

void tt_mean_grad_f32(const float *dy, const int32_t *dims, const int32_t *reduced,
                      int32_t rank, float *dx) {
  const float divisor = (float)broadcast_back(dy, dims, reduced, rank, 4, dx);
  const int32_t total = tt_count_of(dims, rank);
  for (int32_t i = 0; i < total; ++i) dx[i] = dx[i] / divisor;
}

static void pad_move(const void *dy, const int32_t *dy_dims, const int32_t *before,
                     const int32_t *dims, int32_t rank, int32_t bytes, void *dx) {
  int32_t dy_strides[6], index[6] = {0};
  tt_strides_of(dy_dims, rank, dy_strides);
  const int32_t total = tt_count_of(dims, rank);
  for (int32_t i = 0; i < total; ++i) {
    int32_t src = 0;
    for (int32_t d = 0; d < rank; ++d) src += (index[d] + before[d]) * dy_strides[d];
    move_element(dy, src, dx, i, bytes);
    tt_next_index(index, dims, rank);
  }
}

void tt_pad_grad_f32(const float *dy, const int32_t *dy_dims, const int32_t *before,
                     const int32_t *dims, int32_t rank, float *dx) {
  pad_move(dy, dy_dims, before, dims, rank, 4, dx);
}

static void transpose_move(const void *dy, const int32_t *dy_dims, const int32_t *perm,
                           int32_t rank, int32_t bytes, void *dx) {
  /* dy = transpose(x, perm): dy axis a is x axis perm[a]; walk x (= dx) in row-major order */
  int32_t dims[6], dy_strides[6], index[6] = {0};
  for (int32_t a = 0; a < rank; ++a) dims[perm[a]] = dy_dims[a];
  tt_strides_of(dy_dims, rank, dy_strides);
  const int32_t total = tt_count_of(dims, rank);
  for (int32_t i = 0; i < total; ++i) {
    int32_t src = 0;
    for (int32_t a = 0; a < rank; ++a) src += index[perm[a]] * dy_strides[a];
    move_element(dy, src, dx, i, bytes);
    tt_next_index(index, dims, rank);
  }
}

void tt_transpose_grad_f32(const float *dy, const int32_t *dy_dims, const int32_t *perm,
                           int32_t rank, float *dx) {
  transpose_move(dy, dy_dims, perm, rank, 4, dx);
}

/* ---- int8 gradients ------------------------------------------------------------------------ */

void tt_mask_grad_s8(const int8_t *dy, const uint8_t *mask, int32_t size, int8_t *dx) {
  for (int32_t i = 0; i < size; ++i) dx[i] = tt_live(mask, i) ? dy[i] : 0;
}

#if TT_GRAD_DSP
/* a * ma + b * mb of four elements, m = [ma, mb] (16-bit lanes): SXTB16 spreads the even and
 * the odd bytes of each word, PKHBT/PKHTB pair element k's a and b halfwords, and one SMUAD
 * makes its sum (|sum| <= 2 * 128 * 2^14: exact, the Q flag never set). */
typedef struct {
  int32_t v0, v1, v2, v3;
} add_grad_four;

static inline __attribute__((always_inline)) add_grad_four
add_grad_sums(const int8_t *a, const int8_t *b, uint32_t m) {
  const uint32_t xa = tt_dsp_load4(a), xb = tt_dsp_load4(b);
  const uint32_t a02 = __sxtb16(xa), a13 = tt_dsp_sxtb16_odd(xa);
  const uint32_t b02 = __sxtb16(xb), b13 = tt_dsp_sxtb16_odd(xb);
  const add_grad_four s = {__smuad(tt_dsp_low_halves(a02, b02), m),
                           __smuad(tt_dsp_low_halves(a13, b13), m),
                           __smuad(tt_dsp_high_halves(a02, b02), m),
                           __smuad(tt_dsp_high_halves(a13, b13), m)};
  return s;
}

/* max |a * ma + b * mb| of the first n (a multiple of 4) elements, tested four at a time
 * against top as tt_largest_magnitude does (v ^ (v >> 31) is |v| or |v| - 1). */
static uint32_t add_grad_amax(const int8_t *a, const int8_t *b, int32_t n, uint32_t m) {
  uint32_t top = 0;
  int32_t lim = -1;
  for (int32_t i = 0; i < n; i += 4) {
    const add_grad_four s = add_grad_sums(a + i, b + i, m);
    if (((lim - (s.v0 ^ (s.v0 >> 31))) | (lim - (s.v1 ^ (s.v1 >> 31))) |
         (lim - (s.v2 ^ (s.v2 >> 31))) | (lim - (s.v3 ^ (s.v3 >> 31)))) < 0) {
      const int32_t v[4] = {s.v0, s.v1, s.v2, s.v3};
      for (int32_t k = 0; k < 4; ++k)
        if (tt_magnitude(v[k]) > top) top = tt_magnitude(v[k]);
      lim = (int32_t)top - 1;
    }
  }
  return top;
}

/* The stochastic rule (times 1) over the first n (a multiple of 4) elements' sums, computed
 * again rather than staged (no buffer: the stack does not grow); returns the stream. */
static uint32_t add_grad_round(const int8_t *a, const int8_t *b, int32_t n, uint32_t m,
                               int8_t *dx, uint32_t x, int32_t r, int32_t hi_shift) {
  for (int32_t i = 0; i < n; i += 4) {
    const add_grad_four s = add_grad_sums(a + i, b + i, m);
    const int32_t v[4] = {s.v0, s.v1, s.v2, s.v3};
    x = tt_round_stochastic(v, 4, dx + i, x, 1, r, hi_shift, hi_shift + 8);
  }
  return x;
}
#endif

void tt_add_grad_s8(const int8_t *a, const float *a_scale, const int8_t *b, const float *b_scale,
                    int32_t size, int8_t *dx, float *dx_scale, tt_update_state *rounding) {
  const float top = *a_scale > *b_scale ? *a_scale : *b_scale;
  const int32_t ma = tt_grad_multiplier_s16(*a_scale, top, TT_ADD_GRAD_SHIFT);
  const int32_t mb = tt_grad_multiplier_s16(*b_scale, top, TT_ADD_GRAD_SHIFT);
  uint32_t amax = 0;
  int32_t i = 0;
#if TT_GRAD_DSP
  /* multipliers in [0, 2^14] (tt_grad_multiplier_s16): one halfword each */
  const uint32_t mab = (uint32_t)(uint16_t)ma | (uint32_t)mb << 16;
  const int32_t fours = size & ~3;
  if (fours > 0) amax = add_grad_amax(a, b, fours, mab);
  i = fours;
#endif
  for (; i < size; ++i) {
    const uint32_t m = tt_magnitude(a[i] * ma + b[i] * mb);
    if (m > amax) amax = m;
  }
  tt_rounder r;
  tt_rounder_begin(&r, amax, tt_grad_unit(top, TT_ADD_GRAD_SHIFT), rounding, dx_scale);
  i = 0;
#if TT_GRAD_DSP
  /* the common case (the rule's other forms, rarer, take the loop below) */
  if (fours > 0 && r.stochastic && !r.exact && r.times == 1) {
    r.rng = add_grad_round(a, b, fours, mab, dx, r.rng, r.r, r.hi_shift);
    i = fours;
  }
#endif
  for (; i < size; ++i) dx[i] = tt_round_grad(&r, a[i] * ma + b[i] * mb);
  tt_rounder_end(&r, rounding);
}

/* The int32 sum, in any order, of the dy elements at `dy` + every index of `dims` under dy's
 * strides (as sum_broadcast_axes). */
static int32_t sum_broadcast_axes_s8(const int8_t *dy, const int32_t *dims,
                                     const int32_t *strides, int32_t rank) {
  int32_t index[6] = {0};
  const int32_t count = tt_count_of(dims, rank);
  int32_t acc = 0;
  for (int32_t j = 0; j < count; ++j) {
    int32_t offset = 0;
    for (int32_t d = 0; d < rank; ++d) offset += index[d] * strides[d];
    acc += dy[offset];
    tt_next_index(index, dims, rank);
  }
  return acc;
}

/* dx in row-major order, into the maximum or through the rounder. */
static void sum_broadcast_walk_s8(const int8_t *dy, const int32_t *dy_dims,
                                  const int32_t *dx_dims, int32_t rank, uint32_t *amax,
                                  tt_rounder *r, int8_t *dx) {
  int32_t dy_strides[6], broadcast[6], index[6] = {0};
  tt_strides_of(dy_dims, rank, dy_strides);
  for (int32_t d = 0; d < rank; ++d) broadcast[d] = dx_dims[d] == dy_dims[d] ? 1 : dy_dims[d];
  const int32_t total = tt_count_of(dx_dims, rank);
  for (int32_t i = 0; i < total; ++i) {
    int32_t base = 0;
    for (int32_t d = 0; d < rank; ++d) base += index[d] * dy_strides[d];
    const int32_t acc = sum_broadcast_axes_s8(dy + base, broadcast, dy_strides, rank);
    if (r != 0) {
      dx[i] = tt_round_grad(r, acc);
    } else {
      const uint32_t m = tt_magnitude(acc);
      if (m > *amax) *amax = m;
    }
    tt_next_index(index, dx_dims, rank);
  }
}

void tt_sum_broadcast_grad_s8(const int8_t *dy, const float *dy_scale, const int32_t *dy_dims,
                              const int32_t *dx_dims, int32_t rank, int8_t *dx,
                              float *dx_scale, tt_update_state *rounding) {
  uint32_t amax = 0;
  sum_broadcast_walk_s8(dy, dy_dims, dx_dims, rank, &amax, 0, 0);
  tt_rounder r;
  tt_rounder_begin(&r, amax, *dy_scale, rounding, dx_scale);
  sum_broadcast_walk_s8(dy, dy_dims, dx_dims, rank, 0, &r, dx);
  tt_rounder_end(&r, rounding);
}

void tt_mean_grad_s8(const int8_t *dy, const float *dy_scale, const int32_t *dims,
                     const int32_t *reduced, int32_t rank, int8_t *dx, float *dx_scale) {
  *dx_scale = *dy_scale / (float)broadcast_back(dy, dims, reduced, rank, 1, dx);
}

void tt_pad_grad_s8(const int8_t *dy, const int32_t *dy_dims, const int32_t *before,
                    const int32_t *dims, int32_t rank, int8_t *dx) {
  pad_move(dy, dy_dims, before, dims, rank, 1, dx);
}

void tt_transpose_grad_s8(const int8_t *dy, const int32_t *dy_dims, const int32_t *perm,
                          int32_t rank, int8_t *dx) {
  transpose_move(dy, dy_dims, perm, rank, 1, dx);
}
