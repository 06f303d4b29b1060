/* On-device training in a TensorFlow Lite Micro application: the piece an app calls.
 *
 * Built with TFLM, micro_kernels/ (see Makefile.inc / CMakeLists.txt here) and the header
 * `tflite-train header model.train.tflite -o model_train.h --array g_model` writes for the
 * training model. C linkage, so that a C main loop can call it:
 *
 *   tt_trainer_begin();
 *   tt_trainer_resume(&flash, &seq);                  // what training had saved, if any
 *   for (;;) {
 *     read a sample from the sensor, get its label (a button, a rule, ...);
 *     tt_trainer_step(sample, label, &loss);          // one training step, batch 1
 *     every so often: tt_trainer_checkpoint(&flash, &seq);
 *   }
 *
 * `flash` (tt_checkpoint.h) is the app's: two slots of flash, each at least
 * TT_MODEL_CHECKPOINT_BYTES rounded up to whole pages and covering whole erase sectors,
 * and its erase / program / read functions. A power cut during a checkpoint costs at most
 * that checkpoint: resume then finds the previous one.
 */
#ifndef TT_EXAMPLE_TRAINER_H
#define TT_EXAMPLE_TRAINER_H

#include <stdint.h>

#include "tt_checkpoint.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Builds the interpreter over the embedded training model and runs one inference-only
 * Invoke, which copies the initial parameters into their SRAM variables and reports where
 * the checkpoint's regions are. 0 = ok. */
int tt_trainer_begin(void);

/* One training step on one int8 sample (the model's input size); label in
 * [0, TT_MODEL_CLASSES). Writes the loss. 0 = ok. */
int tt_trainer_step(const int8_t *sample, int32_t label, float *loss);

/* Inference only (label -1): the model's int8 output, TT_MODEL_CLASSES values. 0 = ok. */
int tt_trainer_predict(const int8_t *sample, int8_t *scores);

/* Saves the training state (trained parameters, momentum buffers, the update ops' random
 * streams and step counters) as the newest checkpoint in `flash`; its sequence number to
 * `sequence` (may be NULL). A TT_CHECKPOINT_* result (0 = ok; -1: not begun). */
int tt_trainer_checkpoint(const tt_flash *flash, uint32_t *sequence);

/* Puts the newest valid checkpoint of this model in `flash` back: training goes on exactly
 * as if it had never stopped. TT_CHECKPOINT_OK, or _EMPTY (nothing saved yet: training
 * starts afresh), _OTHER_MODEL (checkpoints of another model only), ... (-1: not begun). */
int tt_trainer_resume(const tt_flash *flash, uint32_t *sequence);

/* Where the newest valid checkpoint is: slot 0 (A) or 1 (B) of `flash` and its size, to
 * send those bytes to the host (`tflite-train export --state` reads them). A
 * TT_CHECKPOINT_* result as tt_trainer_resume's. */
int tt_trainer_newest(const tt_flash *flash, int32_t *slot, uint32_t *bytes);

#ifdef __cplusplus
}
#endif

#endif /* TT_EXAMPLE_TRAINER_H */
