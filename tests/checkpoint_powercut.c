/* Power cuts during tt_checkpoint_save, on a simulated flash: built for the host and for
 * the Cortex-M7 rig from this one file (tests/test_checkpoint.py generates the data header
 * from real training states and compiles both).
 *
 * The flash: erase sets bytes to 0xFF, programming can only clear bits (new = old & data),
 * both proceed one byte at a time. A power cut can fall before or after any byte operation
 * (so before or after any page, and inside one: a torn page), and a byte being programmed
 * can be torn itself (some of its bits cleared, not all). Restore only reads, so the flash
 * a cut leaves behind is the flash at that moment: at each selected position the
 * simulator runs, from inside the erase or program in progress, what the device would do
 * at the next boot (tt_checkpoint_restore into fresh RAM, its own page buffer) and checks
 * that it yields the previous checkpoint or the new one, bit for bit, and never an error
 * while a valid slot exists; once it yields the new one, it must keep doing so.
 *
 * Sweeps: (1) a first save into erased flash, where restore may also answer "empty" until
 * the save completes; then, with A holding an older checkpoint and B the previous one,
 * (2) a save, which goes to A, and (3) the next one, which goes to B.
 */
#include <stdint.h>
#include <string.h>

#include "tt_checkpoint.h"
#include "powercut_data.h"   /* CK_*: the regions, four states S0..S3, page and slot size */

#ifdef TT_RIG
void tt_rig_print(const char *text);
static void out(const char *text) { tt_rig_print(text); }
#else
#include <stdio.h>
static void out(const char *text) { fputs(text, stdout); }
#endif

static void out_u32(uint32_t v) {
  char text[12];
  int i = 11;
  text[i] = '\0';
  do {
    text[--i] = (char)('0' + v % 10u);
    v /= 10u;
  } while (v != 0);
  out(text + i);
}

/* ---- the simulated flash --------------------------------------------------------------- */

static uint8_t g_flash[2 * CK_SLOT_BYTES];

typedef struct {
  uint32_t position;        /* byte operations so far in this sweep */
  uint32_t checked, torn;   /* cut positions checked, of which torn bytes */
  uint32_t previous, fresh, empty;   /* what restore gave */
  uint32_t failures;
  int new_seen;             /* restore has given the new checkpoint */
  int allow_empty;          /* sweep (3): nothing valid before the save */
  const uint8_t *previous_state, *new_state;
  uint32_t previous_seq, new_seq;
} sweep;

static sweep g_sweep;
static int g_sweeping;

static void check_cut(int torn);

/* Which positions a sweep checks: with stride 1 every one; else every stride-th, every
 * byte of the slot's first page (the header) and last page, and the first and last byte
 * of every page (ck_stride in the data header gives each sweep's stride). */
static uint32_t g_stride;

static int selected(uint32_t slot_byte) {
  const uint32_t page = slot_byte % CK_PAGE_BYTES;
  return g_sweep.position % g_stride == 0 || slot_byte < CK_PAGE_BYTES ||
         slot_byte >= CK_BLOB_PAGES * CK_PAGE_BYTES - CK_PAGE_BYTES || page == 0 ||
         page == CK_PAGE_BYTES - 1;
}

static int flash_erase(void *ctx, uint32_t offset, uint32_t bytes) {
  (void)ctx;
  if (offset + bytes > sizeof g_flash) return -1;
  for (uint32_t i = 0; i < bytes; ++i) {
    g_flash[offset + i] = 0xFF;
    ++g_sweep.position;
    if (g_sweeping && selected((offset + i) % CK_SLOT_BYTES)) check_cut(0);
  }
  return 0;
}

static int flash_program(void *ctx, uint32_t offset, const uint8_t *data, uint32_t bytes) {
  (void)ctx;
  if (offset + bytes > sizeof g_flash || bytes != CK_PAGE_BYTES || offset % CK_PAGE_BYTES)
    return -1;
  for (uint32_t i = 0; i < bytes; ++i) {
    const uint8_t before = g_flash[offset + i], after = (uint8_t)(before & data[i]);
    const int sel = g_sweeping && selected((offset + i) % CK_SLOT_BYTES);
    /* torn: the high half of the byte's cleared bits made it, the low half did not */
    const uint8_t torn = (uint8_t)(before & (data[i] | 0x0F));
    if (sel && torn != before && torn != after) {
      g_flash[offset + i] = torn;
      check_cut(1);
    }
    g_flash[offset + i] = after;
    ++g_sweep.position;
    if (sel) check_cut(0);
  }
  return 0;
}

static int flash_read(void *ctx, uint32_t offset, uint8_t *data, uint32_t bytes) {
  (void)ctx;
  if (offset + bytes > sizeof g_flash) return -1;
  memcpy(data, g_flash + offset, bytes);
  return 0;
}

/* ---- regions: the live state save reads, and the fresh RAM a reboot restores into ------ */

static uint32_t g_live[CK_STATE_BYTES / 4], g_booted[CK_STATE_BYTES / 4];
static tt_checkpoint_region g_live_regions[CK_COUNT], g_boot_regions[CK_COUNT];
static uint8_t g_save_page[CK_PAGE_BYTES], g_boot_page[CK_PAGE_BYTES];

static const tt_flash g_save_flash = {flash_erase, flash_program, flash_read, 0,
                                      {0, CK_SLOT_BYTES}, CK_SLOT_BYTES, CK_PAGE_BYTES,
                                      g_save_page};
