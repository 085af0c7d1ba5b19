// Small token-tensor kernels of the transformer models (see compiler/ops/*.lua for the maths).
//
//   scale        out(i) = s * a(i)                               a, out: (n)
//   concat_rows  out(c, r) = a(c, r) for r < n1, b(c, r - n1)    a: (d, n1), b: (d, n2), out: (d, n1 + n2)
//   mean_rows    out(c) = 1/rows sum_r a(c, r)                   a: (d, rows), out: (d, 1)
//   merge_patches out(c, dy, dx, r) = a(c, 2X + dx, 2Y + dy), r = Y ceil(w/2) + X
//                a: (c, w, h), out: (c, 2, 2, ceil(h/2) ceil(w/2)) (Swin's PatchMerging: the
//                [ceil(h/2) ceil(w/2), 4c] tokens of each 2x2 neighbourhood; an odd h or w: the
//                missing row or column zeros, as torchvision 0.14 pads it)
//   pad_map      out(c, x, y) = a(c, x, y) for x < w and y < h, else fill(c) (fill = 1) or 0
//                a: (c, w, h), fill: (c), out: (c, out_w, out_h) (a token map padded on the
//                bottom and right, or cropped: Swin's maps padded to a multiple of the window,
//                after qkv with its bias: passes/pad_after_linear.lua)
//
// Schedules: vectorised at the natural width with ShiftInwards tails (stays vectorised for any
// extent of at least one vector; smaller extents use the largest power of two that fits).
// GPU (targets with a GPU feature): one thread per output element (mean_rows: per channel, summing
// its rows), blocks of gpu_threads (scale, mean_rows, merge_patches, pad_map: default 256, 64,
// 64 x 2 x 2, 64 x 2 x 2)
// or gpu_tile_c x gpu_tile_r
// (concat_rows: default 64 x 4).

#include "foldc_common.h"

namespace {

using namespace Halide;
using namespace foldc;

// Flat elementwise schedule: 4 vectors unrolled, ShiftInwards tail, parallel chunks when large.
void schedule_flat(Func out, Var i, int n, int natural, const Target &t, int gpu_threads) {
    if (t.has_gpu_feature()) {
        gpu_map(out, {n}, {gpu_threads > 0 ? gpu_threads : 256});
        return;
    }
    const int VW = vec_for(n, natural);
    int nv = 1;
    while (nv < 4 && (nv * 2) * VW <= n) nv *= 2;
    Var io("io"), ii("ii"), iv("iv"), iu("iu"), il("il");
    if (n >= (1 << 16)) {
        out.split(i, io, ii, 1 << 14, TailStrategy::ShiftInwards).parallel(io);
    } else {
        ii = i;
    }
    out.split(ii, iv, il, nv * VW, TailStrategy::ShiftInwards).split(il, iu, il, VW).unroll(iu).vectorize(il);
}

class Scale : public Generator<Scale> {
public:
    GeneratorParam<int> n{"n", 1024};
    GeneratorParam<float> s{"s", 1.0f};
    // GPU schedule knob (0 = default 256): threads per block, one element each
    GeneratorParam<int> gpu_threads{"gpu_threads", 0};
    Input<Buffer<float, 1>> a{"a"};
    Output<Buffer<float, 1>> output{"output"};

    void generate() {
        const int N = n;
        pin_dense(a, {N});
        Var i("i");
        output(i) = a(i) * (float)s;
        pin_dense(output, {N});
        schedule_flat(output, i, N, natural_vector_size<float>(), get_target(), gpu_threads);
        estimate_dense(a, {N});
        estimate_dense(output, {N});
    }
};

class ConcatRows : public Generator<ConcatRows> {
public:
    GeneratorParam<int> d{"d", 64};
    GeneratorParam<int> n1{"n1", 1};
    GeneratorParam<int> n2{"n2", 196};
    // GPU schedule knobs (0 = default 64 x 4): threads per block along c and along the rows
    GeneratorParam<int> gpu_tile_c{"gpu_tile_c", 0};
    GeneratorParam<int> gpu_tile_r{"gpu_tile_r", 0};
    Input<Buffer<float, 2>> a{"a"};
    Input<Buffer<float, 2>> b{"b"};
    Output<Buffer<float, 2>> output{"output"};

    void generate() {
        const int D = d, N1 = n1, N2 = n2;
        pin_dense(a, {D, N1});
        pin_dense(b, {D, N2});
        Var c("c"), r("r");
        output(c, r) = select(r < N1, a(c, clamp(r, 0, N1 - 1)), b(c, clamp(r - N1, 0, N2 - 1)));
        pin_dense(output, {D, N1 + N2});
        if (get_target().has_gpu_feature()) {
            gpu_map(output, {D, N1 + N2}, {gpu_tile_c > 0 ? (int)gpu_tile_c : 64, gpu_tile_r > 0 ? (int)gpu_tile_r : 4});
        } else {
            const int VW = vec_for(D, natural_vector_size<float>());
            output.vectorize(c, VW, TailStrategy::ShiftInwards);
        }
        estimate_dense(a, {D, N1});
        estimate_dense(b, {D, N2});
        estimate_dense(output, {D, N1 + N2});
    }
};

class MeanRows : public Generator<MeanRows> {
public:
    GeneratorParam<int> d{"d", 384};
    GeneratorParam<int> rows{"rows", 196};
    // GPU schedule knob (0 = default 64): threads (channels) per block
    GeneratorParam<int> gpu_threads{"gpu_threads", 0};
    Input<Buffer<float, 2>> a{"a"};
    Output<Buffer<float, 2>> output{"output"};

