/* Cortex-M DSP versions of the depthwise int8-gradient kernels (tt_depthwise_grad_dsp.h),
 * beside the portable ones of tt_input_grad.c and tt_param_grad.c, which call them.
 *
 * Input gradient. Each dx element sums, over the taps reading it, dy * w of its own channel:
 * the reduction runs along the taps, never along channels, so SMLAD's pairs would need the
 * taps interleaved. Instead four channels share a word and each lane is its own
 * accumulator: SMLABB and SMLATT (one 16 x 16 multiply-accumulate each) on the two halves
 * that SXTB16 makes of a word of four int8, [ch0, ch2] and [ch1, ch3]. Both operands are
 * staged so that the inner loop is loads and multiply-accumulates only:
 *  - the weights of a block of channels once per call, times their channels' multipliers
 *    (int16, as the pointwise version stages them), as those halves (two words per tap and
 *    four channels), the taps of each row grouped by stride class (kx mod stride), so that
 *    the taps reading one dx column are consecutive;
 *  - the dy rows that the current dx row reads, in a ring of ceil(kh / stride_h) rows, each
 *    dy row staged once per block: masked (a masked element is 0), as the same halves, with
 *    zero columns on both sides, so that every dx column reads all its class's taps and no
 *    range is computed per tap.
 * Per tap and four channels: two double-word loads and four multiply-accumulates (an
 * immediate offset each: the taps are unrolled for each count up to 8). The position's
 * accumulators are then stored, their magnitude tracked, or rounded (tt_round_grads; where
 * the channels take more than one block, stochastic rounding's stream jumps over each
 * position's other channels, tt_gdsp_jump, so that the draws stay dx's row-major ones).
 *
 * Weight gradient: T[ky, kx, ch] sums dy * (x - zp) over the positions. Where its staging
 * holds bands of dy rows (wg_walk, below: round 18), each channel's rows are staged apart
 * and two positions share a word, so that SMLAD sums two positions of one tap. Else, one
 * channel per lane: a dy row (masked) and, per tap row, the x row it meets (x - zp,
 * |x - zp| <= 255) are staged as halves, and each tap's run of positions is two double-word
 * loads and four multiply-accumulates per position and four channels, two positions per
 * iteration.
 *
 * Same integers as the portable code: every accumulator is the exact sum of the same terms
 * in int32 (tt_kernels.h bounds them below 2^31): dy * (w * mult) for the input gradient
 * (the portable code's mult * (the sum of dy * w), factored per term), dy * (x - zp) for the
 * weight gradient, converted once as there. */
#include <stddef.h>
#include <string.h>

#include "tt_depthwise_grad_dsp.h"

#define DW_MAX_K 8               /* kh, kw and the strides (MCUNet has 8x8 kernels) */
#define DW_MAX_GROUPS 64         /* four-channel groups per block: one position's 1 KB */
#define DW_JUMP_BYTES 520        /* sizeof(tt_gdsp_jumper), known to portable builds too */
#define DW_NONE 0xFFFFu          /* no channel in a chosen group's lane */
/* The most groups of four chosen channels the first block of the first pass takes: the
 * channels of the largest bounds, to set the largest magnitude before the others are
 * chosen (the later blocks take what the staging holds). */
#define DW_PRUNE_BLOCK 2
/* The entries of the bit-length order from which the first block takes the largest bounds
 * (largest_first): a selection, 8 x DW_PRUNE_SCAN compares at most. Measured (round 15, the
 * 84 depthwise calls of six numpy-engine steps of MobileNetV2 and MCUNet, whole-sample
 * stagings, two passes over dy): 16, 32, 64 and all entries 44.9, 113.3, 100.2 and 16.2 K
 * fewer instructions a step than none (the selection's compares against the pruning) */
#ifndef DW_PRUNE_SCAN
#define DW_PRUNE_SCAN 32
#endif
/* Where more than this many eighths of the channels stay above the first block's largest
 * magnitude, the first pass sums them all in neighbours' groups (prune_walk). Measured
 * (round 11): on the steps' 15 calls (MobileNetV2's and MCUNet's, the step's own dy and
 * masks) 6, 7 and 8 are the same instructions and 4 (a half) makes one call 11% slower:
 * there the gathered groups still cost less than all channels at up to three quarters
 * live; on mcu_grad_dsp.py's unmasked rows 7 takes 8x8/2 48 @32x32 5% fewer than 6
 * (summed pruned, not whole), and 8 makes four rows 1-6% slower (5x5/1 384 @4x4 most). */
#ifndef TT_DW_PRUNE_WHOLE_EIGHTHS
#define TT_DW_PRUNE_WHOLE_EIGHTHS 7
#endif

/* The most positions whose stream states (a word each) the input gradient keeps on its
 * stack where the staging has no room for them: an 8x8 map's 256 B. Only a second pass
 * takes them (stochastic rounding of A > 127 over several channel blocks), and its first
 * pass always ran prune_walk, whose own frame (264 B, --lean-stack, -O2) is above the same
 * walk: the states' at most 256 B go no deeper (except where prune_walk returns before
 * walk, no group fitting beside its bounds). Where the staging is on the stack too
 * (codegen's stage_on_stack: MobileNetV2's 113 KB program, 4x4 maps, 64 B) its painted
 * stack grew 8 B (5,056 -> 5,064: the frames' fixed growth), within its 120 B to spare. */
#ifndef DW_STACK_STATES
#define DW_STACK_STATES 64
#endif

/* The staging's default size, what tt_*_stage_bytes asks for at most (the DSP versions take
 * whatever they are given: a smaller staging walks more, smaller blocks of channels). */
#ifndef TT_GRAD_DSP_DEPTHWISE_STAGE_BYTES
#define TT_GRAD_DSP_DEPTHWISE_STAGE_BYTES 8192
#endif

/* A layer's operands and the geometry of its staging. */
typedef struct {
  const int8_t *dy;
  const uint8_t *mask;
  int32_t n, oh, ow, c;
  const int8_t *w;
  const int16_t *mult;
  int32_t kh, kw, sh, sw, pad_top, pad_left, h, wd;
  int32_t slots, cols, left;     /* ring rows; staged columns per row, the first `left` zero */
  int32_t count[DW_MAX_K];       /* taps of stride class q (kx = q, q + sw, ... < kw) */
  int32_t first[DW_MAX_K];       /* staged index of class q's first tap in a row of kw */
} dw_layer;

/* The layer's geometry, or 0 when it is not one this version takes. */
static int layer_of(dw_layer *a, int32_t m, const tt_window *win) {
  const tt_window v = *win;
  if (m != 1 || v.dilation_h != 1 || v.dilation_w != 1 || v.pad_top < 0 || v.pad_left < 0 ||
      a->kh < 1 || a->kw < 1 || a->kh > DW_MAX_K || a->kw > DW_MAX_K || v.stride_h < 1 ||
      v.stride_w < 1 || v.stride_h > DW_MAX_K || v.stride_w > DW_MAX_K)
    return 0;
  a->sh = v.stride_h;
  a->sw = v.stride_w;
  a->pad_top = v.pad_top;
  a->pad_left = v.pad_left;
  int32_t taps = 0;
  for (int32_t q = 0; q < a->sw; ++q) {
    a->count[q] = q < a->kw ? (a->kw - q + a->sw - 1) / a->sw : 0;
    a->first[q] = taps;
    taps += a->count[q];
  }
  /* the dy columns the dx columns read, zero columns included: [lo, hi]. A class's top
   * grows with ix: its least is at its first column, its largest at its last, both within
   * the first and the last sw columns (the middle skipped: 48 columns took 1.9 K
   * instructions a call, dwig31) */
  int32_t lo = 0, hi = a->ow - 1;
  for (int32_t ix = 0; ix < a->wd; ix = ix + 1 == a->sw && ix + 1 < a->wd - a->sw ? a->wd - a->sw : ix + 1) {
    const int32_t q = (ix + a->pad_left) % a->sw, nx = a->count[q];
    const int32_t top = (ix + a->pad_left - q) / a->sw;
    if (nx == 0) continue;
    if (top - (nx - 1) < lo) lo = top - (nx - 1);
    if (top > hi) hi = top;
  }
  a->left = -lo;
  a->cols = hi - lo + 1;
  a->slots = (a->kh + a->sh - 1) / a->sh;
  return 1;
}

/* The bytes the input gradient's staging takes for nb groups of four channels: per group
 * its staged weights and dy rows (per_group) and four int32 accumulators; where the
 * channels take more than one block, the bytes of the stream's jump tables (which the
 * kernel now keeps on its stack: the plans ask for what they asked for before). */
static int32_t input_stage_bytes(int32_t per_group, int32_t nb, int32_t groups) {
  return nb * (per_group + 16) + (nb < groups ? DW_JUMP_BYTES : 0);
}

/* The groups a staging of `bytes` holds for the kernel (at most `groups` and
 * DW_MAX_GROUPS): the jump tables are on walk's stack, not in the staging (walk). */
static int32_t kernel_stage_groups(int32_t per_group, int32_t groups, int32_t bytes) {
  int32_t nb = bytes / (per_group + 16);
  if (nb > DW_MAX_GROUPS) nb = DW_MAX_GROUPS;
  return nb > groups ? groups : nb;
}

/* The most groups a staging of `bytes` holds (at most `groups` and DW_MAX_GROUPS), as the
 * planner asks for it: with room for the jump tables where it takes more than one block.
 * The kernel no longer keeps them there (walk), but the bytes asked for stay these, so that
 * the plans do not change; the kernel takes the room for more groups. */
static int32_t input_stage_groups(int32_t per_group, int32_t groups, int32_t bytes) {
  if (kernel_stage_groups(per_group, groups, bytes) >= groups) return groups;
  const int32_t rest = bytes - DW_JUMP_BYTES;
  return rest > 0 ? rest / (per_group + 16) : 0;
}

int32_t tt_depthwise_conv2d_input_grad_s8_stage_bytes(int32_t n, int32_t oh, int32_t ow,
                                                      int32_t c, int32_t m, int32_t kh,
                                                      int32_t kw, const tt_window *win,
                                                      int32_t h, int32_t wd, int32_t limit) {
  dw_layer a = {.n = n, .oh = oh, .ow = ow, .c = c, .kh = kh, .kw = kw, .h = h, .wd = wd};
  if (!layer_of(&a, m, win)) return 0;
  const int32_t groups = (c + 3) >> 2, per_group = 8 * (a.slots * a.cols + kh * kw);
  int32_t most = TT_GRAD_DSP_DEPTHWISE_STAGE_BYTES + 16 * DW_MAX_GROUPS;
  if (limit > 0 && limit < most) most = limit;
  const int32_t nb = input_stage_groups(per_group, groups, most);
  return nb > 0 ? input_stage_bytes(per_group, nb, groups) : 0;
}

/* The weight gradient's: per group of four channels a staged dy row and an x row. */
static int weight_layer(int32_t m, int32_t ow, int32_t kh, int32_t kw, const tt_window *win) {
  const tt_window v = *win;
  /* fewer than 4 columns do not pay for the staging (an x row is staged per dy row and tap
   * row): measured 7.3 and 9.6 instructions per MAC against the portable 6.5 and 8.1 on the
   * person detector's 3x3 layers, 6.4 against 6.6 at 4 columns */
  return !(m != 1 || v.dilation_h != 1 || v.dilation_w != 1 || kh < 1 || kw < 1 ||
           kw > DW_MAX_K || v.stride_h < 1 || v.stride_w < 1 || ow < 4);
}

/* A layer of the weight gradient's channel-major walk (round 18, below) and its plan: the
 * geometry here, so that the staging query (weight_band_bytes) reads the kernel's. */
typedef struct {
  const int8_t *dy;
  const uint8_t *mask;
  const int8_t *x;
  int32_t n, oh, ow, c, h, wd, kh, kw, sh, sw, pad_top, pad_left, zp;
  int32_t dwords;                /* words of a staged dy row: ceil(ow / 2) */
  int32_t dstride;               /* words from a staged dy row to the next: dwords, or at
                                  * strides 1 xwords (zero words after each row) */
  int32_t phases;                /* stride phases with taps: min(sw, kw) */
  int32_t taps[DW_MAX_K];        /* phase q's taps (kx = q, q + sw, ...) */
  int32_t xoff[DW_MAX_K];        /* phase q's first word in a staged x row */
  int32_t xpairs[DW_MAX_K];      /* phase q's staged words (position pairs) */
  int32_t xwords;                /* words of a staged x row, every phase */
  int32_t rows, ky_step;         /* dy rows a band; tap rows a staging of x rows */
  int32_t xrows;                 /* x rows a staging: (rows - 1) sh + ky_step */
  int32_t chwords;               /* words a channel: its dy rows, then its x rows */
  int32_t block;                 /* channels a block */
} wg_layer;

static int32_t wg_chwords(const wg_layer *a, int32_t rows, int32_t ky_step) {
  return rows * a->dstride + ((rows - 1) * a->sh + ky_step) * a->xwords;
}

/* The channel-major walk's staged rows (wg_plan's, and weight_band_bytes' query): words of
 * a dy row, the stride phases and their words in an x row, a dy row's stride. */
static inline __attribute__((always_inline)) void wg_geometry(wg_layer *a) {
  a->dwords = (a->ow + 1) >> 1;
  a->phases = a->sw < a->kw ? a->sw : a->kw;
  a->xwords = 0;
  for (int32_t q = 0; q < a->phases; ++q) {
    a->taps[q] = (a->kw - q + a->sw - 1) / a->sw;
    a->xoff[q] = a->xwords;
    a->xpairs[q] = a->dwords + (a->taps[q] >> 1);
    a->xwords += a->xpairs[q];
  }
  /* at strides 1 a dy row's stride is an x row's: a band's rows are then one run of
   * pairs, the zero words after a dy row meeting the next x row's first ones */
  a->dstride = a->sw == 1 && a->sh == 1 ? a->xwords : a->dwords;
}

/* Whether the kernel takes the channel-major walk at one dy row a band (at two or more it
 * always does): where a row's kh x rows serve kh kw taps of one dy row (stride 1) or
 * kernels of 4 taps a phase; else one row leaves a stride of 2+ to the lane walk. A macro:
 * as an inline function gcc 12 allocates the kernel's registers otherwise (its object code
 * is the same as with the test written out). */
#define WG_ONE_ROW(kw, sh, sw) ((sh) == 1 || (kw) >= 4 * (sw))

/* The bytes of the channel-major walk's smallest band with every tap row in one staging
 * (wg_plan, tt_dsp_depthwise_weight_grad_s8): min(c, 4) channels' dy row and the kh x rows
 * it reads at once (ky_step kh), two dy rows a band where one would leave a stride of 2+ to
 * the lane walk (kw < 4 sw); wg_plan's words, 0 where oh has fewer rows. The lane walk's
 * bytes (all channels) can fall just short of it. The person detector's 3x3/1 8 @48x48 was
 * given 1,536 B where this is 1,600: at 1,536 the kernel already walked channel-major, but
 * one tap row a staging (ky_step 1, the dy row's words loaded three times), 3.34
 * instructions a MAC; at 1,600 ky_step 3, 3.03. Its 3x3/2 16 @48x48 was given 2,304 B where
 * this is 2,384: one dy row a band, which the kernel leaves to the lane walk (4.81), against
 * a band of two rows channel-major (4.01). */
static int32_t weight_band_bytes(int32_t oh, int32_t ow, int32_t c, int32_t kh, int32_t kw,
                                 int32_t sh, int32_t sw) {
  wg_layer a = {.oh = oh, .ow = ow, .kh = kh, .kw = kw, .sh = sh, .sw = sw};
  wg_geometry(&a);
  const int32_t rows = WG_ONE_ROW(kw, sh, sw) ? 1 : 2;
  if (rows > oh) return 0;
  return (c < 4 ? c : 4) * 4 * wg_chwords(&a, rows, kh);
}

int32_t tt_depthwise_conv2d_weight_grad_s8_stage_bytes(int32_t n, int32_t oh, int32_t ow,
                                                       int32_t c, int32_t m, int32_t h,
                                                       int32_t wd, int32_t kh, int32_t kw,
                                                       const tt_window *win, int32_t limit) {
  (void)n, (void)h;
  if (!weight_layer(m, ow, kh, kw, win)) return 0;
  const int32_t groups = (c + 3) >> 2, per_group = 8 * (ow + wd);
  const int32_t most = limit > 0 && limit < TT_GRAD_DSP_DEPTHWISE_STAGE_BYTES
                           ? limit : TT_GRAD_DSP_DEPTHWISE_STAGE_BYTES;
  int32_t nb = most / per_group;
  if (nb > groups) nb = groups;
  /* the lane walk's bytes, or the channel-major band where they fall short of it and it
   * fits: the kernel walks the band in fewer instructions */
  const int32_t band = weight_band_bytes(oh, ow, c, kh, kw, win->stride_h, win->stride_w);
  return nb > 0 && band > nb * per_group && band <= most ? band : nb * per_group;
}

#if TT_GRAD_DSP
#include "tt_dsp_common.h"

typedef char dw_jump_bytes_check[sizeof(tt_gdsp_jumper) == DW_JUMP_BYTES ? 1 : -1];

/* The groups per block the kernel walks: as few blocks as nb groups allow, as equal as they
 * can be (ceil(groups / blocks) each, the last smaller), so that stochastic rounding's jumps
 * over a position's other blocks skip the same draws in every block but the last: one jump
 * table per call, not one per block size (the last block steps its few more draws). The
 * staging asked for (tt_depthwise_conv2d_input_grad_s8_stage_bytes) stays nb's: the plans
 * do not change. */
static int32_t balanced_groups(int32_t nb, int32_t groups) {
  if (nb <= 0 || nb >= groups) return nb;
  const int32_t blocks = (groups + nb - 1) / nb;
  return (groups + blocks - 1) / blocks;
}

/* One block of channels [c0, c0 + nc), nb groups of four (the last one partial when nc is
 * not a multiple of 4), and its staging: per group a chunk of `chunk` words, the group's
 * weights [kh][kw] then its ring of dy rows [slots][cols], two words per tap or column.
 * One offset (g * chunk) moves both operands of a tap to the next group. */
typedef struct {
  int32_t c0, nc, nb, chunk;
  tt_dsp_word *stage;
  int32_t tag[DW_MAX_K];         /* the dy row in each slot, -1: none */
  const uint16_t *pick;          /* the first pass's chosen channels, four a group (lane l
                                  * of group g: pick[4 g + l], DW_NONE: none); NULL: the
                                  * nb groups from c0 */
} dw_block;

/* One tap row of a dx position: its staged dy (first tap; the next ones at decreasing
 * columns) and weights (increasing), in group 0's chunk. */
typedef struct {
  const tt_dsp_word *d, *w;
} dw_taps;

/* The `lanes` (1..4) int8 at p in a word, zeros above: no byte read past p + lanes. */
static inline uint32_t load_lanes(const int8_t *p, int32_t lanes) {
  return lanes == 4 ? tt_dsp_load4(p) : tt_dsp_load_partial(p, lanes);
}

static inline void put_halves(tt_dsp_word *dst, uint32_t v) {
  dst[0] = __sxtb16(v);
  dst[1] = tt_dsp_sxtb16_odd(v);
}

/* n words of zeros at p: a few a row (the ring's zero columns), stored inline; the empty
 * asm keeps gcc from making the loop a call of memset. */
static inline void zero_words(tt_dsp_word *p, int32_t n) {
  for (int32_t x = 0; x < n; ++x) {
    __asm__("" : "+r"(p));
    p[x] = 0;
  }
}

/* The low halves of the lanes' products x * m as one word of int16: SMULBB, SMULTT, PKHBT
 * (gcc 12 makes five instructions of the C). */
static inline uint32_t halves(uint32_t x, uint32_t m) {
  uint32_t lo, hi;
  __asm__("smulbb %0, %1, %2" : "=r"(lo) : "r"(x), "r"(m));
  __asm__("smultt %0, %1, %2" : "=r"(hi) : "r"(x), "r"(m));
  return tt_dsp_low_halves(lo, hi);
}

/* One group's staged weights (its first tap at dst) from its lanes' weights at w, tap t's
 * at w + off[t] (the staged order, taps taps). LANES: 4, or 0 for a partial group of
 * `lanes` (a constant in each compiled copy, so that the full groups' loads are single
 * words). */
static inline __attribute__((always_inline)) void stage_group(const int8_t *w,
                                                              const int32_t *off, int32_t taps,
                                                              const int32_t LANES,
                                                              int32_t lanes, uint32_t m02,
                                                              uint32_t m13, tt_dsp_word *dst) {
  _Pragma("GCC unroll 2") for (int32_t t = 0; t < taps; ++t, dst += 2) {
    const uint32_t v = LANES == 4 ? tt_dsp_load4(w + off[t]) : tt_dsp_load_partial(w + off[t], lanes);
    dst[0] = halves(__sxtb16(v), m02);
    dst[1] = halves(tt_dsp_sxtb16_odd(v), m13);
  }
}

/* The weights times their channels' multipliers, as int16 (|w| <= 128 and
 * 0 <= mult <= 2^TT_GRAD_MAX_SHIFT: in [-32768, 32512]), in SXTB16's lanes: [wm0, wm2] and
 * [wm1, wm3]. dy * wm = dy * w * mult term by term: the same integer as the portable
 * mult * (the sum of dy * w), with no multiplication per accumulator. Four channels of a tap
 * at once (a word of weights, SXTB16 and the products' low halves packed): the staging is
 * redone on every call and pass, and on MCUNet's 4x4 and 8x8 maps it was a tenth to a
 * fifth of the call at 30 instructions a tap and group, one channel at a time. The taps in
 * their staged order (each row's by stride class) are one list of offsets, so that a
 * group's taps are one loop (a loop per row and class cost 24-27 instructions a tap at
 * 3x3, 14-15 now). */
static void stage_chosen_weights(const dw_layer *a, const dw_block *blk, const int32_t *off,
                                 int32_t taps);
static void stage_weights(const dw_layer *a, dw_block *blk) {
  int32_t off[DW_MAX_K * DW_MAX_K], taps = 0;
  for (int32_t ky = 0; ky < a->kh; ++ky)
    for (int32_t q = 0; q < a->sw && q < a->kw; ++q)
      for (int32_t kx = q; kx < a->kw; kx += a->sw) off[taps++] = (ky * a->kw + kx) * a->c;
  if (blk->pick != 0) {
    stage_chosen_weights(a, blk, off, taps);
    return;
  }
  for (int32_t g = 0; g < blk->nb; ++g) {
    const int32_t cg = blk->c0 + 4 * g;
    const int32_t lanes = blk->c0 + blk->nc - cg < 4 ? blk->c0 + blk->nc - cg : 4;
    const int16_t *mu = a->mult + cg;
    /* the multipliers as the weights' halves, 0 in a missing lane (whose product is 0) */
    const uint32_t m02 = (uint16_t)mu[0] | (lanes > 2 ? (uint32_t)(uint16_t)mu[2] << 16 : 0u);
    const uint32_t m13 = (lanes > 1 ? (uint16_t)mu[1] : 0u) |
                         (lanes > 3 ? (uint32_t)(uint16_t)mu[3] << 16 : 0u);
    tt_dsp_word *dst = blk->stage + g * blk->chunk;
    if (lanes == 4)
      stage_group(a->w + cg, off, taps, 4, 4, m02, m13, dst);
    else
      stage_group(a->w + cg, off, taps, 0, lanes, m02, m13, dst);
  }
}

/* One group of stage_positions: `lanes` channels from element i (LANES: 4, a word's load, or 0
 * for a partial group; a constant in each compiled copy, so that the full groups' loop has no
 * branch on the lanes: 9 instructions a position unmasked, 12-14 before). */
static inline __attribute__((always_inline)) void stage_lanes(const int8_t *src,
                                                              const uint8_t *mask, int32_t i,
                                                              int32_t count, int32_t step,
                                                              const int32_t LANES, int32_t lanes,
                                                              int32_t zp, tt_dsp_word *o) {
  const uint32_t zz = (uint32_t)(uint16_t)zp * 0x00010001u;
#define DW_LOAD(p) (LANES == 4 ? tt_dsp_load4(p) : tt_dsp_load_partial((p), lanes))
  if (mask != 0) {
    if (LANES == 4 && (step & 7) == 0 && (i & 3) == 0) {
      /* c a multiple of 8: the four lanes' mask bits are the same half of a byte at every
       * position, step / 8 bytes apart (14 instructions a position, 19 with the bits'
       * index recomputed) */
      const uint8_t *mp = mask + (i >> 3);
      const uint32_t shift = (uint32_t)i & 7u;
      const int32_t bytes = step >> 3;
      const int8_t *p = src + i;
      for (tt_dsp_word *const end = o + 2 * count; o != end; p += step, mp += bytes, o += 2) {
        const uint32_t v = tt_dsp_load4(p) & tt_dsp_mask_lanes((uint32_t)*mp >> shift);
        tt_dsp_strd(o, __sxtb16(v), tt_dsp_sxtb16_odd(v));
      }
    } else
      for (int32_t x = 0; x < count; ++x, i += step, o += 2)
        put_halves(o, DW_LOAD(src + i) & tt_dsp_mask_lanes(tt_dsp_mask_bits(mask, i, lanes)));
  } else if (zp == 0)
    for (int32_t x = 0; x < count; ++x, i += step, o += 2) put_halves(o, DW_LOAD(src + i));
  else
    for (int32_t x = 0; x < count; ++x, i += step, o += 2) {
      const uint32_t v = DW_LOAD(src + i);
      o[0] = __ssub16(__sxtb16(v), zz);
      o[1] = __ssub16(tt_dsp_sxtb16_odd(v), zz);
    }
#undef DW_LOAD
}

