/* The generated program on the Cortex-M7 rig (start-up: micro_kernels/targets/mps2_an500):
 * tt_model_init, RIG_STEPS training steps on the samples of rig_data.h, one inference, each
 * timed in SysTick ticks (40 instructions each under `qemu -icount shift=0`), then a CRC-32
 * of every checkpoint region and the stack's high-water mark. The host
 * (tflite_train/codegen/rig.py) reads the lines it prints. */
#include <stdint.h>

#include "rig_data.h"
#include "tt_checkpoint.h"
#include "tt_model.h"

void tt_rig_print(const char *text);
void tt_rig_ticks64_start(void);
uint64_t tt_rig_ticks64(void);
uint32_t tt_rig_stack_high_water(void);

static void print_u64(uint64_t v) {
  char buf[24];
  int i = 23;
  buf[i] = 0;
  do {
    buf[--i] = (char)('0' + (int)(v % 10u));
    v /= 10u;
  } while (v);
  tt_rig_print(buf + i);
}

static void print_hex(const void *data, uint32_t bytes) {
  static const char digits[] = "0123456789abcdef";
  const uint8_t *p = (const uint8_t *)data;
  char buf[65];
  uint32_t n = 0;
  for (uint32_t i = 0; i < bytes; ++i) {
    buf[n++] = digits[p[i] >> 4];
    buf[n++] = digits[p[i] & 15];
    if (n == 64 || i + 1 == bytes) {
      buf[n] = 0;
      tt_rig_print(buf);
      n = 0;
    }
  }
}

static int8_t scores[TT_MODEL_CLASSES];

int main(void) {
  tt_rig_ticks64_start();
  int status = tt_model_init();
  for (int32_t i = 0; i < RIG_STEPS && status == TT_MODEL_OK; ++i) {
    float loss = 0.0f;
    const uint64_t t0 = tt_rig_ticks64();
    status = tt_train_step(rig_samples[i % RIG_SAMPLES], rig_labels[i], &loss);
    const uint64_t t1 = tt_rig_ticks64();
    tt_rig_print("TT step ");
    print_u64((uint64_t)i);
    tt_rig_print(" ticks ");
    print_u64(t1 - t0);
    tt_rig_print(" status ");
    print_u64((uint64_t)status);
    tt_rig_print(" loss ");
    print_hex(&loss, sizeof loss);
    tt_rig_print("\n");
  }
  if (status == TT_MODEL_OK) {
    const uint64_t t0 = tt_rig_ticks64();
    status = tt_predict(rig_samples[0], scores);
    const uint64_t t1 = tt_rig_ticks64();
    tt_rig_print("TT predict ticks ");
    print_u64(t1 - t0);
    tt_rig_print(" status ");
    print_u64((uint64_t)status);
    tt_rig_print(" scores ");
    print_hex(scores, sizeof scores);
    tt_rig_print("\n");
  }
  for (int32_t r = 0; r < TT_MODEL_CHECKPOINT_REGIONS; ++r) {
    const tt_checkpoint_region *region = &tt_model_checkpoint[r];
    const uint32_t crc = tt_crc32(0, region->data, region->bytes);
    tt_rig_print("TT region ");
    print_u64((uint64_t)r);
    tt_rig_print(" crc ");
    print_u64(crc);
    tt_rig_print("\n");
  }
  tt_rig_print("TT stack ");
  print_u64(tt_rig_stack_high_water());
  tt_rig_print("\nTT done\n");
  return status;
}
