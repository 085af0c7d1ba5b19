/* libFuzzer target for a bundle's create and run: the input bytes are a weights blob. Every input
 * either is refused by <model>_create with a known error code, or creates a context whose run
 * succeeds; anything else (a crash, an ASan/UBSan report, another code) aborts. An input whose
 * stored checksum is wrong is also tried with the checksum fixed, so mutations of the tensor table
 * and data get past the checksum and reach the remaining checks and run().
 * LLVMFuzzerInitialize first checks that the real blob ($FUZZ_REAL_WEIGHTS) creates and runs.
 * Built against a bundle with -DMODEL=name -DMODEL_UPPER=NAME -DMODEL_H='"name.h"'. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "foldc_runtime.h"
#include "harness.h"

static float input[SIZE(_INPUT_SIZE)];
static float output[SIZE(_OUTPUT_SIZE)];

/* create on the blob (in 64-byte aligned memory of exactly its size, so ASan sees any read past
 * it), then run once if create accepted it. */
static void try_blob(const uint8_t *data, size_t size) {
  void *blob = NULL;
  model_ctx *ctx = NULL;
  int err;
  if (posix_memalign(&blob, 64, size ? size : 1)) abort();
  memcpy(blob, data, size);
  err = FN(_create_threads)(blob, size, 1, &ctx);
  if (err == 0) {
    if (!ctx || FN(_run)(ctx, input, output) != 0) {
      fprintf(stderr, "run failed: %s\n", FN(_last_error)(ctx));
      abort();
    }
    FN(_destroy)(ctx);
  } else if (ctx || !(err == FOLDC_ERR_WEIGHTS_SIZE || err == FOLDC_ERR_WEIGHTS_MAGIC ||
                      err == FOLDC_ERR_WEIGHTS_MODEL || err == FOLDC_ERR_WEIGHTS_CHECKSUM ||
                      err == FOLDC_ERR_WEIGHTS_RESERVED)) {
    fprintf(stderr, "create returned %d (%s)\n", err, FN(_strerror)(err));
    abort();
  }
  free(blob);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  const char *path = getenv("FUZZ_REAL_WEIGHTS");
  unsigned char *real;
  size_t len;
  model_ctx *ctx;
  int i;
  (void)argc;
  (void)argv;
  for (i = 0; i < SIZE(_INPUT_SIZE); i++) input[i] = (float)(i % 17) * 0.125f - 1.0f;
  if (!path || !(real = read_weights(path, &len))) {
    fprintf(stderr, "FUZZ_REAL_WEIGHTS must name the bundle's weights\n");
    abort();
  }
  if (FN(_create_threads)(real, len, 1, &ctx) != 0 || FN(_run)(ctx, input, output) != 0) {
    fprintf(stderr, "the real weights blob does not create and run\n");
    abort();
  }
  FN(_destroy)(ctx);
  free(real);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  try_blob(data, size);
  if (size >= FOLDC_WEIGHTS_HEADER_BYTES && size % 8 == 0) {
    uint64_t sum = foldc_checksum(data + FOLDC_WEIGHTS_HEADER_BYTES, size - FOLDC_WEIGHTS_HEADER_BYTES);
    if (sum != foldc_read_u64(data + 32)) {
      uint8_t *fixed = (uint8_t *)malloc(size);
      int i;
      if (!fixed) abort();
      memcpy(fixed, data, size);
      for (i = 0; i < 8; i++) fixed[32 + i] = (uint8_t)(sum >> (8 * i));
      try_blob(fixed, size);
      free(fixed);
    }
  }
  return 0;
}
