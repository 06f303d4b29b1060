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

/* Along one axis, the taps that read input position i (i = o * stride + k * dilation - pad,
 * 0 <= o < out, 0 <= k < kernel): k = k0 + t * kstep, o = o0 - t * ostep for t < n. The
 * taps whose k * dilation is congruent to i + pad modulo stride form an arithmetic
 * progression of step stride / gcd(stride, dilation), and o decreases along it, so those
 * inside [0, out) are one run of it. kstep and ostep are the caller's (tt_tap_steps). */
typedef struct {
  int32_t k0, o0, n, kstep, ostep;
} tt_tap_run;

static inline void tt_tap_steps(int32_t stride, int32_t dilation, tt_tap_run *r) {
  int32_t a = stride, b = dilation;
  while (b != 0) {
    const int32_t t = a % b;
    a = b;
    b = t;
  }
  r->kstep = stride / a;
  r->ostep = r->kstep * dilation / stride;
}

static inline void tt_taps_reading(int32_t i, int32_t stride, int32_t dilation, int32_t pad,
                                   int32_t kernel, int32_t out, tt_tap_run *r) {
  int32_t n = 0;
  r->k0 = 0;
  r->o0 = 0;
  for (int32_t k = 0; k < kernel; ++k) {
    const int32_t t = i + pad - k * dilation;            /* o * stride */
    if (t < 0) break;                                    /* t decreases with k */
    if (t % stride != 0 || t / stride >= out) continue;
    if (n++ == 0) {
      r->k0 = k;
      r->o0 = t / stride;
    }
  }
  r->n = n;
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

/* ---- int8 gradients: the quantization rule of tt_kernels.h, element by element ---------- */

/* One step of the xorshift32 stream (Marsaglia's 13, 17, 5) that every stochastic rounding
 * and update draws from: the contract with numpy (training_ops.xorshift32_stream). */
static inline uint32_t tt_xorshift32(uint32_t x) {
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return x;
}

/* |v| of an accumulator (never INT32_MIN: the kernels bound their sums below 2^31). */
static inline uint32_t tt_magnitude(int32_t v) { return v < 0 ? 0u - (uint32_t)v : (uint32_t)v; }

/* max(top, the largest |v[j]| of j < n), four at a time: v ^ (v >> 31) is |v| or |v| - 1
 * (one instruction), so top - 1 - (v ^ (v >> 31)) >= 0 for all four means none exceeds
 * top (no overflow: top <= 2^31 - 1, the kernels' bound); one test of the four
 * differences' OR replaces four compare-and-selects, and only a group that may raise top
 * takes the exact magnitudes (rare once top is set; while top is 0, every group: a vector
 * of zeros costs about 14 instructions an element, 8 in a compare-and-select loop). */
static inline uint32_t tt_largest_magnitude(const int32_t *v, int32_t n, uint32_t top) {
  int32_t lim = (int32_t)top - 1;
  const int32_t *const end4 = v + (n & ~3), *const end = v + n;
  for (; v != end4; v += 4) {
    const int32_t v0 = v[0], v1 = v[1], v2 = v[2], v3 = v[3];
    if (((lim - (v0 ^ (v0 >> 31))) | (lim - (v1 ^ (v1 >> 31))) | (lim - (v2 ^ (v2 >> 31))) |
         (lim - (v3 ^ (v3 >> 31)))) < 0) {
      for (int32_t k = 0; k < 4; ++k)
        if (tt_magnitude(v[k]) > top) top = tt_magnitude(v[k]);
      lim = (int32_t)top - 1;
    }
  }
  for (; v != end; ++v)
    if (tt_magnitude(*v) > top) top = tt_magnitude(*v);
  return top;
}

/* One call's rounding: from A = max |acc|, once, then tt_round_grad per element, in the
 * output's row-major order (the order of the random draws). The rule's
 * (acc * r + bias) >> shift is computed as the high word of the 64-bit sum shifted right by
 * shift - 32 (a floor of a floor: the same integer), so that the product and the sum are
 * one multiply-accumulate of 32-bit halves; for shift 31 (127 < A < 256) the accumulator
 * is doubled instead: (2 acc * r + 2 bias) >> 32 is the same integer. */
typedef struct {
  int32_t r;            /* floor(127 * 2^shift / A), in [127 * 2^23, 127 * 2^24] */
  int32_t times;        /* 2 when shift is 31, else 1 */
  int32_t hi_shift;     /* max(shift, 32) - 32 */
  int32_t noise_shift;  /* stochastic: the 24 random bits go to bit max(shift, 32) - 24 */
  int64_t half;         /* nearest: 2^(max(shift, 32) - 1) */
  int32_t exact;        /* A <= 127: q = acc, nothing rounded, no draws */
  int32_t stochastic;
  uint32_t rng;
} tt_rounder;

/* acc * times (times 1, or 2 where A <= 255) in int32 arithmetic modulo 2^32: the rule's own
 * accumulators never leave int32 (|acc| <= A), but the optimistic pass of a pointwise input
 * gradient (tt_input_grad.c) rounds its unkept rows with a guess of A before it knows them,
 * and a row past the guess, whose bytes the fallback rewrites, may; modular, not undefined
 * (the same instructions as a signed multiply) */
static inline int32_t tt_times(int32_t acc, int32_t times) {
  return (int32_t)((uint32_t)acc * (uint32_t)times);
}

/* tt_quantize_grad_s8 where acc's largest magnitude amax is known (a walk measured it as
 * it stored acc): no scan of acc for it; the same bits. */
void tt_quantize_grad_s8_max(const int32_t *acc, int32_t n, uint32_t amax, float unit,
                             tt_update_state *rounding, int8_t *q, float *scale);

/* Sets up the rule for accumulators of largest magnitude `amax` whose unit (the real value
 * of an accumulator of 1) is `unit`, and writes the output's scale. `state` NULL: round to
 * nearest; else stochastic rounding from its stream (tt_rounder_end stores it back). */
void tt_rounder_begin(tt_rounder *q, uint32_t amax, float unit, const tt_update_state *state,
                      float *scale);

static inline int8_t tt_round_grad(tt_rounder *q, int32_t acc) {
  if (q->exact) return (int8_t)acc;
  int64_t add = q->half;
  if (q->stochastic) {
    uint32_t x = q->rng;
    x = tt_xorshift32(x);
    q->rng = x;
    add = (int64_t)(x >> 8) << q->noise_shift;
  }
  /* |acc * times * r| <= 127 * 2^max(shift, 32) < 2^63; the high word's arithmetic shift
   * is the rule's floor, in [-127, 127] by the choice of r */
  const int64_t t = (int64_t)tt_times(acc, q->times) * q->r + add;
  return (int8_t)((int32_t)(t >> 32) >> q->hi_shift);
}

/* tt_round_grad's stochastic rule over n accumulators from stream state x (A > 127);
 * returns the state after them. `times` is a constant of each inlined copy (1 but for
 * shift 31). The noise (x >> 8) << noise_shift (noise_shift is 8 to 31) is the same
 * integer as (x with its low 8 bits cleared) * 2^(noise_shift - 8): one UMULL makes its
 * two words, the multiply-accumulate's addend (no 64-bit shift, one instruction fewer an
 * element than shifting the words apart). Inlined by tt_round_grads and by walks that
 * round short runs. */
static inline __attribute__((always_inline)) uint32_t
tt_round_stochastic(const int32_t *acc, int32_t n, int8_t *out, uint32_t x,
                    const int32_t times, int32_t r, int32_t hi_shift, int32_t noise_shift) {
  const uint32_t scale = (uint32_t)1 << (noise_shift - 8);
#pragma GCC unroll 4
  for (int32_t i = 0; i < n; ++i) {
    x = tt_xorshift32(x);
    const uint64_t noise = (uint64_t)(x & ~(uint32_t)0xFF) * scale;
    const int64_t t = (int64_t)tt_times(acc[i], times) * r + (int64_t)noise;
    out[i] = (int8_t)((int32_t)(t >> 32) >> hi_shift);
  }
  return x;
}

/* tt_round_grad over n stored accumulators, into out (the same integers, faster). */
void tt_round_grads(tt_rounder *q, const int32_t *acc, int32_t n, int8_t *out);

/* Where the first pass of a two-pass int8 input gradient keeps accumulators so that its
 * second pass need not compute them again (tt_input_grad.c): those of dx positions
 * [0, n0) at a0 (position p's ci at a0 + p ci: dx's own bytes) and of [n0, n1) at a1
 * (position p's at a1 + (p - n0) ci: a scratch). The walks that keep are called from
 * position 0, so that their positions are dx's. */
typedef struct {
  int32_t *a0;
  int32_t n0;
  int32_t *a1;
  int32_t n1;
  /* the optimistic pass's probes (tt_input_grad.c): rows probe[0 .. probes) past n1 of a
   * pointwise layer whose largest magnitude the measuring walk takes too (not kept); the
   * walks of other layers leave them */
  const int32_t *probe;
  int32_t probes;
} tt_keep;

/* Where position p's accumulators are kept, or NULL. */
static inline int32_t *tt_kept(const tt_keep *k, int32_t p, int32_t ci) {
  if (k == 0 || p >= k->n1) return 0;
  return p < k->n0 ? k->a0 + p * ci : k->a1 + (p - k->n0) * ci;
}

/* The random stream back into the op's state, and its step counter advanced. */
static inline void tt_rounder_end(const tt_rounder *q, tt_update_state *state) {
  if (state != 0) {
    state->rng = q->rng;
    ++state->step;
  }
}

#endif /* TT_COMMON_H */
