/* Minimal Cortex-M7 start-up for QEMU's mps2-an500 (see ../shared/MCU_RIG.md): vector table
 * at address 0, FPU enabled before any float instruction, .data copied, .bss zeroed, the
 * free stack painted (tt_rig_stack_high_water), main's return value handed to QEMU as its
 * exit status through semihosting; SysTick as an instruction counter. */
#include <stdint.h>

extern uint32_t _estack, _sidata, _sdata, _edata, _sbss, _ebss;
int main(void);

static int semihost(int op, const void *arg) {
  register int r0 __asm__("r0") = op;
  register const void *r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

#define TT_RIG_PAINT 0xC0DEFACEu

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
  /* paint the free stack, from the end of .bss to a little below this frame */
  uint32_t sp;
  __asm__ volatile("mov %0, sp" : "=r"(sp));
  for (dst = &_ebss; (uint32_t)dst < sp - 64u; ++dst) *dst = TT_RIG_PAINT;
  tt_rig_exit(main());
}

/* The deepest the stack has been: bytes from its top to the lowest word no longer painted. */
uint32_t tt_rig_stack_high_water(void) {
  const uint32_t *p = &_ebss;
  while (p < &_estack && *p == TT_RIG_PAINT) ++p;
  return (uint32_t)((const uint8_t *)&_estack - (const uint8_t *)p);
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

/* The same counter for intervals of any length (a training step of a 128x128 model passes
 * 2^24 ticks): the SysTick interrupt counts the wraps. */
#define ICSR (*(volatile uint32_t *)0xE000ED04u)
#define ICSR_PENDSTSET (1u << 26)

static volatile uint32_t wraps;

static void SysTick_Handler(void) { ++wraps; }

void tt_rig_ticks64_start(void) {
  SYST_RVR = 0x00FFFFFFu;
  SYST_CVR = 0;
  SYST_CSR = 0x7u;                                   /* enable, CPU clock, interrupt */
  while (SYST_CVR == 0) {                            /* a counter started at 0 may count */
  }                                                  /* one wrap: let it */
  wraps = 0;
}

/* Ticks since tt_rig_ticks64_start; a wrap whose interrupt is still pending counts too. */
uint64_t tt_rig_ticks64(void) {
  uint32_t w, v, pending;
  do {
    w = wraps;
    v = SYST_CVR;
    pending = ICSR & ICSR_PENDSTSET;
  } while (w != wraps);
  if (pending && v > 0x00FFFFFFu / 2) ++w;
  return ((uint64_t)w << 24) + (0x00FFFFFFu - v);
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
    Default_Handler, 0, Default_Handler, SysTick_Handler};
