/* peak.c: the FMA peak of one core, measured (foldc bench's "% of peak", backend.peak_gflops).
 *
 * N independent chains of vector fused multiply-adds (acc = acc * b + c), enough to cover the FMA
 * latency on every pipe: 2 * lanes * N * iterations flops over the elapsed time, best of 10 runs
 * of about 50 ms. Built for the target's vector ISA (-mavx512f or -mavx2 -mfma, compiler/backend.lua);
 * prints the GFLOP/s as one number.
 */
#define _POSIX_C_SOURCE 200112L
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

#if defined(__AVX512F__)
typedef __m512 vec;
#define LANES 16
#define CHAINS 16
#define CHAIN_STEP(S) S(0) S(1) S(2) S(3) S(4) S(5) S(6) S(7) S(8) S(9) S(10) S(11) S(12) S(13) S(14) S(15)
#define SET1(x) _mm512_set1_ps(x)
#define FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define SUM(v) _mm512_reduce_add_ps(v)
#elif defined(__AVX2__) && defined(__FMA__)
typedef __m256 vec;
#define LANES 8
#define CHAINS 12
#define CHAIN_STEP(S) S(0) S(1) S(2) S(3) S(4) S(5) S(6) S(7) S(8) S(9) S(10) S(11)
#define SET1(x) _mm256_set1_ps(x)
#define FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
static float SUM(__m256 v) {
  float t[8];
  int i;
  float s = 0.0f;
  _mm256_storeu_ps(t, v);
  for (i = 0; i < 8; i++) s += t[i];
  return s;
}
#else
#error "peak.c needs AVX-512F or AVX2 with FMA"
#endif

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(void) {
  vec acc[CHAINS], b = SET1(0.999999f), c = SET1(1e-6f);
  const long iters = 2000000;
  double best = 0.0, sink = 0.0;
  int run, i;
  long k;
  for (run = 0; run < 10; run++) {
    double t;
    for (i = 0; i < CHAINS; i++) acc[i] = SET1((float)i);
    t = now_s();
    for (k = 0; k < iters; k++) {
#define STEP(j) acc[j] = FMA(acc[j], b, c);
      CHAIN_STEP(STEP) /* written out: every chain stays in a register */
#undef STEP
    }
    t = now_s() - t;
    for (i = 0; i < CHAINS; i++) sink += SUM(acc[i]);
    if (2.0 * LANES * CHAINS * iters / t > best) best = 2.0 * LANES * CHAINS * iters / t;
  }
  printf("%.1f\n", best * 1e-9 + (sink == 12345.678 ? 1e-9 : 0.0));
  return 0;
}
