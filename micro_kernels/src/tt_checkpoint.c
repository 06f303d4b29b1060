/* Power-safe training checkpoints: see tt_checkpoint.h for the protocol and the blob. */
#include "tt_checkpoint.h"

#include <stddef.h>
#include <string.h>

/* CRC-32 of each byte value (reflected polynomial 0xEDB88320): 1 KB of flash buys a table
 * lookup per byte, which restore spends on every byte of both slots at each boot. */
static const uint32_t kCrcTable[256] = {
    0x00000000u, 0x77073096u, 0xee0e612cu, 0x990951bau, 0x076dc419u, 0x706af48fu,
    0xe963a535u, 0x9e6495a3u, 0x0edb8832u, 0x79dcb8a4u, 0xe0d5e91eu, 0x97d2d988u,
    0x09b64c2bu, 0x7eb17cbdu, 0xe7b82d07u, 0x90bf1d91u, 0x1db71064u, 0x6ab020f2u,
    0xf3b97148u, 0x84be41deu, 0x1adad47du, 0x6ddde4ebu, 0xf4d4b551u, 0x83d385c7u,
    0x136c9856u, 0x646ba8c0u, 0xfd62f97au, 0x8a65c9ecu, 0x14015c4fu, 0x63066cd9u,
    0xfa0f3d63u, 0x8d080df5u, 0x3b6e20c8u, 0x4c69105eu, 0xd56041e4u, 0xa2677172u,
    0x3c03e4d1u, 0x4b04d447u, 0xd20d85fdu, 0xa50ab56bu, 0x35b5a8fau, 0x42b2986cu,
    0xdbbbc9d6u, 0xacbcf940u, 0x32d86ce3u, 0x45df5c75u, 0xdcd60dcfu, 0xabd13d59u,
    0x26d930acu, 0x51de003au, 0xc8d75180u, 0xbfd06116u, 0x21b4f4b5u, 0x56b3c423u,
    0xcfba9599u, 0xb8bda50fu, 0x2802b89eu, 0x5f058808u, 0xc60cd9b2u, 0xb10be924u,
    0x2f6f7c87u, 0x58684c11u, 0xc1611dabu, 0xb6662d3du, 0x76dc4190u, 0x01db7106u,
    0x98d220bcu, 0xefd5102au, 0x71b18589u, 0x06b6b51fu, 0x9fbfe4a5u, 0xe8b8d433u,
    0x7807c9a2u, 0x0f00f934u, 0x9609a88eu, 0xe10e9818u, 0x7f6a0dbbu, 0x086d3d2du,
    0x91646c97u, 0xe6635c01u, 0x6b6b51f4u, 0x1c6c6162u, 0x856530d8u, 0xf262004eu,
    0x6c0695edu, 0x1b01a57bu, 0x8208f4c1u, 0xf50fc457u, 0x65b0d9c6u, 0x12b7e950u,
    0x8bbeb8eau, 0xfcb9887cu, 0x62dd1ddfu, 0x15da2d49u, 0x8cd37cf3u, 0xfbd44c65u,
    0x4db26158u, 0x3ab551ceu, 0xa3bc0074u, 0xd4bb30e2u, 0x4adfa541u, 0x3dd895d7u,
    0xa4d1c46du, 0xd3d6f4fbu, 0x4369e96au, 0x346ed9fcu, 0xad678846u, 0xda60b8d0u,
    0x44042d73u, 0x33031de5u, 0xaa0a4c5fu, 0xdd0d7cc9u, 0x5005713cu, 0x270241aau,
    0xbe0b1010u, 0xc90c2086u, 0x5768b525u, 0x206f85b3u, 0xb966d409u, 0xce61e49fu,
    0x5edef90eu, 0x29d9c998u, 0xb0d09822u, 0xc7d7a8b4u, 0x59b33d17u, 0x2eb40d81u,
    0xb7bd5c3bu, 0xc0ba6cadu, 0xedb88320u, 0x9abfb3b6u, 0x03b6e20cu, 0x74b1d29au,
    0xead54739u, 0x9dd277afu, 0x04db2615u, 0x73dc1683u, 0xe3630b12u, 0x94643b84u,
    0x0d6d6a3eu, 0x7a6a5aa8u, 0xe40ecf0bu, 0x9309ff9du, 0x0a00ae27u, 0x7d079eb1u,
    0xf00f9344u, 0x8708a3d2u, 0x1e01f268u, 0x6906c2feu, 0xf762575du, 0x806567cbu,
    0x196c3671u, 0x6e6b06e7u, 0xfed41b76u, 0x89d32be0u, 0x10da7a5au, 0x67dd4accu,
    0xf9b9df6fu, 0x8ebeeff9u, 0x17b7be43u, 0x60b08ed5u, 0xd6d6a3e8u, 0xa1d1937eu,
    0x38d8c2c4u, 0x4fdff252u, 0xd1bb67f1u, 0xa6bc5767u, 0x3fb506ddu, 0x48b2364bu,
    0xd80d2bdau, 0xaf0a1b4cu, 0x36034af6u, 0x41047a60u, 0xdf60efc3u, 0xa867df55u,
    0x316e8eefu, 0x4669be79u, 0xcb61b38cu, 0xbc66831au, 0x256fd2a0u, 0x5268e236u,
    0xcc0c7795u, 0xbb0b4703u, 0x220216b9u, 0x5505262fu, 0xc5ba3bbeu, 0xb2bd0b28u,
    0x2bb45a92u, 0x5cb36a04u, 0xc2d7ffa7u, 0xb5d0cf31u, 0x2cd99e8bu, 0x5bdeae1du,
    0x9b64c2b0u, 0xec63f226u, 0x756aa39cu, 0x026d930au, 0x9c0906a9u, 0xeb0e363fu,
    0x72076785u, 0x05005713u, 0x95bf4a82u, 0xe2b87a14u, 0x7bb12baeu, 0x0cb61b38u,
    0x92d28e9bu, 0xe5d5be0du, 0x7cdcefb7u, 0x0bdbdf21u, 0x86d3d2d4u, 0xf1d4e242u,
    0x68ddb3f8u, 0x1fda836eu, 0x81be16cdu, 0xf6b9265bu, 0x6fb077e1u, 0x18b74777u,
    0x88085ae6u, 0xff0f6a70u, 0x66063bcau, 0x11010b5cu, 0x8f659effu, 0xf862ae69u,
    0x616bffd3u, 0x166ccf45u, 0xa00ae278u, 0xd70dd2eeu, 0x4e048354u, 0x3903b3c2u,
    0xa7672661u, 0xd06016f7u, 0x4969474du, 0x3e6e77dbu, 0xaed16a4au, 0xd9d65adcu,
    0x40df0b66u, 0x37d83bf0u, 0xa9bcae53u, 0xdebb9ec5u, 0x47b2cf7fu, 0x30b5ffe9u,
    0xbdbdf21cu, 0xcabac28au, 0x53b39330u, 0x24b4a3a6u, 0xbad03605u, 0xcdd70693u,
    0x54de5729u, 0x23d967bfu, 0xb3667a2eu, 0xc4614ab8u, 0x5d681b02u, 0x2a6f2b94u,
    0xb40bbe37u, 0xc30c8ea1u, 0x5a05df1bu, 0x2d02ef8du,
};

