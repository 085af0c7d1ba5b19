/* pf_resnet50_max.h: the pf_resnet50_max model, compiled by foldc 0.1 for target x86-64-linux-avx-avx2-avx512-avx512_skylake-f16c-fma-sse41,x86-64-linux-avx-avx2-f16c-fma-sse41,x86-64-linux-sse41,arm-64-linux.
 * Generated from pf_resnet50_max; regenerate rather than edit.
 *
 * Memory contract: input and output are float32 arrays in PyTorch order (NCHW, batch 1).
 * The weights blob (PF_RESNET50_MAX_WEIGHTS_BYTES bytes, see foldc_runtime.h for its header) is read in place
 * and must stay valid until pf_resnet50_max_destroy; PF_RESNET50_MAX_WEIGHTS_ALIGN-byte alignment is best (mmap gives it).
 * A context owns a PF_RESNET50_MAX_ARENA_BYTES-byte arena for activations; pf_resnet50_max_run allocates nothing.
 * One context runs one inference at a time; use one context per thread.
 */
#ifndef PF_RESNET50_MAX_H
#define PF_RESNET50_MAX_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PF_RESNET50_MAX_INPUT_RANK 4
#define PF_RESNET50_MAX_INPUT_DIM0 1
#define PF_RESNET50_MAX_INPUT_DIM1 3
#define PF_RESNET50_MAX_INPUT_DIM2 224
#define PF_RESNET50_MAX_INPUT_DIM3 224
#define PF_RESNET50_MAX_INPUT_C 3
#define PF_RESNET50_MAX_INPUT_H 224
#define PF_RESNET50_MAX_INPUT_W 224
#define PF_RESNET50_MAX_INPUT_SIZE 150528
#define PF_RESNET50_MAX_OUTPUT_RANK 2
#define PF_RESNET50_MAX_OUTPUT_DIM0 1
#define PF_RESNET50_MAX_OUTPUT_DIM1 1000
#define PF_RESNET50_MAX_OUTPUT_SIZE 1000
#define PF_RESNET50_MAX_ARENA_BYTES 5218304
#define PF_RESNET50_MAX_WEIGHTS_BYTES 56823680
#define PF_RESNET50_MAX_WEIGHTS_ALIGN 64
#define PF_RESNET50_MAX_NUM_LAYERS 52
#define PF_RESNET50_MAX_MACS 2239496192
#define PF_RESNET50_MAX_HAS_CPU 1 /* kernels for the CPU (FOLDC_DEVICE_CPU) */
#define PF_RESNET50_MAX_HAS_GPU 0 /* kernels for the GPU (FOLDC_DEVICE_GPU) */
#define PF_RESNET50_MAX_DEFAULT_DEVICE FOLDC_DEVICE_CPU /* the device pf_resnet50_max_create and pf_resnet50_max_create_threads use */

#ifndef FOLDC_DEVICE_CPU
#define FOLDC_DEVICE_CPU 0
#define FOLDC_DEVICE_GPU 1
#endif

typedef struct pf_resnet50_max_ctx pf_resnet50_max_ctx;

/* Verify the weights blob and create a context whose kernels run on num_threads threads (the
 * calling thread and num_threads - 1 workers the context owns; 0 = one per online core; at most
 * 256, FOLDC_MAX_THREADS). Each context has its own threads, so contexts with different counts
 * can run side by side. Create runs the model once on a zero input to size the scratch its kernels
 * ask for (buffers Halide does not keep on the stack), so that pf_resnet50_max_run allocates nothing.
 * Returns 0 or an error code (pf_resnet50_max_strerror). */
int pf_resnet50_max_create_threads(const void *weights, size_t weights_bytes, int num_threads, pf_resnet50_max_ctx **ctx);

/* pf_resnet50_max_create_threads with num_threads = 0 (one thread per core). */
int pf_resnet50_max_create(const void *weights, size_t weights_bytes, pf_resnet50_max_ctx **ctx);

/* As pf_resnet50_max_create_threads, on a device: FOLDC_DEVICE_CPU, or FOLDC_DEVICE_GPU (the weights are
 * copied to the GPU once, every activation lives there for the whole run, the input and output
 * cross once per run; the threads run what stays on the host). A device the bundle has no kernels
 * for, a missing GPU driver, no usable GPU or too little GPU memory are error codes
 * (pf_resnet50_max_strerror); nothing aborts. With both kernels (PF_RESNET50_MAX_HAS_CPU and PF_RESNET50_MAX_HAS_GPU), an app
 * falls back to the CPU by calling again. */
int pf_resnet50_max_create_on(const void *weights, size_t weights_bytes, int device, int num_threads, pf_resnet50_max_ctx **ctx);

/* The device a context runs on. */
int pf_resnet50_max_device(const pf_resnet50_max_ctx *ctx);

/* The number of threads a context runs its kernels on. */
int pf_resnet50_max_num_threads(const pf_resnet50_max_ctx *ctx);

/* One inference: input[PF_RESNET50_MAX_INPUT_SIZE] -> output[PF_RESNET50_MAX_OUTPUT_SIZE]. Returns 0 or an error code. */
int pf_resnet50_max_run(pf_resnet50_max_ctx *ctx, const float *input, float *output);

/* As pf_resnet50_max_run, also writing each layer's wall time in seconds to seconds[PF_RESNET50_MAX_NUM_LAYERS]. */
int pf_resnet50_max_profile(pf_resnet50_max_ctx *ctx, const float *input, float *output, double *seconds);

void pf_resnet50_max_destroy(pf_resnet50_max_ctx *ctx);

const char *pf_resnet50_max_strerror(int code);

/* The message of the last kernel error on this context ("" if none); with NULL, the message of this
 * thread's last failed pf_resnet50_max_create_on (its kernels run once on a zero input to size their scratch:
 * a kernel or device error there). */
const char *pf_resnet50_max_last_error(const pf_resnet50_max_ctx *ctx);

/* Layer i (0 <= i < PF_RESNET50_MAX_NUM_LAYERS): its name, multiply-accumulates, the bytes it must move at
 * the least (its inputs and parameters read once, its output written once), and op with the
 * algorithm it runs as (e.g. "conv2d winograd F(4x4)", "conv2d direct"; pf_resnet50_max.json has the details). */
const char *pf_resnet50_max_layer_name(int i);
double pf_resnet50_max_layer_macs(int i);
double pf_resnet50_max_layer_bytes(int i);
const char *pf_resnet50_max_layer_algorithm(int i);

/* Deprecated: contexts now own their threads (pf_resnet50_max_create_threads). This only sizes Halide's
 * process-wide pool, which foldc contexts no longer use. */
void pf_resnet50_max_set_num_threads(int n);

#ifdef __cplusplus
}
#endif

#endif /* PF_RESNET50_MAX_H */