/* `count` positions (element index i0 of the first one's channel c0, `step` elements
 * apart) of nc channels as halves, group g at dst + g * gstride, position x at 2 x words
 * further: dy masked (mask NULL: none), or x - zp (|x - zp| <= 255). */
static void stage_positions(const int8_t *src, const uint8_t *mask, int32_t i0, int32_t count,
                            int32_t step, int32_t nb, int32_t nc, int32_t zp,
                            tt_dsp_word *dst, int32_t gstride) {
  const int32_t full = nc >> 2;             /* groups of four lanes, then one partial */
  for (int32_t g = 0; g < full; ++g, dst += gstride)
    stage_lanes(src, mask, i0 + 4 * g, count, step, 4, 4, zp, dst);
  if (full < nb) stage_lanes(src, mask, i0 + 4 * full, count, step, 0, nc - 4 * full, zp, dst);
}

/* One lane of a chosen channel: its dy element i (0 where masked) or its weight. */
static inline int32_t chosen_dy(const dw_layer *a, int32_t i) {
  const int32_t v = a->dy[i];
  if (a->mask == 0) return v;
  /* the mask bit to the sign, then all ones or none */
  return v & ((int32_t)((uint32_t)a->mask[i >> 3] << (31 - (i & 7))) >> 31);
}

/* A dy row (element i0 of its channel 0) of the block's chosen channels into the ring at
 * dst, four a group as stage_lanes stages them: [l0, l2] and [l1, l3] as int16. A missing
 * lane (the last group's) stages lane 0's dy: its weights are staged as 0. */
static void stage_chosen_row(const dw_layer *a, const dw_block *blk, int32_t i0,
                             tt_dsp_word *dst) {
  for (int32_t g = 0; g < blk->nb; ++g, dst += blk->chunk) {
    const uint16_t *ch = blk->pick + 4 * g;
    const int32_t c0 = i0 + ch[0];
    const int32_t c1 = i0 + (ch[1] != DW_NONE ? ch[1] : ch[0]);
    const int32_t c2 = i0 + (ch[2] != DW_NONE ? ch[2] : ch[0]);
    const int32_t c3 = i0 + (ch[3] != DW_NONE ? ch[3] : ch[0]);
    tt_dsp_word *o = dst;
    for (int32_t x = 0, i = 0; x < a->ow; ++x, i += a->c, o += 2) {
      o[0] = tt_dsp_low_halves((uint32_t)chosen_dy(a, c0 + i), (uint32_t)chosen_dy(a, c2 + i));
      o[1] = tt_dsp_low_halves((uint32_t)chosen_dy(a, c1 + i), (uint32_t)chosen_dy(a, c3 + i));
    }
  }
}

/* The chosen channels' weights (stage_weights' staged order: the tap offsets off), four a
 * group: a word of their four weights gathered, then as stage_group stages a group; a
 * missing lane's multiplier is 0, so its weights are staged as 0. */
static void stage_chosen_weights(const dw_layer *a, const dw_block *blk, const int32_t *off,
                                 int32_t taps) {
  for (int32_t g = 0; g < blk->nb; ++g) {
    const uint16_t *ch = blk->pick + 4 * g;
    int32_t at[4];
    uint32_t mu[4];
    for (int32_t l = 0; l < 4; ++l) {
      at[l] = ch[l] != DW_NONE ? ch[l] : ch[0];
      mu[l] = ch[l] != DW_NONE ? (uint16_t)a->mult[ch[l]] : 0u;
    }
    const uint32_t m02 = mu[0] | mu[2] << 16, m13 = mu[1] | mu[3] << 16;
    tt_dsp_word *dst = blk->stage + g * blk->chunk;
    for (int32_t t = 0; t < taps; ++t, dst += 2) {
      const uint8_t *w = (const uint8_t *)a->w + off[t];
      const uint32_t v = (uint32_t)w[at[0]] | (uint32_t)w[at[1]] << 8 |
                         (uint32_t)w[at[2]] << 16 | (uint32_t)w[at[3]] << 24;
      dst[0] = halves(__sxtb16(v), m02);
      dst[1] = halves(tt_dsp_sxtb16_odd(v), m13);
    }
  }
}

/* dy row oy of image b into its ring slot (columns left .. left + ow - 1; the others stay
 * zero from the block's start). */
static void stage_row(const dw_layer *a, dw_block *blk, int32_t b, int32_t oy) {
  const int32_t slot = oy % a->slots;
  blk->tag[slot] = oy;
  if (blk->pick != 0) {
    stage_chosen_row(a, blk, (b * a->oh + oy) * a->ow * a->c,
                     blk->stage + 2 * (a->kh * a->kw + slot * a->cols + a->left));
    return;
  }
  stage_positions(a->dy, a->mask, (b * a->oh + oy) * a->ow * a->c + blk->c0, a->ow, a->c,
                  blk->nb, blk->nc, 0,
                  blk->stage + 2 * (a->kh * a->kw + slot * a->cols + a->left), blk->chunk);
}

/* One tap row of one group: NX taps from dp (decreasing columns) and wp (increasing). */
#define DW_ROW(dp, wp, NX)                                                                 \
  do {                                                                                     \
    _Pragma("GCC unroll 8") for (int32_t j = 0; j < (NX); ++j) {                           \
      uint32_t de, dd, we, wo;                                                             \
      tt_dsp_ldrd((dp) - 2 * j, &de, &dd);                                                \
      tt_dsp_ldrd((wp) + 2 * j, &we, &wo);                                                \
      a0 = __smlabb((int32_t)de, (int32_t)we, a0);                                         \
      a2 = __smlatt((int32_t)de, (int32_t)we, a2);                                         \
      a1 = __smlabb((int32_t)dd, (int32_t)wo, a1);                                         \
      a3 = __smlatt((int32_t)dd, (int32_t)wo, a3);                                         \
    }                                                                                      \
  } while (0)

/* One tap row of a dx position for the groups [o, end) of its accumulators (four each),
 * from dp and wp (group 0's), `chunk` words a group. FIRST: the row sets them, else it
 * adds to them. */
static inline __attribute__((always_inline)) void row_groups(const tt_dsp_word *dp,
                                                             const tt_dsp_word *wp,
                                                             int32_t chunk, int32_t *o,
                                                             int32_t *const end,
                                                             const int32_t NX, const int FIRST) {
  for (; o != end; o += 4, dp += chunk, wp += chunk) {
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    /* two LDRD and two STRD (word alignment suffices): gcc 12 pairs none of them */
    if (!FIRST) {
      tt_dsp_ldrd((tt_dsp_word *)o, (uint32_t *)&a0, (uint32_t *)&a1);
      tt_dsp_ldrd((tt_dsp_word *)o + 2, (uint32_t *)&a2, (uint32_t *)&a3);
    }
    DW_ROW(dp, wp, NX);
    tt_dsp_strd((tt_dsp_word *)o, (uint32_t)a0, (uint32_t)a1);
    tt_dsp_strd((tt_dsp_word *)o + 2, (uint32_t)a2, (uint32_t)a3);
  }
}

/* Three tap rows of three taps for the groups [o, end), the rows' weights 6 words apart (a
 * 3x3 kernel of vertical stride 1): each group's accumulators stored once, not loaded and
 * stored again per row (row_groups' 26 instructions a row and group, 8 of them loop and
 * accumulators'), the weights at immediate offsets from one pointer. */
static inline __attribute__((always_inline)) void rows_3x3(const tt_dsp_word *d0,
                                                           const tt_dsp_word *d1,
                                                           const tt_dsp_word *d2,
                                                           const tt_dsp_word *wp,
                                                           int32_t chunk, int32_t *o,
                                                           int32_t *const end) {
  for (; o != end; o += 4, d0 += chunk, d1 += chunk, d2 += chunk, wp += chunk) {
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    DW_ROW(d0, wp, 3);
    DW_ROW(d1, wp + 6, 3);
    DW_ROW(d2, wp + 12, 3);
    tt_dsp_strd((tt_dsp_word *)o, (uint32_t)a0, (uint32_t)a1);
    tt_dsp_strd((tt_dsp_word *)o + 2, (uint32_t)a2, (uint32_t)a3);
  }
}

/* The same (sums_by_group's), the rows outside, the groups inside, the accumulators in memory: a row's two pointers are loaded
 * once, not once per group, and the group loop keeps its state in registers (with the
 * groups outside it spilled: about 23 instructions a group and position against a load
 * and a store of the four accumulators per row now). A partial last group sums into
 * `part`, of which its lanes are copied. A 3x3 kernel's three rows at vertical stride 1
 * are summed at once (rows_3x3). */
static inline __attribute__((always_inline)) void sums_by_row(const dw_taps *rows, int32_t ny,
                                                       int32_t dcol, int32_t chunk, int32_t nb,
                                                       const int32_t NX, int32_t tail,
                                                       int32_t *out) {
  const int32_t full = tail == 4 ? nb : nb - 1;
  int32_t part[4];
  if (ny == 0) {                                  /* no tap reads the position */
    for (int32_t i = 0; i < 4 * (nb - 1) + tail; ++i) out[i] = 0;
    return;
  }
  if (NX == 3 && ny == 3 && rows[1].w == rows[0].w + 6 && rows[2].w == rows[1].w + 6) {
    const tt_dsp_word *const d0 = rows[0].d + dcol, *const d1 = rows[1].d + dcol,
                      *const d2 = rows[2].d + dcol;
    rows_3x3(d0, d1, d2, rows[0].w, chunk, out, out + 4 * full);
    if (full < nb) {
      const int32_t f = full * chunk;
      rows_3x3(d0 + f, d1 + f, d2 + f, rows[0].w + f, chunk, part, part + 4);
      for (int32_t i = 0; i < tail; ++i) out[4 * full + i] = part[i];
    }
    return;
  }
  const tt_dsp_word *const d_last = rows[0].d + dcol + full * chunk,
                    *const w_last = rows[0].w + full * chunk;
  row_groups(rows[0].d + dcol, rows[0].w, chunk, out, out + 4 * full, NX, 1);
  if (full < nb) row_groups(d_last, w_last, chunk, part, part + 4, NX, 1);
  for (int32_t t = 1; t < ny; ++t) {
    const tt_dsp_word *const dp = rows[t].d + dcol;
    row_groups(dp, rows[t].w, chunk, out, out + 4 * full, NX, 0);
    if (full < nb)
      row_groups(dp + full * chunk, rows[t].w + full * chunk, chunk, part, part + 4, NX, 0);
  }
  if (full < nb)
    for (int32_t i = 0; i < tail; ++i) out[4 * full + i] = part[i];
}

/* The accumulators of one dx position for the block's channels into out, from its tap
 * rows [rows, rows + ny) (their dy at column 0, the position's dcol words on), the groups
 * outside, the rows inside (the accumulators in registers). NX: the taps per row, a
 * constant of each compiled copy (4-8: fewer go by row, walk). (Unrolling the rows too,
 * for the interior of a square kernel, made gcc 12 spill.) */
static inline __attribute__((always_inline)) void sums_by_group(const dw_taps *rows, int32_t ny,
                                                       int32_t dcol, int32_t chunk, int32_t nb,
                                                       const int32_t NX, int32_t tail,
                                                       int32_t *out) {
  /* the rows at the position's column, so that one offset moves both pointers of a row to
   * the next group (a second offset a row and group was one more register than the loop
   * had: gcc 12 reloaded it from the stack, 4-5 instructions a group at 5x5) */
  dw_taps at[DW_MAX_K];
  for (int32_t t = 0; t < ny; ++t) {
    at[t].d = rows[t].d + dcol;
    at[t].w = rows[t].w;
  }
  const dw_taps *const end = at + ny;
  for (int32_t g = 0, off = 0; g < nb; ++g, off += chunk, out += 4) {
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (const dw_taps *p = at; p != end; ++p) {
      const tt_dsp_word *dp = p->d + off, *wp = p->w + off;
      /* in registers as they are: else gcc 12 folds off into each tap's address, one add
       * per load */
      __asm__("" : "+r"(dp), "+r"(wp));
      DW_ROW(dp, wp, NX);
    }
    if (NX > 3 && (g + 1 < nb || tail == 4)) {
      /* two STRD: 0.2-0.4% fewer instructions a call at 5-8 taps a row, 0.5% more at 3
       * (gcc 12 allocates the registers of the other form better there) */
      tt_dsp_strd((tt_dsp_word *)out, (uint32_t)a0, (uint32_t)a1);
      tt_dsp_strd((tt_dsp_word *)out + 2, (uint32_t)a2, (uint32_t)a3);
      continue;
    }
    out[0] = a0;
    if (g + 1 < nb || tail == 4) {
      out[1] = a1;
      out[2] = a2;
      out[3] = a3;
    } else {                              /* the block's partial last group */
      if (tail > 1) out[1] = a1;
      if (tail > 2) out[2] = a2;
    }
  }
}

/* sums where the ring holds every dy row (slots >= oh: row oy in slot oy), so that a
 * position's tap rows are at fixed steps from its first one (d0, w0): the staged dy rows
 * ds words apart (decreasing), the weights' rows ws words apart. No row's pointers are
 * loaded: 4 instructions a tap row and group of four for the row loop, 7 with them. */
static inline __attribute__((always_inline)) void sums_flat(const tt_dsp_word *d0,
                                                            const tt_dsp_word *w0, int32_t ny,
                                                            int32_t ds, int32_t ws,
                                                            int32_t chunk, int32_t nb,
                                                            const int32_t NX, int32_t tail,
                                                            int32_t *out) {
  const int32_t span = ny * ds;
  for (int32_t g = 0, off = 0; g < nb; ++g, off += chunk, out += 4) {
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    const tt_dsp_word *dp = d0 + off, *wp = w0 + off;
    const tt_dsp_word *const end = dp - span;
    for (; dp != end; dp -= ds, wp += ws) DW_ROW(dp, wp, NX);
    if (g + 1 < nb || tail == 4) {
      tt_dsp_strd((tt_dsp_word *)out, (uint32_t)a0, (uint32_t)a1);
      tt_dsp_strd((tt_dsp_word *)out + 2, (uint32_t)a2, (uint32_t)a3);
    } else {                              /* the block's partial last group */
      out[0] = a0;
      if (tail > 1) out[1] = a1;
      if (tail > 2) out[2] = a2;
    }
  }
}

typedef void (*sums_fn)(const dw_taps *rows, int32_t ny, int32_t dcol, int32_t chunk,
                        int32_t nb, int32_t tail, int32_t *out);
#define DW_GROUP_SUMS(NX)                                                                   \
  static __attribute__((noinline)) void sums##NX(const dw_taps *rows, int32_t ny,           \
                                                 int32_t dcol, int32_t chunk, int32_t nb,   \
                                                 int32_t tail, int32_t *out) {              \
    sums_by_group(rows, ny, dcol, chunk, nb, NX, tail, out);                                \
  }
#define DW_SUMS(NX)                                                                         \
  static __attribute__((noinline)) void rows##NX(const dw_taps *rows, int32_t ny,           \
                                                 int32_t dcol, int32_t chunk, int32_t nb,   \
                                                 int32_t tail, int32_t *out) {              \
    sums_by_row(rows, ny, dcol, chunk, nb, NX, tail, out);                                  \
  }
DW_SUMS(0)
DW_SUMS(1)
DW_SUMS(2)
DW_SUMS(3)
DW_GROUP_SUMS(4)
DW_GROUP_SUMS(5)
DW_GROUP_SUMS(6)
DW_GROUP_SUMS(7)
DW_GROUP_SUMS(8)

typedef void (*flat_fn)(const tt_dsp_word *d0, const tt_dsp_word *w0, int32_t ny, int32_t ds,
                        int32_t ws, int32_t chunk, int32_t nb, int32_t tail, int32_t *out);
#define DW_FLAT(NX)                                                                         \
  static __attribute__((noinline)) void flat##NX(const tt_dsp_word *d0,                    \
                                                 const tt_dsp_word *w0, int32_t ny,        \
                                                 int32_t ds, int32_t ws, int32_t chunk,     \
                                                 int32_t nb, int32_t tail, int32_t *out) {  \
    sums_flat(d0, w0, ny, ds, ws, chunk, nb, NX, tail, out);                                \
  }
DW_FLAT(0)
DW_FLAT(1)
DW_FLAT(2)
DW_FLAT(3)
DW_FLAT(4)
DW_FLAT(5)
DW_FLAT(6)
DW_FLAT(7)
DW_FLAT(8)

/* The first pass's channels where it need not sum them all (prune_walk): each channel's
 * bound on its accumulators' magnitude, the channels of nonzero bound in decreasing order
 * of its bit length, the next one to consider, the most groups of four the next block
 * takes and the later ones, and room for a block's channels. Where the staging is too
 * small for the bounds and the order (6 bytes a channel), `code` holds each channel's
 * bound in a byte (bound_code) and no order: the channels are taken zone by zone (a
 * zone: the codes of one exponent, the largest first), each zone a scan of the channels
 * from `at`. */
typedef struct {
  const uint32_t *bound;
  const uint16_t *order;
  int32_t n, next, size, rest;
  uint16_t *pick;
  const uint8_t *code;
  int32_t zone, at;
} dw_pruning;

/* A bound in a byte, rounded up (so still a bound, at most 1/8 above): below 16 itself,
 * else t << e with t in 8..15, code 8 e + t. Exact for bounds up to 0xF0000000 (code 239;
 * above it code 240's t << e overflows); the kernels' bounds are at most 2^28 (a kernel of
 * at most 8x8 taps, multipliers at most 256: code 208). The codes are in the bounds'
 * order, and code >> 3 is the zone: one exponent. */
static inline uint32_t bound_code(uint32_t b) {
  if (b < 16) return b;
  int32_t e = 28 - __builtin_clz(b);                    /* bit length - 4 */
  uint32_t t = b >> e;
  if (b & ((1u << e) - 1u)) ++t;
  if (t == 16) t = 8, ++e;
  return 8u * (uint32_t)e + t;
}

/* The bound a code stands for (at least the bound it was made of). */
static inline uint32_t code_bound(uint32_t code) {
  return code < 16 ? code : (8u + (code & 7u)) << ((code >> 3) - 1u);
}

/* The next channels of the compact pruning whose coded bound exceeds top, at most `most`,
 * into pick; returns how many. */
static int32_t pick_coded(dw_pruning *pr, int32_t c, uint32_t top, int32_t most,
                          uint16_t *pick) {
  const uint8_t *const code = pr->code;
  int32_t k = 0;
  while (k < most && pr->zone >= 0) {
    /* no channel of this zone or a lower one can raise top: none left */
    if (code_bound(8u * (uint32_t)pr->zone + 7u) <= top) {
      pr->zone = -1;
      break;
    }
    const uint32_t z = (uint32_t)pr->zone;
    int32_t ch = pr->at;
    for (; ch < c && k < most; ++ch) {
      const uint32_t v = code[ch];
      if ((v >> 3) == z && code_bound(v) > top) pick[k++] = (uint16_t)ch;
    }
    pr->at = ch;
    if (ch == c) {
      pr->at = 0;
      --pr->zone;
    }
  }
  return k;
}

/* The walk over the positions [p0, p1) of a layer that layer_of took, nb groups a block
 * (the staging's, from stage_mem, 8-aligned, 16 + per_group bytes a group): keeps, finds the largest
 * magnitude from *amax or rounds as tt_dsp_depthwise_input_grad_s8 says. pr: the blocks
 * are the next channels of pr whose bound exceeds the largest magnitude so far, four a
 * group (no keep, no r); NULL: every group, in blocks from channel 0. `states` (NULL: none;
 * else p1 - p0 words) records each position's stream after a block's draws, so that the
 * next block starts from it: only the first block jumps over a position's other draws. */
