/* benchmarks/tflm_rig.py's program for the Cortex-M7 rig: the example TFLM app
 * (examples/tflm_app/trainer.cc, included whole so that its interpreter and arena are in
 * reach) trains RIG_STEPS steps on the samples of rig_samples.h and runs one inference, each
 * timed in SysTick ticks (40 instructions each under `qemu -icount shift=0`), then prints how
 * TFLM's arena is used, where each trained tensor is and its CRC-32, and the stack's
 * high-water mark. One "TT ..." line per fact; the host
 * parses them.
 *
 * The harness's own code and samples go to .rig sections, outside the flash the app is
 * measured by (benchmarks/tflm_rig.ld). */
#include "trainer.cc"

#include "rig_samples.h"
#include "tensorflow/lite/micro/arena_allocator/single_arena_buffer_allocator.h"
#include "tensorflow/lite/micro/cortex_m_generic/debug_log_callback.h"
#include "tensorflow/lite/micro/memory_helpers.h"

#define RIG __attribute__((section(".rig.text"), noinline))
#define RIG_PRINT_FN static RIG
#include "rig_print.h"

namespace {

RIG void Field(const char *name, uint64_t value) {
  tt_rig_print(" ");
  tt_rig_print(name);
  tt_rig_print(" ");
  rig_print_u64(value);
}

/* CRC-32 as zlib.crc32, bit by bit: the harness's own (the kernels' tt_crc32 would put code
 * in the app's flash that the app does not use here). */
RIG uint32_t Crc32(const void *data, uint32_t bytes) {
  const uint8_t *p = static_cast<const uint8_t *>(data);
  uint32_t crc = 0xFFFFFFFFu;
  for (uint32_t i = 0; i < bytes; ++i) {
    crc ^= p[i];
    for (int b = 0; b < 8; ++b) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

/* TFLM's messages (MicroPrintf) go to semihosting too. */
RIG void Log(const char *text) { tt_rig_print(text); }

/* MicroInterpreter(model, resolver, arena, size) builds its SingleArenaBufferAllocator as
 * the first allocation at the top of the 16-byte aligned arena (MicroAllocator::Create,
 * SingleArenaBufferAllocator::Create); that object knows the head (non-persistent) and the
 * tail (persistent) apart, which arena_used_bytes() adds up. */
RIG const tflite::SingleArenaBufferAllocator *ArenaAllocator() {
  uint8_t *end = g_arena + sizeof g_arena;
  uint8_t *at = tflite::AlignPointerDown(end - sizeof(tflite::SingleArenaBufferAllocator),
                                         alignof(tflite::SingleArenaBufferAllocator));
  return reinterpret_cast<const tflite::SingleArenaBufferAllocator *>(at);
}

}  // namespace

/* What a C++ start-up (crtbegin, not linked: -nostartfiles) would define: the handle that
 * function-local statics with destructors (trainer.cc's interpreter) register under. */
void *__dso_handle = nullptr;

extern "C" {

/* newlib's heap (malloc; its printf family may ask for it): the harness's own, so that what
 * it takes is known. From the end of .bss upwards, into the painted stack area. */
extern uint8_t _ebss;
static uint32_t heap_used;
RIG void *_sbrk(ptrdiff_t increment) {
  uint8_t *top = &_ebss + heap_used;
  heap_used += static_cast<uint32_t>(increment);
  return top;
}
}

RIG int main(void) {
  RegisterDebugLogCallback(Log);
  tt_rig_ticks64_start();
  uint64_t t0 = tt_rig_ticks64();
  int status = tt_trainer_begin();
  uint64_t t1 = tt_rig_ticks64();
  tt_rig_print("TT begin");
  Field("status", static_cast<uint64_t>(-status));
  Field("ticks", t1 - t0);
  tt_rig_print("\n");
  if (status != 0) return 10 - status;

  const tflite::SingleArenaBufferAllocator *a = ArenaAllocator();
  tt_rig_print("TT arena");
  Field("size", sizeof g_arena);
  Field("used", g_interpreter->arena_used_bytes());
  Field("head", a->GetNonPersistentUsedBytes());
  Field("tail", a->GetPersistentUsedBytes());
  tt_rig_print("\n");
  for (int32_t i = 0; i < RIG_STEPS; ++i) {
    float loss = 0.0f;
    t0 = tt_rig_ticks64();
    status = tt_trainer_step(rig_samples[i], rig_labels[i], &loss);
    t1 = tt_rig_ticks64();
    tt_rig_print("TT step");
    Field("index", static_cast<uint64_t>(i));
    Field("status", static_cast<uint64_t>(-status));
    Field("ticks", t1 - t0);
    tt_rig_print(" loss ");
    rig_print_hex(&loss, sizeof loss);
    tt_rig_print("\n");
    if (status != 0) return 20 - status;
  }

  static int8_t scores[TT_MODEL_CLASSES];
  t0 = tt_rig_ticks64();
  status = tt_trainer_predict(rig_samples[0], scores);
  t1 = tt_rig_ticks64();
  tt_rig_print("TT predict");
  Field("status", static_cast<uint64_t>(-status));
  Field("ticks", t1 - t0);
  tt_rig_print(" scores ");
  rig_print_hex(scores, sizeof scores);
  tt_rig_print("\n");
  if (status != 0) return 30 - status;

  /* where each trained tensor is in the arena, and what training made of it */
  for (int32_t k = 0; k < g_trained.count && k < g_trained.capacity; ++k) {
    const tflite_train::TrainedTensor &t = g_entries[k];
    tt_rig_print("TT trained");
    Field("tensor", static_cast<uint64_t>(t.tensor));
    Field("bytes", static_cast<uint64_t>(t.bytes));
    Field("from_end", static_cast<uint64_t>(g_arena + sizeof g_arena -
                                            static_cast<uint8_t *>(t.data)));
    Field("crc", Crc32(t.data, static_cast<uint32_t>(t.bytes)));
    tt_rig_print("\n");
  }
  if (g_trained.count > g_trained.capacity) return 40;

  tt_rig_print("TT stack");
  Field("high_water", tt_rig_stack_high_water());
  Field("heap", heap_used);
  tt_rig_print("\nTT done\n");
  return 0;
}
