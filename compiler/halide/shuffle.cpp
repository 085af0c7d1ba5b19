// channel_shuffle: ShuffleNet's channel shuffle (Zhang et al., CVPR 2018; Ma et al., ECCV 2018) on
// channels-innermost float32 maps (c, x, y) of C = groups * K channels:
//   output(c, x, y) = X((c % groups) * K + c / groups, x, y)
// where X is the input (parts = 1), or the concatenation of the inputs a and b along channels
// (parts = 2, groups = 2: ShuffleNetV2's cat + shuffle in one pass, no concatenated copy):
//   output(2k, x, y) = a(k, x, y),  output(2k + 1, x, y) = b(k, x, y).
// in_cs / in_cs_b: pixel strides of a and b in floats (0: dense), for inputs that are channel
// slices of a wider map (ShuffleNetV2's x.chunk(2, dim=1) is a view).
//
// Schedule: vectorised along c at the natural width (ShiftInwards tail), rows in parallel. GPU
// (targets with a GPU feature): one thread per element, blocks of gpu_tile_c x gpu_tile_x x gpu_tile_y.

#include "foldc_common.h"

#include <cstdio>
#include <cstdlib>

namespace {

using namespace Halide;
using namespace foldc;

class ChannelShuffle : public Generator<ChannelShuffle> {
public:
    GeneratorParam<int> c_{"c", 116};
    GeneratorParam<int> w_{"w", 28};
    GeneratorParam<int> h_{"h", 28};
    GeneratorParam<int> groups{"groups", 2};
    GeneratorParam<int> parts{"parts", 1};
    GeneratorParam<int> in_cs{"in_cs", 0};
    GeneratorParam<int> in_cs_b{"in_cs_b", 0};
    // GPU schedule knobs (0 = default 32 x 4 x 2): threads per block along c, x, y
    GeneratorParam<int> gpu_tile_c{"gpu_tile_c", 0};
    GeneratorParam<int> gpu_tile_x{"gpu_tile_x", 0};
    GeneratorParam<int> gpu_tile_y{"gpu_tile_y", 0};

    Input<Buffer<float, 3>> a{"a"};
    Input<Buffer<float, 3>> *b = nullptr;
    Output<Buffer<float, 3>> output{"output"};

    void configure() {
        if (!(parts == 1 || (parts == 2 && groups == 2))) {
            fprintf(stderr, "channel_shuffle: parts must be 1, or 2 with groups 2\n");
            abort();
        }
        if (parts == 2) b = add_input<Buffer<float, 3>>("b");
    }

    void generate() {
        const int C = c_, W = w_, H = h_, G = groups;
        if (G < 1 || C % G != 0) {
            fprintf(stderr, "channel_shuffle: groups must divide c\n");
            abort();
        }
        const int K = C / G;
        Var c("c"), x("x"), y("y");
        if (b) {
            pin_map(a, K, W, H, in_cs);
            pin_map(*b, K, W, H, in_cs_b);
            output(c, x, y) = select(c % 2 == 0, a(c / 2, x, y), (*b)(c / 2, x, y));
        } else {
            pin_map(a, C, W, H, in_cs);
            output(c, x, y) = a((c % G) * K + c / G, x, y);
        }
        pin_map(output, C, W, H, 0);

        const int VW = vec_for(C, natural_vector_size<float>());
        if (get_target().has_gpu_feature()) {
            gpu_map(output, {C, W, H}, {gpu_tile_c > 0 ? (int)gpu_tile_c : 32, gpu_tile_x > 0 ? (int)gpu_tile_x : 4, gpu_tile_y > 0 ? (int)gpu_tile_y : 2});
        } else {
            output.vectorize(c, VW, TailStrategy::ShiftInwards).parallel(y);
        }

        estimate_dense(a, {b ? K : C, W, H});
        if (b) estimate_dense(*b, {K, W, H});
        estimate_dense(output, {C, W, H});
    }
};

}  // namespace

HALIDE_REGISTER_GENERATOR(ChannelShuffle, channel_shuffle)
