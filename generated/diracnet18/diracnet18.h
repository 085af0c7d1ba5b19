/* diracnet18.h: the diracnet18 model, compiled by foldc 0.1 for target x86-64-linux-avx-avx2-avx512-avx512_skylake-f16c-fma-sse41,x86-64-linux-avx-avx2-f16c-fma-sse41,x86-64-linux-sse41,arm-64-linux.
 * Generated from diracnet18; regenerate rather than edit.
 *
 * Memory contract: input and output are float32 arrays in PyTorch order (NCHW, batch 1).
 * The weights blob (DIRACNET18_WEIGHTS_BYTES bytes, see foldc_runtime.h for its header) is read in place
 * and must stay valid until diracnet18_destroy; DIRACNET18_WEIGHTS_ALIGN-byte alignment is best (mmap gives it).
 * A context owns a DIRACNET18_ARENA_BYTES-byte arena for activations; diracnet18_run allocates nothing.
 * One context runs one inference at a time; use one context per thread.
 */
#ifndef DIRACNET18_H
#define DIRACNET18_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DIRACNET18_INPUT_RANK 4
#define DIRACNET18_INPUT_DIM0 1
#define DIRACNET18_INPUT_DIM1 3
#define DIRACNET18_INPUT_DIM2 224
#define DIRACNET18_INPUT_DIM3 224
#define DIRACNET18_INPUT_C 3
#define DIRACNET18_INPUT_H 224
#define DIRACNET18_INPUT_W 224
#define DIRACNET18_INPUT_SIZE 150528
#define DIRACNET18_OUTPUT_RANK 2
#define DIRACNET18_OUTPUT_DIM0 1
#define DIRACNET18_OUTPUT_DIM1 1000
#define DIRACNET18_OUTPUT_SIZE 1000
#define DIRACNET18_ARENA_BYTES 4014080
#define DIRACNET18_WEIGHTS_BYTES 64102976
#define DIRACNET18_WEIGHTS_ALIGN 64
#define DIRACNET18_NUM_LAYERS 23
#define DIRACNET18_MACS 1794805760
#define DIRACNET18_HAS_CPU 1 /* kernels for the CPU (FOLDC_DEVICE_CPU) */
#define DIRACNET18_HAS_GPU 0 /* kernels for the GPU (FOLDC_DEVICE_GPU) */
#define DIRACNET18_DEFAULT_DEVICE FOLDC_DEVICE_CPU /* the device diracnet18_create and diracnet18_create_threads use */

#ifndef FOLDC_DEVICE_CPU
#define FOLDC_DEVICE_CPU 0
#define FOLDC_DEVICE_GPU 1
#endif

typedef struct diracnet18_ctx diracnet18_ctx;

/* Verify the weights blob and create a context whose kernels run on num_threads threads (the
 * calling thread and num_threads - 1 workers the context owns; 0 = one per online core; at most
 * 256, FOLDC_MAX_THREADS). Each context has its own threads, so contexts with different counts
 * can run side by side. Create runs the model once on a zero input to size the scratch its kernels
 * ask for (buffers Halide does not keep on the stack), so that diracnet18_run allocates nothing.
 * Returns 0 or an error code (diracnet18_strerror). */
int diracnet18_create_threads(const void *weights, size_t weights_bytes, int num_threads, diracnet18_ctx **ctx);

/* diracnet18_create_threads with num_threads = 0 (one thread per core). */
int diracnet18_create(const void *weights, size_t weights_bytes, diracnet18_ctx **ctx);

/* As diracnet18_create_threads, on a device: FOLDC_DEVICE_CPU, or FOLDC_DEVICE_GPU (the weights are
 * copied to the GPU once, every activation lives there for the whole run, the input and output
 * cross once per run; the threads run what stays on the host). A device the bundle has no kernels
 * for, a missing GPU driver, no usable GPU or too little GPU memory are error codes
 * (diracnet18_strerror); nothing aborts. With both kernels (DIRACNET18_HAS_CPU and DIRACNET18_HAS_GPU), an app
 * falls back to the CPU by calling again. */
int diracnet18_create_on(const void *weights, size_t weights_bytes, int device, int num_threads, diracnet18_ctx **ctx);

/* The device a context runs on. */
int diracnet18_device(const diracnet18_ctx *ctx);

/* The number of threads a context runs its kernels on. */
int diracnet18_num_threads(const diracnet18_ctx *ctx);

/* One inference: input[DIRACNET18_INPUT_SIZE] -> output[DIRACNET18_OUTPUT_SIZE]. Returns 0 or an error code. */
int diracnet18_run(diracnet18_ctx *ctx, const float *input, float *output);

/* As diracnet18_run, also writing each layer's wall time in seconds to seconds[DIRACNET18_NUM_LAYERS]. */
int diracnet18_profile(diracnet18_ctx *ctx, const float *input, float *output, double *seconds);

void diracnet18_destroy(diracnet18_ctx *ctx);

const char *diracnet18_strerror(int code);

/* The message of the last kernel error on this context ("" if none); with NULL, the message of this
 * thread's last failed diracnet18_create_on (its kernels run once on a zero input to size their scratch:
 * a kernel or device error there). */
const char *diracnet18_last_error(const diracnet18_ctx *ctx);

/* Layer i (0 <= i < DIRACNET18_NUM_LAYERS): its name, multiply-accumulates, the bytes it must move at
 * the least (its inputs and parameters read once, its output written once), and op with the
 * algorithm it runs as (e.g. "conv2d winograd F(4x4)", "conv2d direct"; diracnet18.json has the details). */
const char *diracnet18_layer_name(int i);
double diracnet18_layer_macs(int i);
double diracnet18_layer_bytes(int i);
const char *diracnet18_layer_algorithm(int i);

/* Deprecated: contexts now own their threads (diracnet18_create_threads). This only sizes Halide's
 * process-wide pool, which foldc contexts no longer use. */
void diracnet18_set_num_threads(int n);

#ifdef __cplusplus
}
#endif

#endif /* DIRACNET18_H */
