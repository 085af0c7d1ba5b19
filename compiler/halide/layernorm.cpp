// layernorm: LayerNorm over the channel dim of `rows` token vectors.
//
//   mean(r) = 1/d sum_c in(c, r),  var(r) = 1/d sum_c (in(c, r) - mean(r))^2
//   out(c, r) = (in(c, r) - mean(r)) / sqrt(var(r) + eps) * weight(c) + bias(c)
//   Buffers: input (d, rows), weight (d), bias (d), output (d, rows).
//
// Schedule: per row, both reductions keep V partial sums in one vector (V = the largest power of
// two <= the natural width dividing d), summed across lanes at the end; the normalisation is
// vectorised with a ShiftInwards tail. Two passes over the row (as PyTorch computes the variance:
// no cancellation from E[x^2] - E[x]^2). Rows are split across threads in blocks of 8.
// GPU (targets with a GPU feature): a block takes gpu_tile_r rows (default 4); the V partial sums of
// each row are V threads (a tree of two levels), the statistics live in shared memory, then
// gpu_tile_c threads (default 64) per row normalise its channels.

#include "foldc_common.h"

namespace {

using namespace Halide;
using namespace foldc;

class LayerNorm : public Generator<LayerNorm> {
public:
    GeneratorParam<int> d{"d", 384};
    GeneratorParam<int> rows{"rows", 197};
    GeneratorParam<float> eps{"eps", 1e-6f};
    // GPU schedule knobs (0 = default 64 x 4): threads per block along the channels and the rows
    GeneratorParam<int> gpu_tile_c{"gpu_tile_c", 0};
    GeneratorParam<int> gpu_tile_r{"gpu_tile_r", 0};

    Input<Buffer<float, 2>> input{"input"};
    Input<Buffer<float, 1>> weight{"weight"};
    Input<Buffer<float, 1>> bias{"bias"};
    Output<Buffer<float, 2>> output{"output"};

    void generate() {
        const int D = d, R = rows;
        pin_dense(input, {D, R});
        pin_dense(weight, {D});
        pin_dense(bias, {D});
        const int NV = natural_vector_size<float>();
        int V = 1;
        while (V * 2 <= NV && D % (V * 2) == 0) V *= 2;

        Var c("c"), r("r"), l("l");
        RDom k(0, D / V, "k"), j(0, V, "j");
        Func psum("psum"), mean("mean"), psq("psq"), rstd("rstd");
        psum(l, r) = 0.0f;
        psum(l, r) += input(k * V + l, r);
        mean(r) = 0.0f;
        mean(r) += psum(j, r);
        Expr mu = mean(r) * (1.0f / D);
        psq(l, r) = 0.0f;
        Expr t = input(k * V + l, r) - mean(r) * (1.0f / D);
        psq(l, r) += t * t;
        Func var("var");
        var(r) = 0.0f;
        var(r) += psq(j, r);
        rstd(r) = 1.0f / sqrt(var(r) * (1.0f / D) + (float)eps);
        output(c, r) = (input(c, r) - mu) * rstd(r) * weight(c) + bias(c);
        pin_dense(output, {D, R});

        if (get_target().has_gpu_feature()) {
            const int TC = gpu_fit(gpu_tile_c > 0 ? (int)gpu_tile_c : 64, D);
            const int TR = gpu_fit(gpu_tile_r > 0 ? (int)gpu_tile_r : 4, R);
            Var rb("rb"), rt("rt"), co("co"), ct("ct");
            output.split(r, rb, rt, TR, TailStrategy::ShiftInwards)
                .split(c, co, ct, TC, TailStrategy::ShiftInwards)
                .reorder(ct, rt, co, rb)
                .gpu_blocks(rb)
                .gpu_threads(ct, rt);
            for (Func f : {psum, psq}) {
                f.compute_at(output, rb).gpu_threads(l, r);
                f.update().gpu_threads(l, r);
            }
            for (Func f : {mean, var}) {
                f.compute_at(output, rb).gpu_threads(r);
                f.update().gpu_threads(r);
            }
            rstd.compute_at(output, rb).gpu_threads(r);
            estimate_dense(input, {D, R});
            estimate_dense(weight, {D});
            estimate_dense(bias, {D});
            estimate_dense(output, {D, R});
            return;
        }
        const int VW = vec_for(D, NV);
        Var ro("ro"), ri("ri");
        Var rl = r;
        if (R >= 16) {
            output.split(r, ro, ri, 8, TailStrategy::ShiftInwards).parallel(ro);
            rl = ri;
        }
        output.vectorize(c, VW, TailStrategy::ShiftInwards);
        for (Func f : {psum, psq}) {
            f.compute_at(output, rl).vectorize(l);
            f.update().vectorize(l);
        }
        mean.compute_at(output, rl);
        var.compute_at(output, rl);
        rstd.compute_at(output, rl);

        estimate_dense(input, {D, R});
        estimate_dense(weight, {D});
        estimate_dense(bias, {D});
        estimate_dense(output, {D, R});
    }
};

}  // namespace

HALIDE_REGISTER_GENERATOR(LayerNorm, layernorm)
