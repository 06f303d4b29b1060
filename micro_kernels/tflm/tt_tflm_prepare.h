/* What both halves of the TFLM glue (tt_tflm_ops.cc: the training ops,
 * tt_tflm_forward_ops.cc: the TT_* forward ops) share: the limits every kernel's index
 * arithmetic assumes, tensors at Invoke, persistent op data, and Prepare's checks, each
 * with a one-line message (temporary tensors released when Prepare returns). A check a
 * broken training model trips returns false (or NULL) after its message, so Prepare turns
 * it into an error status, never a crash. Internal to the glue. */
#ifndef TT_TFLM_PREPARE_H
#define TT_TFLM_PREPARE_H

#include <float.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#include "tt_tflm_compat.h"

namespace tflite_train {
namespace tflm {
namespace {

constexpr int kMaxRank = 6;      /* what the data-movement kernels accept */
/* temporary tensors one Prepare holds at most (a split filter's int8 input gradient: 9) */
constexpr int kMaxTemps = 12;
/* Elements of one tensor, and extents of a window's walk: every index and byte count the
 * kernels compute (float32: 4 bytes an element) then fits int32_t. */
constexpr int64_t kMaxElements = int64_t{1} << 28;

/* Elements of a tensor (Prepare checked that it fits). */
int32_t Count(const TfLiteIntArray *dims) {
  int32_t n = 1;
  for (int i = 0; i < dims->size; ++i) n *= dims->data[i];
  return n;
}

template <typename T>
T *Data(const TfLiteEvalTensor *t) {
  return t == nullptr ? nullptr : reinterpret_cast<T *>(t->data.data);
}

int32_t Dim(const TfLiteEvalTensor *t, int i) { return t->dims->data[i]; }

/* From here to the end of class Prepare: code of Init and Prepare only, which run once per op
 * when TFLM allocates the model, never in a step: for size (TT_SETUP, tt_tflm_compat.h). */
#if defined(__GNUC__) && !defined(__clang__) && !defined(TT_TFLM_SETUP_AT_BUILD_LEVEL)
#pragma GCC push_options
#pragma GCC optimize("Os")
#endif

/* Op data in TFLM's persistent memory, zeroed; NULL when the arena is full. */
template <typename T>
T *New(TfLiteContext *context) {
  void *p = AllocatePersistent(context, sizeof(T));
  if (p != nullptr) memset(p, 0, sizeof(T));
  return static_cast<T *>(p);
}

/* ---- Prepare: checks with one-line messages, temporary tensors released on return -------- */

class Prepare {
 public:
  Prepare(TfLiteContext *context, TfLiteNode *node, const char *op)
      : context_(context), node_(node), op_(op) {}
  ~Prepare() {
    for (int i = 0; i < temps_; ++i) Release(context_, temp_[i]);
  }

  TfLiteStatus Fail(const char *format, ...) {
    va_list args;
    va_start(args, format);
    VLog(op_, format, args);
    va_end(args);
    return kTfLiteError;
  }

  /* The op's inputs: `n` including the label, which must be int32, and the `appended`
   * ones after it (an update op's accumulator). */
  bool Inputs(int n, int appended = 0) {
    if (InputCount(node_) != n) {
      Fail("%d inputs, the schema says %d", InputCount(node_), n);
      return false;
    }
    TfLiteTensor *label = In(n - 1 - appended);
    if (label == nullptr || label->type != kTfLiteInt32 || Sane(label, "label") == nullptr ||
        Count(label->dims) < 1) {
      Fail("the last input (the label) must be an int32 tensor");
      return false;
    }
    return true;
  }

  TfLiteTensor *In(int index) { return Keep(TempInput(context_, node_, index)); }
  TfLiteTensor *Out(int index) { return Keep(TempOutput(context_, node_, index)); }

  /* Input `index` present and of `type` (or absent, when optional). */
  TfLiteTensor *In(int index, TfLiteType type, const char *what, bool optional = false,
                   const char *why = "") {
    if (!HasInput(node_, index)) {
      if (!optional) Fail("input %d (%s) is missing", index, what);
      return nullptr;
    }
    TfLiteTensor *t = In(index);
    if (t == nullptr || t->type != type) {
      /* `why`: what a wrong type usually means, for the one input whose type changed */
      Fail("input %d (%s) has type %d, wants %d%s", index, what, t ? t->type : -1, type, why);
      return nullptr;
    }
    return Sane(t, what);
  }
  TfLiteTensor *Out(int index, TfLiteType type, const char *what) {
    if (OutputCount(node_) <= index) {
      Fail("output %d (%s) is missing", index, what);
      return nullptr;
    }
    TfLiteTensor *t = Out(index);
    if (t == nullptr || t->type != type) {
      Fail("output %d (%s) has type %d, wants %d", index, what, t ? t->type : -1, type);
      return nullptr;
    }
    return Sane(t, what);
  }

