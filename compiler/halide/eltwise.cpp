// eltwise: elementwise ops on flat float32 arrays of n elements.
//
//   op = add  out(i) = act(a(i) + b(i))   (a residual add; act none by default)
//   op = act  out(i) = act(a(i))          (an activation no producer took; act must not be none)
//   act: the activation (activation.h).
//   Buffers: a (n), b (n) -- b exists only for add (added in configure(), so
//   the C signature is (a, b, output) or (a, output)), output (n).
//
// Schedule: vectorised at the natural width, 4 vectors unrolled per
// iteration, ShiftInwards tail (stays vectorised for any n >= one vector);
// parallel over chunks of 16K elements when n is large. GPU (targets with a GPU feature): one
// thread per element, blocks of gpu_threads (default 256).

#include "activation.h"
#include "foldc_common.h"

#include <cstdio>
#include <cstdlib>

namespace {

using namespace Halide;
using namespace foldc;

class Eltwise : public Generator<Eltwise> {
public:
    GeneratorParam<int> n{"n", 1024};
    GeneratorParam<std::string> op{"op", "add"};
    GeneratorParam<Act> act{"act", Act::None, act_names()};
    // GPU schedule knob (0 = default 256): threads per block, one element each
    GeneratorParam<int> gpu_threads{"gpu_threads", 0};

    Input<Buffer<float, 1>> a{"a"};
    Input<Buffer<float, 1>> *b = nullptr;
    Output<Buffer<float, 1>> output{"output"};

    void configure() {
        const std::string o = op;
        if ((o != "add" && o != "act") || (o == "act" && act == Act::None)) {
            fprintf(stderr, "eltwise: op must be add, or act with an activation (got op=%s)\n", o.c_str());
            abort();
        }
        if (o == "add") b = add_input<Buffer<float, 1>>("b");
    }

    void generate() {
        const int N = n;
        pin_dense(a, {N});
        if (b) pin_dense(*b, {N});
        Var i("i");
        Expr e = a(i);
        if (b) e += (*b)(i);
        output(i) = activate(act, e);
        pin_dense(output, {N});
        if (get_target().has_gpu_feature()) {
            gpu_map(output, {N}, {gpu_threads > 0 ? (int)gpu_threads : 256});
            estimate_dense(a, {N});
            if (b) estimate_dense(*b, {N});
            estimate_dense(output, {N});
            return;
        }

        const int V = natural_vector_size<float>();
        const int VW = vec_for(N, V);
        int nv = 1;
        while (nv < 4 && (nv * 2) * VW <= N) nv *= 2;
        Var io("io"), ii("ii"), iv("iv"), iu("iu"), il("il");
        if (N >= (1 << 16)) {
            output.split(i, io, ii, 1 << 14, TailStrategy::ShiftInwards).parallel(io);
        } else {
            ii = i;
        }
        output.split(ii, iv, il, nv * VW, TailStrategy::ShiftInwards).split(il, iu, il, VW).unroll(iu).vectorize(il);

        estimate_dense(a, {N});
        if (b) estimate_dense(*b, {N});
        estimate_dense(output, {N});
    }
};

}  // namespace

HALIDE_REGISTER_GENERATOR(Eltwise, eltwise)
