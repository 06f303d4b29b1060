/* The generated program on the Cortex-M7 rig (start-up: micro_kernels/targets/mps2_an500):
 * tt_model_init, RIG_STEPS training steps on the samples of rig_data.h, one inference, each
 * timed in SysTick ticks (40 instructions each under `qemu -icount shift=0`), then a CRC-32
 * of every checkpoint region and the stack's high-water mark. The host
 * (tflite_train/codegen/rig.py) reads the lines it prints (rig_lines.h). */
#include <stdint.h>

#include "rig_lines.h"

int main(void) {
  tt_rig_ticks64_start();
  int status = tt_model_init();
  if (status == TT_MODEL_OK) status = rig_train(0, RIG_STEPS);
  if (status == TT_MODEL_OK) status = rig_predict();
  rig_print_regions();
  tt_rig_print("TT stack ");
  rig_print_u64(tt_rig_stack_high_water());
  tt_rig_print("\nTT done\n");
  return status;
}