static const tt_flash g_boot_flash = {flash_erase, flash_program, flash_read, 0,
                                      {0, CK_SLOT_BYTES}, CK_SLOT_BYTES, CK_PAGE_BYTES,
                                      g_boot_page};

static void setup_regions(void) {
  uint32_t pos = 0;
  for (int i = 0; i < CK_COUNT; ++i) {
    g_live_regions[i].kind = ck_kind[i];
    g_live_regions[i].id = ck_id[i];
    g_live_regions[i].bytes = ck_bytes[i];
    g_live_regions[i].data = (uint8_t *)g_live + pos;
    g_boot_regions[i] = g_live_regions[i];
    g_boot_regions[i].data = (uint8_t *)g_booted + pos;
    pos += (ck_bytes[i] + 3u) & ~3u;
  }
}

static void fail(const char *what) {
  out("FAILED at position ");
  out_u32(g_sweep.position);
  out(": ");
  out(what);
  out("\n");
  ++g_sweep.failures;
}

/* The restored regions hold `state`, bit for bit (the padding between them is not part of
 * a checkpoint and keeps its fill). */
static int same(const uint8_t *state) {
  for (int i = 0; i < CK_COUNT; ++i) {
    const uint8_t *got = (const uint8_t *)g_boot_regions[i].data;
    if (memcmp(got, state + (got - (const uint8_t *)g_booted), ck_bytes[i]) != 0) return 0;
  }
  return 1;
}

/* The next boot after a cut here. */
static void check_cut(int torn) {
  uint32_t seq = 0;
  memset(g_booted, 0xA5, sizeof g_booted);
  const int status = tt_checkpoint_restore(&g_boot_flash, CK_MODEL_ID, g_boot_regions,
                                           CK_COUNT, &seq);
  ++g_sweep.checked;
  g_sweep.torn += (uint32_t)torn;
  if (status == TT_CHECKPOINT_EMPTY && g_sweep.allow_empty && !g_sweep.new_seen) {
    ++g_sweep.empty;
    return;
  }
  if (status != TT_CHECKPOINT_OK) {
    fail("restore failed while a valid slot exists");
    return;
  }
  if (seq == g_sweep.new_seq && same(g_sweep.new_state)) {
    ++g_sweep.fresh;
    g_sweep.new_seen = 1;
  } else if (!g_sweep.new_seen && g_sweep.previous_state != 0 &&
             seq == g_sweep.previous_seq &&
             same(g_sweep.previous_state)) {
    ++g_sweep.previous;
  } else {
    fail("restore gave neither the previous nor the new checkpoint");
  }
}

/* Saves `state` without cuts (to set the flash up). */
static int save(const uint8_t *state, uint32_t *seq) {
  memcpy(g_live, state, CK_STATE_BYTES);
  return tt_checkpoint_save(&g_save_flash, CK_MODEL_ID, g_live_regions, CK_COUNT, seq);
}

static uint32_t run_sweep(const char *name, uint32_t stride, const uint8_t *previous,
                          uint32_t previous_seq, const uint8_t *next, uint32_t next_seq) {
  memset(&g_sweep, 0, sizeof g_sweep);
  g_stride = stride;
  g_sweep.previous_state = previous;
  g_sweep.previous_seq = previous_seq;
  g_sweep.new_state = next;
  g_sweep.new_seq = next_seq;
  g_sweep.allow_empty = previous == 0;
  check_cut(0);                                 /* a cut before the save starts */
  memcpy(g_live, next, CK_STATE_BYTES);
  uint32_t seq = 0;
  g_sweeping = 1;
  const int status = tt_checkpoint_save(&g_save_flash, CK_MODEL_ID, g_live_regions, CK_COUNT,
                                        &seq);
  g_sweeping = 0;
  if (status != TT_CHECKPOINT_OK || seq != next_seq) fail("the save itself failed");
  if (!g_sweep.new_seen) fail("restore never gave the new checkpoint");
  out(name);
  out(": stride ");
  out_u32(stride);
  out(" byte operations ");
  out_u32(g_sweep.position);
  out(" cuts checked ");
  out_u32(g_sweep.checked);
  out(" torn bytes ");
  out_u32(g_sweep.torn);
  out(" gave previous ");
  out_u32(g_sweep.previous);
  out(" new ");
  out_u32(g_sweep.fresh);
  out(" empty ");
  out_u32(g_sweep.empty);
  out("\n");
  return g_sweep.failures;
}

int main(void) {
  uint32_t failures = 0, seq = 0;
  setup_regions();
  memset(g_flash, 0xFF, sizeof g_flash);
  failures += run_sweep("sweep 1 (first save, erased flash)", ck_stride[0], 0, 0, ck_state[0], 1);
  if (save(ck_state[1], &seq) != TT_CHECKPOINT_OK || seq != 2) ++failures;  /* into B */
  /* now A = S0 (seq 1), B = S1 (seq 2): the next save goes to A */
  failures += run_sweep("sweep 2 (into slot A, the older)", ck_stride[1], ck_state[1], 2, ck_state[2], 3);
  failures += run_sweep("sweep 3 (into slot B, the older)", ck_stride[2], ck_state[2], 3, ck_state[3], 4);
  out(failures ? "FAIL\n" : "PASS\n");
  return failures ? 1 : 0;
}
