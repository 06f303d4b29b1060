/* Row-streamed forward operators (include/tt_stream.h). */
#include "tt_stream.h"

#include <stdint.h>
#include <string.h>

#include "tt_dw_pack.h"
#include "tt_fwd_conv_rows.h"
#include "tt_row_source.h"

/* The input rows output row oy reads: [*r0, *r1) (the rest of its taps are padding). */
static void rows_read(const tt_fwd_conv_params *p, int32_t oy, int32_t kh, int32_t h,
                      int32_t *r0, int32_t *r1) {
  const int32_t top = oy * p->stride_h - p->pad_top;
  const int32_t end = top + (kh - 1) * p->dilation_h + 1;
  *r0 = top > 0 ? top : 0;
  *r1 = end < h ? end : h;
  if (*r1 < *r0) *r1 = *r0;
}

/* Output rows [oy, oy + n) of a CONV_2D into `out` ([1, n, out_w, out_c]): one
 * tt_conv2d_rows_call_s8 call on the input rows they read (a whole input is a frame source:
 * tt_row_source_frame), the window's first row being input row r0, so the top padding left
 * is what lies above the image. n > 1 only from a frame: a reader's ring holds one output
 * row's input rows. */
static void conv_rows(const tt_fwd_conv_params *p, const int32_t *multiplier,
                      const int8_t *shift, const tt_fwd_dims *input_dims,
                      tt_row_source *input, const tt_fwd_dims *filter_dims,
                      const int8_t *filter, const int16_t *wide, const int32_t *bias,
                      int32_t oy, int32_t n, int32_t out_w, int32_t out_c, int8_t *out) {
  int32_t r0, r1, last0, last1;
  rows_read(p, oy, filter_dims->h, input_dims->h, &r0, &r1);
  if (n > 1) {
    rows_read(p, oy + n - 1, filter_dims->h, input_dims->h, &last0, &last1);
    if (last1 > r1) r1 = last1;
  }
  tt_fwd_conv_params q = *p;
  const int32_t top = oy * p->stride_h - p->pad_top;
  q.pad_top = top < 0 ? -top : 0;
  const tt_fwd_dims win = {1, r1 - r0, input_dims->w, input_dims->c};
  const tt_fwd_dims rows = {1, n, out_w, out_c};
  const int8_t *x = tt_row_source_rows(input, r0, r1);
  if (wide)
    tt_conv2d_wide_s8(&q, multiplier, shift, &win, x, filter_dims, filter, wide, bias, &rows,
                      out);
  else
    tt_conv2d_rows_call_s8(&q, multiplier, shift, &win, x, filter_dims, filter, bias, &rows,
                           out);
}

static void conv_row(const tt_fwd_conv_params *p, const int32_t *multiplier,
                     const int8_t *shift, const tt_fwd_dims *input_dims,
                     tt_row_source *input, const tt_fwd_dims *filter_dims,
                     const int8_t *filter, const int32_t *bias, int32_t oy, int32_t out_w,
                     int32_t out_c, int8_t *out) {
  conv_rows(p, multiplier, shift, input_dims, input, filter_dims, filter, 0, bias, oy, 1,
            out_w, out_c, out);
}

/* A whole input as a frame source. */
static tt_row_source frame_of(const tt_fwd_dims *input_dims, const int8_t *input) {
  tt_row_source s;
  tt_row_source_frame(&s, input, input_dims->h, input_dims->w * input_dims->c);
  return s;
}

static int32_t span_rows(const tt_fwd_conv_params *dw, const tt_fwd_dims *mid,
                         const tt_fwd_dims *dw_filter) {
  const int32_t span = (dw_filter->h - 1) * dw->dilation_h + 1;
  return span < mid->h ? span : mid->h;
}

int32_t tt_pointwise_depthwise_s8_window_bytes(const tt_fwd_conv_params *dw,
                                               const tt_fwd_dims *mid_dims,
                                               const tt_fwd_dims *dw_filter_dims,
                                               const tt_fwd_dims *output_dims) {
  (void)output_dims;
  return span_rows(dw, mid_dims, dw_filter_dims) * mid_dims->w * mid_dims->c;
}

/* A depthwise layer reading the rows of a first CONV_2D (`a`) computed into a window, one
 * depthwise output row at a time (both streamed kernels). */
typedef struct {
  const tt_stream_layer *a, *dw;
  const tt_stream_dims *dims;
  tt_row_source *input;
  int8_t *window;
  void *pack;                                 /* the depthwise layer packed, or NULL */
  int32_t have0, have1;                       /* the window holds mid rows [have0, have1) */
} stream_state;