static void walk(const dw_layer *ap, int32_t nb, void *stage_mem, int32_t p0, int32_t p1,
                 const tt_keep *keep, uint32_t *amax, tt_rounder *r, int8_t *dx,
                 dw_pruning *pr, uint32_t *states) {
  const dw_layer a = *ap;
  const int32_t n = a.n, oh = a.oh, ow = a.ow, c = a.c, kh = a.kh, kw = a.kw, h = a.h,
                wd = a.wd;
  const int32_t groups = (c + 3) >> 2;
  const int32_t per_group = 8 * (a.slots * a.cols + kh * kw);     /* staged bytes */
  /* stochastic rounding block by block: the stream jumps over each position's other
   * channels (tt_gdsp_jumper), whose tables take the staging's last bytes */
  const int draws = r != 0 && r->stochastic && !r->exact && nb < groups;

  static const sums_fn sums_of[DW_MAX_K + 1] = {0, 0, 0, 0, sums4, sums5, sums6, sums7, sums8};
  static const sums_fn rows_of[4] = {rows0, rows1, rows2, rows3};
  static const flat_fn flat_of[DW_MAX_K + 1] = {flat0, flat1, flat2, flat3, flat4,
                                                 flat5, flat6, flat7, flat8};
  /* every dy row has its own slot: the tap rows at fixed steps (sums_flat) */
  const int flat = a.slots >= oh;
  const int32_t ds = 2 * a.cols, ws = 2 * a.sh * kw;
  /* the staging: the accumulators of a position's block, then the block's groups */
  int32_t *acc = (int32_t *)stage_mem;
  tt_dsp_word *stage = (tt_dsp_word *)(void *)((char *)stage_mem + 16 * nb);
  uint32_t top = amax != 0 ? *amax : 0;
  tt_tap_run ty;
  tt_tap_steps(a.sh, 1, &ty);
  /* the jump tables on the stack, not in the staging: the staging's 520 bytes are two to
   * four more groups a block where it is small (the 113 KB program gives MobileNetV2's
   * 336-channel layers 984-2,376 B: 2-8 groups of 232 B); the kernel's deepest frames
   * (about 2.1 KB with them) stay below the pointwise input gradient's (staged_walk,
   * 3.7 KB) unless the caller holds a staging on its stack (codegen's stage_on_stack,
   * which counts them) */
  tt_gdsp_jumper jumper;
  tt_gdsp_jumper *skip = draws ? &jumper : 0;
  /* every block but the last skips the c - 4 nb draws of a position's other blocks (the
   * blocks are equal but for the last, balanced_groups), the last `extra` more */
  const int32_t blocks = (groups + nb - 1) / nb;
  /* with the states only the first block jumps (it is whole: 4 nb channels) */
  if (!draws) states = 0;
  if (draws) tt_gdsp_jump_init(skip, c - 4 * nb, (p1 - p0 - 1) * (states != 0 ? 1 : blocks));
  uint32_t start = draws ? r->rng : 0u;        /* the stream at (first position, c0) */
  for (int32_t g0 = 0; pr != 0 || g0 < groups; g0 += nb) {
    dw_block blk;
    blk.pick = 0;
    blk.c0 = 4 * g0;
    blk.nb = groups - g0 < nb ? groups - g0 : nb;
    blk.nc = c - blk.c0 < 4 * blk.nb ? c - blk.c0 : 4 * blk.nb;
    if (pr != 0) {
      /* the next channels that may raise the largest magnitude; the last group's missing
       * lanes sum to 0 (their weights are staged as 0), so every group is taken whole */
      uint16_t *const pick = pr->pick;
      int32_t k = 0;
      if (pr->code != 0)
        k = pick_coded(pr, c, top, 4 * pr->size, pick);
      else
        for (; pr->next < pr->n && k < 4 * pr->size; ++pr->next)
          if (pr->bound[pr->order[pr->next]] > top) pick[k++] = pr->order[pr->next];
      if (k == 0) break;
      for (int32_t l = k; l & 3; ++l) pick[l] = DW_NONE;
      pr->size = pr->rest;
      blk.pick = pick;
      blk.c0 = 0;
      blk.nb = (k + 3) >> 2;
      blk.nc = 4 * blk.nb;
    }
    const int32_t extra = 4 * nb - blk.nc;
    int first = 1;
    if (draws && states == 0) {
      r->rng = start;
      start = tt_gdsp_skip(start, blk.nc);
    }
    blk.chunk = per_group / 4;
    blk.stage = stage;
    /* the ring's zero columns (stage_row writes the others, stage_weights the weights) */
    for (int32_t g = 0; g < blk.nb; ++g)
      for (int32_t s = 0; s < a.slots; ++s) {
        tt_dsp_word *ring = stage + g * blk.chunk + 2 * (kh * kw + s * a.cols);
        zero_words(ring, 2 * a.left);
        zero_words(ring + 2 * (a.left + ow), 2 * (a.cols - a.left - ow));
      }
    stage_weights(&a, &blk);
    const int32_t tail = blk.nc - 4 * (blk.nb - 1);
    /* each stride class's sums: by row where that was measured faster (a row of at most
     * two taps, the stride-2 layers: 5-17% fewer instructions a call; of three taps at any
     * group count since a 3x3 kernel's three rows are summed at once, rows_3x3: round 14
     * measured 0.1-1.4% fewer a call than by group at 1-2 groups, dw_input_grad.py's
     * calls at the staging asked for); elsewhere the accumulators in
     * registers pay more (4-7 taps a row hide a row's pointers) */
    sums_fn by_class[DW_MAX_K];
    for (int32_t q = 0; q < a.sw; ++q) {
      const int32_t nx = a.count[q];
      by_class[q] = nx <= 3 ? rows_of[nx] : sums_of[nx];
    }
    for (int32_t b = 0; b < n; ++b) {
      for (int32_t s = 0; s < a.slots; ++s) blk.tag[s] = -1;
      for (int32_t iy = 0; iy < h; ++iy) {
        const int32_t row = (b * h + iy) * wd;
        /* a row outside the positions asked stages nothing: the ring's tags stage the dy
         * rows a later row reads when it comes (a second pass starts rows down the map and
         * would otherwise stage every dy row above it for nothing) */
        if (row + wd <= p0 || row >= p1) continue;
        tt_taps_reading(iy, a.sh, 1, a.pad_top, kh, oh, &ty);
        dw_taps base[DW_MAX_K];      /* column 0 of the row's dy, tap 0 of its weights */
        for (int32_t t = 0; t < ty.n; ++t) {
          const int32_t ky = ty.k0 + t * ty.kstep, oy = ty.o0 - t * ty.ostep;
          const int32_t slot = oy % a.slots;
          if (blk.tag[slot] != oy) stage_row(&a, &blk, b, oy);
          base[t].d = stage + 2 * (kh * kw + slot * a.cols);
          base[t].w = stage + 2 * ky * kw;
        }
        /* flat: the first tap row's (dilation 1: the rows' oy step by -1, ky by sh) */
        const tt_dsp_word *const d_row = stage + 2 * (kh * kw + ty.o0 * a.cols);
        const tt_dsp_word *const w_row = stage + 2 * ty.k0 * kw;
        /* the row's positions asked for, and the first one's stride class q and tap 0's
         * column; the next ones' step along (no division a position) */
        const int32_t ix0 = p0 > row ? p0 - row : 0, ix1 = p1 - row < wd ? p1 - row : wd;
        int32_t q = (ix0 + a.pad_left) % a.sw;
        int32_t col = (ix0 + a.pad_left - q) / a.sw + a.left;
        /* the tap rows of each class (their dy at column 0: the sums add the column), once
         * a dx row for the first two classes (at stride 1 or 2 every position's), for a
         * later class when q comes to it, not at every position (about 10 instructions a
         * tap row) */
        dw_taps rows[3][DW_MAX_K];     /* [2]: a later class's */
        int32_t rows_q = -1;
        if (!flat)
          for (int32_t k = 0; k < 2 && k < a.sw; ++k)
            for (int32_t t = 0; t < ty.n; ++t) {
              rows[k][t].d = base[t].d;
              rows[k][t].w = base[t].w + 2 * a.first[k];
            }
        for (int32_t ix = ix0; ix < ix1; ++ix) {
          const int32_t at = (row + ix) * c + blk.c0;
          int32_t *const kept = tt_kept(keep, row + ix, c);
          int32_t *out = kept != 0 ? kept + blk.c0 : acc;
          if (flat) {
            flat_of[a.count[q]](d_row + 2 * col, w_row + 2 * a.first[q], ty.n, ds, ws,
                                blk.chunk, blk.nb, tail, out);
          } else {
            const dw_taps *taps = rows[q];
            if (q > 1) {
              if (rows_q != q)
                for (int32_t t = 0; t < ty.n; ++t) {
                  rows[2][t].d = base[t].d;
                  rows[2][t].w = base[t].w + 2 * a.first[q];
                }
              rows_q = q;
              taps = rows[2];
            }
            by_class[q](taps, ty.n, 2 * col, blk.chunk, blk.nb, tail, out);
          }
          if (++q == a.sw) q = 0, ++col;
          if (r != 0) {
            if (states != 0) {
              if (blk.c0 != 0) r->rng = states[row + ix - p0];
              else if (!first) r->rng = tt_gdsp_jump(skip, r->rng);
            } else if (draws && !first) {
              r->rng = tt_gdsp_jump(skip, r->rng);
              if (extra > 0) r->rng = tt_gdsp_skip(r->rng, extra);
            }
            first = 0;
            tt_round_grads(r, acc, blk.nc, dx + at);
            if (states != 0) states[row + ix - p0] = r->rng;
          } else if (amax != 0) {
            top = tt_largest_magnitude(out, blk.nc, top);
          }
        }
      }
    }
  }
  if (amax != 0) *amax = top;
}

/* The range of `lanes` dy lanes of one word (hi: each lane's largest, lo: smallest). */
#define DW_RANGE(v, hi, lo)                                                                \
  do {                                                                                     \
    (void)__ssub8((v), (hi));                                                              \
    (hi) = __sel((v), (hi));                                                               \
    (void)__ssub8((lo), (v));                                                              \
    (lo) = __sel((v), (lo));                                                               \
  } while (0)

/* The largest magnitude of lane l of a range (hi, lo): max(hi_l, -lo_l), 0 for none. */
static inline uint32_t range_most(uint32_t hi, uint32_t lo, int32_t l) {
  const int32_t top = (int8_t)(hi >> 8 * l), bottom = (int8_t)(lo >> 8 * l);
  const int32_t most = top > -bottom ? top : -bottom;
  return (uint32_t)(most > 0 ? most : 0);
}

/* The range (*hi, *lo) of four channels' masked dy over `positions` positions, c elements
 * and c / 8 mask bytes apart (c a multiple of 8): p the first one's dy, mp its mask byte,
 * of which the bits from `shift` (0 or 4) are the four channels'. */
static inline void masked_range4(const int8_t *p, const uint8_t *mp, uint32_t shift,
                                 int32_t positions, int32_t c, uint32_t *hi_out,
                                 uint32_t *lo_out) {
  uint32_t hi = 0x80808080u, lo = 0x7F7F7F7Fu;
  const int8_t *const stop = p + positions * c;
  const int32_t bytes = c >> 3;
  for (; p != stop; p += c, mp += bytes) {
    const uint32_t v = tt_dsp_load4(p) & tt_dsp_mask_lanes((uint32_t)*mp >> shift);
    DW_RANGE(v, hi, lo);
  }
  *hi_out = hi;
  *lo_out = lo;
}

/* Each channel's of [ch0, ch1) (ch0 a multiple of 8) bound on the magnitude of its accumulators
 * at any position, into out[ch - ch0]:
 * mult * (the largest sum of |w| over one stride class's taps) * (the largest |dy|, masked;
 * so >= |dy| of every term), at most 2^8 * (64 * 128) * 128 = 2^28. The largest |dy| eight channels at a time
 * where they share their mask bits' byte (c a multiple of 8: 10 instructions a position
 * and four channels, 19 four at a time), else four. */
static void channel_bounds(const dw_layer *a, int32_t ch0, int32_t ch1, uint32_t *out) {
  const int32_t end = a->n * a->oh * a->ow * a->c;
  int32_t cg = ch0;
  if ((a->c & 7) == 0)
    for (; cg < ch1; cg += 8) {
      uint32_t hi0 = 0x80808080u, lo0 = 0x7F7F7F7Fu, hi1 = hi0, lo1 = lo0;
      const int8_t *p = a->dy + cg;
      if (a->mask != 0) {
        /* each half of the mask byte in its own walk: the eight channels' walk spilled
         * (33 instructions a position, 14 + 16 now: gcc 12 still reloads the mask table's
         * address, and in the second walk the step, each iteration) */
        masked_range4(p, a->mask + (cg >> 3), 0, end / a->c, a->c, &hi0, &lo0);
        masked_range4(p + 4, a->mask + (cg >> 3), 4, end / a->c, a->c, &hi1, &lo1);
      } else
        for (int32_t i = cg; i < end; i += a->c, p += a->c) {
          const uint32_t v0 = tt_dsp_load4(p), v1 = tt_dsp_load4(p + 4);
          DW_RANGE(v0, hi0, lo0);
          DW_RANGE(v1, hi1, lo1);
        }
      for (int32_t l = 0; l < 4; ++l) {
        out[cg + l - ch0] = range_most(hi0, lo0, l);
        out[cg + 4 + l - ch0] = range_most(hi1, lo1, l);
      }
    }
  for (; cg < ch1; cg += 4) {
    const int32_t lanes = ch1 - cg < 4 ? ch1 - cg : 4;
    uint32_t hi = 0x80808080u, lo = 0x7F7F7F7Fu;
    const int8_t *p = a->dy + cg;
    for (int32_t i = cg; i < end; i += a->c, p += a->c) {
      uint32_t v = lanes == 4 ? tt_dsp_load4(p) : tt_dsp_load_partial(p, lanes);
      if (a->mask != 0) v &= tt_dsp_mask_lanes(tt_dsp_mask_bits(a->mask, i, lanes));
      DW_RANGE(v, hi, lo);
    }
    for (int32_t l = 0; l < lanes; ++l) out[cg + l - ch0] = range_most(hi, lo, l);
  }
  /* a dx element's taps are one stride class's (ky mod sh, kx mod sw), so the sum of |w|
   * is the largest over the classes (at stride 2 a quarter of the kernel's). Four channels
   * a word: |w| as a byte (0 - w wraps -128 to 128), summed as halves (at most 64 * 128):
   * 8 instructions a tap and four channels, 36 one by one */
  const int32_t full = ch0 + ((ch1 - ch0) & ~3);
  for (int32_t ch = ch0; ch < full; ch += 4) {
    uint32_t most_even = 0, most_odd = 0;            /* [ch, ch + 2], [ch + 1, ch + 3] */
    if (a->sh == 1 && a->sw == 1) {
      /* one class: the taps in one run (the loops by class cost 2-3% of a 3x3 call) */
      const int8_t *p = a->w + ch;
      for (int32_t t = 0; t < a->kh * a->kw; ++t, p += a->c) {
        const uint32_t v = tt_dsp_load4(p);
        const uint32_t neg = __ssub8(0u, v);
        const uint32_t mag = __sel(neg, v);
        most_even = __uxtab16(most_even, mag);
        most_odd = __uxtab16(most_odd, mag >> 8);
      }
    } else
    for (int32_t qy = 0; qy < a->sh && qy < a->kh; ++qy)
      for (int32_t qx = 0; qx < a->sw && qx < a->kw; ++qx) {
        uint32_t even = 0, odd = 0;
        for (int32_t ky = qy; ky < a->kh; ky += a->sh)
          for (int32_t kx = qx; kx < a->kw; kx += a->sw) {
            const uint32_t v = tt_dsp_load4(a->w + (ky * a->kw + kx) * a->c + ch);
            const uint32_t neg = __ssub8(0u, v);      /* GE: the lanes where w <= 0 */
            const uint32_t mag = __sel(neg, v);
            even = __uxtab16(even, mag);
            odd = __uxtab16(odd, mag >> 8);
          }
        (void)__usub16(even, most_even);
        most_even = __sel(even, most_even);
        (void)__usub16(odd, most_odd);
        most_odd = __sel(odd, most_odd);
      }
    out[ch - ch0] *= (uint32_t)a->mult[ch] * (most_even & 0xFFFFu);
    out[ch + 1 - ch0] *= (uint32_t)a->mult[ch + 1] * (most_odd & 0xFFFFu);
    out[ch + 2 - ch0] *= (uint32_t)a->mult[ch + 2] * (most_even >> 16);
    out[ch + 3 - ch0] *= (uint32_t)a->mult[ch + 3] * (most_odd >> 16);
  }
  for (int32_t ch = full; ch < ch1; ++ch) {
    uint32_t most = 0;
    for (int32_t qy = 0; qy < a->sh && qy < a->kh; ++qy)
      for (int32_t qx = 0; qx < a->sw && qx < a->kw; ++qx) {
        uint32_t sum = 0;
        for (int32_t ky = qy; ky < a->kh; ky += a->sh)
          for (int32_t kx = qx; kx < a->kw; kx += a->sw) {
            const int32_t wt = a->w[(ky * a->kw + kx) * a->c + ch];
            sum += (uint32_t)(wt < 0 ? -wt : wt);
          }
        if (sum > most) most = sum;
      }
    out[ch - ch0] *= (uint32_t)a->mult[ch] * most;
  }
}
#undef DW_RANGE

/* The channels of nonzero bound into order, by decreasing bit length of the bound (a
 * counting sort: the largest first set the largest magnitude early, so that more of the
 * others fall under it); returns how many. */
static int32_t order_channels(const uint32_t *bound, int32_t c, uint16_t *order) {
  int32_t at[33] = {0};
  for (int32_t ch = 0; ch < c; ++ch)
    if (bound[ch] != 0) ++at[__builtin_clz(bound[ch])];
  int32_t n = 0;
  for (int32_t z = 0; z < 33; ++z) {                  /* z leading zeros: the largest first */
    const int32_t k = at[z];
    at[z] = n;
    n += k;
  }
  for (int32_t ch = 0; ch < c; ++ch)
    if (bound[ch] != 0) order[at[__builtin_clz(bound[ch])]++] = (uint16_t)ch;
  return n;
}

/* The first `k` entries of `order` (n of them in all, by decreasing bit length) made the k
 * largest bounds of the first DW_PRUNE_SCAN entries, largest first (a selection): the bit
 * lengths leave the first block to the lowest channel numbers of the top lengths, and the
 * 8 largest bounds hold the layer's largest magnitude more often (measured on the steps'
 * 48 MobileNetV2 calls: 39 against 27), so that the later blocks prune more. Any order of
 * the chosen channels gives the same maximum: only the work changes. */
static void largest_first(const uint32_t *bound, uint16_t *order, int32_t n, int32_t k) {
  const int32_t m = n < DW_PRUNE_SCAN ? n : DW_PRUNE_SCAN;
  for (int32_t i = 0; i < k && i < m; ++i) {
    int32_t best = i;
    uint32_t most = bound[order[i]];
    for (int32_t j = i + 1; j < m; ++j)
      if (bound[order[j]] > most) most = bound[order[j]], best = j;
    const uint16_t t = order[i];
    order[i] = order[best];
    order[best] = t;
  }
}

/* The channels' bounds (channel_bounds) as codes (bound_code), 64 channels at a time
 * through 256 bytes of stack in a frame of its own (gone before the walk, whose frames
 * set the kernel's depth); returns the highest zone, -1 where every bound is 0. */
static __attribute__((noinline)) int32_t channel_codes(const dw_layer *a, uint8_t *code) {
  uint32_t part[64];
  uint32_t most = 0;
  for (int32_t ch0 = 0; ch0 < a->c; ch0 += 64) {
    const int32_t ch1 = a->c - ch0 < 64 ? a->c : ch0 + 64;
    channel_bounds(a, ch0, ch1, part);
    for (int32_t ch = ch0; ch < ch1; ++ch) {
      const uint32_t v = bound_code(part[ch - ch0]);
      code[ch] = (uint8_t)v;
      if (v > most) most = v;
    }
  }
  return most == 0 ? -1 : (int32_t)(most >> 3);
}

/* The first pass over positions [p0, p1), none of them kept: only the largest magnitude is
 * wanted, and a channel whose bound does not exceed the largest so far cannot raise it, so
 * its sums are skipped (the same maximum: every skipped accumulator is at most its bound).
 * The chosen channels are summed four a group, gathered from any place (on MobileNetV2's
 * and MCUNet's layers a quarter to a third of the channels as measured, where the groups of
 * four neighbours would need half to all of them: one large channel keeps its group).
 * The bounds, the order (or the codes) and a block's channels take the staging's last
 * bytes, its blocks fewer groups; 0 when not one group fits beside them (nothing done), or when most
 * channels are left after the first block (*top has its largest magnitude). */
static __attribute__((noinline)) int prune_walk(const dw_layer *a, int32_t nb,
                                                void *stage_mem, int32_t stage_bytes,
                                                int32_t p0, int32_t p1, uint32_t *top) {
  const int32_t per_group = 8 * (a->slots * a->cols + a->kh * a->kw);
  /* per group: its accumulators, its staging and its four channels' numbers; per channel
   * 6 bytes (the bounds and the order) or 1 (the codes), 8-aligned. The blocks here take
   * at most `rest` groups, so the accumulators need no more */
  const int32_t sorted = (stage_bytes - ((6 * a->c + 7) & ~7)) / (per_group + 24);
  int32_t rest = (stage_bytes - ((a->c + 7) & ~7)) / (per_group + 24);
  if (rest > nb) rest = nb;
  /* the codes where the sorted tables leave less than half the groups they do: the
   * scans by zone and the bounds' rounding cost less than blocks half as large (the
   * 113 KB program's 336-channel layers at 984-2,376 B: none to one group sorted, 2-7
   * coded) */
  const int coded = 2 * sorted < rest;
  if (!coded) rest = sorted < nb ? sorted : nb;
  if (rest < 1) return 0;
  const int32_t used = rest * (16 + per_group);               /* 8-aligned */
  dw_pruning pr = {0, 0, 0, 0, rest < DW_PRUNE_BLOCK ? rest : DW_PRUNE_BLOCK, 0, 0, 0, 0, 0};
  uint32_t *bound = 0;
  uint16_t *order = 0;
  if (coded) {
    uint8_t *const code = (uint8_t *)stage_mem + used;
    pr.code = code;
    pr.pick = (uint16_t *)(void *)(code + ((a->c + 7) & ~7));
    pr.zone = channel_codes(a, code);
  } else {
    bound = (uint32_t *)(void *)((char *)stage_mem + used);
    order = (uint16_t *)(void *)(bound + a->c);
    channel_bounds(a, 0, a->c, bound);
    pr.bound = bound;
    pr.order = order;
    pr.n = order_channels(bound, a->c, order);
    largest_first(bound, order, pr.n, 4 * pr.size);
    pr.pick = order + a->c;
  }
  walk(a, rest, stage_mem, p0, p1, 0, top, 0, 0, &pr, 0);    /* one block */
  /* where most channels stay above the largest magnitude of the first block's (MobileNetV2's
   * 4x4/2 layer: 13.5 instructions a MAC pruned, 12.2 whole), all of them are summed in
   * neighbours' groups, which cost less than the chosen groups' gathering */
  int32_t live = 0;
  if (coded) {
    for (int32_t ch = 0; ch < a->c; ++ch) {
      const uint32_t v = pr.code[ch];
      const int32_t z = (int32_t)(v >> 3);
      live += (z < pr.zone || (z == pr.zone && ch >= pr.at)) && code_bound(v) > *top;
    }
  } else
    for (int32_t k = pr.next; k < pr.n; ++k) live += bound[order[k]] > *top;
  if (8 * live > TT_DW_PRUNE_WHOLE_EIGHTHS * a->c) return 0;
  pr.size = pr.rest = rest;
  walk(a, rest, stage_mem, p0, p1, 0, top, 0, 0, &pr, 0);
  return 1;
}

/* ---- 3x3 of stride 1 with every position kept: two taps a multiply -------------------
 * Where a call keeps the accumulators of all its positions (the one pass's scratch, or a
 * first pass's kept prefix) of a 3x3 kernel at stride 1, the sums go by channel and dx row,
 * not by position and group of four (rows_3x3: one 16 x 16 multiply a MAC, 68 instructions
 * a group and position for 36 MACs): a channel's dy rows are staged as int16 with adjacent
 * columns in a word, P_m = [D[2m], D[2m + 1]], and its flipped filter's taps (F[k] =
 * w[ky][2 - k] * mult) as F01 = [F0, F1] and F12 = [F1, F2] per tap row, so that one SMLAD
 * sums two taps of one channel. Two dx columns a step read the same two words of each tap
 * row: column 2m sums P_m . F01 (SMUAD) + D[2m + 2] F2 (SMLABT), column 2m + 1
 * D[2m + 1] F0 (SMULTB) + P_{m + 1} . F12 (SMLAD): per tap row one LDRD and four multiplies
 * for 6 MACs, with the two stores 19 instructions for 18 MACs. The same exact int32 sums
 * (tt_kernels.h bounds them below 2^31), in another order. */

/* The arguments of tt_dsp_dw3_input_pairs_* (offsets for the assembly). A
 * channel's three staged dy rows are interleaved word by word, triplet m = words 3m .. 3m + 2
 * = word m of ring slots 0, 1, 2 (dy row oy in slot oy mod 3), so that one pointer with
 * immediate offsets reads all three and a register is free for the largest magnitude; the
 * weights come in the slots' order (this dx row's rotation of the tap rows). The channels'
 * triplets follow each other: after a channel's pairs its pointer is one triplet before
 * the next channel's (an odd row's staged one column over: its first column reads
 * triplets 0 and 1, its pairs from triplet 1). */
typedef struct {
  const tt_dsp_word *w;      /*  0: channel 0's six weight words, slot by slot; the next +40 B */
  const tt_dsp_word *d;      /*  4: channel 0's triplet 0 */
  int32_t *out;              /*  8: channel 0's accumulator at dx column 0 */
  int32_t stride;            /* 12: bytes from a column's accumulators to the next's (4 c) */
  uintptr_t run_end;         /* 16: out + c wd: where r12's run ends, as an integer (on the
                                last row a pointer would be past the kept buffer) */
  int32_t entry;             /* 20: (4 - pairs mod 4) mod 4, the first of 4 steps run, + 4 if
                                wd is odd (the first column before) */
  int32_t out_step;          /* 24: bytes from a channel's out after its columns to the next's */
  int32_t channels;          /* 28: > 0 */
  uint32_t top;              /* 32: in: a largest magnitude; out: with every sum stored */
} dw3_pairs_args;
typedef char dw3_pairs_layout[offsetof(dw3_pairs_args, top) == 32 ? 1 : -1];

/* A pair's two sums (r9, r10) of the nine taps, the staged dy at r6 (moved on 12 bytes) and
 * the weights in r0-r5: both pair forms below. */
#define DW3_PAIR_SUMS                                                                       \
  "  ldrd r11, lr, [r6], #12\n"                                                             \
  "  smuad r9, r11, r0\n"                                                                   \
  "  smultb r10, r11, r0\n"                                                                 \
  "  smlad r9, lr, r2, r9\n"                                                                \
  "  smlatb r10, lr, r2, r10\n"                                                             \
  "  ldrd r11, lr, [r6, #-4]\n"                                                             \
  "  smlad r9, r11, r4, r9\n"                                                               \
  "  smlatb r10, r11, r4, r10\n"                                                            \
  "  smlabt r9, lr, r1, r9\n"                                                               \
  "  smlad r10, lr, r1, r10\n"                                                              \
  "  ldrd r11, lr, [r6, #4]\n"                                                              \
  "  smlabt r9, r11, r3, r9\n"                                                              \
  "  smlad r10, r11, r3, r10\n"                                                             \
  "  smlabt r9, lr, r5, r9\n"                                                               \
  "  smlad r10, lr, r5, r10\n"

/* Registers: r0-r5 a channel's F01 and F12 of slots 0-2 (one LDM), r6 its triplets, r7 the
 * largest magnitude so far (T), r8 the column stride, r9 and r10 the two columns' sums,
 * r11 and lr the loaded words, r12 the output. The frame: [sp] the weights' pointer, +4
 * where r12's run of this channel ends (+4 a channel: no pointer arithmetic a channel),
 * +8 the entry's address (an odd row's: its first column's), +12 out_step, +16 the output's
 * end (channel `channels`' column 0: r12 after the last channel), +20 an odd row's pairs'
 * entry, +24 the arguments. The pairs run four a loop, entered at
 * `entry`, so that the loop's test is once per four pairs. The largest magnitude:
 * v ^ (v >> 31) is |v| or |v| - 1, so where the OR of the two columns' is below T neither
 * raises T (5 instructions a pair, against about 9 for a scan of the stored pair:
 * tt_largest_magnitude's 4.5 an element); else the exact magnitudes (.Ltt_dw3_magnitudes,
 * called from the pair's stub 4N:, which returns to 5N:, so that the common case is one
 * branch not taken, not an IT and a BL). */
