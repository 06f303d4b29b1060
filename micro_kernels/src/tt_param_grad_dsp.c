/* Cortex-M DSP versions of the int8-dy weight gradients (tt_grad_dsp.h), beside the portable
 * ones of tt_param_grad.c, which calls them.
 *
 * Pointwise layers (1x1 convolution of stride 1 without padding): T[o, c] = the sum over
 * the positions p of dy[p, o] * (x[p, c] - x_zp). SMLAD pairs run along the reduction, the
 * positions, but both operands run along channels in memory. The saved activations are
 * staged once per call, transposed, as int16 x - x_zp (|x - x_zp| <= 255), in blocks of
 * eight channels and groups of four positions: group g of channel j of a block is the two
 * words at 2 (g 8 + j), [x(4g) , x(4g + 1)] and [x(4g + 2), x(4g + 3)] (zeros past the
 * last position and channel). The dy columns (0 where masked) of four output channels are
 * staged the same way, interleaved: group g of column j is the two words at 8 g + 2 j, so
 * that one group of the four columns is eight consecutive words (stage_columns4). Then per
 * group and eight channels: one double-word load of dy, eight of x, sixteen SMLADs (32
 * MACs). The staging of x (a word of four
 * channels from each of a group's four rows at a time: about 2.3 instructions an element) is
 * shared by all the output channels.
 *
 * A layer whose staging does not fit TT_GRAD_DSP_WEIGHT_STAGE_BYTES is walked with its
 * positions in chunks in a buffer on the stack, its sums kept across them ("Large maps"
 * below; the gradient alone of a map whose positions fit one chunk converts its tiles' sums
 * to floats in registers: "Small maps"). (Until round 20 one whose int8 input fitted was staged as int8 bytes, SXTB16 in
 * the sums' loop: its loop spilled and its dy columns were staged element by element, 2.2-2.6
 * instructions a MAC where the large-map walk takes 1.0-1.35 on the same layers.) A fused
 * update whose block of sums finds no room there (co above ~175) and which no chunk of
 * input channels takes either stages nothing but each output channel's dy column, on the
 * stack, up to TT_WDSP_DIRECT_ROWS positions (tt_dsp_pointwise_weight_direct), else runs
 * the portable code. The staging is the caller's (the arena of the generated program), the
 * dy columns after the staged input.
 *
 * The fused update (tt_dsp_pointwise_weight_update) applies the QAS rule to each block's
 * eight weights as its sums finish, from their registers: no float gradient in memory.
 *
 * T is the portable kernel's integer (the same terms, any order, |T| < 2^31 by
 * TT_GRAD_MAX_POSITIONS; SMLAD wraps modulo 2^32 like the portable int32 sums, and so do
 * the direct walk's sum dy x and its correction), converted by the same (float)T * unit. */
#include <string.h>

#include "tt_grad_dsp.h"

#if TT_GRAD_DSP
#include "tt_dsp_common.h"

/* A mask byte's eight bits as two words of byte lanes (0xFF where the bit is set): one
 * address computation and one LDRD a position instead of two nibbles' extraction and two
 * table loads (tt_dsp_mask_lanes), 2 KB of constants. Row n < 16's first word is the byte
 * lanes of four bits n, the weight gradients' dy masks' (nibble_lanes, quad_groups): one
 * table for both. */
#define BIAS_LANE4(n)                                                                 \
  ((((n)&1) ? 0xFFu : 0u) | (((n)&2) ? 0xFF00u : 0u) | (((n)&4) ? 0xFF0000u : 0u) |   \
   (((n)&8) ? 0xFF000000u : 0u))
#define BIAS_LANES1(v) {BIAS_LANE4((v)&15), BIAS_LANE4((v) >> 4)}
#define BIAS_LANES4(v) BIAS_LANES1(v), BIAS_LANES1((v) + 1), BIAS_LANES1((v) + 2), BIAS_LANES1((v) + 3)
#define BIAS_LANES16(v) BIAS_LANES4(v), BIAS_LANES4((v) + 4), BIAS_LANES4((v) + 8), BIAS_LANES4((v) + 12)
#define BIAS_LANES64(v) BIAS_LANES16(v), BIAS_LANES16((v) + 16), BIAS_LANES16((v) + 32), BIAS_LANES16((v) + 48)
static const uint32_t bias_mask_lanes[256][2] __attribute__((aligned(8))) = {
    BIAS_LANES64(0), BIAS_LANES64(64), BIAS_LANES64(128), BIAS_LANES64(192)};

/* The byte lanes (0xFF where set) of four mask bits (bit j: byte j). */
static inline uint32_t nibble_lanes(uint32_t bits) { return bias_mask_lanes[bits & 15u][0]; }

/* Half index of position p (< 4 groups) of channel j of a block in the layout above. */
static inline int32_t at(int32_t p, int32_t j) { return 4 * ((p >> 2) * 8 + j) + (p & 3); }
/* Half index of position p of column j of the four interleaved dy columns (stage_columns4:
 * group g of column j at words 8 g + 2 j); column 0 alone is staged the same way. */
static inline int32_t column_at(int32_t p, int32_t j) { return 16 * (p >> 2) + 4 * j + (p & 3); }


/* -zp in both 16-bit halves: SXTAB16's addend that subtracts the zero point zp. */
static inline uint32_t tt_dsp_neg_zp2(int32_t zp) {
  return (uint32_t)(uint16_t)(-zp) * 0x00010001u;
}

/* Four rows r0 .. r3 (a word of four int8 each: channels c .. c + 3 of positions p .. p + 3,
 * or dy of four output channels) as int16 pairs of positions: SXTB16 into even and odd
 * lanes (less the zero point where `sub`: SXTAB16 of nzp, its negation in both halves),
 * PKHBT/PKHTB, four STRD at out. Lane j (byte j of a row) of positions (p, p + 1) and of
 * (p + 2, p + 3) go to words 2 j and 2 j + 1 (by lane: the int16 staging's and
 * stage_columns4's order) or to j and 4 + j (by_pair: the large maps' chunks, whose tiles
 * sum a pair of positions at a time).
 * About 2.3 instructions an element where the element-wise form took 13. */
static inline __attribute__((always_inline)) void quad_words(tt_dsp_word *out, uint32_t r0,
                                                             uint32_t r1, uint32_t r2,
                                                             uint32_t r3, int sub, uint32_t nzp,
                                                             int by_pair) {
  /* less the zero point: SXTAB16 of nzp (-zp in both halves) widens and subtracts in one
   * instruction (|x - zp| <= 255: the same halves as SSUB16 after SXTB16) */
  const uint32_t e0 = sub ? __sxtab16(nzp, r0) : __sxtb16(r0);
  const uint32_t o0 = sub ? tt_dsp_sxtab16_odd(nzp, r0) : tt_dsp_sxtb16_odd(r0);
  const uint32_t e1 = sub ? __sxtab16(nzp, r1) : __sxtb16(r1);
  const uint32_t o1 = sub ? tt_dsp_sxtab16_odd(nzp, r1) : tt_dsp_sxtb16_odd(r1);
  const uint32_t e2 = sub ? __sxtab16(nzp, r2) : __sxtb16(r2);
  const uint32_t o2 = sub ? tt_dsp_sxtab16_odd(nzp, r2) : tt_dsp_sxtb16_odd(r2);
  const uint32_t e3 = sub ? __sxtab16(nzp, r3) : __sxtb16(r3);
  const uint32_t o3 = sub ? tt_dsp_sxtab16_odd(nzp, r3) : tt_dsp_sxtb16_odd(r3);
  /* w[2 j + q]: lane j, pair q */
  const uint32_t w[8] = {tt_dsp_low_halves(e0, e1),  tt_dsp_low_halves(e2, e3),
                         tt_dsp_low_halves(o0, o1),  tt_dsp_low_halves(o2, o3),
                         tt_dsp_high_halves(e0, e1), tt_dsp_high_halves(e2, e3),
                         tt_dsp_high_halves(o0, o1), tt_dsp_high_halves(o2, o3)};
#pragma GCC unroll 4
  for (int32_t n = 0; n < 4; ++n)           /* words 2 n and 2 n + 1 of out */
    if (by_pair)
      tt_dsp_strd(out + 2 * n, w[4 * (n & 1) + (n >> 1)], w[4 * (n & 1) + (n >> 1) + 2]);
    else
      tt_dsp_strd(out + 2 * n, w[2 * n], w[2 * n + 1]);
}

/* One group (positions p .. p + 3, rows of x k apart) of channels c .. c + 3 (c a multiple
 * of 4) into the int16 staging, the eight words at out. */
static inline void stage_quad(tt_dsp_word *out, const int8_t *x, int32_t k, int32_t x_zp) {
  quad_words(out, tt_dsp_load4(x), tt_dsp_load4(x + k), tt_dsp_load4(x + 2 * k),
             tt_dsp_load4(x + 3 * k), 1, tt_dsp_neg_zp2(x_zp), 0);
}

/* The int16 staging of channels 0 .. k - 1 of `saved`, whose rows are `stride` bytes apart
 * (k of a whole layer, or one chunk of it: tt_dsp_pointwise_weight_stage_part), at st->x. */
static inline __attribute__((always_inline)) void stage16(const int8_t *saved, int32_t rows,
                                                       int32_t stride, int32_t k, int32_t x_zp,
                                                       tt_wdsp_stage *st) {
  const int32_t groups = (rows + 3) >> 2, blocks = (k + 7) >> 3;
  memset(st->x, 0, (size_t)blocks * (size_t)groups * 64u);
  int16_t *half = (int16_t *)st->x;
  const int32_t full = rows >> 2, k4 = k & ~3;
  for (int32_t g = 0; g < full; ++g)
    for (int32_t c = 0; c < k4; c += 4)
      stage_quad(st->x + (c >> 3) * groups * 16 + 16 * g + 2 * (c & 7),
                 saved + 4 * g * stride + c, stride, x_zp);
  for (int32_t p = 0; p < rows; ++p) {        /* the channels past k4, the last partial group */
    const int8_t *x = saved + p * stride;
    for (int32_t c = p < 4 * full ? k4 : 0; c < k; ++c)
      half[(c >> 3) * groups * 32 + at(p, c & 7)] = (int16_t)(x[c] - x_zp);
  }
}

int tt_dsp_pointwise_weight_stage(const int8_t *saved, int32_t rows, int32_t k, int32_t x_zp,
                                  void *mem, int32_t bytes, tt_wdsp_stage *st) {
  return tt_dsp_pointwise_weight_stage_part(saved, rows, k, k, x_zp, mem, bytes, st);
}

int tt_dsp_pointwise_weight_stage_part(const int8_t *saved, int32_t rows, int32_t stride,
                                       int32_t k, int32_t x_zp, void *mem, int32_t bytes,
                                       tt_wdsp_stage *st) {
  const int32_t groups = (rows + 3) >> 2, blocks = (k + 7) >> 3;
  mem = tt_dsp_stage_align8(mem, &bytes);
  if (rows < 2 || mem == 0 || tt_wdsp_stage_bytes(rows, k) > bytes) return 0;
  st->x = (tt_dsp_word *)mem;
  st->first = -1;
  st->dys = st->x + blocks * groups * 16;
  stage16(saved, rows, stride, k, x_zp, st);
  return 1;
}

/* One group of block_sums' assembly: dy's two words at byte offset `dy` from ds, then each
 * channel's two x words (at the byte offsets from xs) into its sum by two SMLADs. */
#define SUMS_CHANNEL(j, at)                                  \
  "ldrd %[x0], %[x1], [%[xs], #" #at "]\n\t"               \
  "smlad %[t" #j "], %[x0], %[d0], %[t" #j "]\n\t"        \
  "smlad %[t" #j "], %[x1], %[d1], %[t" #j "]\n\t"
#define SUMS_GROUP(dy, a0, a1, a2, a3, a4, a5, a6, a7)                                   \
  "ldrd %[d0], %[d1], [%[ds], #" #dy "]\n\t" SUMS_CHANNEL(0, a0) SUMS_CHANNEL(1, a1)     \
  SUMS_CHANNEL(2, a2) SUMS_CHANNEL(3, a3) SUMS_CHANNEL(4, a4) SUMS_CHANNEL(5, a5)      \
  SUMS_CHANNEL(6, a6) SUMS_CHANNEL(7, a7)