  /* Rank <= kMaxRank, every dimension positive, at most kMaxElements elements: what every
   * kernel's index arithmetic assumes. */
  TfLiteTensor *Sane(TfLiteTensor *t, const char *what) {
    int64_t n = 1;
    bool ok = t->dims != nullptr && t->dims->size >= 0 && t->dims->size <= kMaxRank;
    for (int i = 0; ok && i < t->dims->size; ++i) {
      ok = t->dims->data[i] >= 1 && t->dims->data[i] <= kMaxElements;
      n *= ok ? t->dims->data[i] : 1;
      ok = ok && n <= kMaxElements;
    }
    if (ok) return t;
    Fail("%s: rank <= %d, positive dimensions and at most 2^28 elements expected", what,
         kMaxRank);
    return nullptr;
  }

  /* At least rank `least`. */
  bool MinRank(const TfLiteTensor *t, int least, const char *what) {
    if (t->dims->size >= least) return true;
    Fail("%s has rank %d, wants at least %d", what, t->dims->size, least);
    return false;
  }

  /* The float32 [1] scale tensor of an int8 gradient, at input or output `index`. */
  bool ScaleIn(int index, const char *what) { return Scale(In(index, kTfLiteFloat32, what), what); }
  bool ScaleOut(int index, const char *what) {
    return Scale(Out(index, kTfLiteFloat32, what), what);
  }

  bool Rank(const TfLiteTensor *t, int rank, const char *what) {
    if (t->dims->size == rank) return true;
    Fail("%s has rank %d, wants %d", what, t->dims->size, rank);
    return false;
  }

  /* A parameter the op writes must be a variable (SRAM), never constant data (flash). */
  bool Variable(const TfLiteTensor *t, const char *what) {
    if (t->is_variable) return true;
    Fail("%s is not a variable tensor: refusing to write into constant data", what);
    return false;
  }

  /* Per-tensor scale and zero point. */
  bool Quant(const TfLiteTensor *t, const char *what, float *scale, int32_t *zero_point) {
    const TfLiteAffineQuantization *q = Affine(t);
    if (q == nullptr || q->scale->size != 1) {
      Fail("%s needs per-tensor quantization", what);
      return false;
    }
    *scale = q->scale->data[0];
    *zero_point = q->zero_point != nullptr && q->zero_point->size > 0 ? q->zero_point->data[0]
                                                                      : 0;
    return true;
  }

  /* The tensor's scales as `count` floats, which the kernels index per output channel.
   * Per-channel scales are TFLM's own array, which lives as long as the model: TFLM points
   * it into the flatbuffer (little-endian targets; TFLM relies on that itself), so keeping
   * the pointer costs no SRAM. A per-tensor scale is repeated into persistent memory. */
  const float *Scales(const TfLiteTensor *t, int32_t count, const char *what) {
    const TfLiteAffineQuantization *q = Affine(t);
    if (q == nullptr || (q->scale->size != 1 && q->scale->size != count)) {
      Fail("%s needs 1 or %d scales", what, static_cast<int>(count));
      return nullptr;
    }
    /* The updates divide by them: a zero scale would saturate the parameter. */
    for (int i = 0; i < q->scale->size; ++i)
      if (!(q->scale->data[i] > 0.0f && q->scale->data[i] <= FLT_MAX)) {
        Fail("%s scales must be finite and positive", what);
        return nullptr;
      }
    if (q->scale->size == count) return q->scale->data;
    float *out = static_cast<float *>(AllocatePersistent(context_, sizeof(float) * count));
    if (out == nullptr) {
      Fail("no persistent memory for %d scales", static_cast<int>(count));
      return nullptr;
    }
    for (int32_t i = 0; i < count; ++i) out[i] = q->scale->data[0];
    return out;
  }

  bool Scratch(size_t bytes, int *index) {
    if (RequestScratch(context_, bytes, index)) return true;
    Fail("could not get %u bytes of scratch", static_cast<unsigned>(bytes));
    return false;
  }

  /* The schema's arity. */
  bool Arity(int inputs, int outputs) {
    if (InputCount(node_) == inputs && OutputCount(node_) == outputs) return true;
    Fail("%d inputs and %d outputs, the schema says %d and %d", InputCount(node_),
         OutputCount(node_), inputs, outputs);
    return false;
  }

