/* Shared by the C test programs that link a bundle (no_alloc.c, contexts.c): the model's API
 * named through macros, and reading the weights file. Compile with -DMODEL=name
 * -DMODEL_UPPER=NAME -DMODEL_H='"name.h"'. */
#ifndef FOLDC_TEST_HARNESS_H
#define FOLDC_TEST_HARNESS_H
#include <stdio.h>
#include <stdlib.h>
#include MODEL_H

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(x) CAT(MODEL, x)
#define SIZE(x) CAT(MODEL_UPPER, x)
typedef CAT(MODEL, _ctx) model_ctx;

/* The whole file in a new allocation (NULL on failure); its size in *len. */
static unsigned char *read_weights(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  unsigned char *p = NULL;
  long n;
  if (!f) return NULL;
  if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
      (p = (unsigned char *)malloc((size_t)n)) != NULL) {
    if (fread(p, 1, (size_t)n, f) == (size_t)n) {
      *len = (size_t)n;
    } else {
      free(p);
      p = NULL;
    }
  }
  fclose(f);
  return p;
}
#endif
