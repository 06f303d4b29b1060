/* Cortex-M DSP versions of the int8-gradient training kernels (private). Chosen at compile
 * time as the forward's are (tt_fwd_internal.h): on a core with the DSP extension
 * (__ARM_FEATURE_DSP: Cortex-M4, M7, M33, ...) unless -DTT_PORTABLE; every other target
 * compiles the portable C99 only. Both give the same bits: the DSP code computes the same
 * exact int32 accumulators in another order (tt_kernels.h: integer sums bounded below 2^31,
 * so any order or factoring gives the same integers) and rounds them with the same rule.
 *
 * The staging buffer is an array on the stack of TT_GRAD_DSP_STAGE_BYTES (default 4096)
 * per call, the only memory the DSP versions use besides the kernels' arguments. */
#ifndef TT_GRAD_DSP_H
#define TT_GRAD_DSP_H

#include "tt_common.h"
#include "tt_dsp_words.h"
#include "tt_qas.h"

#define TT_GRAD_DSP TT_KERNELS_DSP

/* The stochastic rounding rule (tt_round_stochastic, times 1) of one element as assembly
 * text, for the asm loops that round in registers (tt_grad_quant.c's round_fours,
 * tt_input_grad_dsp.c's round8). Operands by name: x the xorshift state, l a scratch word,
 * sc 2^(noise_shift - 8), rr the multiplier, hs the high word's shift. Each element: the
 * draw (three EORs), the noise's two words (BIC, UMULL by sc), the sum times the multiplier
 * onto them (SMLAL), the high word's arithmetic shift: the same 64-bit sums and draws as the
 * C rule. RULE0 leaves element `a` in the low byte of word w (its high word); RULE puts
 * element `a` into byte `at` of word w, through the free register f. */
#define TT_GDSP_DRAW                                                                        \
  "eor %[x], %[x], %[x], lsl #13\n\teor %[x], %[x], %[x], lsr #17\n\t"                      \
  "eor %[x], %[x], %[x], lsl #5\n\tbic %[l], %[x], #255\n\t"
#define TT_GDSP_RULE0(a, w)                                                                 \
  TT_GDSP_DRAW "umull %[l], %[" w "], %[l], %[sc]\n\t"                                      \
  "smlal %[l], %[" w "], %[" a "], %[rr]\n\tasr %[" w "], %[" w "], %[hs]\n\t"
#define TT_GDSP_RULE(a, f, w, at)                                                           \
  TT_GDSP_DRAW "umull %[l], %[" f "], %[l], %[sc]\n\t"                                      \
  "smlal %[l], %[" f "], %[" a "], %[rr]\n\tasr %[" f "], %[" f "], %[hs]\n\t"              \
  "bfi %[" w "], %[" f "], #" at ", #8\n\t"

/* The rule rounding to nearest (tt_round_grads' hi_shift > 0 case: times 1) of one element
 * as assembly text, for the same loops: ((acc r >> 32) + up) >> hs, up = 2^(hs - 1). SMMLA
 * is that sum (the high word of the 64-bit product plus up, modulo 2^32 as the C int32
 * addition), then the arithmetic shift: two instructions where the stochastic rule takes
 * seven (no draw, no noise words). Operands by name: rr the multiplier, up, hs. NEAR0
 * leaves element `a` in the low byte of word w; NEAR puts it into byte `at` of word w,
 * rounding in a's own register. */
#define TT_GDSP_NEAR0(a, w)                                                                 \
  "smmla %[" w "], %[" a "], %[rr], %[up]\n\tasr %[" w "], %[" w "], %[hs]\n\t"
#define TT_GDSP_NEAR(a, w, at)                                                              \
  "smmla %[" a "], %[" a "], %[rr], %[up]\n\tasr %[" a "], %[" a "], %[hs]\n\t"            \
  "bfi %[" w "], %[" a "], #" at ", #8\n\t"

#ifndef TT_GRAD_DSP_STAGE_BYTES
#define TT_GRAD_DSP_STAGE_BYTES 4096
#endif

/* The fused pointwise weight update's staging of a layer's whole saved input as int16
 * (tt_param_grad_dsp.c): 2 * positions * channels bytes, the caller's (the arena of the
 * generated program: tt_conv2d_weight_update_s8_s8_stage_bytes). At most this much of it is
 * asked for (it holds the person detector's trained pointwise layers: 256 channels at 3x3
 * take 6 KB); the dy columns' 32 bytes per four positions come on top. A larger layer takes
 * the large-map walk (tt_dsp_pointwise_weight_sums), which needs no staging. */
