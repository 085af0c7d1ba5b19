// RepMLP's partition moves (Ding et al., "RepMLP: Re-parameterizing Convolutions into
// Fully-connected Layers for Image Recognition", 2021) on channels-innermost maps (see
// foldc_common.h): a map of H x W pixels is cut into hp x wp partitions of bh x bw pixels.
//
//   depth_to_space  out(o, X, Y) = in(o*bh*bw + (Y % bh)*bw + X % bw, X / bw, Y / bh)
//                   in: (channels*bh*bw, wp, hp), out: (channels, wp*bw, hp*bh)
//                   (the partition perceptron's outputs, one partition per pixel, put back in place)
//   partition_add   out(c, X, Y) = in(c, X, Y) + v(c*hp*wp + (Y / bh)*wp + X / bw)
//                   in, out: (channels, wp*bw, hp*bh), v: (channels*hp*wp) flat
//                   (the global perceptron's value added to its channel of each partition)
//
// Schedule: pure data movement; channels vectorised (ShiftInwards tail; channels of one pixel are
// contiguous in out), rows in parallel. GPU (targets with a GPU feature): one thread per element,
// blocks of gpu_tile_c x gpu_tile_x x gpu_tile_y (default 32 x 4 x 2).

#include "foldc_common.h"

namespace {

using namespace Halide;
using namespace foldc;

void schedule_rows(Func out, Var c, Var y, int C, int W, int H, int natural, const Target &t,
                   const std::vector<int> &gpu_tiles) {
    if (t.has_gpu_feature()) {
        gpu_map(out, {C, W, H}, gpu_tiles);
        return;
    }
    const int V = vec_for(C, natural);
    if (V > 1) out.vectorize(c, V, TailStrategy::ShiftInwards);
    if (H >= 4) out.parallel(y);
}

class DepthToSpace : public Generator<DepthToSpace> {
public:
    GeneratorParam<int> channels{"channels", 8};
    GeneratorParam<int> bh{"bh", 7};
    GeneratorParam<int> bw{"bw", 7};
    GeneratorParam<int> hp{"hp", 2};
    GeneratorParam<int> wp{"wp", 2};
    // GPU schedule knobs (0 = default 32 x 4 x 2): threads per block along c, x, y
    GeneratorParam<int> gpu_tile_c{"gpu_tile_c", 0};
    GeneratorParam<int> gpu_tile_x{"gpu_tile_x", 0};
    GeneratorParam<int> gpu_tile_y{"gpu_tile_y", 0};

    Input<Buffer<float, 3>> input{"input"};
    Output<Buffer<float, 3>> output{"output"};

    void generate() {
        const int C = channels, BH = bh, BW = bw, HP = hp, WP = wp;
        pin_dense(input, {C * BH * BW, WP, HP});
        Var c("c"), x("x"), y("y");
        output(c, x, y) = input(c * (BH * BW) + (y % BH) * BW + x % BW, x / BW, y / BH);
        pin_dense(output, {C, WP * BW, HP * BH});
        schedule_rows(output, c, y, C, WP * BW, HP * BH, natural_vector_size<float>(), get_target(),
                      {gpu_tile_c > 0 ? (int)gpu_tile_c : 32, gpu_tile_x > 0 ? (int)gpu_tile_x : 4,
                       gpu_tile_y > 0 ? (int)gpu_tile_y : 2});
        estimate_dense(input, {C * BH * BW, WP, HP});
        estimate_dense(output, {C, WP * BW, HP * BH});
    }
};

class PartitionAdd : public Generator<PartitionAdd> {
public:
    GeneratorParam<int> channels{"channels", 8};
    GeneratorParam<int> bh{"bh", 7};
    GeneratorParam<int> bw{"bw", 7};
    GeneratorParam<int> hp{"hp", 2};
    GeneratorParam<int> wp{"wp", 2};
    // GPU schedule knobs (0 = default 32 x 4 x 2): threads per block along c, x, y
    GeneratorParam<int> gpu_tile_c{"gpu_tile_c", 0};
    GeneratorParam<int> gpu_tile_x{"gpu_tile_x", 0};
    GeneratorParam<int> gpu_tile_y{"gpu_tile_y", 0};

    Input<Buffer<float, 3>> input{"input"};
    Input<Buffer<float, 1>> v{"v"};
    Output<Buffer<float, 3>> output{"output"};

    void generate() {
        const int C = channels, BH = bh, BW = bw, HP = hp, WP = wp;
        pin_dense(input, {C, WP * BW, HP * BH});
        pin_dense(v, {C * HP * WP});
        Var c("c"), x("x"), y("y");
        output(c, x, y) = input(c, x, y) + v(c * (HP * WP) + (y / BH) * WP + x / BW);
        pin_dense(output, {C, WP * BW, HP * BH});
        schedule_rows(output, c, y, C, WP * BW, HP * BH, natural_vector_size<float>(), get_target(),
                      {gpu_tile_c > 0 ? (int)gpu_tile_c : 32, gpu_tile_x > 0 ? (int)gpu_tile_x : 4,
                       gpu_tile_y > 0 ? (int)gpu_tile_y : 2});
        estimate_dense(input, {C, WP * BW, HP * BH});
        estimate_dense(v, {C * HP * WP});
        estimate_dense(output, {C, WP * BW, HP * BH});
    }
};

}  // namespace

HALIDE_REGISTER_GENERATOR(DepthToSpace, depth_to_space)
HALIDE_REGISTER_GENERATOR(PartitionAdd, partition_add)
