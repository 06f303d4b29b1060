/* ADD, QUANTIZE, DEQUANTIZE and SOFTMAX, int8 (include/tt_forward.h). */
#include "tt_forward.h"
#include "tt_fwd_internal.h"
#if TT_FWD_DSP
#include "tt_fwd_dsp.h"
#endif

static inline int8_t add1(const tt_fwd_add_params *p, int32_t a, int32_t b) {
  /* TFLM: (x + offset) * (1 << left_shift), then MultiplyByQuantizedMultiplierSmallerThanOneExp
   * (the general form: the same for the shifts <= 0 Prepare produces) */
  const int32_t sa = tt_fwd_mbqm((int32_t)((uint32_t)(a + p->input1_offset) << p->left_shift),
                                 p->input1_multiplier, p->input1_shift);
  const int32_t sb = tt_fwd_mbqm((int32_t)((uint32_t)(b + p->input2_offset) << p->left_shift),
                                 p->input2_multiplier, p->input2_shift);
  const int32_t sum = (int32_t)((uint32_t)sa + (uint32_t)sb);
  const int32_t y = tt_fwd_mbqm(sum, p->output_multiplier, p->output_shift) + p->output_offset;
  return (int8_t)tt_fwd_clamp(y, p->act_min, p->act_max);
}

#if TT_FWD_DSP
/* add_table's entry: the running product's high word (|h| < 2^31: no saturation), then
 * RoundingDivideByPOT by `right` (mask = 2^right - 1, half = mask >> 1). */
static inline __attribute__((always_inline)) int32_t rounded_high(int64_t p, int32_t right,
                                                                  int32_t mask, int32_t half) {
  const int32_t h = (int32_t)(p >> 31);
  return (h >> right) + ((h & mask) > half + (int32_t)((uint32_t)h >> 31));
}

/* t[(uint8_t)x] = 2 a(x) for every int8 x, a(x) = MBQM((x + offset) << left_shift,
 * multiplier, shift) as add1 computes it; returns max |a(x)|. Where no (x + offset) << shift
 * wraps (nor reaches INT32_MIN, the high multiply's saturating case), the 64-bit product
 * plus SaturatingRoundingDoublingHighMul's 2^30 changes by multiplier << shift from one x
 * to the next, so the table is walked with one 64-bit addition per entry, then the high
 * word's RoundingDivideByPOT (about 16 instructions an entry instead of about 27); a(x) is
 * then monotonic in x (each step rounds a monotonic value), so its largest magnitude is at
 * x = -128 or 127. Other parameters: add1's arithmetic per entry. Inlined: add_dsp's frame
 * holds the tables already (2,136 bytes with both copies, 2,160 before). */
static inline __attribute__((always_inline)) uint32_t
add_table(int32_t offset, int32_t left_shift, int32_t multiplier, int32_t shift, int32_t *t) {
  const int32_t left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
  const int64_t lowest = (int64_t)offset - 128, highest = (int64_t)offset + 127;
  const int64_t widest = lowest < 0 ? (-lowest > highest ? -lowest : highest) : highest;
  const int64_t lsh = (int64_t)left_shift + left;
  if (right <= 31 && left_shift >= 0 && lsh <= 30 &&
      widest < ((int64_t)1 << (31 - lsh))) {
    const int64_t step = (int64_t)multiplier * ((int64_t)1 << lsh);
    int64_t p = lowest * step + ((int64_t)1 << 30);
    const int32_t mask = (int32_t)((1u << right) - 1u), half = mask >> 1;
    const int32_t a0 = rounded_high(p, right, mask, half);
    int32_t a = a0;
    for (int32_t k = 0; k < 256; ++k, p += step) {
      a = rounded_high(p, right, mask, half);
      t[k ^ 128] = (int32_t)((uint32_t)a << 1);
    }
    /* the extremes' a(-128) and a(127) themselves: their doubled entries wrap where
     * |a| >= 2^30, which would hide a maximum too large for add_dsp's form */
    const uint32_t m0 = a0 < 0 ? -(uint32_t)a0 : (uint32_t)a0;
    const uint32_t m1 = a < 0 ? -(uint32_t)a : (uint32_t)a;
    return m0 > m1 ? m0 : m1;
  }
  uint32_t top = 0;
  for (int32_t u = 0; u < 256; ++u) {
    const uint32_t x = (uint32_t)(int32_t)(int8_t)u;
    const int32_t a = tt_fwd_mbqm((int32_t)((x + (uint32_t)offset) << left_shift), multiplier,
                                  shift);
    const uint32_t m = a < 0 ? -(uint32_t)a : (uint32_t)a;
    if (m > top) top = m;
    t[u] = (int32_t)((uint32_t)a << 1);
  }
  return top;
}

