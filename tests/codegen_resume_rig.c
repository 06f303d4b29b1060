/* A generated program resumes from a device checkpoint across a real reset, on the
 * Cortex-M7 rig (QEMU mps2-an500): tests/test_checkpoint.py puts this file in place of a
 * generated folder's rig/rig_main.c, with RIG_RESUME_AT defined in front of it, and builds
 * it with the folder's `make rig`.
 *
 * The flash is QEMU's PSRAM at 0x60000000 (erase sets 0xFF, programming clears bits): a
 * system reset (AIRCR.SYSRESETREQ) re-runs the start-up code, which reloads .data and
 * zeroes .bss, but leaves the PSRAM alone, as a board's reset leaves its flash. At power-on
 * the PSRAM is zeros, which is no valid checkpoint.
 *
 * Every boot: tt_model_init, the regions' CRC-32s, tt_checkpoint_restore. With nothing to
 * restore (the first boot): RIG_STEPS straight training steps, an inference, the regions;
 * then tt_model_init, the first RIG_RESUME_AT steps, tt_checkpoint_save, and a reset. After
 * a restore: the remaining steps, an inference, the regions, and the newest slot's bytes in
 * hex for the host to export. Each part starts with a "TT phase" line; its step, predict
 * and region lines are rig_main.c's (rig_lines.h). */
#include <stdint.h>
#include <string.h>

#include "rig_lines.h"

#define RIG_PAGE 256u
#define RIG_SLOT ((TT_MODEL_CHECKPOINT_BYTES + RIG_PAGE - 1u) / RIG_PAGE * RIG_PAGE)
#define RIG_FLASH ((uint8_t *)0x60000000u)

static int flash_erase(void *ctx, uint32_t offset, uint32_t bytes) {
  (void)ctx;
  if (offset + bytes > 2u * RIG_SLOT) return -1;
  memset(RIG_FLASH + offset, 0xFF, bytes);
  return 0;
}

static int flash_program(void *ctx, uint32_t offset, const uint8_t *data, uint32_t bytes) {
  (void)ctx;
  if (offset + bytes > 2u * RIG_SLOT) return -1;
  for (uint32_t i = 0; i < bytes; ++i) RIG_FLASH[offset + i] &= data[i];
  return 0;
}

static int flash_read(void *ctx, uint32_t offset, uint8_t *data, uint32_t bytes) {
  (void)ctx;
  if (offset + bytes > 2u * RIG_SLOT) return -1;
  memcpy(data, RIG_FLASH + offset, bytes);
  return 0;
}

static uint8_t page[RIG_PAGE];
static const tt_flash flash = {flash_erase, flash_program, flash_read, 0, {0, RIG_SLOT},
                               RIG_SLOT, RIG_PAGE, page};

static void print_fields(const char *line, uint64_t ticks, int status, uint32_t value) {
  tt_rig_print(line);
  tt_rig_print(" ticks ");
  rig_print_u64(ticks);
  tt_rig_print(" status ");
  rig_print_u64((uint64_t)status);
  tt_rig_print(" value ");
  rig_print_u64(value);
  tt_rig_print("\n");
}

static void reset(void) {
  __asm__ volatile("dsb" ::: "memory");
  *(volatile uint32_t *)0xE000ED0Cu = 0x05FA0004u;   /* AIRCR: VECTKEY, SYSRESETREQ */
  __asm__ volatile("dsb" ::: "memory");
  for (;;) {
  }
}

int main(void) {
  tt_rig_ticks64_start();
  int status = tt_model_init();
  tt_rig_print("TT phase boot\n");
  rig_print_regions();
  uint32_t sequence = 0;
  uint64_t t0 = tt_rig_ticks64();
  const int restored = tt_checkpoint_restore(&flash, TT_MODEL_ID, tt_model_checkpoint,
                                             TT_MODEL_CHECKPOINT_REGIONS, &sequence);
  uint64_t t1 = tt_rig_ticks64();
  if (restored == TT_CHECKPOINT_EMPTY && status == TT_MODEL_OK) {
    tt_rig_print("TT phase straight\n");
    status = rig_train(0, RIG_STEPS);
    if (status == TT_MODEL_OK) status = rig_predict();
    rig_print_regions();
    tt_rig_print("TT phase first\n");
    if (status == TT_MODEL_OK) status = tt_model_init();
    if (status == TT_MODEL_OK) status = rig_train(0, RIG_RESUME_AT);
    if (status != TT_MODEL_OK) return status;
    t0 = tt_rig_ticks64();
    const int saved = tt_checkpoint_save(&flash, TT_MODEL_ID, tt_model_checkpoint,
                                         TT_MODEL_CHECKPOINT_REGIONS, &sequence);
    t1 = tt_rig_ticks64();
    print_fields("TT save", t1 - t0, saved, sequence);
    if (saved != TT_CHECKPOINT_OK) return 10 + saved;
    reset();
  }
  tt_rig_print("TT phase resumed\n");
  print_fields("TT restore", t1 - t0, restored, sequence);
  if (restored != TT_CHECKPOINT_OK) return 20 + restored;
  if (status == TT_MODEL_OK) status = rig_train(RIG_RESUME_AT, RIG_STEPS);
  if (status == TT_MODEL_OK) status = rig_predict();
  rig_print_regions();
  int32_t slot = -1;
  uint32_t bytes = 0;
  const int newest = tt_checkpoint_newest(&flash, TT_MODEL_ID, tt_model_checkpoint,
                                          TT_MODEL_CHECKPOINT_REGIONS, &slot, &sequence,
                                          &bytes);
  if (newest != TT_CHECKPOINT_OK) return 30 + newest;
  tt_rig_print("TT blob ");
  rig_print_hex(RIG_FLASH + (uint32_t)slot * RIG_SLOT, bytes);
  tt_rig_print("\nTT stack ");
  rig_print_u64(tt_rig_stack_high_water());
  tt_rig_print("\nTT done\n");
  return status;
}
