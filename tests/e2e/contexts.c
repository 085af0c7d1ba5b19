/* Contexts are independent: two application threads, each with its own 2-thread context and
 * input, run the model concurrently many times, and every result equals (bitwise) the one its
 * context computed alone beforehand. Then a 2-thread context runs many times and reproduces the
 * single-threaded result bitwise (every output element is computed by exactly one thread, the
 * same way). tsan.sh runs this program under ThreadSanitizer.
 * Built against a bundle with -DMODEL=name -DMODEL_UPPER=NAME -DMODEL_H='"name.h"'. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "harness.h"

#define RUNS 30

typedef struct {
  model_ctx *ctx;
  float input[SIZE(_INPUT_SIZE)];
  float expected[SIZE(_OUTPUT_SIZE)];
  float output[SIZE(_OUTPUT_SIZE)];
  int mismatches;
} worker;

static void *work(void *arg) {
  worker *w = (worker *)arg;
  int i;
  for (i = 0; i < RUNS; i++) {
    if (FN(_run)(w->ctx, w->input, w->output) != 0 ||
        memcmp(w->output, w->expected, sizeof w->output) != 0)
      w->mismatches++;
  }
  return NULL;
}

int main(int argc, char **argv) {
  static worker w[2];
  pthread_t t[2];
  size_t len;
  unsigned char *weights;
  int k, i, pooled;
  if (argc != 2) return 2;
  weights = read_weights(argv[1], &len);
  if (!weights) return 2;
  /* thread counts outside 0..256 are refused */
  if (FN(_create_threads)(weights, len, -1, &w[0].ctx) != 1 || w[0].ctx) return 3;
  if (FN(_create_threads)(weights, len, 257, &w[0].ctx) != 1 || w[0].ctx) return 3;
  for (k = 0; k < 2; k++) {
    if (FN(_create_threads)(weights, len, 2, &w[k].ctx) != 0 || FN(_num_threads)(w[k].ctx) != 2) return 3;
    for (i = 0; i < SIZE(_INPUT_SIZE); i++) w[k].input[i] = (float)((i * (k + 3)) % 23) * 0.05f - 0.5f;
    if (FN(_run)(w[k].ctx, w[k].input, w[k].expected) != 0) return 4;
  }
  if (memcmp(w[0].expected, w[1].expected, sizeof w[0].expected) == 0) return 5; /* inputs must differ */
  for (k = 0; k < 2; k++) pthread_create(&t[k], NULL, work, &w[k]);
  for (k = 0; k < 2; k++) pthread_join(t[k], NULL);
  for (k = 0; k < 2; k++) FN(_destroy)(w[k].ctx);
  printf("%d + %d mismatching results in 2 x %d concurrent runs\n", w[0].mismatches, w[1].mismatches, RUNS);
  if (FN(_create_threads)(weights, len, 1, &w[0].ctx) != 0) return 6;
  if (FN(_run)(w[0].ctx, w[0].input, w[0].expected) != 0) return 6;
  FN(_destroy)(w[0].ctx);
  if (FN(_create_threads)(weights, len, 2, &w[0].ctx) != 0) return 6;
  pooled = 0;
  for (i = 0; i < 5 * RUNS; i++) {
    if (FN(_run)(w[0].ctx, w[0].input, w[0].output) != 0 ||
        memcmp(w[0].output, w[0].expected, sizeof w[0].output) != 0)
      pooled++;
  }
  FN(_destroy)(w[0].ctx);
  free(weights);
  printf("%d mismatching results in %d runs on a 2-thread context\n", pooled, 5 * RUNS);
  return w[0].mismatches + w[1].mismatches + pooled == 0 ? 0 : 1;
}
