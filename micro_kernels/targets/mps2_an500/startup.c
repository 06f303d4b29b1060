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

/* SysTick as an instruction counter: under `qemu -icount shift=0` one instruction is 1 ns
 * and SysTick (CLKSOURCE = CPU clock, 25 MHz) ticks every 40 instructions. It counts down
 * from 2^24 - 1; an interval must stay below 2^24 ticks (671 M instructions). */
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)

void tt_rig_ticks_start(void) {
  SYST_RVR = 0x00FFFFFFu;
  SYST_CVR = 0;
  SYST_CSR = 0x5u;                                   /* enable, CPU clock, no interrupt */
}

uint32_t tt_rig_ticks(void) { return SYST_CVR; }

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
