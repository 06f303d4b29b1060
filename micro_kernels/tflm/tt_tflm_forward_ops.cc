/* TFLM registrations of the TT_* forward ops (schema/training_ops.json): TT_CONV2D,
 * TT_DEPTHWISE_CONV2D, TT_POINTWISE_DEPTHWISE and TT_FULLY_CONNECTED, which replace builtins
 * bit for bit where memory needs what the builtins cannot do (a filter in two parts along
 * its input channels, an output written over its input, an expansion that never exists
 * whole, requantization parameters in flash instead of TFLM's persistent memory). The
 * input gradients of a filter in two parts (TT_*_SPLIT_INPUT_GRAD) are tt_tflm_ops.cc's input
 * gradients, where the int8 gradients' rounding state lives.
 *
 * Same pattern as tt_tflm_ops.cc: Init parses the options, Prepare checks every tensor the
 * kernels will read (tt_tflm_prepare.h's checks, which the training ops use too) (a model that does not match gets an error status and a one-line
 * message, never a crash), Invoke maps tensors onto the kernels of tt_forward.h and
 * tt_kernels.h. The forward ops run whatever the label and have no label input.
 */
#include <string.h>

#include "tt_forward.h"
#include "tt_kernels.h"
#include "tt_stream.h"
#include "tt_tflm.h"
#include "tt_tflm_options.h"
#include "tt_tflm_prepare.h"

