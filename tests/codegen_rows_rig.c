/* A generated program whose sample is read row by row (--input rows) on the Cortex-M7 rig,
 * through a reader that gives up, then trained as usual: tests/test_codegen_chain.py puts
 * this file in place of the folder's rig/rig_main.c and links it with
 * -Wl,--wrap=tt_dsp_pointwise_weight_update (and micro_kernels/src on the include path).
 *
 * "TT phase boot": tt_model_init and the regions' CRC-32s. "TT phase failed": for a reader
 * giving up at the first, the middle and the last row, tt_train_step_rows and then
 * tt_predict_rows, one "TT failed" line each (the status, the rows asked for, whether any
 * was asked out of order or after the failure, whether the scores were left alone), then
 * the regions again. "TT phase trained": RIG_STEPS steps and an inference as rig_main.c
 * runs them, the regions, and how often the fused pointwise update with the default rule
 * ran, by its last block of channels (whole or not). */
#include <stdint.h>
#include <string.h>

#include "rig_lines.h"
#include "tt_grad_dsp.h"

/* [a partial last block of channels] */
static uint32_t fused[2];

int32_t __real_tt_dsp_pointwise_weight_update_run(
    tt_wdsp_stage *st, const int8_t *dy, const uint8_t *mask, int32_t rows, int32_t co,
    int32_t begin, int32_t k, int32_t x_zp, float unit, int8_t *w, int32_t ci,
    const float *scales, int32_t per_channel, int32_t skip, uint32_t *states, tt_sgd_call *call);

/* the channels each run of the fused default rule took */
int32_t __wrap_tt_dsp_pointwise_weight_update_run(
    tt_wdsp_stage *st, const int8_t *dy, const uint8_t *mask, int32_t rows, int32_t co,
    int32_t begin, int32_t k, int32_t x_zp, float unit, int8_t *w, int32_t ci,
    const float *scales, int32_t per_channel, int32_t skip, uint32_t *states, tt_sgd_call *call) {
  const int32_t end = __real_tt_dsp_pointwise_weight_update_run(
      st, dy, mask, rows, co, begin, k, x_zp, unit, w, ci, scales, per_channel, skip, states,
      call);
  fused[(k & 7) != 0] += (uint32_t)(end - begin);
  return end;
}

typedef struct {
  const int8_t *sample;
  int32_t next, fail_at, bad;
} failing_rows;

static int failing_read_row(int32_t y, int8_t *row, void *ctx) {
  failing_rows *r = (failing_rows *)ctx;
  if (y != r->next++ || y > r->fail_at) r->bad = 1;
  if (y == r->fail_at) return 1;
  const int8_t *from = r->sample + y * TT_MODEL_ROW_BYTES;
  for (int32_t i = 0; i < TT_MODEL_ROW_BYTES; ++i) row[i] = from[i];
  return 0;
}

static void print_failed(const char *what, int32_t fail_at, int status,
                         const failing_rows *r, int untouched) {
  tt_rig_print("TT failed ");
  tt_rig_print(what);
  tt_rig_print(" at ");
  rig_print_u64((uint64_t)fail_at);
  tt_rig_print(" status ");
  rig_print_u64((uint64_t)status);
  tt_rig_print(" rows ");
  rig_print_u64((uint64_t)r->next);
  tt_rig_print(" bad ");
  rig_print_u64((uint64_t)r->bad);
  tt_rig_print(" untouched ");
  rig_print_u64((uint64_t)untouched);
  tt_rig_print("\n");
}

int main(void) {
  static int8_t scores[TT_MODEL_CLASSES];
  tt_rig_ticks64_start();
  int status = tt_model_init();
  tt_rig_print("TT phase boot\n");
  rig_print_regions();
  tt_rig_print("TT phase failed\n");
  const int32_t at[3] = {0, TT_MODEL_ROWS / 2, TT_MODEL_ROWS - 1};
  for (int32_t i = 0; i < 3; ++i) {
    failing_rows r = {rig_samples[0], 0, at[i], 0};
    /* a failed step reports a loss of 0, never a partial one: the sentinel must be replaced */
    float loss = -1.0f;
    const int t = tt_train_step_rows(failing_read_row, &r, rig_labels[0], &loss);
    print_failed("train", at[i], t, &r, loss == 0.0f);
    failing_rows p = {rig_samples[0], 0, at[i], 0};
    memset(scores, 0x5A, sizeof scores);
    const int s = tt_predict_rows(failing_read_row, &p, scores);
    int untouched = 1;
    for (int32_t j = 0; j < TT_MODEL_CLASSES; ++j) untouched &= scores[j] == 0x5A;
    print_failed("predict", at[i], s, &p, untouched);
  }
  rig_print_regions();
  tt_rig_print("TT phase trained\n");
  if (status == TT_MODEL_OK) status = rig_train(0, RIG_STEPS);
  if (status == TT_MODEL_OK) status = rig_predict();
  rig_print_regions();
  tt_rig_print("TT fused whole ");
  rig_print_u64(fused[0]);
  tt_rig_print(" partial ");
  rig_print_u64(fused[1]);
  tt_rig_print("\nTT stack ");
  rig_print_u64(tt_rig_stack_high_water());
  tt_rig_print("\nTT done\n");
  return status;
}
