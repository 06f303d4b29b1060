/* The lines a generated program prints on the Cortex-M7 rig, which the host reads
 * (tflite_train/codegen/rig.py parses them): training steps, an inference and the
 * checkpoint regions, each timed in SysTick ticks (40 instructions each under
 * `qemu -icount shift=0`). Shared by rig_main.c and the checkpoint test's harness
 * (tests/codegen_resume_rig.c); the start-up code and rig_print.h
 * (micro_kernels/targets/mps2_an500) provide the tt_rig_* functions and the number printers. */
#ifndef RIG_LINES_H
#define RIG_LINES_H

#include <stdint.h>
#include <string.h>

#include "rig_data.h"
#include "rig_print.h"
#include "tt_checkpoint.h"
#include "tt_model.h"

#ifdef RIG_ROWS
/* The row API (a program generated with --input rows): the rows of a sample in flash, one
 * call each, checked to come in order and each once (any other order fails the step). A row
 * is copied by memcpy, as a camera's driver or DMA would hand it over: the byte loop it
 * replaced took 4 instructions a byte, 0.2 M of MobileNetV2's step (128 rows of 384 B),
 * counted inside the first operator, which calls the reader. */
typedef struct {
  const int8_t *sample;
  int32_t next;
} rig_rows;

static int rig_read_row(int32_t y, int8_t *row, void *ctx) {
  rig_rows *r = (rig_rows *)ctx;
  if (y != r->next++) return 1;
  const int8_t *from = r->sample + y * TT_MODEL_ROW_BYTES;
  memcpy(row, from, TT_MODEL_ROW_BYTES);
  return 0;
}

/* TT_MODEL_ERROR_INPUT unless every row was read. */
static inline int rig_rows_done(const rig_rows *r, int status) {
  return status == TT_MODEL_OK && r->next != TT_MODEL_ROWS ? TT_MODEL_ERROR_INPUT : status;
}

static inline int rig_train_step(const int8_t *sample, int32_t label, float *loss) {
  rig_rows r = {sample, 0};
  return rig_rows_done(&r, tt_train_step_rows(rig_read_row, &r, label, loss));
}

static inline int rig_predict_step(const int8_t *sample, int8_t *scores) {
  rig_rows r = {sample, 0};
  return rig_rows_done(&r, tt_predict_rows(rig_read_row, &r, scores));
}
#else
static inline int rig_train_step(const int8_t *sample, int32_t label, float *loss) {
  return tt_train_step(sample, label, loss);
}

static inline int rig_predict_step(const int8_t *sample, int8_t *scores) {
  return tt_predict(sample, scores);
}
#endif

/* Steps from .. to - 1 on the samples of rig_data.h, one "TT step" line each; stops at the
 * first status that is not TT_MODEL_OK and returns it. */
static inline int rig_train(int32_t from, int32_t to) {
  int status = TT_MODEL_OK;
  for (int32_t i = from; i < to && status == TT_MODEL_OK; ++i) {
    float loss = 0.0f;
    const uint64_t t0 = tt_rig_ticks64();
    status = rig_train_step(rig_samples[i % RIG_SAMPLES], rig_labels[i], &loss);
    const uint64_t t1 = tt_rig_ticks64();
    tt_rig_print("TT step ");
    rig_print_u64((uint64_t)i);
    tt_rig_print(" ticks ");
    rig_print_u64(t1 - t0);
    tt_rig_print(" status ");
    rig_print_u64((uint64_t)status);
    tt_rig_print(" loss ");
    rig_print_hex(&loss, sizeof loss);
    tt_rig_print("\n");
  }
  return status;
}

/* An inference of the first sample: one "TT predict" line. */
static inline int rig_predict(void) {
  static int8_t scores[TT_MODEL_CLASSES];
  const uint64_t t0 = tt_rig_ticks64();
  const int status = rig_predict_step(rig_samples[0], scores);
  const uint64_t t1 = tt_rig_ticks64();
  tt_rig_print("TT predict ticks ");
  rig_print_u64(t1 - t0);
  tt_rig_print(" status ");
  rig_print_u64((uint64_t)status);
  tt_rig_print(" scores ");
  rig_print_hex(scores, sizeof scores);
  tt_rig_print("\n");
  return status;
}

/* The CRC-32 of every checkpoint region: one "TT region" line each. */
static inline void rig_print_regions(void) {
  for (int32_t r = 0; r < TT_MODEL_CHECKPOINT_REGIONS; ++r) {
    const tt_checkpoint_region *region = &tt_model_checkpoint[r];
    tt_rig_print("TT region ");
    rig_print_u64((uint64_t)r);
    tt_rig_print(" crc ");
    rig_print_u64(tt_crc32(0, region->data, region->bytes));
    tt_rig_print("\n");
  }
}

#endif /* RIG_LINES_H */