  /* Input or output `index` of `type` and `rank` (-1: any). */
  TfLiteTensor *In(int index, TfLiteType type, int rank, const char *what,
                   bool optional = false, const char *why = "") {
    TfLiteTensor *t = In(index, type, what, optional, why);
    return t != nullptr && (rank < 0 || Rank(t, rank, what)) ? t : nullptr;
  }
  TfLiteTensor *Out(int index, TfLiteType type, int rank, const char *what) {
    TfLiteTensor *t = Out(index, type, what);
    return t != nullptr && (rank < 0 || Rank(t, rank, what)) ? t : nullptr;
  }

  /* A per-tensor quantization's zero point (int8 activations). */
  bool ZeroPoint(const TfLiteTensor *t, const char *what, int32_t *zero_point) {
    float scale;
    return Quant(t, what, &scale, zero_point);
  }

  /* A parameter in SRAM (variable) or in the model (constant): never an activation. */
  bool Parameter(const TfLiteTensor *t, const char *what, bool may_be_variable) {
    if (t->allocation_type == kTfLiteMmapRo && !t->is_variable) return true;
    if (may_be_variable && t->is_variable) return true;
    Fail(may_be_variable ? "%s must be constant or a variable" : "%s must be constant", what);
    return false;
  }

  /* The forward ops' requantization inputs: constant [channels], multipliers int32 >= 0 and
   * shifts int8 (3 B of flash a channel less than int32) in [-31, 31], the range the
   * kernels' shifts are defined on. Training models of format version 1 stored the shifts
   * as int32: refused here by their type, never read as int8. */
  bool Requantization(int index, int32_t channels) {
    TfLiteTensor *m = In(index, kTfLiteInt32, 1, "multipliers");
    TfLiteTensor *s = In(index + 1, kTfLiteInt8, 1, "shifts", false,
                         " (format version 1 stored int32: run tflite-train augment again)");
    if (m == nullptr || s == nullptr || !Parameter(m, "multipliers", false) ||
        !Parameter(s, "shifts", false))
      return false;
    if (m->dims->data[0] != channels || s->dims->data[0] != channels) {
      Fail("multipliers and shifts need %d entries", static_cast<int>(channels));
      return false;
    }
    for (int32_t c = 0; c < channels; ++c) {
      if (m->data.i32[c] < 0 || s->data.int8[c] < -31 || s->data.int8[c] > 31) {
        Fail("channel %d: multiplier %d or shift %d out of range", static_cast<int>(c),
             static_cast<int>(m->data.i32[c]), static_cast<int>(s->data.int8[c]));
        return false;
      }
    }
    return true;
  }

  /* A forward op's optional int32 bias of `channels`, constant or a variable. */
  bool Bias(int index, int32_t channels) {
    if (!HasInput(node_, index)) return true;
    TfLiteTensor *b = In(index, kTfLiteInt32, "bias");
    if (b == nullptr || !Parameter(b, "bias", true)) return false;
    if (Count(b->dims) == channels) return true;
    Fail("bias must have %d entries", static_cast<int>(channels));
    return false;
  }

  /* Reports an option Init found missing or mistyped. */
  bool Options(const char *bad_key) {
    if (bad_key == nullptr) return true;
    if (bad_key[0] == '(')
      Fail("custom options %s", bad_key);
    else
      Fail("option '%s' is missing, of the wrong type or out of range", bad_key);
    return false;
  }

 private:
  bool Scale(const TfLiteTensor *t, const char *what) {
    if (t == nullptr) return false;
    if (Count(t->dims) == 1) return true;
    Fail("%s must hold one float", what);
    return false;
  }
  static const TfLiteAffineQuantization *Affine(const TfLiteTensor *t) {
    if (t->quantization.type != kTfLiteAffineQuantization) return nullptr;
    const TfLiteAffineQuantization *q =
        static_cast<const TfLiteAffineQuantization *>(t->quantization.params);
    return q != nullptr && q->scale != nullptr && q->scale->size > 0 ? q : nullptr;
  }
  TfLiteTensor *Keep(TfLiteTensor *t) {
    if (t != nullptr && temps_ < kMaxTemps) temp_[temps_++] = t;
    return t;
  }

  TfLiteContext *context_;
  TfLiteNode *node_;
  const char *op_;
  TfLiteTensor *temp_[kMaxTemps];
  int temps_ = 0;
};

#if defined(__GNUC__) && !defined(__clang__) && !defined(TT_TFLM_SETUP_AT_BUILD_LEVEL)
#pragma GCC pop_options
#endif

}  // namespace
}  // namespace tflm
}  // namespace tflite_train

#endif  /* TT_TFLM_PREPARE_H */
