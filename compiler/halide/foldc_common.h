// Shared helpers for the foldc Halide generators.
//
// Layout convention (the foldc contract): float32, channels innermost.  A
// feature map with C channels, width W, height H is a dense Halide buffer
// with dims (c, x, y) = (C, W, H), strides (1, C, C*W), all mins 0; a batch
// of N images (a kernel's batch parameter, only when N > 1) adds an
// outermost dim n = N of stride C*W*H.  Every shape is a GeneratorParam, so every kernel is fully
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

// Number of vector registers of the target, from Halide's Target (the rule: the generators derive
// their ISA facts from it; the Lua side's live in compiler/targets/): x86 32 zmm with AVX-512, else
// 16 xmm/ymm; ARM 32 128-bit NEON registers on AArch64, 16 q registers on 32-bit ARM; 16 elsewhere.
inline int vector_registers(const Target &t) {
    if (t.arch == Target::X86) {
        return t.has_feature(Target::AVX512) || t.has_feature(Target::AVX512_Skylake) ? 32 : 16;
    }
    if (t.arch == Target::ARM) return t.bits == 64 ? 32 : 16;
    return 16;
}

// The bounds of a (c, x, y[, n]) map for BoundaryConditions: x in [0, w), y in [0, h); c and the
// image index n (batch nb > 1) unbounded.
inline Region map_bounds(int w, int h, int nb) {
    Region r = {Range(Expr(), Expr()), Range(0, w), Range(0, h)};
    if (nb > 1) r.push_back(Range(Expr(), Expr()));
    return r;
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

// Pin a channels-innermost feature map (c, x, y) whose pixels lie row_channels floats apart
// (0: c, dense): a channel slice of a wider buffer, as a concatenation's inputs and the prefixes a
// DenseNet layer reads are (lower.lua, place_concats).
template<typename B>
inline void pin_map(B &b, int c, int w, int h, int row_channels, int images = 1) {
    const int rc = row_channels > 0 ? row_channels : c;
    b.dim(0).set_min(0).set_extent(c).set_stride(1);
    b.dim(1).set_min(0).set_extent(w).set_stride(rc);
    b.dim(2).set_min(0).set_extent(h).set_stride(rc * w);
    if (images > 1) b.dim(3).set_min(0).set_extent(images).set_stride(rc * w * h);
}

template<typename B>
inline void estimate_dense(B &b, const std::vector<int> &extents) {
    Region r;
    for (int e : extents) r.push_back(Range(0, e));
    b.set_estimates(r);
}

// NaN as PyTorch propagates it: relu(NaN) = NaN (activation.h: relu_keep_nan and the other
// activations), max over a window with a NaN in it = NaN (below).
//
// Halide's float max does not: it compiles to LLVM with no-NaNs fast-math flags (instruction flags
// and the backend's NoNaNsFPMath), so max(v, 0) becomes x86 maxps with either operand order
// (maxps returns its second operand when either is NaN) and gave 0 for a NaN; the simplifier turns
// select(v < 0, 0, v) into max(v, 0); and is_nan(v) of an FMA/add result (an instruction marked
// "no NaNs") folds to false. strict_float() would work but switches the whole module to
// per-instruction fast-math flags. So the tests below are on the bits, which no float assumption
// touches.

// max of taps that is NaN when any tap is NaN. The max itself may drop NaNs (any operand order);
// a NaN is then forced in on the bits (m | 0x7fc00000 is a quiet NaN). The test is is_nan on the
// taps themselves, which must be plain loads (not results of float arithmetic or of a boundary
// select, which LLVM assumes NaN-free); LLVM pairs (is_nan(a) || is_nan(b)) into one unordered
// compare, so the cost is about one compare/or per two taps on top of the max.
inline Expr max_keep_nan(const std::vector<Expr> &taps) {
    Expr m = taps[0], any_nan = is_nan(taps[0]);
    for (size_t i = 1; i < taps.size(); i++) {
        m = max(m, taps[i]);
        any_nan = any_nan || is_nan(taps[i]);
    }
    Expr bits = reinterpret<uint32_t>(m) | select(any_nan, Internal::make_const(UInt(32), 0x7fc00000), Internal::make_const(UInt(32), 0));
    return reinterpret<float>(bits);
}

// Largest divisor d of n with lo <= d <= hi, or 0.
inline int largest_divisor_in(int n, int lo, int hi) {
    for (int d = std::min(n, hi); d >= lo; d--) {
        if (n % d == 0) return d;
    }
    return 0;
}

// ---- GPU schedules -------------------------------------------------------------------------
// Every generator keeps its CPU schedule and adds a GPU one, taken when
// get_target().has_gpu_feature() (CUDA, OpenCL, ...). The GPU schedules share one shape: blocks of
// threads over the output (one thread per element, or per small register tile of elements), the
// reductions' operands staged per chunk into shared memory (__local / .shared) computed at the
// block, and every tail handled by ShiftInwards (the last tile recomputes a few elements) or by a
// guard, so no loop runs past a buffer. Their knobs are GeneratorParams named gpu_* (0: the
// default below), which `foldc tune --target opencl|cuda` can search.

// A tile factor for an extent n: want clamped to [1, n] (ShiftInwards needs factor <= extent).
inline int gpu_fit(int want, int n) {
    return std::max(1, std::min(want, n));
}

// One thread per element of f over its first dims (up to three, innermost first; the rest, e.g.
// an image index, fused into the block grid's last dimension): blocks of threads[i] threads along
// dim i (clamped to the extents). Tails: ShiftInwards, or guarded (exact tiles) when f writes a
// buffer it also reads (in place).
inline void gpu_map(Func f, const std::vector<int> &extents, const std::vector<int> &threads, bool guard = false) {
    std::vector<Var> a = f.args();
    const TailStrategy ts = guard ? TailStrategy::GuardWithIf : TailStrategy::ShiftInwards;
    const size_t k = std::min<size_t>({a.size(), threads.size(), 3});
    std::vector<VarOrRVar> order;
    std::vector<Var> blocks;
    for (size_t i = 0; i < k; i++) {
        Var o(a[i].name() + "_gb"), in(a[i].name() + "_gt");
        f.split(a[i], o, in, gpu_fit(threads[i], extents[i]), ts);
        order.push_back(in);
        blocks.push_back(o);
    }
    for (size_t i = k; i < a.size(); i++) {
        Var fused(blocks.back().name() + "_" + a[i].name());
        f.fuse(blocks.back(), a[i], fused);
        blocks.back() = fused;
    }
    for (const Var &b : blocks) order.push_back(b);
    f.reorder(order);
    if (k == 1) {
        f.gpu_blocks(blocks[0]).gpu_threads(Var(a[0].name() + "_gt"));
    } else if (k == 2) {
        f.gpu_blocks(blocks[0], blocks[1]).gpu_threads(Var(a[0].name() + "_gt"), Var(a[1].name() + "_gt"));
    } else {
        f.gpu_blocks(blocks[0], blocks[1], blocks[2])
            .gpu_threads(Var(a[0].name() + "_gt"), Var(a[1].name() + "_gt"), Var(a[2].name() + "_gt"));
    }
}

// The threads of a block over a stage computed at a loop inside the block (a Func's definition or
// an update, whose pure vars are a): its dims beyond the first threads.size() are fused into the
// last one; dim i is covered by threads[i] threads and a serial loop (guarded: the box need not
// divide); the stage's reduction (rvars) runs inside each thread. Consecutive threads take
// consecutive elements of dim 0, the innermost in memory, so loads from global memory coalesce.
inline void gpu_block_threads(Stage st, std::vector<Var> a, const std::vector<int> &threads,
                              const std::vector<RVar> &rvars = {}) {
    const size_t k = std::min(a.size(), threads.size());
    while (a.size() > k) {
        Var fused(a[a.size() - 2].name() + "_" + a.back().name());
        st.fuse(a[a.size() - 2], a.back(), fused);
        a.pop_back();
        a.back() = fused;
    }
    std::vector<VarOrRVar> order(rvars.begin(), rvars.end());
    std::vector<Var> inner, outer;
    for (size_t i = 0; i < k; i++) {
        Var o(a[i].name() + "_so"), in(a[i].name() + "_st");
        st.split(a[i], o, in, std::max(1, threads[i]), TailStrategy::GuardWithIf);
        inner.push_back(in);
        outer.push_back(o);
    }
    for (const Var &v : inner) order.push_back(v);
    for (const Var &v : outer) order.push_back(v);
    st.reorder(order);
    if (k == 1) st.gpu_threads(inner[0]);
    if (k == 2) st.gpu_threads(inner[0], inner[1]);
    if (k == 3) st.gpu_threads(inner[0], inner[1], inner[2]);
}

// Stage f in shared memory: f is computed at a loop inside a block (compute_at(g, chunk rvar)) by
// the block's threads, whose shape is threads (up to three dims; see gpu_block_threads).
inline void gpu_stage_shared(Func f, const std::vector<int> &threads) {
    gpu_block_threads(f, f.args(), threads);
}

// GPU schedule of a GEMM out(c, r) = epilogue(acc(c, r)), acc(c, r) = init; acc(c, r) += a(c, k) *
// b(k, r) (Linear layers, token GEMMs): blocks of tile_c x tile_r outputs, each thread a reg_c x
// reg_r tile; the block's accumulator in shared memory, k walked in chunks of k_block whose a and b
// panels the block's threads first copy to shared memory (a and b are Funcs of the algorithm,
// staged here). stage = false: the accumulator per thread in registers, a and b read from global
// memory. The tiled GEMM of Volkov & Demmel, "Benchmarking GPUs to tune dense linear algebra" (SC
// 2008), as Halide expresses it. A knob of 0 takes the default: 64 x 32 blocks, 4 x 4 per thread (1 x 4
// for a single row: a matrix-vector product), chunks of 16.
struct GpuGemm {
    int tile_c, tile_r, reg_c, reg_r, k_block;
    bool stage;
};

inline void gpu_gemm(Func out, Func acc, RVar k, Func a, Func b, int C, int R, int K, const GpuGemm &g) {
    const Var c = out.args()[0], r = out.args()[1];
    const int TC = gpu_fit(g.tile_c > 0 ? g.tile_c : 64, C), TR = gpu_fit(g.tile_r > 0 ? g.tile_r : 32, R);
    const int RC = std::max(1, largest_divisor_in(TC, 1, g.reg_c > 0 ? g.reg_c : (R == 1 ? 1 : 4)));
    const int RR = std::max(1, largest_divisor_in(TR, 1, g.reg_r > 0 ? g.reg_r : 4));
    int KB = gpu_fit(g.k_block > 0 ? g.k_block : 16, K);
    if (const int d = largest_divisor_in(K, std::max(1, KB / 2), KB)) KB = d;
    Var cb("cb"), ct("ct"), cr("cr"), rb("rb"), rt("rt"), rr("rr");
    out.split(c, cb, c, TC, TailStrategy::ShiftInwards)
        .split(c, ct, cr, RC)
        .split(r, rb, r, TR, TailStrategy::ShiftInwards)
        .split(r, rt, rr, RR)
        .reorder(cr, rr, ct, rt, cb, rb)
        .gpu_blocks(cb, rb)
        .gpu_threads(ct, rt)
        .unroll(cr)
        .unroll(rr);
    if (!g.stage) {
        acc.compute_at(out, ct).unroll(c).unroll(r);
        acc.update().reorder(c, r, k).unroll(c).unroll(r);
        return;
    }
    acc.compute_at(out, cb).split(c, ct, cr, RC).split(r, rt, rr, RR).reorder(cr, rr, ct, rt).gpu_threads(ct, rt).unroll(cr).unroll(rr);
    RVar ko("ko"), ki("ki");
    acc.update()
        .split(k, ko, ki, KB, TailStrategy::GuardWithIf)
        .split(c, ct, cr, RC)
        .split(r, rt, rr, RR)
        .reorder(cr, rr, ki, ct, rt, ko)
        .gpu_threads(ct, rt)
        .unroll(cr)
        .unroll(rr);
    a.compute_at(acc, ko);
    gpu_stage_shared(a, {TC / RC, TR / RR});
    b.compute_at(acc, ko);
    gpu_stage_shared(b, {TC / RC, TR / RR});
}

}  // namespace foldc
