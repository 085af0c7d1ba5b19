/* foldc_pool.h: a per-context thread pool for the kernels' parallel loops (copied into every
 * bundle; header-only, static inline). Halide kernels run their parallel loops through
 * halide_do_par_for(user_context, task, min, size, closure); foldc passes the model context as
 * user_context, so foldc_do_par_for (installed with halide_set_custom_do_par_for) finds the
 * context's own pool at its start (foldc_pool_head is the context's first member) and runs the
 * loop's iterations on that context's threads. Each context thus gets the thread count it was
 * created with, independently of every other context in the process. A user_context that is not
 * a foldc context goes to Halide's default pool.
 *
 * The caller takes part in the work; the other threads wait spinning briefly (a layer follows
 * another within microseconds), then sleep on a condition variable. Iterations are claimed with a
 * compare-and-swap on (generation << 32 | next index), so a late thread can never run an
 * iteration of a loop that has finished. run() allocates nothing.
 */
#ifndef FOLDC_POOL_H
#define FOLDC_POOL_H

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "HalideRuntime.h"

#define FOLDC_POOL_MAGIC 0x464f4c50u /* "FOLP" */
#define FOLDC_POOL_MAX_THREADS 256
#define FOLDC_POOL_SPINS 20000

typedef struct foldc_pool {
  int n; /* threads, the caller included */
  pthread_t threads[FOLDC_POOL_MAX_THREADS];
  pthread_mutex_t mu;
  pthread_cond_t cv;
  /* the current loop */
  halide_task_t fn;
  void *uc;
  uint8_t *closure;
  int min, size;
  uint64_t next; /* generation << 32 | next iteration */
  int done, err, busy, stop;
  uint32_t gen;
} foldc_pool;

/* The first member of every foldc model context. */
typedef struct {
  uint32_t magic;
  int num_threads;
  foldc_pool *pool; /* NULL with one thread */
} foldc_pool_head;

static inline void foldc_pool_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __asm__ __volatile__("pause");
#endif
}

static inline void foldc_pool_work(foldc_pool *p, uint32_t gen) {
  halide_task_t fn = p->fn;
  void *uc = p->uc;
  uint8_t *closure = p->closure;
  int min = p->min, size = p->size;
  for (;;) {
    uint64_t v = __atomic_load_n(&p->next, __ATOMIC_ACQUIRE);
    int r;
    if ((uint32_t)(v >> 32) != gen || (int)(uint32_t)v >= size) return;
    if (!__atomic_compare_exchange_n(&p->next, &v, v + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) continue;
    r = fn(uc, min + (int)(uint32_t)v, closure);
    if (r) __atomic_store_n(&p->err, r, __ATOMIC_RELAXED);
    __atomic_add_fetch(&p->done, 1, __ATOMIC_RELEASE);
  }
}

static inline void *foldc_pool_worker(void *arg) {
  foldc_pool *p = (foldc_pool *)arg;
  uint32_t seen = 0, g;
  for (;;) {
    int spins = 0;
    while ((g = __atomic_load_n(&p->gen, __ATOMIC_ACQUIRE)) == seen && !__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) {
      if (++spins < FOLDC_POOL_SPINS) {
        foldc_pool_relax();
        continue;
      }
      pthread_mutex_lock(&p->mu);
      while (__atomic_load_n(&p->gen, __ATOMIC_ACQUIRE) == seen && !__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE))
        pthread_cond_wait(&p->cv, &p->mu);
      pthread_mutex_unlock(&p->mu);
      spins = 0;
    }
    if (__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) return NULL;
    seen = g;
    foldc_pool_work(p, g);
  }
}

/* Threads to use for a requested count: n > 0 as given (at most FOLDC_POOL_MAX_THREADS), 0 one
 * per online core. */
static inline int foldc_pool_threads(int n) {
  if (n <= 0) {
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    n = c > 0 ? (int)c : 1;
  }
  return n > FOLDC_POOL_MAX_THREADS ? FOLDC_POOL_MAX_THREADS : n;
}

