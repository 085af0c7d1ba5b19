// pool2d and global_avgpool: channels-innermost float32 pooling.
//
// pool2d (op = max | avg):
//   hstart = y*stride_y - pad_y, hend = min(hstart + kh, in_h + pad_y)
//   wstart = x*stride_x - pad_x, wend = min(wstart + kw, in_w + pad_x)
//   pool_size = (hend - hstart) * (wend - wstart)
//   clamp hstart/hend to [0, in_h], wstart/wend to [0, in_w]
//   max: out = max over in-bounds taps (padding ignored); NaN if any in-bounds tap is NaN
//        (PyTorch's max_pool2d); taps clamped to the edge (see generate())
//   avg: out = sum over in-bounds taps / (count_include_pad ? pool_size
//                                          : (hend-hstart)*(wend-wstart))
//   (PyTorch's AvgPool2d/MaxPool2d formulas; out_w/out_h are given by the
//   front end, which applies ceil_mode.)  Then the activation `act` (activation.h), none by default.
//   Buffers: input (c, in_w, in_h), output (c, out_w, out_h).
//   Schedule: the kw*kh taps are unrolled in the expression itself (no RDom);
//   the boundary (avg: constant_exterior, max: repeat_edge) is on x,y only, so the in-bounds test is a
//   scalar per tap; vectorised over c (natural width, ShiftInwards tail,
//   up to 4 vectors unrolled), parallel over strips of output rows.
//
// global_avgpool: out(c) = sum_{x,y} in(c,x,y) / (in_w*in_h).
//   Buffers: input (c, in_w, in_h), output (c).
//   Schedule: accumulator block of up to 4 vectors of channels kept in
//   registers while reducing over x,y; parallel over channel blocks when the
//   input is large.
//
// GPU schedules (targets with a GPU feature): pool2d one thread per output element, blocks of
// gpu_tile_c x gpu_tile_x x gpu_tile_y (default 32 x 4 x 2) with the channels across the threads
// (coalesced loads); global_avgpool one thread per channel (blocks of gpu_threads, default 64)
// summing its pixels, neighbouring threads reading neighbouring channels.

#include "activation.h"
#include "foldc_common.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

namespace {

using namespace Halide;
using namespace foldc;

class Pool2D : public Generator<Pool2D> {
public:
    GeneratorParam<int> c_{"c", 64};
    GeneratorParam<int> in_w{"in_w", 112};
    GeneratorParam<int> in_h{"in_h", 112};
    GeneratorParam<int> out_w{"out_w", 56};
    GeneratorParam<int> out_h{"out_h", 56};
    GeneratorParam<int> kw{"kw", 3};
    GeneratorParam<int> kh{"kh", 3};
    GeneratorParam<int> stride_x{"stride_x", 2};
    GeneratorParam<int> stride_y{"stride_y", 2};
    GeneratorParam<int> pad_x{"pad_x", 1};
    GeneratorParam<int> pad_y{"pad_y", 1};
    GeneratorParam<std::string> op{"op", "max"};
    GeneratorParam<bool> count_include_pad{"count_include_pad", true};
    GeneratorParam<Act> act{"act", Act::None, act_names()};
    // pixel strides of the input and output maps in floats (0: dense; a channel slice, pin_map)
    GeneratorParam<int> in_cs{"in_cs", 0};
    GeneratorParam<int> out_cs{"out_cs", 0};
    // GPU schedule knobs (0 = default): threads per block along c, x, y
    GeneratorParam<int> gpu_tile_c{"gpu_tile_c", 0};
    GeneratorParam<int> gpu_tile_x{"gpu_tile_x", 0};
    GeneratorParam<int> gpu_tile_y{"gpu_tile_y", 0};

    Input<Buffer<float, 3>> input{"input"};
    Output<Buffer<float, 3>> output{"output"};