uint32_t tt_crc32(uint32_t crc, const void *data, uint32_t bytes) {
  const uint8_t *p = (const uint8_t *)data;
  crc = ~crc;
  while (bytes-- > 0) crc = kCrcTable[(crc ^ *p++) & 0xFFu] ^ (crc >> 8);
  return ~crc;
}

#define MAX_REGIONS 0xFFFFFF        /* keeps 12 * count far from overflow */
#define MAX_BLOB 0x7FFFFFFFu

static uint32_t pad4(uint32_t n) { return (n + 3u) & ~3u; }

static void put16(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v) {
  put16(p, v);
  put16(p + 2, v >> 16);
}

static uint32_t get16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }

static uint32_t get32(const uint8_t *p) { return get16(p) | get16(p + 2) << 16; }

/* a is a later sequence number than b (serial-number arithmetic: wraps at 2^32) */
static int newer(uint32_t a, uint32_t b) { return (uint32_t)(a - b - 1u) < 0x7FFFFFFFu; }

uint32_t tt_checkpoint_bytes(const tt_checkpoint_region *regions, int32_t count) {
  if (regions == NULL || count < 1 || count > MAX_REGIONS) return 0;
  uint32_t total = TT_CHECKPOINT_HEADER_BYTES + 4u;
  for (int32_t i = 0; i < count; ++i) {
    const tt_checkpoint_region *r = &regions[i];
    if (r->data == NULL || r->bytes > MAX_BLOB - total - 16u) return 0;
    total += TT_CHECKPOINT_REGION_BYTES + pad4(r->bytes);
  }
  return total;
}

static void region_entry(const tt_checkpoint_region *r, uint8_t entry[12]) {
  put32(entry, r->kind);
  put32(entry + 4, (uint32_t)r->id);
  put32(entry + 8, r->bytes);
}

