/* tflite-train training ops for a TensorFlow Lite Micro application.
 *
 *   static tflite::MicroMutableOpResolver<kForwardOps + tflite_train::kNumTrainingOps> resolver;
 *   ... resolver.AddConv2D(); ... (the forward ops of the model)
 *   tflite_train::AddTrainingOps(resolver);
 *
 * then load a training model written by `tflite-train augment`, set input 0 (the sample) and
 * input 1 (the int32 label; negative = inference only) and Invoke(): one training step.
 * The arithmetic is in ../include/tt_kernels.h; this glue only maps tensors onto it.
 */
#ifndef TT_TFLM_H
#define TT_TFLM_H

#include "tt_tflm_compat.h"

namespace tflite_train {

namespace tflm {
/* tt_tflm_forward_ops.cc: the forward ops (TT_CONV2D, ...), registered with the rest by
 * AddTrainingOps. */
constexpr int kNumForwardOps = 4;
const char *ForwardOpName(int i);
const Registration *ForwardOpRegistration(int i);
}  // namespace tflm

/* The TT_* custom ops of schema/training_ops.json, all of them. */
constexpr int kNumTrainingOps = 32;

/* Name (e.g. "TT_CONV2D_INPUT_GRAD") and registration of training op i,
 * 0 <= i < kNumTrainingOps; NULL outside that range. Both live for the whole program. */
const char *TrainingOpName(int i);
const tflm::Registration *TrainingOpRegistration(int i);

/* Where the trained tensors are, once TT_INIT has run (the first Invoke() after
 * AllocateTensors() or Reset(), whatever the label): one entry per trained variable, i.e.
 * per (initial value, variable) pair of TT_INIT. An app reads them to save what it learned
 * (to flash, say) and writes them, after that first Invoke(), to restore it. */
struct TrainedTensor {
  int32_t tensor;      /* index in the model (`tflite-train header` lists them) */
  void *data;
  int32_t bytes;
};
struct TrainedTensors {
  TrainedTensor *entries;   /* app-owned */
  int32_t capacity;
  int32_t count;            /* set by TT_INIT: can exceed capacity (then entries are cut) */
};

/* TT_INIT reports to `sink` from now on (NULL: to nobody). TFLM gives an app no handle on
 * a variable tensor without keeping every tensor alive, so this and the update-op sink
 * below are the only global state in the glue: one sink each, for the one model a
 * microcontroller trains at a time. */
void ReportTrainedTensorsTo(TrainedTensors *sink);

/* The optimizer state of one update op (TT_*_UPDATE*): what a checkpoint needs besides the
 * trained tensors to resume training exactly (tt_checkpoint.h): its stream and step, its
 * momentum buffer, for a batch above 1 the gradients accumulated so far this batch, and a
 * weight update's rounding residual (augment --head-residual). */
struct UpdateOpState {
  int32_t parameter;         /* tensor index of the parameter the op updates */
  void *state;               /* its tt_update_state (tt_kernels.h): random stream, step */
  int32_t state_bytes;
  int32_t momentum;          /* tensor index of its momentum buffer; -1: none */
  void *momentum_data;       /* NULL: none */
  int32_t momentum_bytes;
  int32_t accumulator;       /* tensor index of its accumulator (batch > 1); -1: none */
  void *accumulator_data;    /* NULL: none */
  int32_t accumulator_bytes;
  int32_t residual;          /* tensor index of its int8 rounding residual; -1: none */
  void *residual_data;       /* NULL: none */
  int32_t residual_bytes;
};
struct UpdateOpStates {
  UpdateOpState *entries;    /* app-owned */
  int32_t capacity;
  int32_t count;             /* entries reported; capacity + 1: the sink was too small */
};

/* Every update op reports itself to `sink` (NULL: to nobody) on each Invoke, training or
 * not, one entry per parameter: after the first Invoke the sink holds them all. */
void ReportUpdateStatesTo(UpdateOpStates *sink);

/* Adds every training op to a TFLM op resolver (anything with TFLM's
 * AddCustom(const char*, const TFLMRegistration*)); the resolver needs room for
 * kNumTrainingOps more ops. Returns kTfLiteError at the first op the resolver refuses. */
template <typename Resolver>
tflm::Status AddTrainingOps(Resolver &resolver) {
  for (int i = 0; i < kNumTrainingOps; ++i) {
    if (resolver.AddCustom(TrainingOpName(i), TrainingOpRegistration(i)) != tflm::kOk) {
      return tflm::kError;
    }
  }
  return tflm::kOk;
}

}  // namespace tflite_train

#endif  /* TT_TFLM_H */
