/* PAD, TRANSPOSE and RESHAPE: data movement only (include/tt_forward.h). */
#include "tt_forward.h"
#include "tt_fwd_internal.h"

#include <string.h>

void tt_pad_s8(const int8_t *input, const int32_t *input_dims, const int32_t *before,
               const int32_t *output_dims, int32_t rank, int8_t pad_value, int8_t *output) {
  int32_t out_strides[TT_FWD_MAX_RANK], index[TT_FWD_MAX_RANK];
  int32_t stride = 1, in_size = 1;
  for (int32_t d = rank - 1; d >= 0; --d) {
    out_strides[d] = stride;
    stride *= output_dims[d];
    in_size *= input_dims[d];
    index[d] = 0;
  }
  memset(output, pad_value, (size_t)stride);
  if (in_size == 0) return;
  if (rank == 0) {
    output[0] = input[0];
    return;
  }
  /* copy the input's rows (its last axis) to their places, odometer over the outer axes */
  const int32_t row = input_dims[rank - 1];
  int32_t offset = 0;
  for (int32_t d = 0; d < rank; ++d) offset += before[d] * out_strides[d];
  for (int32_t i = 0; i < in_size; i += row) {
    memcpy(output + offset, input + i, (size_t)row);
    for (int32_t d = rank - 2; d >= 0; --d) {
      offset += out_strides[d];
      if (++index[d] < input_dims[d]) break;
      offset -= index[d] * out_strides[d];
      index[d] = 0;
    }
  }
}

void tt_transpose_s8(const int8_t *input, const int32_t *input_dims, const int32_t *perm,
                     int32_t rank, int8_t *output) {
  /* walk the output row-major; output axis d steps the input by the stride of perm[d] */
  int32_t in_strides[TT_FWD_MAX_RANK], step[TT_FWD_MAX_RANK], dims[TT_FWD_MAX_RANK];
  int32_t index[TT_FWD_MAX_RANK], stride = 1;
  for (int32_t d = rank - 1; d >= 0; --d) {
    in_strides[d] = stride;
    stride *= input_dims[d];
  }
  for (int32_t d = 0; d < rank; ++d) {
    dims[d] = input_dims[perm[d]];
    step[d] = in_strides[perm[d]];
    index[d] = 0;
  }
  int32_t offset = 0;
  for (int32_t o = 0; o < stride; ++o) {
    output[o] = input[offset];
    for (int32_t d = rank - 1; d >= 0; --d) {
      offset += step[d];
      if (++index[d] < dims[d]) break;
      offset -= index[d] * step[d];
      index[d] = 0;
    }
  }
}

void tt_reshape(const void *input, int32_t bytes, void *output) {
  if (input != output) memcpy(output, input, (size_t)bytes);
}
