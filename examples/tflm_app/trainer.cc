/* On-device training with TFLM: see trainer.h. Everything here is the standard TFLM
 * application API plus three calls of micro_kernels/tflm/tt_tflm.h (AddTrainingOps,
 * ReportTrainedTensorsTo, kNumTrainingOps). */
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
tflite::MicroInterpreter *g_interpreter = nullptr;

/* The trained tensor behind header entry i (tensor order), or NULL. */
const tflite_train::TrainedTensor *Trained(int i) {
  for (int32_t k = 0; k < g_trained.count && k < g_trained.capacity; ++k) {
    if (g_entries[k].tensor == tt_model_trained[i].tensor &&
        g_entries[k].bytes == tt_model_trained[i].bytes)
      return &g_entries[k];
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
  /* TT_INIT runs on this first Invoke whatever the label: the parameters are in place */
  TfLiteTensor *input = interpreter.input(TT_MODEL_SAMPLE_INPUT);
  memset(input->data.int8, 0, input->bytes);
  interpreter.input(TT_MODEL_LABEL_INPUT)->data.i32[0] = -1;
  if (interpreter.Invoke() != kTfLiteOk) return -3;
  for (int i = 0; i < TT_MODEL_TRAINED_TENSORS; ++i) {
    if (Trained(i) == nullptr) return -4;           /* the header is not this model's */
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

extern "C" int32_t tt_trainer_state_bytes(void) {
  int32_t total = 0;
  for (int i = 0; i < TT_MODEL_TRAINED_TENSORS; ++i) total += tt_model_trained[i].bytes;
  return total;
}

extern "C" int tt_trainer_save(uint8_t *state) {
  if (g_interpreter == nullptr) return -1;
  for (int i = 0; i < TT_MODEL_TRAINED_TENSORS; ++i) {
    memcpy(state, Trained(i)->data, tt_model_trained[i].bytes);
    state += tt_model_trained[i].bytes;
  }
  return 0;
}

extern "C" int tt_trainer_restore(const uint8_t *state) {
  if (g_interpreter == nullptr) return -1;
  for (int i = 0; i < TT_MODEL_TRAINED_TENSORS; ++i) {
    memcpy(Trained(i)->data, state, tt_model_trained[i].bytes);
    state += tt_model_trained[i].bytes;
  }
  return 0;
}