#ifndef TT_GRAD_DSP_WEIGHT_STAGE_BYTES
#define TT_GRAD_DSP_WEIGHT_STAGE_BYTES 8192
#endif

/* The fused pointwise update's chunk buffer (TT_WDSP_CHUNK_BYTES below) in a build whose
 * stack staging is `grad_stage_bytes`. */
#define TT_WDSP_CHUNK_BYTES_OF(grad_stage_bytes) ((grad_stage_bytes) - 256)

/* The dy columns (two words per group of four positions each) a pointwise weight gradient
 * stages at once: four output channels' (one load, mask and two SXTB16 per position for all
 * four). */
static inline int32_t tt_wdsp_column_bytes(int32_t rows) { return 32 * ((rows + 3) >> 2); }

/* Bytes of a pointwise layer's weight-gradient staging, `rows` positions of k channels: the
 * saved input as int16, then the dy columns. Target-independent, so that every build plans
 * the same arena. */
static inline int32_t tt_wdsp_stage_bytes(int32_t rows, int32_t k) {
  const int32_t groups = (rows + 3) >> 2, blocks = (k + 7) >> 3;
  return blocks * groups * 64 + tt_wdsp_column_bytes(rows);
}

#if TT_GRAD_DSP
#include <arm_acle.h>
#include <string.h>


/* The int8 input gradient of a pointwise layer (a 1x1 convolution of stride 1 without
 * padding, or a fully connected layer): dx[p, c] = sum over o < co of h[p, o] * w[o, c],
 * h = dy * mult[o] (0 where masked), for `rows` positions p. dy [rows, co] int8 (mask over
 * dy or NULL, dy[0]'s bit at index mask_at: a range of a layer's rows); the weights split at input channel k: w_lo [co, k], w_hi [co, ci - k] (NULL
 * when k == ci). `keep` (tt_common.h, its positions the rows; NULL: none) receives the
 * accumulators of the rows it names and `amax` their largest magnitude over all rows and
 * keep's probe rows (either or both), or `r` rounds them into dx [rows, ci] (stochastically with the
 * draws of dx's row-major order, as the portable walk, leaving r's stream where it does)
 * and, if amax is not NULL, measures them too (the optimistic pass's check, tt_input_grad.c).
 * Returns 0, having done nothing, when the layer is not one it takes (a multiplier outside
 * [0, 2^TT_GRAD_MAX_SHIFT], co too large for the buffer, or no rows) or the call both
 * rounds and keeps (the walks do one or the other); the caller then runs the
 * portable code. A call of few rows reads the weights without staging them
 * (tt_dsp_pointwise_input_grad_rows_s8, by a cost rule). */
int tt_dsp_pointwise_input_grad_s8(const int8_t *dy, const uint8_t *mask, int32_t mask_at,
                                   int32_t rows,
                                   int32_t co, const int8_t *w_lo, int32_t k,
                                   const int8_t *w_hi, int32_t ci, const int16_t *mult,
                                   const tt_keep *keep, uint32_t *amax, tt_rounder *r,
                                   int8_t *dx);

/* tt_dsp_pointwise_input_grad_s8's rows without staging the weights (the same arguments and
 * results but keep's probes, which it leaves; any number of rows, a layer it takes): the rows' h = dy * mult staged two rows
 * at a time on the stack, in TT_GRAD_DSP_STAGE_BYTES with chunks of the two rows'
 * accumulators, the int8 weights read as they are. Only where tt_dsp_rows_fit(co). Cheaper
 * than staging where the rows are few (tt_dsp_pointwise_input_grad_s8 compares the two). */
int tt_dsp_pointwise_input_grad_rows_s8(const int8_t *dy, const uint8_t *mask, int32_t mask_at,
                                        int32_t rows, int32_t co, const int8_t *w_lo,
                                        int32_t k, const int8_t *w_hi, int32_t ci,
                                        const int16_t *mult, const tt_keep *keep,
                                        uint32_t *amax, tt_rounder *r, int8_t *dx);

/* The words of two rows' h (pairs of outputs, interleaved) and of a chunk of their
 * accumulators in that staging (at least four columns a row: co <= 1016 of 4 KB). */
static inline int32_t tt_dsp_rows_h_words(int32_t co) { return 2 * ((co + 1) >> 1); }
static inline int32_t tt_dsp_rows_chunk(int32_t co) {
  return ((TT_GRAD_DSP_STAGE_BYTES / 4 - tt_dsp_rows_h_words(co)) >> 1) & ~3;
}
static inline int tt_dsp_rows_fit(int32_t co) { return tt_dsp_rows_chunk(co) >= 4; }