/* SUMS_CHANNEL's first group: SMUAD starts the sum (no zeroed register to add to). */
#define SUMS_CHANNEL_FIRST(j, at)                            \
  "ldrd %[x0], %[x1], [%[xs], #" #at "]\n\t"               \
  "smuad %[t" #j "], %[x0], %[d0]\n\t"                     \
  "smlad %[t" #j "], %[x1], %[d1], %[t" #j "]\n\t"
#define SUMS_GROUP_FIRST(a0, a1, a2, a3, a4, a5, a6, a7)                                  \
  "ldrd %[d0], %[d1], [%[ds]]\n\t" SUMS_CHANNEL_FIRST(0, a0) SUMS_CHANNEL_FIRST(1, a1)     \
  SUMS_CHANNEL_FIRST(2, a2) SUMS_CHANNEL_FIRST(3, a3) SUMS_CHANNEL_FIRST(4, a4)          \
  SUMS_CHANNEL_FIRST(5, a5) SUMS_CHANNEL_FIRST(6, a6) SUMS_CHANNEL_FIRST(7, a7)
/* groups 1-3 of four (the first is the caller's: SUMS_GROUP or SUMS_GROUP_FIRST), then both
 * pointers past the four */
#define SUMS_GROUPS_1_TO_3                                \
  SUMS_GROUP(32, 64, 72, 80, 88, 96, 104, 112, 120)      \
  SUMS_GROUP(64, 128, 136, 144, 152, 160, 168, 176, 184) \
  SUMS_GROUP(96, 192, 200, 208, 216, 224, 232, 240, 248) \
  "adds %[ds], %[ds], #128\n\t"                          \
  "adds %[xs], %[xs], #256"

/* acc[j] over every group for the eight channels of one block (ds: one dy column, its
 * groups 8 words apart, stage_columns4's layout): groups mod 4 one at a time,
 * then four an iteration in assembly. The loop's pointer steps, end test and branch (5
 * instructions against a group's 25) then come once per four groups; gcc unrolls such a
 * loop only with its sums spilled (it takes all 14 registers: 8 sums, 2 pointers, 2 dy and
 * 2 x words, the end read from the stack into a free x register). Where groups is a
 * multiple of 4 (MobileNetV2's and MCUNet's 4x4 and 8x8 layers) the first four start the
 * sums by SMUAD in an assembly block of their own, in place of eight zeroed registers. */
static inline __attribute__((always_inline)) void block_sums(const tt_dsp_word *xs,
                                                             const tt_dsp_word *ds,
                                                             int32_t groups, int32_t *acc) {
  int32_t t[8];
  const tt_dsp_word *const end = ds + 8 * groups;     /* a column's groups 8 words apart */
#if TT_DSP_ASM_ALL_REGS
  if (groups >= 4 && (groups & 3) == 0) {
    uint32_t d0, d1, x0, x1;
    __asm__ volatile(
      SUMS_GROUP_FIRST(0, 8, 16, 24, 32, 40, 48, 56)
      SUMS_GROUPS_1_TO_3
      : [t0] "=&r"(t[0]), [t1] "=&r"(t[1]), [t2] "=&r"(t[2]), [t3] "=&r"(t[3]),
        [t4] "=&r"(t[4]), [t5] "=&r"(t[5]), [t6] "=&r"(t[6]), [t7] "=&r"(t[7]),
        [ds] "+r"(ds), [xs] "+r"(xs), [d0] "=&r"(d0), [d1] "=&r"(d1), [x0] "=&r"(x0),
        [x1] "=&r"(x1)
      :
      : "cc", "memory");
  } else
#endif
  {
#pragma GCC unroll 8
    for (int32_t j = 0; j < 8; ++j) t[j] = 0;
    /* groups mod 4 in C, the rest four an iteration in assembly (in C where it cannot run) */
    const tt_dsp_word *const first = TT_DSP_ASM_ALL_REGS ? ds + 8 * (groups & 3) : end;
    for (; ds != first; ds += 8, xs += 16) {
      uint32_t d0, d1;
      tt_dsp_ldrd(ds, &d0, &d1);
#pragma GCC unroll 8
      for (int32_t j = 0; j < 8; ++j) {
        uint32_t x0, x1;
        tt_dsp_ldrd(xs + 2 * j, &x0, &x1);
        t[j] = __smlad(x0, d0, t[j]);
        t[j] = __smlad(x1, d1, t[j]);
      }
    }
  }
#if TT_DSP_ASM_ALL_REGS
  if (ds != end) {
    uint32_t d0, d1, x0, x1;
    __asm__ volatile(
      "1:\n\t"
      SUMS_GROUP(0, 0, 8, 16, 24, 32, 40, 48, 56)
      SUMS_GROUPS_1_TO_3 "\n\t"
      "ldr %[x0], %[end]\n\t"
      "cmp %[ds], %[x0]\n\t"
      "bne 1b"
      : [t0] "+r"(t[0]), [t1] "+r"(t[1]), [t2] "+r"(t[2]), [t3] "+r"(t[3]),
        [t4] "+r"(t[4]), [t5] "+r"(t[5]), [t6] "+r"(t[6]), [t7] "+r"(t[7]),
        [ds] "+r"(ds), [xs] "+r"(xs), [d0] "=&r"(d0), [d1] "=&r"(d1), [x0] "=&r"(x0),
        [x1] "=&r"(x1)
      : [end] "m"(end)
      : "cc", "memory");
  }
#endif
#pragma GCC unroll 8
  for (int32_t j = 0; j < 8; ++j) acc[j] = t[j];
}

#if TT_FPV5
/* The low bytes of a, b, c, d as one word, a's lowest: three BFI (gcc 12 masks and ORs). */
static inline uint32_t bytes4(int32_t a, int32_t b, int32_t c, int32_t d) {
  uint32_t r = (uint32_t)a;
  __asm__("bfi %0, %1, #8, #8\n\tbfi %0, %2, #16, #8\n\tbfi %0, %3, #24, #8"
          : "+r"(r) : "r"(b), "r"(c), "r"(d));
  return r;
}
#endif

/* Weights w[c0 + j], j < nc, after the default rule (tt_qas_weight, nan_free) with the
 * gradients (float)(acc[j] - correction) * unit, from the sums' registers: no float
 * gradient in memory. A whole block is unrolled so that acc stays in registers. */
static inline __attribute__((always_inline)) void update_block(int8_t *w, const int32_t *acc,
                                                               int32_t nc, int32_t correction,
                                                               float unit, float scale,
                                                               tt_sgd_call *call) {
  if (nc == 8) {
#if TT_FPV5
    /* four steps at once (tt_qas_steps4), and four weights a word: their bytes clamped by
     * one pair of QSUB8 and stored by one STR (6 instructions fewer per four than a byte at
     * a time) */
#pragma GCC unroll 2
    for (int32_t h = 0; h < 8; h += 4) {
      int32_t q[4];
#pragma GCC unroll 4
      for (int32_t j = 0; j < 4; ++j)
        q[j] = (int32_t)((uint32_t)acc[h + j] - (uint32_t)correction);
      tt_qas_steps4(call, q, unit, scale);
      uint32_t word = tt_clamp_weights4(
          bytes4(tt_qas_weight_sat8(w[h], q[0]), tt_qas_weight_sat8(w[h + 1], q[1]),
                 tt_qas_weight_sat8(w[h + 2], q[2]), tt_qas_weight_sat8(w[h + 3], q[3])));
      memcpy(w + h, &word, 4);
    }
#else
#pragma GCC unroll 8
    for (int32_t j = 0; j < 8; ++j)
      w[j] = tt_qas_weight(call, w[j],
                           (float)(int32_t)((uint32_t)acc[j] - (uint32_t)correction) * unit,
                           scale, 1);
#endif
    return;
  }
  for (int32_t j = 0; j < nc; ++j)
    w[j] = tt_qas_weight(call, w[j],
                         (float)(int32_t)((uint32_t)acc[j] - (uint32_t)correction) * unit,
                         scale, 1);
}

/* The update's block sums: inlined beside the FPv5 rule (the M7); where the rule has
 * no FPv5 (Cortex-M4, M33) its portable float forms keep values in registers across the
 * inlined loop, which then finds fewer than its fourteen ("impossible constraints" at -O2),
 * so there the sums are a call of their own. */
#if !TT_FPV5
static __attribute__((noinline)) TT_DSP_ASM_FN void sums16_of(const tt_dsp_word *xs,
                                                              const tt_dsp_word *ds,
                                                              int32_t groups, int32_t *acc) {
  block_sums(xs, ds, groups, acc);
}
#endif

static inline __attribute__((always_inline)) void update_sums16(const tt_dsp_word *xs,
                                                                const tt_dsp_word *ds,
                                                                int32_t groups, int32_t *acc) {
#if TT_FPV5
  block_sums(xs, ds, groups, acc);
#else
  sums16_of(xs, ds, groups, acc);
#endif
}

/* Every block of eight channels of the staging: each block's sums, then its gradients
 * (float)acc[j] * unit into out, or (update) applied to w by the default rule
 * (update_block). One walk for the three callers below, each inlining it with update
 * constant. An update takes the whole blocks apart: acc indexed by constants only, kept in
 * registers. */
static inline __attribute__((always_inline)) void each_block(
    const tt_dsp_word *stage, const tt_dsp_word *dys, int32_t groups, int32_t k, float unit,
    float *out, int update, int8_t *w, float scale, tt_sgd_call *call) {
  const int32_t step = 16 * groups;
  if (update) {
    int32_t c0 = 0;
    for (; c0 + 8 <= k; c0 += 8, stage += step) {
      int32_t acc[8];
      update_sums16(stage, dys, groups, acc);
      update_block(w + c0, acc, 8, 0, unit, scale, call);
    }
    if (c0 < k) {
      int32_t acc[8];
      update_sums16(stage, dys, groups, acc);
      update_block(w + c0, acc, k - c0, 0, unit, scale, call);
    }
    return;
  }
  int32_t acc[8];
  for (int32_t c0 = 0; c0 < k; c0 += 8, stage += step) {
    block_sums(stage, dys, groups, acc);
    const int32_t nc = k - c0 < 8 ? k - c0 : 8;
    for (int32_t j = 0; j < nc; ++j) out[c0 + j] = (float)acc[j] * unit;
  }
}

static __attribute__((noinline)) TT_DSP_ASM_FN void blocks_of(const tt_dsp_word *stage,
                                                const tt_dsp_word *dys, int32_t groups,
                                                int32_t k, float unit, float *out) {
  each_block(stage, dys, groups, k, unit, out, 0, 0, 0.0f, 0);
}

/* The walk's update (tt_dsp_pointwise_weight_update) draws from a copy of the call's random
 * stream, kept in a register, and hands it back. */
static __attribute__((noinline)) TT_DSP_ASM_FN void update_blocks_of(const tt_dsp_word *stage,
                                                       const tt_dsp_word *dys, int32_t groups,
                                                       int32_t k, float unit, int8_t *w,
                                                       float scale, tt_sgd_call *c) {
  tt_sgd_call call = *c;
  each_block(stage, dys, groups, k, unit, 0, 1, w, scale, &call);
  c->rng = call.rng;
}

/* Row p's four dy (d: its first), masked by the nibble at bit `shift` (a constant: one
 * UBFX) of the mask byte mb when `masked`; 0 past the last row (p >= rows). */
static inline __attribute__((always_inline)) uint32_t column_word(const int8_t *d,
                                                                  const uint8_t *mb,
                                                                  int masked, int32_t shift,
                                                                  int live) {
  if (!live) return 0u;
  const uint32_t x = tt_dsp_load4(d);
  return masked ? x & nibble_lanes((uint32_t)*mb >> shift) : x;
}