/* The output of element sums s = t1[x1] + t2[x2], clamped to int8 (full) or to [lo, hi]. */
static inline __attribute__((always_inline)) int8_t add_out(int32_t s, const tt_dsp_rq_params *q,
                                                            int full, int32_t lo, int32_t hi) {
  const int32_t y = tt_dsp_rq_doubled(s, q);
  return (int8_t)(full ? __ssat(y, 8) : tt_fwd_clamp(y, lo, hi));
}

/* Four elements a word: one load per input, the bytes taken from the word (the same count
 * of instructions as byte loads, three loads fewer) and the loop's overhead shared. Every
 * element's bytes are read before its output is written (output may be an input). */
static inline __attribute__((always_inline)) void
add_lookup(const int32_t *t1, const int32_t *t2, const int8_t *input1, const int8_t *input2,
           int32_t size, int8_t *output, const tt_dsp_rq_params *q, int full, int32_t lo,
           int32_t hi) {
  /* plain registers: gcc would otherwise address the stack tables afresh for every load */
  __asm__("" : "+r"(t1), "+r"(t2));
  int32_t i = 0;
  for (; i + 4 <= size; i += 4) {
    const uint32_t w1 = tt_dsp_load4(input1 + i), w2 = tt_dsp_load4(input2 + i);
    output[i] = add_out(t1[w1 & 255u] + t2[w2 & 255u], q, full, lo, hi);
    output[i + 1] = add_out(t1[(w1 >> 8) & 255u] + t2[(w2 >> 8) & 255u], q, full, lo, hi);
    output[i + 2] = add_out(t1[(w1 >> 16) & 255u] + t2[(w2 >> 16) & 255u], q, full, lo, hi);
    output[i + 3] = add_out(t1[w1 >> 24] + t2[w2 >> 24], q, full, lo, hi);
  }
  const uint8_t *u1 = (const uint8_t *)input1, *u2 = (const uint8_t *)input2;
  for (; i < size; ++i) output[i] = add_out(t1[u1[i]] + t2[u2[i]], q, full, lo, hi);
}

/* tt_add_s8 with the output's MultiplyByQuantizedMultiplier in one SMMLAR
 * (tt_dsp_rq_doubled) and the inputs' looked up: an input's scaled value depends on its int8
 * x alone, so both inputs' are tabulated once per call (add_table: 256 doubled values each,
 * 2 KB of stack, as much as the convolutions' staging) and the two looked-up values add up
 * to the output's doubled accumulator. The one-multiply form needs tt_dsp_rq_init's
 * multiplier and shift ranges and |sum| < 2^29 for every pair of values, i.e.
 * max |t1| + max |t2| < 2^30 for the doubled tables (checked once they are built; the
 * wrapping int32 sum of the portable code never wraps then). About 10 instructions an
 * element, plus about 6 K a call for the tables, instead of about 100 an element. Returns 0
 * (and does nothing) where the form does not apply. */
static int add_dsp(const tt_fwd_add_params *p, const int8_t *input1, const int8_t *input2,
                   int32_t size, int8_t *output) {
  tt_dsp_rq_params q;
  if (!tt_dsp_rq_offset_ok(p->output_offset) ||
      !tt_dsp_rq_init(p->output_multiplier, p->output_shift, p->output_offset, &q))
    return 0;
  int32_t t1[256], t2[256];                  /* 2 * the scaled value of input byte u */
  const uint32_t top1 = add_table(p->input1_offset, p->left_shift, p->input1_multiplier,
                                  p->input1_shift, t1);
  const uint32_t top2 = add_table(p->input2_offset, p->left_shift, p->input2_multiplier,
                                  p->input2_shift, t2);
  if (top1 >= (1u << 29) || top2 >= (1u << 29) || top1 + top2 >= (1u << 29)) return 0;
  const int32_t lo = p->act_min, hi = p->act_max;
  if (lo == -128 && hi == 127)
    add_lookup(t1, t2, input1, input2, size, output, &q, 1, lo, hi);
  else
    add_lookup(t1, t2, input1, input2, size, output, &q, 0, lo, hi);
  return 1;
}
#endif

void tt_add_s8(const tt_fwd_add_params *p, const int8_t *input1, const int8_t *input2,
               int32_t size, int8_t *output) {
#if TT_FWD_DSP
  if (add_dsp(p, input1, input2, size, output)) return;
#endif
  for (int32_t i = 0; i < size; ++i) output[i] = add1(p, input1[i], input2[i]);
}