#define DW3_PAIR(N)                                                                         \
  DW3_PAIR_SUMS                                                                             \
  "  eor r11, r9, r9, asr #31\n"                                                            \
  "  eor lr, r10, r10, asr #31\n"                                                           \
  "  orr r11, r11, lr\n"                                                                    \
  "  cmp r11, r7\n"                                                                         \
  "  bhs 4" N "f\n"                                                                         \
  "5" N ":\n"                                                                               \
  "  str r9, [r12]\n"                                                                       \
  "  str r10, [r12, r8]\n"                                                                  \
  "  add r12, r12, r8, lsl #1\n"
/* The looping copy's pair (dwig31): the largest magnitude's test by the sticky Q flag. With
 * R = 0x7FFFFFFF - T in r7, QADD(v, R) saturates exactly where v > T and QSUB(R, v) where
 * v < -T (neither can saturate the other way: R >= 0, |v| < 2^31), so these four
 * instructions set Q where a sum's magnitude exceeds T, and the channel's row is rescanned
 * only then (60:, after its last pair: the flag read once a channel and row); a pair 22
 * instructions where the test by the OR of v ^ (v >> 31) took 23. */
#define DW3_QPAIR(N)                                                                        \
  DW3_PAIR_SUMS                                                                             \
  "  qadd r11, r9, r7\n"                                                                    \
  "  qsub r11, r7, r9\n"                                                                    \
  "  qadd r11, r10, r7\n"                                                                   \
  "  qsub r11, r7, r10\n"                                                                   \
  "  str r9, [r12]\n"                                                                       \
  "  str r10, [r12, r8]\n"                                                                  \
  "  add r12, r12, r8, lsl #1\n"
/* An odd row's first column (its rows staged one column over, dw3_stage_row's L + 1: pair
 * 0's second column only), entered through the table at 9 (entries 4-7), then the pairs'
 * entry ([sp, #20]): one copy of the pairs for both parities (the odd copy, its single
 * column at the row's end, was 548 B). */
#define DW3_ODD_FIRST                                                                       \
  "8:\n"                                                                                    \
  "  ldrd r11, lr, [r6], #12\n"                                                             \
  "  smultb r10, r11, r0\n"                                                                 \
  "  smlatb r10, lr, r2, r10\n"                                                             \
  "  ldrd r11, lr, [r6, #-4]\n"                                                             \
  "  smlatb r10, r11, r4, r10\n"                                                            \
  "  smlad r10, lr, r1, r10\n"                                                              \
  "  ldrd r11, lr, [r6, #4]\n"                                                              \
  "  smlad r10, r11, r3, r10\n"                                                             \
  "  smlad r10, lr, r5, r10\n"                                                              \
  "  qadd r11, r10, r7\n"                                                                   \
  "  qsub r11, r7, r10\n"                                                                   \
  "  str r10, [r12]\n"                                                                      \
  "  add r12, r12, r8\n"                                                                    \
  "  ldr pc, [sp, #20]\n"
/* LOOP 1: any number of pairs, four a loop; 0: three or four pairs (wd 6 or 8, even:
 * walk3's small maps), no loop: a channel and row without the loop's test and its end's
 * step (5 instructions of the 16 of a channel's and row's set-up). The entry: the address
 * of the first of the four steps run (bit 0 set: Thumb), from the table at 9 (entries 4-7
 * of the looping copy: an odd row's first column, DW3_ODD_ENTRY's): once a call, so that a
 * channel and row enters with one LDR to the PC (TBB's two before). The exact magnitudes
 * (.Ltt_dw3_magnitudes) are one copy for the two functions. */
#define DW3_PAIRS_FN(NAME, LOOP, ODD_ENTRY, MAGNITUDES)                                     \
  __asm__(TT_DSP_ASM_ENTRY(NAME)                                                            \
          "  sub sp, sp, #32\n"                                                             \
          "1:\n"                                                                            \
          "  str r0, [sp, #24]\n"                                                           \
          "  ldm r0, {r1-r9}\n"                                                             \
          DW3_IF(LOOP, "  sub r11, r5, r3\n"                                                \
                       "  orr r11, r11, r6, lsr #2\n"                                       \
                       "  str r11, [sp, #28]\n")                                            \
          "  add r8, r3, r8, lsl #2\n"                                                      \
          "  adr.w r10, 9f\n"                                                               \
          "  ldrb r11, [r10, r6]\n"                                                         \
          "  add r6, r10, r11, lsl #1\n"                                                    \
          "  add r6, r6, #1\n"                                                              \
          "  stm sp, {r1, r5, r6, r7, r8}\n"                                                \
          "  mov r12, r3\n"                                                                 \
          "  mov r8, r4\n"                                                                  \
          DW3_SEL(LOOP, "  mvn r7, r9\n"                                                    \
                        "  eor r7, r7, #0x80000000\n"                                       \
                        "  movs r11, #0\n"                                                  \
                        "  msr APSR_nzcvq, r11\n",                                          \
                        "  mov r7, r9\n")                                                   \
          "  mov r6, r2\n"                                                                  \
          "3:\n"                                                                            \
          "  ldr r11, [sp]\n"                                                               \
          "  ldm r11, {r0-r5}\n"                                                            \
          "  add r11, r11, #40\n"                                                           \
          "  str r11, [sp]\n"                                                               \
          "  ldr pc, [sp, #8]\n"                                                            \
          "9:\n"                                                                            \
          "  .byte (10f - 9b) / 2, (11f - 9b) / 2, (12f - 9b) / 2, (13f - 9b) / 2\n"        \
          DW3_IF(LOOP, "  .byte (8f - 9b) / 2, (8f - 9b) / 2, (8f - 9b) / 2\n"             \
                       "  .byte (8f - 9b) / 2\n")                                           \
          "  .p2align 1\n"                                                                  \
          DW3_SEL(LOOP,                                                                     \
                  "10:\n" DW3_QPAIR("1") "11:\n" DW3_QPAIR("2") "12:\n" DW3_QPAIR("3")      \
                  "13:\n" DW3_QPAIR("4"),                                                   \
                  "10:\n" DW3_PAIR("1") "11:\n" DW3_PAIR("2") "12:\n" DW3_PAIR("3")         \
                  "13:\n" DW3_PAIR("4"))                                                    \
          DW3_IF(LOOP, "  ldr r11, [sp, #4]\n"                                              \
                       "  cmp r12, r11\n"                                                   \
                       "  bne 10b\n"                                                        \
                       "  add r11, r11, #4\n"                                               \
                       "  str r11, [sp, #4]\n"                                              \
                       "  mrs r11, apsr\n"                                                  \
                       "  tst r11, #0x08000000\n"                                           \
                       "  bne 60f\n"                                                        \
                       "61:\n")                                                             \
          "  add r6, r6, #12\n"                                                             \
          "  ldr r11, [sp, #12]\n"                                                          \
          "  add r12, r12, r11\n"                                                           \
          "  ldr r11, [sp, #16]\n"                                                          \
          "  cmp r12, r11\n"                                                                \
          "  bne 3b\n"                                                                      \
          DW3_IF(LOOP, "  mvn r7, r7\n"                                                     \
                       "  eor r7, r7, #0x80000000\n")                                       \
          "  ldr r11, [sp, #24]\n"                                                          \
          "  str r7, [r11, #32]\n"                                                          \
          "  add sp, sp, #32\n"                                                             \
          "  pop {r4-r11, pc}\n"                                                            \
          DW3_SEL(LOOP, DW3_ODD_FIRST DW3_RESCAN,                                           \
                  "41:\n  bl .Ltt_dw3_magnitudes\n  b 51b\n"                                \
                  "42:\n  bl .Ltt_dw3_magnitudes\n  b 52b\n"                                \
                  "43:\n  bl .Ltt_dw3_magnitudes\n  b 53b\n"                                \
                  "44:\n  bl .Ltt_dw3_magnitudes\n  b 54b\n")                               \
          MAGNITUDES                                                                        \
          ODD_ENTRY                                                                         \
          "  .size " #NAME ", . - " #NAME "\n"                                              \
          "  .text\n");                                                                     \
  void NAME(dw3_pairs_args *a);
#define DW3_MAGNITUDES                                                                      \
  ".Ltt_dw3_magnitudes:\n"                                                                  \
  "  eor r11, r9, r9, asr #31\n"                                                            \
  "  sub r11, r11, r9, asr #31\n"                                                           \
  "  cmp r11, r7\n"                                                                         \
  "  it hi\n"                                                                               \
  "  movhi r7, r11\n"                                                                       \
  "  eor r11, r10, r10, asr #31\n"                                                          \
  "  sub r11, r11, r10, asr #31\n"                                                          \
  "  cmp r11, r7\n"                                                                         \
  "  it hi\n"                                                                               \
  "  movhi r7, r11\n"                                                                       \
  "  bx lr\n"
/* An odd row's entry into the even copy (entry 4 + e: its first column, whose end takes
 * the pairs' entry e from [sp, #20]); the even rows' set-up as it was (no instruction more
 * a call: walk3 calls once a dx row and block). */
#define DW3_ODD_ENTRY                                                                       \
  "  .global tt_dsp_dw3_input_pairs_odd\n"                                                  \
  "  .type tt_dsp_dw3_input_pairs_odd, %function\n"                                         \
  "  .thumb_func\n"                                                                         \
  "tt_dsp_dw3_input_pairs_odd:\n"                                                           \
  "  push {r4-r11, lr}\n"                                                                   \
  "  sub sp, sp, #32\n"                                                                     \
  "  ldr r1, [r0, #20]\n"                                                                   \
  "  adr.w r2, 9b\n"                                                                        \
  "  add r3, r2, r1\n"                                                                      \
  "  ldrb r3, [r3, #-4]\n"                                                                  \
  "  add r3, r2, r3, lsl #1\n"                                                              \
  "  add r3, r3, #1\n"                                                                      \
  "  str r3, [sp, #20]\n"                                                                   \
  "  b 1b\n"
/* The looping copy's rescan of a channel's row whose Q flag is set (its sums at r12 - wd c4
 * .. r12 by r8: [sp, #28] holds wd c4, plus 1 where wd is odd): T from R, the exact
 * magnitudes (two at a time, exact only where the OR of v ^ (v >> 31) is not below T: 5
 * instructions a sum where one by one took 10), R from T, Q cleared. Rare once T has
 * grown: where a magnitude exceeds all before it (8 @48x48: 18 of 384 rows). */
#define DW3_RESCAN                                                                          \
  "60:\n"                                                                                   \
  "  ldr r11, [sp, #28]\n"                                                                  \
  "  bic r0, r11, #3\n"                                                                     \
  "  sub r9, r12, r0\n"                                                                     \
  "  mvn r10, r7\n"                                                                         \
  "  eor r10, r10, #0x80000000\n"                                                           \
  "  tst r11, #1\n"                                                                         \
  "  beq 62f\n"                                                                             \
  "  ldr r0, [r9]\n"                                                                        \
  "  add r9, r9, r8\n"                                                                      \
  "  bl 65f\n"                                                                              \
  "62:\n"                                                                                   \
  "  cmp r9, r12\n"                                                                         \
  "  beq 64f\n"                                                                             \
  "  ldr r0, [r9]\n"                                                                        \
  "  ldr r1, [r9, r8]\n"                                                                    \
  "  add r9, r9, r8, lsl #1\n"                                                              \
  "  eor r2, r0, r0, asr #31\n"                                                             \
  "  eor r3, r1, r1, asr #31\n"                                                             \
  "  orr r2, r2, r3\n"                                                                      \
  "  cmp r2, r10\n"                                                                         \
  "  blo 62b\n"                                                                             \
  "  bl 65f\n"                                                                              \
  "  mov r0, r1\n"                                                                          \
  "  bl 65f\n"                                                                              \
  "  b 62b\n"                                                                               \
  "65:\n"                                                                                   \
  "  cmp r0, #0\n"                                                                          \
  "  it lt\n"                                                                               \
  "  rsblt r0, r0, #0\n"                                                                    \
  "  cmp r0, r10\n"                                                                         \
  "  it hi\n"                                                                               \
  "  movhi r10, r0\n"                                                                       \
  "  bx lr\n"                                                                               \
  "64:\n"                                                                                   \
  "  mvn r7, r10\n"                                                                         \
  "  eor r7, r7, #0x80000000\n"                                                             \
  "  movs r11, #0\n"                                                                        \
  "  msr APSR_nzcvq, r11\n"                                                                 \
  "  b 61b\n"
#define DW3_IF(C, S) DW3_IF_##C(S)
#define DW3_IF_1(S) S
#define DW3_IF_0(S)
#define DW3_SEL(C, A, B) DW3_SEL_##C(A, B)
#define DW3_SEL_1(A, B) A
#define DW3_SEL_0(A, B) B
DW3_PAIRS_FN(tt_dsp_dw3_input_pairs_even, 1, DW3_ODD_ENTRY, "")
DW3_PAIRS_FN(tt_dsp_dw3_input_pairs_34, 0, "", DW3_MAGNITUDES)
void tt_dsp_dw3_input_pairs_odd(dw3_pairs_args *a);
#undef DW3_PAIR
#undef DW3_QPAIR
#undef DW3_RESCAN
#undef DW3_SEL
#undef DW3_SEL_1
#undef DW3_SEL_0
#undef DW3_ODD_FIRST
#undef DW3_ODD_ENTRY
#undef DW3_PAIRS_FN
#undef DW3_MAGNITUDES
#undef DW3_IF
#undef DW3_IF_1
#undef DW3_IF_0

/* The fewest channels a block whose dy rows walk3 stages word by word (dw3_stage_word) on
 * a map wider than 16, below which group by group (dw3_stage_group). Measured
 * (mcu_grad_dsp.py, one pass): word by word 8 @48x48 3.84 and 16 @64x64 3.30 a MAC against
 * 3.12 and 2.96, 32 @24x24 3.22 against 3.16; 64 @12x12 3.30 against 3.48, 144 @8x8 (a
 * block of 32 after 112) 3.39 against 3.49. */
#ifndef DW3_WORDWISE
#define DW3_WORDWISE 48
#endif

/* The narrowest dx rows walk3 takes (at least 2: one column pair). At 4x4 four columns
 * share a channel's set-up (weights, the run's end, the steps, about 20 instructions, and
 * the staging's): measured unmasked 3x3/1 576 @4x4 one pass 1.7% fewer than the walk by
 * position, but MobileNetV2's whole-sample step (masked 336 @4x4 calls) 17.3 K more. */
#ifndef DW3_MIN_WIDTH
#define DW3_MIN_WIDTH 6
#endif

/* A narrower width walk3 takes too: 3 (the person detector's 3x3/1 256 @3x3, one pass to
 * nearest 4.67 -> 3.84 a MAC, dwig30c: the walk by position paid a group's tap rows and
 * pointers per position, and the caller's scan after it). Not 4 and 5, still the walk's:
 * round 29 measured MobileNetV2's masked 336 @4x4 calls 17.3 K more by walk3; 3 columns
 * are one odd column and one pair a channel and row, the odd entry's. */
#ifndef DW3_NARROW_WIDTH
#define DW3_NARROW_WIDTH 3
#endif

/* Words a staged dy row of walk3 takes: dx column ix reads D[ix .. ix + 2], and the pairs
 * read a word past the last column's: (wd + 1) / 2 + 1 (wd even: pairs + 1, odd: + 2). */
static inline int32_t dw3_words(int32_t wd) { return (wd + 1) / 2 + 1; }

/* Staged bytes a channel of walk3: its ten weight words (dw3_stage_weights) and three dy
 * rows. */
static inline int32_t dw3_channel_bytes(int32_t wd) { return 40 + 12 * dw3_words(wd); }

/* Word m of channel rows o, o + words, ... (`lanes` of them) from the dy words v0 (column
 * 2m - L) and v1 (the next column): [D[2m], D[2m + 1]] per channel (SXTB16, PKHBT/PKHTB). */
static inline __attribute__((always_inline)) void dw3_put(tt_dsp_word *o, int32_t words,
                                                           uint32_t v0, uint32_t v1,
                                                           const int32_t lanes) {
  const uint32_t e0 = __sxtb16(v0), e1 = __sxtb16(v1);
  o[0] = tt_dsp_low_halves(e0, e1);
  if (lanes > 2) o[2 * words] = tt_dsp_high_halves(e0, e1);
  if (lanes > 1) {
    const uint32_t q0 = tt_dsp_sxtb16_odd(v0), q1 = tt_dsp_sxtb16_odd(v1);
    o[words] = tt_dsp_low_halves(q0, q1);
    if (lanes > 3) o[3 * words] = tt_dsp_high_halves(q0, q1);
  }
}

/* The `lanes` dy at element i, masked (mask NULL: none). */
static inline __attribute__((always_inline)) uint32_t dw3_dy(const int8_t *dy,
                                                              const uint8_t *mask, int32_t i,
                                                              const int32_t LANES,
                                                              int32_t lanes) {
  const uint32_t v = LANES == 4 ? tt_dsp_load4(dy + i) : tt_dsp_load_partial(dy + i, lanes);
  return mask == 0 ? v : v & tt_dsp_mask_lanes(tt_dsp_mask_bits(mask, i, LANES == 4 ? 4 : lanes));
}

/* Word m of every channel's row of dw3_stage_row: the columns at elements i (channel 0 of
 * the block; IN0 0: outside, zeros) and i + c (IN1), the groups inner (their source words
 * 4 bytes apart, their rows 4 words apart): the loop's set-up once a word, not once a
 * group (a group's four row pointers were about 35 instructions a channel and row). */
static inline __attribute__((always_inline)) void dw3_stage_word(const dw_layer *a, int32_t i,
                                                                  int32_t nc, int32_t words,
                                                                  tt_dsp_word *o, const int IN0,
                                                                  const int IN1) {
  const int8_t *const dy = a->dy;
  const uint8_t *const mask = a->mask;
  const int32_t c = a->c, full = nc >> 2;
  tt_dsp_word *q = o, *const end = o + 4 * words * full;
  if (mask == 0) {
    const int8_t *p = dy + i;
    for (; q != end; q += 4 * words, p += 4)
      dw3_put(q, words, IN0 ? tt_dsp_load4(p) : 0u, IN1 ? tt_dsp_load4(p + c) : 0u, 4);
  } else if ((c & 7) == 0 && (i & 3) == 0) {
    /* a group's four mask bits are half of one byte (stage_lanes') */
    for (int32_t j = i; q != end; q += 4 * words, j += 4) {
      const uint32_t v0 = IN0 ? tt_dsp_load4(dy + j) &
                                    tt_dsp_mask_lanes((uint32_t)mask[j >> 3] >> (j & 7)) : 0u;
      const uint32_t v1 = IN1 ? tt_dsp_load4(dy + j + c) &
                                    tt_dsp_mask_lanes((uint32_t)mask[(j + c) >> 3] >> (j & 7)) : 0u;
      dw3_put(q, words, v0, v1, 4);
    }
  } else
    for (int32_t j = i; q != end; q += 4 * words, j += 4)
      dw3_put(q, words, IN0 ? dw3_dy(dy, mask, j, 4, 4) : 0u, IN1 ? dw3_dy(dy, mask, j + c, 4, 4) : 0u,
              4);
  const int32_t lanes = nc - 4 * full;
  if (lanes > 0) {
    const int32_t j = i + 4 * full;
    dw3_put(q, words, IN0 ? dw3_dy(dy, mask, j, 0, lanes) : 0u,
            IN1 ? dw3_dy(dy, mask, j + c, 0, lanes) : 0u, lanes);
  }
}

/* One group of dw3_stage_row by columns (few channels: dw3_stage_word's set-up a word
 * would be over two to four groups): `lanes` channels, column 0's first at element i0,
 * LANES 4 or 0 (a partial group: a constant of each compiled copy). The words whose two
 * columns lie inside, [m0, m1), load without tests; in the others one column at most is
 * inside (the first's second, the last's first). The layer's fields in locals: the stores
 * (may_alias words) would make gcc reload them at every word. */
static inline __attribute__((always_inline)) void dw3_stage_group(
    const dw_layer *a, int32_t i0, int32_t words, int32_t cs, int32_t ws, int32_t L, int32_t m0,
    int32_t m1, tt_dsp_word *o, const int32_t LANES, int32_t lanes) {
  const int8_t *const dy = a->dy;
  const uint8_t *const mask = a->mask;
  const int32_t c = a->c, ow = a->ow;
  const int32_t n = LANES == 4 ? 4 : lanes;
  for (int32_t m = 0; m < m0; ++m) {
    const int32_t x = 2 * m - L + 1;
    dw3_put(o + m * ws, cs, 0u, x >= 0 && x < ow ? dw3_dy(dy, mask, i0 + x * c, LANES, n) : 0u,
            n);
  }
  for (int32_t m = m1; m < words; ++m) {
    const int32_t x = 2 * m - L;
    dw3_put(o + m * ws, cs, x >= 0 && x < ow ? dw3_dy(dy, mask, i0 + x * c, LANES, n) : 0u, 0u,
            n);
  }
  int32_t i = i0 + (2 * m0 - L) * c;
  if (LANES == 4 && mask == 0) {
    const int8_t *p = dy + i;
    for (int32_t m = m0; m < m1; ++m, p += 2 * c)
      dw3_put(o + m * ws, cs, tt_dsp_load4(p), tt_dsp_load4(p + c), 4);
  } else
    for (int32_t m = m0; m < m1; ++m, i += 2 * c)
      dw3_put(o + m * ws, cs, dw3_dy(dy, mask, i, LANES, n), dw3_dy(dy, mask, i + c, LANES, n),
              n);
}

/* dw3_stage_group of `groups` whole groups of an unmasked row (walk3's and walk2's calls
 * without a mask: the benchmark's one pass): the same words, from a function of few
 * arguments: its word loop 18 instructions where dw3_stage_group's took 20 (a spilled
 * stride), and the set-up and edge words less spilled (dwig30c's profile of 3x3/1 8
 * @48x48, one group a call: about 219 a call and group before, 224 with dw3_stage_row's
 * part after, of which the row's about 80; 370,560 -> 366,520 instructions a call). */
static __attribute__((noinline)) void dw3_stage_plain(const int8_t *row, int32_t c, int32_t ow,
                                                      int32_t words, int32_t cs, int32_t ws,
                                                      int32_t L, int32_t m0, int32_t m1,
                                                      int32_t groups, tt_dsp_word *o) {
  for (int32_t g = 0; g < groups; ++g, row += 4, o += 4 * cs) {
    for (int32_t m = 0; m < m0; ++m) {            /* column 2m - L outside, the next maybe */
      const int32_t x = 2 * m - L + 1;
      dw3_put(o + m * ws, cs, 0u, x >= 0 && x < ow ? tt_dsp_load4(row + x * c) : 0u, 4);
    }
    for (int32_t m = m1; m < words; ++m) {        /* column 2m - L + 1 outside */
      const int32_t x = 2 * m - L;
      dw3_put(o + m * ws, cs, x >= 0 && x < ow ? tt_dsp_load4(row + x * c) : 0u, 0u, 4);
    }
    const int8_t *p = row + (2 * m0 - L) * c;
    for (tt_dsp_word *q = o + m0 * ws, *const end = o + m1 * ws; q != end; q += ws, p += 2 * c)
      dw3_put(q, cs, tt_dsp_load4(p), tt_dsp_load4(p + c), 4);
  }
}

/* dw3_stage_word of a row's edge words (at most two a row, and the words outside the map):
 * one copy with in0 and in1 at run time instead of three specialized ones, about 1.5 KB
 * less code for a call or two a row. */
static __attribute__((noinline)) void dw3_stage_edge(const dw_layer *a, int32_t i, int32_t nc,
                                                     int32_t words, tt_dsp_word *o, int in0,
                                                     int in1) {
  if (a->mask == 0 && nc >= 4) {
    /* unmasked: a column outside reads a zero word in place (its pointer does not move),
     * no test a group (about 22 instructions a group with the tests, 16 without) */
    static const int8_t zeros[4] = {0, 0, 0, 0};
    const int8_t *p0 = in0 ? a->dy + i : zeros, *p1 = in1 ? a->dy + i + a->c : zeros;
    const int32_t s0 = in0 ? 4 : 0, s1 = in1 ? 4 : 0, full = nc >> 2;
    tt_dsp_word *q = o, *const end = o + 4 * words * full;
    if (in0 | in1)
      for (; q != end; q += 4 * words, p0 += s0, p1 += s1)
        dw3_put(q, words, tt_dsp_load4(p0), tt_dsp_load4(p1), 4);
    else /* both columns outside (walk3's odd 3-column rows, word 0): zeros, 7 a group, not 21 */
      for (; q != end; q += 4 * words) q[0] = q[words] = q[2 * words] = q[3 * words] = 0;
    const int32_t lanes = nc - 4 * full;
    if (lanes > 0)
      dw3_put(q, words, in0 ? tt_dsp_load_partial(p0, lanes) : 0u,
              in1 ? tt_dsp_load_partial(p1, lanes) : 0u, lanes);
    return;
  }
  dw3_stage_word(a, i, nc, words, o, in0, in1);
}

