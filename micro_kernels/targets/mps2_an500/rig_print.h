/* Printing on the Cortex-M7 rig (QEMU's mps2-an500, semihosting): the functions startup.c
 * provides, and numbers printed the way the host's parsers read them (decimal; bytes as hex,
 * sent in 64-character pieces so that no line needs a large buffer). Shared by the generated
 * program's harness (tflite_train/codegen/rig/rig_lines.h) and TFLM's
 * (benchmarks/tflm_rig_main.cc).
 *
 * RIG_PRINT_FN is how the two helpers are declared: static inline by default; TFLM's harness
 * puts them in its own section, outside the flash the app is measured by. */
#ifndef TT_RIG_PRINT_H
#define TT_RIG_PRINT_H

#include <stdint.h>

#ifndef RIG_PRINT_FN
#define RIG_PRINT_FN static inline
#endif

#ifdef __cplusplus
extern "C" {
#endif
void tt_rig_print(const char *text);
void tt_rig_ticks64_start(void);
uint64_t tt_rig_ticks64(void);
uint32_t tt_rig_stack_high_water(void);
#ifdef __cplusplus
}
#endif

RIG_PRINT_FN void rig_print_u64(uint64_t v) {
  char buf[24];
  int i = 23;
  buf[i] = 0;
  do {
    buf[--i] = (char)('0' + (int)(v % 10u));
    v /= 10u;
  } while (v);
  tt_rig_print(buf + i);
}

RIG_PRINT_FN void rig_print_hex(const void *data, uint32_t bytes) {
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

#endif /* TT_RIG_PRINT_H */
