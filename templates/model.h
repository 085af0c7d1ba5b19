/* $(m).h: the $(m) model, compiled by foldc $(version) for target $(target).
 * Generated from $(source); regenerate rather than edit.
 *
 * Memory contract: input and output are float32 arrays in PyTorch order (NCHW, batch $batch).
 * The weights blob ($(M)_WEIGHTS_BYTES bytes, see foldc_runtime.h for its header) is read in place
 * and must stay valid until $(m)_destroy; $(M)_WEIGHTS_ALIGN-byte alignment is best (mmap gives it).
 * A context owns a $(M)_ARENA_BYTES-byte arena for activations; $(m)_run allocates nothing.
 * One context runs one inference at a time; use one context per thread.
 */
#ifndef $(M)_H
#define $(M)_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

$input_macros[[#define $(M)_INPUT_$name $value
]]$output_macros[[#define $(M)_OUTPUT_$name $value
]]#define $(M)_ARENA_BYTES $arena_bytes
#define $(M)_WEIGHTS_BYTES $weights_bytes
#define $(M)_WEIGHTS_ALIGN 64
#define $(M)_NUM_LAYERS $num_layers
#define $(M)_MACS $macs
#define $(M)_HAS_CPU $has_cpu /* kernels for the CPU (FOLDC_DEVICE_CPU) */
#define $(M)_HAS_GPU $has_gpu /* kernels for the GPU$gpu_api_note (FOLDC_DEVICE_GPU) */
#define $(M)_DEFAULT_DEVICE $default_device /* the device $(m)_create and $(m)_create_threads use */

#ifndef FOLDC_DEVICE_CPU
#define FOLDC_DEVICE_CPU 0
#define FOLDC_DEVICE_GPU 1
#endif

typedef struct $(m)_ctx $(m)_ctx;

/* Verify the weights blob and create a context whose kernels run on num_threads threads (the
 * calling thread and num_threads - 1 workers the context owns; 0 = one per online core; at most
 * 256, FOLDC_MAX_THREADS). Each context has its own threads, so contexts with different counts
 * can run side by side. Create runs the model once on a zero input to size the scratch its kernels
 * ask for (buffers Halide does not keep on the stack), so that $(m)_run allocates nothing.
 * Returns 0 or an error code ($(m)_strerror). */
int $(m)_create_threads(const void *weights, size_t weights_bytes, int num_threads, $(m)_ctx **ctx);

/* $(m)_create_threads with num_threads = 0 (one thread per core). */
int $(m)_create(const void *weights, size_t weights_bytes, $(m)_ctx **ctx);

/* As $(m)_create_threads, on a device: FOLDC_DEVICE_CPU, or FOLDC_DEVICE_GPU (the weights are
 * copied to the GPU once, every activation lives there for the whole run, the input and output
 * cross once per run; the threads run what stays on the host). A device the bundle has no kernels
 * for, a missing GPU driver, no usable GPU or too little GPU memory are error codes
 * ($(m)_strerror); nothing aborts. With both kernels ($(M)_HAS_CPU and $(M)_HAS_GPU), an app
 * falls back to the CPU by calling again. */
int $(m)_create_on(const void *weights, size_t weights_bytes, int device, int num_threads, $(m)_ctx **ctx);

/* The device a context runs on. */
int $(m)_device(const $(m)_ctx *ctx);

/* The number of threads a context runs its kernels on. */
int $(m)_num_threads(const $(m)_ctx *ctx);

/* One inference: input[$(M)_INPUT_SIZE] -> output[$(M)_OUTPUT_SIZE]. Returns 0 or an error code. */
int $(m)_run($(m)_ctx *ctx, const float *input, float *output);

/* As $(m)_run, also writing each layer's wall time in seconds to seconds[$(M)_NUM_LAYERS]. */
int $(m)_profile($(m)_ctx *ctx, const float *input, float *output, double *seconds);

void $(m)_destroy($(m)_ctx *ctx);

const char *$(m)_strerror(int code);

/* The message of the last kernel error on this context ("" if none); with NULL, the message of this
 * thread's last failed $(m)_create_on (its kernels run once on a zero input to size their scratch:
 * a kernel or device error there). */
const char *$(m)_last_error(const $(m)_ctx *ctx);

/* Layer i (0 <= i < $(M)_NUM_LAYERS): its name, multiply-accumulates, the bytes it must move at
 * the least (its inputs and parameters read once, its output written once), and op with the
 * algorithm it runs as (e.g. "conv2d winograd F(4x4)", "conv2d direct"; $(m).json has the details). */
const char *$(m)_layer_name(int i);
double $(m)_layer_macs(int i);
double $(m)_layer_bytes(int i);
const char *$(m)_layer_algorithm(int i);

/* Deprecated: contexts now own their threads ($(m)_create_threads). This only sizes Halide's
 * process-wide pool, which foldc contexts no longer use. */
void $(m)_set_num_threads(int n);

#ifdef __cplusplus
}
#endif

#endif /* $(M)_H */
