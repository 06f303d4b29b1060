/* The registerer the pinned tflite-micro wheel's Python interpreter calls:
 *
 *   Interpreter.from_bytes(model, custom_op_registerers=["TfliteTrainRegisterOps"], ...)
 *
 * after the library that defines it is loaded with RTLD_GLOBAL. The wheel's resolver is a
 * MicroMutableOpResolver<200> whose AddCustom is an inline template the wheel does not
 * export, so this appends the registrations itself, at the layout measured on that build
 * (../shared/TFLM_ABI.md), after checking that the resolver looks like that layout.
 * Host-only: a device build registers through AddTrainingOps (tt_tflm.h).
 */
#if !defined(TT_TFLM_WHEEL_ABI)
#error "tt_tflm_wheel.cc is the Python wheel's registerer: build it with -DTT_TFLM_WHEEL_ABI"
#endif

#include <string.h>

#include "tt_tflm.h"

namespace {

using tflite_train::tflm::TFLMRegistration;

constexpr size_t kCapacity = 200;                      /* MicroMutableOpResolver<200> */
constexpr size_t kRegistrationsOffset = 8;             /* after the vtable pointer */
constexpr size_t kLengthOffset = kRegistrationsOffset + kCapacity * 56;   /* 0x2bc8 */
constexpr int32_t kBuiltinCustom = 32;                 /* BuiltinOperator_CUSTOM */
constexpr int32_t kLastBuiltin = 255;                  /* the schema's codes stay below */

static_assert(sizeof(TFLMRegistration) == 56, "TFLMRegistration is 56 bytes on LP64");

bool Fail(const char *what) {
  tflite_train::tflm::Log("tflite-train",
                          "the tflite-micro wheel's op resolver does not look like the layout "
                          "this glue was written for (../shared/TFLM_ABI.md): %s",
                          what);
  return false;
}

/* Every registration already there must look like one: a builtin code in range, an invoke
 * function, and a name exactly when it is a custom op. */
bool Plausible(const TFLMRegistration *regs, unsigned length) {
  if (length == 0 || length > kCapacity) return Fail("implausible registration count");
  for (unsigned i = 0; i < length; ++i) {
    const TFLMRegistration &r = regs[i];
    if (r.builtin_code < 0 || r.builtin_code > kLastBuiltin || r.invoke == nullptr)
      return Fail("a registration with no invoke function or a builtin code out of range");
    if ((r.builtin_code == kBuiltinCustom) != (r.custom_name != nullptr))
      return Fail("a custom name on a builtin op, or a custom op without one");
  }
  return true;
}

}  // namespace

extern "C" bool TfliteTrainRegisterOps(void *resolver) {
  unsigned char *base = static_cast<unsigned char *>(resolver);
  TFLMRegistration *regs = reinterpret_cast<TFLMRegistration *>(base + kRegistrationsOffset);
  unsigned *length = reinterpret_cast<unsigned *>(base + kLengthOffset);
  if (!Plausible(regs, *length)) return false;
  if (*length + tflite_train::kNumTrainingOps > kCapacity)
    return Fail("no room for the training ops");
  for (int i = 0; i < tflite_train::kNumTrainingOps; ++i) {
    const char *name = tflite_train::TrainingOpName(i);
    for (unsigned j = 0; j < *length; ++j) {
      if (regs[j].custom_name != nullptr && strcmp(regs[j].custom_name, name) == 0)
        return Fail("the training ops are registered already");
    }
  }
  for (int i = 0; i < tflite_train::kNumTrainingOps; ++i) {
    TFLMRegistration r = *tflite_train::TrainingOpRegistration(i);
    r.builtin_code = kBuiltinCustom;
    r.custom_name = tflite_train::TrainingOpName(i);
    regs[(*length)++] = r;
  }
  return true;
}

/* For the Python engine (tflite_train/runtime/tflm_engine.py), with C linkage: both sinks of
 * tt_tflm.h at once (NULL: none), so that it can read and write the training state of the
 * interpreter it is about to invoke. */
extern "C" void TfliteTrainReportTo(void *trained, void *updates) {
  tflite_train::ReportTrainedTensorsTo(static_cast<tflite_train::TrainedTensors *>(trained));
  tflite_train::ReportUpdateStatesTo(static_cast<tflite_train::UpdateOpStates *>(updates));
}
