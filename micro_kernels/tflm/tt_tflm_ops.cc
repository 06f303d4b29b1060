/* TFLM registrations of the TT_* training ops (schema/training_ops.json).
 *
 * TFLM's kernel pattern: Init parses the flexbuffer options once into op data, Prepare
 * checks the tensors and caches quantization (scales copied into persistent memory, scratch
 * requested), Invoke only maps tensors onto the portable kernels of tt_kernels.h, and Reset
 * rewinds per-op state (TT_INIT's flag, the update ops' RNG and step). Every op but TT_INIT
 * reads the label (its last input) and does nothing for label < 0 (inference only).
 *
 * Int8 gradients (schema: int8_gradients): an op is in int8 mode when its gradient tensors
 * are int8, as TFLM kernels dispatch on their input types. Prepare checks the mode's tensors
 * (the scales, the multipliers, the options only that mode has), Invoke calls the _s8
 * kernels, and an op that rounds stochastically keeps its stream like an update op.
 */
#include <float.h>
#include <string.h>

#include "tt_kernels.h"
#include "tt_split_grad.h"
#include "tt_tflm.h"
#include "tt_tflm_options.h"
#include "tt_tflm_prepare.h"

namespace tflite_train {
namespace tflm {
namespace {

/* ---- tensors at Invoke ------------------------------------------------------------------ */

int32_t Last(const TfLiteEvalTensor *t) { return t->dims->data[t->dims->size - 1]; }

/* A tensor's dims as the kernels take them: TFLM's are `int`, which is not int32_t's type
 * on arm-none-eabi (long). rank <= kMaxRank, checked in Prepare. */
struct Dims32 {
  explicit Dims32(const TfLiteIntArray *dims) {
    for (int i = 0; i < dims->size && i < kMaxRank; ++i) v[i] = dims->data[i];
  }
  int32_t v[kMaxRank];
};

/* The label is the last input but the `appended` ones (an update op's accumulator and a
 * weight update's residual). */
bool Training(const TfLiteContext *context, const TfLiteNode *node, int appended = 0) {
  return EvalInput(context, node, InputCount(node) - 1 - appended)->data.i32[0] >= 0;
}

int32_t TypeBytes(TfLiteType type) {
  switch (type) {
    case kTfLiteInt8: case kTfLiteUInt8: case kTfLiteBool: return 1;
    case kTfLiteInt16: return 2;
    case kTfLiteFloat32: case kTfLiteInt32: return 4;
    case kTfLiteInt64: return 8;
    default: return 0;
  }
}



/* ---- options shared by several ops --------------------------------------------------------- */

tt_window ReadWindow(Options &o, bool dilation) {
  tt_window w;
  w.stride_h = o.Int("stride_h");
  w.stride_w = o.Int("stride_w");
  w.dilation_h = dilation ? o.Int("dilation_h") : 1;
  w.dilation_w = dilation ? o.Int("dilation_w") : 1;
  w.pad_top = o.Int("pad_top");
  w.pad_left = o.Int("pad_left");
  return w;
}

bool WindowOk(Prepare &p, const tt_window &w) {
  if (w.stride_h > 0 && w.stride_w > 0 && w.dilation_h > 0 && w.dilation_w > 0 &&
      w.pad_top >= 0 && w.pad_left >= 0)
    return true;
  p.Fail("strides and dilations must be positive and pads non-negative");
  return false;
}

/* ---- int8 gradients: the mode, the rounding options and stream --------------------------- */

/* An op's int8-gradient options (schema: int8_gradients.rounding; `passes` for the layers'
 * input gradients) and, when it rounds stochastically, its stream. */
struct GradMode {
  bool options;              /* Init found them (int8 mode has them, float32 mode not) */
  const char *bad_key;       /* the first of them missing or mistyped */
  int32_t rounding, passes;
  uint32_t seed;
  tt_update_state state;
};

void ReadGradOptions(Options &o, GradMode *g, bool passes) {
  g->options = o.Has("rounding");
  if (!g->options) return;
  g->rounding = o.Int("rounding");
  g->seed = o.UInt("seed");
  g->passes = passes ? o.Int("passes") : 2;
  g->bad_key = o.bad_key();
  tt_update_state_init(&g->state, g->seed);
}

/* The options match the mode and are in range. */
bool GradOptionsOk(Prepare &p, const GradMode &g, bool int8) {
  if (!p.Options(g.bad_key)) return false;
  if (!int8) {
    if (g.options) return p.Fail("options 'rounding' and 'seed' are for int8 gradients"), false;
    return true;
  }
  if (!g.options) return p.Fail("int8 gradients need the options 'rounding' and 'seed'"), false;
  if (g.rounding != 0 && g.rounding != 1) return p.Fail("rounding must be 0 or 1"), false;
  if (g.passes != 1 && g.passes != 2) return p.Fail("passes must be 1 or 2"), false;
  return true;
}

/* The stream the kernel rounds from: NULL rounds to nearest. */
tt_update_state *Rounding(GradMode *g) { return g->rounding == 1 ? &g->state : nullptr; }

void GradReset(GradMode *g) {
  if (g->options) tt_update_state_init(&g->state, g->seed);
}

bool IsInt8(const TfLiteTensor *t) { return t != nullptr && t->type == kTfLiteInt8; }
bool IsInt8(const TfLiteEvalTensor *t) { return t != nullptr && t->type == kTfLiteInt8; }

/* The type of a gradient in the op's mode. */
TfLiteType GradType(bool int8) { return int8 ? kTfLiteInt8 : kTfLiteFloat32; }

/* ---- the ops' random streams and steps, for checkpoints (tt_tflm.h: ReportUpdateStatesTo) -- */

UpdateOpStates *g_update_sink = nullptr;

static_assert(sizeof(tt_update_state) == 8,
              "tt_checkpoint.h's update-state region is u32 rng, i32 step");

/* Puts an op's entry (found by its key tensor, else appended) in the sink: an update op is
 * keyed by its parameter, an op rounding an int8 gradient stochastically by that gradient
 * (`momentum`, `accumulator`: the input index of those buffers, or -1). */
void ReportState(const TfLiteContext *context, const TfLiteNode *node, tt_update_state *state,
                 int32_t key, int momentum, int accumulator = -1, int residual = -1) {
  UpdateOpStates *sink = g_update_sink;
  if (sink == nullptr) return;
  int32_t i = 0;
  while (i < sink->count && i < sink->capacity && sink->entries[i].parameter != key) ++i;
  if (i == sink->count) ++sink->count;
  if (i >= sink->capacity) return;
  UpdateOpState &e = sink->entries[i];
  e.parameter = key;
  e.state = state;
  e.state_bytes = static_cast<int32_t>(sizeof *state);
  e.momentum = momentum >= 0 && HasInput(node, momentum) ? node->inputs->data[momentum] : -1;
  const TfLiteEvalTensor *m = e.momentum >= 0 ? EvalInput(context, node, momentum) : nullptr;
  e.momentum_data = m != nullptr ? m->data.data : nullptr;
  e.momentum_bytes = m != nullptr ? Count(m->dims) * static_cast<int32_t>(sizeof(float)) : 0;
  /* an accumulator is always present when the op has one (Prepare checked) */
  e.accumulator = accumulator >= 0 ? node->inputs->data[accumulator] : -1;
  const TfLiteEvalTensor *a = accumulator >= 0 ? EvalInput(context, node, accumulator) : nullptr;
  e.accumulator_data = a != nullptr ? a->data.data : nullptr;
  e.accumulator_bytes = a != nullptr ? Count(a->dims) * static_cast<int32_t>(sizeof(float)) : 0;
  /* a residual likewise (Prepare checked it: int8, one byte an element) */
  e.residual = residual >= 0 ? node->inputs->data[residual] : -1;
  const TfLiteEvalTensor *r = residual >= 0 ? EvalInput(context, node, residual) : nullptr;
  e.residual_data = r != nullptr ? r->data.data : nullptr;
  e.residual_bytes = r != nullptr ? Count(r->dims) : 0;
}

/* An op rounding its int8 gradient output `output` stochastically reports its stream. */
void ReportRounding(const TfLiteContext *context, const TfLiteNode *node, GradMode *g,
                    int output) {
  if (g->options && g->rounding == 1)
    ReportState(context, node, &g->state, node->outputs->data[output], -1);
}

/* The padded extent an (oh x ow)-output window walk of a (kh x kw) kernel spans, and the
 * pads, within kMaxElements: the kernels' position arithmetic (o * stride + k * dilation -
 * pad) then never overflows int32_t. */
bool WindowFits(Prepare &p, const tt_window &w, int32_t kh, int32_t kw, int32_t oh,
                int32_t ow) {
  const int64_t h = int64_t{oh - 1} * w.stride_h + int64_t{kh - 1} * w.dilation_h + 1;
  const int64_t v = int64_t{ow - 1} * w.stride_w + int64_t{kw - 1} * w.dilation_w + 1;
  if (h <= kMaxElements && v <= kMaxElements && w.pad_top <= kMaxElements &&
      w.pad_left <= kMaxElements)
    return true;
  p.Fail("the window's strides, dilations, pads or size are too large for its tensors");
  return false;
}

/* ---- TT_INIT ------------------------------------------------------------------------------ */

struct InitData { bool done; };

TrainedTensors *g_trained_sink = nullptr;     /* see ReportTrainedTensorsTo */

void Report(const TfLiteContext *context, const TfLiteNode *node) {
  TrainedTensors *sink = g_trained_sink;
  if (sink == nullptr) return;
  sink->count = InputCount(node) / 2;
  for (int i = 0; i < sink->count && i < sink->capacity; ++i) {
    const TfLiteEvalTensor *var = EvalInput(context, node, 2 * i + 1);
    sink->entries[i].tensor = node->inputs->data[2 * i + 1];
    sink->entries[i].data = var->data.data;
    sink->entries[i].bytes = Count(var->dims) * TypeBytes(var->type);
  }
}

void *InitInit(TfLiteContext *context, const char *, size_t) { return New<InitData>(context); }

TfLiteStatus InitPrepare(TfLiteContext *context, TfLiteNode *node) {
  Prepare p(context, node, "TT_INIT");
  if (node->user_data == nullptr) return p.Fail("no persistent memory for op data");
  if (InputCount(node) % 2 != 0) return p.Fail("inputs must be (initial value, variable) pairs");
  for (int i = 0; i < InputCount(node); i += 2) {
    TfLiteTensor *src = TempInput(context, node, i);
    TfLiteTensor *var = TempInput(context, node, i + 1);
    const bool ok = src != nullptr && var != nullptr && p.Sane(src, "initial value") &&
                    p.Sane(var, "variable") && src->type == var->type &&
                    Count(src->dims) == Count(var->dims) && var->is_variable &&
                    TypeBytes(var->type) > 0;
    Release(context, src);
    Release(context, var);
    if (!ok) return p.Fail("pair %d: needs a constant and a variable of one type and size", i / 2);
  }
  return kTfLiteOk;
}

TfLiteStatus InitInvoke(TfLiteContext *context, TfLiteNode *node) {
  InitData *d = static_cast<InitData *>(node->user_data);
  if (d->done) return kTfLiteOk;
  for (int i = 0; i < InputCount(node); i += 2) {
    const TfLiteEvalTensor *src = EvalInput(context, node, i);
    TfLiteEvalTensor *var = EvalInput(context, node, i + 1);
    tt_init_copy(src->data.data, var->data.data, Count(var->dims) * TypeBytes(var->type));
  }
  Report(context, node);
  d->done = true;
  return kTfLiteOk;
}

void InitReset(TfLiteContext *, void *data) {
  if (data != nullptr) static_cast<InitData *>(data)->done = false;
}

/* ---- TT_SAVE_MASK, TT_SAVE_SLICE ---------------------------------------------------------- */

struct IntsData {            /* a few integer options: lo/hi, channels, perm, before, axes */
  const char *bad_key;
  int32_t n;
  int32_t v[kMaxRank];
};

/* Init of the ops whose options are a few ints, kept in IntsData::v in key order. */
template <const char *const *kKeys, int kCount>
void *IntsInit(TfLiteContext *context, const char *buffer, size_t length) {
  IntsData *d = New<IntsData>(context);
  if (d == nullptr) return nullptr;
  Options o(buffer, length);
  for (int i = 0; i < kCount; ++i) d->v[i] = o.Int(kKeys[i]);
  d->n = kCount;
  d->bad_key = o.bad_key();
  return d;
}

constexpr const char *kMaskKeys[] = {"lo", "hi"};

/* The staging of the DSP versions of the int8-gradient kernels (tt_kernels.h: the most any
 * tt_*_stage_bytes asks for with the default TT_GRAD_DSP_*_STAGE_BYTES): inside TFLM a
 * buffer on the invoke's stack, where the kernels had it before they took it as an
 * argument, so that TFLM's arena (and memory.tflm_buffers, which predicts it) is unchanged;
 * the generated programs place it in their arena instead. */
constexpr int32_t kGradStageBytes = 9216;
struct GradStage {
  alignas(8) uint8_t bytes[kGradStageBytes];
};
constexpr const char *kSliceKeys[] = {"channels"};

TfLiteStatus SaveMaskPrepare(TfLiteContext *context, TfLiteNode *node) {
  Prepare p(context, node, "TT_SAVE_MASK");
  const IntsData *d = static_cast<const IntsData *>(node->user_data);
  if (d == nullptr || !p.Options(d->bad_key) || !p.Inputs(2)) return kTfLiteError;
  TfLiteTensor *y = p.In(0, kTfLiteInt8, "y");
  TfLiteTensor *mask = p.Out(0, kTfLiteUInt8, "mask");
  if (y == nullptr || mask == nullptr) return kTfLiteError;
  if (Count(mask->dims) != (Count(y->dims) + 7) / 8)
    return p.Fail("mask must hold one bit per element");
  return kTfLiteOk;
}

TfLiteStatus SaveMaskInvoke(TfLiteContext *context, TfLiteNode *node) {
  if (!Training(context, node)) return kTfLiteOk;
  const IntsData *d = static_cast<const IntsData *>(node->user_data);
  const TfLiteEvalTensor *y = EvalInput(context, node, 0);
  tt_save_mask_s8(Data<int8_t>(y), Count(y->dims), d->v[0], d->v[1],
                  Data<uint8_t>(EvalOutput(context, node, 0)));
  return kTfLiteOk;
}

TfLiteStatus SlicePrepare(TfLiteContext *context, TfLiteNode *node) {
  Prepare p(context, node, "TT_SAVE_SLICE");
  const IntsData *d = static_cast<const IntsData *>(node->user_data);
  if (d == nullptr || !p.Options(d->bad_key) || !p.Inputs(2)) return kTfLiteError;
  TfLiteTensor *x = p.In(0, kTfLiteInt8, "x");
  TfLiteTensor *saved = p.Out(0, kTfLiteInt8, "saved");
  if (x == nullptr || saved == nullptr || !p.MinRank(x, 1, "x")) return kTfLiteError;
  const int32_t depth = x->dims->data[x->dims->size - 1];
  if (d->v[0] < 1 || d->v[0] > depth || Count(saved->dims) != Count(x->dims) / depth * d->v[0])
    return p.Fail("saved must hold the first %d of %d channels", d->v[0], depth);
  return kTfLiteOk;
}

TfLiteStatus SliceInvoke(TfLiteContext *context, TfLiteNode *node) {
  if (!Training(context, node)) return kTfLiteOk;
  const IntsData *d = static_cast<const IntsData *>(node->user_data);
  const TfLiteEvalTensor *x = EvalInput(context, node, 0);
  tt_save_slice_s8(Data<int8_t>(x), Count(x->dims) / Last(x), Last(x), d->v[0],
                   Data<int8_t>(EvalOutput(context, node, 0)));
  return kTfLiteOk;
}

/* ---- TT_LOSS_SOFTMAX_CE, TT_SOFTMAX_GRAD: one cached per-tensor quantization ---------------- */

struct QuantData {
  GradMode grad;
  float scale;
  int32_t zero_point;
  bool int8;
  int scratch;                 /* the int8 loss: the float32 dlogits before rounding */
};

void *QuantInit(TfLiteContext *context, const char *buffer, size_t length) {
  QuantData *d = New<QuantData>(context);
  if (d == nullptr) return nullptr;
  Options o(buffer, length);
  ReadGradOptions(o, &d->grad, false);
  return d;
}

/* Reset of the ops whose data starts with their GradMode. */
void GradModeReset(TfLiteContext *, void *data) {
  if (data != nullptr) GradReset(static_cast<GradMode *>(data));
}

TfLiteStatus LossPrepare(TfLiteContext *context, TfLiteNode *node) {
  Prepare p(context, node, "TT_LOSS_SOFTMAX_CE");
  QuantData *d = static_cast<QuantData *>(node->user_data);
  if (d == nullptr || !p.Inputs(2)) return kTfLiteError;
  d->int8 = OutputCount(node) > 1 && IsInt8(p.Out(1));
  if (!GradOptionsOk(p, d->grad, d->int8)) return kTfLiteError;
  if (OutputCount(node) != (d->int8 ? 3 : 2)) return p.Fail("wrong number of outputs");
  TfLiteTensor *logits = p.In(0, kTfLiteInt8, "logits");
  TfLiteTensor *loss = p.Out(0, kTfLiteFloat32, "loss");
  TfLiteTensor *dlogits = p.Out(1, GradType(d->int8), "dlogits");
  if (logits == nullptr || loss == nullptr || dlogits == nullptr) return kTfLiteError;
  if (Count(loss->dims) != 1 || Count(dlogits->dims) != Count(logits->dims))
    return p.Fail("loss must be [1] and dlogits shaped like the logits");
  if (d->int8 && (!p.ScaleOut(2, "dlogits_scale") ||
                  !p.Scratch(sizeof(float) * Count(logits->dims), &d->scratch)))
    return kTfLiteError;
  return p.Quant(logits, "logits", &d->scale, &d->zero_point) ? kTfLiteOk : kTfLiteError;
}

TfLiteStatus LossInvoke(TfLiteContext *context, TfLiteNode *node) {
  QuantData *d = static_cast<QuantData *>(node->user_data);
  if (d->int8) ReportRounding(context, node, &d->grad, 1);
  const int32_t label = EvalInput(context, node, 1)->data.i32[0];
  float *loss = Data<float>(EvalOutput(context, node, 0));
  if (label < 0) {
    *loss = 0.0f;
    return kTfLiteOk;
  }
  const TfLiteEvalTensor *logits = EvalInput(context, node, 0);
  const int32_t classes = Count(logits->dims);
  const int status =
      d->int8 ? tt_loss_softmax_ce_s8_s8(Data<int8_t>(logits), classes, d->scale, d->zero_point,
                                         label, loss, Data<int8_t>(EvalOutput(context, node, 1)),
                                         Data<float>(EvalOutput(context, node, 2)),
                                         Rounding(&d->grad),
                                         static_cast<float *>(Scratch(context, d->scratch)))
              : tt_loss_softmax_ce_s8(Data<int8_t>(logits), classes, d->scale, d->zero_point,
                                      label, loss, Data<float>(EvalOutput(context, node, 1)));
  if (status != TT_OK) {
    Log("TT_LOSS_SOFTMAX_CE", "label %d out of range for %d classes", static_cast<int>(label),
        static_cast<int>(classes));
    return kTfLiteError;
  }
  return kTfLiteOk;
}

/* The int8 softmax gradient: TFLite's int8 softmax output (scale 1/256), depth < 66000. */
TfLiteStatus SoftmaxGradPrepare(TfLiteContext *context, TfLiteNode *node) {
  Prepare p(context, node, "TT_SOFTMAX_GRAD");
  QuantData *d = static_cast<QuantData *>(node->user_data);
  if (d == nullptr) return kTfLiteError;
  d->int8 = IsInt8(p.In(0));
  if (!GradOptionsOk(p, d->grad, d->int8) || !p.Inputs(d->int8 ? 4 : 3)) return kTfLiteError;
  TfLiteTensor *dy = p.In(0, GradType(d->int8), "dy");
  TfLiteTensor *saved = p.In(1, kTfLiteInt8, "saved");
  TfLiteTensor *dx = p.Out(0, GradType(d->int8), "dx");
  if (dy == nullptr || saved == nullptr || dx == nullptr || !p.MinRank(dy, 1, "dy"))
    return kTfLiteError;
  if (Count(dy->dims) != Count(saved->dims) || Count(dx->dims) != Count(dy->dims))
    return p.Fail("dy, saved and dx must have one size");
  if (!p.Quant(saved, "saved", &d->scale, &d->zero_point)) return kTfLiteError;
  if (!d->int8) return kTfLiteOk;
  if (!p.ScaleIn(2, "dy_scale") || OutputCount(node) != 2 || !p.ScaleOut(1, "dx_scale"))
    return kTfLiteError;
  if (d->scale != 1.0f / 256.0f) return p.Fail("int8 gradients need a softmax of scale 1/256");
  if (dy->dims->data[dy->dims->size - 1] >= 66000) return p.Fail("depth must be below 66000");
  return kTfLiteOk;
}

TfLiteStatus SoftmaxGradInvoke(TfLiteContext *context, TfLiteNode *node) {
  QuantData *d = static_cast<QuantData *>(node->user_data);
  if (d->int8) ReportRounding(context, node, &d->grad, 0);
  if (!Training(context, node)) return kTfLiteOk;
  const TfLiteEvalTensor *dy = EvalInput(context, node, 0);
  const int8_t *saved = Data<int8_t>(EvalInput(context, node, 1));
  if (d->int8) {
    tt_softmax_grad_s8(Data<int8_t>(dy), Data<float>(EvalInput(context, node, 2)), saved,
                       d->zero_point, Count(dy->dims) / Last(dy), Last(dy),
                       Data<int8_t>(EvalOutput(context, node, 0)),
                       Data<float>(EvalOutput(context, node, 1)), Rounding(&d->grad));
    return kTfLiteOk;
  }
  tt_softmax_grad_f32(Data<float>(dy), saved, d->scale, d->zero_point, Count(dy->dims) / Last(dy),
                      Last(dy), Data<float>(EvalOutput(context, node, 0)));
  return kTfLiteOk;
}

/* ---- elementwise gradient plumbing: TT_BIAS_GRAD, TT_MASK_GRAD, TT_SUM_GRAD, TT_RESHAPE_GRAD */

/* How an op holding one gradient dy at input 0 looks in each mode: `inputs` in float32 mode
 * (label included); int8 mode has dy's scale before the label when `dy_scale`, and dx's scale
 * as output 1 when `dx_scale`; output 0 is a gradient (`grad_out`) or float32. */
struct DyForm {
  int inputs;
  bool same_size, dy_scale, dx_scale, grad_out;
};

TfLiteStatus PrepareDy(TfLiteContext *context, TfLiteNode *node, const char *op,
                       const DyForm &f) {
  Prepare p(context, node, op);
  const bool int8 = IsInt8(p.In(0));
  if (!p.Inputs(f.inputs + (int8 && f.dy_scale ? 1 : 0))) return kTfLiteError;
  TfLiteTensor *dy = p.In(0, GradType(int8), "dy");
  TfLiteTensor *dx = p.Out(0, f.grad_out ? GradType(int8) : kTfLiteFloat32, "dx");
  if (dy == nullptr || dx == nullptr) return kTfLiteError;
  if (f.same_size && Count(dx->dims) != Count(dy->dims)) return p.Fail("dx and dy differ in size");
  if (OutputCount(node) != (int8 && f.dx_scale ? 2 : 1)) return p.Fail("wrong number of outputs");
  if (int8 && f.dy_scale && !p.ScaleIn(InputCount(node) - 2, "dy_scale")) return kTfLiteError;
  if (int8 && f.dx_scale && !p.ScaleOut(1, "dx_scale")) return kTfLiteError;
  return kTfLiteOk;
}

/* An optional mask at input 1 with one bit per element of dy. */
TfLiteStatus PrepareMask(TfLiteContext *context, TfLiteNode *node, const char *op,
                         bool optional) {
  Prepare p(context, node, op);
  TfLiteTensor *dy = p.In(0);
  TfLiteTensor *mask = p.In(1, kTfLiteUInt8, "mask", optional);
  if (mask == nullptr) return optional && !HasInput(node, 1) ? kTfLiteOk : kTfLiteError;
  if (Count(mask->dims) != (Count(dy->dims) + 7) / 8)
    return p.Fail("mask must hold one bit per dy element");
  return kTfLiteOk;
}

TfLiteStatus BiasGradPrepare(TfLiteContext *context, TfLiteNode *node) {
  if (PrepareDy(context, node, "TT_BIAS_GRAD", DyForm{3, false, true, false, false}) !=
          kTfLiteOk ||
      PrepareMask(context, node, "TT_BIAS_GRAD", true) != kTfLiteOk)
    return kTfLiteError;
  Prepare p(context, node, "TT_BIAS_GRAD");
  TfLiteTensor *dy = p.In(0);
  TfLiteTensor *db = p.Out(0);
  if (!p.MinRank(dy, 1, "dy")) return kTfLiteError;
  if (Count(db->dims) != dy->dims->data[dy->dims->size - 1])
    return p.Fail("db must have dy's channels");
  return kTfLiteOk;
}

/* db from dy (its scale at input `scale` when int8) and mask (input 1): TT_BIAS_GRAD, and
 * TT_BIAS_UPDATE's gradient at a batch above 1. */
void BiasGrad(const TfLiteContext *context, const TfLiteNode *node, int scale, float *db) {
  const TfLiteEvalTensor *dy = EvalInput(context, node, 0);
  const uint8_t *mask = Data<uint8_t>(EvalInput(context, node, 1));
  if (IsInt8(dy)) {
    tt_bias_grad_s8(Data<int8_t>(dy), Data<float>(EvalInput(context, node, scale)), mask,
                    Count(dy->dims) / Last(dy), Last(dy), db);
    return;
  }
  tt_bias_grad_f32(Data<float>(dy), mask, Count(dy->dims) / Last(dy), Last(dy), db);
}

TfLiteStatus BiasGradInvoke(TfLiteContext *context, TfLiteNode *node) {
  if (Training(context, node))
    BiasGrad(context, node, 2, Data<float>(EvalOutput(context, node, 0)));
  return kTfLiteOk;
}

TfLiteStatus MaskGradPrepare(TfLiteContext *context, TfLiteNode *node) {
  if (PrepareDy(context, node, "TT_MASK_GRAD", DyForm{3, true, false, false, true}) != kTfLiteOk)
    return kTfLiteError;
  return PrepareMask(context, node, "TT_MASK_GRAD", false);
}

TfLiteStatus MaskGradInvoke(TfLiteContext *context, TfLiteNode *node) {
  if (!Training(context, node)) return kTfLiteOk;
  const TfLiteEvalTensor *dy = EvalInput(context, node, 0);
  const uint8_t *mask = Data<uint8_t>(EvalInput(context, node, 1));
  TfLiteEvalTensor *dx = EvalOutput(context, node, 0);
  if (IsInt8(dy))
    tt_mask_grad_s8(Data<int8_t>(dy), mask, Count(dy->dims), Data<int8_t>(dx));
  else
    tt_mask_grad_f32(Data<float>(dy), mask, Count(dy->dims), Data<float>(dx));
  return kTfLiteOk;
}

/* TT_SUM_GRAD: a, b, label -> dx; int8: a, b, a_scale, b_scale, label -> dx, dx_scale. */
struct SumData {
  GradMode grad;
  bool int8;
};

void *SumInit(TfLiteContext *context, const char *buffer, size_t length) {
  SumData *d = New<SumData>(context);
  if (d == nullptr) return nullptr;
  Options o(buffer, length);
  ReadGradOptions(o, &d->grad, false);
  return d;
}

TfLiteStatus SumGradPrepare(TfLiteContext *context, TfLiteNode *node) {
  Prepare p(context, node, "TT_SUM_GRAD");
  SumData *d = static_cast<SumData *>(node->user_data);
  if (d == nullptr) return kTfLiteError;
  d->int8 = IsInt8(p.In(0));
  if (!GradOptionsOk(p, d->grad, d->int8) || !p.Inputs(d->int8 ? 5 : 3)) return kTfLiteError;
  TfLiteTensor *a = p.In(0, GradType(d->int8), "a");
  TfLiteTensor *dx = p.Out(0, GradType(d->int8), "dx");
  if (a == nullptr || dx == nullptr) return kTfLiteError;
  if (OutputCount(node) != (d->int8 ? 2 : 1)) return p.Fail("wrong number of outputs");
  if (d->int8 && (!p.ScaleIn(2, "a_scale") || !p.ScaleOut(1, "dx_scale"))) return kTfLiteError;
  if (HasInput(node, 1)) {
    TfLiteTensor *b = p.In(1, GradType(d->int8), "b");
    if (b == nullptr) return kTfLiteError;
    if (Count(b->dims) != Count(a->dims) || Count(dx->dims) != Count(a->dims))
      return p.Fail("a, b and dx must have one size");
    if (d->int8 && !p.ScaleIn(3, "b_scale")) return kTfLiteError;
    return kTfLiteOk;
  }
  if (d->int8 && HasInput(node, 3)) return p.Fail("b_scale without b");
  /* the broadcast form: dx's axes, right-aligned, are dy's or 1 */
  const int rank = a->dims->size, lead = rank - dx->dims->size;
  if (rank > kMaxRank || lead < 0) return p.Fail("dx's rank must be at most dy's (<= 6)");
  for (int d_ = 0; d_ < dx->dims->size; ++d_) {
    const int n = dx->dims->data[d_];
    if (n != 1 && n != a->dims->data[lead + d_]) return p.Fail("dx does not broadcast to dy");
  }
  return kTfLiteOk;
}

TfLiteStatus SumGradInvoke(TfLiteContext *context, TfLiteNode *node) {
  SumData *d = static_cast<SumData *>(node->user_data);
  if (d->int8) ReportRounding(context, node, &d->grad, 0);
  if (!Training(context, node)) return kTfLiteOk;
  const TfLiteEvalTensor *a = EvalInput(context, node, 0);
  const TfLiteEvalTensor *b = EvalInput(context, node, 1);
  TfLiteEvalTensor *dx = EvalOutput(context, node, 0);
  int32_t dx_dims[kMaxRank];
  const int rank = a->dims->size, lead = rank - dx->dims->size;
  for (int i = 0; b == nullptr && i < rank; ++i)
    dx_dims[i] = i < lead ? 1 : dx->dims->data[i - lead];
  if (d->int8) {
    const float *a_scale = Data<float>(EvalInput(context, node, 2));
    float *dx_scale = Data<float>(EvalOutput(context, node, 1));
    if (b != nullptr)
      tt_add_grad_s8(Data<int8_t>(a), a_scale, Data<int8_t>(b),
                     Data<float>(EvalInput(context, node, 3)), Count(a->dims),
                     Data<int8_t>(dx), dx_scale, Rounding(&d->grad));
    else
      tt_sum_broadcast_grad_s8(Data<int8_t>(a), a_scale, Dims32(a->dims).v, dx_dims, rank,
                               Data<int8_t>(dx), dx_scale, Rounding(&d->grad));
    return kTfLiteOk;
  }
  if (b != nullptr)
    tt_add_grad_f32(Data<float>(a), Data<float>(b), Count(a->dims), Data<float>(dx));
  else
    tt_sum_broadcast_grad_f32(Data<float>(a), Dims32(a->dims).v, dx_dims, rank, Data<float>(dx));
  return kTfLiteOk;
}

TfLiteStatus ReshapeGradPrepare(TfLiteContext *context, TfLiteNode *node) {
  return PrepareDy(context, node, "TT_RESHAPE_GRAD", DyForm{2, true, false, false, true});
}

TfLiteStatus ReshapeGradInvoke(TfLiteContext *context, TfLiteNode *node) {
  if (!Training(context, node)) return kTfLiteOk;
  const TfLiteEvalTensor *dy = EvalInput(context, node, 0);
  tt_init_copy(dy->data.data, EvalOutput(context, node, 0)->data.data,
               Count(dy->dims) * TypeBytes(dy->type));
  return kTfLiteOk;
}

/* ---- TT_TRANSPOSE_GRAD, TT_PAD_GRAD, TT_MEAN_GRAD: one int-vector option ------------------- */

template <int kKey>
void *VectorInit(TfLiteContext *context, const char *buffer, size_t length) {
  static const char *const keys[] = {"perm", "before", "axes"};
  IntsData *d = New<IntsData>(context);
  if (d == nullptr) return nullptr;
  Options o(buffer, length);
  d->n = o.Ints(keys[kKey], d->v, kMaxRank);
  d->bad_key = o.bad_key();
  return d;
}

/* The checks the three share; the op's own checks follow on the same Prepare. The mean's
 * int8 form has the scales (it divides dy's by the count). */
bool VectorPrepare(Prepare &p, TfLiteContext *context, TfLiteNode *node, const char *op,
                   TfLiteTensor **dy, TfLiteTensor **dx, const IntsData **d, bool scales) {
  if (PrepareDy(context, node, op, DyForm{2, false, scales, scales, true}) != kTfLiteOk)
    return false;
  *d = static_cast<const IntsData *>(node->user_data);
  if (*d == nullptr || !p.Options((*d)->bad_key)) return false;
  *dy = p.In(0);
  *dx = p.Out(0);
  if ((*dy)->dims->size > kMaxRank || (*dx)->dims->size > kMaxRank)
    return p.Fail("tensors of rank > 6 are not supported"), false;
  return true;
}

TfLiteStatus TransposeGradPrepare(TfLiteContext *context, TfLiteNode *node) {
  Prepare p(context, node, "TT_TRANSPOSE_GRAD");
  TfLiteTensor *dy, *dx;
  const IntsData *d;
  if (!VectorPrepare(p, context, node, "TT_TRANSPOSE_GRAD", &dy, &dx, &d, false))
    return kTfLiteError;
  if (d->n != dy->dims->size || Count(dx->dims) != Count(dy->dims))
    return p.Fail("perm must have dy's rank");
  int seen = 0;
  for (int a = 0; a < d->n; ++a) {
    if (d->v[a] < 0 || d->v[a] >= d->n || (seen >> d->v[a] & 1))
      return p.Fail("perm is not a permutation");
    seen |= 1 << d->v[a];
  }
  return kTfLiteOk;
}

TfLiteStatus TransposeGradInvoke(TfLiteContext *context, TfLiteNode *node) {
  if (!Training(context, node)) return kTfLiteOk;
  const IntsData *d = static_cast<const IntsData *>(node->user_data);
  const TfLiteEvalTensor *dy = EvalInput(context, node, 0);
  TfLiteEvalTensor *dx = EvalOutput(context, node, 0);
  if (IsInt8(dy))
    tt_transpose_grad_s8(Data<int8_t>(dy), Dims32(dy->dims).v, d->v, d->n, Data<int8_t>(dx));
  else
    tt_transpose_grad_f32(Data<float>(dy), Dims32(dy->dims).v, d->v, d->n, Data<float>(dx));
  return kTfLiteOk;
}

TfLiteStatus PadGradPrepare(TfLiteContext *context, TfLiteNode *node) {
  Prepare p(context, node, "TT_PAD_GRAD");
  TfLiteTensor *dy, *dx;
  const IntsData *d;
  if (!VectorPrepare(p, context, node, "TT_PAD_GRAD", &dy, &dx, &d, false)) return kTfLiteError;
  if (d->n != dy->dims->size || dx->dims->size != d->n)
    return p.Fail("before, dy and dx need one rank");
  for (int a = 0; a < d->n; ++a) {
    if (d->v[a] < 0 || d->v[a] + dx->dims->data[a] > dy->dims->data[a])
      return p.Fail("dx does not fit in dy at 'before'");
  }
  return kTfLiteOk;
}

TfLiteStatus PadGradInvoke(TfLiteContext *context, TfLiteNode *node) {
  if (!Training(context, node)) return kTfLiteOk;
  const IntsData *d = static_cast<const IntsData *>(node->user_data);
  const TfLiteEvalTensor *dy = EvalInput(context, node, 0);
  TfLiteEvalTensor *dx = EvalOutput(context, node, 0);
  if (IsInt8(dy))
    tt_pad_grad_s8(Data<int8_t>(dy), Dims32(dy->dims).v, d->v, Dims32(dx->dims).v, d->n,
                   Data<int8_t>(dx));
  else
    tt_pad_grad_f32(Data<float>(dy), Dims32(dy->dims).v, d->v, Dims32(dx->dims).v, d->n,
                    Data<float>(dx));
  return kTfLiteOk;
}

TfLiteStatus MeanGradPrepare(TfLiteContext *context, TfLiteNode *node) {
  Prepare p(context, node, "TT_MEAN_GRAD");
  TfLiteTensor *dy, *dx;
  const IntsData *d;
  if (!VectorPrepare(p, context, node, "TT_MEAN_GRAD", &dy, &dx, &d, true)) return kTfLiteError;
  int32_t kept = Count(dx->dims);
  int seen = 0;
  for (int a = 0; a < d->n; ++a) {
    const int axis = d->v[a] < 0 ? d->v[a] + dx->dims->size : d->v[a];
    if (axis < 0 || axis >= dx->dims->size) return p.Fail("axis %d out of range", d->v[a]);
    if (seen >> axis & 1) return p.Fail("axis %d given twice", d->v[a]);
    seen |= 1 << axis;
    kept /= dx->dims->data[axis];
  }
  if (kept != Count(dy->dims)) return p.Fail("dy must have dx's size over the kept axes");
  return kTfLiteOk;
}

TfLiteStatus MeanGradInvoke(TfLiteContext *context, TfLiteNode *node) {
  if (!Training(context, node)) return kTfLiteOk;
  const IntsData *d = static_cast<const IntsData *>(node->user_data);
  const TfLiteEvalTensor *dy = EvalInput(context, node, 0);
  TfLiteEvalTensor *dx = EvalOutput(context, node, 0);
  int32_t reduced[kMaxRank] = {0};
  for (int a = 0; a < d->n; ++a) reduced[d->v[a] < 0 ? d->v[a] + dx->dims->size : d->v[a]] = 1;
  if (IsInt8(dy))
    tt_mean_grad_s8(Data<int8_t>(dy), Data<float>(EvalInput(context, node, 1)),
                    Dims32(dx->dims).v, reduced, dx->dims->size, Data<int8_t>(dx),
                    Data<float>(EvalOutput(context, node, 1)));
  else
    tt_mean_grad_f32(Data<float>(dy), Dims32(dx->dims).v, reduced, dx->dims->size,
                     Data<float>(dx));
  return kTfLiteOk;
}

/* ---- pooling gradients ------------------------------------------------------------------- */

struct PoolData {
  GradMode grad;
  const char *bad_key;
  tt_window window;
  int32_t filter_h, filter_w;
  bool int8;
};

void *PoolInit(TfLiteContext *context, const char *buffer, size_t length) {
  PoolData *d = New<PoolData>(context);
  if (d == nullptr) return nullptr;
  Options o(buffer, length);
  d->window = ReadWindow(o, false);
  d->filter_h = o.Int("filter_h");
  d->filter_w = o.Int("filter_w");
  ReadGradOptions(o, &d->grad, false);
  d->bad_key = o.bad_key();
  return d;
}

TfLiteStatus PoolPrepare(TfLiteContext *context, TfLiteNode *node, const char *op, bool max) {
  if (PrepareDy(context, node, op, DyForm{max ? 3 : 2, false, true, true, true}) != kTfLiteOk)
    return kTfLiteError;
  Prepare p(context, node, op);
  PoolData *d = static_cast<PoolData *>(node->user_data);
  if (d == nullptr || !p.Options(d->bad_key) || !WindowOk(p, d->window)) return kTfLiteError;
  TfLiteTensor *dy = p.In(0);
  TfLiteTensor *dx = p.Out(0);
  d->int8 = IsInt8(dy);
  if (!GradOptionsOk(p, d->grad, d->int8)) return kTfLiteError;
  if (!p.Rank(dy, 4, "dy") || !p.Rank(dx, 4, "dx")) return kTfLiteError;
  if (d->filter_h < 1 || d->filter_w < 1) return p.Fail("filter must be at least 1x1");
  if (dy->dims->data[0] != dx->dims->data[0] || dy->dims->data[3] != dx->dims->data[3])
    return p.Fail("dy and dx batches or channels differ");
  if (!WindowFits(p, d->window, d->filter_h, d->filter_w, dy->dims->data[1], dy->dims->data[2]))
    return kTfLiteError;
  if (max) {
    TfLiteTensor *saved = p.In(1, kTfLiteInt8, "saved");
    if (saved == nullptr) return kTfLiteError;
    if (Count(saved->dims) != Count(dx->dims)) return p.Fail("saved must be shaped like dx");
  }
  return kTfLiteOk;
}

TfLiteStatus AvgPoolGradPrepare(TfLiteContext *context, TfLiteNode *node) {
  return PoolPrepare(context, node, "TT_AVERAGE_POOL_GRAD", false);
}

TfLiteStatus MaxPoolGradPrepare(TfLiteContext *context, TfLiteNode *node) {
  return PoolPrepare(context, node, "TT_MAX_POOL_GRAD", true);
}

TfLiteStatus AvgPoolGradInvoke(TfLiteContext *context, TfLiteNode *node) {
  PoolData *d = static_cast<PoolData *>(node->user_data);
  if (d->int8) ReportRounding(context, node, &d->grad, 0);
  if (!Training(context, node)) return kTfLiteOk;
  const TfLiteEvalTensor *dy = EvalInput(context, node, 0);
  TfLiteEvalTensor *dx = EvalOutput(context, node, 0);
  if (d->int8) {
    tt_average_pool_grad_s8(Data<int8_t>(dy), Data<float>(EvalInput(context, node, 1)),
                            Dim(dy, 0), Dim(dy, 1), Dim(dy, 2), Dim(dy, 3), d->filter_h,
                            d->filter_w, &d->window, Dim(dx, 1), Dim(dx, 2), Data<int8_t>(dx),
                            Data<float>(EvalOutput(context, node, 1)), Rounding(&d->grad));
    return kTfLiteOk;
  }
  tt_average_pool_grad_f32(Data<float>(dy), Dim(dy, 0), Dim(dy, 1), Dim(dy, 2), Dim(dy, 3),
                           d->filter_h, d->filter_w, &d->window, Dim(dx, 1), Dim(dx, 2),
                           Data<float>(dx));
  return kTfLiteOk;
}

TfLiteStatus MaxPoolGradInvoke(TfLiteContext *context, TfLiteNode *node) {
  PoolData *d = static_cast<PoolData *>(node->user_data);
  if (d->int8) ReportRounding(context, node, &d->grad, 0);
  if (!Training(context, node)) return kTfLiteOk;
  const TfLiteEvalTensor *dy = EvalInput(context, node, 0);
  const int8_t *saved = Data<int8_t>(EvalInput(context, node, 1));
  TfLiteEvalTensor *dx = EvalOutput(context, node, 0);
  if (d->int8) {
    tt_max_pool_grad_s8(Data<int8_t>(dy), Data<float>(EvalInput(context, node, 2)), saved,
                        Dim(dy, 0), Dim(dy, 1), Dim(dy, 2), Dim(dy, 3), d->filter_h,
                        d->filter_w, &d->window, Dim(dx, 1), Dim(dx, 2), Data<int8_t>(dx),
                        Data<float>(EvalOutput(context, node, 1)), Rounding(&d->grad));
    return kTfLiteOk;
  }
  tt_max_pool_grad_f32(Data<float>(dy), saved, Dim(dy, 0), Dim(dy, 1), Dim(dy, 2), Dim(dy, 3),
                       d->filter_h, d->filter_w, &d->window, Dim(dx, 1), Dim(dx, 2),
                       Data<float>(dx));
  return kTfLiteOk;
}

/* ---- layer gradients and updates: convolution, depthwise, fully connected, bias ----------- */

enum Layer { kConv, kDepthwise, kFullyConnected, kBias };

/* Everything a layer's gradient or update op needs, parsed in Init and filled in Prepare. */
struct LayerData {
  const char *bad_key;
  int32_t depth_multiplier;
  int32_t batch;               /* option batch (1 when absent); 0: an op without it */
  int scratch;
  /* cached quantization */
  const float *scales;         /* of the weights or bias, one per output channel */
  int32_t n_scales;
  float x_scale;               /* of the saved input (weight gradients) */
  int32_t x_zero_point;
  /* int8 gradients */
  bool int8;
  bool residual;               /* a weight update with the input residual (the last one) */
  /* An op updates a parameter or passes a gradient to its input, never both (kOptions:
   * kSgd or kWeightSgd, else kRounding), so the two share their bytes: 40 a layer op less
   * of TFLM's persistent data (48 with its 16-byte alignment on the Cortex-M7). */
  union {
    struct {                   /* updates (LayerInit<kSgd | kWeightSgd>) */
      tt_sgd sgd;
      uint32_t seed;
      tt_update_state state;
      int32_t channels, axis;
    } u;
    struct {                   /* input gradients (LayerInit<kRounding>) */
      GradMode grad;           /* rounding, seed, passes */
      const int16_t *mult;     /* the weights' multipliers (flash) */
      float w_unit;
      int grad_scratch;        /* one pass: int32 dx */
    } g;
  };
};

/* Init only, never in a step: for size (TT_SETUP; at -O2 it inlined every Options read,
 * 1.2 KB more on the M7). */
TT_SETUP void ReadSgd(Options &o, LayerData *d, bool weights) {
  d->u.sgd.lr = static_cast<float>(o.Float("lr"));
  d->u.sgd.momentum = static_cast<float>(o.Float("momentum"));
  d->u.sgd.qas = o.Bool("qas") ? 1 : 0;
  d->u.sgd.rounding = o.Int("rounding");
  d->u.sgd.decay_steps = o.Int("decay_steps");
  d->u.sgd.half_life = o.Int("half_life_steps");
  d->u.seed = o.UInt("seed");
  d->batch = o.Has("batch") ? o.Int("batch") : 1;
  if (weights) {
    d->u.channels = o.Int("channels");
    d->u.axis = o.Int("axis");
  }
  tt_update_state_init(&d->u.state, d->u.seed);
}

/* A layer's window: its options, kept in the model (flash) and read again where used
 * rather than held in TFLM's persistent memory (24 bytes an op). The
 * options were verified by Init. Convolutions have one (LayerInit<kWindow>), fully
 * connected layers and biases not. */
tt_window LayerWindow(const TfLiteNode *node, Layer layer) {
  if (layer != kConv && layer != kDepthwise) return tt_window{1, 1, 1, 1, 0, 0};
  Options o(node);
  return ReadWindow(o, true);
}

/* kind bits: which options the op has */
enum { kWindow = 1, kMultiplier = 2, kSgd = 4, kWeightSgd = 8, kRounding = 16 };

template <int kOptions>
void *LayerInit(TfLiteContext *context, const char *buffer, size_t length) {
  static_assert(!((kOptions & (kSgd | kWeightSgd)) && (kOptions & kRounding)),
                "LayerData's update and input-gradient parts share their bytes");
  LayerData *d = New<LayerData>(context);
  if (d == nullptr) return nullptr;
  Options o(buffer, length);
  if (kOptions & kWindow) ReadWindow(o, true);   /* checked here, read again where used */
  d->depth_multiplier = (kOptions & kMultiplier) ? o.Int("depth_multiplier") : 1;
  if (kOptions & (kSgd | kWeightSgd)) ReadSgd(o, d, (kOptions & kWeightSgd) != 0);
  if (kOptions & kRounding) ReadGradOptions(o, &d->g.grad, true);
  d->bad_key = o.bad_key();
  return d;
}

/* Reset of an update op (its stream and step) and of an input gradient (its stream). */
void UpdateReset(TfLiteContext *, void *data) {
  LayerData *d = static_cast<LayerData *>(data);
  if (d != nullptr) tt_update_state_init(&d->u.state, d->u.seed);
}

void InputGradReset(TfLiteContext *, void *data) {
  LayerData *d = static_cast<LayerData *>(data);
  if (d != nullptr) GradReset(&d->g.grad);
}

/* A batch above 1: the op accumulates its gradient (BatchStep). */
bool Batched(const LayerData *d) { return d->batch > 1; }

/* Inputs after the label: the accumulator of a batch above 1, then a weight update's
 * residual (its accumulator slot -1 at batch 1). */
int Appended(const LayerData *d) { return d->residual ? 2 : Batched(d) ? 1 : 0; }

/* The accumulator's input index (the first after the label), when Batched. */
int AccumulatorInput(const TfLiteNode *node, const LayerData *d) {
  return InputCount(node) - Appended(d);
}

/* The residual's input index (the last input), or -1 without one. */
int ResidualInput(const TfLiteNode *node, const LayerData *d) {
  return d->residual ? InputCount(node) - 1 : -1;
}

/* The residual's data, or NULL: the kernels' _residual forms take it. */
int8_t *Residual(const TfLiteContext *context, const TfLiteNode *node, const LayerData *d) {
  return d->residual ? Data<int8_t>(EvalInput(context, node, ResidualInput(node, d))) : nullptr;
}

void ReportUpdate(const TfLiteContext *context, const TfLiteNode *node, LayerData *d,
                  int parameter, int momentum) {
  ReportState(context, node, &d->u.state, node->inputs->data[parameter], momentum,
              Batched(d) ? AccumulatorInput(node, d) : -1,
              ResidualInput(node, d));
}

/* An update op's option batch, checked before the input count that follows from it
 * (Appended): a batch of 0 or below would be refused as an input count otherwise. */
TT_SETUP bool BatchOk(Prepare &p, const LayerData *d) {
  if (d->batch >= 1 && d->batch <= 65536) return true;
  return p.Fail("option batch=%d out of range 1..65536", static_cast<int>(d->batch)), false;
}

/* Common checks: option errors, the window, dy (float32 or int8, rank 4 for convolutions)
 * and its optional mask; `inputs` counts the label in float32 mode, int8 mode has `extra`
 * more, the last of them dy's scale, and a batch above 1 its accumulator after the label
 * (`update`: an update op, whose batch is checked first), then, where `residual` allows
 * one, a residual (two inputs after the label: sets d->residual). Sets d->int8. */
bool LayerPrepareCommon(Prepare &p, TfLiteContext *context, TfLiteNode *node, const char *op,
                        int inputs, Layer layer, LayerData **data, TfLiteTensor **dy,
                        int extra = 1, bool update = false, bool residual = false) {
  *data = static_cast<LayerData *>(node->user_data);
  if (*data == nullptr) return p.Fail("no persistent memory for op data"), false;
  const bool int8 = (*data)->int8 = IsInt8(p.In(0));
  const int base = inputs + (int8 ? extra : 0);
  (*data)->residual = residual && InputCount(node) == base + 2;
  const int count = base + Appended(*data);
  if (!p.Options((*data)->bad_key) || (update && !BatchOk(p, *data)) ||
      !p.Inputs(count, Appended(*data)) || !WindowOk(p, LayerWindow(node, layer)))
    return false;
  if ((*data)->depth_multiplier < 1) return p.Fail("depth_multiplier must be positive"), false;
  *dy = p.In(0, GradType(int8), "dy");
  if (*dy == nullptr || !p.MinRank(*dy, 1, "dy")) return false;
  if ((layer == kConv || layer == kDepthwise) && !p.Rank(*dy, 4, "dy")) return false;
  if (int8 && !p.ScaleIn(count - 2 - Appended(*data), "dy_scale")) return false;
  return PrepareMask(context, node, op, true) == kTfLiteOk;
}

/* An int8-dy weight gradient sums at most TT_GRAD_MAX_POSITIONS positions in int32. */
bool PositionsOk(Prepare &p, const LayerData *d, const TfLiteTensor *dy) {
  const int32_t positions = Count(dy->dims) / dy->dims->data[dy->dims->size - 1];
  if (!d->int8 || positions <= TT_GRAD_MAX_POSITIONS) return true;
  return p.Fail("int8 gradients: %d positions per weight gradient, at most %d",
                static_cast<int>(positions), TT_GRAD_MAX_POSITIONS), false;
}

TT_SETUP bool SgdOk(Prepare &p, const LayerData *d) {
  if (d->u.sgd.rounding != 0 && d->u.sgd.rounding != 1)
    return p.Fail("rounding must be 0 or 1"), false;
  if (!(d->u.sgd.lr >= 0) || !(d->u.sgd.momentum >= 0 && d->u.sgd.momentum < 1))
    return p.Fail("lr must be >= 0 and momentum in [0, 1)"), false;
  if (d->u.sgd.decay_steps < 0) return p.Fail("decay_steps must be >= 0"), false;
  if (d->u.sgd.half_life < 0) return p.Fail("half_life_steps must be >= 0"), false;
  if (d->u.sgd.decay_steps > 0 && d->u.sgd.half_life > 0)
    return p.Fail("decay_steps and half_life_steps are both set; one schedule at most"), false;
  return true;          /* the batch: BatchOk, before the input count */
}

/* The weights' scales, one per output channel (axis 0, or the last axis for depthwise). */
bool CacheWeightScales(Prepare &p, const TfLiteTensor *w, Layer layer, LayerData *d) {
  d->n_scales = layer == kDepthwise ? w->dims->data[w->dims->size - 1] : w->dims->data[0];
  d->scales = p.Scales(w, d->n_scales, "weights");
  return d->scales != nullptr;
}

/* A momentum buffer (optional) or an accumulator (required): a float32 variable of `count`
 * elements. */
TT_SETUP bool BufferOk(Prepare &p, TfLiteNode *node, int index, int32_t count,
              const char *what = "momentum_buffer") {
  const bool momentum = what[0] == 'm';
  if (momentum && !HasInput(node, index)) return true;
  TfLiteTensor *m = p.In(index, kTfLiteFloat32, what);
  if (m == nullptr || !p.Variable(m, what)) return false;
  if (Count(m->dims) != count)
    return p.Fail("%s must be shaped like the trained region", what), false;
  return true;
}

/* A batch above 1's accumulator (the last input): a float32 variable of `count` elements,
 * not the momentum buffer (input `momentum`: BatchStep hands both to the rule, which would
 * read its gradient from the buffer it writes). Without one the op has an input fewer than
 * Prepare counts, or -1 here. */
TT_SETUP bool AccumulatorOk(Prepare &p, TfLiteNode *node, const LayerData *d, int32_t count,
                            int momentum) {
  if (!Batched(d)) return true;
  const int acc = AccumulatorInput(node, d);
  if (node->inputs->data[acc] >= 0 && node->inputs->data[acc] == node->inputs->data[momentum])
    return p.Fail("the accumulator is the momentum buffer"), false;
  return BufferOk(p, node, acc, count, "accumulator");
}

/* A weight update's residual (schema: the last input, when d->residual): an int8 variable
 * of the trained region's `count` elements; at batch 1 the accumulator's slot before it is
 * -1. */
TT_SETUP bool ResidualOk(Prepare &p, TfLiteNode *node, const LayerData *d, int32_t count) {
  if (!d->residual) return true;
  const int r = ResidualInput(node, d);
  if (!Batched(d) && HasInput(node, r - 1))
    return p.Fail("batch 1 takes no accumulator input (-1 before the residual)"), false;
  TfLiteTensor *t = p.In(r, kTfLiteInt8, "residual");
  if (t == nullptr || !p.Variable(t, "residual")) return false;
  if (Count(t->dims) != count)
    return p.Fail("residual must be shaped like the trained region"), false;
  return true;
}

/* The parameter's update by the op's rule from `grad` (the trained region); weights with a
 * residual (NULL: none) by its rule. Not inlined: UpdateInvoke and BatchStep share one
 * copy (64 B less on the M7). */
__attribute__((noinline)) void Rule(LayerData *d, TfLiteEvalTensor *param, bool weights,
                                    const float *grad, float *momentum, int8_t *residual) {
  if (weights) {
    tt_update_weight_residual_s8(Data<int8_t>(param), Dims32(param->dims).v,
                                 param->dims->size, d->u.axis == 0 ? 0 : 1, d->scales,
                                 d->n_scales, grad, d->u.channels, momentum, residual, &d->u.sgd,
                                 &d->u.state);
  } else {
    tt_update_bias_s32(Data<int32_t>(param), Count(param->dims), d->scales, grad, momentum,
                       &d->u.sgd, &d->u.state);
  }
}

/* A training Invoke of an update op with batch B > 1 (schema: batch), the six ops' one
 * path: the gradient `g` into the accumulator, and on every B-th the rule on their mean
 * with the schedule's step n / B (tt_batch_accumulate_f32), then the accumulator zeroed. */
void BatchStep(TfLiteContext *context, TfLiteNode *node, LayerData *d, TfLiteEvalTensor *param,
               bool weights, const float *g, float *momentum) {
  const TfLiteEvalTensor *a = EvalInput(context, node, AccumulatorInput(node, d));
  float *acc = Data<float>(a);
  const int32_t n = Count(a->dims);
  if (!tt_batch_accumulate_f32(acc, g, n, d->batch, &d->u.state)) return;
  Rule(d, param, weights, acc, momentum, Residual(context, node, d));
  tt_batch_end_f32(acc, n, d->batch, &d->u.state);
}

/* -- input gradients: dy, mask, weights, label -> dx; int8: dy, mask, weights, multipliers,
 *    dy_scale, label -> dx, dx_scale. A filter in two parts (TT_CONV2D_SPLIT_INPUT_GRAD,
 *    TT_FULLY_CONNECTED_SPLIT_INPUT_GRAD) has weights_rest after the weights, every later
 *    input one further on: the same kernels read both parts (tt_split_grad.h) */

/* The int8 form's multipliers (input `at`, checked against the weights' scales element by
 * element), unit, dx_scale and, for one pass, the int32 scratch of dx. */
TfLiteStatus InputGradInt8Prepare(Prepare &p, TfLiteNode *node, Layer layer, LayerData *d,
                                  const TfLiteTensor *w, const TfLiteTensor *dx, int at) {
  if (OutputCount(node) != 2 || !p.ScaleOut(1, "dx_scale")) return kTfLiteError;
  TfLiteTensor *mult = p.In(at, kTfLiteInt16, "multipliers");
  if (mult == nullptr) return kTfLiteError;
  if (mult->allocation_type != kTfLiteMmapRo || mult->data.i16 == nullptr)
    return p.Fail("multipliers must be a constant tensor");
  if (Count(mult->dims) != d->n_scales) return p.Fail("multipliers must have %d elements",
                                                     static_cast<int>(d->n_scales));
  const int32_t terms =
      layer == kFullyConnected ? w->dims->data[0]
      : layer == kConv ? w->dims->data[0] * w->dims->data[1] * w->dims->data[2]
                       : w->dims->data[1] * w->dims->data[2] * d->depth_multiplier;
  const int32_t shift = tt_grad_shift(terms);
  if (shift < 0) return p.Fail("%d terms per element overflow int32", static_cast<int>(terms));
  float top = 0.0f;
  for (int32_t o = 0; o < d->n_scales; ++o) top = d->scales[o] > top ? d->scales[o] : top;
  for (int32_t o = 0; o < d->n_scales; ++o)
    if (mult->data.i16[o] != tt_grad_multiplier_s16(d->scales[o], top, shift))
      return p.Fail("multiplier %d does not match the weights' scales", static_cast<int>(o));
  d->g.mult = mult->data.i16;      /* constant data: lives as long as the model */
  d->g.w_unit = tt_grad_unit(top, shift);
  d->g.grad_scratch = -1;
  if (d->g.grad.passes == 1 && !p.Scratch(sizeof(int32_t) * Count(dx->dims), &d->g.grad_scratch))
    return kTfLiteError;
  return kTfLiteOk;
}

/* A split filter's frozen part: constant int8 data, shaped like the weights but for the
 * last axis. Returns its last dimension (the input channels it holds), -1 after a failure. */
int32_t RestPrepare(Prepare &p, const TfLiteTensor *w) {
  const TfLiteTensor *rest = p.In(3, kTfLiteInt8, "weights_rest");
  if (rest == nullptr || !p.Rank(rest, w->dims->size, "weights_rest")) return -1;
  if (rest->allocation_type != kTfLiteMmapRo || rest->data.raw == nullptr)
    return p.Fail("weights_rest must be a constant tensor"), -1;
  const int last = w->dims->size - 1;
  for (int i = 0; i < last; ++i)
    if (rest->dims->data[i] != w->dims->data[i])
      return p.Fail("weights and weights_rest must differ only in their last axis"), -1;
  return rest->dims->data[last];
}

template <Layer kLayer, bool kSplit>
TfLiteStatus InputGradPrepare(TfLiteContext *context, TfLiteNode *node) {
  static const char *const names[2][3] = {
      {"TT_CONV2D_INPUT_GRAD", "TT_DEPTHWISE_CONV2D_INPUT_GRAD", "TT_FULLY_CONNECTED_INPUT_GRAD"},
      {"TT_CONV2D_SPLIT_INPUT_GRAD", nullptr, "TT_FULLY_CONNECTED_SPLIT_INPUT_GRAD"}};
  static_assert(!kSplit || kLayer != kDepthwise, "no split depthwise filter");
  const char *op = names[kSplit][kLayer];
  Prepare p(context, node, op);
  LayerData *d;
  TfLiteTensor *dy;
  if (!LayerPrepareCommon(p, context, node, op, kSplit ? 5 : 4, kLayer, &d, &dy, 2) ||
      !GradOptionsOk(p, d->g.grad, d->int8))
    return kTfLiteError;
  TfLiteTensor *w = p.In(2, kTfLiteInt8, "weights");
  TfLiteTensor *dx = p.Out(0, GradType(d->int8), "dx");
  if (w == nullptr || dx == nullptr) return kTfLiteError;
  if (!p.Rank(w, kLayer == kFullyConnected ? 2 : 4, "weights")) return kTfLiteError;
  int32_t rest = 0;   /* input channels in weights_rest */
  if (kSplit && (rest = RestPrepare(p, w)) < 0) return kTfLiteError;
  const int32_t out_channels = dy->dims->data[dy->dims->size - 1];
  if (kLayer == kFullyConnected) {
    if (w->dims->data[0] != out_channels ||
        Count(dx->dims) != Count(dy->dims) / out_channels * (w->dims->data[1] + rest))
      return p.Fail("dy, weights [units, depth] and dx do not match");
  } else {
    if (!p.Rank(dx, 4, "dx")) return kTfLiteError;
    const int32_t co = kLayer == kConv ? w->dims->data[0] : w->dims->data[3];
    const int32_t ci = kLayer == kConv ? w->dims->data[3] + rest : co / d->depth_multiplier;
    if (co != out_channels || dx->dims->data[3] != ci || dx->dims->data[0] != dy->dims->data[0] ||
        (kLayer == kDepthwise && co % d->depth_multiplier != 0))
      return p.Fail("dy, weights and dx channels do not match");
    const tt_window window = LayerWindow(node, kLayer);  /* options verified */
    if (!WindowFits(p, window, w->dims->data[1], w->dims->data[2], dy->dims->data[1],
                    dy->dims->data[2]))
      return kTfLiteError;
  }
  if (!CacheWeightScales(p, w, kLayer, d)) return kTfLiteError;
  return d->int8 ? InputGradInt8Prepare(p, node, kLayer, d, w, dx, kSplit ? 4 : 3) : kTfLiteOk;
}

/* The filter's parts: lo the weights, hi weights_rest (NULL for a whole filter), k the
 * input channels of lo. */
struct Parts {
  const int8_t *lo, *hi;
  int32_t k;
};

template <bool kSplit>
Parts FilterParts(TfLiteContext *context, TfLiteNode *node) {
  const TfLiteEvalTensor *w = EvalInput(context, node, 2);
  const int32_t k = w->dims->data[w->dims->size - 1];
  if (!kSplit) return Parts{Data<int8_t>(w), nullptr, k};
  return Parts{Data<int8_t>(w), Data<int8_t>(EvalInput(context, node, 3)), k};
}

template <Layer kLayer, bool kSplit>
TfLiteStatus InputGradInvokeInt8(TfLiteContext *context, TfLiteNode *node, LayerData *d) {
  const tt_window window = LayerWindow(node, kLayer);
  const TfLiteEvalTensor *dy = EvalInput(context, node, 0);
  const float *dy_scale = Data<float>(EvalInput(context, node, InputCount(node) - 2));
  const uint8_t *mask = Data<uint8_t>(EvalInput(context, node, 1));
  const TfLiteEvalTensor *w = EvalInput(context, node, 2);
  const Parts f = FilterParts<kSplit>(context, node);
  TfLiteEvalTensor *dx = EvalOutput(context, node, 0);
  float *dx_scale = Data<float>(EvalOutput(context, node, 1));
  const int slot = d->g.grad_scratch;
  int32_t *scratch = slot >= 0 ? static_cast<int32_t *>(Scratch(context, slot)) : nullptr;
  /* one pass: the scratch holds every dx position (rows of its last dimension) */
  const int32_t scratch_positions = scratch != nullptr ? Count(dx->dims) / Last(dx) : 0;
  if (kLayer == kConv) {
    tt_conv2d_input_grad_split_s8(Data<int8_t>(dy), dy_scale, mask, Dim(dy, 0), Dim(dy, 1),
                                  Dim(dy, 2), Dim(dy, 3), f.lo, f.k, f.hi, d->g.mult, d->g.w_unit,
                                  Dim(w, 1), Dim(w, 2), &window, Dim(dx, 1), Dim(dx, 2),
                                  Dim(dx, 3), Data<int8_t>(dx), dx_scale, Rounding(&d->g.grad),
                                  scratch, scratch_positions);
  } else if (kLayer == kDepthwise) {
    GradStage stage;
    tt_depthwise_conv2d_input_grad_s8(Data<int8_t>(dy), dy_scale, mask, Dim(dy, 0), Dim(dy, 1),
                                      Dim(dy, 2), Dim(dy, 3) / d->depth_multiplier,
                                      d->depth_multiplier, f.lo, d->g.mult, d->g.w_unit,
                                      Dim(w, 1), Dim(w, 2), &window, Dim(dx, 1), Dim(dx, 2),
                                      Data<int8_t>(dx), dx_scale, Rounding(&d->g.grad), scratch,
                                      scratch_positions, stage.bytes, kGradStageBytes);
  } else {
    const int32_t units = Last(dy);
    tt_fully_connected_input_grad_split_s8(Data<int8_t>(dy), dy_scale, mask,
                                           Count(dy->dims) / units, units, f.lo, f.k, f.hi,
                                           d->g.mult, d->g.w_unit, Count(dx->dims) /
                                           (Count(dy->dims) / units), Data<int8_t>(dx),
                                           dx_scale, Rounding(&d->g.grad), scratch,
                                           scratch_positions);
  }
  return kTfLiteOk;
}

template <Layer kLayer, bool kSplit>
TfLiteStatus InputGradInvoke(TfLiteContext *context, TfLiteNode *node) {
  const tt_window window = LayerWindow(node, kLayer);
  LayerData *d = static_cast<LayerData *>(node->user_data);
  if (d->int8) ReportRounding(context, node, &d->g.grad, 0);
  if (!Training(context, node)) return kTfLiteOk;
  if (d->int8) return InputGradInvokeInt8<kLayer, kSplit>(context, node, d);
  const TfLiteEvalTensor *dy = EvalInput(context, node, 0);
  const uint8_t *mask = Data<uint8_t>(EvalInput(context, node, 1));
  const TfLiteEvalTensor *w = EvalInput(context, node, 2);
  TfLiteEvalTensor *dx = EvalOutput(context, node, 0);
  if (kSplit) {   /* tt_split_grad.h: the whole-filter kernels' sums in their orders */
    const Parts f = FilterParts<kSplit>(context, node);
    if (kLayer == kConv) {
      tt_conv2d_input_grad_split_f32(Data<float>(dy), mask, Dim(dy, 0), Dim(dy, 1), Dim(dy, 2),
                                     Dim(dy, 3), f.lo, f.k, f.hi, d->scales, Dim(w, 1),
                                     Dim(w, 2), &window, Dim(dx, 1), Dim(dx, 2), Dim(dx, 3),
                                     Data<float>(dx));
    } else {
      const int32_t units = Last(dy), batches = Count(dy->dims) / units;
      tt_fully_connected_input_grad_split_f32(Data<float>(dy), mask, batches, units, f.lo, f.k,
                                              f.hi, d->scales, Count(dx->dims) / batches,
                                              Data<float>(dx));
    }
  } else if (kLayer == kConv) {
    tt_conv2d_input_grad_f32(Data<float>(dy), mask, Dim(dy, 0), Dim(dy, 1), Dim(dy, 2),
                             Dim(dy, 3), Data<int8_t>(w), d->scales, Dim(w, 1), Dim(w, 2),
                             &window, Dim(dx, 1), Dim(dx, 2), Dim(dx, 3), Data<float>(dx));
  } else if (kLayer == kDepthwise) {
    tt_depthwise_conv2d_input_grad_f32(Data<float>(dy), mask, Dim(dy, 0), Dim(dy, 1), Dim(dy, 2),
                                       Dim(dy, 3) / d->depth_multiplier, d->depth_multiplier,
                                       Data<int8_t>(w), d->scales, Dim(w, 1), Dim(w, 2),
                                       &window, Dim(dx, 1), Dim(dx, 2), Data<float>(dx));
  } else {
    tt_fully_connected_input_grad_f32(Data<float>(dy), mask, Count(dy->dims) / Last(dy),
                                      Last(dy), Data<int8_t>(w), d->scales, Dim(w, 1),
                                      Data<float>(dx));
  }
  return kTfLiteOk;
}

/* -- weight gradients (dy, mask, saved, label -> dw) and fused updates (dy, mask, saved,
 *    weights, momentum, label) share the saved input's checks. Returns the trained channels. */
bool SavedOk(Prepare &p, TfLiteTensor *dy, Layer layer, LayerData *d, TfLiteTensor **saved) {
  *saved = p.In(2, kTfLiteInt8, "saved");
  if (*saved == nullptr || !p.MinRank(*saved, 1, "saved")) return false;
  if (layer != kFullyConnected) {
    if (!p.Rank(*saved, 4, "saved")) return false;
    if ((*saved)->dims->data[0] != dy->dims->data[0])
      return p.Fail("saved and dy batches differ"), false;
    if (layer == kDepthwise &&
        (*saved)->dims->data[3] * d->depth_multiplier != dy->dims->data[3])
      return p.Fail("saved channels x depth_multiplier must be dy's channels"), false;
  }
  return p.Quant(*saved, "saved", &d->x_scale, &d->x_zero_point);
}

template <Layer kLayer>
TfLiteStatus WeightGradPrepare(TfLiteContext *context, TfLiteNode *node) {
  static const char *const names[] = {"TT_CONV2D_WEIGHT_GRAD", "TT_DEPTHWISE_CONV2D_WEIGHT_GRAD",
                                      "TT_FULLY_CONNECTED_WEIGHT_GRAD"};
  const char *op = names[kLayer];
  Prepare p(context, node, op);
  LayerData *d;
  TfLiteTensor *dy, *saved;
  if (!LayerPrepareCommon(p, context, node, op, 4, kLayer, &d, &dy) ||
      !SavedOk(p, dy, kLayer, d, &saved) || !PositionsOk(p, d, dy))
    return kTfLiteError;
  TfLiteTensor *dw = p.Out(0, kTfLiteFloat32, "dw");
  if (dw == nullptr) return kTfLiteError;
  const int32_t units = dy->dims->data[dy->dims->size - 1];
  const int32_t k = saved->dims->data[saved->dims->size - 1];
  const bool ok =
      kLayer == kFullyConnected
          ? dw->dims->size == 2 && dw->dims->data[0] == units && dw->dims->data[1] == k &&
                Count(saved->dims) / k == Count(dy->dims) / units
          : dw->dims->size == 4 && dw->dims->data[kLayer == kConv ? 0 : 3] == units &&
                (kLayer == kDepthwise || dw->dims->data[3] == k);
  if (!ok) return p.Fail("dy, saved and dw do not match");
  const tt_window window = LayerWindow(node, kLayer);  /* options verified */
  if (kLayer != kFullyConnected && !WindowFits(p, window, dw->dims->data[1], dw->dims->data[2],
                                               dy->dims->data[1], dy->dims->data[2]))
    return kTfLiteError;
  return kTfLiteOk;
}

/* The weight gradient of dy, its mask and the saved input (inputs 0, 1, 2): with `scratch`
 * NULL, TT_*_WEIGHT_GRAD's (into dw, its output; dy's scale input 3 when int8), else a fused
 * update's at a batch above 1 (the trained region of its weights, input 3, into scratch;
 * dy's scale input 5). `stage`: kGradStageBytes for an int8 depthwise gradient's DSP
 * staging, the caller's, so that a fused update's frame (which holds one for its own
 * kernels) does not stack a second 9 KB one (review24: 18.7 KB on the M7). */
template <Layer kLayer>
void WeightGrad(TfLiteContext *context, TfLiteNode *node, const LayerData *d, float *scratch,
                uint8_t *stage) {
  TfLiteEvalTensor *shape = scratch ? EvalInput(context, node, 3) : EvalOutput(context, node, 0);
  float *dw = scratch ? scratch : Data<float>(shape);
  const int scale = scratch ? 5 : 3;
  const bool conv = kLayer != kFullyConnected;      /* a window: [.., kh, kw, ..] */
  const int32_t kh = conv ? Dim(shape, 1) : 0, kw = conv ? Dim(shape, 2) : 0;
  const tt_window window = LayerWindow(node, kLayer);
  const TfLiteEvalTensor *dy = EvalInput(context, node, 0);
  const uint8_t *mask = Data<uint8_t>(EvalInput(context, node, 1));
  const TfLiteEvalTensor *x = EvalInput(context, node, 2);
  if (d->int8) {
    const float *dy_scale = Data<float>(EvalInput(context, node, scale));
    if (kLayer == kConv) {
      /* no staging: the pointwise gradient's DSP version walks without one since round 21
       * (tt_conv2d_weight_grad_s8_stage_bytes is 0), so none on this frame either */
      tt_conv2d_weight_grad_s8(Data<int8_t>(dy), dy_scale, mask, Dim(dy, 0), Dim(dy, 1),
                               Dim(dy, 2), Dim(dy, 3), Data<int8_t>(x), d->x_scale,
                               d->x_zero_point, Dim(x, 1), Dim(x, 2), Dim(x, 3), kh, kw,
                               &window, dw, nullptr, 0);
    } else if (kLayer == kDepthwise) {
      tt_depthwise_conv2d_weight_grad_s8(Data<int8_t>(dy), dy_scale, mask, Dim(dy, 0),
                                         Dim(dy, 1), Dim(dy, 2), Dim(x, 3), d->depth_multiplier,
                                         Data<int8_t>(x), d->x_scale, d->x_zero_point,
                                         Dim(x, 1), Dim(x, 2), kh, kw, &window, dw,
                                         stage, kGradStageBytes);
    } else {
      tt_fully_connected_weight_grad_s8(Data<int8_t>(dy), dy_scale, mask,
                                        Count(dy->dims) / Last(dy), Last(dy), Data<int8_t>(x),
                                        d->x_scale, d->x_zero_point, Last(x), dw);
    }
    return;
  }
  if (kLayer == kConv) {
    tt_conv2d_weight_grad_f32(Data<float>(dy), mask, Dim(dy, 0), Dim(dy, 1), Dim(dy, 2),
                              Dim(dy, 3), Data<int8_t>(x), d->x_scale, d->x_zero_point,
                              Dim(x, 1), Dim(x, 2), Dim(x, 3), kh, kw, &window, dw);
  } else if (kLayer == kDepthwise) {
    tt_depthwise_conv2d_weight_grad_f32(Data<float>(dy), mask, Dim(dy, 0), Dim(dy, 1),
                                        Dim(dy, 2), Dim(x, 3), d->depth_multiplier,
                                        Data<int8_t>(x), d->x_scale, d->x_zero_point, Dim(x, 1),
                                        Dim(x, 2), kh, kw, &window, dw);
  } else {
    tt_fully_connected_weight_grad_f32(Data<float>(dy), mask, Count(dy->dims) / Last(dy),
                                       Last(dy), Data<int8_t>(x), d->x_scale, d->x_zero_point,
                                       Last(x), dw);
  }
}

template <Layer kLayer>
TfLiteStatus WeightGradInvoke(TfLiteContext *context, TfLiteNode *node) {
  if (!Training(context, node)) return kTfLiteOk;
  const LayerData *d = static_cast<const LayerData *>(node->user_data);
  if (kLayer == kDepthwise && d->int8) {
    GradStage stage;
    WeightGrad<kLayer>(context, node, d, nullptr, stage.bytes);
  } else {
    WeightGrad<kLayer>(context, node, d, nullptr, nullptr);
  }
  return kTfLiteOk;
}

/* -- fused gradient + update: dy, mask, saved, weights, momentum, label; a batch above 1
 *    runs the plain gradient into a scratch of the trained region, then BatchStep */
template <Layer kLayer>
TT_SETUP TfLiteStatus WeightUpdatePrepare(TfLiteContext *context, TfLiteNode *node) {
  static const char *const names[] = {"TT_CONV2D_WEIGHT_UPDATE",
                                      "TT_DEPTHWISE_CONV2D_WEIGHT_UPDATE",
                                      "TT_FULLY_CONNECTED_WEIGHT_UPDATE"};
  const char *op = names[kLayer];
  Prepare p(context, node, op);
  LayerData *d;
  TfLiteTensor *dy, *saved;
  if (!LayerPrepareCommon(p, context, node, op, 6, kLayer, &d, &dy, 1, true,
                          kLayer == kFullyConnected) || !SgdOk(p, d) ||
      !SavedOk(p, dy, kLayer, d, &saved) || !PositionsOk(p, d, dy))
    return kTfLiteError;
  TfLiteTensor *w = p.In(3, kTfLiteInt8, "weights");
  if (w == nullptr || !p.Variable(w, "weights")) return kTfLiteError;
  const int32_t units = dy->dims->data[dy->dims->size - 1];
  const int32_t k = saved->dims->data[saved->dims->size - 1];
  int32_t trained = 0, scratch = 0;
  if (kLayer == kFullyConnected) {
    if (!p.Rank(w, 2, "weights")) return kTfLiteError;
    if (w->dims->data[0] != units || k != d->u.channels || k > w->dims->data[1] ||
        Count(saved->dims) / k != Count(dy->dims) / units)
      return p.Fail("weights [units, depth] and saved [batches, k] do not match dy and the %d "
                    "trained channels", d->u.channels);
    trained = units * k;
    scratch = k;
  } else {
    const tt_window window = LayerWindow(node, kLayer);  /* options verified */
    if (!p.Rank(w, 4, "weights") ||
        !WindowFits(p, window, w->dims->data[1], w->dims->data[2], dy->dims->data[1],
                    dy->dims->data[2]))
      return kTfLiteError;
    const int32_t taps = w->dims->data[1] * w->dims->data[2];
    if (kLayer == kConv) {
      if (w->dims->data[0] != units || k != d->u.channels || k > w->dims->data[3])
        return p.Fail("weights [co, kh, kw, ci] do not match dy and the %d trained channels",
                      d->u.channels);
      trained = units * taps * k;
      scratch = taps * k;
    } else {
      if (w->dims->data[3] != units || d->u.channels != units)
        return p.Fail("depthwise weights [1, kh, kw, c*m] must match dy and train every channel");
      trained = scratch = taps * units;
    }
  }
  if (Batched(d)) scratch = trained;
  if (!BufferOk(p, node, 4, trained) || !AccumulatorOk(p, node, d, trained, 4) ||
      !ResidualOk(p, node, d, trained) ||
      !CacheWeightScales(p, w, kLayer, d) || !p.Scratch(sizeof(float) * scratch, &d->scratch))
    return kTfLiteError;
  return kTfLiteOk;
}

template <Layer kLayer>
TfLiteStatus WeightUpdateInvoke(TfLiteContext *context, TfLiteNode *node) {
  const tt_window window = LayerWindow(node, kLayer);
  LayerData *d = static_cast<LayerData *>(node->user_data);
  ReportUpdate(context, node, d, 3, 4);
  if (!Training(context, node, Appended(d))) return kTfLiteOk;
  const TfLiteEvalTensor *dy = EvalInput(context, node, 0);
  const uint8_t *mask = Data<uint8_t>(EvalInput(context, node, 1));
  const TfLiteEvalTensor *x = EvalInput(context, node, 2);
  TfLiteEvalTensor *w = EvalInput(context, node, 3);
  float *momentum = Data<float>(EvalInput(context, node, 4));
  float *scratch = static_cast<float *>(Scratch(context, d->scratch));
  GradStage stage;               /* the int8 kernels' DSP staging, the batch's gradient's too */
  if (Batched(d)) {
    WeightGrad<kLayer>(context, node, d, scratch, stage.bytes);
    BatchStep(context, node, d, w, true, scratch, momentum);
    return kTfLiteOk;
  }
  if (d->int8) {
    const float *dy_scale = Data<float>(EvalInput(context, node, 5));
    if (kLayer == kConv) {
      tt_conv2d_weight_update_s8_s8(Data<int8_t>(dy), dy_scale, mask, Dim(dy, 0), Dim(dy, 1),
                                    Dim(dy, 2), Dim(dy, 3), Data<int8_t>(x), d->x_scale,
                                    d->x_zero_point, Dim(x, 1), Dim(x, 2), Dim(x, 3),
                                    Data<int8_t>(w), Dim(w, 1), Dim(w, 2), Dim(w, 3), d->scales,
                                    d->n_scales, &window, momentum, &d->u.sgd, &d->u.state,
                                    scratch, stage.bytes, kGradStageBytes);
    } else if (kLayer == kDepthwise) {
      tt_depthwise_conv2d_weight_update_s8_s8(
          Data<int8_t>(dy), dy_scale, mask, Dim(dy, 0), Dim(dy, 1), Dim(dy, 2), Dim(x, 3),
          d->depth_multiplier, Data<int8_t>(x), d->x_scale, d->x_zero_point, Dim(x, 1),
          Dim(x, 2), Data<int8_t>(w), Dim(w, 1), Dim(w, 2), d->scales, d->n_scales, &window,
          momentum, &d->u.sgd, &d->u.state, scratch, stage.bytes, kGradStageBytes);
    } else {
      tt_fully_connected_weight_update_residual_s8_s8(
          Data<int8_t>(dy), dy_scale, mask, Count(dy->dims) / Last(dy), Last(dy),
          Data<int8_t>(x), d->x_scale, d->x_zero_point, Last(x), Data<int8_t>(w), Dim(w, 1),
          d->scales, d->n_scales, momentum, Residual(context, node, d), &d->u.sgd, &d->u.state,
          scratch);
    }
    return kTfLiteOk;
  }
  if (kLayer == kConv) {
    tt_conv2d_weight_update_s8(Data<float>(dy), mask, Dim(dy, 0), Dim(dy, 1), Dim(dy, 2),
                               Dim(dy, 3), Data<int8_t>(x), d->x_scale, d->x_zero_point,
                               Dim(x, 1), Dim(x, 2), Dim(x, 3), Data<int8_t>(w), Dim(w, 1),
                               Dim(w, 2), Dim(w, 3), d->scales, d->n_scales, &window,
                               momentum, &d->u.sgd, &d->u.state, scratch);
  } else if (kLayer == kDepthwise) {
    tt_depthwise_conv2d_weight_update_s8(
        Data<float>(dy), mask, Dim(dy, 0), Dim(dy, 1), Dim(dy, 2), Dim(x, 3), d->depth_multiplier,
        Data<int8_t>(x), d->x_scale, d->x_zero_point, Dim(x, 1), Dim(x, 2), Data<int8_t>(w),
        Dim(w, 1), Dim(w, 2), d->scales, d->n_scales, &window, momentum, &d->u.sgd, &d->u.state,
        scratch);
  } else {
    tt_fully_connected_weight_update_residual_s8(
        Data<float>(dy), mask, Count(dy->dims) / Last(dy), Last(dy), Data<int8_t>(x),
        d->x_scale, d->x_zero_point, Last(x), Data<int8_t>(w), Dim(w, 1), d->scales,
        d->n_scales, momentum, Residual(context, node, d), &d->u.sgd, &d->u.state, scratch);
  }
  return kTfLiteOk;
}

/* -- TT_BIAS_UPDATE: dy, mask, bias, momentum, label; a batch above 1 as the fused ones */
TT_SETUP TfLiteStatus BiasUpdatePrepare(TfLiteContext *context, TfLiteNode *node) {
  const char *op = "TT_BIAS_UPDATE";
  Prepare p(context, node, op);
  LayerData *d;
  TfLiteTensor *dy;
  if (!LayerPrepareCommon(p, context, node, op, 5, kBias, &d, &dy, 1, true) || !SgdOk(p, d))
    return kTfLiteError;
  TfLiteTensor *b = p.In(2, kTfLiteInt32, "bias");
  if (b == nullptr || !p.Variable(b, "bias")) return kTfLiteError;
  const int32_t c = dy->dims->data[dy->dims->size - 1];
  if (Count(b->dims) != c) return p.Fail("bias must have dy's %d channels", c);
  d->n_scales = c;
  d->scales = p.Scales(b, c, "bias");
  if (d->scales == nullptr || !BufferOk(p, node, 3, c) || !AccumulatorOk(p, node, d, c, 3) ||
      !p.Scratch(sizeof(float) * c, &d->scratch))
    return kTfLiteError;
  return kTfLiteOk;
}

TfLiteStatus BiasUpdateInvoke(TfLiteContext *context, TfLiteNode *node) {
  LayerData *d = static_cast<LayerData *>(node->user_data);
  ReportUpdate(context, node, d, 2, 3);
  if (!Training(context, node, Appended(d))) return kTfLiteOk;
  const TfLiteEvalTensor *dy = EvalInput(context, node, 0);
  if (Batched(d)) {
    float *g = static_cast<float *>(Scratch(context, d->scratch));
    BiasGrad(context, node, 4, g);
    BatchStep(context, node, d, EvalInput(context, node, 2), false, g,
              Data<float>(EvalInput(context, node, 3)));
    return kTfLiteOk;
  }
  if (d->int8) {
    tt_bias_update_s32_s8(Data<int8_t>(dy), Data<float>(EvalInput(context, node, 4)),
                          Data<uint8_t>(EvalInput(context, node, 1)), Count(dy->dims) / Last(dy),
                          Last(dy), Data<int32_t>(EvalInput(context, node, 2)), d->scales,
                          Data<float>(EvalInput(context, node, 3)), &d->u.sgd, &d->u.state,
                          static_cast<float *>(Scratch(context, d->scratch)));
    return kTfLiteOk;
  }
  tt_bias_update_s32(Data<float>(dy), Data<uint8_t>(EvalInput(context, node, 1)),
                     Count(dy->dims) / Last(dy), Last(dy),
                     Data<int32_t>(EvalInput(context, node, 2)), d->scales,
                     Data<float>(EvalInput(context, node, 3)), &d->u.sgd, &d->u.state,
                     static_cast<float *>(Scratch(context, d->scratch)));
  return kTfLiteOk;
}

/* -- separate updates: TT_UPDATE_WEIGHT / TT_UPDATE_BIAS (param, grad, momentum, label;
 *    accumulator when batch > 1; TT_UPDATE_WEIGHT's residual after it) */
template <bool kWeights>
TT_SETUP TfLiteStatus UpdatePrepare(TfLiteContext *context, TfLiteNode *node) {
  const char *op = kWeights ? "TT_UPDATE_WEIGHT" : "TT_UPDATE_BIAS";
  Prepare p(context, node, op);
  LayerData *d = static_cast<LayerData *>(node->user_data);
  if (d != nullptr) d->residual = kWeights && InputCount(node) == 6;
  if (d == nullptr || !p.Options(d->bad_key) || !BatchOk(p, d) ||
      !p.Inputs(4 + Appended(d), Appended(d)) || !SgdOk(p, d))
    return kTfLiteError;
  TfLiteTensor *param =
      p.In(0, kWeights ? kTfLiteInt8 : kTfLiteInt32, kWeights ? "weights" : "bias");
  TfLiteTensor *grad = p.In(1, kTfLiteFloat32, "grad");
  if (param == nullptr || grad == nullptr || !p.Variable(param, "the parameter") ||
      !p.MinRank(param, 1, "the parameter"))
    return kTfLiteError;
  const TfLiteIntArray *dims = param->dims;
  const int32_t depth = dims->data[dims->size - 1];
  if (kWeights) {
    if (dims->size > kMaxRank || d->u.channels < 1 || d->u.channels > depth)
      return p.Fail("%d trained channels of a weight tensor with %d", d->u.channels, depth);
    if (Count(grad->dims) != Count(dims) / depth * d->u.channels)
      return p.Fail("grad must cover the %d trained channels", d->u.channels);
    d->n_scales = d->u.axis == 0 ? dims->data[0] : depth;
  } else {
    if (Count(grad->dims) != Count(dims)) return p.Fail("grad must be shaped like the bias");
    d->n_scales = Count(dims);
  }
  d->scales = p.Scales(param, d->n_scales, kWeights ? "weights" : "bias");
  if (d->scales == nullptr || !BufferOk(p, node, 2, Count(grad->dims)) ||
      !AccumulatorOk(p, node, d, Count(grad->dims), 2) ||
      !ResidualOk(p, node, d, Count(grad->dims)))
    return kTfLiteError;
  return kTfLiteOk;
}

template <bool kWeights>
TfLiteStatus UpdateInvoke(TfLiteContext *context, TfLiteNode *node) {
  LayerData *d = static_cast<LayerData *>(node->user_data);
  ReportUpdate(context, node, d, 0, 2);
  if (!Training(context, node, Appended(d))) return kTfLiteOk;
  TfLiteEvalTensor *param = EvalInput(context, node, 0);
  const float *grad = Data<float>(EvalInput(context, node, 1));
  float *momentum = Data<float>(EvalInput(context, node, 2));
  if (Batched(d)) {
    BatchStep(context, node, d, param, kWeights, grad, momentum);
  } else {
    Rule(d, param, kWeights, grad, momentum, Residual(context, node, d));
  }
  return kTfLiteOk;
}

/* ---- the table --------------------------------------------------------------------------- */

void *NoData(TfLiteContext *, const char *, size_t) { return nullptr; }

/* constexpr, so that the table below is constant data (flash), built by no start-up code */
constexpr TFLMRegistration Op(void *(*init)(TfLiteContext *, const char *, size_t),
                              TfLiteStatus (*prepare)(TfLiteContext *, TfLiteNode *),
                              TfLiteStatus (*invoke)(TfLiteContext *, TfLiteNode *),
                              void (*reset)(TfLiteContext *, void *) = nullptr) {
  return TFLMRegistration{init, nullptr, prepare, invoke, reset, 0, nullptr};
}

struct Entry {
  const char *name;
  TFLMRegistration registration;
};

/* the gradient, loss, update and plumbing ops; tt_tflm_forward_ops.cc has the rest */
constexpr int kNumGlueOps = kNumTrainingOps - kNumForwardOps;

constexpr Entry kOps[kNumGlueOps] = {
    {"TT_INIT", Op(InitInit, InitPrepare, InitInvoke, InitReset)},
    {"TT_SAVE_MASK", Op(IntsInit<kMaskKeys, 2>, SaveMaskPrepare, SaveMaskInvoke)},
    {"TT_SAVE_SLICE", Op(IntsInit<kSliceKeys, 1>, SlicePrepare, SliceInvoke)},
    {"TT_LOSS_SOFTMAX_CE", Op(QuantInit, LossPrepare, LossInvoke, GradModeReset)},
    {"TT_CONV2D_INPUT_GRAD",
     Op(LayerInit<kWindow | kRounding>, InputGradPrepare<kConv, false>,
        InputGradInvoke<kConv, false>, InputGradReset)},
    {"TT_CONV2D_SPLIT_INPUT_GRAD",
     Op(LayerInit<kWindow | kRounding>, InputGradPrepare<kConv, true>,
        InputGradInvoke<kConv, true>, InputGradReset)},
    {"TT_CONV2D_WEIGHT_GRAD",
     Op(LayerInit<kWindow>, WeightGradPrepare<kConv>, WeightGradInvoke<kConv>)},
    {"TT_DEPTHWISE_CONV2D_INPUT_GRAD",
     Op(LayerInit<kWindow | kMultiplier | kRounding>, InputGradPrepare<kDepthwise, false>,
        InputGradInvoke<kDepthwise, false>, InputGradReset)},
    {"TT_DEPTHWISE_CONV2D_WEIGHT_GRAD",
     Op(LayerInit<kWindow | kMultiplier>, WeightGradPrepare<kDepthwise>,
        WeightGradInvoke<kDepthwise>)},
    {"TT_FULLY_CONNECTED_INPUT_GRAD",
     Op(LayerInit<kRounding>, InputGradPrepare<kFullyConnected, false>,
        InputGradInvoke<kFullyConnected, false>, InputGradReset)},
    {"TT_FULLY_CONNECTED_SPLIT_INPUT_GRAD",
     Op(LayerInit<kRounding>, InputGradPrepare<kFullyConnected, true>,
        InputGradInvoke<kFullyConnected, true>, InputGradReset)},
    {"TT_FULLY_CONNECTED_WEIGHT_GRAD",
     Op(LayerInit<0>, WeightGradPrepare<kFullyConnected>, WeightGradInvoke<kFullyConnected>)},
    {"TT_BIAS_GRAD", Op(NoData, BiasGradPrepare, BiasGradInvoke)},
    {"TT_MASK_GRAD", Op(NoData, MaskGradPrepare, MaskGradInvoke)},
    {"TT_SUM_GRAD", Op(SumInit, SumGradPrepare, SumGradInvoke, GradModeReset)},
    {"TT_RESHAPE_GRAD", Op(NoData, ReshapeGradPrepare, ReshapeGradInvoke)},
    {"TT_TRANSPOSE_GRAD", Op(VectorInit<0>, TransposeGradPrepare, TransposeGradInvoke)},
    {"TT_PAD_GRAD", Op(VectorInit<1>, PadGradPrepare, PadGradInvoke)},
    {"TT_AVERAGE_POOL_GRAD", Op(PoolInit, AvgPoolGradPrepare, AvgPoolGradInvoke, GradModeReset)},
    {"TT_MAX_POOL_GRAD", Op(PoolInit, MaxPoolGradPrepare, MaxPoolGradInvoke, GradModeReset)},
    {"TT_MEAN_GRAD", Op(VectorInit<2>, MeanGradPrepare, MeanGradInvoke)},
    {"TT_SOFTMAX_GRAD", Op(QuantInit, SoftmaxGradPrepare, SoftmaxGradInvoke, GradModeReset)},
    {"TT_UPDATE_WEIGHT",
     Op(LayerInit<kWeightSgd>, UpdatePrepare<true>, UpdateInvoke<true>, UpdateReset)},
    {"TT_UPDATE_BIAS",
     Op(LayerInit<kSgd>, UpdatePrepare<false>, UpdateInvoke<false>, UpdateReset)},
    {"TT_CONV2D_WEIGHT_UPDATE",
     Op(LayerInit<kWindow | kWeightSgd>, WeightUpdatePrepare<kConv>, WeightUpdateInvoke<kConv>,
        UpdateReset)},
    {"TT_DEPTHWISE_CONV2D_WEIGHT_UPDATE",
     Op(LayerInit<kWindow | kMultiplier | kWeightSgd>, WeightUpdatePrepare<kDepthwise>,
        WeightUpdateInvoke<kDepthwise>, UpdateReset)},
    {"TT_FULLY_CONNECTED_WEIGHT_UPDATE",
     Op(LayerInit<kWeightSgd>, WeightUpdatePrepare<kFullyConnected>,
        WeightUpdateInvoke<kFullyConnected>, UpdateReset)},
    {"TT_BIAS_UPDATE", Op(LayerInit<kSgd>, BiasUpdatePrepare, BiasUpdateInvoke, UpdateReset)},
};

}  // namespace
}  // namespace tflm

void ReportTrainedTensorsTo(TrainedTensors *sink) { tflm::g_trained_sink = sink; }

void ReportUpdateStatesTo(UpdateOpStates *sink) { tflm::g_update_sink = sink; }

const char *TrainingOpName(int i) {
  if (i >= tflm::kNumGlueOps) return tflm::ForwardOpName(i - tflm::kNumGlueOps);
  return i >= 0 ? tflm::kOps[i].name : nullptr;
}

const tflm::Registration *TrainingOpRegistration(int i) {
  if (i >= tflm::kNumGlueOps) return tflm::ForwardOpRegistration(i - tflm::kNumGlueOps);
  return i >= 0 ? &tflm::kOps[i].registration : nullptr;
}

}  // namespace tflite_train
