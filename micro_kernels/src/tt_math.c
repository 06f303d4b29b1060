/* libm-free exp, log and cos(pi t / n) for the loss and the learning-rate decay (schema:
 * "math"). glibc, newlib and numpy disagree in the last bits of their elementary functions;
 * these use only IEEE double +, -, *, / in a fixed order, so every IEEE-754 target compiled
 * without FMA contraction (-ffp-contract=off) and without excess precision returns the same
 * bits. tflite_train/training_ops.py repeats tt_cos_pi_ratio operation for operation.
 * Coefficients are written as 1/k! (exact integers, one correctly rounded division at
 * compile time) so that they can be checked by eye and recomputed in Python. */
#include "tt_kernels.h"

#include <string.h>

static uint64_t bits_of(double x) {
  uint64_t u;
  memcpy(&u, &x, sizeof u);
  return u;
}

static double double_of(uint64_t u) {
  double x;
  memcpy(&x, &u, sizeof x);
  return x;
}

#define EXPONENT_MASK 0x7FF0000000000000ull
#define MANTISSA_MASK 0x000FFFFFFFFFFFFFull
#define ONE_BITS 0x3FF0000000000000ull

/* ln 2 split as in fdlibm: LN2_HI has its low 32 bits zero, so k * LN2_HI is exact for the
 * |k| <= 1100 used here and the reduction x - k ln 2 loses nothing to cancellation. */
static const double LN2_HI = 6.93147180369123816490e-01;   /* 0x1.62e42feep-1 */
static const double LN2_LO = 1.90821492927058770002e-10;   /* 0x1.a39ef35793c76p-33 */
static const double INV_LN2 = 1.44269504088896338700e+00;  /* 0x1.71547652b82fep+0 */
static const double SQRT2 = 1.41421356237309514547e+00;    /* 0x1.6a09e667f3bcdp+0 */
static const double PI = 3.14159265358979311600e+00;       /* 0x1.921fb54442d18p+1 */

/* exp(x) < 2^-1075 (half the smallest subnormal) rounds to 0; exp(x) > DBL_MAX overflows. */
static const double EXP_UNDERFLOW = -745.1332191019412;
static const double EXP_OVERFLOW = 709.782712893384;

/* 2^k for -1022 <= k <= 1023, from its exponent bits. */
static double pow2(int32_t k) { return double_of((uint64_t)(k + 1023) << 52); }

/* y * 2^n in at most two exact-or-once-rounded steps, so that subnormal and huge results
 * still round once. */
static double scale_pow2(double y, int32_t n) {
  if (n > 1000) return y * pow2(n - 1000) * pow2(1000);
  if (n < -1000) return y * pow2(n + 1000) * pow2(-1000);
  return y * pow2(n);
}

/* Nearest integer of t (halves away from zero), |t| < 2^30: the conversion truncates, so
 * the result depends only on the double t, not on the target's rounding instructions. */
static int32_t nearest_int(double t) { return (int32_t)(t < 0.0 ? t - 0.5 : t + 0.5); }

/* exp(r) for |r| <= ln2 / 2 + 2^-30: Taylor to r^13 (the next term is below 0.05 ulp), Horner. */
static double exp_taylor(double r) {
  static const double c[14] = {
      1.0,           1.0,             1.0 / 2.0,        1.0 / 6.0,
      1.0 / 24.0,    1.0 / 120.0,     1.0 / 720.0,      1.0 / 5040.0,
      1.0 / 40320.0, 1.0 / 362880.0,  1.0 / 3628800.0,  1.0 / 39916800.0,
      1.0 / 479001600.0, 1.0 / 6227020800.0};
  double p = c[13];
  for (int k = 12; k >= 0; --k) p = c[k] + r * p;
  return p;
}

double tt_exp(double x) {
  if (x != x) return x;
  if (x < EXP_UNDERFLOW) return 0.0;
  if (x > EXP_OVERFLOW) return double_of(EXPONENT_MASK);   /* +inf */
  /* Cody-Waite: x = n ln2 + r with |r| <= ln2 / 2 (plus the rounding of x / ln2) */
  const int32_t n = nearest_int(x * INV_LN2);
  const double r = (x - (double)n * LN2_HI) - (double)n * LN2_LO;
  return scale_pow2(exp_taylor(r), n);
}

/* R(z) = 2z/3 + 2z^2/5 + ... + 2z^10/21 with z = s^2, so that log(1 + f) = 2 atanh(s) =
 * 2s + s R(z) for s = f / (2 + f). |s| <= 0.1716 (z <= 0.0295): the next term is below
 * 0.03 ulp of the result. */
