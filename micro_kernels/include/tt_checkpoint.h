/* Power-safe training checkpoints in flash: portable C99, no TFLM types, no malloc, no
 * double.
 *
 * A checkpoint is everything training needs to resume exactly, given as regions of RAM
 * (`tt_checkpoint_region`): the trained parameters, the momentum buffers, the batch
 * accumulators and the update ops' random-stream states and step counters (`tflite-train header` lists them for a
 * training model, in the order save and restore expect). It goes into one of two flash
 * slots, A and B, through the app's erase / program / read callbacks:
 *
 *   save:    the slot NOT holding the newest valid checkpoint of this model is erased, the
 *            new checkpoint is programmed page by page (its first page, the one with the
 *            header, last) and read back; the other slot is never touched, so a power cut
 *            at any moment leaves it intact.
 *   restore: both slots are checked (magic, format, model identity, the region table, the
 *            CRC-32 over every byte); the valid one with the newest sequence number is
 *            copied into the regions. Nothing is written to RAM before the CRC holds.
 *
 * Restore into a running model after its first Invoke (TT_INIT copies the initial
 * parameters in on that Invoke and would overwrite restored ones on a later first Invoke);
 * a generated program (`tflite-train codegen`): after tt_model_init().
 *
 * The blob (one slot's content; what `tflite-train export --state blob.bin` reads). All
 * header fields little-endian; region data is the target's memory, little-endian on every
 * Cortex-M and x86 target:
 *
 *   offset  size  field
 *        0     4  magic "TTCK" (0x4B435454)
 *        4     2  format version (1)
 *        6     2  header bytes (32)
 *        8     4  sequence number (newer = larger, compared modulo 2^32)
 *       12     4  total bytes of the blob, this header and the trailing CRC included
 *       16     8  model id: the training model's identity (TT_MODEL_ID of the header,
 *                 the first 8 bytes of the SHA-256 of the .tflite, little-endian)
 *       24     4  region count n
 *       28     4  reserved, 0
 *       32  12*n  region table: per region u32 kind, i32 id, u32 bytes
 *     ...         region data in table order, each padded with zeros to a multiple of 4
 *   total-4    4  CRC-32 (IEEE 802.3, as zlib.crc32) of bytes [0, total - 4)
 *
 * Region kinds (a later training mode adds kinds, never renumbers them):
 *   1 TT_CHECKPOINT_PARAMETER     a trained tensor (int8 weights, int32 biases); id = its
 *                                 tensor index in the training model
 *   2 TT_CHECKPOINT_MOMENTUM      a momentum buffer (float32); id = its tensor index
 *   3 TT_CHECKPOINT_UPDATE_STATE  an update op's tt_update_state (tt_kernels.h): u32
 *                                 xorshift32 state, i32 step counter; id = the tensor
 *                                 index of the parameter the op updates
 *   4 TT_CHECKPOINT_ACCUMULATOR   an update op's batch accumulator (option batch > 1:
 *                                 the float32 gradient sum of the batch so far, shaped
 *                                 like its momentum buffer); id = its tensor index.
 *                                 Saved like a momentum buffer, so a run resumed
 *                                 mid-batch gives the same bits.
 *   5 TT_CHECKPOINT_RESIDUAL      a weight update's rounding residual (int8, the trained
 *                                 region; augment --head-residual, the new head's);
 *                                 id = its tensor index. Blob order (the header's):
 *                                 parameters, momentum buffers, accumulators, residuals,
 *                                 update states, each by id
 */
#ifndef TT_CHECKPOINT_H
#define TT_CHECKPOINT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TT_CHECKPOINT_MAGIC 0x4B435454u     /* "TTCK" */
#define TT_CHECKPOINT_VERSION 1
#define TT_CHECKPOINT_HEADER_BYTES 32
#define TT_CHECKPOINT_REGION_BYTES 12       /* one entry of the region table */

#define TT_CHECKPOINT_PARAMETER 1
#define TT_CHECKPOINT_MOMENTUM 2
#define TT_CHECKPOINT_UPDATE_STATE 3
#define TT_CHECKPOINT_ACCUMULATOR 4
#define TT_CHECKPOINT_RESIDUAL 5

