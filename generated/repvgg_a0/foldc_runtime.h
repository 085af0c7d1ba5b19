/* foldc runtime: the small C99 support code copied into every bundle. Header-only (static
 * inline), so several bundles can live in one program without symbol clashes.
 *
 * Weights blob (little-endian), written by foldc, verified by <model>_create:
 *   offset 0   char     magic[8] = "FOLDCWTS"
 *          8   uint32   version  = FOLDC_WEIGHTS_VERSION
 *         12   uint32   count      number of tensors
 *         16   uint64   total      bytes of the whole blob (a multiple of 64)
 *         24   uint64   model_id   hash of the compiled model's weight layout and kernels
 *         32   uint64   checksum   foldc_checksum() of bytes [64, total)
 *         40   reserved: zero up to 64 (not covered by the checksum, so checked on its own)
 *         64   count x { uint64 offset; uint64 bytes }   tensor table, offsets from blob start
 *              then tensor data, each tensor 64-byte aligned (float32, kernel layouts)
 */
#ifndef FOLDC_RUNTIME_H
#define FOLDC_RUNTIME_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define FOLDC_WEIGHTS_MAGIC "FOLDCWTS"
#define FOLDC_WEIGHTS_VERSION 1u
#define FOLDC_WEIGHTS_HEADER_BYTES 64u
#define FOLDC_ALIGN 64u
#define FOLDC_MAX_THREADS 256 /* the most threads a context may run on (<model>_create_threads) */

static inline uint64_t foldc_read_u64(const unsigned char *p) {
  uint64_t v = 0;
  int i;
  for (i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

static inline uint32_t foldc_read_u32(const unsigned char *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* h = (h ^ word) * FNV prime over the 64-bit little-endian words of [p, p + n), n % 8 == 0. */
static inline uint64_t foldc_checksum(const unsigned char *p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  size_t i;
  for (i = 0; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    h = (h ^ w) * 0x100000001b3ull;
  }
  return h;
}

/* Result codes shared by every bundle (each model's <model>_strerror describes them). */
enum {
  FOLDC_OK = 0,
  FOLDC_ERR_ARGUMENT = 1,      /* a NULL pointer, or a thread count outside 0..FOLDC_MAX_THREADS */
  FOLDC_ERR_NO_MEMORY = 2,     /* create could not allocate the context */
  FOLDC_ERR_WEIGHTS_SIZE = 3,  /* weights blob shorter or longer than the header says */
  FOLDC_ERR_WEIGHTS_MAGIC = 4, /* not a foldc weights blob, or another version */
  FOLDC_ERR_WEIGHTS_MODEL = 5, /* weights of another model (or another build of it) */
  FOLDC_ERR_WEIGHTS_CHECKSUM = 6, /* corrupted weights */
  FOLDC_ERR_KERNEL = 7,        /* a kernel reported an error (see <model>_last_error) */
  FOLDC_ERR_WEIGHTS_RESERVED = 8, /* the header's reserved bytes 40-63 are not zero */
  FOLDC_ERR_NO_KERNELS = 9,    /* the bundle has no kernels for the device asked of <model>_create_on */
  FOLDC_ERR_GPU_DRIVER = 10,   /* GPU bundle: the driver library (libcuda.so.1, libOpenCL.so.1) is not there */
  FOLDC_ERR_GPU_DEVICE = 11,   /* GPU bundle: the driver is there but found no usable device */
  FOLDC_ERR_GPU_MEMORY = 12    /* GPU bundle: out of device memory at create */
};

/* Verify a weights blob against the layout a model was compiled for. */
static inline int foldc_weights_verify(const void *blob, size_t len, uint64_t model_id,
                                       uint32_t count, const uint64_t *offsets,
                                       const uint64_t *sizes, uint64_t total) {
  const unsigned char *p = (const unsigned char *)blob;
  uint32_t i;
  if (!blob) return FOLDC_ERR_ARGUMENT;
  if (len < FOLDC_WEIGHTS_HEADER_BYTES) return FOLDC_ERR_WEIGHTS_SIZE;
  if (memcmp(p, FOLDC_WEIGHTS_MAGIC, 8) != 0 || foldc_read_u32(p + 8) != FOLDC_WEIGHTS_VERSION)
    return FOLDC_ERR_WEIGHTS_MAGIC;
  for (i = 40; i < FOLDC_WEIGHTS_HEADER_BYTES; i++)
    if (p[i]) return FOLDC_ERR_WEIGHTS_RESERVED;
  if (foldc_read_u64(p + 16) != len || len != total) return FOLDC_ERR_WEIGHTS_SIZE;
  if (foldc_read_u64(p + 24) != model_id || foldc_read_u32(p + 12) != count)
    return FOLDC_ERR_WEIGHTS_MODEL;
  for (i = 0; i < count; i++) {
    const unsigned char *e = p + FOLDC_WEIGHTS_HEADER_BYTES + 16u * i;
    if (foldc_read_u64(e) != offsets[i] || foldc_read_u64(e + 8) != sizes[i])
      return FOLDC_ERR_WEIGHTS_MODEL;
  }
  if (foldc_checksum(p + FOLDC_WEIGHTS_HEADER_BYTES, len - FOLDC_WEIGHTS_HEADER_BYTES) !=
      foldc_read_u64(p + 32))
    return FOLDC_ERR_WEIGHTS_CHECKSUM;
  return FOLDC_OK;
}

/* NCHW (batch 1) -> channels-innermost HWC, and back. */
static inline void foldc_nchw_to_hwc(const float *src, float *dst, int c, int h, int w) {
  int ch, i;
  for (ch = 0; ch < c; ch++)
    for (i = 0; i < h * w; i++) dst[(size_t)i * c + ch] = src[(size_t)ch * h * w + i];
}

static inline void foldc_hwc_to_nchw(const float *src, float *dst, int c, int h, int w) {
  int ch, i;
  for (i = 0; i < h * w; i++)
    for (ch = 0; ch < c; ch++) dst[(size_t)ch * h * w + i] = src[(size_t)i * c + ch];
}

/* Monotonic time in seconds. */
static inline double foldc_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif /* FOLDC_RUNTIME_H */