/* Stochastic rounding draws from the op's xorshift32 stream in dx's row-major order
 * (tt_round_grad), but the DSP walks go block of channels by block: after a position's nc
 * draws the stream must skip the position's other n elements. xorshift32 is linear over
 * GF(2) (each of its three steps XORs shifted copies of the state), so n steps are one
 * fixed 32 x 32 bit matrix: J(x) = J(bits 0-3 of x) ^ ... ^ J(bits 28-31), eight lookups in
 * tables of 16 words built once per call (by squaring: J of the 32 single bits from those of
 * M^a, tt_gdsp_jump_init). Built
 * only where the jumps pay for it; else the jump steps the stream n times. */
typedef struct {
  int32_t n;                  /* draws skipped per jump */
  int32_t built;              /* t holds J, else tt_gdsp_jump steps n times */
  uint32_t t[8][16];          /* t[k][v] = J(v << 4k) */
} tt_gdsp_jumper;

/* The stream n steps further. */
uint32_t tt_gdsp_skip(uint32_t x, int32_t n);

/* Prepares j to skip n draws, `jumps` times in the call (the cost decides the form). */
void tt_gdsp_jump_init(tt_gdsp_jumper *j, int32_t n, int32_t jumps);

static inline uint32_t tt_gdsp_jump(const tt_gdsp_jumper *j, uint32_t x) {
  if (!j->built) return tt_gdsp_skip(x, j->n);
  return j->t[0][x & 15u] ^ j->t[1][(x >> 4) & 15u] ^ j->t[2][(x >> 8) & 15u] ^
         j->t[3][(x >> 12) & 15u] ^ j->t[4][(x >> 16) & 15u] ^ j->t[5][(x >> 20) & 15u] ^
         j->t[6][(x >> 24) & 15u] ^ j->t[7][x >> 28];
}

/* The weight gradient of a pointwise layer (1x1 convolution of stride 1 without padding):
 * dw[o, c] = (float)T * unit, T = the sum over the positions p < rows of
 * dy[p, o] * (saved[p, c] - x_zp) (dy [rows, co] int8, 0 where masked; saved [rows, k]).
 * tt_dsp_pointwise_weight_stage stages `saved` into the caller's `mem` (`bytes`, 8-byte
 * aligned) as int16 x - x_zp, fills st and returns 1, or returns 0 when
 * tt_wdsp_stage_bytes(rows, k) does not fit or rows < 2 (the caller takes another walk);
 * then tt_dsp_pointwise_weight_channel (the same dy, mask, rows, co, k and x_zp) writes
 * output channel o's k gradients into out (it keeps the staged dy columns in st for the
 * next o). */
typedef struct {
  tt_dsp_word *x, *dys;      /* the staged input; the dy columns */
  int32_t first;              /* the output channel of the first staged column, or -1 */
} tt_wdsp_stage;

/* The positions up to which tt_dsp_pointwise_weight_direct takes a layer (its dy column,
 * 2 bytes a position, is on the stack). */
#define TT_WDSP_DIRECT_ROWS 256

/* A fused pointwise weight update whose input fits no staging of the caller's stages it in
 * chunks of input channels instead, in this much of its own stack (in the budget of
 * TT_GRAD_DSP_STAGE_BYTES, the input gradients' stack staging; the caller enters it only
 * where a chunk fits, so no other call takes this frame. A generated program's pointwise
 * input gradients' staged walk, in the same backward, is deeper: its stack peak stays
 * theirs. The TFLM glue's update holds its own staging below this frame: ~4 KB more stack
 * there on a layer that chunks). MobileNetV2's blocks.12/13.pointwise1
 * (32 channels at 8x8, 4,608 B whole) take 16 channels a chunk from 2,560 B. */
#ifndef TT_WDSP_CHUNK_BYTES
#define TT_WDSP_CHUNK_BYTES TT_WDSP_CHUNK_BYTES_OF(TT_GRAD_DSP_STAGE_BYTES)
#endif

/* tt_dsp_pointwise_weight_stage's int16 staging of channels 0 .. k - 1 of `saved`, whose
 * rows are `stride` bytes apart (saved points at a chunk's first channel): 0 when
 * tt_wdsp_stage_bytes(rows, k) does not fit `bytes` or rows < 2. The channel calls then
 * take this k and the weights of the chunk. */
