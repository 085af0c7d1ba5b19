/* A GPU bundle's contexts in one process (gpu_opencl.sh, gpu_cuda.sh). Built against a bundle
 * with -DMODEL=name -DMODEL_UPPER=NAME -DMODEL_H='"name.h"' (harness.h).
 *
 *   gpu_devices gpu WEIGHTS
 *     two GPU contexts at once give the same outputs; each run uploads its input (inputs A, B, A
 *     again: the outputs follow, the third equal to the first bit for bit); after both are destroyed
 *     (the device released) a new GPU context runs again and agrees; a device number other than
 *     FOLDC_DEVICE_CPU / FOLDC_DEVICE_GPU is refused.
 *   gpu_devices fallback WEIGHTS GPU_CODE CPU_CODE
 *     create_on(GPU) returns GPU_CODE without aborting and without a context, then
 *     create_on(CPU) returns CPU_CODE (0: the context runs). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "harness.h"

static float in_a[SIZE(_INPUT_SIZE)], in_b[SIZE(_INPUT_SIZE)];
static float out[4][SIZE(_OUTPUT_SIZE)];

static int fallback(const unsigned char *weights, size_t len, int gpu_code, int cpu_code) {
  model_ctx *ctx = NULL;
  int err = FN(_create_on)(weights, len, FOLDC_DEVICE_GPU, 1, &ctx);
  if (err != gpu_code || ctx) {
    fprintf(stderr, "create_on(GPU): %d (%s), expected %d\n", err, FN(_strerror)(err), gpu_code);
    return 1;
  }
  printf("create_on(GPU): %s\n", FN(_strerror)(err));
  err = FN(_create_on)(weights, len, FOLDC_DEVICE_CPU, 1, &ctx);
  if (err != cpu_code) {
    fprintf(stderr, "create_on(CPU): %d (%s), expected %d\n", err, FN(_strerror)(err), cpu_code);
    return 1;
  }
  if (err) return 0;
  if (FN(_device)(ctx) != FOLDC_DEVICE_CPU || FN(_run)(ctx, in_a, out[0])) {
    fprintf(stderr, "the CPU context did not run: %s\n", FN(_last_error)(ctx));
    return 1;
  }
  FN(_destroy)(ctx);
  printf("create_on(CPU) after it: ran\n");
  return 0;
}

static double rel_diff(const float *a, const float *b) {
  double d = 0.0, m = 1e-30;
  int i;
  for (i = 0; i < SIZE(_OUTPUT_SIZE); i++) {
    double e = a[i] > b[i] ? a[i] - b[i] : b[i] - a[i];
    double v = b[i] > 0 ? b[i] : -b[i];
    if (e > d) d = e;
    if (v > m) m = v;
  }
  return d / m;
}

static int gpu(const unsigned char *weights, size_t len) {
  model_ctx *c[2];
  int k;
  if (FN(_create_on)(weights, len, 7, 1, &c[0]) != 1 || c[0]) {
    fprintf(stderr, "device 7 was not refused\n");
    return 1;
  }
  for (k = 0; k < 2; k++) {
    int err = FN(_create_on)(weights, len, FOLDC_DEVICE_GPU, 1, &c[k]);
    if (err || FN(_device)(c[k]) != FOLDC_DEVICE_GPU) {
      fprintf(stderr, "create_on(GPU) %d: %s\n", k, FN(_strerror)(err));
      return 1;
    }
  }
  if (FN(_run)(c[0], in_a, out[0]) || FN(_run)(c[0], in_b, out[1]) || FN(_run)(c[0], in_a, out[2]) ||
      FN(_run)(c[1], in_b, out[3])) {
    fprintf(stderr, "run: %s / %s\n", FN(_last_error)(c[0]), FN(_last_error)(c[1]));
    return 1;
  }
  if (rel_diff(out[0], out[1]) < 1e-3) {
    fprintf(stderr, "inputs A and B gave the same output: the input was not uploaded\n");
    return 1;
  }
  if (memcmp(out[0], out[2], sizeof out[0])) {
    fprintf(stderr, "input A again gave another output (%.2e)\n", rel_diff(out[2], out[0]));
    return 1;
  }
  printf("two GPU contexts on input B: %.2e apart\n", rel_diff(out[3], out[1]));
  if (rel_diff(out[3], out[1]) > 1e-6) return 1;
  FN(_destroy)(c[0]);
  FN(_destroy)(c[1]);
  if (FN(_create_on)(weights, len, FOLDC_DEVICE_GPU, 1, &c[0]) || FN(_run)(c[0], in_b, out[3])) {
    fprintf(stderr, "a GPU context after the device was released: failed\n");
    return 1;
  }
  FN(_destroy)(c[0]);
  printf("a new GPU context after the release: %.2e from the first\n", rel_diff(out[3], out[1]));
  return rel_diff(out[3], out[1]) > 1e-6;
}

int main(int argc, char **argv) {
  size_t len;
  unsigned char *weights;
  int i, rc;
  if (argc < 3) return 2;
  weights = read_weights(argv[2], &len);
  if (!weights) return 2;
  for (i = 0; i < SIZE(_INPUT_SIZE); i++) {
    in_a[i] = (float)((i * 7) % 23) * 0.05f - 0.5f;
    in_b[i] = (float)((i * 5) % 19) * 0.05f - 0.4f;
  }
  if (!strcmp(argv[1], "fallback") && argc == 5) rc = fallback(weights, len, atoi(argv[3]), atoi(argv[4]));
  else if (!strcmp(argv[1], "gpu")) rc = gpu(weights, len);
  else rc = 2;
  free(weights);
  return rc;
}