/* ---- the blob as a byte stream generated from the regions (no copy of it in RAM) ----- */

typedef struct {
  uint8_t header[TT_CHECKPOINT_HEADER_BYTES];
  const tt_checkpoint_region *regions;
  int32_t count;
  uint32_t total;
  uint32_t crc;
} blob;

/* The part of the segment [start, start + len) of the stream (its bytes at src, or zeros
 * when src is NULL) that falls in the window [offset, offset + n), copied to the window. */
static void overlap(uint32_t start, uint32_t len, const void *src, uint32_t offset,
                    uint8_t *window, uint32_t n) {
  const uint32_t lo = start > offset ? start : offset;
  const uint32_t end = start + len, window_end = offset + n;
  const uint32_t hi = end < window_end ? end : window_end;
  if (lo >= hi) return;
  if (src != NULL) {
    memcpy(window + (lo - offset), (const uint8_t *)src + (lo - start), hi - lo);
  } else {
    memset(window + (lo - offset), 0, hi - lo);
  }
}

/* window = bytes [offset, offset + n) of the blob */
static void blob_read(const blob *b, uint32_t offset, uint8_t *window, uint32_t n) {
  uint8_t word[TT_CHECKPOINT_REGION_BYTES];
  uint32_t pos = TT_CHECKPOINT_HEADER_BYTES;
  overlap(0, pos, b->header, offset, window, n);
  for (int32_t i = 0; i < b->count; ++i, pos += TT_CHECKPOINT_REGION_BYTES) {
    if (pos + TT_CHECKPOINT_REGION_BYTES <= offset || pos >= offset + n) continue;
    region_entry(&b->regions[i], word);
    overlap(pos, TT_CHECKPOINT_REGION_BYTES, word, offset, window, n);
  }
  for (int32_t i = 0; i < b->count; ++i) {
    const tt_checkpoint_region *r = &b->regions[i];
    if (pos >= offset + n) return;                  /* past the window: nothing more */
    if (pos + pad4(r->bytes) > offset) {
      overlap(pos, r->bytes, r->data, offset, window, n);
      overlap(pos + r->bytes, pad4(r->bytes) - r->bytes, NULL, offset, window, n);
    }
    pos += pad4(r->bytes);
  }
  put32(word, b->crc);
  overlap(pos, 4, word, offset, window, n);
}

static void blob_init(blob *b, uint32_t sequence, uint64_t model_id,
                      const tt_checkpoint_region *regions, int32_t count, uint32_t total) {
  memset(b->header, 0, sizeof b->header);
  put32(b->header, TT_CHECKPOINT_MAGIC);
  put16(b->header + 4, TT_CHECKPOINT_VERSION);
  put16(b->header + 6, TT_CHECKPOINT_HEADER_BYTES);
  put32(b->header + 8, sequence);
  put32(b->header + 12, total);
  put32(b->header + 16, (uint32_t)model_id);
  put32(b->header + 20, (uint32_t)(model_id >> 32));
  put32(b->header + 24, (uint32_t)count);
  b->regions = regions;
  b->count = count;
  b->total = total;
  b->crc = 0;
}

/* ---- reading a slot ------------------------------------------------------------------ */

enum { SLOT_INVALID, SLOT_OTHER, SLOT_OURS, SLOT_FLASH_ERROR };

typedef struct {
  uint32_t sequence;
  uint32_t total;
} slot_info;

/* What slot `s` holds: a checkpoint of this model and these regions (SLOT_OURS), a valid
 * checkpoint of something else (SLOT_OTHER) or nothing valid. */
