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
 * another within microseconds), then sleep on a condition variable. A loop's fields (fn, uc,
 * closure, min, size) are published by the release store of `state` (generation << 1 | open). A
 * worker joins a loop by counting itself in `active`, then re-reading `state` (both sequentially
 * consistent); the caller closes a loop in `state` once its iterations are done and, before it
 * writes the next loop's fields, waits for `active` to be zero. So either the worker sees the loop
 * still open and the caller waits for it to leave, or it sees it closed and reads nothing of it:
 * a worker never reads a loop's fields while the caller writes them. Iterations are claimed with an
 * atomic increment of `next`.
 *
 * The kernels' scratch: Halide keeps a kernel's intermediate buffer on the stack up to 16 KB and
 * asks halide_malloc for a larger one on every call. foldc_scratch_malloc (installed with
 * halide_set_custom_malloc) serves a foldc context's requests from one slab per thread of the
 * context instead, as a stack: Halide frees a kernel's buffers on the thread that allocated them,
 * innermost first (a block freed out of that order is popped once every block above it is). The
 * slabs are sized at create by one run on a zero input (foldc_scratch_size), so run() allocates
 * nothing; a request a slab cannot hold still goes to Halide's default allocator.
 */
#ifndef FOLDC_POOL_H
#define FOLDC_POOL_H

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "HalideRuntime.h"
#include "foldc_runtime.h"

#define FOLDC_POOL_MAGIC 0x464f4c50u /* "FOLP" */
#define FOLDC_POOL_SPINS 20000

typedef struct foldc_pool {
  int n; /* threads, the caller included */
  pthread_t threads[FOLDC_MAX_THREADS];
  pthread_mutex_t mu;
  pthread_cond_t cv;
  /* the current loop: written by the caller while `active` is 0, before it opens the loop */
  halide_task_t fn;
  void *uc;
  uint8_t *closure;
  int min, size;
  int busy; /* the caller is inside a loop (read by nested loops, on any of the pool's threads) */
  /* atomics */
  uint64_t state; /* generation << 1 | 1 while the loop of that generation is open */
  int active;     /* workers inside a loop */
  int next, done, err, stop;
  int started; /* workers that have taken their index */
} foldc_pool;

/* A thread's scratch slab: blocks of FOLDC_SCRATCH_ALIGN-byte header + data, stacked from base. */
#define FOLDC_SCRATCH_ALIGN 128u
typedef struct {
  unsigned char *base, *memory;
  size_t size, used;
  size_t top;        /* 1 + offset of the top block's header, 0 when the slab is empty */
  size_t live, peak; /* bytes the thread holds (in the slab or not), and the most it held */
} foldc_slab;

typedef struct {
  size_t prev_top; /* the slab's top before this block */
  size_t bytes;    /* header and data, rounded up */
  int freed, heap; /* heap: from halide_default_malloc, not the slab */
} foldc_block;

/* The first member of every foldc model context. */
typedef struct {
  uint32_t magic;
  int num_threads;
  foldc_pool *pool;   /* NULL with one thread */
  foldc_slab *slabs;  /* num_threads of them: the caller's, then each worker's */
} foldc_pool_head;

/* The calling thread's slab index in its pool: 0 for the caller, 1 .. n - 1 for the workers. */
static __thread int foldc_thread_index;

static inline void foldc_pool_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __asm__ __volatile__("pause");
#endif
}

/* Claim and run iterations of the open loop until none is left. */
static inline void foldc_pool_work(foldc_pool *p) {
  for (;;) {
    int i = __atomic_fetch_add(&p->next, 1, __ATOMIC_RELAXED), r;
    if (i >= p->size) return;
    r = p->fn(p->uc, p->min + i, p->closure);
    if (r) __atomic_store_n(&p->err, r, __ATOMIC_RELAXED);
    __atomic_add_fetch(&p->done, 1, __ATOMIC_RELEASE);
  }
}