/* The depthwise layer packed once for all its rows where the caller lent a pack (NULL:
 * nothing to pack, and every row runs the unpacked kernel). */
static void pack_depthwise(const stream_state *s) {
  const tt_stream_layer *dw = s->dw;
  tt_depthwise_conv2d_s8_pack(dw->params, dw->multiplier, dw->shift, s->dims->mid,
                              dw->filter_dims, dw->filter, dw->bias, s->dims->dw_output,
                              s->pack);
}

/* Mid rows [r, r1) (the first layer's output rows) into `out`: from a frame one
 * tt_conv2d_s8 call on the input rows they read (the kernel's set-up once for them), from a
 * reader one call a row. */
static void first_rows(const stream_state *s, int32_t r, int32_t r1, int8_t *out) {
  const tt_stream_layer *a = s->a;
  const tt_fwd_dims *mid = s->dims->mid;
  const int32_t n = s->input->frame ? r1 - r : 1, row_bytes = mid->w * mid->c;
  for (; r < r1; r += n, out += n * row_bytes)
    conv_rows(a->params, a->multiplier, a->shift, s->dims->input, s->input, a->filter_dims,
              a->filter, a->wide, a->bias, r, n, mid->w, mid->c, out);
}

/* The mid rows depthwise output row oy reads, [*r0, *r1) (the rest of its taps: padding). */
static void mid_rows(const tt_fwd_conv_params *dw, const tt_fwd_dims *mid,
                     const tt_fwd_dims *dw_filter, int32_t oy, int32_t *top, int32_t *r0,
                     int32_t *r1) {
  const int32_t span = (dw_filter->h - 1) * dw->dilation_h + 1;
  *top = oy * dw->stride_h - dw->pad_top;
  *r0 = *top > 0 ? *top : 0;
  *r1 = *top + span < mid->h ? *top + span : mid->h;
}

/* Moves `rows` rows of row_bytes from src down to dst = src - a whole number of rows (>= 1).
 * Row by row, each moving down by at least a row, source and destination of one memcpy
 * never overlap. On a Cortex-M with both 4-byte aligned (the arena's buffers are), all the
 * rows forward in one pass of LDM and STM of 8 words, four pairs a loop: 10 instructions a
 * 128 bytes, where one pair a loop compiled to 7 a 32 bytes (about 28) and the C library's
 * memcpy takes about 17 a 32 bytes (a word at a time). The stem stream moves 2 KB a row,
 * the chain's second stream 6 KB. Forward is safe for a move down, every word being read
 * before a store can reach it. */
static __attribute__((noinline)) void move_down(int8_t *dst, const int8_t *src, int32_t rows,
                                                 int32_t row_bytes) {
#if defined(__thumb2__)
  int32_t n = rows * row_bytes;
  if (((uintptr_t)dst & 3) == 0 && ((uintptr_t)src & 3) == 0) {
    int32_t blocks = n >> 7;
    if (blocks > 0) {
      __asm__ volatile("1:\n"
                       "ldmia %1!, {r3, r4, r5, r6, r8, r10, r11, r12}\n"
                       "stmia %0!, {r3, r4, r5, r6, r8, r10, r11, r12}\n"
                       "ldmia %1!, {r3, r4, r5, r6, r8, r10, r11, r12}\n"
                       "stmia %0!, {r3, r4, r5, r6, r8, r10, r11, r12}\n"
                       "ldmia %1!, {r3, r4, r5, r6, r8, r10, r11, r12}\n"
                       "stmia %0!, {r3, r4, r5, r6, r8, r10, r11, r12}\n"
                       "ldmia %1!, {r3, r4, r5, r6, r8, r10, r11, r12}\n"
                       "stmia %0!, {r3, r4, r5, r6, r8, r10, r11, r12}\n"
                       "subs %2, %2, #1\n"
                       "bne 1b\n"
                       : "+r"(dst), "+r"(src), "+r"(blocks)
                       :
                       : "r3", "r4", "r5", "r6", "r8", "r10", "r11", "r12", "cc", "memory");
      n &= 127;
    }
    for (; n >= 32; n -= 32)
      __asm__ volatile("ldmia %1!, {r3, r4, r5, r6, r8, r10, r11, r12}\n"
                       "stmia %0!, {r3, r4, r5, r6, r8, r10, r11, r12}\n"
                       : "+r"(dst), "+r"(src)
                       :
                       : "r3", "r4", "r5", "r6", "r8", "r10", "r11", "r12", "memory");
    for (; n > 0; --n) *dst++ = *src++;
    return;
  }
#endif
  for (int32_t j = 0; j < rows; ++j)
    memcpy(dst + j * row_bytes, src + j * row_bytes, (size_t)row_bytes);
}