namespace tflite_train {
namespace tflm {
namespace {

bool Overlap(const void *a, size_t a_bytes, const void *b, size_t b_bytes) {
  const uintptr_t x = reinterpret_cast<uintptr_t>(a), y = reinterpret_cast<uintptr_t>(b);
  return x < y + b_bytes && y < x + a_bytes;
}

/* ---- TT_CONV2D, TT_DEPTHWISE_CONV2D, TT_FULLY_CONNECTED -------------------------------- */

enum Kind { kConv, kDepthwise, kFullyConnected };

/* The op data, in TFLM's persistent memory: only what Invoke cannot read from the model.
 * TfLiteEvalTensor has no quantization, so the zero points are kept, with the scratch
 * buffer's index; the window, activation range and in_place are the options, which stay in
 * the model (flash) and are read again at each Invoke (ReadForward: a few flexbuffer key
 * look-ups, against a kernel's thousands of MACs). 12 bytes on a 32-bit target, 16 on
 * x86-64: one 16-byte persistent allocation, where the whole parameters took 80. */
struct ForwardData {
  const char *bad_key;         /* Init's verdict on the options */
  int scratch;                 /* in place: the scratch buffer's index */
  int16_t input_offset;        /* minus the input's zero point */
  int16_t output_offset;       /* the output's zero point */
};

/* A convolution window (stride, dilation, padding) from the options, under the keys the
 * layer ops and the stream's depthwise half share; a bad key stays in o. */
void ReadWindow(Options &o, tt_fwd_conv_params *p) {
  p->stride_h = o.Int("stride_h");
  p->stride_w = o.Int("stride_w");
  p->dilation_h = o.Int("dilation_h");
  p->dilation_w = o.Int("dilation_w");
  p->pad_top = o.Int("pad_top");
  p->pad_left = o.Int("pad_left");
}

/* The window, activation range and in_place from the options (offsets left 0); returns the
 * first bad key or NULL. */
template <Kind kKind>
const char *ReadForward(Options o, tt_fwd_conv_params *p, bool *in_place) {
  *p = tt_fwd_conv_params{};
  p->stride_h = p->stride_w = p->dilation_h = p->dilation_w = 1;
  *in_place = false;
  if (kKind != kFullyConnected) {
    ReadWindow(o, p);
    *in_place = o.Bool("in_place");
  }
  p->act_min = o.Int("act_min");
  p->act_max = o.Int("act_max");
  return o.bad_key();
}

template <Kind kKind>
TT_SETUP void *ForwardInit(TfLiteContext *context, const char *buffer, size_t length) {
  ForwardData *d = New<ForwardData>(context);
  if (d == nullptr) return nullptr;
  tt_fwd_conv_params p;
  bool in_place;
  d->bad_key = ReadForward<kKind>(Options(buffer, length), &p, &in_place);
  return d;
}

/* An int8 tensor's zero point as the kernels' int16 offset; false when out of int8's range. */
TT_SETUP bool Offset(int32_t zero_point, int32_t sign, int16_t *offset) {
  if (zero_point < -128 || zero_point > 127) return false;
  *offset = static_cast<int16_t>(sign * zero_point);
  return true;
}

/* Input positions: TT_CONV2D and TT_FULLY_CONNECTED (input, filter, filter_rest, bias,
 * multipliers, shifts); TT_DEPTHWISE_CONV2D (input, filter, bias, multipliers, shifts). */
template <Kind kKind>
struct Pos {
  static constexpr int kRest = kKind == kDepthwise ? -1 : 2;
  static constexpr int kBias = kKind == kDepthwise ? 2 : 3;
  static constexpr int kRequant = kBias + 1;
  static constexpr int kInputs = kRequant + 2;
};

constexpr const char *kForwardNames[] = {"TT_CONV2D", "TT_DEPTHWISE_CONV2D",
                                         "TT_FULLY_CONNECTED"};

template <Kind kKind>
TT_SETUP TfLiteStatus ForwardPrepare(TfLiteContext *context, TfLiteNode *node) {
  using P = Pos<kKind>;
  Prepare c(context, node, kForwardNames[kKind]);
  ForwardData *d = static_cast<ForwardData *>(node->user_data);
  if (d == nullptr) return c.Fail("no persistent memory for op data");
  if (!c.Options(d->bad_key)) return kTfLiteError;
  if (!c.Arity(P::kInputs, 1)) return kTfLiteError;
  tt_fwd_conv_params p;
  bool in_place;
  ReadForward<kKind>(Options(node), &p, &in_place);
  if (p.stride_h < 1 || p.stride_w < 1 || p.dilation_h < 1 || p.dilation_w < 1 ||
      p.pad_top < 0 || p.pad_left < 0 || p.pad_top > kMaxElements || p.pad_left > kMaxElements)
    return c.Fail("strides and dilations must be positive and pads non-negative");
  if (p.act_min < -128 || p.act_max > 127 || p.act_min > p.act_max)
    return c.Fail("act_min/act_max must be a range within [-128, 127]");
  const int rank = kKind == kFullyConnected ? -1 : 4;
  TfLiteTensor *x = c.In(0, kTfLiteInt8, rank, "input");
  TfLiteTensor *w = c.In(1, kTfLiteInt8, kKind == kFullyConnected ? 2 : 4, "filter");
  TfLiteTensor *y = c.Out(0, kTfLiteInt8, rank, "output");
  if (x == nullptr || w == nullptr || y == nullptr || !c.Parameter(w, "filter", true))
    return kTfLiteError;
  int32_t x_zp, y_zp;
  if (!c.ZeroPoint(x, "input", &x_zp) || !c.ZeroPoint(y, "output", &y_zp)) return kTfLiteError;
  if (!Offset(x_zp, -1, &d->input_offset) || !Offset(y_zp, 1, &d->output_offset))
    return c.Fail("zero points must be within [-128, 127]");
  p.input_offset = d->input_offset;
  p.output_offset = d->output_offset;
  const int last = w->dims->size - 1;
  int32_t whole = w->dims->data[last];
  if (P::kRest >= 0 && HasInput(node, P::kRest)) {
    TfLiteTensor *rest = c.In(P::kRest, kTfLiteInt8, w->dims->size, "filter_rest");
    if (rest == nullptr || !c.Parameter(rest, "filter_rest", false)) return kTfLiteError;
    for (int i = 0; i < last; ++i)
      if (rest->dims->data[i] != w->dims->data[i])
        return c.Fail("filter and filter_rest must differ only in their last axis");
    whole += rest->dims->data[last];
  }
  int32_t channels;
  if (kKind == kFullyConnected) {
    channels = w->dims->data[0];
    const int32_t batches = Count(x->dims) / whole;
    if (Count(x->dims) % whole != 0 || Count(y->dims) != batches * channels)
      return c.Fail("input, weights [%d, %d] and output do not match",
                    static_cast<int>(channels), static_cast<int>(whole));
  } else {
    channels = y->dims->data[3];
    const bool ok = kKind == kConv
                        ? w->dims->data[0] == channels && whole == x->dims->data[3]
                        : w->dims->data[0] == 1 && whole == channels &&
                              x->dims->data[3] == channels;
    if (!ok || x->dims->data[0] != y->dims->data[0])
      return c.Fail("input, filter and output shapes do not match");
  }
  if (!c.Bias(P::kBias, channels) || !c.Requantization(P::kRequant, channels))
    return kTfLiteError;
  if (!in_place) return kTfLiteOk;
  const tt_fwd_dims xd = {x->dims->data[0], x->dims->data[1], x->dims->data[2],
                          x->dims->data[3]};
  const tt_fwd_dims wd = {w->dims->data[0], w->dims->data[1], w->dims->data[2], whole};
  const tt_fwd_dims yd = {y->dims->data[0], y->dims->data[1], y->dims->data[2],
                          y->dims->data[3]};
  int32_t scratch;
  if (kKind == kConv) {
    if (wd.h != 1 || wd.w != 1 || p.stride_h != 1 || p.stride_w != 1 || p.pad_top != 0 ||
        p.pad_left != 0 || xd.h != yd.h || xd.w != yd.w)
      return c.Fail("in_place needs a 1x1 filter at stride 1 without padding");
    scratch = yd.w * yd.c;
  } else {
    scratch = tt_depthwise_conv2d_inplace_s8_scratch_bytes(&p, &xd, &wd, &yd);
    if (scratch <= 0) return c.Fail("this layer has no in-place form (output > input?)");
  }
  return c.Scratch(static_cast<size_t>(scratch), &d->scratch) ? kTfLiteOk : kTfLiteError;
}

tt_fwd_dims Dims4(const TfLiteEvalTensor *t, int32_t last) {
  return tt_fwd_dims{Dim(t, 0), Dim(t, 1), Dim(t, 2), last};
}

template <Kind kKind>
TfLiteStatus ForwardInvoke(TfLiteContext *context, TfLiteNode *node) {
  using P = Pos<kKind>;
  const ForwardData *d = static_cast<const ForwardData *>(node->user_data);
  tt_fwd_conv_params p;
  bool in_place;
  ReadForward<kKind>(Options(node), &p, &in_place);
  p.input_offset = d->input_offset;
  p.output_offset = d->output_offset;
  const TfLiteEvalTensor *x = EvalInput(context, node, 0);
  const TfLiteEvalTensor *w = EvalInput(context, node, 1);
  const TfLiteEvalTensor *rest = P::kRest >= 0 ? EvalInput(context, node, P::kRest) : nullptr;
  const int32_t *bias = Data<int32_t>(EvalInput(context, node, P::kBias));
  const int32_t *m = Data<int32_t>(EvalInput(context, node, P::kRequant));
  const int8_t *s = Data<int8_t>(EvalInput(context, node, P::kRequant + 1));
  TfLiteEvalTensor *y = EvalOutput(context, node, 0);
  const int8_t *lo = Data<int8_t>(w), *hi = Data<int8_t>(rest);
  const int32_t k = w->dims->data[w->dims->size - 1];   /* the filter's first part */
  const int32_t whole = k + (rest != nullptr ? rest->dims->data[rest->dims->size - 1] : 0);
  const size_t x_bytes = static_cast<size_t>(Count(x->dims));
  const size_t y_bytes = static_cast<size_t>(Count(y->dims));
  const bool overlap = Overlap(x->data.data, x_bytes, y->data.data, y_bytes);
  if (kKind == kFullyConnected) {
    if (overlap) {
      Log(kForwardNames[kKind], "the output overlaps the input");
      return kTfLiteError;
    }
    const int32_t units = Dim(w, 0);
    const tt_fwd_fc_params fc = {p.input_offset, p.output_offset, p.act_min, p.act_max};
    tt_fully_connected_split_s8(&fc, m, s, Count(x->dims) / whole, whole, Data<int8_t>(x),
                                units, lo, k, hi, bias, Data<int8_t>(y));
    return kTfLiteOk;
  }
  const tt_fwd_dims xd = Dims4(x, Dim(x, 3)), yd = Dims4(y, Dim(y, 3));
  const tt_fwd_dims wd = Dims4(w, whole);
  int8_t *scratch = in_place ? static_cast<int8_t *>(Scratch(context, d->scratch)) : nullptr;
  if (kKind == kConv && in_place) {
    if (tt_conv2d_split_inplace_s8(&p, m, s, &xd, Data<int8_t>(x), &wd, lo, k, hi,
                                   bias, &yd, Data<int8_t>(y), scratch) == TT_FWD_OK)
      return kTfLiteOk;
  } else if (kKind == kDepthwise && in_place && x->data.data == y->data.data) {
    if (tt_depthwise_conv2d_inplace_s8(&p, m, s, &xd, Data<int8_t>(y), &wd, lo, bias,
                                       &yd, scratch) == TT_FWD_OK)
      return kTfLiteOk;
  } else if (!overlap) {
    if (kKind == kConv)
      tt_conv2d_split_s8(&p, m, s, &xd, Data<int8_t>(x), &wd, lo, k, hi, bias, &yd,
                         Data<int8_t>(y));
    else
      tt_depthwise_conv2d_s8(&p, m, s, &xd, Data<int8_t>(x), &wd, lo, bias, &yd,
                             Data<int8_t>(y));
    return kTfLiteOk;
  }
  /* a memory plan that placed the output over the input where the kernel cannot take it */
  Log(kForwardNames[kKind], "the output overlaps the input in a way the kernel does not allow");
  return kTfLiteError;
}

/* ---- TT_POINTWISE_DEPTHWISE --------------------------------------------------------------- */

/* As ForwardData: the zero points of the input and output and the window's scratch index;
 * the rest is the options, read again at each Invoke (ReadStream). */
struct StreamData {
  const char *bad_key;
  int scratch;                 /* the window of mid rows */
  int16_t input_offset;        /* minus the input's zero point */
  int16_t output_offset;       /* the output's zero point */
};

/* The two layers' parameters from the options: pw 1x1 at stride 1, its output offset
 * mid's zero point; dw's window from the options, its input offset minus mid's zero point
 * (the input's and output's offsets left 0). Returns the first bad key or NULL. */
const char *ReadStream(Options o, tt_fwd_conv_params *pw, tt_fwd_conv_params *dw) {
  *pw = tt_fwd_conv_params{};
  *dw = tt_fwd_conv_params{};
  pw->stride_h = pw->stride_w = pw->dilation_h = pw->dilation_w = 1;
  pw->act_min = o.Int("pw_act_min");
  pw->act_max = o.Int("pw_act_max");
  const int32_t mid_zero_point = o.Int("mid_zero_point");
  pw->output_offset = mid_zero_point;
  dw->input_offset = -mid_zero_point;
  ReadWindow(o, dw);
  dw->act_min = o.Int("act_min");
  dw->act_max = o.Int("act_max");
  return o.bad_key();
}

/* input, pw_filter, pw_bias, pw_multipliers, pw_shifts, dw_filter, dw_bias, dw_multipliers,
 * dw_shifts */
enum StreamInput { kX, kPwFilter, kPwBias, kPwRequant, kDwFilter = 5, kDwBias, kDwRequant };

TT_SETUP void *StreamInit(TfLiteContext *context, const char *buffer, size_t length) {
  StreamData *d = New<StreamData>(context);
  if (d == nullptr) return nullptr;
  tt_fwd_conv_params pw, dw;
  d->bad_key = ReadStream(Options(buffer, length), &pw, &dw);
  return d;
}

TT_SETUP TfLiteStatus StreamPrepare(TfLiteContext *context, TfLiteNode *node) {
  Prepare c(context, node, "TT_POINTWISE_DEPTHWISE");
  StreamData *d = static_cast<StreamData *>(node->user_data);
  if (d == nullptr) return c.Fail("no persistent memory for op data");
  if (!c.Options(d->bad_key)) return kTfLiteError;
  if (!c.Arity(9, 1)) return kTfLiteError;
  tt_fwd_conv_params pw, dw;
  ReadStream(Options(node), &pw, &dw);
  if (dw.stride_h < 1 || dw.stride_w < 1 || dw.dilation_h < 1 || dw.dilation_w < 1 ||
      dw.pad_top < 0 || dw.pad_left < 0 || dw.pad_top > kMaxElements ||
      dw.pad_left > kMaxElements)
    return c.Fail("strides and dilations must be positive and pads non-negative");
  if (pw.act_min < -128 || pw.act_max > 127 || pw.act_min > pw.act_max || dw.act_min < -128 ||
      dw.act_max > 127 || dw.act_min > dw.act_max || dw.input_offset < -127 ||
      dw.input_offset > 128)
    return c.Fail("act_min/act_max and pw_act_min/pw_act_max must be ranges within "
                  "[-128, 127], mid_zero_point within it");
  TfLiteTensor *x = c.In(kX, kTfLiteInt8, 4, "input");
  TfLiteTensor *pf = c.In(kPwFilter, kTfLiteInt8, 4, "pw_filter");
  TfLiteTensor *df = c.In(kDwFilter, kTfLiteInt8, 4, "dw_filter");
  TfLiteTensor *y = c.Out(0, kTfLiteInt8, 4, "output");
  if (x == nullptr || pf == nullptr || df == nullptr || y == nullptr ||
      !c.Parameter(pf, "pw_filter", true) || !c.Parameter(df, "dw_filter", true))
    return kTfLiteError;
  int32_t x_zp, y_zp;
  if (!c.ZeroPoint(x, "input", &x_zp) || !c.ZeroPoint(y, "output", &y_zp)) return kTfLiteError;
  if (!Offset(x_zp, -1, &d->input_offset) || !Offset(y_zp, 1, &d->output_offset))
    return c.Fail("zero points must be within [-128, 127]");
  const int32_t cm = pf->dims->data[0];
  if (x->dims->data[0] != 1 || y->dims->data[0] != 1)
    return c.Fail("batch 1 only");
  if (pf->dims->data[1] != 1 || pf->dims->data[2] != 1 || pf->dims->data[3] != x->dims->data[3])
    return c.Fail("pw_filter must be [CM, 1, 1, input channels]");
  if (df->dims->data[0] != 1 || df->dims->data[3] != cm || y->dims->data[3] != cm)
    return c.Fail("dw_filter, pw_filter and output shapes do not match");
  /* any output size is safe (rows and columns outside mid are padding); the kernel's row
   * and column positions o * stride + k * dilation - pad must stay within int32 */
  const int64_t reach_h = int64_t{y->dims->data[1] - 1} * dw.stride_h +
                          int64_t{df->dims->data[1] - 1} * dw.dilation_h + 1;
  const int64_t reach_w = int64_t{y->dims->data[2] - 1} * dw.stride_w +
                          int64_t{df->dims->data[2] - 1} * dw.dilation_w + 1;
  if (reach_h > kMaxElements || reach_w > kMaxElements)
    return c.Fail("the window's strides, dilations or size are too large for its tensors");
  if (!c.Bias(kPwBias, cm) || !c.Requantization(kPwRequant, cm) || !c.Bias(kDwBias, cm) ||
      !c.Requantization(kDwRequant, cm))
    return kTfLiteError;
  const tt_fwd_dims mid = {1, x->dims->data[1], x->dims->data[2], cm};
  const tt_fwd_dims dfd = {1, df->dims->data[1], df->dims->data[2], cm};
  const tt_fwd_dims yd = {1, y->dims->data[1], y->dims->data[2], cm};
  const int32_t window = tt_pointwise_depthwise_s8_window_bytes(&dw, &mid, &dfd, &yd);
  return c.Scratch(static_cast<size_t>(window), &d->scratch) ? kTfLiteOk : kTfLiteError;
}

TfLiteStatus StreamInvoke(TfLiteContext *context, TfLiteNode *node) {
  const StreamData *d = static_cast<const StreamData *>(node->user_data);
  tt_fwd_conv_params pw, dw;
  ReadStream(Options(node), &pw, &dw);
  pw.input_offset = d->input_offset;
  dw.output_offset = d->output_offset;
  const TfLiteEvalTensor *x = EvalInput(context, node, kX);
  const TfLiteEvalTensor *pf = EvalInput(context, node, kPwFilter);
  const TfLiteEvalTensor *df = EvalInput(context, node, kDwFilter);
  TfLiteEvalTensor *y = EvalOutput(context, node, 0);
  if (Overlap(x->data.data, static_cast<size_t>(Count(x->dims)), y->data.data,
              static_cast<size_t>(Count(y->dims)))) {
    Log("TT_POINTWISE_DEPTHWISE", "the output overlaps the input");
    return kTfLiteError;
  }
  const int32_t cm = Dim(pf, 0);
  const tt_fwd_dims xd = Dims4(x, Dim(x, 3)), pfd = Dims4(pf, Dim(pf, 3));
  const tt_fwd_dims mid = {1, Dim(x, 1), Dim(x, 2), cm};
  const tt_fwd_dims dfd = Dims4(df, cm), yd = Dims4(y, cm);
  const tt_stream_layer pl = {&pw, Data<int32_t>(EvalInput(context, node, kPwRequant)),
                              Data<int8_t>(EvalInput(context, node, kPwRequant + 1)), &pfd,
                              Data<int8_t>(pf), nullptr,
                              Data<int32_t>(EvalInput(context, node, kPwBias))};
  const tt_stream_layer dl = {&dw, Data<int32_t>(EvalInput(context, node, kDwRequant)),
                              Data<int8_t>(EvalInput(context, node, kDwRequant + 1)), &dfd,
                              Data<int8_t>(df), nullptr,
                              Data<int32_t>(EvalInput(context, node, kDwBias))};
  const tt_stream_dims dims = {&xd, &mid, &yd, &yd};
  const int status = tt_pointwise_depthwise_s8(
      &pl, &dl, &dims, Data<int8_t>(x), Data<int8_t>(y),
      static_cast<int8_t *>(Scratch(context, d->scratch)));
  return status == TT_FWD_OK ? kTfLiteOk : kTfLiteError;
}

/* ---- the table --------------------------------------------------------------------------- */

constexpr TFLMRegistration Op(void *(*init)(TfLiteContext *, const char *, size_t),
                              TfLiteStatus (*prepare)(TfLiteContext *, TfLiteNode *),
                              TfLiteStatus (*invoke)(TfLiteContext *, TfLiteNode *)) {
  return TFLMRegistration{init, nullptr, prepare, invoke, nullptr, 0, nullptr};
}

struct Entry {
  const char *name;
  TFLMRegistration registration;
};

constexpr Entry kOps[kNumForwardOps] = {
    {"TT_CONV2D", Op(ForwardInit<kConv>, ForwardPrepare<kConv>, ForwardInvoke<kConv>)},
    {"TT_DEPTHWISE_CONV2D",
     Op(ForwardInit<kDepthwise>, ForwardPrepare<kDepthwise>, ForwardInvoke<kDepthwise>)},
    {"TT_FULLY_CONNECTED", Op(ForwardInit<kFullyConnected>, ForwardPrepare<kFullyConnected>,
                              ForwardInvoke<kFullyConnected>)},
    {"TT_POINTWISE_DEPTHWISE", Op(StreamInit, StreamPrepare, StreamInvoke)},
};

}  // namespace

const char *ForwardOpName(int i) {
  return i >= 0 && i < kNumForwardOps ? kOps[i].name : nullptr;
}

const Registration *ForwardOpRegistration(int i) {
  return i >= 0 && i < kNumForwardOps ? &kOps[i].registration : nullptr;
}

}  // namespace tflm
}  // namespace tflite_train
