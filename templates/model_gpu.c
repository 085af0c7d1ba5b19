/* The $gpu_name driver, loaded at run time by foldc_gpu_driver.h (which states the rule): the
 * symbols already in the process, then $libs_text. */
static foldc_gpu_driver gpu_driver; /* gpu_driver.found: a failure after that is the device's */

void *$get_symbol(void *user_context, const char *name) {
  static const char *const libraries[] = {$libs};
  (void)user_context;
  return foldc_gpu_symbol(&gpu_driver, libraries, sizeof libraries / sizeof libraries[0], name);
}

/* GPU contexts of this model alive in the process: the last one destroyed releases the device. */
static pthread_mutex_t gpu_lock = PTHREAD_MUTEX_INITIALIZER;
static int gpu_contexts;

/* Base i's host copy to the device, or back. */
static int base_to_device($(m)_ctx *ctx, int i) {
  ctx->base[i].flags = halide_buffer_flag_host_dirty;
  return halide_copy_to_device(ctx, &ctx->base[i], $interface());
}

static int base_to_host($(m)_ctx *ctx, int i) {
  ctx->base[i].flags = halide_buffer_flag_device_dirty;
  return halide_copy_to_host(ctx, &ctx->base[i]);
}

$on_device[[/* A GPU kernel's views: the device holds every value (a view another kernel left device-dirty is
 * current on the device, the only place the kernels read). */
static void device_views($(m)_ctx *ctx, int first, int count) {
  int v;
  for (v = first; v < first + count; v++) ctx->buf[v].flags = 0;
}
]]
$on_host[[/* Around a kernel that runs on the host in a GPU context: its activations' bases to the host
 * before, back to the device after (the host copies are whole, so a slice written stays right). */
static int views_to_host($(m)_ctx *ctx, int first, int count) {
  int v, err = 0;
  for (v = first; v < first + count && !err; v++) {
    ctx->buf[v].flags = 0;
    if (views[v].storage == 0) err = base_to_host(ctx, view_base[v]);
  }
  return err;
}

static int views_to_device($(m)_ctx *ctx, int first, int count) {
  int v, err = 0;
  for (v = first; v < first + count && !err; v++) {
    ctx->buf[v].flags = 0;
    if (views[v].storage == 0) err = base_to_device(ctx, view_base[v]);
  }
  return err;
}
]]
/* Free what gpu_init made (all of it, or as far as it got) and release the device after the last
 * context. */
static void gpu_fini($(m)_ctx *ctx) {
  int i;
  for (i = 0; i < NUM_VIEWS; i++) {
    if (!ctx->buf[i].device) continue;
    if (view_within[i]) {
      halide_device_release_crop(ctx, &ctx->buf[i]);
    } else {
      ctx->buf[i].device = 0;
      ctx->buf[i].device_interface = NULL;
    }
  }
  for (i = 0; i < NUM_BASES; i++)
    if (ctx->base[i].device) halide_device_free(ctx, &ctx->base[i]);
  if (ctx->gpu_started) {
    pthread_mutex_lock(&gpu_lock);
    if (--gpu_contexts == 0) halide_device_release(ctx, $interface());
    pthread_mutex_unlock(&gpu_lock);
    ctx->gpu_started = 0;
  }
}

/* Allocate every base on the device, copy the weights there, and point every view at its base
 * (or a crop of it). Returns 0, or which device error: no driver, no device, no memory. */
static int gpu_init($(m)_ctx *ctx) {
  const struct halide_device_interface_t *dev = $interface();
  int i, err;
  for (i = 0; i < NUM_BASES; i++) {
    halide_buffer_t *b = &ctx->base[i];
    b->host = (uint8_t *)(uintptr_t)((bases[i].storage ? ctx->weights : ctx->arena) + bases[i].offset);
    b->type.code = halide_type_uint;
    b->type.bits = 8;
    b->type.lanes = 1;
    b->dimensions = 1;
    b->dim = &ctx->base_dim[i];
    ctx->base_dim[i].min = 0;
    ctx->base_dim[i].extent = (int32_t)bases[i].bytes;
    ctx->base_dim[i].stride = 1;
    ctx->base_dim[i].flags = 0;
    err = halide_device_malloc(ctx, b, dev);
    if (err) {
      if (!gpu_driver.found) return FOLDC_ERR_GPU_DRIVER;
      return ctx->gpu_started || err == halide_error_code_out_of_memory ? FOLDC_ERR_GPU_MEMORY : FOLDC_ERR_GPU_DEVICE;
    }
    if (!ctx->gpu_started) {
      ctx->gpu_started = 1;
      pthread_mutex_lock(&gpu_lock);
      gpu_contexts++;
      pthread_mutex_unlock(&gpu_lock);
    }
    if (bases[i].storage && base_to_device(ctx, i)) return FOLDC_ERR_GPU_MEMORY;
  }
  for (i = 0; i < NUM_VIEWS; i++) {
    int k = view_base[i];
    halide_buffer_t *base = &ctx->base[k];
    if (view_within[i] == 0) {
      ctx->buf[i].device = base->device;
      ctx->buf[i].device_interface = base->device_interface;
    } else {
      halide_buffer_t crop = *base;
      halide_dimension_t d = ctx->base_dim[k];
      d.min = (int32_t)view_within[i];
      d.extent -= d.min;
      crop.dim = &d;
      crop.device = 0;
      crop.device_interface = NULL;
      if (halide_device_crop(ctx, base, &crop)) return FOLDC_ERR_GPU_MEMORY;
      ctx->buf[i].device = crop.device;
      ctx->buf[i].device_interface = crop.device_interface;
    }
  }
  return FOLDC_OK;
}