void tt_add_broadcast_s8(const tt_fwd_add_params *p, const int8_t *input1,
                         const int32_t *dims1, const int8_t *input2, const int32_t *dims2,
                         const int32_t *output_dims, int32_t rank, int8_t *output) {
  /* strides of each input over the output's index space, 0 along broadcast axes */
  int32_t s1[TT_FWD_MAX_RANK], s2[TT_FWD_MAX_RANK], index[TT_FWD_MAX_RANK];
  int32_t t1 = 1, t2 = 1, size = 1;
  for (int32_t d = rank - 1; d >= 0; --d) {
    s1[d] = dims1[d] == 1 ? 0 : t1;
    s2[d] = dims2[d] == 1 ? 0 : t2;
    t1 *= dims1[d];
    t2 *= dims2[d];
    size *= output_dims[d];
    index[d] = 0;
  }
  if (rank == 0) {
    if (size) output[0] = add1(p, input1[0], input2[0]);
    return;
  }
  const int32_t inner = output_dims[rank - 1];
  int32_t o1 = 0, o2 = 0;
  for (int32_t o = 0; o < size; o += inner) {
    for (int32_t i = 0; i < inner; ++i)
      output[o + i] = add1(p, input1[o1 + i * s1[rank - 1]], input2[o2 + i * s2[rank - 1]]);
    for (int32_t d = rank - 2; d >= 0; --d) {  /* next row: odometer over the outer axes */
      o1 += s1[d];
      o2 += s2[d];
      if (++index[d] < output_dims[d]) break;
      o1 -= index[d] * s1[d];
      o2 -= index[d] * s2[d];
      index[d] = 0;
    }
  }
}

void tt_quantize_f32_s8(const float *input, int32_t size, float scale, int32_t zero_point,
                        int8_t *output) {
  for (int32_t i = 0; i < size; ++i) {
    float q = input[i] / scale;
    /* beyond +-512 the result saturates whatever the zero point: clamp first so that the
     * conversion to int stays defined; NaN fails both tests and becomes 0 */
    q = q > 512.0f ? 512.0f : q;
    q = q < -512.0f ? -512.0f : q;
    if (!(q == q)) q = 0.0f;
    const float a = q < 0.0f ? -q : q;
    int32_t r = (int32_t)a;                          /* floor of a non-negative value */
    if (a - (float)r >= 0.5f) ++r;                   /* a - floor(a) is exact */
    output[i] = (int8_t)tt_fwd_clamp((q < 0.0f ? -r : r) + zero_point, -128, 127);
  }
}

void tt_requantize_s8(const int8_t *input, int32_t size, int32_t input_offset,
                      int32_t multiplier, int32_t shift, int32_t output_offset,
                      int8_t *output) {
  for (int32_t i = 0; i < size; ++i) {
    const int32_t v = tt_fwd_mbqm(input[i] + input_offset, multiplier, shift) + output_offset;
    output[i] = (int8_t)tt_fwd_clamp(v, -128, 127);
  }
}

void tt_dequantize_s8_f32(const int8_t *input, int32_t size, float scale, int32_t zero_point,
                          float *output) {
  for (int32_t i = 0; i < size; ++i) output[i] = scale * (float)(input[i] - zero_point);
}

/* --- SOFTMAX: gemmlowp fixed point on raw int32 values ------------------------------------- */

#define SCALED_DIFF_INTEGER_BITS 5
#define ACCUMULATION_INTEGER_BITS 12

static inline int32_t wrap_add(int32_t a, int32_t b) {
  return (int32_t)((uint32_t)a + (uint32_t)b);
}

static inline int32_t wrap_sub(int32_t a, int32_t b) {
  return (int32_t)((uint32_t)a - (uint32_t)b);
}

/* SaturatingRoundingMultiplyByPOT<exponent> */
static int32_t multiply_by_pot(int32_t x, int32_t exponent) {
  if (exponent < 0) return tt_fwd_divide_pot(x, -exponent);
  if (exponent == 0) return x;
  const int32_t threshold = (int32_t)((1u << (31 - exponent)) - 1u);
  if (x > threshold) return INT32_MAX;
  if (x < -threshold) return INT32_MIN;
  return (int32_t)((uint32_t)x << exponent);
}

/* exp(a) for a in [-1/4, 0), Q0.31 in and out */
static int32_t exp_on_interval(int32_t a) {
  const int32_t constant_term = 1895147668;          /* exp(-1/8) */
  const int32_t constant_1_over_3 = 715827883;
  const int32_t x = wrap_add(a, 1 << 28);            /* a + 1/8 */
  const int32_t x2 = tt_fwd_high_mul(x, x);
  const int32_t x3 = tt_fwd_high_mul(x2, x);
  const int32_t x4 = tt_fwd_high_mul(x2, x2);
  const int32_t x4_over_4 = multiply_by_pot(x4, -2);
  const int32_t poly = multiply_by_pot(
      wrap_add(tt_fwd_high_mul(wrap_add(x4_over_4, x3), constant_1_over_3), x2), -1);
  return wrap_add(constant_term, tt_fwd_high_mul(constant_term, wrap_add(x, poly)));
}

