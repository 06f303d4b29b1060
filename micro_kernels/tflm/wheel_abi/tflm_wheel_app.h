/* TFLM's application API as the pinned tflite-micro wheel (0.dev20261023182759, x86_64)
 * exports it, for our tests only: the wheel ships a compiled TFLM but no headers, so these
 * declarations let examples/tflm_app compile unchanged and run against the real TFLM in the
 * wheel (`-Imicro_kernels/tflm/wheel_abi -DTT_TFLM_WHEEL_ABI`, then load the result into a
 * process that has the wheel's _runtime.so loaded with RTLD_GLOBAL).
 *
 * Only what the example uses. Functions are the wheel's own (linked by their mangled names,
 * namespace tflite::micro in this build); the op resolver is re-implemented on the vtable
 * layout of the wheel's MicroOpResolver, which tests/test_tflm_example.py reads out of the
 * wheel's binary. A user's build includes TFLM's real headers instead.
 */
#ifndef TT_TFLM_WHEEL_APP_H
#define TT_TFLM_WHEEL_APP_H

#if !defined(TT_TFLM_WHEEL_ABI)
#error "the wheel_abi headers stand in for TFLM's only in -DTT_TFLM_WHEEL_ABI test builds"
#endif

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tt_tflm_compat.h"

/* Old TFLM keeps the C types global; an app names them unqualified. */
using tflite_train::tflm::TfLiteEvalTensor;
using tflite_train::tflm::TfLiteStatus;
using tflite_train::tflm::TfLiteTensor;
using tflite_train::tflm::TFLMRegistration;
using tflite_train::tflm::kTfLiteError;
using tflite_train::tflm::kTfLiteOk;

namespace tflite {

struct Model;                 /* a flatbuffer table: only TFLM itself reads it */
struct Operator;

/* flatbuffers: a buffer starts with the little-endian offset of its root table */
inline const Model *GetModel(const void *buffer) {
  uint32_t root;
  memcpy(&root, buffer, sizeof root);
  return reinterpret_cast<const Model *>(static_cast<const uint8_t *>(buffer) + root);
}

enum BuiltinOperator : int32_t {
  BuiltinOperator_ADD = 0, BuiltinOperator_AVERAGE_POOL_2D = 1, BuiltinOperator_CONV_2D = 3,
  BuiltinOperator_DEPTHWISE_CONV_2D = 4, BuiltinOperator_DEQUANTIZE = 6,
  BuiltinOperator_FULLY_CONNECTED = 9, BuiltinOperator_MAX_POOL_2D = 17,
  BuiltinOperator_RESHAPE = 22, BuiltinOperator_SOFTMAX = 25, BuiltinOperator_CUSTOM = 32,
  BuiltinOperator_PAD = 34, BuiltinOperator_TRANSPOSE = 39, BuiltinOperator_MEAN = 40,
  BuiltinOperator_QUANTIZE = 114
};

namespace micro {

class BuiltinDataAllocator;
class MicroResourceVariables;
class MicroProfilerInterface;

typedef TfLiteStatus (*TfLiteBridgeBuiltinParseFunction)(const Operator *,
                                                          BuiltinDataAllocator *, void **);

#define TT_WHEEL_OP(NAME, PARSE)                                                   \
  TFLMRegistration Register_##NAME();                                             \
  TfLiteStatus PARSE(const Operator *, BuiltinDataAllocator *, void **);
TT_WHEEL_OP(ADD, ParseAdd)
TT_WHEEL_OP(AVERAGE_POOL_2D, ParsePool)
TT_WHEEL_OP(CONV_2D, ParseConv2D)
TT_WHEEL_OP(DEPTHWISE_CONV_2D, ParseDepthwiseConv2D)
TT_WHEEL_OP(DEQUANTIZE, ParseDequantize)
TT_WHEEL_OP(FULLY_CONNECTED, ParseFullyConnected)
TT_WHEEL_OP(MAX_POOL_2D, ParsePool)
TT_WHEEL_OP(MEAN, ParseReducer)
TT_WHEEL_OP(PAD, ParsePad)
TT_WHEEL_OP(QUANTIZE, ParseQuantize)
TT_WHEEL_OP(RESHAPE, ParseReshape)
TT_WHEEL_OP(SOFTMAX, ParseSoftmax)
TT_WHEEL_OP(TRANSPOSE, ParseTranspose)
#undef TT_WHEEL_OP

/* The virtual functions in the wheel's order (its vtable: FindOp(BuiltinOperator),
 * FindOp(const char*), GetOpDataParser, then the destructors). */
class MicroOpResolver {
 public:
  virtual const TFLMRegistration *FindOp(BuiltinOperator op) const = 0;
  virtual const TFLMRegistration *FindOp(const char *op) const = 0;
  virtual TfLiteBridgeBuiltinParseFunction GetOpDataParser(BuiltinOperator op) const = 0;
  virtual ~MicroOpResolver() {}
};

/* TFLM's MicroMutableOpResolver semantics, for the ops above. */
template <unsigned int kOps>
class MicroMutableOpResolver : public MicroOpResolver {
 public:
  const TFLMRegistration *FindOp(BuiltinOperator op) const override {
    for (unsigned i = 0; i < length_; ++i)
      if (op != BuiltinOperator_CUSTOM && registrations_[i].builtin_code == op)
        return &registrations_[i];
    return nullptr;
  }
  const TFLMRegistration *FindOp(const char *op) const override {
    for (unsigned i = 0; i < length_; ++i)
      if (registrations_[i].builtin_code == BuiltinOperator_CUSTOM &&
          strcmp(registrations_[i].custom_name, op) == 0)
        return &registrations_[i];
    return nullptr;
  }
  TfLiteBridgeBuiltinParseFunction GetOpDataParser(BuiltinOperator op) const override {
    for (unsigned i = 0; i < builtins_; ++i)
      if (builtin_codes_[i] == op) return parsers_[i];
    return nullptr;
  }

