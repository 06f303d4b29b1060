/* Minimal Cortex-M7 start-up for QEMU's mps2-an500 (see ../shared/MCU_RIG.md): vector table
 * at address 0, FPU enabled before any float instruction, .data copied, .bss zeroed, main's
 * return value handed to QEMU as its exit status through semihosting. */
#include <stdint.h>

extern uint32_t _estack, _sidata, _sdata, _edata, _sbss, _ebss;
int main(void);

static int semihost(int op, const void *arg) {
  register int r0 __asm__("r0") = op;
  register const void *r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

void tt_rig_print(const char *text) { semihost(0x04, text); }       /* SYS_WRITE0 */

void tt_rig_exit(int code) {
  const uint32_t block[2] = {0x20026u, (uint32_t)code};             /* ADP_Stopped_ApplicationExit */
  semihost(0x20, block);                                              /* SYS_EXIT_EXTENDED */
  for (;;) {
  }
}

void Reset_Handler(void) {
  volatile uint32_t *cpacr = (volatile uint32_t *)0xE000ED88u;
  *cpacr |= 0xFu << 20;                                              /* CP10, CP11 full access */
  __asm__ volatile("dsb\n isb");
  uint32_t *src = &_sidata, *dst = &_sdata;
  while (dst < &_edata) *dst++ = *src++;
  for (dst = &_sbss; dst < &_ebss;) *dst++ = 0;
  tt_rig_exit(main());
}

void HardFault_Handler(void) {
  tt_rig_print("HardFault\n");
  tt_rig_exit(99);
}

void Default_Handler(void) { tt_rig_exit(98); }

/* newlib-nano's start-up hooks, unused with -nostartfiles */
void _init(void) {}
void _fini(void) {}

__attribute__((section(".isr_vector"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(&_estack), Reset_Handler, Default_Handler, HardFault_Handler,
    Default_Handler, Default_Handler, Default_Handler, 0, 0, 0, 0, Default_Handler,
    Default_Handler, 0, Default_Handler, Default_Handler};
