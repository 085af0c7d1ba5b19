/* tune_harness.c: times schedule candidates of one kernel for `foldc tune` (compiler/tune.lua).
 *
 * tune_case.h (generated) defines NARGS, the kernel's buffer arguments (rank, extents, strides; the
 * last one is the output), kfn_t, CALL(f) and cands[] (NCANDS kernels: the generator's default
 * schedule first, then the candidates). The harness fills the inputs with deterministic uniform
 * [-1, 1) values, runs the default as the reference, checks every candidate's output against it
 *   err = max |out - ref| / max |ref|        (the output is NaN-filled first: unwritten -> NaN)
 * and times the candidates that pass, interleaved: `rounds` rounds, each running every candidate
 * for a batch of about `batch_ms`, keeping each one's best time per call. Prints one line per
 * candidate: "cand <i> err <e> us <t>" (us = -1 when not timed).
 *   tune_harness THREADS ROUNDS BATCH_MS TOL [COLD]
 * COLD = 1: as inside a whole model, where every layer's weights come from DRAM (a run streams
 * ~100 MB of them through a 32 MB cache) and so do its residual input and the output's lines,
 * while its input activation (just written by the layer before) is warm: every timed call is a
 * single call after every argument but the input was flushed from the caches (flush_arg); the best
 * of `rounds` x 3 such calls. Schedules tuned hot favour big weight reuse, no prefetch and
 * re-reading activations, and lose in the model (resnet50's 64->256 1x1 +residual on 56x56 with
 * channel tiles outer: 107% of peak hot, 68% in the model).
 */
#define _POSIX_C_SOURCE 200112L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "HalideRuntime.h"
#include "tune_case.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static halide_buffer_t buf[NARGS];
static halide_dimension_t dims[NARGS][4];
static float *mem[NARGS];
static size_t count[NARGS];

static void timed(kfn_t f, int reps) {
  int i;
  for (i = 0; i < reps; i++) CALL(f);
}

/* Flush argument a (the weights) from every cache level, the way the target's family file says
 * (compiler/targets/<family>.lua `flush`, passed as -DFOLDC_FLUSH_<WAY>): CLFLUSH per 64-byte line
 * on x86; DC CIVAC (clean and invalidate to the point of coherency, allowed to user space by Linux)
 * per line on AArch64. */
static void flush_arg(int a) {
  const char *p = (const char *)mem[a];
  size_t i, n = count[a] * sizeof(float);
#if defined(FOLDC_FLUSH_CLFLUSH)
  for (i = 0; i < n; i += 64) __builtin_ia32_clflush(p + i);
  __builtin_ia32_mfence();
#elif defined(FOLDC_FLUSH_DC_CIVAC)
  for (i = 0; i < n; i += 64) __asm__ volatile("dc civac, %0" : : "r"(p + i) : "memory");
  __asm__ volatile("dsb ish" : : : "memory");
#else
#error "tune_harness.c: define FOLDC_FLUSH_CLFLUSH or FOLDC_FLUSH_DC_CIVAC (compiler/tune.lua does, from the target)"
#endif
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1, rounds = argc > 2 ? atoi(argv[2]) : 5;
  double batch_ms = argc > 3 ? atof(argv[3]) : 20.0, tol = argc > 4 ? atof(argv[4]) : 1e-5;
  int cold = argc > 5 ? atoi(argv[5]) : 0;
  double *ref, *best, *err;
  int *reps, a, d, c, r;
  uint64_t s = 88172645463325252ULL;
  halide_set_num_threads(threads);
  for (a = 0; a < NARGS; a++) {
    size_t n = 1;
    void *p = NULL;
    for (d = 0; d < ranks[a]; d++) n += (size_t)(extents[a][d] - 1) * (size_t)strides[a][d];
    count[a] = n;
    if (posix_memalign(&p, 64, n * sizeof(float) + 64)) return 2;
    mem[a] = (float *)p;
    for (size_t i = 0; i < n; i++) {
      s ^= s << 13;
      s ^= s >> 7;
      s ^= s << 17;
      mem[a][i] = (float)((double)(s >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    }
    memset(&buf[a], 0, sizeof buf[a]);
    buf[a].host = (uint8_t *)p;
    buf[a].type.code = halide_type_float;
    buf[a].type.bits = 32;
    buf[a].type.lanes = 1;
    buf[a].dimensions = ranks[a];
    buf[a].dim = dims[a];
    for (d = 0; d < ranks[a]; d++) {
      dims[a][d].min = 0;
      dims[a][d].extent = extents[a][d];
      dims[a][d].stride = strides[a][d];
    }
  }
  {
    const size_t n = count[NARGS - 1];
    float *out = mem[NARGS - 1];
    double maxref = 0;
    ref = (double *)malloc(n * sizeof(double));
    best = (double *)malloc(NCANDS * sizeof(double));
    err = (double *)malloc(NCANDS * sizeof(double));
    reps = (int *)malloc(NCANDS * sizeof(int));
    if (!ref || !best || !err || !reps) return 2;
    for (c = 0; c < NCANDS; c++) {
      size_t i;
      double maxdiff = 0;
      memset(out, 0xff, n * sizeof(float));
      if (CALL(cands[c]) != 0) {
        err[c] = INFINITY;
        continue;
      }
      if (c == 0) {
        for (i = 0; i < n; i++) {
          ref[i] = out[i];
          if (fabs(ref[i]) > maxref) maxref = fabs(ref[i]);
        }
        if (!(maxref > 0) || !isfinite(maxref)) maxref = 1;
      }
      for (i = 0; i < n; i++) {
        double dd = fabs((double)out[i] - ref[i]);
        if (!(dd <= maxdiff)) maxdiff = isnan(dd) ? INFINITY : dd;
      }
      err[c] = maxdiff / maxref;
    }
  }
  /* calibrate: reps per batch from one warm call */
  for (c = 0; c < NCANDS; c++) {
    double t0, t;
    best[c] = INFINITY;
    reps[c] = 0;
    if (!(err[c] <= tol)) continue;
    CALL(cands[c]);
    t0 = now_s();
    CALL(cands[c]);
    t = now_s() - t0;
    reps[c] = (int)(batch_ms * 1e-3 / (t > 1e-7 ? t : 1e-7)) + 1;
  }
  for (r = 0; r < rounds; r++) {
    for (c = 0; c < NCANDS; c++) {
      int k = (c + r) % NCANDS;
      double t0, t;
      if (!reps[k]) continue;
      if (cold && NARGS > 2) {
        int j;
        for (j = 0; j < 3; j++) {
          for (a = 1; a < NARGS; a++) flush_arg(a);
          t0 = now_s();
          CALL(cands[k]);
          t = now_s() - t0;
          if (t < best[k]) best[k] = t;
        }
        continue;
      }
      t0 = now_s();
      timed(cands[k], reps[k]);
      t = (now_s() - t0) / reps[k];
      if (t < best[k]) best[k] = t;
    }
  }
  for (c = 0; c < NCANDS; c++) printf("cand %d err %.3e us %.3f\n", c, err[c], reps[c] ? best[c] * 1e6 : -1.0);
  return 0;
}
