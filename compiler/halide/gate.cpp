// gate: squeeze-and-excitation's channel gate (Hu et al., "Squeeze-and-Excitation Networks", CVPR
// 2018) on a channels-innermost float32 map of C channels and P = H * W pixels:
//   output(c, p) = act(x(c, p) * s(c) [+ residual(c, p)])
// s: the excitation, one value a channel (computed per image by the SE branch); the residual (when
// residual = true) and act (activation.h) are the epilogue a ResNet block puts after it
// (passes/fuse_epilogue.lua).
//
// Schedule: vectorised along c at the natural width (ShiftInwards tail), 4 pixels unrolled; pixels
// in parallel chunks when the map is large. GPU (targets with a GPU feature): one thread per element,
// blocks of gpu_tile_c x gpu_tile_r (default 64 channels x 4 pixels).

#include "activation.h"
#include "foldc_common.h"

namespace {

using namespace Halide;
using namespace foldc;

class Gate : public Generator<Gate> {
public:
    GeneratorParam<int> c_{"c", 64};
    GeneratorParam<int> p_{"p", 3136};
    GeneratorParam<bool> residual{"residual", false};
    GeneratorParam<Act> act{"act", Act::None, act_names()};
    // GPU schedule knobs (0 = default 64 x 4): threads per block along c and along the pixels
    GeneratorParam<int> gpu_tile_c{"gpu_tile_c", 0};
    GeneratorParam<int> gpu_tile_r{"gpu_tile_r", 0};

    Input<Buffer<float, 2>> x{"x"};
    Input<Buffer<float, 1>> s{"s"};
    Input<Buffer<float, 2>> *r = nullptr;
    Output<Buffer<float, 2>> output{"output"};

    void configure() {
        if (residual) r = add_input<Buffer<float, 2>>("residual");
    }

    void generate() {
        const int C = c_, P = p_;
        pin_dense(x, {C, P});
        pin_dense(s, {C});
        if (r) pin_dense(*r, {C, P});
        Var c("c"), p("p");
        Expr e = x(c, p) * s(c);
        if (r) e += (*r)(c, p);
        output(c, p) = activate(act, e);
        pin_dense(output, {C, P});
        if (get_target().has_gpu_feature()) {
            gpu_map(output, {C, P}, {gpu_tile_c > 0 ? (int)gpu_tile_c : 64, gpu_tile_r > 0 ? (int)gpu_tile_r : 4});
        } else {
        const int VW = vec_for(C, natural_vector_size<float>());
        Var co("co"), ci("ci"), po("po"), pi("pi");
        output.split(c, co, ci, VW, TailStrategy::ShiftInwards).vectorize(ci);
        if (P >= 4) output.split(p, po, pi, 4, TailStrategy::ShiftInwards).unroll(pi);
        else po = p;
        if ((int64_t)C * P >= (1 << 16)) {
            Var pt("pt");
            output.split(po, pt, po, std::max(1, (1 << 14) / (4 * C)), TailStrategy::GuardWithIf).parallel(pt);
        }
        }

        estimate_dense(x, {C, P});
        estimate_dense(s, {C});
        if (r) estimate_dense(*r, {C, P});
        estimate_dense(output, {C, P});
    }
};

}  // namespace

HALIDE_REGISTER_GENERATOR(Gate, gate)