static int check_slot(const tt_flash *f, int s, uint64_t model_id,
                      const tt_checkpoint_region *regions, int32_t count, slot_info *info) {
  uint8_t header[TT_CHECKPOINT_HEADER_BYTES], word[TT_CHECKPOINT_REGION_BYTES];
  const uint32_t base = f->slot_offset[s];
  if (f->slot_bytes < TT_CHECKPOINT_HEADER_BYTES + 4u) return SLOT_INVALID;
  if (f->read(f->ctx, base, header, sizeof header) != 0) return SLOT_FLASH_ERROR;
  const uint32_t total = get32(header + 12), n = get32(header + 24);
  if (get32(header) != TT_CHECKPOINT_MAGIC || get16(header + 4) != TT_CHECKPOINT_VERSION ||
      get16(header + 6) != TT_CHECKPOINT_HEADER_BYTES || n < 1 || n > MAX_REGIONS ||
      total > f->slot_bytes || total % 4u != 0 ||
      total < TT_CHECKPOINT_HEADER_BYTES + TT_CHECKPOINT_REGION_BYTES * n + 4u)
    return SLOT_INVALID;
  uint32_t crc = 0;
  for (uint32_t pos = 0; pos < total - 4u; pos += f->page_bytes) {
    const uint32_t chunk = total - 4u - pos < f->page_bytes ? total - 4u - pos : f->page_bytes;
    if (f->read(f->ctx, base + pos, f->page, chunk) != 0) return SLOT_FLASH_ERROR;
    crc = tt_crc32(crc, f->page, chunk);
  }
  if (f->read(f->ctx, base + total - 4u, word, 4) != 0) return SLOT_FLASH_ERROR;
  if (get32(word) != crc) return SLOT_INVALID;
  info->sequence = get32(header + 8);
  info->total = total;
  const uint64_t id = (uint64_t)get32(header + 16) | (uint64_t)get32(header + 20) << 32;
  if (id != model_id || n != (uint32_t)count ||
      total != tt_checkpoint_bytes(regions, count))
    return SLOT_OTHER;
  for (int32_t i = 0; i < count; ++i) {
    uint8_t want[TT_CHECKPOINT_REGION_BYTES];
    if (f->read(f->ctx, base + TT_CHECKPOINT_HEADER_BYTES + TT_CHECKPOINT_REGION_BYTES * i,
                word, sizeof word) != 0)
      return SLOT_FLASH_ERROR;
    region_entry(&regions[i], want);
    if (memcmp(word, want, sizeof word) != 0) return SLOT_OTHER;
  }
  return SLOT_OURS;
}

static int flash_ok(const tt_flash *f) {
  if (f == NULL || f->erase == NULL || f->program == NULL || f->read == NULL ||
      f->page == NULL || f->page_bytes == 0 || f->slot_bytes == 0)
    return 0;
  const uint32_t a = f->slot_offset[0], b = f->slot_offset[1];
  const uint32_t gap = a > b ? a - b : b - a;
  return gap >= f->slot_bytes;
}

/* Reads slot s's header: its sequence number, or 0 with *plausible = 0 when it has no
 * checkpoint header (erased, say). */
static int peek(const tt_flash *f, int s, uint32_t *sequence, int *plausible) {
  uint8_t header[TT_CHECKPOINT_HEADER_BYTES];
  *plausible = 0;
  *sequence = 0;
  if (f->slot_bytes < sizeof header) return 0;
  if (f->read(f->ctx, f->slot_offset[s], header, sizeof header) != 0) return -1;
  *plausible = get32(header) == TT_CHECKPOINT_MAGIC;
  *sequence = get32(header + 8);
  return 0;
}

/* The slots: `found` = the slot of the newest checkpoint of ours (-1: none), `valid` = bit
 * s set when slot s holds a valid checkpoint (bits of slots not checked stay clear). The
 * slot whose header claims the later sequence number is checked first; when it is ours,
 * the other cannot be newer and is not read (one slot's CRC at boot, not two). */
static int scan(const tt_flash *f, uint64_t model_id, const tt_checkpoint_region *regions,
                int32_t count, slot_info info[2], int *found, int *valid) {
  uint32_t seq[2];
  int plausible[2];
  *found = -1;
  *valid = 0;
  for (int s = 0; s < 2; ++s) {
    if (peek(f, s, &seq[s], &plausible[s]) != 0) return TT_CHECKPOINT_FLASH_ERROR;
  }
  const int first = plausible[1] && (!plausible[0] || newer(seq[1], seq[0])) ? 1 : 0;
  for (int k = 0; k < 2 && *found < 0; ++k) {
    const int s = k == 0 ? first : 1 - first;
    if (!plausible[s]) continue;
    const int what = check_slot(f, s, model_id, regions, count, &info[s]);
    if (what == SLOT_FLASH_ERROR) return TT_CHECKPOINT_FLASH_ERROR;
    if (what != SLOT_INVALID) *valid |= 1 << s;
    if (what == SLOT_OURS) *found = s;
  }
  if (*found >= 0) return TT_CHECKPOINT_OK;
  return *valid ? TT_CHECKPOINT_OTHER_MODEL : TT_CHECKPOINT_EMPTY;
}

