// gpu_peak: the GPU's FMA peak, measured (the GPU counterpart of compiler/peak.c; foldc bench's
// "% of peak" on a GPU context, compiler/backend.lua). Each of n threads runs C = 8 independent
// chains a_c <- a_c m + k for `steps` steps (enough independent FMAs per thread to hide the FMA
// latency, as peak.c's chains do on a core), then writes their sum:
//   out(i) = sum_c a_c(steps),  a_c(0) = seed(i) + c,  2 C steps FLOPs per thread.
// Blocks of 256 threads; m and k keep the values bounded (m < 1), so nothing overflows. `steps` is
// a multiple of 16.

#include "foldc_common.h"

#include <cstdio>
#include <cstdlib>

namespace {

using namespace Halide;
using namespace foldc;

class GpuPeak : public Generator<GpuPeak> {
public:
    GeneratorParam<int> steps{"steps", 4096};
    Input<Buffer<float, 1>> seed{"seed"};
    Output<Buffer<float, 1>> output{"output"};

    void generate() {
        const int C = 8;
        Var i("i"), c("c"), ib("ib"), it("it");
        // D dependent steps a step of r (r itself only names the loop: times 0)
        const int D = 16;
        RDom r(0, std::max(1, (int)steps / D), "r");
        Func a("a");
        a(c, i) = seed(i) + cast<float>(c);
        Expr e = a(c, i);
        for (int d = 0; d < D; d++) e = e * 0.9990234375f + 0.0009765625f;
        a(c, i) = e + cast<float>(r) * 0.0f;
        Expr sum = a(0, i);
        for (int k = 1; k < C; k++) sum += a(k, i);
        output(i) = sum;
        if (!get_target().has_gpu_feature()) {
            fprintf(stderr, "gpu_peak: a GPU target is needed (opencl or cuda)\n");
            abort();
        }
        output.gpu_tile(i, ib, it, 256, TailStrategy::GuardWithIf);
        a.compute_at(output, it).bound(c, 0, C).unroll(c);
        a.update().reorder(c, r).unroll(c);
    }
};

}  // namespace

HALIDE_REGISTER_GENERATOR(GpuPeak, gpu_peak)