  TfLiteStatus AddCustom(const char *name, const TFLMRegistration *registration) {
    if (length_ >= kOps || FindOp(name) != nullptr) return kTfLiteError;
    registrations_[length_] = *registration;
    registrations_[length_].builtin_code = BuiltinOperator_CUSTOM;
    registrations_[length_++].custom_name = name;
    return kTfLiteOk;
  }

  TfLiteStatus AddAdd() { return AddBuiltin(BuiltinOperator_ADD, Register_ADD(), ParseAdd); }
  TfLiteStatus AddAveragePool2D() {
    return AddBuiltin(BuiltinOperator_AVERAGE_POOL_2D, Register_AVERAGE_POOL_2D(), ParsePool);
  }
  TfLiteStatus AddConv2D() {
    return AddBuiltin(BuiltinOperator_CONV_2D, Register_CONV_2D(), ParseConv2D);
  }
  TfLiteStatus AddDepthwiseConv2D() {
    return AddBuiltin(BuiltinOperator_DEPTHWISE_CONV_2D, Register_DEPTHWISE_CONV_2D(),
                      ParseDepthwiseConv2D);
  }
  TfLiteStatus AddDequantize() {
    return AddBuiltin(BuiltinOperator_DEQUANTIZE, Register_DEQUANTIZE(), ParseDequantize);
  }
  TfLiteStatus AddFullyConnected() {
    return AddBuiltin(BuiltinOperator_FULLY_CONNECTED, Register_FULLY_CONNECTED(),
                      ParseFullyConnected);
  }
  TfLiteStatus AddMaxPool2D() {
    return AddBuiltin(BuiltinOperator_MAX_POOL_2D, Register_MAX_POOL_2D(), ParsePool);
  }
  TfLiteStatus AddMean() { return AddBuiltin(BuiltinOperator_MEAN, Register_MEAN(), ParseReducer); }
  TfLiteStatus AddPad() { return AddBuiltin(BuiltinOperator_PAD, Register_PAD(), ParsePad); }
  TfLiteStatus AddQuantize() {
    return AddBuiltin(BuiltinOperator_QUANTIZE, Register_QUANTIZE(), ParseQuantize);
  }
  TfLiteStatus AddReshape() {
    return AddBuiltin(BuiltinOperator_RESHAPE, Register_RESHAPE(), ParseReshape);
  }
  TfLiteStatus AddSoftmax() {
    return AddBuiltin(BuiltinOperator_SOFTMAX, Register_SOFTMAX(), ParseSoftmax);
  }
  TfLiteStatus AddTranspose() {
    return AddBuiltin(BuiltinOperator_TRANSPOSE, Register_TRANSPOSE(), ParseTranspose);
  }

 private:
  TfLiteStatus AddBuiltin(BuiltinOperator op, const TFLMRegistration &registration,
                          TfLiteBridgeBuiltinParseFunction parser) {
    if (length_ >= kOps || FindOp(op) != nullptr) return kTfLiteError;
    registrations_[length_] = registration;
    registrations_[length_++].builtin_code = op;
    builtin_codes_[builtins_] = op;
    parsers_[builtins_++] = parser;
    return kTfLiteOk;
  }

  TFLMRegistration registrations_[kOps];
  unsigned length_ = 0;
  BuiltinOperator builtin_codes_[kOps];
  TfLiteBridgeBuiltinParseFunction parsers_[kOps];
  unsigned builtins_ = 0;
};

/* The wheel's MicroInterpreter, called through its exported member functions. The object
 * is 240 bytes in this build (InterpreterWrapper allocates it with operator new(0xf0)). */
class MicroInterpreter {
 public:
  MicroInterpreter(const Model *model, const MicroOpResolver &op_resolver,
                   uint8_t *tensor_arena, size_t tensor_arena_size,
                   MicroResourceVariables *resource_variables = nullptr,
                   MicroProfilerInterface *profiler = nullptr,
                   bool preserve_all_tensors = false);
  ~MicroInterpreter();
  TfLiteStatus AllocateTensors();
  TfLiteStatus Invoke();
  TfLiteStatus Reset();
  TfLiteTensor *input(size_t index);
  TfLiteTensor *output(size_t index);

 private:
  alignas(16) unsigned char storage_[1024];
};

}  // namespace micro

/* Old TFLM's names, which the example uses. */
using micro::MicroInterpreter;
using micro::MicroMutableOpResolver;

}  // namespace tflite

#endif  /* TT_TFLM_WHEEL_APP_H */