#if TT_DSP_ASM_ALL_REGS
/* quad_words over whole groups of four rows (co bytes apart) in assembly, for the dy
 * columns (stage_columns4: by lane) and the large maps' chunks (by pair; dy and the saved
 * input): gcc's C spilled (eight reloads a group in the columns, 60 instructions a group in
 * the chunks). Per row: its word; dy masked (co a multiple of 8: the nibble at a fixed bit
 * of its byte, NIBBLE: AND #15 or LSR #4) by its byte lanes (nibble_lanes). Two rows' int8
 * words PKHBT/PKHTB into their bytes by halves, then SXTB16 even and odd into their four
 * words of positions (p, p + 1) (the input less its zero point by SXTAB16 of aux: -zp in
 * both halves): 9 instructions a pair of rows where SXTB16 first, then PKH of the halves,
 * took 11 (round 21). STORE_A and STORE_B put the two pairs' words in the caller's order: by
 * pair 25 instructions a group without a mask or less the zero point (33 with SSUB16 after
 * SXTB16, until round 26), 44 with a mask; by lane
 * one STR more (the first pair's words go to both halves of the group, and its last word
 * must leave its register first; 26 without a mask, where gcc's C took 28). Fourteen
 * registers. */
#define QUAD_NONE(x, m)
#define QUAD_NIB15(m) "  and %[" m "], %[" m "], #15\n"
#define QUAD_NIB4(m) "  lsr %[" m "], %[" m "], #4\n"
#define QUAD_MASK(x, m, NIBBLE)                                                             \
  "  ldrb %[" m "], [%[mb]]\n  add %[mb], %[mb], %[co], lsr #3\n" NIBBLE(m)              \
  "  ldr %[" m "], [%[aux], %[" m "], lsl #3]\n  and %[" x "], %[" x "], %[" m "]\n"
#define QUAD_AND15(x, m) QUAD_MASK(x, m, QUAD_NIB15)
#define QUAD_LSR4(x, m) QUAD_MASK(x, m, QUAD_NIB4)
/* a row pair's halves r (rotated by ROR) sign-extended into w: SXTB16, or SXTAB16 adding
 * aux = -zp in both halves (the zero point subtracted in the widening itself: |x - zp| <=
 * 255 fits each half, so the sum is SSUB16's x - zp exactly; 4 instructions a pair of rows
 * fewer than SXTB16 then SSUB16) */
#define QUAD_EXT(w, r, ROR) "  sxtb16 %[" w "], %[" r "]" ROR "\n"
#define QUAD_EXT_ZP(w, r, ROR) "  sxtab16 %[" w "], %[aux], %[" r "]" ROR "\n"
/* rows p (x0, m0) and p + 1 (x1, m1), masked per row (LANES), their bytes paired by halves
 * (quad_words), then their words (widened by EXT, less the zero point by QUAD_EXT_ZP): m0
 * lane 0, x0 lane 1, y lane 2, m1 lane 3 */
#define QUAD_ROWS2(x0, m0, x1, m1, y, LANES, EXT)                                           \
  "  ldr %[" x0 "], [%[d]]\n"                                                              \
  "  ldr %[" x1 "], [%[d], %[co]]\n"                                                       \
  "  add %[d], %[d], %[co], lsl #1\n" LANES(x0, m0) LANES(x1, m1)                          \
  "  pkhbt %[" m0 "], %[" x0 "], %[" x1 "], lsl #16\n"                                      \
  "  pkhtb %[" m1 "], %[" x1 "], %[" x0 "], asr #16\n"                                      \
  EXT(x0, m0, ", ror #8") EXT(m0, m0, "") EXT(y, m1, "") EXT(m1, m1, ", ror #8")
/* the first pair's lanes 0-3 in b, a, i, e, the second's in f, c, i, h */
#define QUAD_LANE_A "  str %[i], [%[out], #16]\n"
#define QUAD_LANE_B                                                                         \
  "  str %[i], [%[out], #20]\n  strd %[b], %[f], [%[out]]\n"                               \
  "  strd %[a], %[c], [%[out], #8]\n  strd %[e], %[h], [%[out], #24]\n"
/* by pair, the group's words at out + o (bytes) */
#define QUAD_PAIR_A(o0, o1)                                                                 \
  "  strd %[b], %[a], [%[out], #" #o0 "]\n  strd %[i], %[e], [%[out], #" #o1 "]\n"
#define QUAD_PAIR_B(o2, o3)                                                                 \
  "  strd %[f], %[c], [%[out], #" #o2 "]\n  strd %[i], %[h], [%[out], #" #o3 "]\n"
/* both loops' operands: the walk's pointers, nine scratch registers, the row step, aux, end */
#define QUAD_OPERANDS                                                                       \
  : [out] "+r"(out), [d] "+r"(d), [mb] "+r"(mb), [a] "=&r"(a), [b] "=&r"(b), [c] "=&r"(c),  \
    [e] "=&r"(e), [f] "=&r"(f), [g] "=&r"(g), [h] "=&r"(h), [i] "=&r"(i)                    \
  : [co] "r"(co), [aux] "r"(aux), [end] "r"(end)                                           \
  : "cc", "memory"
#define QUAD_GROUPS_ASM(LANES, EXT, STORE_A, STORE_B)                                       \
  __asm__ volatile("1:\n" QUAD_ROWS2("a", "b", "c", "e", "i", LANES, EXT) STORE_A           \
          QUAD_ROWS2("c", "f", "g", "h", "i", LANES, EXT) STORE_B                            \
          "  add %[out], %[out], #32\n"                                                     \
          "  cmp %[out], %[end]\n"                                                          \
          "  bne 1b\n"                                                                      \
          QUAD_OPERANDS)
/* By pair (the large maps' chunks: the pointwise weight gradient's staging) two groups a
 * trip, the loop's ADD, CMP and BNE once for both (1.5 instructions a group fewer: 0.015 a
 * MAC where one side has 8 channels); an odd number of groups enters at the second, out 32
 * bytes back (its stores are at out + 32 .. 63). */
#define QUAD_GROUPS2_ASM(LANES, EXT)                                                        \
  __asm__ volatile("  sub %[a], %[end], %[out]\n"                                          \
          "  ands %[a], %[a], #32\n"                                                        \
          "  sub %[out], %[out], %[a]\n"                                                    \
          "  bne 3f\n"                                                                      \
          "1:\n" QUAD_ROWS2("a", "b", "c", "e", "i", LANES, EXT) QUAD_PAIR_A(0, 8)          \
          QUAD_ROWS2("c", "f", "g", "h", "i", LANES, EXT) QUAD_PAIR_B(16, 24)                 \
          "3:\n" QUAD_ROWS2("a", "b", "c", "e", "i", LANES, EXT) QUAD_PAIR_A(32, 40)        \
          QUAD_ROWS2("c", "f", "g", "h", "i", LANES, EXT) QUAD_PAIR_B(48, 56)                 \
          "  add %[out], %[out], #64\n"                                                     \
          "  cmp %[out], %[end]\n"                                                          \
          "  bne 1b\n"                                                                      \
          QUAD_OPERANDS)
#define QUAD_ORDERS(LANES, EXT)                                                             \
  if (by_pair)                                                                              \
    QUAD_GROUPS2_ASM(LANES, EXT);                                                           \
  else                                                                                      \
    QUAD_GROUPS_ASM(LANES, EXT, QUAD_LANE_A, QUAD_LANE_B)
/* `full` groups of four rows of four bytes at d (co bytes apart) into the eight words each
 * at out, by pair or by lane (quad_words): dy (masked: the nibbles from the bytes at mb, co
 * / 8 apart, `shift` their bit) or the saved input (`zp`: less its zero point, nzp its
 * negation in both halves: tt_dsp_neg_zp2). Each
 * caller inlines it with by_pair, zp and masked constant. */
static inline __attribute__((always_inline)) void quad_groups(tt_dsp_word *out,
                                                              const int8_t *d,
                                                              const uint8_t *mb, int32_t full,
                                                              int32_t co, int by_pair,
                                                              int masked, int32_t shift, int zp,
                                                              uint32_t nzp) {
  tt_dsp_word *const end = out + 8 * full;
  uint32_t a, b, c, e, f, g, h, i;
  const uint32_t aux = zp ? nzp : (uint32_t)(uintptr_t)bias_mask_lanes;
  if (zp) {
    QUAD_ORDERS(QUAD_NONE, QUAD_EXT_ZP);
  } else if (!masked) {
    QUAD_ORDERS(QUAD_NONE, QUAD_EXT);
  } else if (shift) {
    QUAD_ORDERS(QUAD_LSR4, QUAD_EXT);
  } else {
    QUAD_ORDERS(QUAD_AND15, QUAD_EXT);
  }
}
#undef QUAD_ORDERS
#undef QUAD_OPERANDS
#undef QUAD_GROUPS2_ASM
#undef QUAD_GROUPS_ASM
#undef QUAD_PAIR_B
#undef QUAD_PAIR_A
#undef QUAD_LANE_B
#undef QUAD_LANE_A
#undef QUAD_ROWS2
#undef QUAD_LSR4
#undef QUAD_AND15
#undef QUAD_EXT_ZP
#undef QUAD_EXT
#undef QUAD_MASK
#undef QUAD_NIB4
#undef QUAD_NIB15
#undef QUAD_NONE
#endif

/* Every group of the four columns from the rows at d (co apart) and the mask bytes at mb
 * (mstep apart): whole groups four rows an iteration (in assembly where it can run), then
 * the partial last group with zeros for its missing positions. */
static inline __attribute__((always_inline)) void columns_groups(tt_dsp_word *out,
                                                                 const int8_t *d,
                                                                 const uint8_t *mb, int32_t rows,
                                                                 int32_t co, int32_t mstep,
                                                                 int masked, int32_t shift) {
  const int32_t full = rows >> 2, rest = rows & 3;
  const tt_dsp_word *const end = out + 8 * full;
#if TT_DSP_ASM_ALL_REGS
  {                                /* (masked: co a multiple of 8, mstep co / 8) */
    if (full > 0) quad_groups(out, d, mb, full, co, 0, masked, shift, 0, 0);
    out += 8 * full, d += 4 * full * co, mb += 4 * full * mstep;
  }
#endif
  for (; out != end; out += 8, d += 4 * co, mb += 4 * mstep)
    quad_words(out, column_word(d, mb, masked, shift, 1),
               column_word(d + co, mb + mstep, masked, shift, 1),
               column_word(d + 2 * co, mb + 2 * mstep, masked, shift, 1),
               column_word(d + 3 * co, mb + 3 * mstep, masked, shift, 1), 0, 0, 0);
  if (rest)
    quad_words(out, column_word(d, mb, masked, shift, 1),
               column_word(d + co, mb + mstep, masked, shift, rest > 1),
               column_word(d + 2 * co, mb + 2 * mstep, masked, shift, rest > 2), 0u, 0, 0, 0);
}

/* The int16 dy columns of output channels o0 .. o0 + 3 (o0 + 4 <= co), 0 where masked,
 * interleaved (group g of column j: words 8 g + 2 j and 8 g + 2 j + 1; zeros past the last
 * position). Where a position's four dy are one word and their mask bits one nibble of one
 * byte (no mask, or co a multiple of 8 and o0 of 4): per group of four positions four
 * loads, the nibbles' byte lanes, eight SXTB16, eight PKHBT/PKHTB and four STRD from one
 * pointer (about 2.5 instructions an element with a mask; the columns one after another,
 * four pointers, spilled them: 4.5). */
static __attribute__((noinline)) TT_DSP_ASM_FN void stage_columns4(int16_t *col,
                                                                    const int8_t *dy,
                                                                    const uint8_t *mask,
                                                                    int32_t rows, int32_t co,
                                                                    int32_t o0, int32_t groups) {
  tt_dsp_word *out = (tt_dsp_word *)col;
  const int8_t *d = dy + o0;
  if (mask == 0) {
    columns_groups(out, d, mask, rows, co, 0, 0, 0);
  } else if ((co & 7) == 0 && (o0 & 3) == 0) {
    const uint8_t *mb = mask + (o0 >> 3);
    if (o0 & 4)
      columns_groups(out, d, mb, rows, co, co >> 3, 1, 4);
    else
      columns_groups(out, d, mb, rows, co, co >> 3, 1, 0);
  } else {
    int32_t p = 0;
    for (int32_t i = o0; p < rows; ++p, i += co)
      for (int32_t j = 0; j < 4; ++j)
        col[column_at(p, j)] = (int16_t)(tt_live(mask, i + j) ? dy[i + j] : 0);
    for (; p < 4 * groups; ++p)
      for (int32_t j = 0; j < 4; ++j) col[column_at(p, j)] = 0;
  }
}

