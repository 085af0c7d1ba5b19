/* Layer i of the model. Beside each call: what it runs (op, algorithm, shapes, MACs), the kernel's
 * generator with every parameter it was built with (for target $(target)), and its schedule (the
 * record from foldc tune's schedules file, or the generator's default); $(m).json holds the same. */
static int run_layer($(m)_ctx *ctx, int i) {
  halide_buffer_t *b = ctx->buf;
  unsigned char *a = ctx->arena;
  (void)b;
  (void)a;
  switch (i) {
$steps[[  case $index:
    /* $comment */
    $call
]]  default: return 0;
  }
}

static int run_layers($(m)_ctx *ctx, const float *input, float *output, double *seconds) {
  int i, err;
  if (!ctx || !input || !output) return FOLDC_ERR_ARGUMENT;
  ctx->error[0] = 0;
  $input_copy$input_to_device
  for (i = $layer_major_from; i < $(M)_NUM_LAYERS; i++) {
    double t0 = seconds ? foldc_now() : 0.0;
    err = run_layer(ctx, i);
    if (err) {
      /* the layer's name, then the kernel's message (cut to the buffer) */
      char msg[sizeof ctx->error];
      const char *part[3], *c;
      size_t n = 0;
      int p;
      memcpy(msg, ctx->error, sizeof msg);
      part[0] = layer_names[i];
      part[1] = ": ";
      part[2] = msg[0] ? msg : "failed";
      for (p = 0; p < 3; p++)
        for (c = part[p]; *c && n < sizeof ctx->error - 1; c++) ctx->error[n++] = *c;
      ctx->error[n] = 0;
      return FOLDC_ERR_KERNEL;
    }$gpu[[
    /* GPU kernels run asynchronously: a layer's time ends when the device is done */
    if (seconds && ctx->device == FOLDC_DEVICE_GPU && halide_device_sync(ctx, &ctx->base[0])) return FOLDC_ERR_KERNEL;]]
    if (seconds) seconds[i] = foldc_now() - t0;
  }$output_to_host
  $output_copy
  return FOLDC_OK;
}

/* One run on a zero input, whose kernels' scratch requests size the context's slabs (foldc_pool.h):
 * later runs allocate nothing. */
static int size_scratch($(m)_ctx *ctx) {
  float *input = (float *)calloc($(M)_INPUT_SIZE, sizeof *input);
  float *output = (float *)malloc($(M)_OUTPUT_SIZE * sizeof *output);
  int err = input && output ? run_layers(ctx, input, output, NULL) : FOLDC_ERR_NO_MEMORY;
  free(input);
  free(output);
  if (!err && foldc_scratch_size(&ctx->threads)) err = FOLDC_ERR_NO_MEMORY;
  return err;
}

int $(m)_run($(m)_ctx *ctx, const float *input, float *output) {
  return run_layers(ctx, input, output, NULL);
}

int $(m)_profile($(m)_ctx *ctx, const float *input, float *output, double *seconds) {
  if (!seconds) return FOLDC_ERR_ARGUMENT;
  return run_layers(ctx, input, output, seconds);
}