    void generate() {
        const int D = d, R = rows;
        pin_dense(a, {D, R});
        Var c("c"), r("r");
        RDom k(0, R, "k");
        Func sum("sum");
        sum(c) = 0.0f;
        sum(c) += a(c, k);
        output(c, r) = sum(c) * (1.0f / R);
        pin_dense(output, {D, 1});
        if (get_target().has_gpu_feature()) {
            gpu_map(output, {D, 1}, {gpu_threads > 0 ? (int)gpu_threads : 64, 1});
            sum.compute_at(output, Var(c.name() + "_gt"));
            estimate_dense(a, {D, R});
            estimate_dense(output, {D, 1});
            return;
        }
        const int VW = vec_for(D, natural_vector_size<float>());
        output.vectorize(c, VW, TailStrategy::ShiftInwards);
        sum.compute_at(output, c).vectorize(c);
        sum.update().vectorize(c);
        estimate_dense(a, {D, R});
        estimate_dense(output, {D, 1});
    }
};

class MergePatches : public Generator<MergePatches> {
public:
    GeneratorParam<int> c_{"c", 96};
    GeneratorParam<int> w_{"w", 56};
    GeneratorParam<int> h_{"h", 56};
    GeneratorParam<int> gpu_threads{"gpu_threads", 0};  // GPU: threads per block along c
    Input<Buffer<float, 3>> a{"a"};
    Output<Buffer<float, 4>> output{"output"};

    void generate() {
        const int C = c_, W = w_, H = h_, W2 = (W + 1) / 2, H2 = (H + 1) / 2;
        pin_dense(a, {C, W, H});
        Var c("c"), dy("dy"), dx("dx"), r("r");
        Expr x = 2 * (r % W2) + dx, y = 2 * (r / W2) + dy;
        if (W % 2 == 0 && H % 2 == 0) {
            output(c, dy, dx, r) = a(c, x, y);
        } else {
            // the zero row / column of an odd map
            output(c, dy, dx, r) = select(x < W && y < H, a(c, min(x, W - 1), min(y, H - 1)), 0.0f);
        }
        pin_dense(output, {C, 2, 2, W2 * H2});
        estimate_dense(a, {C, W, H});
        estimate_dense(output, {C, 2, 2, W2 * H2});
        if (get_target().has_gpu_feature()) {
            gpu_map(output, {C, 2, 2}, {gpu_threads > 0 ? (int)gpu_threads : 64, 2, 2});
            return;
        }
        const int VW = vec_for(C, natural_vector_size<float>());
        Var ro("ro"), ri("ri");
        output.vectorize(c, VW, TailStrategy::ShiftInwards).split(r, ro, ri, W2).parallel(ro);
    }
};

class PadMap : public Generator<PadMap> {
public:
    GeneratorParam<int> c_{"c", 96};
    GeneratorParam<int> w_{"w", 64};
    GeneratorParam<int> h_{"h", 64};
    GeneratorParam<int> out_w{"out_w", 70};
    GeneratorParam<int> out_h{"out_h", 70};
    GeneratorParam<int> fill{"fill", 0};  // 1: the padding is the vector `fill` (c), else 0
    GeneratorParam<int> gpu_threads{"gpu_threads", 0};  // GPU: threads per block along c
    Input<Buffer<float, 3>> a{"a"};
    Input<Buffer<float, 1>> *fill_in = nullptr;
    Output<Buffer<float, 3>> output{"output"};

    void configure() {
        if (fill) fill_in = add_input<Buffer<float, 1>>("fill");
    }

    void generate() {
        const int C = c_, W = w_, H = h_, OW = out_w, OH = out_h;
        pin_dense(a, {C, W, H});
        Var c("c"), x("x"), y("y");
        Expr pad = 0.0f;
        if (fill_in) {
            pin_dense(*fill_in, {C});
            estimate_dense(*fill_in, {C});
            pad = (*fill_in)(c);
        }
        output(c, x, y) = select(x < W && y < H, a(c, min(x, W - 1), min(y, H - 1)), pad);
        pin_dense(output, {C, OW, OH});
        estimate_dense(a, {C, W, H});
        estimate_dense(output, {C, OW, OH});
        if (get_target().has_gpu_feature()) {
            gpu_map(output, {C, OW, OH}, {gpu_threads > 0 ? (int)gpu_threads : 64, 2, 2});
            return;
        }
        const int VW = vec_for(C, natural_vector_size<float>());
        output.vectorize(c, VW, TailStrategy::ShiftInwards).parallel(y);
    }
};

}  // namespace

HALIDE_REGISTER_GENERATOR(Scale, scale)
HALIDE_REGISTER_GENERATOR(ConcatRows, concat_rows)
HALIDE_REGISTER_GENERATOR(MeanRows, mean_rows)
HALIDE_REGISTER_GENERATOR(MergePatches, merge_patches)
HALIDE_REGISTER_GENERATOR(PadMap, pad_map)