/* Results. */
#define TT_CHECKPOINT_OK 0
#define TT_CHECKPOINT_EMPTY 1         /* restore: no valid checkpoint in either slot */
#define TT_CHECKPOINT_OTHER_MODEL 2   /* restore: valid checkpoints, none of this model */
#define TT_CHECKPOINT_FLASH_ERROR 3   /* a callback failed (save: the old slot is intact) */
#define TT_CHECKPOINT_VERIFY_ERROR 4  /* save: the slot did not read back as written */
#define TT_CHECKPOINT_BAD_ARGUMENT 5  /* geometry, regions or sizes that cannot work */

/* One piece of RAM to save and restore. */
typedef struct {
  uint32_t kind;     /* TT_CHECKPOINT_PARAMETER, _MOMENTUM, _UPDATE_STATE, _ACCUMULATOR or
                      * _RESIDUAL */
  int32_t id;        /* see the kinds above */
  void *data;
  uint32_t bytes;
} tt_checkpoint_region;

/* The app's flash. Offsets are the app's own (byte addresses in its flash, say); each
 * callback returns 0 on success.
 *   erase(ctx, offset, bytes):    set [offset, offset + bytes) to the erased state; called
 *                                 with a whole slot, so slots must cover whole sectors
 *   program(ctx, offset, data, n): program one page: offset is page-aligned within the
 *                                 slot, n = page_bytes
 *   read(ctx, offset, data, n):   any offset and length within a slot
 * `page` is page_bytes of the app's RAM, used to stage pages and to read in chunks. */
typedef struct {
  int (*erase)(void *ctx, uint32_t offset, uint32_t bytes);
  int (*program)(void *ctx, uint32_t offset, const uint8_t *data, uint32_t bytes);
  int (*read)(void *ctx, uint32_t offset, uint8_t *data, uint32_t bytes);
  void *ctx;
  uint32_t slot_offset[2];   /* slot A, slot B: must not overlap */
  uint32_t slot_bytes;       /* each slot; >= tt_checkpoint_bytes() rounded up to pages */
  uint32_t page_bytes;       /* program unit, > 0 */
  uint8_t *page;             /* page_bytes of RAM */
} tt_flash;

/* Bytes of the blob for these regions (header, table, padded data, CRC); 0 if they
 * cannot form one (count < 1, a NULL region, a size past 2^31). */
uint32_t tt_checkpoint_bytes(const tt_checkpoint_region *regions, int32_t count);

/* Saves the regions as the newest checkpoint of `model_id`. `sequence` (may be NULL)
 * receives its sequence number. TT_CHECKPOINT_OK, _FLASH_ERROR, _VERIFY_ERROR or
 * _BAD_ARGUMENT; whatever the result, the previous newest checkpoint stays restorable. */
int tt_checkpoint_save(const tt_flash *flash, uint64_t model_id,
                       const tt_checkpoint_region *regions, int32_t count, uint32_t *sequence);

/* Copies the newest valid checkpoint of `model_id` whose region table equals `regions`
 * (kinds, ids and sizes) into the regions. `sequence` (may be NULL) receives its sequence
 * number. TT_CHECKPOINT_OK; _EMPTY or _OTHER_MODEL (the regions are untouched);
 * _BAD_ARGUMENT; _FLASH_ERROR (a read failed: while copying, the regions may be partly
 * written). */
int tt_checkpoint_restore(const tt_flash *flash, uint64_t model_id,
                          const tt_checkpoint_region *regions, int32_t count,
                          uint32_t *sequence);

/* Which slot (0 = A, 1 = B) holds the newest valid checkpoint of `model_id` for these
 * regions, its sequence number and its size in bytes: to send it to the host, say
 * (`tflite-train export --state` reads those bytes). Results as tt_checkpoint_restore;
 * nothing is written. */
int tt_checkpoint_newest(const tt_flash *flash, uint64_t model_id,
                         const tt_checkpoint_region *regions, int32_t count, int32_t *slot,
                         uint32_t *sequence, uint32_t *bytes);

/* CRC-32 (IEEE 802.3, reflected, as zlib.crc32): crc of the bytes so far (0 to start). */
uint32_t tt_crc32(uint32_t crc, const void *data, uint32_t bytes);

#ifdef __cplusplus
}
#endif

#endif /* TT_CHECKPOINT_H */
