// linear: fully connected layer over `rows` independent input vectors.
//
//   out(co, r) = act( bias(co) + sum_{ci < cin} w(co, ci) * in(ci, r) )
//   act: the activation `act` (activation.h), none by default.
//   Buffers: input (cin, rows), weights (co, ci) = (cout, cin) i.e. memory
//   [ci][co] with co innermost, bias (cout), output (cout, rows).
//
// Schedule: register block of tile_co vectors of output channels
// (vectorised, ShiftInwards tail so cout = 1000 stays vectorised) times
// tile_r rows (unrolled); the reduction over ci is innermost.  Each ci step
// loads tile_co weight vectors (contiguous) and broadcasts tile_r inputs.
// For rows = 1 (GEMV, memory bound) the default is a wide channel block
// (8 vectors = 128 channels on AVX-512: each ci step reads 512 contiguous
// bytes of weights) and the blocks are distributed over threads.
//
// Schedule GeneratorParams (0 = heuristic default):
//   tile_co  output-channel block in vectors (default 8 for rows == 1,
//            else 4 on AVX-512 / 2 on AVX2)
//   tile_r   rows per register block (default 1 for rows == 1, else the
//            largest that fits the register file, preferring divisors)
// GPU (targets with a GPU feature): foldc_common.h's gpu_gemm, blocks of 64 channels x 32 rows, 4 x 4
// per thread (rows == 1: 64 channels, one per thread), 16 input channels per staged chunk.

#include "activation.h"
#include "foldc_common.h"

namespace {

using namespace Halide;
using namespace foldc;

class Linear : public Generator<Linear> {
public:
    GeneratorParam<int> cin{"cin", 2048};
    GeneratorParam<int> cout{"cout", 1000};
    GeneratorParam<int> rows{"rows", 1};
    GeneratorParam<Act> act{"act", Act::None, act_names()};
    GeneratorParam<int> tile_co{"tile_co", 0};
    GeneratorParam<int> tile_r{"tile_r", 0};
    // GPU schedule knobs (0 = default; foldc_common.h gpu_gemm): block gpu_tile_co x gpu_tile_r
    // outputs, gpu_reg_co x gpu_reg_r per thread, gpu_k_block input channels per staged chunk,
    // gpu_stage 1 staged in shared memory / 0 from global memory
    GeneratorParam<int> gpu_tile_co{"gpu_tile_co", 0};
    GeneratorParam<int> gpu_tile_r{"gpu_tile_r", 0};
    GeneratorParam<int> gpu_reg_co{"gpu_reg_co", 0};
    GeneratorParam<int> gpu_reg_r{"gpu_reg_r", 0};
    GeneratorParam<int> gpu_k_block{"gpu_k_block", 0};
    GeneratorParam<int> gpu_stage{"gpu_stage", 1};

    Input<Buffer<float, 2>> input{"input"};
    Input<Buffer<float, 2>> weights{"weights"};
    Input<Buffer<float, 1>> bias{"bias"};
    Output<Buffer<float, 2>> output{"output"};

    void generate() {
        const int CIN = cin, COUT = cout, R = rows;
        pin_dense(input, {CIN, R});
        pin_dense(weights, {COUT, CIN});
        pin_dense(bias, {COUT});

        Var c("c"), r("r");
        RDom k(0, CIN, "k");
        Func acc("acc");
        acc(c, r) = bias(c);
        const bool gpu = get_target().has_gpu_feature();
        Func wa("wa"), xb("xb");  // GPU: the operands as Funcs, staged in shared memory
        if (gpu) {
            Var kk("kk");
            // kk clamped: a last chunk of k past CIN (guarded in the sum) stages in-bounds reads
            wa(c, kk) = weights(c, min(kk, CIN - 1));
            xb(kk, r) = input(min(kk, CIN - 1), r);
            acc(c, r) += wa(c, k) * xb(k, r);
        } else {
            acc(c, r) += weights(c, k) * input(k, r);
        }
        output(c, r) = activate(act, acc(c, r));
        pin_dense(output, {COUT, R});
        if (gpu) {
            gpu_gemm(output, acc, k, wa, xb, COUT, R, CIN,
                     {gpu_tile_co, gpu_tile_r, gpu_reg_co, gpu_reg_r, gpu_k_block, (bool)gpu_stage});
            estimate_dense(input, {CIN, R});
            estimate_dense(weights, {COUT, CIN});
            estimate_dense(bias, {COUT});
            estimate_dense(output, {COUT, R});
            return;
        }

        const int V = natural_vector_size<float>();
        const int regs = vector_registers(get_target());
        const int VW = vec_for(COUT, V);
        int tco = tile_co, tr = tile_r;
        if (tco <= 0) tco = (R == 1) ? 8 : (regs >= 32 ? 4 : 2);
        while (tco > 1 && tco * VW > COUT) tco--;
        if (tr <= 0) {
            if (R == 1) {
                tr = 1;
            } else {
                int cap = std::max(1, (regs - tco - 1) / tco);
                cap = std::min(cap, R);
                tr = largest_divisor_in(R, std::max(1, (cap * 2) / 3), cap);
                if (tr == 0) tr = cap;
            }
        }
        tr = std::max(1, std::min(tr, R));
        const int T = tco * VW;

        Var co("co"), cv("cv"), cl("cl"), ro("ro"), ri("ri");
        output.split(c, co, c, T, TailStrategy::ShiftInwards)
            .split(c, cv, cl, VW)
            .split(r, ro, ri, tr, TailStrategy::ShiftInwards)
            .vectorize(cl)
            .unroll(cv)
            .unroll(ri)
            .reorder(cl, cv, ri, co, ro);
        const int co_tiles = (COUT + T - 1) / T;
        const int r_tiles = (R + tr - 1) / tr;
        const long long work = (long long)COUT * CIN * R;
        // Tile loop order: the loop over row blocks is outermost (and
        // parallel) when there are more row blocks than channel blocks,
        // otherwise the channel-block loop is.
        Var inner = co;
        if (r_tiles >= co_tiles) {
            if (work >= (1 << 16)) output.parallel(ro);
        } else {
            output.reorder(cl, cv, ri, ro, co);
            if (work >= (1 << 16)) output.parallel(co);
            inner = ro;
        }
        acc.compute_at(output, inner)
            .split(c, cv, cl, VW)
            .vectorize(cl)
            .unroll(cv)
            .unroll(r);
        acc.update().split(c, cv, cl, VW).reorder(cl, cv, r, k).vectorize(cl).unroll(cv).unroll(r);

        estimate_dense(input, {CIN, R});
        estimate_dense(weights, {COUT, CIN});
        estimate_dense(bias, {COUT});
        estimate_dense(output, {COUT, R});
    }
};

}  // namespace

HALIDE_REGISTER_GENERATOR(Linear, linear)
