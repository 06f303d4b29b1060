/* A model's input read row by row (include/tt_row_source.h). */
#include "tt_row_source.h"

#include <string.h>

void tt_row_source_frame(tt_row_source *s, const int8_t *frame, int32_t h, int32_t row_bytes) {
  memset(s, 0, sizeof *s);
  s->frame = frame;
  s->h = h;
  s->row_bytes = row_bytes;
}

void tt_row_source_reader(tt_row_source *s, tt_read_row_fn read_row, void *ctx, int8_t *ring,
                          int32_t capacity, int32_t h, int32_t row_bytes) {
  memset(s, 0, sizeof *s);
  s->read_row = read_row;
  s->ctx = ctx;
  s->ring = ring;
  s->capacity = capacity;
  s->h = h;
  s->row_bytes = row_bytes;
}

/* Reads the next row (have1) into `row`; a failure is remembered, the row left as it is. */
static void read_next(tt_row_source *s, int8_t *row) {
  if (!s->failed && s->read_row(s->have1, row, s->ctx) != 0) s->failed = 1;
  ++s->have1;
}

const int8_t *tt_row_source_rows(tt_row_source *s, int32_t r0, int32_t r1) {
  const size_t row = (size_t)s->row_bytes;
  if (s->frame) return s->frame + (size_t)r0 * row;
  if (r1 - r0 > s->capacity) {
    s->failed = 1;
    return s->ring;
  }
  if (s->have1 <= r0) {                      /* nothing kept: the block starts the ring */
    s->have0 = r0;
  } else if (r1 - s->have0 > s->capacity) {  /* move rows [r0, have1) to the start */
    /* row by row, each moving up by at least one (r0 > have0, or the rows would fit):
     * source and destination of one memcpy never overlap */
    for (int32_t j = 0; j < s->have1 - r0; ++j)
      memcpy(s->ring + (size_t)j * row, s->ring + (size_t)(r0 - s->have0 + j) * row, row);
    s->have0 = r0;
  }
  while (s->have1 < s->have0) read_next(s, s->ring);   /* rows no output reads */
  while (s->have1 < r1) read_next(s, s->ring + (size_t)(s->have1 - s->have0) * row);
  return s->ring + (size_t)(r0 - s->have0) * row;
}

int tt_row_source_finish(tt_row_source *s) {
  if (!s->frame) {
    while (s->have1 < s->h) read_next(s, s->ring);
  }
  return s->failed;
}
