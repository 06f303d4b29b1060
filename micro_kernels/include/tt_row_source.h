/* A model's input read row by row (tflite-train codegen --input rows): the first layer of a
 * generated program takes the rows of the sample it needs from a tt_row_source, so that the
 * whole sample never has to be in SRAM (a camera delivering lines) or is read where the
 * caller holds it, never copied.
 *
 * The source hands out the input rows [r0, r1) one output row of a convolution reads, as
 * one contiguous block [r1 - r0, w, c], for r0 and r1 that never decrease from one call to
 * the next (a convolution's output rows in ascending order; a frame's blocks may also be
 * asked for in any order). Two kinds:
 *   - a frame: the whole sample where the caller keeps it; the block is a pointer into it;
 *   - a reader: read_row(y, row, ctx) fills input row y (w * c int8 bytes) and returns 0,
 *     anything else to give up; it is called for y = 0, 1, ..., h - 1 in order, each row
 *     exactly once per pass (rows the layer never reads included, so that a sensor's frame
 *     is always consumed whole), and not again after it gave up. The rows live in `ring`: `capacity` rows, the most one
 *     output row reads (min((kh - 1) * dilation_h + 1, h)); rows still needed move to its
 *     start when the next ones would not fit after them.
 * The kernels that read a source (tt_conv_depthwise_pointwise_packed_source_s8,
 * tt_conv2d_source_s8) are bit-identical to their whole-input forms on the same rows.
 *
 * Portable C99, no malloc. */
#ifndef TT_ROW_SOURCE_H
#define TT_ROW_SOURCE_H

#include <stdint.h>

#include "tt_forward.h"
#include "tt_stream.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Fills input row y (row_bytes int8 bytes); 0 on success. */
typedef int (*tt_read_row_fn)(int32_t y, int8_t *row, void *ctx);

typedef struct {
  const int8_t *frame;      /* the whole input, or NULL: a reader */
  tt_read_row_fn read_row;
  void *ctx;
  int8_t *ring;             /* capacity rows (a reader) */
  int32_t capacity, h, row_bytes;
  int32_t have0, have1;     /* the ring holds rows [have0, have1); rows < have1 were read */
  int32_t failed;           /* read_row gave up: the layer's output is not to be used */
} tt_row_source;

/* The whole input at `frame`: h rows of row_bytes bytes. */
void tt_row_source_frame(tt_row_source *s, const int8_t *frame, int32_t h, int32_t row_bytes);

/* Rows from read_row(y, row, ctx) into `ring` (capacity * row_bytes bytes). */
void tt_row_source_reader(tt_row_source *s, tt_read_row_fn read_row, void *ctx, int8_t *ring,
                          int32_t capacity, int32_t h, int32_t row_bytes);

/* Input rows [r0, r1) (0 <= r0 <= r1 <= h, neither below the previous call's) as one
 * block; after a failed read (or r1 - r0 > capacity) the ring's rows, whatever they hold,
 * with s->failed set. */
const int8_t *tt_row_source_rows(tt_row_source *s, int32_t r0, int32_t r1);

/* Reads the rows no layer asked for, to the last (a reader; nothing for a frame). Returns
 * 0, or 1 if a read failed at any time since the source was made. */
int tt_row_source_finish(tt_row_source *s);

/* tt_conv_depthwise_pointwise_packed_s8 (tt_stream.h) with its input rows from `input`; returns
 * TT_FWD_OK, TT_FWD_UNSUPPORTED as it does, or TT_FWD_INPUT_FAILED when the source failed
 * (the output is then not to be used). The source is finished (tt_row_source_finish). */
#define TT_FWD_INPUT_FAILED 2
int tt_conv_depthwise_pointwise_packed_source_s8(const tt_stream_layer *a,
                                                 const tt_stream_layer *dw,
                                                 const tt_stream_layer *pw,
                                                 const tt_stream_dims *dims,
                                                 tt_row_source *input, int8_t *output,
                                                 int8_t *window, int8_t *pack);

/* tt_conv_depthwise_pointwise_chain_s8 (tt_stream.h) with the first stream's input rows
 * from `input`: returns as tt_conv_depthwise_pointwise_packed_source_s8 does. */
int tt_conv_depthwise_pointwise_chain_source_s8(
    const tt_stream_layer *a, const tt_stream_layer *dw, const tt_stream_layer *pw,
    const tt_stream_dims *dims, tt_row_source *input, int8_t *window, int8_t *pack,
    int8_t *ring, const tt_stream_layer *b, const tt_stream_layer *b_dw,
    const tt_stream_layer *b_pw, const tt_stream_dims *b_dims, int8_t *b_output,
    int8_t *b_window, int8_t *b_pack);

/* tt_conv2d_s8 one output row at a time (ascending) with its input rows from `input`: same
 * arguments and bits as tt_conv2d_s8 (batch 1, else TT_FWD_UNSUPPORTED touching nothing);
 * TT_FWD_INPUT_FAILED when the source failed. The source is finished. */
int tt_conv2d_source_s8(const tt_fwd_conv_params *p, const int32_t *multiplier,
                        const int8_t *shift, const tt_fwd_dims *input_dims,
                        tt_row_source *input, const tt_fwd_dims *filter_dims,
                        const int8_t *filter, const int32_t *bias,
                        const tt_fwd_dims *output_dims, int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* TT_ROW_SOURCE_H */
