/* Drives a generated program built under AddressSanitizer and UBSan
 * (tests/test_codegen_sanitize.py): tt_model_init, a training step per sample, an inference of
 * the first sample. Every sample and the scores sit in their own heap block of exactly their
 * size, so a read or write past them is a report too, not only one past tt_arena.
 *
 *   codegen_sanitize_main SAMPLES N [ROWS]
 *
 * SAMPLES: N int8 samples of TT_MODEL_SAMPLE_BYTES, then N int32 labels (host byte order).
 * ROWS (a `codegen --input rows` program): the sample's height; the steps and the inference
 * then go through tt_train_step_rows / tt_predict_rows, a row of the sample per read.
 * Prints each step's loss; exits 1 on a status other than TT_MODEL_OK. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tt_model.h"

#ifdef TT_ROW_SOURCE_H
typedef struct {
    const int8_t *sample;
    size_t row_bytes;
} rows_ctx;

static int read_row(int32_t y, int8_t *row, void *ctx) {
    const rows_ctx *c = (const rows_ctx *)ctx;
    memcpy(row, c->sample + (size_t)y * c->row_bytes, c->row_bytes);
    return 0;
}
#endif

static int fail(const char *what, int status) {
    fprintf(stderr, "%s returned %d\n", what, status);
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s SAMPLES N [ROWS]\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[2]);
    long rows = argc > 3 ? atol(argv[3]) : 0;
    FILE *f = fopen(argv[1], "rb");
    if (f == NULL || n <= 0) {
        fprintf(stderr, "%s: cannot read %d samples\n", argv[1], n);
        return 2;
    }
    int8_t **samples = calloc((size_t)n, sizeof *samples);
    int32_t *labels = calloc((size_t)n, sizeof *labels);
    int8_t *scores = malloc(TT_MODEL_CLASSES);
    for (int i = 0; i < n; ++i) {
        samples[i] = malloc(TT_MODEL_SAMPLE_BYTES);
        if (fread(samples[i], 1, TT_MODEL_SAMPLE_BYTES, f) != TT_MODEL_SAMPLE_BYTES)
            return 2;
    }
    if (fread(labels, sizeof *labels, (size_t)n, f) != (size_t)n)
        return 2;
    fclose(f);

    int status = tt_model_init();
    if (status != TT_MODEL_OK)
        return fail("tt_model_init", status);
    for (int i = 0; i < n; ++i) {
        float loss = 0.0f;
        if (rows > 0) {
#ifdef TT_ROW_SOURCE_H
            rows_ctx ctx = {samples[i], TT_MODEL_SAMPLE_BYTES / (size_t)rows};
            status = tt_train_step_rows(read_row, &ctx, labels[i], &loss);
#else
            return fail("ROWS given to a program without --input rows:", 2);
#endif
        } else {
            status = tt_train_step(samples[i], labels[i], &loss);
        }
        if (status != TT_MODEL_OK)
            return fail("tt_train_step", status);
        printf("loss %.9g\n", (double)loss);
    }
#ifdef TT_ROW_SOURCE_H
    if (rows > 0) {
        rows_ctx ctx = {samples[0], TT_MODEL_SAMPLE_BYTES / (size_t)rows};
        status = tt_predict_rows(read_row, &ctx, scores);
    } else
#endif
        status = tt_predict(samples[0], scores);
    if (status != TT_MODEL_OK)
        return fail("tt_predict", status);
    for (int i = 0; i < n; ++i)
        free(samples[i]);
    free(samples);
    free(labels);
    free(scores);
    return 0;
}