/* Depthwise output row oy (rows in ascending order) into `out` ([1, 1, ow, c * m]). */
static void depthwise_row(stream_state *s, int32_t oy, const tt_fwd_dims *out_row, int8_t *out) {
  const tt_stream_layer *dw = s->dw;
  const tt_fwd_dims *mid = s->dims->mid;
  const int32_t row_bytes = mid->w * mid->c;
  int32_t top, r0, r1;
  mid_rows(dw->params, mid, dw->filter_dims, oy, &top, &r0, &r1);
  if (r0 >= r1) {                             /* no row in the image: all taps are padding */
    s->have0 = s->have1 = r0;
  } else {
    if (r0 > s->have0) {                      /* drop the rows above r0 */
      const int32_t keep = s->have1 > r0 ? s->have1 - r0 : 0;
      move_down(s->window, s->window + (r0 - s->have0) * row_bytes, keep, row_bytes);
      s->have0 = r0;
      if (s->have1 < r0) s->have1 = r0;
    }
    if (r1 > s->have1)                        /* compute the rows not there yet */
      first_rows(s, s->have1, r1, s->window + (s->have1 - s->have0) * row_bytes);
    if (r1 > s->have1) s->have1 = r1;
  }
  /* the window's first row is mid row r0, so the top padding left is what lies above */
  tt_fwd_conv_params p = *dw->params;
  p.pad_top = top < 0 ? -top : 0;
  const tt_fwd_dims win = {1, r1 > r0 ? r1 - r0 : 0, mid->w, mid->c};
  tt_depthwise_conv2d_packed_s8(&p, dw->multiplier, dw->shift, &win, s->window,
                                dw->filter_dims, dw->filter, dw->bias, out_row, out, s->pack);
}

/* The least shift with output + shift == input for a stream whose output rows are out_row
 * bytes, one per depthwise output row, each written after the mid rows it reads: input rows
 * from the next mid row's first on are read later. */
static int32_t stream_shift(const tt_fwd_conv_params *a, const tt_fwd_dims *input_dims,
                            const tt_fwd_dims *a_filter_dims, const tt_fwd_conv_params *dw,
                            const tt_fwd_dims *mid_dims, const tt_fwd_dims *dw_filter_dims,
                            int32_t rows, int32_t out_row) {
  const int32_t in_row = input_dims->w * input_dims->c;
  int32_t shift = 0, have1 = 0;
  for (int32_t oy = 0; oy < rows; ++oy) {
    int32_t top, r0, r1;
    mid_rows(dw, mid_dims, dw_filter_dims, oy, &top, &r0, &r1);
    if (r0 >= r1) {
      if (r0 > have1) have1 = r0;
    } else if (r1 > have1) {
      have1 = r1;
    }
    if (have1 >= mid_dims->h) break;          /* no mid row left: the input is free */
    int32_t next0, next1;                     /* the input rows mid row have1 reads first */
    rows_read(a, have1, a_filter_dims->h, input_dims->h, &next0, &next1);
    if (next0 >= input_dims->h) break;
    const int32_t need = (oy + 1) * out_row - next0 * in_row;
    if (need > shift) shift = need;
  }
  return shift;
}

int32_t tt_pointwise_depthwise_s8_shift(const tt_fwd_conv_params *dw, const tt_fwd_dims *input_dims,
                                        const tt_fwd_dims *mid_dims,
                                        const tt_fwd_dims *dw_filter_dims,
                                        const tt_fwd_dims *output_dims) {
  /* the pointwise layer as the first: 1x1, stride 1, unpadded, its rows map 1:1 */
  const tt_fwd_conv_params unit = {1, 1, 1, 1, 0, 0, 0, 0, -128, 127};
  const tt_fwd_dims one = {mid_dims->c, 1, 1, input_dims->c};
  return stream_shift(&unit, input_dims, &one, dw, mid_dims, dw_filter_dims,
                      output_dims->h, output_dims->w * output_dims->c);
}

