// Shared helpers for the foldc Halide generators.
//
// Layout convention (the foldc contract): float32, batch 1, channels
// innermost.  A feature map with C channels, width W, height H is a dense
// Halide buffer with dims (c, x, y) = (C, W, H), strides (1, C, C*W), all
// mins 0.  Every shape is a GeneratorParam, so every kernel is fully
// shape-specialised; the helpers below pin the buffer shapes (min, extent,
// stride) so the generated code uses constant strides and constant loop
// bounds.
#pragma once

#include "Halide.h"

#include <algorithm>
#include <vector>

namespace foldc {

using namespace Halide;

// Largest power of two <= n and <= cap (at least 1).
inline int pow2_at_most(int n, int cap) {
    int v = 1;
    while (v * 2 <= n && v * 2 <= cap) v *= 2;
    return v;
}

// Vector width to use for a dimension of extent n: the target's natural
// width when the extent allows, otherwise the largest power of two that fits
// (so that a ShiftInwards split never has a factor larger than the extent).
inline int vec_for(int n, int natural) {
    return pow2_at_most(n, natural);
}

// Number of vector registers of the target (32 with AVX-512, 16 otherwise).
inline int vector_registers(const Target &t) {
    if (t.arch == Target::X86) {
        return t.has_feature(Target::AVX512) || t.has_feature(Target::AVX512_Skylake) ? 32 : 16;
    }
    if (t.arch == Target::ARM) return 32;
    return 16;
}

// Pin a dense channels-innermost buffer: dims {e0, e1, ...}, min 0.
template<typename B>
inline void pin_dense(B &b, const std::vector<int> &extents) {
    int stride = 1;
    for (size_t i = 0; i < extents.size(); i++) {
        b.dim((int)i).set_min(0).set_extent(extents[i]).set_stride(stride);
        stride *= extents[i];
    }
}

template<typename B>
inline void estimate_dense(B &b, const std::vector<int> &extents) {
    Region r;
    for (int e : extents) r.push_back(Range(0, e));
    b.set_estimates(r);
}

// Largest divisor d of n with lo <= d <= hi, or 0.
inline int largest_divisor_in(int n, int lo, int hi) {
    for (int d = std::min(n, hi); d >= lo; d--) {
        if (n % d == 0) return d;
    }
    return 0;
}

}  // namespace foldc
