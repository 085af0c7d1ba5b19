/* gpu_peak.c: the GPU's FMA peak in GFLOP/s, measured (the GPU counterpart of peak.c), printed as
 * one number. Runs the gpu_peak kernel (compiler/halide/gpu_peak.cpp: 16 FLOPs a step, PEAK_STEPS
 * steps a thread) on more threads until one call takes 50 ms, then prints the best of 5 such calls,
 * each waited for (halide_device_sync), the seeds already on the device. Built by
 * compiler/backend.lua (gpu_peak_gflops) with
 *   -DPEAK_FN=<the kernel's C name> -DPEAK_STEPS=<its steps> -DGET_SYMBOL=halide_<api>_get_symbol
 *   -DLIBRARIES='"libX.so.1", "libX.so"'
 * and linked with the kernel and the Halide runtime: the driver is loaded at run time, as a bundle's
 * (runtime/foldc_gpu_driver.h). Errors (no driver, no device) print one line and exit 1. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "HalideRuntime.h"
#include "../runtime/foldc_gpu_driver.h"

int PEAK_FN(void *user_context, struct halide_buffer_t *seed, struct halide_buffer_t *output);

void *GET_SYMBOL(void *user_context, const char *name);
void *GET_SYMBOL(void *user_context, const char *name) {
  static const char *const libraries[] = {LIBRARIES};
  static foldc_gpu_driver driver;
  (void)user_context;
  return foldc_gpu_symbol(&driver, libraries, sizeof libraries / sizeof libraries[0], name);
}

/* _Exit, not exit: Halide reports a device error holding its context lock, which exit's destructors
 * (halide_opencl_device_release) would take again, spinning for ever (pocl without an ICD). */
static void on_error(void *user_context, const char *msg) {
  (void)user_context;
  fprintf(stderr, "gpu_peak: %s\n", msg);
  _Exit(1);
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* The best of reps calls over n threads, each waited for, after one untimed call (which copies the
 * seeds to the device and, the first time, builds the program): its seconds. */
static double best_call(float *seed, float *out, int n, int reps) {
  halide_dimension_t ds = {0, n, 1, 0}, dout = {0, n, 1, 0};
  struct halide_buffer_t bs, bo;
  double best = 0.0;
  int r;
  memset(&bs, 0, sizeof bs);
  memset(&bo, 0, sizeof bo);
  bs.host = (uint8_t *)seed;
  bo.host = (uint8_t *)out;
  bs.type.code = bo.type.code = halide_type_float;
  bs.type.bits = bo.type.bits = 32;
  bs.type.lanes = bo.type.lanes = 1;
  bs.dimensions = bo.dimensions = 1;
  bs.dim = &ds;
  bo.dim = &dout;
  bs.flags = halide_buffer_flag_host_dirty;
  for (r = -1; r < reps; r++) {
    double t0 = now(), t;
    if (PEAK_FN(NULL, &bs, &bo) || halide_device_sync(NULL, &bo)) exit(1);
    t = now() - t0;
    if (r >= 0 && (best == 0.0 || t < best)) best = t;
  }
  halide_device_free(NULL, &bs);
  halide_device_free(NULL, &bo);
  return best;
}

int main(void) {
  const int max_n = 1 << 24;
  int n = 4096;
  float *seed = calloc(max_n, sizeof *seed), *out = malloc(max_n * sizeof *out);
  double best;
  if (!seed || !out) return 1;
  halide_set_error_handler(on_error);
  while (n < max_n && best_call(seed, out, n, 1) < 0.05) n *= 2;
  best = best_call(seed, out, n, 5);
  printf("%.1f\n", 16.0 * PEAK_STEPS * n / best / 1e9);
  free(seed);
  free(out);
  return 0;
}
