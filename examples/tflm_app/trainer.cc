/* On-device training with TFLM: see trainer.h. Everything here is the standard TFLM
 * application API, four calls of micro_kernels/tflm/tt_tflm.h (AddTrainingOps,
 * ReportTrainedTensorsTo, ReportUpdateStatesTo, kNumTrainingOps) and the checkpoint API of
 * micro_kernels/include/tt_checkpoint.h. */
#include "trainer.h"

#include <string.h>

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include "tt_tflm.h"

/* `tflite-train header model.train.tflite -o model_train.h --array g_model` */
#ifndef TT_MODEL_HEADER
#define TT_MODEL_HEADER "model_train.h"
#endif
#include TT_MODEL_HEADER

namespace {

/* The forward ops: the builtins the model uses (these cover the models tflite-train
 * supports; an app lists only its own, to keep code size down). */
constexpr int kForwardOps = 13;
using Resolver = tflite::MicroMutableOpResolver<kForwardOps + tflite_train::kNumTrainingOps>;

bool AddForwardOps(Resolver &r) {
  return r.AddAdd() == kTfLiteOk && r.AddAveragePool2D() == kTfLiteOk &&
         r.AddConv2D() == kTfLiteOk && r.AddDepthwiseConv2D() == kTfLiteOk &&
         r.AddDequantize() == kTfLiteOk && r.AddFullyConnected() == kTfLiteOk &&
         r.AddMaxPool2D() == kTfLiteOk && r.AddMean() == kTfLiteOk && r.AddPad() == kTfLiteOk &&
         r.AddQuantize() == kTfLiteOk && r.AddReshape() == kTfLiteOk &&
         r.AddSoftmax() == kTfLiteOk && r.AddTranspose() == kTfLiteOk;
}

alignas(16) uint8_t g_arena[TT_MODEL_ARENA_BYTES];
tflite_train::TrainedTensor g_entries[TT_MODEL_TRAINED_TENSORS];
tflite_train::TrainedTensors g_trained = {g_entries, TT_MODEL_TRAINED_TENSORS, 0};
tflite_train::UpdateOpState g_update_entries[TT_MODEL_UPDATE_OPS > 0 ? TT_MODEL_UPDATE_OPS : 1];
tflite_train::UpdateOpStates g_updates = {g_update_entries, TT_MODEL_UPDATE_OPS, 0};
tt_checkpoint_region g_regions[TT_MODEL_CHECKPOINT_REGIONS];
tflite::MicroInterpreter *g_interpreter = nullptr;

/* Where checkpoint region `r` of the header is in this interpreter, or NULL. */
void *Locate(const tt_model_region &r) {
  for (int32_t k = 0; k < g_trained.count && k < g_trained.capacity; ++k) {
    const tflite_train::TrainedTensor &t = g_entries[k];
    if (r.kind == TT_CHECKPOINT_PARAMETER && t.tensor == r.id &&
        static_cast<uint32_t>(t.bytes) == r.bytes)
      return t.data;
  }
  for (int32_t k = 0; k < g_updates.count && k < g_updates.capacity; ++k) {
    const tflite_train::UpdateOpState &u = g_update_entries[k];
    if (r.kind == TT_CHECKPOINT_MOMENTUM && u.momentum == r.id &&
        static_cast<uint32_t>(u.momentum_bytes) == r.bytes)
      return u.momentum_data;
    if (r.kind == TT_CHECKPOINT_ACCUMULATOR && u.accumulator == r.id &&
        static_cast<uint32_t>(u.accumulator_bytes) == r.bytes)
      return u.accumulator_data;
    if (r.kind == TT_CHECKPOINT_RESIDUAL && u.residual == r.id &&
        static_cast<uint32_t>(u.residual_bytes) == r.bytes)
      return u.residual_data;
    if (r.kind == TT_CHECKPOINT_UPDATE_STATE && u.parameter == r.id &&
        static_cast<uint32_t>(u.state_bytes) == r.bytes)
      return u.state;
  }
  return nullptr;
}

int Run(const int8_t *sample, int32_t label) {
  TfLiteTensor *input = g_interpreter->input(TT_MODEL_SAMPLE_INPUT);
  memcpy(input->data.int8, sample, input->bytes);
  g_interpreter->input(TT_MODEL_LABEL_INPUT)->data.i32[0] = label;
  return g_interpreter->Invoke() == kTfLiteOk ? 0 : -1;
}

}  // namespace

extern "C" int tt_trainer_begin(void) {
  static Resolver resolver;
  if (!AddForwardOps(resolver) || tflite_train::AddTrainingOps(resolver) != kTfLiteOk) return -1;
  static tflite::MicroInterpreter interpreter(tflite::GetModel(g_model), resolver, g_arena,
                                              sizeof g_arena);
  if (interpreter.AllocateTensors() != kTfLiteOk) return -2;
  g_interpreter = &interpreter;
  tflite_train::ReportTrainedTensorsTo(&g_trained);
  tflite_train::ReportUpdateStatesTo(&g_updates);
  /* TT_INIT runs on this first Invoke whatever the label: the parameters are in place, and
   * every op has said where its part of a checkpoint lives */
  TfLiteTensor *input = interpreter.input(TT_MODEL_SAMPLE_INPUT);
  memset(input->data.int8, 0, input->bytes);
  interpreter.input(TT_MODEL_LABEL_INPUT)->data.i32[0] = -1;
  if (interpreter.Invoke() != kTfLiteOk) return -3;
  for (int i = 0; i < TT_MODEL_CHECKPOINT_REGIONS; ++i) {
    const tt_model_region &r = tt_model_checkpoint[i];
    g_regions[i] = tt_checkpoint_region{r.kind, r.id, Locate(r), r.bytes};
    if (g_regions[i].data == nullptr) return -4;     /* the header is not this model's */
  }
  return 0;
}

extern "C" int tt_trainer_step(const int8_t *sample, int32_t label, float *loss) {
  if (g_interpreter == nullptr || label < 0 || label >= TT_MODEL_CLASSES) return -1;
  if (Run(sample, label) != 0) return -2;
  *loss = g_interpreter->output(TT_MODEL_LOSS_OUTPUT)->data.f[0];
  return 0;
}

extern "C" int tt_trainer_predict(const int8_t *sample, int8_t *scores) {
  if (g_interpreter == nullptr || Run(sample, -1) != 0) return -1;
  memcpy(scores, g_interpreter->output(TT_MODEL_OUTPUT)->data.int8, TT_MODEL_CLASSES);
  return 0;
}

extern "C" int tt_trainer_checkpoint(const tt_flash *flash, uint32_t *sequence) {
  if (g_interpreter == nullptr) return -1;
  return tt_checkpoint_save(flash, TT_MODEL_ID, g_regions, TT_MODEL_CHECKPOINT_REGIONS,
                            sequence);
}

extern "C" int tt_trainer_resume(const tt_flash *flash, uint32_t *sequence) {
  if (g_interpreter == nullptr) return -1;
  return tt_checkpoint_restore(flash, TT_MODEL_ID, g_regions, TT_MODEL_CHECKPOINT_REGIONS,
                               sequence);
}

extern "C" int tt_trainer_newest(const tt_flash *flash, int32_t *slot, uint32_t *bytes) {
  if (g_interpreter == nullptr) return -1;
  return tt_checkpoint_newest(flash, TT_MODEL_ID, g_regions, TT_MODEL_CHECKPOINT_REGIONS, slot,
                              nullptr, bytes);
}
