/* A depthwise layer packed once for many calls: the streams of tt_stream.c call
 * tt_depthwise_conv2d_s8 once per output row, each call working out every channel group's
 * requantization constants and packed filter again (320-410 instructions a group on the
 * Cortex-M7); a pack holds them for the whole layer, in memory the caller lends (arena
 * scratch in a generated program). Same bits as tt_depthwise_conv2d_s8.
 *
 * p, multiplier, shift, input_dims [n, h, w, c], filter_dims [1, kh, kw, c * m], filter,
 * bias, output_dims [n, oh, ow, c * m]: as tt_depthwise_conv2d_s8 takes them. A pack is for
 * calls whose p and dims differ from the ones it was packed with only in the input's h, the
 * output's h and n, and pad_top (a window of rows: the streams' calls). */
#ifndef TT_DW_PACK_H
#define TT_DW_PACK_H

#include <stdint.h>

#include "tt_forward.h"

/* Bytes of the pack, a multiple of 4; 0 when the layer has none (its depth multiplier is
 * neither 1 nor a multiple of 4, or the DSP version does not take its kernel). The same on
 * every target, DSP or not. */
int32_t tt_depthwise_conv2d_s8_pack_bytes(const tt_fwd_conv_params *p,
                                          const tt_fwd_dims *input_dims,
                                          const tt_fwd_dims *filter_dims,
                                          const tt_fwd_dims *output_dims);

/* Fills the pack (tt_depthwise_conv2d_s8_pack_bytes > 0 bytes, 4-aligned) from the filter,
 * bias and requantization; the portable build has nothing to pack and leaves it alone, and
 * a NULL pack is nothing to fill. */
void tt_depthwise_conv2d_s8_pack(const tt_fwd_conv_params *p, const int32_t *multiplier,
                                 const int8_t *shift, const tt_fwd_dims *input_dims,
                                 const tt_fwd_dims *filter_dims, const int8_t *filter,
                                 const int32_t *bias, const tt_fwd_dims *output_dims,
                                 void *pack);

/* tt_depthwise_conv2d_s8 with the groups' constants and filter from the pack (writing only
 * its staging pointers into it); the portable build calls tt_depthwise_conv2d_s8, and so
 * does a NULL pack or one that holds no groups (a build whose staging the layer does not
 * fit). */
void tt_depthwise_conv2d_packed_s8(const tt_fwd_conv_params *p, const int32_t *multiplier,
                                   const int8_t *shift, const tt_fwd_dims *input_dims,
                                   const int8_t *input, const tt_fwd_dims *filter_dims,
                                   const int8_t *filter, const int32_t *bias,
                                   const tt_fwd_dims *output_dims, int8_t *output, void *pack);

#endif /* TT_DW_PACK_H */
