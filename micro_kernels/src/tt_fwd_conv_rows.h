/* CONV_2D called on groups of output rows of one input (the streams' first layers,
 * tt_stream.c). Internal to the kernels. */
#ifndef TT_FWD_CONV_ROWS_H
#define TT_FWD_CONV_ROWS_H

#include <stdint.h>

#include "tt_forward.h"

/* tt_conv2d_s8 (tt_forward.h), the same bits, for a call on a few output rows: where the
 * DSP im2col path's staging holds 2 or more blocks of 6 columns beside the widened rows and
 * the call runs 18 columns or more (MCUNet's stem: 2 blocks a staging, 64 columns a call),
 * it widens the filter's rows once a call (tt_dsp_widen) in TT_FWD_DSP_WIDE_EXTRA (672)
 * bytes of stack more than tt_conv2d_s8's, only while it runs. */
void tt_conv2d_rows_call_s8(const tt_fwd_conv_params *p, const int32_t *multiplier,
                            const int8_t *shift, const tt_fwd_dims *input_dims,
                            const int8_t *input, const tt_fwd_dims *filter_dims,
                            const int8_t *filter, const int32_t *bias,
                            const tt_fwd_dims *output_dims, int8_t *output);

#endif /* TT_FWD_CONV_ROWS_H */