/* Where a channel's gradients go: into out, or (w != NULL) applied to w at once. */
typedef struct {
  float *out;
  int8_t *w;
  float scale;
  tt_sgd_call *call;
} sink;

static inline __attribute__((always_inline)) void weight_channel(
    tt_wdsp_stage *st, const int8_t *dy, const uint8_t *mask, int32_t rows, int32_t co,
    int32_t o, int32_t k, float unit, const sink *to) {
  const int32_t groups = (rows + 3) >> 2;
  tt_dsp_word *dys = st->dys;
  int16_t *half = (int16_t *)dys;
  if ((o & ~3) + 4 <= co) {
    const int32_t o0 = o & ~3;
    if (st->first != o0) {
      stage_columns4(half, dy, mask, rows, co, o0, groups);
      st->first = o0;
    }
    dys += 2 * (o - o0);                           /* column o - o0 of the interleaved four */
  } else {
    st->first = -1;                                /* column 0 rewritten */
    int32_t p = 0;
    for (int32_t i = o; p < rows; ++p, i += co)
      half[column_at(p, 0)] = (int16_t)(tt_live(mask, i) ? dy[i] : 0);
    for (; p < 4 * groups; ++p) half[column_at(p, 0)] = 0;
  }
  if (to->w)
    update_blocks_of(st->x, dys, groups, k, unit, to->w, to->scale, to->call);
  else
    blocks_of(st->x, dys, groups, k, unit, to->out);
}

void tt_dsp_pointwise_weight_channel(tt_wdsp_stage *st, const int8_t *dy,
                                     const uint8_t *mask, int32_t rows, int32_t co, int32_t o,
                                     int32_t k, int32_t x_zp, float unit, float *out) {
  const sink to = {out, 0, 0.0f, 0};
  (void)x_zp;                                     /* (x - x_zp staged) */
  weight_channel(st, dy, mask, rows, co, o, k, unit, &to);
}

void tt_dsp_pointwise_weight_update(tt_wdsp_stage *st, const int8_t *dy, const uint8_t *mask,
                                    int32_t rows, int32_t co, int32_t o, int32_t k,
                                    int32_t x_zp, float unit, int8_t *w, float scale,
                                    tt_sgd_call *call) {
  const sink to = {0, w, scale, call};
  (void)x_zp;
  weight_channel(st, dy, mask, rows, co, o, k, unit, &to);
}

/* Whether channel scale `scale` keeps the default rule's values free of NaN, given
 * tt_qas_nan_free(neg_lr, unit, 1) (the call's part): tt_qas_nan_free(neg_lr, unit, scale). */
static inline int scale_nan_free(float scale) { return scale - scale == 0.0f && scale != 0.0f; }

/* Channel o of a run that began at `begin`: its stream where `skip` (the other chunks'
 * draws) is not 0, states[o] where the caller keeps each channel's (a block's run then
 * stores it back: run_done), else skipped past them from the run's second channel on; and
 * its scale; 0 where the default rule cannot take it (a NaN possible: scale_nan_free), the
 * stream already set for it. */
static inline __attribute__((always_inline)) int run_channel(uint32_t *rng, int32_t o,
                                                             int32_t begin, int32_t skip,
                                                             const uint32_t *states,
                                                             const float *scales,
                                                             int32_t per_channel, float *scale) {
  if (skip) {                  /* 0 for a layer's whole input: one test a channel then */
    if (states)
      *rng = states[o];
    else if (o > begin)
      *rng = tt_gdsp_skip(*rng, skip);
  }
  *scale = scales[per_channel ? o : 0];
  return scale_nan_free(*scale);
}

/* After channel o's draws: its stream state kept for its next block, where states. */
static inline __attribute__((always_inline)) void run_done(uint32_t *states, int32_t o,
                                                           uint32_t rng) {
  if (states) states[o] = rng;
}

/* tt_dsp_pointwise_weight_update_run's channels begin .. end - 1 (end <= co & ~3: four dy
 * columns staged at once), in one frame: the walk's set-up, the call
 * state's copy and the arguments once a run instead of once a channel (about 140
 * instructions a channel in three calls before). */
static __attribute__((noinline)) TT_DSP_ASM_FN int32_t update_run16(
    tt_wdsp_stage *st, const int8_t *dy, const uint8_t *mask, int32_t rows, int32_t co,
    int32_t begin, int32_t end, int32_t k, float unit, int8_t *w, int32_t ci,
    const float *scales, int32_t per_channel, int32_t skip, uint32_t *states, tt_sgd_call *c) {
  tt_sgd_call call = *c;
  const int32_t groups = (rows + 3) >> 2;
  int32_t o = begin;
  for (; o < end; ++o) {
    float scale;
    if (!run_channel(&call.rng, o, begin, skip, states, scales, per_channel, &scale)) break;
    const int32_t o0 = o & ~3;
    if (st->first != o0) {
      stage_columns4((int16_t *)st->dys, dy, mask, rows, co, o0, groups);
      st->first = o0;
    }
    each_block(st->x, st->dys + 2 * (o - o0), groups, k, unit, 0, 1, w + o * ci, scale, &call);
    run_done(states, o, call.rng);
  }
  c->rng = call.rng;
  return o;
}

int32_t tt_dsp_pointwise_weight_update_run(tt_wdsp_stage *st, const int8_t *dy,
                                           const uint8_t *mask, int32_t rows, int32_t co,
                                           int32_t begin, int32_t k, int32_t x_zp, float unit,
                                           int8_t *w, int32_t ci, const float *scales,
                                           int32_t per_channel, int32_t skip,
                                           uint32_t *states, tt_sgd_call *call) {
  if (!tt_qas_nan_free(call->neg_lr, unit, 1.0f)) return begin;
  int32_t o = begin;
  if (o < (co & ~3)) {
    o = update_run16(st, dy, mask, rows, co, o, co & ~3, k, unit, w, ci, scales, per_channel,
                     skip, states, call);
    if (o < (co & ~3)) return o;
  }
  for (; o < co; ++o) {                             /* the channels past co & ~3 */
    float scale;
    if (!run_channel(&call->rng, o, begin, skip, states, scales, per_channel, &scale)) break;
    tt_dsp_pointwise_weight_update(st, dy, mask, rows, co, o, k, x_zp, unit, w + o * ci, scale,
                                   call);
    run_done(states, o, call->rng);
  }
  return o;
}

/* Output channel o without staging the input, for fused updates that no other walk takes
 * (no staging given, 161-256 positions or too many input channels for update_chunked's
 * chunks, more than ~175 output channels for the large-map walk's block of sums: a 16x16
 * layer of 192 outputs whose plan cut its staging), and for gradients only in builds of
 * TT_GRAD_DSP_STAGE_BYTES below ~1.3 KB (test_direct_walk_equals_portable runs both): the
 * dy column (0 where masked) as int16
 * pairs of positions [dy(2i), dy(2i + 1)] on the stack, then per four channels and pair of
 * positions one word of x from each position's row, SXTB16 into [x0, x2] and [x1, x3] and
 * eight 16 x 16 multiply-accumulates (SMLAxB with dy(2i), SMLAxT with dy(2i + 1)): about 18
 * instructions per 8 MACs, against the portable code's 7-8 a MAC. T = sum dy x - x_zp
 * sum dy, modulo 2^32 (as SMLAD's). */
int tt_dsp_pointwise_weight_direct(const int8_t *dy, const uint8_t *mask, int32_t rows,
                                   int32_t co, int32_t o, const int8_t *saved, int32_t k,
                                   int32_t x_zp, float unit, float *out) {
  if (rows < 2 || rows > TT_WDSP_DIRECT_ROWS) return 0;
  uint32_t d[TT_WDSP_DIRECT_ROWS / 2];
  const int32_t pairs = rows >> 1;
  uint32_t sum = 0;
  for (int32_t i = 0, e = o; i < pairs; ++i, e += 2 * co) {
    const int32_t a = tt_live(mask, e) ? dy[e] : 0, b = tt_live(mask, e + co) ? dy[e + co] : 0;
    d[i] = (uint32_t)(uint16_t)a | (uint32_t)b << 16;
    sum += (uint32_t)(a + b);
  }
  int32_t last = 0;                                   /* an odd last position's dy */
  if (rows & 1) {
    const int32_t e = (rows - 1) * co + o;
    last = tt_live(mask, e) ? dy[e] : 0;
    sum += (uint32_t)last;
  }
  const uint32_t correction = (uint32_t)x_zp * sum;
  const int8_t *const tail = saved + (rows - 1) * k;   /* the odd last position's row */
  int32_t c = 0;
  for (; c + 4 <= k; c += 4) {
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    const int8_t *x = saved + c;
    for (const uint32_t *dp = d, *end = d + pairs; dp != end; ++dp, x += 2 * k) {
      const uint32_t dd = *dp, wp = tt_dsp_load4(x), wq = tt_dsp_load4(x + k);
      const uint32_t pe = __sxtb16(wp), po = tt_dsp_sxtb16_odd(wp);
      const uint32_t qe = __sxtb16(wq), qo = tt_dsp_sxtb16_odd(wq);
      a0 = __smlabb((int32_t)pe, (int32_t)dd, a0);
      a2 = __smlatb((int32_t)pe, (int32_t)dd, a2);
      a1 = __smlabb((int32_t)po, (int32_t)dd, a1);
      a3 = __smlatb((int32_t)po, (int32_t)dd, a3);
      a0 = __smlabt((int32_t)qe, (int32_t)dd, a0);
      a2 = __smlatt((int32_t)qe, (int32_t)dd, a2);
      a1 = __smlabt((int32_t)qo, (int32_t)dd, a1);
      a3 = __smlatt((int32_t)qo, (int32_t)dd, a3);
    }
    if (rows & 1) {                                   /* (modulo 2^32, as SMLAxy) */
      const int8_t *t = tail + c;
      a0 = (int32_t)((uint32_t)a0 + (uint32_t)(last * t[0]));
      a1 = (int32_t)((uint32_t)a1 + (uint32_t)(last * t[1]));
      a2 = (int32_t)((uint32_t)a2 + (uint32_t)(last * t[2]));
      a3 = (int32_t)((uint32_t)a3 + (uint32_t)(last * t[3]));
    }
    out[c] = (float)(int32_t)((uint32_t)a0 - correction) * unit;
    out[c + 1] = (float)(int32_t)((uint32_t)a1 - correction) * unit;
    out[c + 2] = (float)(int32_t)((uint32_t)a2 - correction) * unit;
    out[c + 3] = (float)(int32_t)((uint32_t)a3 - correction) * unit;
  }
  for (; c < k; ++c) {                                /* the last k mod 4 channels */
    uint32_t t = 0;
    const int8_t *x = saved + c;
    for (int32_t i = 0; i < pairs; ++i, x += 2 * k)
      t += (uint32_t)((int32_t)(int16_t)d[i] * x[0] + ((int32_t)d[i] >> 16) * x[k]);
    if (rows & 1) t += (uint32_t)(last * tail[c]);
    out[c] = (float)(int32_t)(t - correction) * unit;
  }
  return 1;
}

/* ---- Large maps: the positions in chunks ------------------------------------------------
 * A layer whose saved input fits no staging of the caller's (the person detector's and
 * MCUNet's 1x1 layers at 24x24 .. 64x64: 18-64 KB as int8) is walked chunk of positions by
 * chunk in a buffer of the kernel's own (tt_dsp_pointwise_weight_sums), its sums T kept in
 * int32 words across the chunks (the caller's: dw itself, or the fused update's block of
 * them). Per chunk the input's channels c0 .. c0 + cb - 1 are staged once as int16
 * x - x_zp, tiles of four channels, each pair of positions i the four words at 4 i
 * ([x(2i, c), x(2i + 1, c)] for c of the tile); then per four output channels their dy
 * columns, pair i the four words at 4 i (column j's pair at 4 i + j). A tile of
 * two output channels by four input channels then sums a pair of positions in one LDRD of
 * dy, two of x and eight SMLADs (16 MACs): each dy word serves four input channels and each
 * x word two output channels, eight sums in registers. */

/* Pairs of positions one trip of wbig_tile's loop takes (a chunk's pairs are a multiple;
 * wbig_tile_rows takes twice as many a trip, entering at the middle for an odd multiple). */
#define WBIG_UNROLL 4
#define WBIG_POSITIONS (2 * WBIG_UNROLL)

