/* peak.c: the FMA peak of one core, measured (foldc bench's "% of peak", backend.peak_gflops).
 *
 * N independent chains of vector fused multiply-adds (acc = acc * b + c), enough to cover the FMA
 * latency on every pipe: 2 * lanes * N * iterations flops over the thread's CPU time (not wall
 * time: on a loaded machine the time it is descheduled would lower the figure), best of 10 runs
 * of about 50 ms. Portable C99 with GCC/clang vector extensions: the vector width comes from the
 * compiler's target (flags from compiler/targets/<family>.lua peak_flags, plus -ffp-contract=fast
 * so that a * b + c is one FMA); prints the GFLOP/s as one number.
 */
#define _POSIX_C_SOURCE 200112L
#include <stdio.h>
#include <time.h>

#if defined(__AVX512F__)
#define LANES 16
#elif defined(__AVX__)
#define LANES 8
#else
#define LANES 4 /* SSE, NEON */
#endif
/* chains: 16 with 32 vector registers (AVX-512, AArch64), 12 with 16 */
#if defined(__AVX512F__) || defined(__aarch64__)
#define CHAIN_STEP(S) S(0) S(1) S(2) S(3) S(4) S(5) S(6) S(7) S(8) S(9) S(10) S(11) S(12) S(13) S(14) S(15)
#define CHAINS 16
#else
#define CHAIN_STEP(S) S(0) S(1) S(2) S(3) S(4) S(5) S(6) S(7) S(8) S(9) S(10) S(11)
#define CHAINS 12
#endif

typedef float vec __attribute__((vector_size(4 * LANES)));

static vec set1(float x) {
  vec v;
  int i;
  for (i = 0; i < LANES; i++) v[i] = x;
  return v;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(void) {
  const vec b = set1(0.999999f), c = set1(1e-6f);
  const long iters = 2000000;
  double best = 0.0, sink = 0.0;
  int run, l;
  long k;
  for (run = 0; run < 10; run++) {
    double t;
    /* one named variable per chain, written out: every chain stays in a register */
#define INIT(j) vec a##j = set1((float)j);
#define STEP(j) a##j = a##j * b + c;
#define SUM(j) sink += a##j[l];
    CHAIN_STEP(INIT)
    t = now_s();
    for (k = 0; k < iters; k++) {
      CHAIN_STEP(STEP)
    }
    t = now_s() - t;
    for (l = 0; l < LANES; l++) {
      CHAIN_STEP(SUM)
    }
    if (2.0 * LANES * CHAINS * iters / t > best) best = 2.0 * LANES * CHAINS * iters / t;
  }
  printf("%.1f\n", best * 1e-9 + (sink == 12345.678 ? 1e-9 : 0.0));
  return 0;
}