int tt_dsp_pointwise_weight_stage_part(const int8_t *saved, int32_t rows, int32_t stride,
                                       int32_t k, int32_t x_zp, void *mem, int32_t bytes,
                                       tt_wdsp_stage *st);

/* Output channel o's k gradients into out, as tt_dsp_pointwise_weight_channel, for a layer
 * whose input fits no staging: nothing staged but o's dy column (on the stack). 0,
 * having done nothing, when rows < 2 or rows > TT_WDSP_DIRECT_ROWS. */
int tt_dsp_pointwise_weight_direct(const int8_t *dy, const uint8_t *mask, int32_t rows,
                                   int32_t co, int32_t o, const int8_t *saved, int32_t k,
                                   int32_t x_zp, float unit, float *out);

/* A pointwise layer's weight sums without staging its whole input, for maps whose input fits
 * no staging of the caller's (tt_param_grad_dsp.c, "Large maps"): acc[o acc_stride + j] +=
 * T(o, c0 + j), j < cb, o < co, the sum over the positions p < rows of dy[p, o] *
 * (saved[p, c0 + j] - x_zp) (dy [rows, co], 0 where masked; saved [rows, k]; x_zp an int8
 * zero point; acc 4-byte aligned), in int32: exact where rows <= TT_GRAD_MAX_POSITIONS (the
 * callers' bound: int8 gradients lie in [-127, 127], |dy (saved - x_zp)| <= 127 * 255),
 * modulo 2^32 past it. The positions go in
 * chunks through `mem` (`bytes`, from its first 8-byte boundary), whose size must give
 * tt_dsp_wbig_positions(rows, cb, bytes) > 0 (with 0 it returns, having done nothing). */
void tt_dsp_pointwise_weight_sums(const int8_t *dy, const uint8_t *mask, int32_t rows,
                                  int32_t co, const int8_t *saved, int32_t k, int32_t c0,
                                  int32_t cb, int32_t x_zp, tt_dsp_word *acc,
                                  int32_t acc_stride, void *mem, int32_t bytes);

/* Whether tt_dsp_pointwise_weight_floats takes a layer of rows positions, co outputs and k
 * inputs in blocks of cb, given `bytes` (8-byte aligned) for its chunk: the build's assembly
 * and FPv5, co, k and cb multiples of 4, and one chunk for every position (maps of 8x8 and
 * below in the callers' buffer). */
int tt_dsp_wfloat_fits(int32_t rows, int32_t co, int32_t k, int32_t cb, int32_t bytes);

/* The widest block of input channels (k, or a multiple of 8, or 4, below it) for which
 * tt_dsp_wfloat_fits, 0 where none (dwig30). */
int32_t tt_dsp_wfloat_block(int32_t rows, int32_t co, int32_t k, int32_t bytes);

/* dw[o k + c0 + j] = (float)T(o, c0 + j) * unit, j < cb, o < co (T and its operands as in
 * tt_dsp_pointwise_weight_sums; the same bits as its sums converted by
 * tt_dsp_sums_to_floats), all positions in one chunk through `mem`: only where
 * tt_dsp_wfloat_fits(rows, co, k, cb, bytes). dw need not be zeroed. */
void tt_dsp_pointwise_weight_floats(const int8_t *dy, const uint8_t *mask, int32_t rows,
                                    int32_t co, const int8_t *saved, int32_t k, int32_t c0,
                                    int32_t cb, int32_t x_zp, float unit, float *dw, void *mem,
                                    int32_t bytes);

/* n words at p set to 0 (the walk's sums before their first chunk). */
void tt_dsp_zero_words(tt_dsp_word *p, int32_t n);

/* dw[i] = (float)T unit for the n int32 sums T that dw's words hold (tt_dsp_pointwise_weight_
 * sums' into dw, converted in place): the same conversion and product as the portable code's
 * (round to nearest, no contraction). */
void tt_dsp_sums_to_floats(float *dw, int32_t n, float unit);

/* The positions of one chunk of tt_dsp_pointwise_weight_sums in `bytes` (8-byte aligned) for
 * cb channels: a multiple of 8, at most the rows rounded up to one; 0 where not 8 fit. */
int32_t tt_dsp_wbig_positions(int32_t rows, int32_t cb, int32_t bytes);

/* tt_dsp_pointwise_weight_update_run's rule from sums already made: output channels begin,
 * begin + 1, .. < co, channel o's n weights w[o ci + j] from the sums acc[o n + j] (the
 * default rule with gradient (float)T unit), each channel's stream as that one's (`skip`
 * or `states`); stops where that one does and returns the channel, or co. */