/* Words of a chunk of `pairs` pairs of cb channels, then of four dy columns. */
static inline int32_t wbig_x_words(int32_t pairs, int32_t cb) { return 4 * pairs * ((cb + 3) >> 2); }

/* One pair of positions' four words by pair (quad_words' half: lane j's [r0.j, r1.j] at
 * out[j], less the zero point where sub): the stagings' last partial group, where the
 * element-wise loops took about 10 instructions an element (dwig30: at 9 positions, 1 of
 * every 9 positions of x and 5 of every 40 words of dy; 12 instructions a pair here). */
static inline __attribute__((always_inline)) void wbig_pair(tt_dsp_word *out, uint32_t r0,
                                                            uint32_t r1, int sub,
                                                            uint32_t nzp) {
  const uint32_t e0 = sub ? __sxtab16(nzp, r0) : __sxtb16(r0);
  const uint32_t o0 = sub ? tt_dsp_sxtab16_odd(nzp, r0) : tt_dsp_sxtb16_odd(r0);
  const uint32_t e1 = sub ? __sxtab16(nzp, r1) : __sxtb16(r1);
  const uint32_t o1 = sub ? tt_dsp_sxtab16_odd(nzp, r1) : tt_dsp_sxtb16_odd(r1);
  tt_dsp_strd(out, tt_dsp_low_halves(e0, e1), tt_dsp_low_halves(o0, o1));
  tt_dsp_strd(out + 2, tt_dsp_high_halves(e0, e1), tt_dsp_high_halves(o0, o1));
}

int32_t tt_dsp_wbig_positions(int32_t rows, int32_t cb, int32_t bytes) {
  const int32_t per = 8 * (((cb + 3) >> 2) + 1);        /* bytes a position: x tiles, dy */
  int32_t p = (bytes / per) & ~(WBIG_POSITIONS - 1);
  const int32_t all = (rows + WBIG_POSITIONS - 1) & ~(WBIG_POSITIONS - 1);
  return p < all ? p : all;
}

/* Positions p0 .. p0 + np - 1 of channels c0 .. c0 + cb - 1 into the chunk's tiles at xs
 * (`pairs` pairs a tile): four positions of four channels by quad_words, by pair; the
 * positions past np up to the pairs' end are read by the tiles against zero dy, whatever
 * they hold. */
static void wbig_stage_x(tt_dsp_word *xs, const int8_t *saved, int32_t k, int32_t p0,
                         int32_t np, int32_t c0, int32_t cb, int32_t x_zp, int32_t pairs) {
  const uint32_t zp = tt_dsp_neg_zp2(x_zp);
  const int32_t full = np >> 2, cb4 = cb & ~3, tile = 4 * pairs;
  const int8_t *row = saved + p0 * k + c0;
#if TT_DSP_ASM_ALL_REGS
  if (full > 0)
    for (int32_t c = 0; c < cb4; c += 4)
      quad_groups(xs + (c >> 2) * tile, row + c, 0, full, k, 1, 0, 0, 1, zp);
#else
  for (int32_t g = 0; g < full; ++g, row += 4 * k) {
    tt_dsp_word *out = xs + 8 * g;
    for (int32_t c = 0; c < cb4; c += 4, out += tile) {
      const int8_t *x = row + c;
      quad_words(out, tt_dsp_load4(x), tt_dsp_load4(x + k), tt_dsp_load4(x + 2 * k),
                 tt_dsp_load4(x + 3 * k), 1, zp, 1);
    }
  }
#endif
  /* the last partial quad's pairs, channels below cb4 (a position past np: zero words
   * less the zero point, read against zero dy) */
  for (int32_t p = 4 * full; p < np; p += 2) {
    const int8_t *x = saved + (p0 + p) * k + c0;
    for (int32_t c = 0; c < cb4; c += 4)
      wbig_pair(xs + (c >> 2) * tile + 2 * p, tt_dsp_load4(x + c),
                p + 1 < np ? tt_dsp_load4(x + k + c) : 0u, 1, zp);
  }
  int16_t *half = (int16_t *)xs;
  if (cb4 < cb)
    for (int32_t p = 0; p < np; ++p) {                   /* the channels past cb4 */
      const int8_t *x = saved + (p0 + p) * k + c0;
      for (int32_t c = cb4; c < cb; ++c)
        half[2 * ((c >> 2) * tile + 4 * (p >> 1) + (c & 3)) + (p & 1)] =
            (int16_t)(x[c] - x_zp);
    }
}

/* The dy of output channels o0 .. o0 + 3 at positions p0 .. p0 + np - 1 (0 where masked,
 * past co, and past np up to 2 used positions) into the chunk's dy words at ds: pair i the
 * four words at 4 i, column j's [dy(2i), dy(2i + 1)] at 4 i + j. Where a position's four
 * dy are one word (o0 + 4 <= co) and their mask bits one nibble of a byte (co a multiple of
 * 4): four rows at a time (in assembly where co is a multiple of 8 or there is no mask). */
static void wbig_stage_dy(tt_dsp_word *ds, const int8_t *dy, const uint8_t *mask, int32_t co,
                          int32_t o0, int32_t p0, int32_t np, int32_t used) {
  int32_t p = 0;
  if (o0 + 4 <= co && (mask == 0 || (co & 3) == 0)) {
    const int8_t *d = dy + p0 * co + o0;
    int32_t i = p0 * co + o0;                          /* the first dy's mask bit */
#if TT_DSP_ASM_ALL_REGS
    if ((mask == 0 || (co & 7) == 0) && np >= 4) {
      const int32_t full = np >> 2;
      quad_groups(ds, d, mask ? mask + (i >> 3) : 0, full, co, 1, mask != 0, i & 4, 0, 0);
      p = 4 * full, d += 4 * full * co, i += 4 * full * co;
    }
#endif
    for (; p + 4 <= np; p += 4, d += 4 * co, i += 4 * co) {
      uint32_t x0 = tt_dsp_load4(d), x1 = tt_dsp_load4(d + co);
      uint32_t x2 = tt_dsp_load4(d + 2 * co), x3 = tt_dsp_load4(d + 3 * co);
      if (mask) {  /* i a multiple of 4: the nibble sits in one byte (tt_dsp_mask_lanes' table,
                    * not nibble_lanes': with one table for both gcc allocated the large-map
                    * walk's registers worse, about 150 instructions a call) */
        x0 &= tt_dsp_mask_lanes((uint32_t)mask[i >> 3] >> (i & 4));
        x1 &= tt_dsp_mask_lanes((uint32_t)mask[(i + co) >> 3] >> ((i + co) & 4));
        x2 &= tt_dsp_mask_lanes((uint32_t)mask[(i + 2 * co) >> 3] >> ((i + 2 * co) & 4));
        x3 &= tt_dsp_mask_lanes((uint32_t)mask[(i + 3 * co) >> 3] >> ((i + 3 * co) & 4));
      }
      quad_words(ds + 2 * p, x0, x1, x2, x3, 0, 0, 1);
    }
    /* the last partial quad and the zero pairs up to `used`, a pair at a time */
    for (; p < 2 * used; p += 2, d += 2 * co, i += 2 * co) {
      uint32_t x0 = 0u, x1 = 0u;
      if (p < np) {
        x0 = tt_dsp_load4(d);
        if (mask) x0 &= tt_dsp_mask_lanes((uint32_t)mask[i >> 3] >> (i & 4));
      }
      if (p + 1 < np) {
        x1 = tt_dsp_load4(d + co);
        if (mask) x1 &= tt_dsp_mask_lanes((uint32_t)mask[(i + co) >> 3] >> ((i + co) & 4));
      }
      wbig_pair(ds + 2 * p, x0, x1, 0, 0u);
    }
  }
  int16_t *half = (int16_t *)ds;
  for (; p < 2 * used; ++p)              /* the rest, and zeros up to the pairs the tiles read */
    for (int32_t j = 0; j < 4; ++j) {
      const int32_t o = o0 + j, i = (p0 + p) * co + o;
      const int32_t v = p < np && o < co && tt_live(mask, i) ? dy[i] : 0;
      half[2 * (4 * (p >> 1) + j) + (p & 1)] = (int16_t)v;
    }
}

/* One pair of positions of a tile: dy's two columns (d0, d1), the four channels' x words
 * (two LDRD), eight SMLADs. */
#define WBIG_PAIR                                   \
  "ldrd %[d0], %[d1], [%[ds]], #16\n\t"             \
  "ldrd %[x0], %[x1], [%[xs]], #8\n\t"              \
  "smlad %[a0], %[x0], %[d0], %[a0]\n\t"            \
  "smlad %[b0], %[x0], %[d1], %[b0]\n\t"            \
  "smlad %[a1], %[x1], %[d0], %[a1]\n\t"            \
  "smlad %[b1], %[x1], %[d1], %[b1]\n\t"            \
  "ldrd %[x0], %[x1], [%[xs]], #8\n\t"              \
  "smlad %[a2], %[x0], %[d0], %[a2]\n\t"            \
  "smlad %[b2], %[x0], %[d1], %[b2]\n\t"            \
  "smlad %[a3], %[x1], %[d0], %[a3]\n\t"            \
  "smlad %[b3], %[x1], %[d1], %[b3]\n\t"

/* t[j] (column a, channel j) and t[4 + j] (column b) += the sums over `pairs` pairs (a
 * multiple of WBIG_UNROLL) of the region ds and the tile xs: the loop in assembly, its end
 * read from the stack (all fourteen registers are the loop's), three instructions a trip of
 * four pairs (64 MACs, 44 instructions). */
static inline __attribute__((always_inline)) void wbig_tile(const tt_dsp_word *xs,
                                                            const tt_dsp_word *ds,
                                                            int32_t pairs, int32_t *t) {
#if TT_DSP_ASM_ALL_REGS
  const tt_dsp_word *const end = ds + 4 * pairs;
  uint32_t d0, d1, x0, x1;
  int32_t a0 = t[0], a1 = t[1], a2 = t[2], a3 = t[3], b0 = t[4], b1 = t[5], b2 = t[6],
          b3 = t[7];
  __asm__ volatile(
    "1:\n\t" WBIG_PAIR WBIG_PAIR WBIG_PAIR WBIG_PAIR
    "ldr %[x0], %[end]\n\t"
    "cmp %[ds], %[x0]\n\t"
    "bne 1b"
    : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [b0] "+r"(b0),
      [b1] "+r"(b1), [b2] "+r"(b2), [b3] "+r"(b3), [ds] "+r"(ds), [xs] "+r"(xs),
      [d0] "=&r"(d0), [d1] "=&r"(d1), [x0] "=&r"(x0), [x1] "=&r"(x1)
    : [end] "m"(end)
    : "cc", "memory");
  t[0] = a0, t[1] = a1, t[2] = a2, t[3] = a3, t[4] = b0, t[5] = b1, t[6] = b2, t[7] = b3;
#else
  for (int32_t i = 0; i < pairs; ++i, ds += 4, xs += 4)
    for (int32_t j = 0; j < 4; ++j) {
      t[j] = __smlad(xs[j], ds[0], t[j]);
      t[4 + j] = __smlad(xs[j], ds[1], t[4 + j]);
    }
#endif
}

/* wbig_tile over `tiles` whole tiles one after another (tiles 4 pairs words apart, from xs)
 * on the sums in memory, ra[4 i .. 4 i + 3] (column a) and rb[..] (column b) for tile i:
 * loaded and stored by LDRD/STRD inside the assembly, the row pointers, the region's start
 * and end and the tiles' end read from the stack (all fourteen registers are the loop's).
 * About 19 instructions a tile besides its loop, where gcc's loop over the tiles around one
 * tile's assembly took 36 (against a tile's 47 a trip of four pairs: 0.07 a MAC at 64
 * positions). Eight pairs a trip (128 MACs, 3 instructions of loop), where four took 3 per
 * 64 MACs (round 26: 32->16 @32x32 1.001 -> 0.983 a MAC, +212 B of code): `pairs` being a
 * multiple of four, not of eight, each tile enters its loop at the trip's first pair or,
 * for an odd number of fours, at its fifth, by LDR PC of the entry chosen once a call (one
 * instruction a tile). */