/* dy row oy of image b (zeros where oy is outside the map) for channels [ch0, ch0 + nc)
 * into a slot at o, word m of channel k at o + (k words + m) ws (ws 1: walk2's rows one
 * after the other; 3: walk3's, interleaved): word m holds dy columns 2m - L and 2m - L + 1
 * (zero outside [0, ow)), masked. */
static __attribute__((noinline)) void dw3_stage_row(const dw_layer *a, int32_t b, int32_t oy,
                                                    int32_t ch0, int32_t nc, int32_t words,
                                                    int32_t ws, int32_t L, tt_dsp_word *o) {
  const int32_t cs = words * ws;
  if (oy < 0 || oy >= a->oh) {
    /* the slot's words are one stride apart: two a step (walk3's top and bottom rows were
     * 5 instructions a word one by one) */
    tt_dsp_word *p = o, *const end = o + nc * cs;
    if ((nc * words) & 1) *p = 0, p += ws;
    for (; p != end; p += 2 * ws) {
      __asm__("" : "+r"(p));
      p[0] = 0;
      p[ws] = 0;
    }
    return;
  }
  const int32_t c = a->c, ow = a->ow, base = (b * a->oh + oy) * ow * c + ch0;
  if (nc < DW3_WORDWISE && a->wd > 16) {
    const int32_t m0 = (L + 1) >> 1;
    int32_t m1 = (ow + L) >> 1;
    if (m1 > words) m1 = words;
    if (m1 < m0) m1 = m0;
    const int32_t full = nc >> 2;
    if (a->mask == 0 && full > 0) {
      dw3_stage_plain(a->dy + base, c, ow, words, cs, ws, L, m0, m1, full, o);
      o += 4 * cs * full;
    } else
      for (int32_t g = 0; g < full; ++g, o += 4 * cs)
        dw3_stage_group(a, base + 4 * g, words, cs, ws, L, m0, m1, o, 4, 4);
    if (4 * full < nc)
      dw3_stage_group(a, base + 4 * full, words, cs, ws, L, m0, m1, o, 0, nc - 4 * full);
    return;
  }
  for (int32_t m = 0; m < words; ++m) {
    const int32_t x = 2 * m - L, i = base + x * c;
    const int in0 = x >= 0 && x < ow, in1 = x + 1 >= 0 && x + 1 < ow;
    if (in0 && in1)
      dw3_stage_word(a, i, nc, cs, o + m * ws, 1, 1);
    else
      dw3_stage_edge(a, i, nc, cs, o + m * ws, in0, in1);
  }
}

/* The weights of channels [ch0, ch0 + nc) times their multipliers (int16, as
 * stage_weights'), ten words a channel: F01 = [F0, F1] and F12 = [F1, F2] (F[k] = w[ky][2 -
 * k] * mult) of tap rows 2, 1, 0, 2, 1. Slot s of a dx row with (iy + pad_top) mod 3 = q
 * holds dy row oy = q - s (mod 3), whose tap row is ky = q - s (mod 3): the six words from
 * word 2 (2 - q) are the slots' weights in order. */
static void dw3_stage_weights(const dw_layer *a, int32_t ch0, int32_t nc, tt_dsp_word *o) {
  const int32_t c = a->c, c2 = 2 * a->c;
  const int8_t *w0 = a->w + ch0, *w1 = w0 + 3 * c, *w2 = w0 + 6 * c;
  const int16_t *m = a->mult + ch0;
  /* Written out: gcc spilled the nine products and three row pointers, 49 instructions a
   * channel; here 31 and the loop's test. Per tap row: w[c] (x), w[2c] (y), then w[0] (z),
   * whose load steps the row's pointer; SMULBB by mu gives the low half of
   * (uint32_t)w * mu, all a word of halves keeps; y = [F0, F1] and then x = [F1, F2]
   * packed in place; tap rows 2 and 1 stored twice (words 0-1 and 6-7, 2-3 and 8-9). */
  for (tt_dsp_word *const end = o + 10 * nc; o != end;) {
    uint32_t mu, x, y, z;
    __asm__ volatile(
        "  ldrsh %[mu], [%[m]], #2\n"
        "  ldrsb %[x], [%[w2], %[c]]\n"
        "  ldrsb %[y], [%[w2], %[c2]]\n"
        "  ldrsb %[z], [%[w2]], #1\n"
        "  smulbb %[x], %[x], %[mu]\n"
        "  smulbb %[y], %[y], %[mu]\n"
        "  smulbb %[z], %[z], %[mu]\n"
        "  pkhbt %[y], %[y], %[x], lsl #16\n"
        "  pkhbt %[x], %[x], %[z], lsl #16\n"
        "  strd %[y], %[x], [%[o], #24]\n"
        "  strd %[y], %[x], [%[o]]\n"
        "  ldrsb %[x], [%[w1], %[c]]\n"
        "  ldrsb %[y], [%[w1], %[c2]]\n"
        "  ldrsb %[z], [%[w1]], #1\n"
        "  smulbb %[x], %[x], %[mu]\n"
        "  smulbb %[y], %[y], %[mu]\n"
        "  smulbb %[z], %[z], %[mu]\n"
        "  pkhbt %[y], %[y], %[x], lsl #16\n"
        "  pkhbt %[x], %[x], %[z], lsl #16\n"
        "  strd %[y], %[x], [%[o], #32]\n"
        "  strd %[y], %[x], [%[o], #8]\n"
        "  ldrsb %[x], [%[w0], %[c]]\n"
        "  ldrsb %[y], [%[w0], %[c2]]\n"
        "  ldrsb %[z], [%[w0]], #1\n"
        "  smulbb %[x], %[x], %[mu]\n"
        "  smulbb %[y], %[y], %[mu]\n"
        "  smulbb %[z], %[z], %[mu]\n"
        "  pkhbt %[y], %[y], %[x], lsl #16\n"
        "  pkhbt %[x], %[x], %[z], lsl #16\n"
        "  strd %[y], %[x], [%[o], #16]\n"
        "  add %[o], %[o], #40\n"
        : [mu] "=&r"(mu), [x] "=&r"(x), [y] "=&r"(y), [z] "=&r"(z), [m] "+r"(m), [w0] "+r"(w0),
          [w1] "+r"(w1), [w2] "+r"(w2), [o] "+r"(o)
        : [c] "r"(c), [c2] "r"(c2)
        : "memory");
  }
}

/* The channels a block of the walks by rows takes of the `fit` its staging holds: all c,
 * else whole groups of four (a partial group stages its lanes one by one); < 1: none fit. */
static inline int32_t block_channels(int32_t fit, int32_t c) {
  return fit >= c ? c : fit > 4 ? fit & ~3 : fit;
}

/* The whole dx rows [r0, r1) but `cut` (-1: none) of a 3x3 layer of stride 1 (pad_left <=
 * 2, wd >= 2), all of their positions kept, by channel and row (tt_dsp_dw3_input_pairs_*),
 * their largest magnitude into *amax (NULL: none). 0: the staging holds no channel
 * (nothing done). The staging: the block's weights, then its ring of three dy rows, each a
 * slot of the block's channels' rows. Not inlined: its frame (about 440 B at -O2) is gone
 * before kept_walk walks the other positions (walk's frame sets the kernel's depth). */
static __attribute__((noinline)) int walk3(const dw_layer *a, void *stage_mem,
                                           int32_t stage_bytes, int32_t r0, int32_t r1,
                                           int32_t cut, const tt_keep *keep, uint32_t *amax) {
  const int32_t wd = a->wd, c = a->c, words = dw3_words(wd), L = 2 - a->pad_left;
  const int32_t per = block_channels(stage_bytes / dw3_channel_bytes(wd), c);
  if (per < 1) return 0;
  uint32_t top = amax != 0 ? *amax : 0;
  tt_dsp_word *const wts = (tt_dsp_word *)stage_mem;
  tt_dsp_word *const ring = wts + 10 * per;
  const int32_t pairs = wd >> 1;
  /* odd rows staged one column over (their first column before the pairs) */
  const int32_t odd = wd & 1, Ls = L + odd;
  void (*const run)(dw3_pairs_args *) = odd                         ? tt_dsp_dw3_input_pairs_odd
                                        : pairs == 3 || pairs == 4 ? tt_dsp_dw3_input_pairs_34
                                                                   : tt_dsp_dw3_input_pairs_even;
  for (int32_t ch0 = 0; ch0 < c; ch0 += per) {
    const int32_t nc = c - ch0 < per ? c - ch0 : per;
    dw3_stage_weights(a, ch0, nc, wts);
    for (int32_t b = 0; b < a->n; ++b) {
      int32_t tag[3] = {INT32_MIN, INT32_MIN, INT32_MIN};
      for (int32_t iy = 0; iy < a->h; ++iy) {
        const int32_t row = b * a->h + iy;
        if (row < r0 || row >= r1 || row == cut) continue;
        /* slot oy mod 3 of dy row oy = t - ky (t >= 0): q - ky, wrapped */
        const int32_t t = iy + a->pad_top, q = t % 3;
        for (int32_t ky = 0; ky < 3; ++ky) {
          const int32_t oy = t - ky, slot = q - ky < 0 ? q - ky + 3 : q - ky;
          if (tag[slot] != oy) {
            dw3_stage_row(a, b, oy, ch0, nc, words, 3, Ls, ring + slot);
            tag[slot] = oy;
          }
        }
        int32_t *const out = tt_kept(keep, row * wd, c) + ch0;
        dw3_pairs_args args = {wts + 2 * (2 - q), ring, out, 4 * c,
                               (uintptr_t)out + 4u * (uint32_t)(c * wd),
                               ((4 - (pairs & 3)) & 3) + 4 * odd, 4 - 4 * c * wd, nc, top};
        run(&args);
        top = args.top;
      }
    }
  }
  if (amax != 0) *amax = top;
  return 1;
}

/* ---- stride 2 by channel and row (walk2) ---------------------------------------------- */

/* A 3x3 or 4x4 kernel at stride 2 (both ways) has, per dx element, at most two taps a dy
 * row, and they read two adjacent dy columns: with ix + pad_left = 2X + px and iy + pad_top
 * = 2Y + py, dx = the sum over j in {0, 1} (dy row Y - j, tap row ky = py + 2j < kh) of
 * D[X] w[ky][px] + D[X - 1] w[ky][px + 2] (w[.][3] = 0 at 3x3): one SMUAD or SMLAD of the
 * word [D[X - 1], D[X]] and [w[ky][px + 2], w[ky][px]] * mult. A channel's dy row is staged
 * as int16, S[j] = D[j - 1] (dw3_stage_row's words with L = 1), so that one unaligned LDR
 * (ARMv7E-M's, as tt_dsp_load4's) at S + X is that word, shared by the dx column pair
 * (2X, 2X + 1). The walk by position summed a position's 2.25 taps (3x3) in about 10
 * instructions an element of call, pointers and accumulators' loads and stores (rows1 and
 * rows2: 4.4 a forward MAC at 3x3/2 16 @48x48, the walk 1.8 more). */

/* The narrowest dx rows walk2 takes (at least 2: one column pair). Measured (mcu_grad_dsp.py,
 * one pass to nearest, dwig30b's assembly rows): 3x3/2 64 @12x12 6.23 a MAC against 7.25 by
 * walk, 128 @6x6 7.82 against 7.43 (a channel's set-up, 13-14 instructions, and its
 * weights' staging, about 70, over 6 columns). */
#ifndef DW2_MIN_WIDTH
#define DW2_MIN_WIDTH 12
#endif

/* Narrower rows walk2 takes too (dwig31), where the row pairs (tt_dsp_dw2_quad) take every
 * column (3x3, pad_left and wd even) and the call walks at least DW2_NARROW_ROWS whole rows:
 * 3x3/2 128 @6x6 one pass to nearest 75,920 -> 64,520 instructions (the caller's scan
 * gone, the weights staged in 33 a channel); the two-pass forms' first pass, whose kept
 * prefix is one row there, stages a block's weights for it: 110,040 -> 117,120 with a
 * single row. */
#ifndef DW2_NARROW_WIDTH
#define DW2_NARROW_WIDTH 6
#endif
#ifndef DW2_NARROW_ROWS
#define DW2_NARROW_ROWS 4
#endif

/* Words a staged dy row of walk2: S[0 .. X_last + 1], X_last = (wd - 1 + pad_left) / 2. */
static inline int32_t dw2_words(int32_t wd, int32_t pad_left) {
  return (((wd - 1 + pad_left) >> 1) + 3) >> 1;
}

/* Staged bytes a channel of walk2: eight weight words and two dy rows. */
static inline int32_t dw2_channel_bytes(int32_t wd, int32_t pad_left) {
  return 32 + 8 * dw2_words(wd, pad_left);
}

/* The weights of channels [ch0, ch0 + nc) times their multipliers (int16, as
 * stage_weights'), eight words a channel: for py = 0 then 1, [E(py), O(py), E(py + 2),
 * O(py + 2)] with E(ky) = [w[ky][2], w[ky][0]] and O(ky) = [w[ky][3], w[ky][1]]. 4x4 only
 * (3x3: dw2_stage_weights3). */
static void dw2_stage_weights(const dw_layer *a, int32_t ch0, int32_t nc, tt_dsp_word *o) {
  const int32_t c = a->c;
  for (int32_t k = 0; k < nc; ++k, o += 8) {
    const int32_t ch = ch0 + k, mu = a->mult[ch];
    const int8_t *r = a->w + ch;
    /* tap row ky into word 4 (ky & 1) + (ky & 2), E then O */
    for (int32_t ky = 0; ky < 4; ++ky, r += 4 * c) {
      tt_dsp_word *const to = o + 4 * (ky & 1) + (ky & 2);
      const uint32_t f0 = (uint16_t)(int16_t)(r[0] * mu), f1 = (uint16_t)(int16_t)(r[c] * mu),
                     f2 = (uint16_t)(int16_t)(r[2 * c] * mu),
                     f3 = (uint16_t)(int16_t)(r[3 * c] * mu);
      to[0] = f2 | f0 << 16;
      to[1] = f3 | f1 << 16;
    }
  }
}

/* One tap row of a 3x3 channel (at %[W] + c, + 2c and + 0; W moved on 1 byte): its three
 * weights times the channel's multiplier mu, F(., 1) into %[F], E = [F(., 2), F(., 0)] into
 * %[y] (dw2_stage_weights3's three rows). */
#define DW2_STAGE_ROW(W, F)                                                                 \
  "  ldrsb %[x], [%[" W "], %[c]]\n"                                                         \
  "  ldrsb %[y], [%[" W "], %[c2]]\n"                                                        \
  "  ldrsb %[z], [%[" W "]], #1\n"                                                           \
  "  smulbb %[" F "], %[x], %[mu]\n"                                                         \
  "  smulbb %[y], %[y], %[mu]\n"                                                            \
  "  smulbb %[z], %[z], %[mu]\n"                                                            \
  "  pkhbt %[y], %[y], %[z], lsl #16\n"

/* dw2_stage_weights at 3x3, written out (dw3_stage_weights' way): its loop took about 124
 * instructions a channel at 3x3 (3x3/2 128 @6x6's 15.9 K), this 33. Words 6 and 7, E(3) and O(3), which no 3x3 row reads (py =
 * 1 has no second tap row), hold the row pairs' weights instead (tt_dsp_dw2_quad): Q1 =
 * [F(2, 1), F(0, 1)] and F(1, 1) in its low half. */
static __attribute__((noinline)) void dw2_stage_weights3(const dw_layer *a, int32_t ch0,
                                                         int32_t nc, tt_dsp_word *o) {
  const int32_t c = a->c;
  const int32_t c2 = 2 * c;
  const int8_t *w0 = a->w + ch0, *w1 = w0 + 3 * c, *w2 = w0 + 6 * c;
  const int16_t *m = a->mult + ch0;
  for (tt_dsp_word *const end = o + 8 * nc; o != end;) {
    uint32_t mu, x, y, z, t;
    __asm__ volatile(
        "  ldrsh %[mu], [%[m]], #2\n"
        DW2_STAGE_ROW("w0", "t")                     /* F(0, 1), E(0) */
        "  lsl %[t], %[t], #16\n"                    /* O(0) */
        "  strd %[y], %[t], [%[o]]\n"
        DW2_STAGE_ROW("w2", "x")                     /* F(2, 1), E(2) */
        "  pkhbt %[t], %[x], %[t]\n"                 /* Q1 */
        "  lsl %[x], %[x], #16\n"                    /* O(2) */
        "  strd %[y], %[x], [%[o], #8]\n"
        DW2_STAGE_ROW("w1", "x")                     /* F(1, 1), E(1) */
        "  strd %[t], %[x], [%[o], #24]\n"
        "  lsl %[x], %[x], #16\n"                    /* O(1) */
        "  strd %[y], %[x], [%[o], #16]\n"
        "  add %[o], %[o], #32\n"
        : [mu] "=&r"(mu), [x] "=&r"(x), [y] "=&r"(y), [z] "=&r"(z), [t] "=&r"(t),
          [m] "+r"(m), [w0] "+r"(w0), [w1] "+r"(w1), [w2] "+r"(w2), [o] "+r"(o)
        : [c] "r"(c), [c2] "r"(c2)
        : "memory");
  }
}

/* The arguments of tt_dsp_dw2_row_* (offsets for the assembly). */
typedef struct {
  const tt_dsp_word *w;      /*  0: channel 0's [E(py), O(py), E(py + 2), O(py + 2)]; +32 B */
  const int16_t *d;          /*  4: channel 0's staged dy row Y at S + X0 */
  int32_t *out;              /*  8: channel 0's accumulator at dx column 0; +4 a channel */
  int32_t c4;                /* 12: bytes from a dx column's accumulators to the next's */
  int32_t doff;              /* 16: bytes from row Y's staging to row Y - 1's (TWO only) */
  uint32_t top;              /* 20: in: a largest magnitude; out: with every sum stored */
  int32_t d_step;            /* 24: bytes from d after a channel's columns to the next's d */
  int32_t out_step;          /* 28: the same for out */
  int32_t run_bytes;         /* 32: bytes out moves by the odd first column and the pairs */
  uintptr_t d_end;           /* 36: the block's last channel's d plus its step, as an
                                integer (a pointer could be past the staging) */
  uint32_t entry;            /* 40: (8 - pairs mod 8) mod 8, or 8 where there is no pair */
  int32_t lead;              /* 44: 1 where the row starts with an odd column */
  int32_t trail;             /* 48: 1 where the row ends with an even column */
  int32_t rowb;              /* 52: tt_dsp_dw2_quad's: bytes from row 2Y's accumulators to
                                row 2Y + 1's (the rows' functions do not read it) */
} dw2_row_args;
typedef char dw2_row_layout[offsetof(dw2_row_args, rowb) == 52 ? 1 : -1];

/* One dx row of a block's channels in assembly, the largest magnitude measured as the sums
 * are stored (the one pass's scan after the walk, largest_eights' 3.3 instructions an
 * element, is not run where walk2 takes the layer). Registers: r0-r3 a channel's E(py),
 * O(py), E(py + 2), O(py + 2); r4 its staged row Y (a column pair's word [D[X - 1], D[X]]
 * by one unaligned LDR, post-incremented by 2); lr doff (row Y - 1's word at [r4, lr]); r5
 * the output; r6 the largest magnitude T; r7 c4; r8 and r9 the loaded words; r10 and r11
 * the pair's sums; r12 where the channel's pairs end. A pair (TWO): two LDR, four
 * multiplies, two STR and the pointer, then v ^ (v >> 31) (|v| or |v| - 1) of both sums
 * ORed and compared with T: 14 instructions, where the C loop before (dw2_row2) took 12
 * and the scan 6.6 more (ONE: 11); where the OR is not below T, the exact magnitudes of the
 * two stored sums (20:, rare once T has grown). The pairs run eight a loop (four: 0.125
 * instructions an element more), entered at the table 9's entry; a channel's odd first
 * column and even last one (the same test, exact only where it fails: 22: and 24:) are
 * entered through addresses chosen once a call, so that a channel costs 13 instructions
 * beside its columns (TWO 14: the weights' pointer, d and out stepped by constants, the
 * end tested by d; 27-28 where each field came from the arguments). The frame: [sp] the arguments, +4 the weights' pointer, +8
 * d_step, +12 out_step, +16 run_bytes, +20 d_end, +24 the first column's entry (the odd
 * column's or the pairs'), +28 the pairs' entry, +32 the last column's (the even column's
 * or the channel's end). */
#define DW2_IF(C, S) DW2_IF_##C(S)
#define DW2_IF_1(S) S
#define DW2_IF_0(S)
#define DW2_MAG(x)                                                                          \
  "  eor r9, " x ", " x ", asr #31\n"                                                       \
  "  sub r9, r9, " x ", asr #31\n"                                                          \
  "  cmp r9, r6\n"                                                                          \
  "  it hi\n"                                                                               \
  "  movhi r6, r9\n"
#define DW2_PAIR(TWO, N)                                                                    \
  DW2_IF(TWO, "  ldr r8, [r4, lr]\n")                                                       \
  "  ldr r9, [r4], #2\n"                                                                    \
  "  smuad r10, r9, r0\n"                                                                   \
  "  smuad r11, r9, r1\n"                                                                   \
  DW2_IF(TWO, "  smlad r10, r8, r2, r10\n"                                                  \
              "  smlad r11, r8, r3, r11\n")                                                 \
  "  str r11, [r5, r7]\n"                                                                   \
  "  str r10, [r5]\n"                                                                       \
  "  add r5, r5, r7, lsl #1\n"                                                              \
  "  eor r10, r10, r10, asr #31\n"                                                          \
  "  eor r11, r11, r11, asr #31\n"                                                          \
  "  orr r10, r10, r11\n"                                                                   \
  "  cmp r10, r6\n"                                                                         \
  "  bhs 4" N "f\n"                                                                         \
  "5" N ":\n"