static double atanh_tail(double z) {
  static const double c[10] = {2.0 / 3.0,  2.0 / 5.0,  2.0 / 7.0,  2.0 / 9.0,  2.0 / 11.0,
                               2.0 / 13.0, 2.0 / 15.0, 2.0 / 17.0, 2.0 / 19.0, 2.0 / 21.0};
  double p = c[9];
  for (int k = 8; k >= 0; --k) p = c[k] + z * p;
  return z * p;
}

double tt_log(double x) {
  if (x != x || x < 0.0) return double_of(EXPONENT_MASK | 1ull);   /* NaN */
  if (x == 0.0) return -double_of(EXPONENT_MASK);                  /* -inf */
  if (x > 1.79769313486231570815e+308) return x;                   /* +inf */
  uint64_t u = bits_of(x);
  int32_t e = 0;
  if (u < (1ull << 52)) {                 /* subnormal: make it normal, exactly */
    u = bits_of(x * 18014398509481984.0);   /* 2^54 */
    e = -54;
  }
  e += (int32_t)(u >> 52) - 1023;
  double m = double_of((u & MANTISSA_MASK) | ONE_BITS);            /* x = m 2^e, m in [1, 2) */
  if (m >= SQRT2) {                       /* keep m in [sqrt(1/2), sqrt(2)): |f| small */
    m *= 0.5;
    e += 1;
  }
  /* fdlibm's arrangement of log(1 + f) = f - hfsq + s (hfsq + R): f = m - 1 is exact
   * (Sterbenz) and carries the result; the rounded s only enters small corrections. */
  const double f = m - 1.0;
  const double s = f / (2.0 + f);
  const double hfsq = 0.5 * f * f;
  const double r = atanh_tail(s * s);
  const double k = (double)e;
  return k * LN2_HI - ((hfsq - (s * (hfsq + r) + k * LN2_LO)) - f);
}

/* sin(a) for 0 <= a <= pi/4: Taylor to a^17, Horner in a^2. */
static double sin_taylor(double a) {
  static const double c[8] = {
      -1.0 / 6.0,           1.0 / 120.0,
      -1.0 / 5040.0,        1.0 / 362880.0,
      -1.0 / 39916800.0,    1.0 / 6227020800.0,
      -1.0 / 1307674368000.0, 1.0 / 355687428096000.0};
  const double z = a * a;
  double p = c[7];
  for (int k = 6; k >= 0; --k) p = c[k] + z * p;
  return a + a * (z * p);
}

/* cos(a) for 0 <= a <= pi/4: Taylor to a^18, Horner in a^2. */
static double cos_taylor(double a) {
  static const double c[9] = {
      -1.0 / 2.0,           1.0 / 24.0,           -1.0 / 720.0,
      1.0 / 40320.0,        -1.0 / 3628800.0,     1.0 / 479001600.0,
      -1.0 / 87178291200.0, 1.0 / 20922789888000.0, -1.0 / 6402373705728000.0};
  const double z = a * a;
  double p = c[8];
  for (int k = 7; k >= 0; --k) p = c[k] + z * p;
  return 1.0 + z * p;
}

double tt_cos_pi_ratio(int32_t t, int32_t n) {
  /* Fold in integers, exactly, so that the polynomial only sees angles in [0, pi/4]:
   * cos(pi t/n) = -cos(pi (n-t)/n), and for t/n in (1/4, 1/2] cos(pi t/n) = sin(pi (n-2t)/(2n)). */
  int64_t a = t;
  const int64_t d = n;
  double sign = 1.0;
  if (2 * a > d) {
    a = d - a;
    sign = -1.0;
  }
  if (4 * a > d) return sign * sin_taylor(PI * (double)(d - 2 * a) / (double)(2 * d));
  return sign * cos_taylor(PI * (double)a / (double)d);
}

/* Once per update-op call, in its own translation unit so that no update kernel contains
 * double arithmetic (tests/test_micro_kernels.py reads the objects): the decay's cosine in
 * double stays monotone over long schedules, for a few hundred instructions per step. The
 * inverse-time decay is three double operations, each correctly rounded in hardware and in
 * libgcc's soft float alike (T and step are exact in double), so every target agrees. */
float tt_learning_rate(const tt_sgd *o, int32_t step) {
  if (o->decay_steps > 0) {
    const int32_t t = step < o->decay_steps ? step : o->decay_steps;
    return (float)((double)o->lr * 0.5 * (1.0 + tt_cos_pi_ratio(t, o->decay_steps)));
  }
  if (o->half_life > 0)
    return (float)((double)o->lr * (double)o->half_life /
                   ((double)o->half_life + (double)step));
  return o->lr;
}
