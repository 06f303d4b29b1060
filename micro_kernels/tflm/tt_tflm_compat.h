/* The one place the TFLM glue meets TFLM's kernel API.
 *
 * In a user's build (the default) this includes TFLM's real headers. With
 * TT_TFLM_WHEEL_ABI defined it instead declares the few types the glue uses with the layout
 * of the pinned PyPI wheel tflite-micro==0.dev20261023182759 (../shared/TFLM_ABI.md), so
 * that our tests can load the glue into the wheel's interpreter, which ships no headers.
 * Either way the glue sees the same names (TfLiteTensor, TfLiteEvalTensor, TfLiteNode,
 * TfLiteContext, TFLMRegistration, MicroContext, GetMicroContext) with the same members,
 * plus the helpers at the end of this file; nothing else of TFLM is used.
 */
#ifndef TT_TFLM_COMPAT_H
#define TT_TFLM_COMPAT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* For the glue's Init and Prepare functions, which run once per op when TFLM allocates the
 * model and never in a training step: optimized for size (the board's flash is the tight
 * budget, README's TFLM table), whatever the build's level. GCC's attribute only: other
 * compilers keep the build's level. Same results either way: Prepare's float arithmetic is
 * plain IEEE single operations (-ffp-contract=off, no fast-math), which -Os does not
 * reorder. -DTT_TFLM_SETUP_AT_BUILD_LEVEL keeps the build's level (tests compare the two). */
#if defined(__GNUC__) && !defined(__clang__) && !defined(TT_TFLM_SETUP_AT_BUILD_LEVEL)
#define TT_SETUP __attribute__((optimize("Os")))
#else
#define TT_SETUP
#endif

#if defined(TT_TFLM_WHEEL_ABI)

#include <stdio.h>

namespace tflite_train {
namespace tflm {

/* Values of TFLM's C enums (tensorflow/lite/core/c/c_api_types.h), stable across versions. */
enum TfLiteStatus { kTfLiteOk = 0, kTfLiteError = 1 };
enum TfLiteType {
  kTfLiteNoType = 0, kTfLiteFloat32 = 1, kTfLiteInt32 = 2, kTfLiteUInt8 = 3,
  kTfLiteInt64 = 4, kTfLiteBool = 6, kTfLiteInt16 = 7, kTfLiteInt8 = 9
};
enum TfLiteQuantizationType { kTfLiteNoQuantization = 0, kTfLiteAffineQuantization = 1 };
enum TfLiteAllocationType { kTfLiteMemNone = 0, kTfLiteMmapRo = 1, kTfLiteArenaRw = 2 };

/* Trailing one-element arrays stand for C's flexible array members. */
struct TfLiteIntArray { int size; int data[1]; };
struct TfLiteFloatArray { int size; float data[1]; };
struct TfLiteAffineQuantization {
  TfLiteFloatArray *scale;
  TfLiteIntArray *zero_point;
  int32_t quantized_dimension;
};
struct TfLiteQuantization { TfLiteQuantizationType type; void *params; };
struct TfLiteQuantizationParams { float scale; int32_t zero_point; };
union TfLitePtrUnion {
  int32_t *i32; int64_t *i64; float *f; char *raw; const char *raw_const; uint8_t *uint8;
  bool *b; int16_t *i16; int8_t *int8; void *data;
};

/* TfLiteTensor as built with TF_LITE_STATIC_MEMORY: 64 bytes on LP64. */
struct TfLiteTensor {
  TfLiteQuantization quantization;
  TfLiteQuantizationParams params;
  TfLitePtrUnion data;
  const TfLiteIntArray *dims;
  size_t bytes;
  TfLiteType type;
  TfLiteAllocationType allocation_type;
  bool is_variable;
};
struct TfLiteEvalTensor { TfLitePtrUnion data; TfLiteIntArray *dims; TfLiteType type; };
struct TfLiteNode {
  TfLiteIntArray *inputs, *outputs, *intermediates;
  void *user_data;
  void *builtin_data;
  const void *custom_initial_data;
  int custom_initial_data_size;
};
/* In this build TfLiteContext holds only the MicroContext pointer. */
struct TfLiteContext { void *impl_; };

/* MicroContext's virtual methods in declaration order: the Itanium ABI gives the destructor
 * slots 0 and 1, then these slots 2 to 9. Only slots 2-6 and 9 are called. */
class MicroContext {
 public:
  virtual ~MicroContext() {}
  virtual void *AllocatePersistentBuffer(size_t bytes) = 0;
  virtual TfLiteStatus RequestScratchBufferInArena(size_t bytes, int *buffer_idx) = 0;
  virtual void *GetScratchBuffer(int buffer_idx) = 0;
  virtual TfLiteTensor *AllocateTempTfLiteTensor(int tensor_idx) = 0;
  virtual void DeallocateTempTfLiteTensor(TfLiteTensor *tensor) = 0;
  virtual uint8_t *AllocateTempBuffer(size_t size, size_t alignment) = 0;
  virtual void DeallocateTempBuffer(uint8_t *buffer) = 0;
  virtual TfLiteEvalTensor *GetEvalTensor(int tensor_idx) = 0;
};

inline MicroContext *GetMicroContext(const TfLiteContext *context) {
  return static_cast<MicroContext *>(context->impl_);
}

struct TFLMRegistration {
  void *(*init)(TfLiteContext *context, const char *buffer, size_t length);
  void (*free)(TfLiteContext *context, void *buffer);
  TfLiteStatus (*prepare)(TfLiteContext *context, TfLiteNode *node);
  TfLiteStatus (*invoke)(TfLiteContext *context, TfLiteNode *node);
  void (*reset)(TfLiteContext *context, void *buffer);
  int32_t builtin_code;
  const char *custom_name;
};

/* One line "op: message". The wheel's MicroPrintf lives in a library Python loads
 * privately, so the glue cannot link to it; on the host, stderr is where it writes anyway. */
inline void VLog(const char *op, const char *format, va_list args) {
  fprintf(stderr, "%s: ", op);
  vfprintf(stderr, format, args);
  fputc('\n', stderr);
}

}  // namespace tflm
}  // namespace tflite_train

#else  /* a user's build against TFLM's own headers */

#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/micro/micro_common.h"
#include "tensorflow/lite/micro/micro_context.h"
#include "tensorflow/lite/micro/micro_log.h"

namespace tflite {
namespace micro {}
}  // namespace tflite

namespace tflite_train {
namespace tflm {
/* TFLM has kept these names in the global namespace, in tflite and (newer builds) in
 * tflite::micro; unqualified lookup through both directives finds them wherever they are. */
using namespace ::tflite;
using namespace ::tflite::micro;

/* One line "op: message", formatted by TFLM itself (no stdio on the device). */
inline void VLog(const char *op, const char *format, va_list args) {
  char text[128];
  MicroVsnprintf(text, sizeof text, format, args);
  MicroPrintf("%s: %s", op, text);
}
}  // namespace tflm
}  // namespace tflite_train

#endif

namespace tflite_train {
namespace tflm {

/* Names for the public header (tt_tflm.h), which must qualify them: a qualified name does
 * not reach TFLM's global ones through the directives above, an unqualified one here does. */
typedef TFLMRegistration Registration;
typedef TfLiteStatus Status;
constexpr Status kOk = kTfLiteOk;
constexpr Status kError = kTfLiteError;

/* The helpers the glue uses, written once on top of the names above. Their names differ
 * from TFLM's own (tflite::micro::NumInputs, ...) so that argument-dependent lookup never
 * makes a call ambiguous. */

inline void Log(const char *op, const char *format, ...) {
  va_list args;
  va_start(args, format);
  VLog(op, format, args);
  va_end(args);
}

inline int InputCount(const TfLiteNode *node) { return node->inputs->size; }
inline int OutputCount(const TfLiteNode *node) { return node->outputs->size; }
inline bool HasInput(const TfLiteNode *node, int index) {
  return index < node->inputs->size && node->inputs->data[index] >= 0;
}

/* Invoke-time access to a node's tensors; NULL for an absent optional input. */
inline TfLiteEvalTensor *EvalInput(const TfLiteContext *context, const TfLiteNode *node,
                                   int index) {
  if (!HasInput(node, index)) return nullptr;
  return GetMicroContext(context)->GetEvalTensor(node->inputs->data[index]);
}
inline TfLiteEvalTensor *EvalOutput(const TfLiteContext *context, const TfLiteNode *node,
                                    int index) {
  return GetMicroContext(context)->GetEvalTensor(node->outputs->data[index]);
}

/* Prepare-time access: a temporary TfLiteTensor that must be released with Release. */
inline TfLiteTensor *Temp(TfLiteContext *context, int tensor_index) {
  TfLiteTensor *t = GetMicroContext(context)->AllocateTempTfLiteTensor(tensor_index);
#if defined(TT_TFLM_WHEEL_ABI)
  /* The declared layouts are facts about one wheel build: check two of them against each
   * other on every tensor, so that a different build fails with a message, not garbage. */
  const TfLiteEvalTensor *e = GetMicroContext(context)->GetEvalTensor(tensor_index);
  bool same = t != nullptr && e != nullptr && t->type == e->type && t->dims != nullptr &&
              e->dims != nullptr && t->dims->size == e->dims->size;
  for (int d = 0; same && d < t->dims->size; ++d) same = t->dims->data[d] == e->dims->data[d];
  if (!same) {
    Log("tflite-train", "tensor %d: TfLiteTensor and TfLiteEvalTensor disagree; the "
        "tflite-micro wheel's layout differs from tt_tflm_compat.h", tensor_index);
    if (t != nullptr) GetMicroContext(context)->DeallocateTempTfLiteTensor(t);
    return nullptr;
  }
#endif
  return t;
}
inline TfLiteTensor *TempInput(TfLiteContext *context, const TfLiteNode *node, int index) {
  if (!HasInput(node, index)) return nullptr;
  return Temp(context, node->inputs->data[index]);
}
inline TfLiteTensor *TempOutput(TfLiteContext *context, const TfLiteNode *node, int index) {
  return Temp(context, node->outputs->data[index]);
}
inline void Release(TfLiteContext *context, TfLiteTensor *tensor) {
  if (tensor != nullptr) GetMicroContext(context)->DeallocateTempTfLiteTensor(tensor);
}

inline void *AllocatePersistent(TfLiteContext *context, size_t bytes) {
  return GetMicroContext(context)->AllocatePersistentBuffer(bytes);
}
inline bool RequestScratch(TfLiteContext *context, size_t bytes, int *index) {
  return GetMicroContext(context)->RequestScratchBufferInArena(bytes, index) == kTfLiteOk;
}
inline void *Scratch(TfLiteContext *context, int index) {
  return GetMicroContext(context)->GetScratchBuffer(index);
}

}  // namespace tflm
}  // namespace tflite_train

#endif  /* TT_TFLM_COMPAT_H */