int tt_checkpoint_newest(const tt_flash *flash, uint64_t model_id,
                         const tt_checkpoint_region *regions, int32_t count, int32_t *slot,
                         uint32_t *sequence, uint32_t *bytes) {
  if (!flash_ok(flash) || tt_checkpoint_bytes(regions, count) == 0)
    return TT_CHECKPOINT_BAD_ARGUMENT;
  slot_info info[2];
  int found, valid;
  const int status = scan(flash, model_id, regions, count, info, &found, &valid);
  if (status != TT_CHECKPOINT_OK) return status;
  if (slot != NULL) *slot = found;
  if (sequence != NULL) *sequence = info[found].sequence;
  if (bytes != NULL) *bytes = info[found].total;
  return TT_CHECKPOINT_OK;
}

int tt_checkpoint_restore(const tt_flash *flash, uint64_t model_id,
                          const tt_checkpoint_region *regions, int32_t count,
                          uint32_t *sequence) {
  int32_t slot;
  uint32_t seq, total;
  const int status = tt_checkpoint_newest(flash, model_id, regions, count, &slot, &seq, &total);
  if (status != TT_CHECKPOINT_OK) return status;
  uint32_t pos = flash->slot_offset[slot] + TT_CHECKPOINT_HEADER_BYTES +
                 TT_CHECKPOINT_REGION_BYTES * (uint32_t)count;
  for (int32_t i = 0; i < count; ++i) {
    if (regions[i].bytes > 0 &&
        flash->read(flash->ctx, pos, (uint8_t *)regions[i].data, regions[i].bytes) != 0)
      return TT_CHECKPOINT_FLASH_ERROR;
    pos += pad4(regions[i].bytes);
  }
  if (sequence != NULL) *sequence = seq;
  return TT_CHECKPOINT_OK;
}

/* ---- writing a slot ------------------------------------------------------------------ */

/* Programs page k of the blob; bytes past its end stay erased (0xFF, which programming
 * leaves as it is). */
static int program_page(const tt_flash *f, uint32_t base, const blob *b, uint32_t k) {
  const uint32_t offset = k * f->page_bytes;
  const uint32_t n = b->total - offset < f->page_bytes ? b->total - offset : f->page_bytes;
  memset(f->page + n, 0xFF, f->page_bytes - n);
  blob_read(b, offset, f->page, n);
  return f->program(f->ctx, base + offset, f->page, f->page_bytes);
}

int tt_checkpoint_save(const tt_flash *flash, uint64_t model_id,
                       const tt_checkpoint_region *regions, int32_t count,
                       uint32_t *sequence) {
  const uint32_t total = tt_checkpoint_bytes(regions, count);
  if (!flash_ok(flash) || total == 0) return TT_CHECKPOINT_BAD_ARGUMENT;
  const uint32_t pages = (total + flash->page_bytes - 1u) / flash->page_bytes;
  if (pages > flash->slot_bytes / flash->page_bytes) return TT_CHECKPOINT_BAD_ARGUMENT;
  slot_info info[2];
  int found, valid;
  if (scan(flash, model_id, regions, count, info, &found, &valid) == TT_CHECKPOINT_FLASH_ERROR)
    return TT_CHECKPOINT_FLASH_ERROR;
  /* Never the slot of our newest checkpoint: it is what a power cut falls back to. With
   * none of ours, an invalid slot before one holding another model's checkpoint. */
  const int target = found >= 0 ? 1 - found : (valid & 1) ? 1 : 0;
  const uint32_t seq = found >= 0 ? info[found].sequence + 1u : 1u;
  blob b;
  blob_init(&b, seq, model_id, regions, count, total);
  uint32_t crc = 0;
  for (uint32_t pos = 0; pos < total - 4u; pos += flash->page_bytes) {
    const uint32_t chunk = total - 4u - pos < flash->page_bytes ? total - 4u - pos
                                                                : flash->page_bytes;
    blob_read(&b, pos, flash->page, chunk);
    crc = tt_crc32(crc, flash->page, chunk);
  }
  b.crc = crc;
  const uint32_t base = flash->slot_offset[target];
  if (flash->erase(flash->ctx, base, flash->slot_bytes) != 0) return TT_CHECKPOINT_FLASH_ERROR;
  /* the first page, with the header, last: until it is written the slot reads as erased */
  for (uint32_t k = 1; k <= pages; ++k) {
    if (program_page(flash, base, &b, k % pages) != 0) return TT_CHECKPOINT_FLASH_ERROR;
  }
  const int what = check_slot(flash, target, model_id, regions, count, &info[target]);
  if (what == SLOT_FLASH_ERROR) return TT_CHECKPOINT_FLASH_ERROR;
  if (what != SLOT_OURS || info[target].sequence != seq) return TT_CHECKPOINT_VERIFY_ERROR;
  if (sequence != NULL) *sequence = seq;
  return TT_CHECKPOINT_OK;
}