/* exp(a) for a <= 0 given in Q5.26 (SCALED_DIFF_INTEGER_BITS); result Q0.31 */
static int32_t exp_on_negative_values(int32_t a) {
  const int32_t integer_bits = SCALED_DIFF_INTEGER_BITS, fractional_bits = 31 - integer_bits;
  const int32_t one_quarter = 1 << (fractional_bits - 2);
  const int32_t mod_minus_quarter = wrap_add(a & (one_quarter - 1), -one_quarter);
  int32_t result = exp_on_interval(multiply_by_pot(mod_minus_quarter, integer_bits));
  const int32_t remainder = wrap_sub(mod_minus_quarter, a);
  static const int32_t multipliers[7] = {1672461947, 1302514674, 790015084, 290630308,
                                         39332535,   720401,     242};
  for (int32_t k = 0; k < 7; ++k) {               /* exponents -2 .. 4, all < integer_bits */
    const int32_t exponent = k - 2;
    if (remainder & (1 << (fractional_bits + exponent)))
      result = tt_fwd_high_mul(result, multipliers[k]);
  }
  return a == 0 ? INT32_MAX : result;                /* integer_bits 5: no clamp below */
}

/* 1 / (1 + a) for a in [0, 1), Q0.31 in and out (three Newton-Raphson steps) */
static int32_t one_over_one_plus_x(int32_t a) {
  const int64_t sum = (int64_t)a + INT32_MAX;        /* RoundingHalfSum(a, One) */
  const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
  int32_t x = wrap_add(1515870810, tt_fwd_high_mul(half_denominator, -1010580540)); /* Q2.29 */
  for (int32_t i = 0; i < 3; ++i) {
    const int32_t one_minus = wrap_sub(1 << 29, tt_fwd_high_mul(half_denominator, x));
    x = wrap_add(x, multiply_by_pot(tt_fwd_high_mul(x, one_minus), 2));
  }
  return multiply_by_pot(x, 1);
}

static int32_t leading_zeros(uint32_t x) {
  int32_t n = 0;
  if (x == 0) return 32;
  while (!(x & 0x80000000u)) {
    x <<= 1;
    ++n;
  }
  return n;
}

void tt_softmax_s8(const int8_t *input, int32_t rows, int32_t depth, int32_t input_multiplier,
                   int32_t input_left_shift, int32_t diff_min, int8_t *output) {
  for (int32_t r = 0; r < rows; ++r) {
    const int8_t *x = input + r * depth;
    int8_t *y = output + r * depth;
    int32_t top = -128;
    for (int32_t c = 0; c < depth; ++c)
      if (x[c] > top) top = x[c];
    int32_t sum_of_exps = 0;                         /* Q12.19 */
    for (int32_t c = 0; c < depth; ++c) {
      const int32_t diff = x[c] - top;
      if (diff >= diff_min) {
        const int32_t scaled = tt_fwd_mbqm(diff, input_multiplier, input_left_shift);
        sum_of_exps = wrap_add(sum_of_exps, tt_fwd_divide_pot(exp_on_negative_values(scaled),
                                                              ACCUMULATION_INTEGER_BITS));
      }
    }
    /* GetReciprocal */
    const int32_t headroom_plus_one = leading_zeros((uint32_t)sum_of_exps);
    const int32_t bits_over_unit = ACCUMULATION_INTEGER_BITS - headroom_plus_one;
    const int32_t shifted_sum_minus_one =
        (int32_t)(((uint32_t)sum_of_exps << headroom_plus_one) - (1u << 31));
    const int32_t shifted_scale = one_over_one_plus_x(shifted_sum_minus_one);
    for (int32_t c = 0; c < depth; ++c) {
      const int32_t diff = x[c] - top;
      if (diff >= diff_min) {
        const int32_t scaled = tt_fwd_mbqm(diff, input_multiplier, input_left_shift);
        const int32_t e = exp_on_negative_values(scaled);
        /* beyond 31 (a sum of 2^28 or more: hundreds of classes tied at the maximum) TFLM
         * shifts an int32 by 32 or more, which C leaves undefined; the numpy reference
         * gives 0 for these non-negative products, and so do we */
        const int32_t exponent = bits_over_unit + 31 - 8;
        const int32_t scaled_e = tt_fwd_high_mul(shifted_scale, e);
        const int32_t v = (exponent > 31 ? 0 : tt_fwd_divide_pot(scaled_e, exponent)) - 128;
        y[c] = (int8_t)tt_fwd_clamp(v, -128, 127);
      } else {
        y[c] = -128;
      }
    }
  }
}
