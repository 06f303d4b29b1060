/* On-device training in a TensorFlow Lite Micro application: the piece an app calls.
 *
 * Built with TFLM, micro_kernels/ (see Makefile.inc / CMakeLists.txt here) and the header
 * `tflite-train header model.train.tflite -o model_train.h --array g_model` writes for the
 * training model. C linkage, so that a C main loop can call it:
 *
 *   tt_trainer_begin();
 *   for (;;) {
 *     read a sample from the sensor, get its label (a button, a rule, ...);
 *     tt_trainer_step(sample, label, &loss);          // one training step, batch 1
 *     every so often: tt_trainer_save(buffer) and write the buffer to flash;
 *   }
 *   at boot, after tt_trainer_begin(): tt_trainer_restore(buffer read from flash);
 */
#ifndef TT_EXAMPLE_TRAINER_H
#define TT_EXAMPLE_TRAINER_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Builds the interpreter over the embedded training model and runs one inference-only
 * Invoke, which copies the initial parameters into their SRAM variables. 0 = ok. */
int tt_trainer_begin(void);

/* One training step on one int8 sample (the model's input size); label in
 * [0, TT_MODEL_CLASSES). Writes the loss. 0 = ok. */
int tt_trainer_step(const int8_t *sample, int32_t label, float *loss);

/* Inference only (label -1): the model's int8 output, TT_MODEL_CLASSES values. 0 = ok. */
int tt_trainer_predict(const int8_t *sample, int8_t *scores);

/* Size of the saved state: every trained tensor, concatenated in model tensor order. */
int32_t tt_trainer_state_bytes(void);

/* Copies the trained tensors out to `state` / back in from it. 0 = ok. */
int tt_trainer_save(uint8_t *state);
int tt_trainer_restore(const uint8_t *state);

#ifdef __cplusplus
}
#endif

#endif /* TT_EXAMPLE_TRAINER_H */
