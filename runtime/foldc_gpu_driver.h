/* foldc_gpu_driver.h: the GPU driver, loaded at run time (copied into GPU bundles; header-only,
 * static inline). Halide's GPU runtime asks a hook, halide_opencl_get_symbol or
 * halide_cuda_get_symbol (weak in the runtime), for every driver symbol; a program that defines the
 * hook answers with foldc_gpu_symbol, so it links no GPU library and needs no GPU header to build.
 * The rule: the symbols already in the process come first (an app that links the driver), then the
 * first of the given libraries that opens (libOpenCL.so.1 / libcuda.so.1, then the unversioned
 * name: Halide 14's own hook tries only the unversioned name, which Debian ships in -dev packages
 * alone). The library stays open. A loader's state is process-wide, as the driver is, and not
 * locked: Halide calls the hook under its device context lock. Users: the bundle's glue
 * (templates/model_gpu.c), compiler/gpu_peak.c, tests/kernels/kernel_test.c. The includer defines
 * _POSIX_C_SOURCE (dlopen) and links -ldl where the C library needs it.
 */
#ifndef FOLDC_GPU_DRIVER_H
#define FOLDC_GPU_DRIVER_H

#include <dlfcn.h>
#include <stddef.h>

/* One driver's loader: zero-initialised (a static). library: the driver library once one opened;
 * found: a symbol was found (a failure after that is the device's, not "no driver"). */
typedef struct {
  void *process;
  void *library;
  int found;
} foldc_gpu_driver;

/* The driver symbol `name`, or NULL: from the process, else from the first of the n libraries
 * that opens (tried on every call until one does). */
static inline void *foldc_gpu_symbol(foldc_gpu_driver *d, const char *const *libraries, size_t n,
                                     const char *name) {
  void *sym;
  size_t i;
  if (!d->process) d->process = dlopen(NULL, RTLD_LAZY);
  sym = d->process ? dlsym(d->process, name) : NULL;
  for (i = 0; !sym && !d->library && i < n; i++) d->library = dlopen(libraries[i], RTLD_LAZY | RTLD_LOCAL);
  if (!sym && d->library) sym = dlsym(d->library, name);
  if (sym) d->found = 1;
  return sym;
}

#endif