int32_t tt_stream_depthwise_pack_bytes(const tt_fwd_conv_params *dw, const tt_fwd_dims *mid_dims,
                                       const tt_fwd_dims *dw_filter_dims,
                                       const tt_fwd_dims *dw_output_dims) {
  return tt_depthwise_conv2d_s8_pack_bytes(dw, mid_dims, dw_filter_dims, dw_output_dims);
}

int tt_pointwise_depthwise_s8(const tt_stream_layer *pw, const tt_stream_layer *dw,
                              const tt_stream_dims *dims, const int8_t *input, int8_t *output,
                              int8_t *window) {
  return tt_pointwise_depthwise_packed_s8(pw, dw, dims, input, output, window, 0);
}

int tt_pointwise_depthwise_packed_s8(const tt_stream_layer *pw, const tt_stream_layer *dw,
                                     const tt_stream_dims *dims, const int8_t *input,
                                     int8_t *output, int8_t *window, int8_t *pack) {
  const tt_fwd_conv_params *p = pw->params;
  const tt_fwd_dims *output_dims = dims->output;
  if (dims->input->n != 1 || pw->filter_dims->h != 1 || pw->filter_dims->w != 1 ||
      p->stride_h != 1 || p->stride_w != 1 || p->pad_top != 0 || p->pad_left != 0)
    return TT_FWD_UNSUPPORTED;
  tt_row_source frame = frame_of(dims->input, input);
  stream_state s = {pw, dw, dims, &frame, window, pack, 0, 0};
  pack_depthwise(&s);
  const tt_fwd_dims out_row = {1, 1, output_dims->w, output_dims->c};
  const int32_t out_row_bytes = output_dims->w * output_dims->c;
  for (int32_t oy = 0; oy < output_dims->h; ++oy)
    depthwise_row(&s, oy, &out_row, output + oy * out_row_bytes);
  return TT_FWD_OK;
}

int32_t tt_conv_depthwise_pointwise_s8_window_bytes(const tt_fwd_conv_params *dw,
                                                    const tt_fwd_dims *mid_dims,
                                                    const tt_fwd_dims *dw_filter_dims,
                                                    const tt_fwd_dims *dw_output_dims) {
  return span_rows(dw, mid_dims, dw_filter_dims) * mid_dims->w * mid_dims->c +
         dw_output_dims->w * dw_output_dims->c;
}

int32_t tt_conv_depthwise_pointwise_s8_shift(const tt_fwd_conv_params *a,
                                             const tt_fwd_dims *input_dims,
                                             const tt_fwd_dims *a_filter_dims,
                                             const tt_fwd_conv_params *dw,
                                             const tt_fwd_dims *mid_dims,
                                             const tt_fwd_dims *dw_filter_dims,
                                             const tt_fwd_dims *output_dims) {
  return stream_shift(a, input_dims, a_filter_dims, dw, mid_dims, dw_filter_dims,
                      output_dims->h, output_dims->w * output_dims->c);
}

/* A three-layer stream, one output row at a time (ascending): its depthwise layer's state,
 * the pointwise layer after it, and where the depthwise row goes (the window's end). */
typedef struct {
  stream_state s;
  const tt_stream_layer *pw;
  tt_fwd_dims dw_row, out_row;
  int8_t *row;
} block_stream;

/* 0 where the stream's layers are not what it runs (batch 1, a 1x1 stride-1 unpadded pw). */
static int block_of(block_stream *k, const stream_state *s, const tt_stream_layer *pw) {
  const tt_fwd_conv_params *p = pw->params;
  const tt_fwd_dims *dw_output_dims = s->dims->dw_output, *output_dims = s->dims->output;
  const tt_fwd_dims *mid = s->dims->mid;
  if (s->dims->input->n != 1 || pw->filter_dims->h != 1 || pw->filter_dims->w != 1 ||
      p->stride_h != 1 || p->stride_w != 1 || p->pad_top != 0 || p->pad_left != 0 ||
      dw_output_dims->h != output_dims->h || dw_output_dims->w != output_dims->w)
    return 0;
  k->s = *s;
  k->pw = pw;
  const tt_fwd_dims dw_row = {1, 1, dw_output_dims->w, dw_output_dims->c};
  const tt_fwd_dims out_row = {1, 1, output_dims->w, output_dims->c};
  k->dw_row = dw_row;
  k->out_row = out_row;
  k->row = s->window + span_rows(s->dw->params, mid, s->dw->filter_dims) * mid->w * mid->c;
  return 1;
}

