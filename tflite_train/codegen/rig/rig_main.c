/* The generated program on the Cortex-M7 rig (start-up: micro_kernels/targets/mps2_an500):
 * tt_model_init, RIG_STEPS training steps on the samples of rig_data.h, one inference, each
 * timed in SysTick ticks (40 instructions each under `qemu -icount shift=0`), then a CRC-32
 * of every checkpoint region and the stack's high-water mark. The host
 * (tflite_train/codegen/rig.py) reads the lines it prints (rig_lines.h). */
#include <stdint.h>

#include "rig_lines.h"

#ifdef TT_PROFILE_HOOK
/* The per-operator profile (a build with -DTT_PROFILE_HOOK=tt_rig_profile): the ticks since
 * the previous hook call are operator k's; "TT profile" lines give each operator's ticks
 * summed over the training steps, then over the inference. */
#define RIG_PROFILE_OPS 2048
static uint32_t rig_profile_ticks[RIG_PROFILE_OPS];
static uint64_t rig_profile_last;

void tt_rig_profile(int32_t op) {
  const uint64_t now = tt_rig_ticks64();
  if (op >= 0 && op < RIG_PROFILE_OPS)
    rig_profile_ticks[op] += (uint32_t)(now - rig_profile_last);
  /* the hook's own instructions go to the next operator: taken after it returns */
  rig_profile_last = tt_rig_ticks64();
}

static void rig_print_profile(const char *what) {
  for (int32_t k = 0; k < RIG_PROFILE_OPS; ++k) {
    if (!rig_profile_ticks[k]) continue;
    tt_rig_print("TT profile ");
    tt_rig_print(what);
    tt_rig_print(" op ");
    rig_print_u64((uint64_t)k);
    tt_rig_print(" ticks ");
    rig_print_u64(rig_profile_ticks[k]);
    tt_rig_print("\n");
    rig_profile_ticks[k] = 0;
  }
}
#define RIG_PROFILE_PRINT(what) rig_print_profile(what)
#else
#define RIG_PROFILE_PRINT(what) ((void)0)
#endif

int main(void) {
  tt_rig_ticks64_start();
  int status = tt_model_init();
  if (status == TT_MODEL_OK) status = rig_train(0, RIG_STEPS);
  RIG_PROFILE_PRINT("step");
  if (status == TT_MODEL_OK) status = rig_predict();
  RIG_PROFILE_PRINT("predict");
  rig_print_regions();
  tt_rig_print("TT stack ");
  rig_print_u64(tt_rig_stack_high_water());
  tt_rig_print("\nTT done\n");
  return status;
}