#define DW2_ROW_FN(NAME, TWO)                                                               \
  __asm__(TT_DSP_ASM_ENTRY(NAME)                                                            \
          "  sub sp, sp, #32\n"                                                             \
          "  ldr r6, [r0, #20]\n"                                                           \
          "  ldr r7, [r0, #12]\n"                                                           \
          DW2_IF(TWO, "  ldr lr, [r0, #16]\n")                                              \
          "  ldrd r4, r5, [r0, #4]\n"                                                       \
          "  ldr r1, [r0, #0]\n"                                                            \
          "  ldrd r2, r3, [r0, #24]\n"                                                      \
          "  ldrd r8, r9, [r0, #32]\n"                                                      \
          "  stm sp, {r1, r2, r3, r8, r9}\n"                                                \
          "  ldr r1, [r0, #40]\n"                                                           \
          "  adr.w r2, 9f\n"                                                                \
          "  ldrb r3, [r2, r1]\n"                                                           \
          "  add r2, r2, r3, lsl #1\n"                                                      \
          "  add r2, r2, #1\n"                                                              \
          "  ldrd r1, r3, [r0, #44]\n"                                                      \
          "  cmp r1, #0\n"                                                                  \
          "  ite ne\n"                                                                      \
          "  adrne.w r1, 6f + 1\n"                                                          \
          "  moveq r1, r2\n"                                                                \
          "  cmp r3, #0\n"                                                                  \
          "  ite ne\n"                                                                      \
          "  adrne.w r3, 7f + 1\n"                                                          \
          "  adreq.w r3, 8f + 1\n"                                                          \
          "  add r8, sp, #20\n"                                                             \
          "  stm r8, {r1, r2, r3}\n"                                                        \
          "  push {r0}\n"                                                                   \
          "3:\n"                                                                            \
          "  ldr r9, [sp, #4]\n"                                                            \
          DW2_IF(TWO, "  ldrd r2, r3, [r9, #8]\n")                                          \
          "  ldrd r0, r1, [r9], #32\n"                                                      \
          "  str r9, [sp, #4]\n"                                                            \
          "  ldr r9, [sp, #16]\n"                                                           \
          "  add r12, r5, r9\n"                                                             \
          "  ldr pc, [sp, #24]\n"                                                           \
          "6:\n"                                                                            \
          DW2_IF(TWO, "  ldr r8, [r4, lr]\n")                                               \
          "  ldr r9, [r4], #2\n"                                                            \
          "  smuad r10, r9, r1\n"                                                           \
          DW2_IF(TWO, "  smlad r10, r8, r3, r10\n")                                         \
          "  str r10, [r5]\n"                                                               \
          "  add r5, r5, r7\n"                                                              \
          "  eor r9, r10, r10, asr #31\n"                                                   \
          "  cmp r9, r6\n"                                                                  \
          "  bhs 22f\n"                                                                     \
          "23:\n"                                                                           \
          "  ldr pc, [sp, #28]\n"                                                           \
          "9:\n"                                                                            \
          "  .byte (30f - 9b) / 2, (31f - 9b) / 2, (32f - 9b) / 2, (33f - 9b) / 2\n"        \
          "  .byte (34f - 9b) / 2, (35f - 9b) / 2, (36f - 9b) / 2, (37f - 9b) / 2\n"        \
          "  .byte (15f - 9b) / 2\n"                                                        \
          "  .p2align 1\n"                                                                  \
          "30:\n" DW2_PAIR(TWO, "1") "31:\n" DW2_PAIR(TWO, "2")                             \
          "32:\n" DW2_PAIR(TWO, "3") "33:\n" DW2_PAIR(TWO, "4")                             \
          "34:\n" DW2_PAIR(TWO, "5") "35:\n" DW2_PAIR(TWO, "6")                             \
          "36:\n" DW2_PAIR(TWO, "7") "37:\n" DW2_PAIR(TWO, "8")                             \
          "  cmp r5, r12\n"                                                                 \
          "  bne 30b\n"                                                                     \
          "15:\n"                                                                           \
          "  ldr pc, [sp, #32]\n"                                                           \
          "7:\n"                                                                            \
          DW2_IF(TWO, "  ldr r8, [r4, lr]\n")                                               \
          "  ldr r9, [r4]\n"                                                                \
          "  smuad r10, r9, r0\n"                                                           \
          DW2_IF(TWO, "  smlad r10, r8, r2, r10\n")                                         \
          "  str r10, [r5]\n"                                                               \
          "  eor r9, r10, r10, asr #31\n"                                                   \
          "  cmp r9, r6\n"                                                                  \
          "  bhs 24f\n"                                                                     \
          "8:\n"                                                                            \
          "  ldrd r8, r9, [sp, #8]\n"                                                       \
          "  add r4, r4, r8\n"                                                              \
          "  add r5, r5, r9\n"                                                              \
          "  ldr r9, [sp, #20]\n"                                                           \
          "  cmp r4, r9\n"                                                                  \
          "  bne 3b\n"                                                                      \
          "  pop {r0}\n"                                                                    \
          "  str r6, [r0, #20]\n"                                                           \
          "  add sp, sp, #32\n"                                                             \
          "  pop {r4-r11, pc}\n"                                                            \
          "41:\n  adr.w r8, 51b\n  b 20f\n"                                                 \
          "42:\n  adr.w r8, 52b\n  b 20f\n"                                                 \
          "43:\n  adr.w r8, 53b\n  b 20f\n"                                                 \
          "44:\n  adr.w r8, 54b\n  b 20f\n"                                                 \
          "45:\n  adr.w r8, 55b\n  b 20f\n"                                                 \
          "46:\n  adr.w r8, 56b\n  b 20f\n"                                                 \
          "47:\n  adr.w r8, 57b\n  b 20f\n"                                                 \
          "22:\n  adr.w r8, 23b\n  b 21f\n"                                                 \
          "24:\n  adr.w r8, 8b\n  b 21f\n"                                                  \
          "48:\n  adr.w r8, 58b\n"                                                          \
          "20:\n"                                                                           \
          "  sub r10, r5, r7, lsl #1\n"                                                     \
          "  ldr r11, [r10, r7]\n"                                                          \
          "  ldr r10, [r10]\n"                                                              \
          DW2_MAG("r11")                                                                    \
          "21:\n"                                                                           \
          DW2_MAG("r10")                                                                    \
          "  mov pc, r8\n"                                                                  \
          "  .size " #NAME ", . - " #NAME "\n"                                              \
          "  .text\n");                                                                     \
  void NAME(dw2_row_args *a);
DW2_ROW_FN(tt_dsp_dw2_row_two, 1)
DW2_ROW_FN(tt_dsp_dw2_row_one, 0)
#undef DW2_ROW_FN
#undef DW2_PAIR
#undef DW2_MAG
#undef DW2_IF
#undef DW2_IF_1
#undef DW2_IF_0

/* Both dx rows of one dy row Y at 3x3 (py = 0: dy rows Y and Y - 1 through tap rows 0 and
 * 2; py = 1: row Y through tap row 1) in one pass (dwig31): a column pair's words a =
 * [D_Y[X - 1], D_Y[X]] and b = [D_{Y-1}[X - 1], D_{Y-1}[X]] loaded once for the four
 * elements (2Y, 2X), (2Y, 2X + 1), (2Y + 1, 2X), (2Y + 1, 2X + 1), and a channel's set-up
 * once for both rows: a quad 24 instructions (two LDR, six multiplies, four STR and two
 * ADD, the magnitude test of the four sums), where row_two's pair and row_one's took 25,
 * and a channel and row pair 17 beside its quads where the two rows took 28. Odd first
 * and even last columns are row_two's and row_one's (lead = trail = 0 here). The
 * weights: E(0), E(2), E(1) (words 0, 2, 4) and dw2_stage_weights' 3x3 words 6 and 7:
 * Q1 = [F(2, 1), F(0, 1)] (column 2X + 1 of row 2Y: D_Y[X] F(0, 1) + D_{Y-1}[X] F(2, 1),
 * SMULTT and SMLATB) and F(1, 1) in the low half (of row 2Y + 1: SMULTB). */
/* Its arguments: dw2_row_args of the row 2Y (lead 0; out_step and run_bytes those of
 * 2 pairs a column pair, as row_two's), and rowb (offset 52). */

/* Registers: r8 E(0), r9 E(2), r10 E(1), r11 Q1, r12 F(1, 1); r4 the output (row 2Y), r5
 * the staged row Y (post-incremented by 2), lr doff, r6 c4, r7 rowb; r0 a, r1 b, r2 and r3
 * the sums (low registers: 16-bit stores, ORRS and ADD, 72 B a quad). No register is left
 * for the largest magnitude T: it is loaded from the frame for each quad's test (v ^ (v >>
 * 31) of the four sums ORed, as row_two's pairs; where the OR is not below T, the four
 * stored sums' exact magnitudes, 20:). The frame: [sp] the arguments, +4 the weights'
 * pointer, +8 d_step, +12 out_step, +16 run_bytes, +20 d_end, +24 T, +28 the quads'
 * entry, +32 where this channel's quads end (4 more a channel: the channels' outputs are
 * a word apart). */
#define DW2_QUAD(N)                                                                         \
  "  ldr r1, [r5, lr]\n"                                                                    \
  "  ldr r0, [r5], #2\n"                                                                    \
  "  smuad r2, r0, r8\n"                                                                    \
  "  smlad r2, r1, r9, r2\n"                                                                \
  "  smultt r3, r0, r11\n"                                                                  \
  "  smlatb r3, r1, r11, r3\n"                                                              \
  "  str r2, [r4]\n"                                                                        \
  "  str r3, [r4, r6]\n"                                                                    \
  "  eor r2, r2, r2, asr #31\n"                                                             \
  "  eor r3, r3, r3, asr #31\n"                                                             \
  "  orrs r2, r3\n"                                                                         \
  "  smuad r1, r0, r10\n"                                                                   \
  "  smultb r3, r0, r12\n"                                                                  \
  "  str r1, [r4, r7]\n"                                                                    \
  "  add r4, r6\n"                                                                          \
  "  str r3, [r4, r7]\n"                                                                    \
  "  add r4, r6\n"                                                                          \
  "  eor r1, r1, r1, asr #31\n"                                                             \
  "  eor r3, r3, r3, asr #31\n"                                                             \
  "  orrs r2, r1\n"                                                                         \
  "  orrs r2, r3\n"                                                                         \
  "  ldr r3, [sp, #24]\n"                                                                   \
  "  cmp r2, r3\n"                                                                          \
  "  bhs 4" N "f\n"                                                                         \
  "5" N ":\n"
/* |x| into T (r3) where larger (x is a sum: below 2^31 in magnitude) */
#define DW2_QMAG(x)                                                                         \
  "  cmp " x ", #0\n"                                                                       \
  "  it lt\n"                                                                               \
  "  rsblt " x ", " x ", #0\n"                                                              \
  "  cmp " x ", r3\n"                                                                       \
  "  it hi\n"                                                                               \
  "  movhi r3, " x "\n"
__asm__(TT_DSP_ASM_ENTRY(tt_dsp_dw2_quad)
        "  sub sp, sp, #36\n"
        "  str r0, [sp]\n"
        "  ldr r1, [r0, #0]\n"
        "  ldrd r2, r3, [r0, #24]\n"
        "  ldrd r4, r5, [r0, #32]\n"
        "  ldr r6, [r0, #20]\n"
        "  add r7, sp, #4\n"
        "  stm r7, {r1, r2, r3, r4, r5, r6}\n"
        "  ldr r1, [r0, #40]\n"
        "  adr.w r2, 9f\n"
        "  ldrh r3, [r2, r1, lsl #1]\n"
        "  add r2, r2, r3, lsl #1\n"
        "  add r2, r2, #1\n"
        "  str r2, [sp, #28]\n"
        "  ldrd r5, r4, [r0, #4]\n"
        "  ldrd r6, lr, [r0, #12]\n"
        "  ldr r7, [r0, #52]\n"
        "  ldr r0, [sp, #16]\n"
        "  add r0, r4\n"
        "  str r0, [sp, #32]\n"
        "3:\n"
        "  ldr r0, [sp, #4]\n"
        "  ldr r8, [r0]\n"
        "  ldr r9, [r0, #8]\n"
        "  ldr r10, [r0, #16]\n"
        "  ldrd r11, r12, [r0, #24]\n"
        "  adds r0, #32\n"
        "  str r0, [sp, #4]\n"
        "  ldr pc, [sp, #28]\n"
        "9:\n"
        "  .2byte (30f - 9b) / 2, (31f - 9b) / 2, (32f - 9b) / 2, (33f - 9b) / 2\n"
        "  .2byte (34f - 9b) / 2, (35f - 9b) / 2, (36f - 9b) / 2, (37f - 9b) / 2\n"
        "30:\n" DW2_QUAD("1") "31:\n" DW2_QUAD("2") "32:\n" DW2_QUAD("3")
        "33:\n" DW2_QUAD("4") "34:\n" DW2_QUAD("5") "35:\n" DW2_QUAD("6")
        "36:\n" DW2_QUAD("7") "37:\n" DW2_QUAD("8")
        "  ldr r0, [sp, #32]\n"
        "  cmp r4, r0\n"
        "  bne 30b\n"
        "  adds r0, #4\n"
        "  str r0, [sp, #32]\n"
        "  ldrd r0, r1, [sp, #8]\n"
        "  add r5, r0\n"
        "  add r4, r1\n"
        "  ldr r0, [sp, #20]\n"
        "  cmp r5, r0\n"
        "  bne 3b\n"
        "  ldr r0, [sp]\n"
        "  ldr r1, [sp, #24]\n"
        "  str r1, [r0, #20]\n"
        "  add sp, sp, #36\n"
        "  pop {r4-r11, pc}\n"
        "41:\n  adr.w r0, 51b\n  b 20f\n"
        "42:\n  adr.w r0, 52b\n  b 20f\n"
        "43:\n  adr.w r0, 53b\n  b 20f\n"
        "44:\n  adr.w r0, 54b\n  b 20f\n"
        "45:\n  adr.w r0, 55b\n  b 20f\n"
        "46:\n  adr.w r0, 56b\n  b 20f\n"
        "47:\n  adr.w r0, 57b\n  b 20f\n"
        "48:\n  adr.w r0, 58b\n"
        "20:\n"
        "  sub r1, r4, r6, lsl #1\n"
        "  ldr r2, [r1]\n"
        DW2_QMAG("r2")
        "  ldr r2, [r1, r7]\n"
        DW2_QMAG("r2")
        "  add r1, r6\n"
        "  ldr r2, [r1]\n"
        DW2_QMAG("r2")
        "  ldr r2, [r1, r7]\n"
        DW2_QMAG("r2")
        "  str r3, [sp, #24]\n"
        "  mov pc, r0\n"
        "  .size tt_dsp_dw2_quad, . - tt_dsp_dw2_quad\n"
        "  .text\n");
void tt_dsp_dw2_quad(dw2_row_args *a);
#undef DW2_QUAD
#undef DW2_QMAG

/* walk3's (same arguments and staging's use) for a 3x3 or 4x4 layer of stride 2: by
 * channel and dx row (tt_dsp_dw2_row_two/one), the block's weights then a ring of two dy
 * rows (Y and Y - 1), each a slot of the block's channels' rows. */
static __attribute__((noinline)) int walk2(const dw_layer *a, void *stage_mem,
                                           int32_t stage_bytes, int32_t r0, int32_t r1,
                                           int32_t cut, const tt_keep *keep, uint32_t *amax) {
  const int32_t wd = a->wd, c = a->c, pl = a->pad_left, words = dw2_words(wd, pl);
  const int32_t per = block_channels(stage_bytes / dw2_channel_bytes(wd, pl), c);
  if (per < 1) return 0;
  uint32_t top = amax != 0 ? *amax : 0;
  tt_dsp_word *const wts = (tt_dsp_word *)stage_mem;
  tt_dsp_word *const ring = wts + 8 * per;
  /* the columns: ix = 0 is odd (px 1) where pad_left is, then pairs, then one even */
  const int32_t lead = pl & 1, pairs = (wd - lead) >> 1, trail = (wd - lead) & 1;
  const int32_t x0 = pl >> 1;
  /* 3x3 rows of column pairs only: their py = 0 and 1 rows by tt_dsp_dw2_quad */
  const int quads = a->kh == 3 && lead == 0 && trail == 0 && pairs > 0;
  for (int32_t ch0 = 0; ch0 < c; ch0 += per) {
    const int32_t nc = c - ch0 < per ? c - ch0 : per;
    if (a->kh == 3)
      dw2_stage_weights3(a, ch0, nc, wts);
    else
      dw2_stage_weights(a, ch0, nc, wts);
    for (int32_t b = 0; b < a->n; ++b) {
      int32_t tag[2] = {INT32_MIN, INT32_MIN};
      for (int32_t iy = 0; iy < a->h; ++iy) {
        const int32_t row = b * a->h + iy;
        if (row < r0 || row >= r1 || row == cut) continue;
        const int32_t py = (iy + a->pad_top) & 1, y = (iy + a->pad_top) >> 1;
        const int two = py + 2 < a->kh;
        const int16_t *d[2];
        for (int32_t j = 0; j <= two; ++j) {
          const int32_t oy = y - j, slot = oy & 1;
          tt_dsp_word *const rows = ring + slot * per * words;
          if (tag[slot] != oy) {
            dw3_stage_row(a, b, oy, ch0, nc, words, 1, 1, rows);
            tag[slot] = oy;
          }
          d[j] = (const int16_t *)(const void *)rows + x0;
        }
        const int16_t *const d0 = d[0];
        int32_t *const out = tt_kept(keep, row * wd, c) + ch0;
        dw2_row_args arg = {.w = wts + 4 * py, .d = d0, .out = out, .c4 = 4 * c,
                            .doff = two ? 2 * (int32_t)(d[1] - d0) : 0, .top = top,
                            .d_step = 4 * words - 2 * (lead + pairs),
                            .out_step = 4 - 4 * c * (lead + 2 * pairs),
                            .run_bytes = 4 * c * (lead + 2 * pairs),
                            .d_end = (uintptr_t)d0 + (uintptr_t)(4 * words * nc),
                            .entry = pairs == 0 ? 8u : (uint32_t)(-pairs & 7), .lead = lead,
                            .trail = trail, .rowb = 4 * c * wd};
        /* rows 2Y and 2Y + 1 together where both are walked and kept one after the other */
        if (quads && py == 0 && iy + 1 < a->h && row + 1 < r1 && row + 1 != cut &&
            tt_kept(keep, (row + 1) * wd, c) + ch0 == out + wd * c) {
          tt_dsp_dw2_quad(&arg);
          ++iy;
        } else
          (two ? tt_dsp_dw2_row_two : tt_dsp_dw2_row_one)(&arg);
        top = arg.top;
      }
    }
  }
  if (amax != 0) *amax = top;
  return 1;
}

/* walk of kept positions [p0, p1) (no rounding, no draws): their whole rows by walk3 where
 * it takes the layer (but a row that keep->n0 cuts: its positions are in two places), the
 * others by walk. Not inlined, a small frame under walk's. */
/* Whether walk3 takes the layer (the kept range permitting). */
static inline int dw3_layer(const dw_layer *a) {
  return a->kh == 3 && a->kw == 3 && a->sh == 1 && a->sw == 1 && a->pad_left <= 2 &&
         (a->wd >= DW3_MIN_WIDTH || a->wd == DW3_NARROW_WIDTH);
}

/* Whether walk2 takes the layer (the kept range and its staging permitting); square
 * kernels only: no rig test runs walk2 at 3x4 or 4x3 (review20). */
static inline int dw2_layer(const dw_layer *a) {
  return (a->kh == 3 || a->kh == 4) && a->kw == a->kh && a->sh == 2 && a->sw == 2 &&
         (a->wd >= DW2_MIN_WIDTH || (a->wd >= DW2_NARROW_WIDTH && a->kh == 3 &&
                                     ((a->pad_left | a->wd) & 1) == 0));
}

static __attribute__((noinline)) void kept_walk(const dw_layer *a, int32_t nb, void *stage_mem,
                                                int32_t stage_bytes, int32_t p0, int32_t p1,
                                                const tt_keep *keep, uint32_t *amax) {
  const int32_t wd = a->wd;
  const int32_t r0 = (p0 + wd - 1) / wd, r1 = p1 / wd;
  const int s1 = dw3_layer(a), s2 = dw2_layer(a);
  if ((s1 || s2) && keep != 0 && p1 <= keep->n1 && r0 < r1) {
    const int32_t cut = keep->n0 % wd != 0 && keep->n0 / wd >= r0 && keep->n0 / wd < r1
                            ? keep->n0 / wd : -1;
    /* walk3: at least two whole rows: one (a two-pass call's kept quarter at 4x4 or 6x6)
     * stages the block's weights and three dy rows for it, then walk the others again
     * (measured 3x3/1 128 @6x6 two passes +6%, 576 @4x4 +0.3%); walk2 one (12 columns
     * or more), DW2_NARROW_ROWS narrower */
    const int32_t rows = r1 - r0 - (cut >= 0);
    if (rows >= (s2 ? wd >= DW2_MIN_WIDTH ? 1 : DW2_NARROW_ROWS : 2) &&
        (s2 ? walk2(a, stage_mem, stage_bytes, r0, r1, cut, keep, amax)
            : walk3(a, stage_mem, stage_bytes, r0, r1, cut, keep, amax))) {
      if (p0 < r0 * wd) walk(a, nb, stage_mem, p0, r0 * wd, keep, amax, 0, 0, 0, 0);
      if (cut >= 0) walk(a, nb, stage_mem, cut * wd, cut * wd + wd, keep, amax, 0, 0, 0, 0);
      if (r1 * wd < p1) walk(a, nb, stage_mem, r1 * wd, p1, keep, amax, 0, 0, 0, 0);
      return;
    }
  }
  walk(a, nb, stage_mem, p0, p1, keep, amax, 0, 0, 0, 0);
}

int tt_dsp_depthwise_input_grad_s8(const int8_t *dy, const uint8_t *mask, int32_t n,
                                   int32_t oh, int32_t ow, int32_t c, int32_t m,
                                   const int8_t *w, const int16_t *mult, int32_t kh, int32_t kw,
                                   const tt_window *win, int32_t h, int32_t wd, int32_t p0,
                                   int32_t p1, const tt_keep *keep, uint32_t *amax,
                                   tt_rounder *r, int8_t *dx, void *stage_mem,
                                   int32_t stage_bytes) {
  dw_layer a = {.dy = dy, .mask = mask, .n = n, .oh = oh, .ow = ow, .c = c, .w = w,
                .mult = mult, .kh = kh, .kw = kw, .h = h, .wd = wd};
  stage_mem = tt_dsp_stage_align8(stage_mem, &stage_bytes);
  if (stage_mem == 0 || !layer_of(&a, m, win)) return 0;
  for (int32_t ch = 0; ch < c; ++ch)
    if (mult[ch] < 0 || mult[ch] > (1 << TT_GRAD_MAX_SHIFT)) return 0;
  const int32_t groups = (c + 3) >> 2;
  const int32_t per_group = 8 * (a.slots * a.cols + kh * kw);     /* staged bytes */
  const int32_t nb = balanced_groups(kernel_stage_groups(per_group, groups, stage_bytes & ~7),
                                     groups);
  if (nb == 0) return 0;
  /* the first pass: the kept positions (a prefix) summed whole, the others pruned */
  const int32_t kept = keep != 0 ? keep->n1 : 0;
  const int32_t split = kept < p0 ? p0 : kept > p1 ? p1 : kept;
  if (amax != 0 && r == 0 && split < p1 && c < (int32_t)DW_NONE) {
    uint32_t top = 0;
    if (split > p0) kept_walk(&a, nb, stage_mem, stage_bytes & ~7, p0, split, keep, &top);
    if (prune_walk(&a, nb, stage_mem, stage_bytes & ~7, split, p1, &top)) {
      *amax = top;
      return 1;
    }
    /* no room for the bounds, or most channels left: the rest summed whole */
    walk(&a, nb, stage_mem, split, p1, 0, &top, 0, dx, 0, 0);
    *amax = top;
    return 1;
  }
  if (amax != 0) *amax = 0;
  if (r == 0) {
    /* every position in keep->a0 (a one pass): the walks other than walk3 and walk2
     * (whose pairs track it as they store, about 2.5 instructions an element) find the
     * largest magnitude no faster than the caller's scan of it after them (3.3 an element,
     * largest_eights): left to it (UINT32_MAX, no magnitude's: the sums are below 2^31) */
    const int scan = amax != 0 && keep != 0 && p0 == 0 && keep->n0 >= p1 && !dw3_layer(&a) &&
                     !dw2_layer(&a);
    kept_walk(&a, nb, stage_mem, stage_bytes & ~7, p0, p1, keep, scan ? 0 : amax);
    if (scan) *amax = UINT32_MAX;
    return 1;
  }
  /* stochastic rounding over more than one block: each position's stream state after a
   * block (one word a position) in the staging's spare bytes, else on the stack where the
   * positions are few, so that only the first block jumps over a position's other draws
   * (tt_gdsp_jump, about 47 instructions a position and block with its call) */
  const int32_t npos = p1 - p0, spare = (stage_bytes & ~7) - nb * (per_group + 16);
  const int table = r != 0 && r->stochastic && !r->exact && nb < groups && npos > 1;
  if (table && spare < 4 * npos && npos <= DW_STACK_STATES) {
    uint32_t states[npos];
    walk(&a, nb, stage_mem, p0, p1, keep, amax, r, dx, 0, states);
  } else {
    uint32_t *const states =
        table && spare >= 4 * npos ? (uint32_t *)(void *)((char *)stage_mem + nb * (per_group + 16))
                                   : 0;
    walk(&a, nb, stage_mem, p0, p1, keep, amax, r, dx, 0, states);
  }
  return 1;
}

/* ---- weight gradient ------------------------------------------------------------------ */

typedef int32_t tt_dw_int __attribute__((may_alias));

/* a0..a3 += the four lanes of staged dy at dp times those of staged x - zp at xp. */
#define DW_MAC(dp, xp)                                                                     \
  do {                                                                                     \
    uint32_t de, dd, xe, xo;                                                               \
    tt_dsp_ldrd((dp), &de, &dd);                                                          \
    tt_dsp_ldrd((xp), &xe, &xo);                                                          \
    a0 = __smlabb((int32_t)de, (int32_t)xe, a0);                                           \
    a2 = __smlatt((int32_t)de, (int32_t)xe, a2);                                           \
    a1 = __smlabb((int32_t)dd, (int32_t)xo, a1);                                           \
    a3 = __smlatt((int32_t)dd, (int32_t)xo, a3);                                           \
  } while (0)

/* T[lane] += the sum over npos positions of staged dy (from d, a position every 2 words)
 * times staged x - zp (from x, every 2 SW words), per group of the block (group g at
 * g * dgs and g * xgs words further); T [nc] of the tap, in dw's memory. SW: the stride
 * along x when it is a constant of the compiled copy (1, 2), else 0 and sw. */
