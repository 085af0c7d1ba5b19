/* repvgg_a0.h: the repvgg_a0 model, compiled by foldc 0.1 for target x86-64-linux-avx-avx2-avx512-avx512_skylake-f16c-fma-sse41,x86-64-linux-avx-avx2-f16c-fma-sse41,x86-64-linux-sse41,arm-64-linux.
 * Generated from repvgg_a0; regenerate rather than edit.
 *
 * Memory contract: input and output are float32 arrays in PyTorch order (NCHW, batch 1).
 * The weights blob (REPVGG_A0_WEIGHTS_BYTES bytes, see foldc_runtime.h for its header) is read in place
 * and must stay valid until repvgg_a0_destroy; REPVGG_A0_WEIGHTS_ALIGN-byte alignment is best (mmap gives it).
 * A context owns a REPVGG_A0_ARENA_BYTES-byte arena for activations; repvgg_a0_run allocates nothing.
 * One context runs one inference at a time; use one context per thread.
 */
#ifndef REPVGG_A0_H
#define REPVGG_A0_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define REPVGG_A0_INPUT_RANK 4
#define REPVGG_A0_INPUT_DIM0 1
#define REPVGG_A0_INPUT_DIM1 3
#define REPVGG_A0_INPUT_DIM2 224
#define REPVGG_A0_INPUT_DIM3 224
#define REPVGG_A0_INPUT_C 3
#define REPVGG_A0_INPUT_H 224
#define REPVGG_A0_INPUT_W 224
#define REPVGG_A0_INPUT_SIZE 150528
#define REPVGG_A0_OUTPUT_RANK 2
#define REPVGG_A0_OUTPUT_DIM0 1
#define REPVGG_A0_OUTPUT_DIM1 1000
#define REPVGG_A0_OUTPUT_SIZE 1000
#define REPVGG_A0_ARENA_BYTES 3010560
#define REPVGG_A0_WEIGHTS_BYTES 49891712
#define REPVGG_A0_WEIGHTS_ALIGN 64
#define REPVGG_A0_NUM_LAYERS 24
#define REPVGG_A0_MACS 1361451008
#define REPVGG_A0_HAS_CPU 1 /* kernels for the CPU (FOLDC_DEVICE_CPU) */
#define REPVGG_A0_HAS_GPU 0 /* kernels for the GPU (FOLDC_DEVICE_GPU) */
#define REPVGG_A0_DEFAULT_DEVICE FOLDC_DEVICE_CPU /* the device repvgg_a0_create and repvgg_a0_create_threads use */

#ifndef FOLDC_DEVICE_CPU
#define FOLDC_DEVICE_CPU 0
#define FOLDC_DEVICE_GPU 1
#endif

typedef struct repvgg_a0_ctx repvgg_a0_ctx;

/* Verify the weights blob and create a context whose kernels run on num_threads threads (the
 * calling thread and num_threads - 1 workers the context owns; 0 = one per online core; at most
 * 256, FOLDC_MAX_THREADS). Each context has its own threads, so contexts with different counts
 * can run side by side. Create runs the model once on a zero input to size the scratch its kernels
 * ask for (buffers Halide does not keep on the stack), so that repvgg_a0_run allocates nothing.
 * Returns 0 or an error code (repvgg_a0_strerror). */
int repvgg_a0_create_threads(const void *weights, size_t weights_bytes, int num_threads, repvgg_a0_ctx **ctx);

/* repvgg_a0_create_threads with num_threads = 0 (one thread per core). */
int repvgg_a0_create(const void *weights, size_t weights_bytes, repvgg_a0_ctx **ctx);

/* As repvgg_a0_create_threads, on a device: FOLDC_DEVICE_CPU, or FOLDC_DEVICE_GPU (the weights are
 * copied to the GPU once, every activation lives there for the whole run, the input and output
 * cross once per run; the threads run what stays on the host). A device the bundle has no kernels
 * for, a missing GPU driver, no usable GPU or too little GPU memory are error codes
 * (repvgg_a0_strerror); nothing aborts. With both kernels (REPVGG_A0_HAS_CPU and REPVGG_A0_HAS_GPU), an app
 * falls back to the CPU by calling again. */
int repvgg_a0_create_on(const void *weights, size_t weights_bytes, int device, int num_threads, repvgg_a0_ctx **ctx);

/* The device a context runs on. */
int repvgg_a0_device(const repvgg_a0_ctx *ctx);

/* The number of threads a context runs its kernels on. */
int repvgg_a0_num_threads(const repvgg_a0_ctx *ctx);

/* One inference: input[REPVGG_A0_INPUT_SIZE] -> output[REPVGG_A0_OUTPUT_SIZE]. Returns 0 or an error code. */
int repvgg_a0_run(repvgg_a0_ctx *ctx, const float *input, float *output);

/* As repvgg_a0_run, also writing each layer's wall time in seconds to seconds[REPVGG_A0_NUM_LAYERS]. */
int repvgg_a0_profile(repvgg_a0_ctx *ctx, const float *input, float *output, double *seconds);

void repvgg_a0_destroy(repvgg_a0_ctx *ctx);

const char *repvgg_a0_strerror(int code);

/* The message of the last kernel error on this context ("" if none); with NULL, the message of this
 * thread's last failed repvgg_a0_create_on (its kernels run once on a zero input to size their scratch:
 * a kernel or device error there). */
const char *repvgg_a0_last_error(const repvgg_a0_ctx *ctx);

/* Layer i (0 <= i < REPVGG_A0_NUM_LAYERS): its name, multiply-accumulates, the bytes it must move at
 * the least (its inputs and parameters read once, its output written once), and op with the
 * algorithm it runs as (e.g. "conv2d winograd F(4x4)", "conv2d direct"; repvgg_a0.json has the details). */
const char *repvgg_a0_layer_name(int i);
double repvgg_a0_layer_macs(int i);
double repvgg_a0_layer_bytes(int i);
const char *repvgg_a0_layer_algorithm(int i);

/* Deprecated: contexts now own their threads (repvgg_a0_create_threads). This only sizes Halide's
 * process-wide pool, which foldc contexts no longer use. */
void repvgg_a0_set_num_threads(int n);

#ifdef __cplusplus
}
#endif

#endif /* REPVGG_A0_H */
