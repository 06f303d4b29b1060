/* An activation gradient written over the gradient it is computed from (tflite-train
 * codegen): the float32 gradients of the backward pass are the largest tensors a training
 * step holds, and through a stride-1 depthwise layer dx has dy's shape.
 *
 * tt_depthwise_conv2d_input_grad_inplace_f32 is TT_DEPTHWISE_CONV2D_INPUT_GRAD with dy and
 * dx in the same memory, `data`: dx row by dx row, each by one tt_depthwise_conv2d_input_grad_f32
 * call on the dy rows it reads (so the same sums in the same order: bit-identical, tested by
 * tests/test_codegen.py), into a ring of rows in `scratch` that go to their place once no
 * later dx row reads the dy row they cover. Portable C99, no malloc. */
#ifndef TT_INPLACE_GRAD_H
#define TT_INPLACE_GRAD_H

#include <stdint.h>

#include "tt_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of scratch: rows * wd * c floats, rows = (kh - 1) * dilation_h - pad_top + 1 (at
 * least 1): 2 rows for a 3x3 SAME layer. 0 when the layer is not supported: batch other
 * than 1, depth multiplier other than 1, a stride other than 1, dx of another shape than
 * dy, or a mask whose rows do not start on a byte ((ow * c) % 8 != 0; mask_used 1). */
int32_t tt_depthwise_conv2d_input_grad_inplace_f32_scratch_bytes(
    int32_t n, int32_t oh, int32_t ow, int32_t c, int32_t m, int32_t kh, int32_t kw,
    const tt_window *win, int32_t h, int32_t wd, int32_t mask_used);

/* data: dy [1, oh, ow, c] on entry, dx [1, h, wd, c] (h == oh, wd == ow) on return; mask
 * over dy or NULL; w [1, kh, kw, c] int8 with w_scales[c]. TT_OK, or 1 (unsupported:
 * nothing touched) where the scratch size is 0. */
int tt_depthwise_conv2d_input_grad_inplace_f32(float *data, const uint8_t *mask, int32_t n,
                                               int32_t oh, int32_t ow, int32_t c, int32_t m,
                                               const int8_t *w, const float *w_scales,
                                               int32_t kh, int32_t kw, const tt_window *win,
                                               int32_t h, int32_t wd, float *scratch);

#ifdef __cplusplus
}
#endif

#endif /* TT_INPLACE_GRAD_H */