static inline __attribute__((always_inline)) void tap_sums(const tt_dsp_word *d,
                                                           const tt_dsp_word *x,
                                                           int32_t npos, const int32_t SW,
                                                           int32_t sw, int32_t nb, int32_t dgs,
                                                           int32_t xgs, int32_t nc,
                                                           tt_dw_int *t) {
  const int32_t xstep = 2 * (SW > 0 ? SW : sw);
  for (int32_t g = 0; g < nb; ++g, t += 4) {
    const int32_t lanes = nc - 4 * g < 4 ? nc - 4 * g : 4;
    int32_t a0 = t[0], a1 = lanes > 1 ? t[1] : 0, a2 = lanes > 2 ? t[2] : 0;
    int32_t a3 = lanes > 3 ? t[3] : 0;
    const tt_dsp_word *dp = d + g * dgs, *xp = x + g * xgs;
    const tt_dsp_word *const pair_end = dp + 2 * (npos & ~1);
    /* two positions per iteration: their operands at immediate offsets */
    for (; dp != pair_end; dp += 4, xp += 2 * xstep) {
      DW_MAC(dp, xp);
      DW_MAC(dp + 2, xp + xstep);
    }
    if (npos & 1) DW_MAC(dp, xp);
    t[0] = a0;
    if (lanes > 1) t[1] = a1;
    if (lanes > 2) t[2] = a2;
    if (lanes > 3) t[3] = a3;
  }
}

typedef void (*tap_fn)(const tt_dsp_word *d, const tt_dsp_word *x, int32_t npos, int32_t sw,
                       int32_t nb, int32_t dgs, int32_t xgs, int32_t nc, tt_dw_int *t);
#define DW_TAP(NAME, SW)                                                                    \
  static __attribute__((noinline)) void NAME(const tt_dsp_word *d, const tt_dsp_word *x,  \
                                             int32_t npos, int32_t sw, int32_t nb,          \
                                             int32_t dgs, int32_t xgs, int32_t nc,          \
                                             tt_dw_int *t) {                                \
    tap_sums(d, x, npos, SW, sw, nb, dgs, xgs, nc, t);                                      \
  }
DW_TAP(tap_sums_any, 0)
DW_TAP(tap_sums_1, 1)
DW_TAP(tap_sums_2, 2)

/* ---- weight gradient, channel-major walk (round 18) -------------------------------------
 * Each channel's staged rows are its own (channel-major) and two adjacent positions of a
 * row share a word, [p, p + 1] as int16: one SMLAD then adds two positions' products of one
 * tap (2 MACs a multiply, where the lane walk below takes one), and a loaded dy word serves
 * every tap of its tap row. Tap j of a stride phase reads the x row j positions further:
 * whole words at even j, and at odd j the word across two (PKHBT: the next word's low half
 * and this one's high half, which SMLADX crosses). At stride sw each x row is staged as sw
 * phase rows (image column p sw + q - pad_left: phase q), so that a tap kx = q + j sw reads
 * phase q at j, as at stride 1. Zero positions pad the rows (an odd ow's last pair; the
 * columns left and right of the image): every tap runs over the whole row. The dy rows of
 * a band and the x rows they read are staged once per band and block of channels, and the
 * taps' sums stay in registers over the band's rows. */

/* PKHBT a, b: [a.lo, b.hi] (16-bit lanes) */
static inline uint32_t wg_cross(uint32_t a, uint32_t b) {
  uint32_t r;
  __asm__("pkhbt %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
  return r;
}

/* The most dy rows a band (at most oh) whose staging of ky_step tap rows holds `want`
 * channels in `words`, or 0. */
static int32_t wg_rows(const wg_layer *a, int32_t words, int32_t ky_step, int32_t want) {
  int32_t r = (words / want - ky_step * a->xwords + a->sh * a->xwords) /
              (a->dstride + a->sh * a->xwords);
  if (r > a->oh) r = a->oh;
  return r > 0 && words / wg_chwords(a, r, ky_step) >= want ? r : 0;
}

/* The walk's geometry for a staging of `words`, or 0 where fewer than four channels (or
 * c) fit one dy row and one x row: every tap row from one staging of the x rows where a dy
 * row and its kh x rows fit, else one tap row a staging; as many dy rows a band as fit. */
static int wg_plan(wg_layer *a, int32_t words) {
  const int32_t want = a->c < 4 ? a->c : 4;
  wg_geometry(a);
  a->ky_step = a->kh;
  a->rows = wg_rows(a, words, a->kh, want);
  if (a->rows == 0) {
    a->ky_step = 1;
    a->rows = wg_rows(a, words, 1, want);
    if (a->rows == 0) return 0;
  }
  a->xrows = (a->rows - 1) * a->sh + a->ky_step;
  a->chwords = wg_chwords(a, a->rows, a->ky_step);
  int32_t block = words / a->chwords;
  if (block >= a->c) block = a->c;
  else if (block >= 4) block &= ~3;
  a->block = block;
  return 1;
}

/* A position pair of `lanes` channels, one at a time (a row's edges, partial groups):
 * positions p and p + 1 (element i0 + p step + lane), 0 outside [lo, hi), dy masked, minus
 * zp. */
static void wg_stage_slow(const int8_t *src, const uint8_t *mask, int32_t i0, int32_t step,
                          int32_t lo, int32_t hi, int32_t p, int32_t lanes, int32_t zp,
                          tt_dsp_word *o, int32_t cs) {
  for (int32_t l = 0; l < lanes; ++l) {
    uint32_t word = 0;
    for (int32_t k = 0; k < 2; ++k) {
      const int32_t pos = p + k;
      if (pos < lo || pos >= hi) continue;
      const int32_t i = i0 + pos * step + l;
      int32_t v = src[i];
      if (mask != 0 && !((mask[i >> 3] >> (i & 7)) & 1u)) v = 0;
      word |= (uint32_t)(uint16_t)(v - zp) << (16 * k);
    }
    o[l * cs] = word;
  }
}

/* Four channels' words v0 (position p) and v1 (p + 1) as each channel's [p, p + 1] halves
 * plus [add0, add1], at o, o + cs, o + 2 cs, o + 3 cs. */
static inline __attribute__((always_inline)) void wg_put4(tt_dsp_word *o, int32_t cs,
                                                         uint32_t v0, uint32_t v1,
                                                         uint32_t add0, uint32_t add1) {
  const uint32_t e0 = __sxtab16(add0, v0), e1 = __sxtab16(add1, v1);
  const uint32_t d0 = tt_dsp_sxtab16_odd(add0, v0), d1 = tt_dsp_sxtab16_odd(add1, v1);
  o[0] = tt_dsp_low_halves(e0, e1);
  o[cs] = tt_dsp_low_halves(d0, d1);
  o[2 * cs] = tt_dsp_high_halves(e0, e1);
  o[3 * cs] = tt_dsp_high_halves(d0, d1);
}

/* n whole pairs of four channels inside the image (element p at src, p + step the pair's
 * second, the next pair 2 step further), each a word a channel at o, o + cs, ... */
static __attribute__((noinline)) void wg_stage_plain(const int8_t *p, int32_t step, int32_t n,
                                                     tt_dsp_word *o, int32_t cs, uint32_t add) {
  for (tt_dsp_word *const end = o + n; o != end; ++o, p += 2 * step)
    wg_put4(o, cs, tt_dsp_load4(p), tt_dsp_load4(p + step), add, add);
}

/* The same for dy, masked: element index i of p's first lane (its mask bits). */
static __attribute__((noinline)) void wg_stage_masked(const int8_t *p, const uint8_t *mask,
                                                      int32_t i, int32_t step, int32_t n,
                                                      tt_dsp_word *o, int32_t cs) {
  if ((step & 7) == 0 && (i & 3) == 0) {
    /* c a multiple of 8: the four lanes' mask bits are the same half of a byte at every
     * position, step / 8 bytes apart (as stage_lanes' masked rows) */
    const uint8_t *mp = mask + (i >> 3);
    const uint32_t shift = (uint32_t)i & 7u;
    const int32_t bytes = step >> 3;
    for (tt_dsp_word *const end = o + n; o != end; ++o, p += 2 * step, mp += 2 * bytes) {
      const uint32_t v0 = tt_dsp_load4(p) & tt_dsp_mask_lanes((uint32_t)mp[0] >> shift);
      const uint32_t v1 = tt_dsp_load4(p + step) & tt_dsp_mask_lanes((uint32_t)mp[bytes] >> shift);
      wg_put4(o, cs, v0, v1, 0, 0);
    }
    return;
  }
  for (tt_dsp_word *const end = o + n; o != end; ++o, p += 2 * step, i += 2 * step) {
    const uint32_t v0 = tt_dsp_load4(p) & tt_dsp_mask_lanes(tt_dsp_mask_bits(mask, i, 4));
    const uint32_t v1 =
        tt_dsp_load4(p + step) & tt_dsp_mask_lanes(tt_dsp_mask_bits(mask, i + step, 4));
    wg_put4(o, cs, v0, v1, 0, 0);
  }
}

/* A pair of four channels with one position inside (p, the pair's first, at p; or p + 1,
 * its second, at p + step): that position's halves plus add, the other's 0. */
static inline __attribute__((always_inline)) void wg_stage_half(const int8_t *p,
                                                               const uint8_t *mask, int32_t i,
                                                               int32_t step, int second,
                                                               uint32_t add, tt_dsp_word *o,
                                                               int32_t cs) {
  if (second) {
    p += step;
    i += step;
  }
  uint32_t v = tt_dsp_load4(p);
  if (mask != 0) v &= tt_dsp_mask_lanes(tt_dsp_mask_bits(mask, i, 4));
  const uint32_t e = __sxtab16(add, v), d = tt_dsp_sxtab16_odd(add, v);
  if (second) {
    o[0] = e << 16;
    o[cs] = d << 16;
    o[2 * cs] = e & 0xFFFF0000u;
    o[3 * cs] = d & 0xFFFF0000u;
  } else {
    o[0] = e & 0xFFFFu;
    o[cs] = d & 0xFFFFu;
    o[2 * cs] = e >> 16;
    o[3 * cs] = d >> 16;
  }
}

/* `rows` staged rows (source rows rstep elements apart, staged ones dstep words apart) of
 * `pairs` words for the block's channels [0, nc): position p's element of channel ch at
 * i0 + p step + ch (inside [lo, hi); else 0), masked (dy) or minus zp (x), as halves
 * [p, p + 1], channel ch's at o + ch cs, pair k k words further. Four channels at a time:
 * two words' loads, SXTAB16 (adding -zp) and PKHBT/PKHTB, a word stored a channel; a pair
 * half inside from one word; the pairs wholly outside are left as they are (wg_walk zeroes
 * them once a call: no row writes them). */
static void wg_stage_rows(const int8_t *src, const uint8_t *mask, int32_t i0, int32_t step,
                          int32_t rstep, int32_t rows, int32_t lo, int32_t hi, int32_t pairs,
                          int32_t nc, int32_t zp, tt_dsp_word *o, int32_t dstep, int32_t cs) {
  const uint32_t add = (uint32_t)(uint16_t)(-zp) * 0x00010001u;
  if (hi > 2 * pairs) hi = 2 * pairs;
  /* whole pairs inside: [k0, k1); a half pair at lo - 1 (lo odd) and at hi - 1 (hi odd) */
  int32_t k0 = (lo + 1) >> 1, k1 = hi >> 1;
  if (k1 < k0) k1 = k0;
  const int left = (lo & 1) && lo < hi, right = (hi & 1) && hi - 1 >= lo && (hi - 1) >> 1 >= k0;
  const int32_t full = nc & ~3;
  for (int32_t ch = 0; ch < full; ch += 4) {
    const int32_t base = i0 + ch;
    tt_dsp_word *oc = o + ch * cs;
    for (int32_t r = 0; r < rows; ++r) {
      const int32_t ir = base + r * rstep;
      tt_dsp_word *or = oc + r * dstep;
      if (left)
        wg_stage_half(src + ir + (lo - 1) * step, mask, ir + (lo - 1) * step, step, 1, add,
                      or + (lo >> 1), cs);
      if (right)
        wg_stage_half(src + ir + (hi - 1) * step, mask, ir + (hi - 1) * step, step, 0, add,
                      or + (hi >> 1), cs);
      if (k1 > k0) {
        if (mask == 0)
          wg_stage_plain(src + ir + 2 * k0 * step, step, k1 - k0, or + k0, cs, add);
        else
          wg_stage_masked(src + ir + 2 * k0 * step, mask, ir + 2 * k0 * step, step, k1 - k0,
                          or + k0, cs);
      }
    }
  }
  if (full < nc)
    for (int32_t r = 0; r < rows; ++r)
      for (int32_t k = 0; k < pairs; ++k)
        wg_stage_slow(src, mask, i0 + r * rstep + full, step, lo, hi, 2 * k, nc - full, zp,
                      o + r * dstep + full * cs + k, cs);
}

/* One pair's products of N <= 4 consecutive taps of a phase: the dy word dv, the x words
 * u0, u1, u2 at the pair and the next two (tap j reads the x row j positions further). */
#define WG_PAIR(dv, u0, u1, u2, A0, A1, A2, A3, N)                                        \
  do {                                                                                     \
    A0 = __smlad(dv, u0, A0);                                                              \
    if (N > 1) A1 = __smladx(dv, wg_cross(u1, u0), A1);                                    \
    if (N > 2) A2 = __smlad(dv, u1, A2);                                                   \
    if (N > 3) A3 = __smladx(dv, wg_cross(u2, u1), A3);                                    \
  } while (0)

/* 1 where wg_sums' functions get all fourteen registers (compiled as at -O2, without the
 * frame pointer: TT_DSP_ASM_FN); at -Os gcc cannot give its two-phase loop fourteen
 * ("impossible constraints") and the C loop runs, with the same bits */
#if TT_DSP_ASM_ALL_REGS && defined(__GNUC__) && !defined(__clang__) && !defined(__OPTIMIZE_SIZE__)
#define WG_ASM14 1
#else
#define WG_ASM14 0
#endif

/* For channels [0, nc) (cs words apart in the staging, 1 apart in t): the sums of NA <= 4
 * consecutive taps of a phase (t[j tstride], j < NA: tap j reads the x row, x, j positions
 * further) and of NB <= 2 taps of a second phase (its x row y words after x; its taps at
 * t + toff, tstride apart), over `rows` rows of `pairs` dy words (d, dstride words a row)
 * and their x rows (xstride words a row). Per two pairs: an LDRD of dy, the new x words
 * (the last carried), NA + NB SMLAD(X) and a PKHBT an odd tap each. Reads the x words
 * [0, pairs + NA / 2) of a row (of the second phase [0, pairs + NB / 2)), no further. */
static inline __attribute__((always_inline)) void wg_sums(
    const tt_dsp_word *d, int32_t dstride, const tt_dsp_word *x, int32_t xstride,
    int32_t y, int32_t rows, int32_t pairs, int32_t nc, int32_t cs, const int32_t NA,
    const int32_t NB, tt_dw_int *t, int32_t tstride, int32_t toff) {
  for (int32_t ch = 0; ch < nc; ++ch, d += cs, x += cs, ++t) {
    int32_t a0 = t[0], a1 = NA > 1 ? t[tstride] : 0, a2 = NA > 2 ? t[2 * tstride] : 0;
    int32_t a3 = NA > 3 ? t[3 * tstride] : 0;
    int32_t b0 = NB > 0 ? t[toff] : 0, b1 = NB > 1 ? t[toff + tstride] : 0;
    const tt_dsp_word *dr = d, *xr = x;
    for (int32_t r = 0; r < rows; ++r, dr += dstride, xr += xstride) {
      const tt_dsp_word *dp = dr, *xp = xr, *yp = xr + y;
      const tt_dsp_word *const end = dr + (pairs & ~1);
      uint32_t w0 = NA > 1 ? xp[0] : 0, v0 = NB > 1 ? yp[0] : 0;
#if TT_DSP_ASM_ALL_REGS
      if (NA == 3 && NB == 0 && dp != end) {
        /* two pairs a trip in 13 instructions (gcc's C: 16) */
        const tt_dsp_word *xq = xp + 1;
        uint32_t d0, d1, w1, w2, u;
        __asm__ volatile(
            "1:\n\t"
            "ldrd %[d0], %[d1], [%[dp]], #8\n\t"
            "ldrd %[w1], %[w2], [%[xq]], #8\n\t"
            "smlad %[a0], %[d0], %[w0], %[a0]\n\t"
            "pkhbt %[u], %[w1], %[w0]\n\t"
            "smladx %[a1], %[d0], %[u], %[a1]\n\t"
            "smlad %[a2], %[d0], %[w1], %[a2]\n\t"
            "smlad %[a0], %[d1], %[w1], %[a0]\n\t"
            "pkhbt %[u], %[w2], %[w1]\n\t"
            "smladx %[a1], %[d1], %[u], %[a1]\n\t"
            "smlad %[a2], %[d1], %[w2], %[a2]\n\t"
            "mov %[w0], %[w2]\n\t"
            "cmp %[dp], %[end]\n\t"
            "bne 1b"
            : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [w0] "+r"(w0), [dp] "+r"(dp),
              [xq] "+r"(xq), [d0] "=&r"(d0), [d1] "=&r"(d1), [w1] "=&r"(w1), [w2] "=&r"(w2),
              [u] "=&r"(u)
            : [end] "r"(end)
            : "cc", "memory");
        xp = xq - 1;
      }
      if (NA == 2 && (NB == 1 || (NB == 2 && WG_ASM14)) && dp != end) {
        /* both phases of a stride-2 kernel, two pairs a trip in 19 instructions (NB 2; gcc's
         * C: 29, its 15 live values spilled) or 15 (NB 1): each PKHBT overwrites the x word
         * it no longer needs, so that 14 registers hold the loop */
        const tt_dsp_word *xq = xp + 1, *yq = NB > 1 ? yp + 1 : yp;
        uint32_t d0, d1, t1, t2;
/* the x phase both variants share: two pairs of dy words against x's, then y's words */
#define WG_X_PHASE                                                                          \
  "1:\n\t"                                                                                  \
  "ldrd %[d0], %[d1], [%[dp]], #8\n\t"                                                      \
  "ldrd %[t1], %[t2], [%[xq]], #8\n\t"                                                      \
  "smlad %[a0], %[d0], %[w0], %[a0]\n\t"                                                    \
  "pkhbt %[w0], %[t1], %[w0]\n\t"                                                           \
  "smladx %[a1], %[d0], %[w0], %[a1]\n\t"                                                   \
  "smlad %[a0], %[d1], %[t1], %[a0]\n\t"                                                    \
  "pkhbt %[t1], %[t2], %[t1]\n\t"                                                           \
  "smladx %[a1], %[d1], %[t1], %[a1]\n\t"                                                   \
  "mov %[w0], %[t2]\n\t"                                                                    \
  "ldrd %[t1], %[t2], [%[yq]], #8\n\t"
        if (NB > 1 && WG_ASM14)
          __asm__ volatile(
              WG_X_PHASE
              "smlad %[b0], %[d0], %[v0], %[b0]\n\t"
              "pkhbt %[v0], %[t1], %[v0]\n\t"
              "smladx %[b1], %[d0], %[v0], %[b1]\n\t"
              "smlad %[b0], %[d1], %[t1], %[b0]\n\t"
              "pkhbt %[t1], %[t2], %[t1]\n\t"
              "smladx %[b1], %[d1], %[t1], %[b1]\n\t"
              "mov %[v0], %[t2]\n\t"
              "cmp %[dp], %[end]\n\t"
              "bne 1b"
              : [a0] "+r"(a0), [a1] "+r"(a1), [b0] "+r"(b0), [b1] "+r"(b1), [w0] "+r"(w0),
                [v0] "+r"(v0), [dp] "+r"(dp), [xq] "+r"(xq), [yq] "+r"(yq), [d0] "=&r"(d0),
                [d1] "=&r"(d1), [t1] "=&r"(t1), [t2] "=&r"(t2)
              : [end] "r"(end)
              : "cc", "memory");
        else
          __asm__ volatile(
              WG_X_PHASE
              "smlad %[b0], %[d0], %[t1], %[b0]\n\t"
              "smlad %[b0], %[d1], %[t2], %[b0]\n\t"
              "cmp %[dp], %[end]\n\t"
              "bne 1b"
              : [a0] "+r"(a0), [a1] "+r"(a1), [b0] "+r"(b0), [w0] "+r"(w0), [dp] "+r"(dp),
                [xq] "+r"(xq), [yq] "+r"(yq), [d0] "=&r"(d0), [d1] "=&r"(d1), [t1] "=&r"(t1),
                [t2] "=&r"(t2)
              : [end] "r"(end)
              : "cc", "memory");
#undef WG_X_PHASE
        xp = xq - 1;
        yp = NB > 1 ? yq - 1 : yq;
      }
#endif
      for (; dp != end; dp += 2, xp += 2, yp += 2) {
        uint32_t d0, d1;
        tt_dsp_ldrd(dp, &d0, &d1);
        if (NA == 1) {
          uint32_t u0, u1;
          tt_dsp_ldrd(xp, &u0, &u1);
          a0 = __smlad(d0, u0, a0);
          a0 = __smlad(d1, u1, a0);
        }
        const uint32_t w1 = NA > 1 ? xp[1] : 0, w2 = NA > 1 ? xp[2] : 0;
        const uint32_t w3 = NA > 3 ? xp[3] : 0;
        if (NA > 1) {
          WG_PAIR(d0, w0, w1, w2, a0, a1, a2, a3, NA);
          WG_PAIR(d1, w1, w2, w3, a0, a1, a2, a3, NA);
        }
        if (NB == 1) {
          uint32_t u0, u1;
          tt_dsp_ldrd(yp, &u0, &u1);
          b0 = __smlad(d0, u0, b0);
          b0 = __smlad(d1, u1, b0);
        } else if (NB == 2) {
          const uint32_t v1 = yp[1], v2 = yp[2];
          WG_PAIR(d0, v0, v1, v2, b0, b1, b1, b1, 2);
          WG_PAIR(d1, v1, v2, v2, b0, b1, b1, b1, 2);
          v0 = v2;
        }
        w0 = w2;
      }
      if (pairs & 1) {
        const uint32_t d0 = *dp, w1 = NA > 1 ? xp[1] : 0, w2 = NA > 3 ? xp[2] : 0;
        if (NA == 1) a0 = __smlad(d0, xp[0], a0);
        else WG_PAIR(d0, w0, w1, w2, a0, a1, a2, a3, NA);
        if (NB == 1) b0 = __smlad(d0, yp[0], b0);
        if (NB == 2) WG_PAIR(d0, v0, yp[1], v0, b0, b1, b1, b1, 2);
      }
    }
    t[0] = a0;
    if (NA > 1) t[tstride] = a1;
    if (NA > 2) t[2 * tstride] = a2;
    if (NA > 3) t[3 * tstride] = a3;
    if (NB > 0) t[toff] = b0;
    if (NB > 1) t[toff + tstride] = b1;
  }
}

typedef void (*wg_sums_fn)(const tt_dsp_word *d, int32_t dstride, const tt_dsp_word *x,
                           int32_t xstride, int32_t y, int32_t rows, int32_t pairs, int32_t nc,
                           int32_t cs, tt_dw_int *t, int32_t tstride, int32_t toff);
#define WG_SUMS(NA, NB)                                                                      \
  static __attribute__((noinline)) TT_DSP_ASM_FN void wg_sums_##NA##NB(                                    \
      const tt_dsp_word *d, int32_t dstride, const tt_dsp_word *x, int32_t xstride,          \
      int32_t y, int32_t rows, int32_t pairs, int32_t nc, int32_t cs, tt_dw_int *t,          \
      int32_t tstride, int32_t toff) {                                                       \
    wg_sums(d, dstride, x, xstride, y, rows, pairs, nc, cs, NA, NB, t, tstride, toff);       \
  }
WG_SUMS(1, 0)
WG_SUMS(2, 0)
WG_SUMS(3, 0)
WG_SUMS(4, 0)
WG_SUMS(2, 1)
WG_SUMS(2, 2)
/* one phase's NA taps */
static const wg_sums_fn wg_sums_of[5] = {0, wg_sums_10, wg_sums_20, wg_sums_30, wg_sums_40};

/* T (int32, [kh, kw, c] in t) += the layer's sums, block of channels by block, band of dy
 * rows by band. */