/* The state of an open loop other than `seen`, 0 if there is none (or the pool stops). */
static inline uint64_t foldc_pool_next_loop(foldc_pool *p, uint64_t seen) {
  uint64_t s = __atomic_load_n(&p->state, __ATOMIC_ACQUIRE);
  return (s & 1) && s != seen ? s : 0;
}

static inline void *foldc_pool_worker(void *arg) {
  foldc_pool *p = (foldc_pool *)arg;
  uint64_t seen = 0, s;
  foldc_thread_index = __atomic_add_fetch(&p->started, 1, __ATOMIC_RELAXED);
  for (;;) {
    int spins = 0;
    while (!(s = foldc_pool_next_loop(p, seen))) {
      if (__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) return NULL;
      if (++spins < FOLDC_POOL_SPINS) {
        foldc_pool_relax();
        continue;
      }
      pthread_mutex_lock(&p->mu);
      while (!foldc_pool_next_loop(p, seen) && !__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE))
        pthread_cond_wait(&p->cv, &p->mu);
      pthread_mutex_unlock(&p->mu);
      spins = 0;
    }
    seen = s;
    __atomic_add_fetch(&p->active, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&p->state, __ATOMIC_SEQ_CST) == s) foldc_pool_work(p);
    __atomic_sub_fetch(&p->active, 1, __ATOMIC_RELEASE);
  }
}

/* Threads to use for a requested count n (0 .. FOLDC_MAX_THREADS): n, or one per online core
 * (at most FOLDC_MAX_THREADS) for 0. */
static inline int foldc_pool_threads(int n) {
  if (n == 0) {
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    n = c < 1 ? 1 : c > FOLDC_MAX_THREADS ? FOLDC_MAX_THREADS : (int)c;
  }
  return n;
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
  uint64_t s;
  if (!h || h->magic != FOLDC_POOL_MAGIC) return halide_default_do_par_for(uc, fn, min, size, closure);
  p = h->pool;
  /* one thread, a single iteration, or a loop nested inside a running one: run it here */
  if (!p || p->n <= 1 || size <= 1 || p->busy) return foldc_serial_for(uc, fn, min, size, closure);
  p->busy = 1;
  /* workers may still be leaving the previous loop (closed below): the fields are theirs till then */
  while (__atomic_load_n(&p->active, __ATOMIC_SEQ_CST)) foldc_pool_relax();
  p->fn = fn;
  p->uc = uc;
  p->closure = closure;
  p->min = min;
  p->size = size;
  __atomic_store_n(&p->next, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&p->done, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&p->err, 0, __ATOMIC_RELAXED);
  s = (__atomic_load_n(&p->state, __ATOMIC_RELAXED) + 2) | 1; /* the next generation, open */
  pthread_mutex_lock(&p->mu);
  __atomic_store_n(&p->state, s, __ATOMIC_SEQ_CST);
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  foldc_pool_work(p);
  while (__atomic_load_n(&p->done, __ATOMIC_ACQUIRE) < size) foldc_pool_relax();
  /* closed: a worker that has not joined yet stays out (see the top of this file) */
  __atomic_store_n(&p->state, s & ~(uint64_t)1, __ATOMIC_SEQ_CST);
  p->busy = 0;
  return __atomic_load_n(&p->err, __ATOMIC_RELAXED);
}

/* halide_malloc for foldc contexts (see the top of this file). */
static inline void *foldc_scratch_malloc(void *uc, size_t size) {
  foldc_pool_head *h = (foldc_pool_head *)uc;
  foldc_slab *s;
  foldc_block *b;
  size_t bytes = FOLDC_SCRATCH_ALIGN + (size + FOLDC_SCRATCH_ALIGN - 1) / FOLDC_SCRATCH_ALIGN * FOLDC_SCRATCH_ALIGN;
  if (!h || h->magic != FOLDC_POOL_MAGIC || !h->slabs) return halide_default_malloc(uc, size);
  s = &h->slabs[foldc_thread_index];
  if (bytes <= s->size - s->used) {
    b = (foldc_block *)(s->base + s->used);
    b->prev_top = s->top;
    b->heap = 0;
    s->top = s->used + 1;
    s->used += bytes;
  } else {
    b = (foldc_block *)halide_default_malloc(uc, bytes);
    if (!b) return NULL;
    b->heap = 1;
  }
  b->bytes = bytes;
  b->freed = 0;
  s->live += bytes;
  if (s->live > s->peak) s->peak = s->live;
  return (unsigned char *)b + FOLDC_SCRATCH_ALIGN;
}