    void generate() {
        const int C = c_, IW = in_w, IH = in_h, OW = out_w, OH = out_h;
        const int KW = kw, KH = kh, SX = stride_x, SY = stride_y, PX = pad_x, PY = pad_y;
        const std::string o = op;
        if (o != "max" && o != "avg") {
            fprintf(stderr, "pool2d: op must be max or avg (got %s)\n", o.c_str());
            abort();
        }
        const bool is_max = (o == "max");
        pin_map(input, C, IW, IH, in_cs);

        Var c("c"), x("x"), y("y");
        Region bounds = {Range(Expr(), Expr()), Range(0, IW), Range(0, IH)};
        // max: the taps are clamped to the edge instead of padded with -inf. Every window holds
        // at least one input pixel and is contiguous (padding <= kernel / 2, ceil_mode windows
        // start inside the input or its left padding), so a clamped tap repeats a pixel of its
        // own window and the max is the same; and the taps stay plain loads, which the NaN test
        // of max_keep_nan needs (a NaN in the window gives NaN, as in PyTorch; padding never does).
        Func in_b = is_max ? BoundaryConditions::repeat_edge(input, bounds)
                           : BoundaryConditions::constant_exterior(input, Expr(0.0f), bounds);

        Expr e;
        std::vector<Expr> taps;
        for (int ky = 0; ky < KH; ky++) {
            for (int kx = 0; kx < KW; kx++) {
                Expr t = in_b(c, x * SX - PX + kx, y * SY - PY + ky);
                taps.push_back(t);
                if (!is_max) e = e.defined() ? e + t : t;
            }
        }
        if (is_max) e = max_keep_nan(taps);
        if (!is_max) {
            Expr hs = y * SY - PY, ws = x * SX - PX;
            Expr he = min(hs + KH, IH + PY), we = min(ws + KW, IW + PX);
            Expr pool_size = (he - hs) * (we - ws);
            Expr div;
            if (count_include_pad) {
                div = pool_size;
            } else {
                Expr hs2 = max(hs, 0), ws2 = max(ws, 0);
                Expr he2 = min(he, IH), we2 = min(we, IW);
                div = (he2 - hs2) * (we2 - ws2);
            }
            e = e / cast<float>(div);
        }
        output(c, x, y) = activate(act, e);
        pin_map(output, C, OW, OH, out_cs);
        if (get_target().has_gpu_feature()) {
            gpu_map(output, {C, OW, OH}, {gpu_tile_c > 0 ? (int)gpu_tile_c : 32, gpu_tile_x > 0 ? (int)gpu_tile_x : 4,
                                          gpu_tile_y > 0 ? (int)gpu_tile_y : 2});
            estimate_dense(input, {C, IW, IH});
            estimate_dense(output, {C, OW, OH});
            return;
        }

        // schedule
        const int V = natural_vector_size<float>();
        const int VW = vec_for(C, V);
        int nv = 1;
        while (nv < 4 && (nv * 2) * VW <= C) nv *= 2;
        const int T = nv * VW;
        Var co("co"), cv("cv"), cl("cl"), yo("yo"), yi("yi");
        int rpt = std::max(1, largest_divisor_in(OH, 1, std::max(1, OH / 8)));
        output.split(c, co, c, T, TailStrategy::ShiftInwards)
            .split(c, cv, cl, VW)
            .vectorize(cl)
            .unroll(cv)
            .split(y, yo, yi, rpt, TailStrategy::ShiftInwards)
            .reorder(cl, cv, co, x, yi, yo);
        if ((long long)C * OW * OH * KW * KH >= 65536) output.parallel(yo);

        estimate_dense(input, {C, IW, IH});
        estimate_dense(output, {C, OW, OH});
    }
};

class GlobalAvgPool : public Generator<GlobalAvgPool> {
public:
    GeneratorParam<int> c_{"c", 2048};
    GeneratorParam<int> in_w{"in_w", 7};
    GeneratorParam<int> in_h{"in_h", 7};
    // GPU schedule knob (0 = default 64): threads (channels) per block
    GeneratorParam<int> gpu_threads{"gpu_threads", 0};

    Input<Buffer<float, 3>> input{"input"};
    Output<Buffer<float, 1>> output{"output"};

    void generate() {
        const int C = c_, IW = in_w, IH = in_h;
        pin_dense(input, {C, IW, IH});
        Var c("c");
        RDom r(0, IW, 0, IH, "r");
        Func s("s");
        s(c) = 0.0f;
        s(c) += input(c, r.x, r.y);
        output(c) = s(c) / float(IW * IH);
        pin_dense(output, {C});
        if (get_target().has_gpu_feature()) {
            gpu_map(output, {C}, {gpu_threads > 0 ? (int)gpu_threads : 64});
            s.compute_at(output, Var(c.name() + "_gt"));
            estimate_dense(input, {C, IW, IH});
            estimate_dense(output, {C});
            return;
        }

        const int V = natural_vector_size<float>();
        const int VW = vec_for(C, V);
        int nv = 1;
        while (nv < 4 && (nv * 2) * VW <= C) nv *= 2;
        const int T = nv * VW;
        Var co("co"), cv("cv"), cl("cl");
        output.split(c, co, c, T, TailStrategy::ShiftInwards).split(c, cv, cl, VW).vectorize(cl).unroll(cv);
        if ((long long)C * IW * IH >= (1 << 18) && C / T >= 4) output.parallel(co);
        s.compute_at(output, co).split(c, cv, cl, VW).vectorize(cl).unroll(cv);
        s.update().split(c, cv, cl, VW).reorder(cl, cv, r.x, r.y).vectorize(cl).unroll(cv);

        estimate_dense(input, {C, IW, IH});
        estimate_dense(output, {C});
    }
};

}  // namespace

HALIDE_REGISTER_GENERATOR(Pool2D, pool2d)
HALIDE_REGISTER_GENERATOR(GlobalAvgPool, global_avgpool)