int32_t tt_dsp_pointwise_weight_update_sums(const tt_dsp_word *acc, int32_t n, int32_t co,
                                            int32_t begin, float unit, int8_t *w, int32_t ci,
                                            const float *scales, int32_t per_channel,
                                            int32_t skip, uint32_t *states,
                                            tt_sgd_call *call);

/* A pointwise layer of one position (rows = 1): dw [co, k] = (float)T unit, T = g_o (x_c -
 * x_zp), g_o = dy[o] (0 where masked), from xf [2 k]: x_c - x_zp, then x_zp - x_c, as
 * float. */
void tt_dsp_pointwise_weight_row(const int8_t *dy, const uint8_t *mask, int32_t co,
                                 const float *xf, int32_t k, float unit, float *dw);

/* Its fused update: tt_dsp_pointwise_weight_update_sums' rule (no skips) from T = g_o xz[c]
 * (xz [k]: x_c - x_zp). */
int32_t tt_dsp_pointwise_weight_update_row(const int8_t *dy, const uint8_t *mask, int32_t co,
                                           int32_t begin, const int32_t *xz, int32_t k,
                                           float unit, int8_t *w, int32_t ci,
                                           const float *scales, int32_t per_channel,
                                           tt_sgd_call *call);

/* The int32 sums t[j], j < 8, over the positions p < outer of dy[p, c0 + j] (dy
 * [outer, channels] int8, 0 where its mask bit, element p * channels + c0 + j, is 0; mask
 * NULL: none): the bias gradient's integers of channels c0 .. c0 + 7 (c0 + 8 <= channels). */
void tt_dsp_bias_sums_8(const int8_t *dy, const uint8_t *mask, int32_t outer, int32_t channels,
                        int32_t c0, int32_t *t);

#if TT_FPV5
/* The bias update of the default rule (QAS, stochastic rounding, no momentum: tt_qas_bias)
 * from the int8 dy [outer, channels] (channels a multiple of 8; mask as
 * tt_dsp_bias_sums_8's), gradient (float)T unit of the sums T, block of eight by block, the
 * biases and the draws in channel order. */
void tt_dsp_bias_update_default(const int8_t *dy, float unit, const uint8_t *mask,
                                int32_t outer, int32_t channels, int32_t *b,
                                const float *scales, tt_sgd_call *call);
#endif

int tt_dsp_pointwise_weight_stage(const int8_t *saved, int32_t rows, int32_t k, int32_t x_zp,
                                  void *mem, int32_t bytes, tt_wdsp_stage *st);
void tt_dsp_pointwise_weight_channel(tt_wdsp_stage *st, const int8_t *dy,
                                     const uint8_t *mask, int32_t rows, int32_t co, int32_t o,
                                     int32_t k, int32_t x_zp, float unit, float *out);

/* tt_dsp_pointwise_weight_channel's gradients of output channel o not stored but applied at
 * once to its trained weights w[c], c < k, in c's order: the default rule (tt_qas_weight,
 * QAS, stochastic, no momentum) with scale, drawing from call's stream. Only where
 * tt_qas_nan_free(call->neg_lr, unit, scale): the gradient stays in registers. */
void tt_dsp_pointwise_weight_update(tt_wdsp_stage *st, const int8_t *dy, const uint8_t *mask,
                                    int32_t rows, int32_t co, int32_t o, int32_t k,
                                    int32_t x_zp, float unit, int8_t *w, float scale,
                                    tt_sgd_call *call);

/* tt_dsp_pointwise_weight_update of output channels begin, begin + 1, .. < co in a row, each
 * channel o's weights at w + o ci and its scale scales[per_channel ? o : 0]. Channel o's
 * draws: with states NULL, call's stream, `skip` draws skipped before every channel but the
 * first (a chunk's: the draws of the other chunks); else (and skip not 0) from states[o]
 * (each channel's state at the chunk's first draw, the caller's), which takes the state
 * after them. Stops
 * before the first channel whose values could be NaN (tt_qas_nan_free: its draws not yet
 * taken; without states the skip before it done) and returns it, or co. */
int32_t tt_dsp_pointwise_weight_update_run(tt_wdsp_stage *st, const int8_t *dy,
                                           const uint8_t *mask, int32_t rows, int32_t co,
                                           int32_t begin, int32_t k, int32_t x_zp, float unit,
                                           int8_t *w, int32_t ci, const float *scales,
                                           int32_t per_channel, int32_t skip,
                                           uint32_t *states, tt_sgd_call *call);
#endif

#endif /* TT_GRAD_DSP_H */