/* A pool of n threads (the caller counts as one: n - 1 are started); NULL on failure. */
static inline foldc_pool *foldc_pool_create(int n) {
  foldc_pool *p = (foldc_pool *)calloc(1, sizeof *p);
  int i;
  if (!p) return NULL;
  if (pthread_mutex_init(&p->mu, NULL)) {
    free(p);
    return NULL;
  }
  if (pthread_cond_init(&p->cv, NULL)) {
    pthread_mutex_destroy(&p->mu);
    free(p);
    return NULL;
  }
  p->n = 1;
  for (i = 1; i < n; i++) {
    if (pthread_create(&p->threads[i], NULL, foldc_pool_worker, p)) break;
    p->n++;
  }
  return p;
}

static inline void foldc_pool_destroy(foldc_pool *p) {
  int i;
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  __atomic_store_n(&p->stop, 1, __ATOMIC_RELEASE);
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  for (i = 1; i < p->n; i++) pthread_join(p->threads[i], NULL);
  pthread_cond_destroy(&p->cv);
  pthread_mutex_destroy(&p->mu);
  free(p);
}

static inline int foldc_serial_for(void *uc, halide_task_t fn, int min, int size, uint8_t *closure) {
  int i, r;
  for (i = min; i < min + size; i++) {
    if ((r = fn(uc, i, closure)) != 0) return r;
  }
  return 0;
}

/* halide_do_par_for for foldc contexts (see the top of this file). */
static inline int foldc_do_par_for(void *uc, halide_task_t fn, int min, int size, uint8_t *closure) {
  foldc_pool_head *h = (foldc_pool_head *)uc;
  foldc_pool *p;
  uint32_t g;
  if (!h || h->magic != FOLDC_POOL_MAGIC) return halide_default_do_par_for(uc, fn, min, size, closure);
  p = h->pool;
  /* one thread, a single iteration, or a loop nested inside a running one: run it here */
  if (!p || p->n <= 1 || size <= 1 || p->busy) return foldc_serial_for(uc, fn, min, size, closure);
  p->busy = 1;
  /* Move `next` to the new generation before touching the loop's fields: a worker still leaving
   * the previous loop may read a field of this one, but can then no longer claim an iteration
   * (its claims carry the old generation), so it never runs or counts work with mixed fields. */
  g = p->gen + 1;
  __atomic_store_n(&p->next, (uint64_t)g << 32, __ATOMIC_SEQ_CST);
  p->fn = fn;
  p->uc = uc;
  p->closure = closure;
  p->min = min;
  p->size = size;
  p->err = 0;
  __atomic_store_n(&p->done, 0, __ATOMIC_RELAXED);
  pthread_mutex_lock(&p->mu);
  __atomic_store_n(&p->gen, g, __ATOMIC_RELEASE);
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  foldc_pool_work(p, g);
  while (__atomic_load_n(&p->done, __ATOMIC_ACQUIRE) < size) foldc_pool_relax();
  p->busy = 0;
  return __atomic_load_n(&p->err, __ATOMIC_RELAXED);
}

/* Set up the pool part of a context: num_threads as for foldc_pool_threads. 0 or an error. */
static inline int foldc_pool_init(foldc_pool_head *h, int num_threads) {
  h->magic = FOLDC_POOL_MAGIC;
  h->num_threads = foldc_pool_threads(num_threads);
  h->pool = NULL;
  if (h->num_threads > 1) {
    h->pool = foldc_pool_create(h->num_threads);
    if (!h->pool) return -1;
    h->num_threads = h->pool->n;
  }
  halide_set_custom_do_par_for(foldc_do_par_for);
  return 0;
}

static inline void foldc_pool_fini(foldc_pool_head *h) {
  foldc_pool_destroy(h->pool);
  h->pool = NULL;
  h->magic = 0;
}

#endif /* FOLDC_POOL_H */