static void block_row(block_stream *k, int32_t oy, int8_t *out) {
  const tt_stream_layer *pw = k->pw;
  depthwise_row(&k->s, oy, &k->dw_row, k->row);
  if (pw->wide)
    tt_conv2d_wide_s8(pw->params, pw->multiplier, pw->shift, &k->dw_row, k->row,
                      pw->filter_dims, pw->filter, pw->wide, pw->bias, &k->out_row, out);
  else
    tt_conv2d_s8(pw->params, pw->multiplier, pw->shift, &k->dw_row, k->row, pw->filter_dims,
                 pw->filter, pw->bias, &k->out_row, out);
}

/* The three-layer stream, either side's 1x1 filter pre-widened or not (its `wide` NULL). */
int tt_conv_depthwise_pointwise_packed_source_s8(const tt_stream_layer *a,
                                                 const tt_stream_layer *dw,
                                                 const tt_stream_layer *pw,
                                                 const tt_stream_dims *dims,
                                                 tt_row_source *input, int8_t *output,
                                                 int8_t *window, int8_t *pack) {
  const stream_state s = {a, dw, dims, input, window, pack, 0, 0};
  block_stream k;
  if (!block_of(&k, &s, pw)) return TT_FWD_UNSUPPORTED;
  pack_depthwise(&k.s);
  const tt_fwd_dims *output_dims = dims->output;
  const int32_t out_row_bytes = output_dims->w * output_dims->c;
  for (int32_t oy = 0; oy < output_dims->h; ++oy) block_row(&k, oy, output + oy * out_row_bytes);
  return tt_row_source_finish(input) ? TT_FWD_INPUT_FAILED : TT_FWD_OK;
}

/* The first stream of a chain as the second's row reader: row y of its output, when asked
 * (y = 0, 1, ... once each: the reader's contract, and depthwise_row's); 1 (give up) once
 * its own input failed. */
static int chained_row(int32_t y, int8_t *row, void *ctx) {
  block_stream *k = (block_stream *)ctx;
  block_row(k, y, row);
  return k->s.input->failed;
}

int tt_conv_depthwise_pointwise_chain_source_s8(
    const tt_stream_layer *a, const tt_stream_layer *dw, const tt_stream_layer *pw,
    const tt_stream_dims *dims, tt_row_source *input, int8_t *window, int8_t *pack,
    int8_t *ring, const tt_stream_layer *b, const tt_stream_layer *b_dw,
    const tt_stream_layer *b_pw, const tt_stream_dims *b_dims, int8_t *b_output,
    int8_t *b_window, int8_t *b_pack) {
  const stream_state s = {a, dw, dims, input, window, pack, 0, 0};
  block_stream first;
  if (!block_of(&first, &s, pw)) return TT_FWD_UNSUPPORTED;
  const tt_fwd_dims *output_dims = dims->output;
  tt_row_source rows;
  const int32_t span = (b->filter_dims->h - 1) * b->params->dilation_h + 1;
  tt_row_source_reader(&rows, chained_row, &first, ring, span < output_dims->h ? span
                                                                              : output_dims->h,
                       output_dims->h, output_dims->w * output_dims->c);
  pack_depthwise(&first.s);
  /* the second stream checks its own layers before it reads a row */
  const int status = tt_conv_depthwise_pointwise_packed_source_s8(b, b_dw, b_pw, b_dims, &rows,
                                                                  b_output, b_window, b_pack);
  if (status == TT_FWD_UNSUPPORTED) return status;
  return tt_row_source_finish(input) || status == TT_FWD_INPUT_FAILED ? TT_FWD_INPUT_FAILED
                                                                      : TT_FWD_OK;
}

int tt_conv_depthwise_pointwise_chain_s8(const tt_stream_layer *a, const tt_stream_layer *dw,
                                         const tt_stream_layer *pw, const tt_stream_dims *dims,
                                         const int8_t *input, int8_t *window, int8_t *pack,
                                         int8_t *ring, const tt_stream_layer *b,
                                         const tt_stream_layer *b_dw,
                                         const tt_stream_layer *b_pw,
                                         const tt_stream_dims *b_dims, int8_t *b_output,
                                         int8_t *b_window, int8_t *b_pack) {
  tt_row_source frame = frame_of(dims->input, input);
  return tt_conv_depthwise_pointwise_chain_source_s8(a, dw, pw, dims, &frame, window, pack,
                                                     ring, b, b_dw, b_pw, b_dims, b_output,
                                                     b_window, b_pack);
}