static inline void foldc_scratch_free(void *uc, void *ptr) {
  foldc_pool_head *h = (foldc_pool_head *)uc;
  foldc_slab *s;
  foldc_block *b;
  if (!h || h->magic != FOLDC_POOL_MAGIC || !h->slabs) {
    halide_default_free(uc, ptr);
    return;
  }
  if (!ptr) return;
  s = &h->slabs[foldc_thread_index];
  b = (foldc_block *)((unsigned char *)ptr - FOLDC_SCRATCH_ALIGN);
  s->live -= b->bytes;
  if (b->heap) {
    halide_default_free(uc, b);
    return;
  }
  b->freed = 1;
  while (s->top && ((foldc_block *)(s->base + s->top - 1))->freed) {
    b = (foldc_block *)(s->base + s->top - 1);
    s->used = s->top - 1;
    s->top = b->prev_top;
  }
}

static pthread_once_t foldc_pool_once = PTHREAD_ONCE_INIT;

static void foldc_pool_install(void) {
  halide_set_custom_do_par_for(foldc_do_par_for);
  halide_set_custom_malloc(foldc_scratch_malloc);
  halide_set_custom_free(foldc_scratch_free);
}

static inline void foldc_slabs_free(foldc_pool_head *h) {
  int i;
  if (!h->slabs) return;
  for (i = 0; i < h->num_threads; i++) free(h->slabs[i].memory);
  free(h->slabs);
  h->slabs = NULL;
}

/* After the run that sized them (every slab empty, its peak recorded): give each thread a slab of
 * the largest peak, since any thread may run any iteration of a loop. 0, or -1 out of memory. */
static inline int foldc_scratch_size(foldc_pool_head *h) {
  size_t peak = 0;
  int i;
  for (i = 0; i < h->num_threads; i++) {
    if (h->slabs[i].peak > peak) peak = h->slabs[i].peak;
  }
  if (!peak) return 0;
  for (i = 0; i < h->num_threads; i++) {
    foldc_slab *s = &h->slabs[i];
    s->memory = (unsigned char *)malloc(peak + FOLDC_SCRATCH_ALIGN);
    if (!s->memory) return -1;
    s->base = s->memory + (FOLDC_SCRATCH_ALIGN - (uintptr_t)s->memory % FOLDC_SCRATCH_ALIGN);
    s->size = peak;
  }
  return 0;
}

/* Set up the pool part of a context: num_threads as for foldc_pool_threads. 0, or -1 when the
 * pool cannot be made. */
static inline int foldc_pool_init(foldc_pool_head *h, int num_threads) {
  h->magic = FOLDC_POOL_MAGIC;
  h->num_threads = foldc_pool_threads(num_threads);
  h->pool = NULL;
  h->slabs = NULL;
  if (pthread_once(&foldc_pool_once, foldc_pool_install)) return -1;
  if (h->num_threads > 1) {
    h->pool = foldc_pool_create(h->num_threads);
    if (!h->pool) return -1;
    h->num_threads = h->pool->n;
  }
  h->slabs = (foldc_slab *)calloc((size_t)h->num_threads, sizeof *h->slabs);
  if (!h->slabs) {
    foldc_pool_destroy(h->pool);
    h->pool = NULL;
    return -1;
  }
  return 0;
}

static inline void foldc_pool_fini(foldc_pool_head *h) {
  foldc_pool_destroy(h->pool);
  h->pool = NULL;
  foldc_slabs_free(h);
  h->magic = 0;
}

#endif /* FOLDC_POOL_H */