static void wg_walk(const wg_layer *a, tt_dsp_word *stage, tt_dw_int *t) {
  const int32_t c = a->c, dwords = a->dwords, xwords = a->xwords, cs = a->chwords;
  /* the words no staging writes: after each dy row (at strides 1), and an x row's pairs
   * wholly outside the image (wg_stage_rows): the staging zeroed once */
  for (int32_t i = 0; i < a->block * cs; ++i) stage[i] = 0;
  for (int32_t c0 = 0; c0 < c; c0 += a->block) {
    const int32_t nc = c - c0 < a->block ? c - c0 : a->block;
    for (int32_t b = 0; b < a->n; ++b)
      for (int32_t oy0 = 0; oy0 < a->oh; oy0 += a->rows) {
        const int32_t rows = a->oh - oy0 < a->rows ? a->oh - oy0 : a->rows;
        wg_stage_rows(a->dy, a->mask, ((b * a->oh + oy0) * a->ow) * c + c0, c, a->ow * c, rows,
                      0, a->ow, dwords, nc, 0, stage, a->dstride, cs);
        for (int32_t ky0 = 0; ky0 < a->kh; ky0 += a->ky_step) {
          const int32_t ky1 = ky0 + a->ky_step < a->kh ? ky0 + a->ky_step : a->kh;
          /* the x rows [iy0, iy0 + xrows) as far as they are in the image */
          const int32_t iy0 = oy0 * a->sh + ky0 - a->pad_top;
          const int32_t xr = (rows - 1) * a->sh + (ky1 - ky0);
          tt_dsp_word *xs = stage + a->rows * a->dstride;
          int32_t r0 = iy0 < 0 ? -iy0 : 0, r1 = a->h - iy0 < xr ? a->h - iy0 : xr;
          if (r1 > r0)
            for (int32_t q = 0; q < a->phases; ++q) {
              /* position p is column p sw + q - pad_left: inside for p in [lo, hi) */
              const int32_t first = q - a->pad_left;
              const int32_t lo = first >= 0 ? 0 : (-first + a->sw - 1) / a->sw;
              const int32_t hi = a->wd - first <= 0 ? 0 : (a->wd - first + a->sw - 1) / a->sw;
              wg_stage_rows(a->x, 0, ((b * a->h + iy0 + r0) * a->wd + first) * c + c0, a->sw * c,
                            a->wd * c, r1 - r0, lo, hi > lo ? hi : lo, a->xpairs[q], nc, a->zp,
                            xs + r0 * xwords + a->xoff[q], xwords, cs);
            }
          for (int32_t ky = ky0; ky < ky1; ++ky) {
            /* the band's rows whose x row is in the image: [ra, rb) */
            int32_t ra = 0, rb = rows;
            while (ra < rb && (oy0 + ra) * a->sh + ky - a->pad_top < 0) ++ra;
            while (rb > ra && (oy0 + rb - 1) * a->sh + ky - a->pad_top >= a->h) --rb;
            if (ra == rb) continue;
            const tt_dsp_word *dr = stage + ra * a->dstride;
            const tt_dsp_word *xr = xs + (ra * a->sh + ky - ky0) * xwords;
            tt_dw_int *tr = t + ky * a->kw * c + c0;
            const int32_t xstride = a->sh * xwords;
            if (a->sw == 2 && a->taps[0] == 2 && a->taps[1] <= 2) {
              /* both phases in one walk: a dy word serves 3 or 4 taps */
              (a->taps[1] == 1 ? wg_sums_21 : wg_sums_22)(dr, dwords, xr, xstride, a->xoff[1],
                                                        rb - ra, dwords, nc, cs, tr, 2 * c, c);
              continue;
            }
            if (a->dstride == xwords) {
              /* strides 1: the rows [ra, rb) as one run (but the last row's zero words) */
              const int32_t run = (rb - ra) * xwords - (xwords - dwords);
              for (int32_t j0 = 0; j0 < a->taps[0]; j0 += 4) {
                const int32_t nt = a->taps[0] - j0 < 4 ? a->taps[0] - j0 : 4;
                wg_sums_of[nt](dr, 0, xr + (j0 >> 1), 0, 0, 1, run, nc, cs, tr + j0 * c, c, 0);
              }
              continue;
            }
            for (int32_t q = 0; q < a->phases; ++q)
              for (int32_t j0 = 0; j0 < a->taps[q]; j0 += 4) {
                const int32_t nt = a->taps[q] - j0 < 4 ? a->taps[q] - j0 : 4;
                wg_sums_of[nt](dr, dwords, xr + a->xoff[q] + (j0 >> 1), xstride, 0, rb - ra,
                               dwords, nc, cs, tr + (q + j0 * a->sw) * c, a->sw * c, 0);
              }
          }
        }
      }
  }
}

/* wg_walk where a band is one dy row at strides 1 with all kh tap rows staged at once (the
 * smallest band the staging query asks: the person detector's 3x3/1 8 @48x48 gets 1,600 B,
 * four channels a block). Band oy reads the x rows [oy - pad_top, + kh), kh - 1 of which
 * band oy - 1 read: the x rows are a ring of kh slots (row iy in slot iy mod kh), and each
 * band stages only the rows past those the ring holds (`have`: the rows below it), one
 * where wg_walk stages kh (kern27: that layer's x staged once, not three times; 3.03 ->
 * 2.52 instructions a MAC). Its own function, so that wg_walk's code is unchanged (a ring
 * test inside it cost its other layers 0.1-0.25%). The same sums: the same staged words,
 * read from another slot, the taps' sums as wg_walk's strides-1 run of one row. */
static int wg_ring(const wg_layer *a) {
  return a->rows == 1 && a->ky_step == a->kh && a->sh == 1 && a->sw == 1;
}
static __attribute__((noinline)) void wg_walk_ring(const wg_layer *a, tt_dsp_word *stage,
                                                   tt_dw_int *t) {
  const int32_t c = a->c, dwords = a->dwords, xwords = a->xwords, cs = a->chwords;
  const int32_t kh = a->kh, first = -a->pad_left, lo = first >= 0 ? 0 : -first;
  const int32_t hi0 = a->wd - first, hi = hi0 > lo ? hi0 : lo;
  tt_dsp_word *const xs = stage + a->dstride;
  for (int32_t i = 0; i < a->block * cs; ++i) stage[i] = 0;     /* as wg_walk's */
  for (int32_t c0 = 0; c0 < c; c0 += a->block) {
    const int32_t nc = c - c0 < a->block ? c - c0 : a->block;
    for (int32_t b = 0; b < a->n; ++b) {
      int32_t have = -a->pad_top;     /* the ring holds no row of this image: the first
                                       * band's first row is -pad_top */
      for (int32_t oy = 0; oy < a->oh; ++oy) {
        const int32_t iy0 = oy - a->pad_top;
        wg_stage_rows(a->dy, a->mask, ((b * a->oh + oy) * a->ow) * c + c0, c, a->ow * c, 1,
                      0, a->ow, dwords, nc, 0, stage, a->dstride, cs);
        const int32_t end = iy0 + kh < a->h ? iy0 + kh : a->h;
        for (int32_t iy = have > 0 ? have : 0; iy < end; ++iy)
          wg_stage_rows(a->x, 0, ((b * a->h + iy) * a->wd + first) * c + c0, c, a->wd * c, 1,
                        lo, hi, a->xpairs[0], nc, a->zp, xs + (iy % kh) * xwords, xwords, cs);
        have = iy0 + kh;
        for (int32_t ky = 0; ky < kh; ++ky) {
          const int32_t iy = iy0 + ky;
          if (iy < 0 || iy >= a->h) continue;
          const tt_dsp_word *xr = xs + (iy % kh) * xwords;
          tt_dw_int *tr = t + ky * a->kw * c + c0;
          for (int32_t j0 = 0; j0 < a->taps[0]; j0 += 4) {
            const int32_t nt = a->taps[0] - j0 < 4 ? a->taps[0] - j0 : 4;
            wg_sums_of[nt](stage, 0, xr + (j0 >> 1), 0, 0, 1, dwords, nc, cs, tr + j0 * c, c,
                           0);
          }
        }
      }
    }
  }
}

/* ---- Small maps: a group of four channels' whole map staged once (dwig30) --------------
 * Maps of fewer than 4 output columns (the person detector's 3x3/1 256 @3x3 and 3x3/2 128
 * @6x6), where neither walk pays: the lane walk stages an x row per dy row and tap row
 * (7.3-9.6 instructions a MAC when measured, round 8), the channel-major walk pays its band
 * set-up per row of 2 pairs (13.7 and 17.2, dwig30), and they went to the portable loop
 * (6.5 and 8.2). Here a group of four channels stages its whole dy map and x map once a
 * batch image, put_halves' two words a position (even lanes, odd lanes; x less its zero
 * point; x's columns by stride phase, so that a tap's columns are consecutive words), in
 * local arrays, and each tap adds its in-image positions' products straight from them to
 * its four sums: two LDRD and four SMLAxy a position (4 MACs), its start, rows and skips in
 * a table made once a call (wg_tap), every tap of a group in one assembly loop. Channels a
 * multiple of 4 (whole groups: no partial loads), 3x3 kernels and below, dy maps up to 6
 * columns and 36 positions, x up to 144 staged: also the maps of 4-6 columns, whose other
 * walks it beats (the person detector's 3x3/2 64 @12x12 5.95 -> 4.42, 3x3/1 128 @6x6 3.30
 * -> 2.92, MCUNet's 3x3/1 576 @4x4 4.41 -> 3.13; mcu_grad_dsp.py, QEMU instructions); its
 * arrays 2 KB of stack (wg_small_walk's frame 2,072 B, a path of about 3.1 KB: below the
 * pointwise input gradient's, stage_on_stack's high-water). */
#define WG_SMALL_X 144                /* staged x positions (12x12) */
#define WG_SMALL_D 36                 /* dy positions (6x6) */
#define WG_SMALL_TAPS 9               /* kh kw (3x3) */
#define WG_SMALL_COLS 6               /* output columns */

typedef struct {
  const tt_dsp_word *d, *x;           /* the tap's first in-image position in ds and xs */
  int32_t rows;                       /* its rows (0: none) */
  int32_t dcols;                      /* bytes of its columns in a staged dy row */
  int32_t dskip, xskip;               /* bytes from a row's end to the next row's start */
  int32_t sum[4];                     /* the group's sums, lanes 0-3 */
} wg_tap;

/* Every tap's four sums (tap[k].sum) += its products over the staged image: in assembly
 * (fourteen registers), per tap 12 + 7 a row + 8 a position. A function of its own: inlined,
 * its registers made gcc spill around it the whole walk's (+200 B of code). */
#if TT_DSP_ASM_ALL_REGS
typedef char wg_tap_bytes_check[sizeof(wg_tap) == 40 ? 1 : -1];  /* the assembly's offsets */
#endif
static __attribute__((noinline)) TT_DSP_ASM_FN void wg_small_taps(wg_tap *tap, wg_tap *end) {
#if TT_DSP_ASM_ALL_REGS
  uint32_t a0, a1, a2, a3, de, dd, xe, xo, rows;
  const tt_dsp_word *dp, *xp, *dend;
  __asm__ volatile(
    "0:\n\t"
    "ldrd %[dp], %[xp], [%[tp]]\n\t"
    "ldr %[rows], [%[tp], #8]\n\t"
    "ldrd %[a0], %[a1], [%[tp], #24]\n\t"
    "ldrd %[a2], %[a3], [%[tp], #32]\n\t"
    "cmp %[rows], #0\n\t"
    "beq 3f\n"
    "1:\n\t"
    "ldr %[de], [%[tp], #12]\n\t"
    "add %[dend], %[dp], %[de]\n"
    "2:\n\t"
    "ldrd %[de], %[dd], [%[dp]], #8\n\t"
    "ldrd %[xe], %[xo], [%[xp]], #8\n\t"
    "smlabb %[a0], %[de], %[xe], %[a0]\n\t"
    "smlatt %[a2], %[de], %[xe], %[a2]\n\t"
    "smlabb %[a1], %[dd], %[xo], %[a1]\n\t"
    "smlatt %[a3], %[dd], %[xo], %[a3]\n\t"
    "cmp %[dp], %[dend]\n\t"
    "bne 2b\n\t"
    "ldrd %[de], %[dd], [%[tp], #16]\n\t"
    "add %[dp], %[dp], %[de]\n\t"
    "add %[xp], %[xp], %[dd]\n\t"
    "subs %[rows], %[rows], #1\n\t"
    "bne 1b\n"
    "3:\n\t"
    "strd %[a0], %[a1], [%[tp], #24]\n\t"
    "strd %[a2], %[a3], [%[tp], #32]\n\t"
    "add %[tp], %[tp], #40\n\t"
    "cmp %[tp], %[end]\n\t"
    "bne 0b"
    : [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [de] "=&r"(de),
      [dd] "=&r"(dd), [xe] "=&r"(xe), [xo] "=&r"(xo), [rows] "=&r"(rows), [dp] "=&r"(dp),
      [xp] "=&r"(xp), [dend] "=&r"(dend), [tp] "+r"(tap)
    : [end] "r"(end)
    : "cc", "memory");
#else
  for (; tap != end; ++tap) {
    int32_t a0 = tap->sum[0], a1 = tap->sum[1], a2 = tap->sum[2], a3 = tap->sum[3];
    const tt_dsp_word *dp = tap->d, *xp = tap->x;
    for (int32_t r = 0; r < tap->rows; ++r) {
      for (const tt_dsp_word *dend = dp + (tap->dcols >> 2); dp != dend; dp += 2, xp += 2)
        DW_MAC(dp, xp);
      dp += tap->dskip >> 2, xp += tap->xskip >> 2;
    }
    tap->sum[0] = a0, tap->sum[1] = a1, tap->sum[2] = a2, tap->sum[3] = a3;
  }
#endif
}

/* Every tap's dw[k c + j] = (float)sum[j] * unit (round to nearest, no contraction: the
 * portable conversion; 0 times unit where a tap has no position), its sums then zeroed for
 * the next group: 21 instructions a tap where gcc's C took about 30 (dwig30). */
static __attribute__((noinline)) void wg_small_floats(wg_tap *tap, wg_tap *end, float *o,
                                                      int32_t c, float unit) {
#if TT_DSP_ASM_ALL_REGS && defined(__ARM_FP) && (__ARM_FP & 4)
  uint32_t a0, a1, a2, a3;
  __asm__ volatile(
    "0:\n\t"
    "ldrd %[a0], %[a1], [%[tp], #24]\n\t"
    "ldrd %[a2], %[a3], [%[tp], #32]\n\t"
    "vmov s0, s1, %[a0], %[a1]\n\t"
    "vmov s2, s3, %[a2], %[a3]\n\t"
    "movs %[a0], #0\n\t"
    "movs %[a1], #0\n\t"
    "strd %[a0], %[a1], [%[tp], #24]\n\t"
    "strd %[a0], %[a1], [%[tp], #32]\n\t"
    "vcvt.f32.s32 s0, s0\n\tvcvt.f32.s32 s1, s1\n\t"
    "vcvt.f32.s32 s2, s2\n\tvcvt.f32.s32 s3, s3\n\t"
    "vmul.f32 s0, s0, %[u]\n\tvmul.f32 s1, s1, %[u]\n\t"
    "vmul.f32 s2, s2, %[u]\n\tvmul.f32 s3, s3, %[u]\n\t"
    "vstmia %[o], {s0-s3}\n\t"
    "add %[o], %[o], %[cb]\n\t"
    "add %[tp], %[tp], #40\n\t"
    "cmp %[tp], %[end]\n\t"
    "bne 0b"
    : [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [tp] "+r"(tap),
      [o] "+r"(o)
    : [end] "r"(end), [cb] "r"(4 * c), [u] "t"(unit)
    : "s0", "s1", "s2", "s3", "cc", "memory");
#else
  for (; tap != end; ++tap, o += c)
    for (int32_t j = 0; j < 4; ++j) o[j] = (float)tap->sum[j] * unit, tap->sum[j] = 0;
#endif
}

/* tt_dsp_depthwise_weight_grad_s8 of a layer of fewer than 4 output columns (its arguments,
 * so that the call is a jump): 0 where the small-map walk does not take it (nor the other
 * walks: the portable loop's). -Os: its loops are the assembly's (wg_small_taps) and the
 * stagings', 0.3 KB less code than at -O2 and the same assembly. */
static __attribute__((noinline, optimize("Os"))) int wg_small_walk(
    const int8_t *dy, const uint8_t *mask, int32_t n, int32_t oh, int32_t ow, int32_t c,
    int32_t m, const int8_t *x, int32_t zp, int32_t h, int32_t wd, int32_t kh, int32_t kw,
    const tt_window *win, float unit, float *dw, void *stage_mem, int32_t stage_bytes) {
  (void)stage_mem, (void)stage_bytes;           /* its staging is its own, on the stack */
  const tt_window v = *win;
  const int32_t sw = v.stride_w, pw = sw >= 1 ? (wd + sw - 1) / sw : 0, xp = sw * pw;
  if (m != 1 || (c & 3) != 0 || v.dilation_h != 1 || v.dilation_w != 1 || kh < 1 ||
      kw < 1 || kh * kw > WG_SMALL_TAPS || v.stride_h < 1 || sw < 1 || wd > WG_SMALL_X ||
      h * xp > WG_SMALL_X || oh * ow > WG_SMALL_D)
    return 0;
  tt_dsp_word ds[2 * WG_SMALL_D] __attribute__((aligned(8)));
  tt_dsp_word xs[2 * WG_SMALL_X] __attribute__((aligned(8)));
  wg_tap tap[WG_SMALL_TAPS];
  const uint32_t nzp = (uint32_t)(uint16_t)(-zp) * 0x00010001u;   /* -zp in both halves */
  const int32_t nd = oh * ow, nx = h * wd, taps = kh * kw;
  uint8_t at[WG_SMALL_X];                       /* x position q's staged position */
  for (int32_t q = 0; q < nx; ++q) {
    const int32_t iy = q / wd, ix = q - iy * wd;
    at[q] = (uint8_t)(iy * xp + (ix % sw) * pw + ix / sw);
  }
  for (int32_t k = 0; k < taps; ++k) {
    const int32_t ky = k / kw, kx = k - ky * kw;
    int32_t oy0, oy1, ox0, ox1;
    tt_out_range(ky, v.stride_h, 1, v.pad_top, h, oh, &oy0, &oy1);
    tt_out_range(kx, sw, 1, v.pad_left, wd, ow, &ox0, &ox1);
    const int32_t cols = ox1 - ox0, ix = ox0 * sw + kx - v.pad_left;
    wg_tap *const tp = &tap[k];
    tp->rows = cols > 0 && oy1 > oy0 ? oy1 - oy0 : 0;
    tp->d = ds + 2 * (oy0 * ow + ox0);
    tp->x = xs + 2 * ((oy0 * v.stride_h + ky - v.pad_top) * xp + (ix % sw) * pw + ix / sw);
    tp->dcols = 8 * cols;
    tp->dskip = 8 * (ow - cols);
    tp->xskip = 8 * (v.stride_h * xp - cols);
    for (int32_t j = 0; j < 4; ++j) tp->sum[j] = 0;
  }
  for (int32_t c0 = 0; c0 < c; c0 += 4) {
    for (int32_t b = 0; b < n; ++b) {
      for (int32_t p = 0; p < nd; ++p) {
        const int32_t i = (b * nd + p) * c + c0;          /* a multiple of 4 */
        uint32_t w = tt_dsp_load4(dy + i);
        if (mask) w &= tt_dsp_mask_lanes((uint32_t)mask[i >> 3] >> (i & 4));
        tt_dsp_strd(ds + 2 * p, __sxtb16(w), tt_dsp_sxtb16_odd(w));
      }
      const int8_t *src = x + b * nx * c + c0;
      for (int32_t q = 0; q < nx; ++q, src += c) {
        const uint32_t w = tt_dsp_load4(src);
        tt_dsp_strd(xs + 2 * at[q], __sxtab16(nzp, w), tt_dsp_sxtab16_odd(nzp, w));
      }
      wg_small_taps(tap, tap + taps);
    }
    wg_small_floats(tap, tap + taps, dw + c0, c, unit);
  }
  return 1;
}

int tt_dsp_depthwise_weight_grad_s8(const int8_t *dy, const uint8_t *mask, int32_t n,
                                    int32_t oh, int32_t ow, int32_t c, int32_t m,
                                    const int8_t *saved, int32_t x_zp, int32_t h, int32_t wd,
                                    int32_t kh, int32_t kw, const tt_window *win, float unit,
                                    float *dw, void *stage_mem, int32_t stage_bytes) {
  if (ow <= WG_SMALL_COLS) {      /* the small maps' walk; below 4 columns no other */
    const int done = wg_small_walk(dy, mask, n, oh, ow, c, m, saved, x_zp, h, wd, kh, kw, win,
                                   unit, dw, stage_mem, stage_bytes);
    if (done || ow < 4) return done;
  }
  const tt_window v = *win;
  stage_mem = tt_dsp_stage_align8(stage_mem, &stage_bytes);
  if (stage_mem == 0 || !weight_layer(m, ow, kh, kw, win)) return 0;
  const int32_t groups = (c + 3) >> 2;
  const int32_t per_group = 8 * (ow + wd);          /* a staged dy row and an x row */
  int32_t nb = stage_bytes / per_group;
  if (nb > groups) nb = groups;
  if (nb == 0) return 0;
  const int32_t sw = v.stride_w;
  const tap_fn tap = sw == 1 ? tap_sums_1 : sw == 2 ? tap_sums_2 : tap_sums_any;
  int32_t ox0[DW_MAX_K], ox1[DW_MAX_K];
  for (int32_t kx = 0; kx < kw; ++kx)
    tt_out_range(kx, sw, 1, v.pad_left, wd, ow, &ox0[kx], &ox1[kx]);
  tt_dsp_word *stage = (tt_dsp_word *)stage_mem;
  tt_dw_int *t = (tt_dw_int *)dw;            /* the exact sums, converted in place at the end */
  const int32_t taps = kh * kw * c;
  for (int32_t i = 0; i < taps; ++i) t[i] = 0;
  wg_layer wa = {.dy = dy, .mask = mask, .x = saved, .n = n, .oh = oh, .ow = ow, .c = c,
                 .h = h, .wd = wd, .kh = kh, .kw = kw, .sh = v.stride_h, .sw = v.stride_w,
                 .pad_top = v.pad_top, .pad_left = v.pad_left, .zp = x_zp};
  /* The channel-major walk wherever its staging holds a band of two or more dy rows, and
   * at one row a band where a row's kh x rows serve kh kw taps of one dy row (stride 1) or
   * kernels of 4 taps a phase. At stride 2, 3x3, one row a band (3 x rows staged a dy row
   * where 2 would do) the lane walk stays: the person detector's 16 @48x48 at 2,304 B, 4.81
   * instructions a MAC against 5.33 (benchmarks/dw_weight_grad.py); the query now asks
   * 2,384 B there, a band of two rows (weight_band_bytes: 4.01). */
  const int channel_major = wg_plan(&wa, stage_bytes >> 2) &&
                            (wa.rows > 1 || WG_ONE_ROW(kw, v.stride_h, v.stride_w));
  if (channel_major) {
    if (wg_ring(&wa)) wg_walk_ring(&wa, stage, t);
    else wg_walk(&wa, stage, t);
    for (int32_t i = 0; i < taps; ++i) dw[i] = (float)t[i] * unit;
    return 1;
  }
  for (int32_t g0 = 0; g0 < groups; g0 += nb) {
    const int32_t c0 = 4 * g0, nbk = groups - g0 < nb ? groups - g0 : nb;
    const int32_t nc = c - c0 < 4 * nbk ? c - c0 : 4 * nbk;
    tt_dsp_word *ds = stage, *xs = stage + 2 * ow * nbk;
    for (int32_t b = 0; b < n; ++b)
      for (int32_t oy = 0; oy < oh; ++oy) {
        stage_positions(dy, mask, (b * oh + oy) * ow * c + c0, ow, c, nbk, nc, 0, ds, 2 * ow);
        for (int32_t ky = 0; ky < kh; ++ky) {
          const int32_t iy = oy * v.stride_h + ky - v.pad_top;
          if (iy < 0 || iy >= h) continue;
          stage_positions(saved, 0, (b * h + iy) * wd * c + c0, wd, c, nbk, nc, x_zp, xs,
                          2 * wd);
          for (int32_t kx = 0; kx < kw; ++kx)
            if (ox0[kx] < ox1[kx])
              tap(ds + 2 * ox0[kx], xs + 2 * (ox0[kx] * sw + kx - v.pad_left),
                  ox1[kx] - ox0[kx], sw, nbk, 2 * ow, 2 * wd, nc,
                  t + (ky * kw + kx) * c + c0);
        }
      }
  }
  for (int32_t i = 0; i < taps; ++i) dw[i] = (float)t[i] * unit;
  return 1;
}

#else
typedef int tt_depthwise_grad_dsp_unused;     /* ISO C: a translation unit is not empty */
#endif
