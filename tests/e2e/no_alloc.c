/* run() allocates nothing: this program interposes the C allocator, runs the model once to warm
 * up (Halide's thread pool starts on first use), then counts allocations over several runs.
 * Built against a bundle with -DMODEL=name -DMODEL_UPPER=NAME -DMODEL_H='"name.h"'. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "harness.h"


extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static volatile int counting;
static volatile long allocations;

void *malloc(size_t n) { if (counting) allocations++; return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { if (counting) allocations++; return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { if (counting) allocations++; return __libc_realloc(p, n); }
void *memalign(size_t a, size_t n) { if (counting) allocations++; return __libc_memalign(a, n); }
int posix_memalign(void **p, size_t a, size_t n) {
  if (counting) allocations++;
  *p = __libc_memalign(a, n);
  return *p ? 0 : 12;
}
void *aligned_alloc(size_t a, size_t n) { if (counting) allocations++; return __libc_memalign(a, n); }

int main(int argc, char **argv) {
  size_t len;
  unsigned char *weights;
  static float input[SIZE(_INPUT_SIZE)], output[SIZE(_OUTPUT_SIZE)];
  int i, err, threads;
  model_ctx *ctx;
  if (argc != 3) return 2;
  threads = atoi(argv[2]);
  weights = read_weights(argv[1], &len);
  if (!weights) return 2;
  for (i = 0; i < SIZE(_INPUT_SIZE); i++) input[i] = (float)(i % 17) * 0.1f - 0.8f;
  FN(_set_num_threads)(threads);
  if ((err = FN(_create)(weights, len, &ctx)) != 0) return 3;
  if ((err = FN(_run)(ctx, input, output)) != 0) return 4;
  counting = 1;
  for (i = 0; i < 5; i++) FN(_run)(ctx, input, output);
  counting = 0;
  FN(_destroy)(ctx);
  free(weights);
  printf("%ld allocations in 5 runs on %d thread(s)\n", allocations, threads);
  return allocations == 0 ? 0 : 1;
}