static inline __attribute__((always_inline)) void wbig_tile_rows(const tt_dsp_word *xs,
                                                                 const tt_dsp_word *ds,
                                                                 int32_t pairs,
                                                                 tt_dsp_word *ra,
                                                                 tt_dsp_word *rb,
                                                                 int32_t tiles) {
#if TT_DSP_ASM_ALL_REGS
  const tt_dsp_word *const end = ds + 4 * pairs, *const ds0 = ds;
  const tt_dsp_word *const xend = xs + 4 * pairs * tiles;
  const int32_t half = pairs & 4;            /* a trip of four pairs past whole trips of 8 */
  uint32_t d0, d1, x0, x1, a0, a1, a2, a3, b0, b1, b2, b3, entry;
  __asm__ volatile(
    "ldr %[x1], %[half]\n\t"
    "cmp %[x1], #0\n\t"
    "ite eq\n\t"
    "adreq.w %[x0], 1f\n\t"
    "adrne.w %[x0], 3f\n\t"
    "orr %[x0], %[x0], #1\n\t"                /* Thumb: LDR PC interworks on bit 0 */
    "str %[x0], %[entry]\n\t"
    "2:\n\t"
    "ldr %[x0], %[ra]\n\t"
    "ldr %[x1], %[rb]\n\t"
    "ldrd %[a0], %[a1], [%[x0]]\n\t"
    "ldrd %[a2], %[a3], [%[x0], #8]\n\t"
    "ldrd %[b0], %[b1], [%[x1]]\n\t"
    "ldrd %[b2], %[b3], [%[x1], #8]\n\t"
    "ldr pc, %[entry]\n\t"
    "1:\n\t" WBIG_PAIR WBIG_PAIR WBIG_PAIR WBIG_PAIR
    "3:\n\t" WBIG_PAIR WBIG_PAIR WBIG_PAIR WBIG_PAIR
    "ldr %[x0], %[end]\n\t"
    "cmp %[ds], %[x0]\n\t"
    "bne 1b\n\t"
    "ldr %[x0], %[ra]\n\t"
    "ldr %[x1], %[rb]\n\t"
    "strd %[a2], %[a3], [%[x0], #8]\n\t"
    "strd %[a0], %[a1], [%[x0]], #16\n\t"
    "str %[x0], %[ra]\n\t"
    "strd %[b2], %[b3], [%[x1], #8]\n\t"
    "strd %[b0], %[b1], [%[x1]], #16\n\t"
    "str %[x1], %[rb]\n\t"
    "ldr %[ds], %[ds0]\n\t"
    "ldr %[x0], %[xend]\n\t"
    "cmp %[xs], %[x0]\n\t"
    "bne 2b"
    : [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [b0] "=&r"(b0),
      [b1] "=&r"(b1), [b2] "=&r"(b2), [b3] "=&r"(b3), [ds] "+r"(ds), [xs] "+r"(xs),
      [d0] "=&r"(d0), [d1] "=&r"(d1), [x0] "=&r"(x0), [x1] "=&r"(x1), [ra] "+m"(ra),
      [rb] "+m"(rb), [entry] "=m"(entry)
    : [end] "m"(end), [ds0] "m"(ds0), [xend] "m"(xend), [half] "m"(half)
    : "cc", "memory");
#else
  for (int32_t i = 0; i < tiles; ++i, xs += 4 * pairs, ra += 4, rb += 4) {
    int32_t t[8];
    for (int32_t j = 0; j < 4; ++j) t[j] = (int32_t)ra[j], t[4 + j] = (int32_t)rb[j];
    wbig_tile(xs, ds, pairs, t);
    for (int32_t j = 0; j < 4; ++j) ra[j] = (uint32_t)t[j], rb[j] = (uint32_t)t[4 + j];
  }
#endif
}
#undef WBIG_PAIR

/* The tiles of one chunk and four output channels o0 .. (< co): acc rows o (stride
 * acc_stride) += the tiles' sums of channels 0 .. cb - 1 over the chunk's `used` pairs
 * (tiles `used` pairs apart: wbig_stage_x's layout of the chunk). */
static inline __attribute__((always_inline)) void wbig_tiles(const tt_dsp_word *xs,
                                                             const tt_dsp_word *ds,
                                                             int32_t used, int32_t cb,
                                                             int32_t co, int32_t o0,
                                                             tt_dsp_word *acc,
                                                             int32_t acc_stride) {
  for (int32_t h = 0; h < 4 && o0 + h < co; h += 2, ds += 2) {
    tt_dsp_word *ra = acc + (o0 + h) * acc_stride, *rb = ra + acc_stride;
    const int both = o0 + h + 1 < co;
    const tt_dsp_word *x = xs;
    int32_t c = 0;
    if (both && cb >= 4) {
      c = cb & ~3;
      wbig_tile_rows(x, ds, used, ra, rb, c >> 2);
      x += 4 * used * (c >> 2);
    }
    for (; c < cb; c += 4, x += 4 * used) {              /* a partial tile: sums apart */
      int32_t t[8];
      for (int32_t j = 0; j < 8; ++j) t[j] = 0;
      wbig_tile(x, ds, used, t);
      for (int32_t j = 0; j < 4 && c + j < cb; ++j) {
        ra[c + j] += (uint32_t)t[j];
        if (both) rb[c + j] += (uint32_t)t[4 + j];
      }
    }
  }
}


/* ---- Small maps: the floats straight from the tiles --------------------------------------
 * Where one chunk holds every position (the maps of 8x8 and below), each tile's eight sums
 * are whole after its loop: they are converted there, from the tile's registers (VMOV two
 * at a time, VCVT.F32.S32, VMUL by unit: the portable (float)T * unit, round to nearest),
 * and stored into dw, so that dw is neither zeroed, nor loaded and stored by each tile, nor
 * converted by a pass of its own (tt_dsp_zero_words and tt_dsp_sums_to_floats took 3.4 a
 * weight, 0.2 a MAC at 16 positions). A tile's first four pairs start the sums (SMUAD
 * first: no zeroed registers); the rest enter the four-pair loop at the pair that leaves a
 * whole number of trips, so a tile walks its exact pairs (at least four: 9 positions take 5
 * pairs, where the sums' walk rounds them to 8). The sums' walk (wbig_walk) and this share
 * one copy of the stagings: the mode is the sign of the row stride. */
/* s0-s7, eight int32 sums, to float32 times %[u], as the portable (float)T * unit: round to
 * nearest, no contraction (wfloat_rows' tiles and tt_dsp_sums_to_floats) */
#define TT_VCVT_MUL8                                          \
  "vcvt.f32.s32 s0, s0\n\tvcvt.f32.s32 s1, s1\n\t"          \
  "vcvt.f32.s32 s2, s2\n\tvcvt.f32.s32 s3, s3\n\t"          \
  "vcvt.f32.s32 s4, s4\n\tvcvt.f32.s32 s5, s5\n\t"          \
  "vcvt.f32.s32 s6, s6\n\tvcvt.f32.s32 s7, s7\n\t"          \
  "vmul.f32 s0, s0, %[u]\n\tvmul.f32 s1, s1, %[u]\n\t"      \
  "vmul.f32 s2, s2, %[u]\n\tvmul.f32 s3, s3, %[u]\n\t"      \
  "vmul.f32 s4, s4, %[u]\n\tvmul.f32 s5, s5, %[u]\n\t"      \
  "vmul.f32 s6, s6, %[u]\n\tvmul.f32 s7, s7, %[u]\n\t"

#if TT_DSP_ASM_ALL_REGS && defined(__ARM_FP) && (__ARM_FP & 4)
#define WFLOAT 1
#define WFLOAT_PAIR(op, acc)                         \
  "ldrd %[d0], %[d1], [%[ds]], #16\n\t"              \
  "ldrd %[x0], %[x1], [%[xs]], #8\n\t"               \
  op " %[a0], %[x0], %[d0]" acc(a0) "\n\t"           \
  op " %[b0], %[x0], %[d1]" acc(b0) "\n\t"           \
  op " %[a1], %[x1], %[d0]" acc(a1) "\n\t"           \
  op " %[b1], %[x1], %[d1]" acc(b1) "\n\t"           \
  "ldrd %[x0], %[x1], [%[xs]], #8\n\t"               \
  op " %[a2], %[x0], %[d0]" acc(a2) "\n\t"           \
  op " %[b2], %[x0], %[d1]" acc(b2) "\n\t"           \
  op " %[a3], %[x1], %[d0]" acc(a3) "\n\t"           \
  op " %[b3], %[x1], %[d1]" acc(b3) "\n\t"
#define WFLOAT_NONE(r) ""
#define WFLOAT_ADD(r) ", %[" #r "]"

/* A tile's end in wfloat_rows: its eight sums to floats (4 VMOV of two, TT_VCVT_MUL8), the
 * four of column a at its row pointer, those of b at its own (both then on by 4: one LDRD
 * and STRD of the two, where one pointer and k took an ADD more, dwig30), then the next
 * tile (the region's start again) until the tiles' end. */
#define WFLOAT_TAIL WFLOAT_TAIL_TO("2b")
#define WFLOAT_TAIL_TO(loop)                         \
  "vmov s0, s1, %[a0], %[a1]\n\t"                    \
  "vmov s2, s3, %[a2], %[a3]\n\t"                    \
  "vmov s4, s5, %[b0], %[b1]\n\t"                    \
  "vmov s6, s7, %[b2], %[b3]\n\t"                    \
  TT_VCVT_MUL8                                       \
  "ldrd %[x0], %[x1], %[rows]\n\t"                   \
  "vstmia %[x0]!, {s0-s3}\n\t"                       \
  "vstmia %[x1]!, {s4-s7}\n\t"                       \
  "strd %[x0], %[x1], %[rows]\n\t"                   \
  "ldrd %[ds], %[x0], %[ends]\n\t"                   \
  "cmp %[xs], %[x0]\n\t"                             \
  "bne " loop "\n\t"

/* Rows o and o + 1 of dw (row: dw's first of the block, k floats apart) from `tiles` tiles
 * one after another (4 used words apart, from xs) against the dy columns at ds, `used` (>= 4)
 * pairs each. The loop's pairs are 44 bytes of code each (LDRD and SMLAD: 32-bit encodings
 * only), so past the first four pairs the entry is 44 (4 - q) bytes past the loop's start for
 * the q pairs (1-4) of its first trip, or the conversion where used is 4, or where used is 8
 * (the 4x4 maps) four pairs straight into a copy of the conversion (computed once a call,
 * BX a tile); the end of the region, the entry, the rows' pointer and the tiles' end
 * come from the stack (all fourteen registers are the loop's). Per tile of 8 pairs (16
 * positions, 128 MACs): 88 for the pairs, 2 for the entry, 20 to convert (4 VMOV of two, 8
 * VCVT, 8 VMUL), 8 to store and go on (7 since dwig30): 118 where the loop's end test took 3 more (round 26:
 * MCUNet's 240->96 @4x4 1.017 -> 0.994 a MAC, for +276 B of code) and 139 before round 22
 * (QEMU instructions). */
static __attribute__((noinline)) TT_DSP_ASM_FN void wfloat_rows(const tt_dsp_word *xs,
                                                                 const tt_dsp_word *ds,
                                                                 int32_t used, float *row,
                                                                 int32_t k, int32_t tiles,
                                                                 float unit) {
  const int32_t q = ((used - 5) & 3) + 1;      /* (used 4: no trip past the first) */
  /* -1: the conversion (used 4), -2: the straight four pairs (used 8), -3: a tile of five
   * pairs straight, as its own loop (used 5: the 3x3 maps; dwig30: 88 -> 83 instructions a
   * tile, no entry and no loop end test), else the loop's */
  const int32_t off = used == 4 ? -1 : used == 8 ? -2 : used == 5 ? -3 : 44 * (4 - q);
  const tt_dsp_word *const end = ds + 4 * used;
  struct { float *ra, *rb; } rows = {row, row + k};     /* both rows' pointers: one LDRD
                                                        * and STRD a tile (dwig30: -1) */
  struct { const tt_dsp_word *ds0, *xend; } ends = {ds, xs + 4 * used * tiles};
  uint32_t entry, d0, d1, x0, x1, a0, a1, a2, a3, b0, b1, b2, b3;
  __asm__ volatile(
    "ldr %[x1], %[off]\n\t"
    "adr.w %[x0], 3f\n\t"
    "add %[x0], %[x0], %[x1]\n\t"
    "cmp %[x1], #0\n\t"
    "bge 6f\n\t"
    "adr.w %[x0], 4f\n\t"
    "cmn %[x1], #2\n\t"
    "blt 9f\n\t"
    "it eq\n\t"
    "adreq.w %[x0], 7f\n"
    "6:\n\t"
    "orr %[x0], %[x0], #1\n\t"
    "str %[x0], %[entry]\n"
    "2:\n\t" WFLOAT_PAIR("smuad", WFLOAT_NONE) WFLOAT_PAIR("smlad", WFLOAT_ADD)
    WFLOAT_PAIR("smlad", WFLOAT_ADD) WFLOAT_PAIR("smlad", WFLOAT_ADD)
    "ldr %[x0], %[entry]\n\t"
    "bx %[x0]\n"
    "7:\n\t" WFLOAT_PAIR("smlad", WFLOAT_ADD) WFLOAT_PAIR("smlad", WFLOAT_ADD)
    WFLOAT_PAIR("smlad", WFLOAT_ADD) WFLOAT_PAIR("smlad", WFLOAT_ADD)
    WFLOAT_TAIL
    "b 8f\n"
    "3:\n\t" WFLOAT_PAIR("smlad", WFLOAT_ADD) WFLOAT_PAIR("smlad", WFLOAT_ADD)
    WFLOAT_PAIR("smlad", WFLOAT_ADD) WFLOAT_PAIR("smlad", WFLOAT_ADD)
    /* the entry's 44 (4 - q) assumes 44 bytes a pair: an assembler that encodes one
     * narrower fails here, not with wrong bits at some `used` */
    "5:\n\t"
    ".if (5b - 3b) != 176\n\t.error \"wfloat_rows: a pair is not 44 bytes\"\n\t.endif\n\t"
    "ldr %[x0], %[end]\n\t"
    "cmp %[ds], %[x0]\n\t"
    "bne 3b\n"
    "4:\n\t"
    WFLOAT_TAIL
    "b 8f\n"
    "9:\n\t" WFLOAT_PAIR("smuad", WFLOAT_NONE) WFLOAT_PAIR("smlad", WFLOAT_ADD)
    WFLOAT_PAIR("smlad", WFLOAT_ADD) WFLOAT_PAIR("smlad", WFLOAT_ADD)
    WFLOAT_PAIR("smlad", WFLOAT_ADD)
    WFLOAT_TAIL_TO("9b")
    "8:"
    : [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [b0] "=&r"(b0),
      [b1] "=&r"(b1), [b2] "=&r"(b2), [b3] "=&r"(b3), [ds] "+r"(ds), [xs] "+r"(xs),
      [d0] "=&r"(d0), [d1] "=&r"(d1), [x0] "=&r"(x0), [x1] "=&r"(x1), [rows] "+m"(rows),
      [entry] "=m"(entry)
    : [end] "m"(end), [ends] "m"(ends), [off] "m"(off), [u] "t"(unit)
    : "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "cc", "memory");
}
#undef WFLOAT_TAIL
#undef WFLOAT_TAIL_TO
#undef WFLOAT_ADD
#undef WFLOAT_NONE
#undef WFLOAT_PAIR
#else
#define WFLOAT 0
/* wbig_walk's float branch, dead where WFLOAT is 0 (no assembly: -O0's frame pointer, the
 * ASM_ALL_REGS=0 builds), still has to compile */
static inline void wfloat_rows(const tt_dsp_word *xs, const tt_dsp_word *ds, int32_t used,
                               float *row, int32_t k, int32_t tiles, float unit) {
  (void)xs, (void)ds, (void)used, (void)row, (void)k, (void)tiles, (void)unit;
}
#endif

/* The float mode's pairs: every position in one chunk, each tile its exact pairs (at least
 * 4). Its chunk is these pairs, not the sums' chunk of a multiple of 8 positions (dwig30: 9
 * positions took the staging of 16, so 256->256 @3x3 ran in blocks of 112 input channels,
 * 3 stagings of every dy column, where 10 positions allow blocks of 184, 2). */
static inline int32_t wfloat_pairs(int32_t rows) { return rows < 8 ? 4 : (rows + 1) >> 1; }

int tt_dsp_wfloat_fits(int32_t rows, int32_t co, int32_t k, int32_t cb, int32_t bytes) {
  return WFLOAT && rows >= 2 && ((co | k | cb) & 3) == 0 && cb > 0 &&
         2 * wfloat_pairs(rows) * 8 * (((cb + 3) >> 2) + 1) <= bytes - 8;
}

int32_t tt_dsp_wfloat_block(int32_t rows, int32_t co, int32_t k, int32_t bytes) {
  for (int32_t cb = k; cb >= 4; cb = cb > 8 ? ((cb - 1) & ~7) : cb - 4)
    if (tt_dsp_wfloat_fits(rows, co, k, cb, bytes)) return cb;
  return 0;
}

/* The walk of both (one copy of the stagings, inlined: a second copy of wbig_stage_dy and
 * wbig_stage_x would be about 1.6 KB): sums into acc (row stride acc_stride > 0), or, where
 * tt_dsp_wfloat_fits, floats into the rows of acc (stride -acc_stride: the sign is the mode,
 * so that no other value is live in the sums' walk) from the tiles' registers, each tile its
 * exact pairs (at least 4). The test in the o0 loop still costs the sums' walk about 0.15%
 * (gcc's registers: +360 to +1,360 instructions on the large maps' rows). */
static __attribute__((noinline)) TT_DSP_ASM_FN void wbig_walk(
    const int8_t *dy, const uint8_t *mask, int32_t rows, int32_t co, const int8_t *saved,
    int32_t k, int32_t c0, int32_t cb, int32_t x_zp, tt_dsp_word *acc, int32_t acc_stride,
    void *mem, int32_t bytes, float unit) {
  mem = tt_dsp_stage_align8(mem, &bytes);
  const int fl = WFLOAT && acc_stride < 0;
  const int32_t chunk = fl ? rows : tt_dsp_wbig_positions(rows, cb, bytes);
  const int32_t pairs = fl ? wfloat_pairs(rows) : chunk >> 1;
  if (chunk <= 0) return;       /* the callers check; a chunk of 0 would never end */
  tt_dsp_word *const xs = (tt_dsp_word *)mem, *const ds = xs + wbig_x_words(pairs, cb);
  for (int32_t p0 = 0; p0 < rows; p0 += chunk) {
    const int32_t np = rows - p0 < chunk ? rows - p0 : chunk;
    /* the last chunk's pairs rounded up to the loop's trip, not to the whole chunk */
    const int32_t used = fl ? pairs
                            : ((np + WBIG_POSITIONS - 1) & ~(WBIG_POSITIONS - 1)) >> 1;
    wbig_stage_x(xs, saved, k, p0, np, c0, cb, x_zp, used);       /* tiles `used` apart */
    for (int32_t o0 = 0; o0 < co; o0 += 4) {
      wbig_stage_dy(ds, dy, mask, co, o0, p0, np, used);
      /* the float mode where the staging above took it (acc_stride < 0; review23a: a
       * test of > 0 here ran the float mode at a stride of 0, staged for the sums) */
      if (!WFLOAT || __builtin_expect(acc_stride >= 0, 1)) {
        wbig_tiles(xs, ds, used, cb, co, o0, acc, acc_stride);
      } else {
        float *const row = (float *)(void *)acc - o0 * acc_stride + c0;
        wfloat_rows(xs, ds, used, row, -acc_stride, cb >> 2, unit);
        wfloat_rows(xs, ds + 2, used, row - 2 * acc_stride, -acc_stride, cb >> 2, unit);
      }
    }
  }
}

TT_DSP_ASM_FN void tt_dsp_pointwise_weight_sums(const int8_t *dy, const uint8_t *mask,
                                                int32_t rows, int32_t co, const int8_t *saved,
                                                int32_t k, int32_t c0, int32_t cb, int32_t x_zp,
                                                tt_dsp_word *acc, int32_t acc_stride,
                                                void *mem, int32_t bytes) {
  wbig_walk(dy, mask, rows, co, saved, k, c0, cb, x_zp, acc, acc_stride, mem, bytes, 0.0f);
}

void tt_dsp_pointwise_weight_floats(const int8_t *dy, const uint8_t *mask, int32_t rows,
                                    int32_t co, const int8_t *saved, int32_t k, int32_t c0,
                                    int32_t cb, int32_t x_zp, float unit, float *dw, void *mem,
                                    int32_t bytes) {
  wbig_walk(dy, mask, rows, co, saved, k, c0, cb, x_zp, (tt_dsp_word *)(void *)dw, -k, mem,
            bytes, unit);
}

void tt_dsp_zero_words(tt_dsp_word *p, int32_t n) {
  /* four STRDs of one zero register a trip (7 instructions for 8 words where newlib's
   * memset took about 14: 0.03 a MAC at 64 positions, 0.2 at 9) */
  tt_dsp_word *const end = p + (n & ~7);
  const uint32_t z = 0u;
  for (; p != end; p += 8) {
    tt_dsp_strd(p, z, z), tt_dsp_strd(p + 2, z, z);
    tt_dsp_strd(p + 4, z, z), tt_dsp_strd(p + 6, z, z);
  }
  for (int32_t i = 0; i < (n & 7); ++i) p[i] = 0u;
}

void tt_dsp_sums_to_floats(float *dw, int32_t n, float unit) {
  int32_t i = 0;
#if TT_DSP_ASM_ALL_REGS && defined(__ARM_FP) && (__ARM_FP & 4)
  /* eight a trip: one VLDM, eight VCVTs, eight VMULs, one VSTM (21 instructions with the
   * loop where gcc's loop of one took 7 a weight: 0.11 a MAC at 64 positions) */
  float *p = dw, *const end = dw + (n & ~7);
  if (p != end)
    __asm__ volatile(
      "1:\n\t"
      "vldmia %[p], {s0-s7}\n\t"
      TT_VCVT_MUL8
      "vstmia %[p]!, {s0-s7}\n\t"
      "cmp %[p], %[end]\n\t"
      "bne 1b"
      : [p] "+r"(p)
      : [end] "r"(end), [u] "t"(unit)
      : "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "cc", "memory");
  i = n & ~7;
#endif
  for (; i < n; ++i) {
    int32_t t;
    memcpy(&t, dw + i, sizeof t);
    dw[i] = (float)t * unit;
  }
}

/* The rule over n sums t of one output channel's weights wo, blocks of eight and the rest:
 * one copy of update_block's two forms for the large maps' and the one-position updates
 * (each inlined copy is about 0.7 KB of code; the board's 1 MB of flash is shared with
 * TFLM and the model). */
static __attribute__((noinline)) void update_run(int8_t *wo, const int32_t *t, int32_t n,
                                                 float unit, float scale, tt_sgd_call *call) {
  int32_t j = 0;
  for (; j + 8 <= n; j += 8) update_block(wo + j, t + j, 8, 0, unit, scale, call);
  if (j < n) update_block(wo + j, t + j, n - j, 0, unit, scale, call);
}

int32_t tt_dsp_pointwise_weight_update_sums(const tt_dsp_word *acc, int32_t n, int32_t co,
                                            int32_t begin, float unit, int8_t *w, int32_t ci,
                                            const float *scales, int32_t per_channel,
                                            int32_t skip, uint32_t *states,
                                            tt_sgd_call *c) {
  if (!tt_qas_nan_free(c->neg_lr, unit, 1.0f)) return begin;
  tt_sgd_call call = *c;
  int32_t o = begin;
  for (; o < co; ++o) {
    float scale;
    if (!run_channel(&call.rng, o, begin, skip, states, scales, per_channel, &scale)) break;
    update_run(w + o * ci, (const int32_t *)acc + o * n, n, unit, scale, &call);
    run_done(states, o, call.rng);
  }
  c->rng = call.rng;
  return o;
}

/* ---- One position (a classifier's 1x1 convolution on a pooled vector) -------------------
 * T(o, c) = g_o (x_c - x_zp), one product a weight: nothing to sum, so the gradient is the
 * conversion and the update is the rule. The gradient takes (float)T as (float)g times the
 * float of x_c - x_zp, exact (|T| < 2^24), from xf [2 k] (xf[c] = x_c - x_zp and
 * xf[k + c] = x_zp - x_c, for negative g, whose product with +0 would be -0 where (float)T is
 * +0): two VMULs a weight. */
void tt_dsp_pointwise_weight_row(const int8_t *dy, const uint8_t *mask, int32_t co,
                                 const float *xf, int32_t k, float unit, float *dw) {
  for (int32_t o = 0; o < co; ++o, dw += k) {
    const int32_t g = tt_live(mask, o) ? dy[o] : 0;
    if (g == 0) {
      const float z = 0.0f * unit;
      for (int32_t c = 0; c < k; ++c) dw[c] = z;
      continue;
    }
    const float gf = (float)(g < 0 ? -g : g);
    const float *x = g < 0 ? xf + k : xf;
    int32_t c = 0;
    for (; c + 4 <= k; c += 4) {
      dw[c] = gf * x[c] * unit;
      dw[c + 1] = gf * x[c + 1] * unit;
      dw[c + 2] = gf * x[c + 2] * unit;
      dw[c + 3] = gf * x[c + 3] * unit;
    }
    for (; c < k; ++c) dw[c] = gf * x[c] * unit;
  }
}

int32_t tt_dsp_pointwise_weight_update_row(const int8_t *dy, const uint8_t *mask, int32_t co,
                                           int32_t begin, const int32_t *xz, int32_t k,
                                           float unit, int8_t *w, int32_t ci,
                                           const float *scales, int32_t per_channel,
                                           tt_sgd_call *c) {
  if (!tt_qas_nan_free(c->neg_lr, unit, 1.0f)) return begin;
  tt_sgd_call call = *c;
  int32_t o = begin;
  for (; o < co; ++o) {
    float scale;
    if (!run_channel(&call.rng, o, begin, 0, 0, scales, per_channel, &scale)) break;
    const int32_t g = tt_live(mask, o) ? dy[o] : 0;
    int8_t *wo = w + o * ci;
    /* T in runs of 32 on the stack: one update_run call a run (a call a block of eight
     * cost about 9 instructions a weight more) */
    for (int32_t j = 0; j < k; j += 32) {
      const int32_t nc = k - j < 32 ? k - j : 32;
      int32_t t[32];
      for (int32_t i = 0; i < nc; ++i) t[i] = g * xz[j + i];
      update_run(wo + j, t, nc, unit, scale, &call);
    }
  }
  c->rng = call.rng;
  return o;
}

/* Bias sums: SXTAB16 adds lanes 0 and 2 of a word of four channels' dy, sign-extended, to
 * two int16 lanes ([c0, c2]), and SXTAB16 ROR #8 lanes 1 and 3 ([c1, c3]), so a position of
 * eight channels is two word loads and four SXTAB16 (a mask: one byte's bits to two words
 * of byte lanes, two ANDs); two positions a loop trip halve the loop's own instructions. A
 * lane holds the sum of at most 256 positions (|sum| <= 256 * 128 = 2^15, and -2^15 is an
 * int16), then goes into the int32 sum: the portable kernel's integers. */
#define BIAS_LANE_POSITIONS 256

/* One position's eight channels x0 (c0..c3) and x1 (c4..c7) into the four lanes. */
static inline __attribute__((always_inline)) void bias_add8(uint32_t *a, uint32_t x0,
                                                            uint32_t x1) {
  a[0] = __sxtab16(a[0], x0);
  a[1] = tt_dsp_sxtab16_odd(a[1], x0);
  a[2] = __sxtab16(a[2], x1);
  a[3] = tt_dsp_sxtab16_odd(a[3], x1);
}

#if TT_DSP_ASM_ALL_REGS
/* The masked pairs of positions of bias_lanes from mask bytes (`aligned`): the same
 * operations in assembly, 14 instructions a position (gcc's C: 16.5, two spills and an ADD
 * more a pair; twelve registers). */
static inline __attribute__((always_inline)) void bias_pairs_masked(const int8_t *d,
                                                                    const int8_t *end,
                                                                    int32_t channels,
                                                                    const uint8_t *mb,
                                                                    uint32_t *a) {
  uint32_t a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3], m0, m1, x;
#define BIAS_POSITION_ASM                                                                   \
  "  ldrb %[m0], [%[mb]]\n"                                                                \
  "  add %[m0], %[tab], %[m0], lsl #3\n"                                                    \
  "  ldrd %[m0], %[m1], [%[m0]]\n"                                                          \
  "  ldr %[x], [%[d]]\n"                                                                    \
  "  and %[x], %[x], %[m0]\n"                                                               \
  "  sxtab16 %[a0], %[a0], %[x]\n"                                                          \
  "  sxtab16 %[a1], %[a1], %[x], ror #8\n"                                                  \
  "  ldr %[x], [%[d], #4]\n"                                                                \
  "  and %[x], %[x], %[m1]\n"                                                               \
  "  sxtab16 %[a2], %[a2], %[x]\n"                                                          \
  "  sxtab16 %[a3], %[a3], %[x], ror #8\n"                                                  \
  "  add %[mb], %[mb], %[ch], lsr #3\n"                                                     \
  "  add %[d], %[d], %[ch]\n"
  __asm__("1:\n" BIAS_POSITION_ASM BIAS_POSITION_ASM
          "  cmp %[d], %[end]\n"
          "  bne 1b\n"
          : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [d] "+r"(d),
            [mb] "+r"(mb), [m0] "=&r"(m0), [m1] "=&r"(m1), [x] "=&r"(x)
          : [ch] "r"(channels), [end] "r"(end), [tab] "r"(bias_mask_lanes)
          : "cc", "memory");
#undef BIAS_POSITION_ASM
  a[0] = a0, a[1] = a1, a[2] = a2, a[3] = a3;
}
#endif

/* t[j] += the sums of n positions of eight channels from d (row stride `channels`), each
 * position's eight mask bits from tt_dsp_mask_bits(mask, i, 8) (i advancing by channels),
 * or from the bytes at mb (advancing by channels / 8) when `aligned`; no mask unless
 * `masked`. */
static inline __attribute__((always_inline)) void bias_lanes(const int8_t *d, int32_t n,
                                                             int32_t channels, int masked,
                                                             int aligned, const uint8_t *mask,
                                                             int32_t i, int32_t *t) {
  uint32_t a[4] = {0, 0, 0, 0};     /* [c0, c2], [c1, c3], [c4, c6], [c5, c7] */
  const uint8_t *mb = mask + (i >> 3);
  const int32_t mstep = channels >> 3;
  const int8_t *end = d + (n & ~1) * channels;
#if TT_DSP_ASM_ALL_REGS
  if (masked && aligned && d != end) {
    bias_pairs_masked(d, end, channels, mb, a);
    mb += (n & ~1) * mstep;
    d = end;
  }
#endif
  for (; d != end; d += 2 * channels) {
    uint32_t x0 = tt_dsp_load4(d), x1 = tt_dsp_load4(d + 4);
    uint32_t y0 = tt_dsp_load4(d + channels), y1 = tt_dsp_load4(d + channels + 4);
    if (masked) {
      uint32_t bits, next;
      if (aligned) {
        bits = mb[0];
        next = mb[mstep];
        mb += 2 * mstep;
      } else {
        bits = tt_dsp_mask_bits(mask, i, 8);
        next = tt_dsp_mask_bits(mask, i + channels, 8);
        i += 2 * channels;
      }
      x0 &= bias_mask_lanes[bits][0];
      x1 &= bias_mask_lanes[bits][1];
      y0 &= bias_mask_lanes[next][0];
      y1 &= bias_mask_lanes[next][1];
    }
    bias_add8(a, x0, x1);
    bias_add8(a, y0, y1);
  }
  if (n & 1) {
    uint32_t x0 = tt_dsp_load4(d), x1 = tt_dsp_load4(d + 4);
    if (masked) {
      const uint32_t bits = aligned ? mb[0] : tt_dsp_mask_bits(mask, i, 8);
      x0 &= bias_mask_lanes[bits][0];
      x1 &= bias_mask_lanes[bits][1];
    }
    bias_add8(a, x0, x1);
  }
  t[0] += (int16_t)a[0];
  t[2] += (int16_t)(a[0] >> 16);
  t[1] += (int16_t)a[1];
  t[3] += (int16_t)(a[1] >> 16);
  t[4] += (int16_t)a[2];
  t[6] += (int16_t)(a[2] >> 16);
  t[5] += (int16_t)a[3];
  t[7] += (int16_t)(a[3] >> 16);
}

TT_DSP_ASM_FN void tt_dsp_bias_sums_8(const int8_t *dy, const uint8_t *mask, int32_t outer,
                                      int32_t channels, int32_t c0, int32_t *t) {
  const int aligned = ((channels | c0) & 7) == 0;
  for (int32_t j = 0; j < 8; ++j) t[j] = 0;
  for (int32_t p0 = 0; p0 < outer; p0 += BIAS_LANE_POSITIONS) {
    const int32_t n = outer - p0 < BIAS_LANE_POSITIONS ? outer - p0 : BIAS_LANE_POSITIONS;
    const int8_t *d = dy + p0 * channels + c0;
    const int32_t i = p0 * channels + c0;
    if (mask == 0)
      bias_lanes(d, n, channels, 0, 0, mask, i, t);
    else if (aligned)
      bias_lanes(d, n, channels, 1, 1, mask, i, t);
    else
      bias_lanes(d, n, channels, 1, 0, mask, i, t);
  }
}

#if TT_FPV5
/* The default rule (QAS, stochastic rounding, no momentum) of every block of eight biases
 * of a layer of at most BIAS_LANE_POSITIONS positions, each block's sums from bias_lanes in
 * registers straight into tt_qas_bias: no sums in memory, no lane flushes, one frame for
 * the call (about 200 instructions a block of set-up, call and spills before, at 16
 * positions a third of the block). */
static inline __attribute__((always_inline)) void bias_run(const int8_t *dy, float unit,
                                                           const uint8_t *mask, int32_t outer,
                                                           int32_t channels, int masked,
                                                           int32_t *b, const float *scales,
                                                           tt_sgd_call *call) {
  for (int32_t c0 = 0; c0 < channels; c0 += 8) {
    int32_t t[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    bias_lanes(dy + c0, outer, channels, masked, 1, mask, c0, t);
#pragma GCC unroll 8
    for (int32_t j = 0; j < 8; ++j)
      b[c0 + j] = tt_qas_bias(call, b[c0 + j], (float)t[j] * unit, scales[c0 + j]);
  }
}

static __attribute__((noinline)) TT_DSP_ASM_FN void bias_run_masked(const int8_t *dy, float unit,
                                                      const uint8_t *mask, int32_t outer,
                                                      int32_t channels, int32_t *b,
                                                      const float *scales, tt_sgd_call *c) {
  tt_sgd_call call = *c;
  bias_run(dy, unit, mask, outer, channels, 1, b, scales, &call);
  c->rng = call.rng;
}

static __attribute__((noinline)) void bias_run_dense(const int8_t *dy, float unit,
                                                     int32_t outer, int32_t channels,
                                                     int32_t *b, const float *scales,
                                                     tt_sgd_call *c) {
  tt_sgd_call call = *c;
  bias_run(dy, unit, 0, outer, channels, 0, b, scales, &call);
  c->rng = call.rng;
}

void tt_dsp_bias_update_default(const int8_t *dy, float unit, const uint8_t *mask,
                                int32_t outer, int32_t channels, int32_t *b,
                                const float *scales, tt_sgd_call *call) {
  if (outer <= BIAS_LANE_POSITIONS && mask == 0) {
    bias_run_dense(dy, unit, outer, channels, b, scales, call);
  } else if (outer <= BIAS_LANE_POSITIONS) {
    bias_run_masked(dy, unit, mask, outer, channels, b, scales, call);
  } else {
    for (int32_t c0 = 0; c0 < channels; c0 += 8) {     /* lanes flushed every 256 positions */
      int32_t t[8];
      tt_dsp_bias_sums_8(dy, mask, outer, channels, c0, t);
      for (int32_t j = 0; j < 8; ++j)
        b[c0 + j] = tt_qas_bias(call, b[c0 + j], (float)t[j] * unit, scales[c0 + j]);
    }
  }
}
#endif

#else
typedef int tt_param_grad_dsp_unused;     /* ISO C: a translation unit is not empty */
#endif