/* A frame never fails: these return TT_FWD_OK or TT_FWD_UNSUPPORTED. */
int tt_conv_depthwise_pointwise_packed_s8(const tt_stream_layer *a, const tt_stream_layer *dw,
                                          const tt_stream_layer *pw, const tt_stream_dims *dims,
                                          const int8_t *input, int8_t *output, int8_t *window,
                                          int8_t *pack) {
  tt_row_source frame = frame_of(dims->input, input);
  return tt_conv_depthwise_pointwise_packed_source_s8(a, dw, pw, dims, &frame, output, window,
                                                      pack);
}

int32_t tt_conv2d_rows_s8_shift(const tt_fwd_conv_params *p, const tt_fwd_dims *input_dims,
                                const tt_fwd_dims *filter_dims, const tt_fwd_dims *output_dims) {
  const int32_t in_row = input_dims->w * input_dims->c;
  const int32_t out_row = output_dims->w * output_dims->c;
  int32_t shift = 0;
  for (int32_t oy = 0; oy < output_dims->h; ++oy) {
    int32_t r0, r1;
    rows_read(p, oy, filter_dims->h, input_dims->h, &r0, &r1);
    if (r0 >= input_dims->h) continue;
    const int32_t need = (oy + 1) * out_row - r0 * in_row;
    if (need > shift) shift = need;
  }
  return shift;
}

int tt_conv2d_rows_s8(const tt_fwd_conv_params *p, const int32_t *multiplier,
                      const int8_t *shift, const tt_fwd_dims *input_dims, const int8_t *input,
                      const tt_fwd_dims *filter_dims, const int8_t *filter, const int32_t *bias,
                      const tt_fwd_dims *output_dims, int8_t *output) {
  tt_row_source frame = frame_of(input_dims, input);
  return tt_conv2d_source_s8(p, multiplier, shift, input_dims, &frame, filter_dims, filter,
                             bias, output_dims, output);
}

int32_t tt_conv2d_rows_reverse_s8_lead(const tt_fwd_conv_params *p, const tt_fwd_dims *input_dims,
                                       const tt_fwd_dims *filter_dims,
                                       const tt_fwd_dims *output_dims) {
  const int32_t in_row = input_dims->w * input_dims->c;
  const int32_t out_row = output_dims->w * output_dims->c;
  int32_t lead = 0;
  for (int32_t oy = 0; oy < output_dims->h; ++oy) {
    int32_t r0, r1;
    rows_read(p, oy, filter_dims->h, input_dims->h, &r0, &r1);
    const int32_t need = r1 * in_row - oy * out_row;
    if (need > lead) lead = need;
  }
  return lead;
}

int tt_conv2d_rows_reverse_s8(const tt_fwd_conv_params *p, const int32_t *multiplier,
                              const int8_t *shift, const tt_fwd_dims *input_dims,
                              const int8_t *input, const tt_fwd_dims *filter_dims,
                              const int8_t *filter, const int32_t *bias,
                              const tt_fwd_dims *output_dims, int8_t *output) {
  if (input_dims->n != 1 || output_dims->n != 1) return TT_FWD_UNSUPPORTED;
  const int32_t out_row = output_dims->w * output_dims->c;
  tt_row_source frame = frame_of(input_dims, input);   /* a frame may be read backwards */
  for (int32_t oy = output_dims->h - 1; oy >= 0; --oy)
    conv_row(p, multiplier, shift, input_dims, &frame, filter_dims, filter, bias, oy,
             output_dims->w, output_dims->c, output + oy * out_row);
  return TT_FWD_OK;
}

int tt_conv2d_source_s8(const tt_fwd_conv_params *p, const int32_t *multiplier,
                        const int8_t *shift, const tt_fwd_dims *input_dims,
                        tt_row_source *input, const tt_fwd_dims *filter_dims,
                        const int8_t *filter, const int32_t *bias,
                        const tt_fwd_dims *output_dims, int8_t *output) {
  if (input_dims->n != 1 || output_dims->n != 1) return TT_FWD_UNSUPPORTED;
  const int32_t out_row = output_dims->w * output_dims->c;
  for (int32_t oy = 0; oy < output_dims->h; ++oy)
    conv_row(p, multiplier, shift, input_dims, input, filter_dims, filter, bias, oy,
             output_dims->w, output_dims->c, output + oy * out_row);
  return tt_row_source_finish(input) ? TT_FWD_INPUT_FAILED : TT_FWD_OK;
}
