// conv2d: shape-specialised 2-D convolution (dense, grouped, depthwise),
// channels innermost, float32; batch > 1 adds an outer image dimension.
//
// Maths (g = co / (cout/groups), cpg = cin/groups):
//   out(co,x,y) = act( bias(co)
//       + sum_{ci<cpg, kx<kw, ky<kh} w(co,ci,kx,ky)
//             * in(g*cpg+ci, x*stride_x - pad_x + kx*dil_x, y*stride_y - pad_y + ky*dil_y)
//       [+ sum_{cp<proj_cin} pw(co,cp) * proj_input(cp, x*proj_stride, y*proj_stride)]
//       [+ residual(co,x,y)] )
//   zero padding outside the input; act = the activation `act` (activation.h; after the residual
//   add), none by default.
//   The optional projection term is a second, 1x1 convolution of another input on the same output
//   grid (the strided 1x1 shortcut of a ResNet block fused with the block's last conv:
//   passes/fuse_projection.lua); the bias is then the sum of both convs' biases.
//
// Buffers (all dense, min 0, channels innermost):
//   input    (cin, in_w, in_h)
//   weights  (co, ci, kx, ky) = (cout, cin/groups, kw, kh), i.e. HWIO memory;
//            with w_block = B: (co % B, ci, kx, ky + kh * (co / B)), i.e. blocks of
//            B output channels, each a contiguous [kh][kw][ci][B] run
//   bias     (cout)
//   proj_input   (proj_cin, proj_in_w, proj_in_h)  -- only when proj_cin > 0
//   proj_weights (co, cp, 1, 1), or blocked like weights: (co % B, cp, 0, co / B)
//   residual (cout, out_w, out_h)   -- only when residual=true (added in
//                                      configure(), so it comes after bias)
//   output   (cout, out_w, out_h)
//   With batch = N > 1, input, proj_input, residual and output have a fourth, outermost dimension
//   of N images (dense: each image is one batch-1 buffer after the other); the weights and bias
//   are shared by the N images.
//
// Schedule idea (apps/conv_layer style register blocking):
//   * Register tile: tile_co vectors of output channels (vectorised, V = the
//     target's natural width, 16 on AVX-512) x tile_x output pixels along x
//     (unrolled).  The accumulator Func lives at that granularity so LLVM
//     keeps it in registers; each reduction step does tile_co vector weight
//     loads + tile_x scalar input broadcasts feeding tile_co*tile_x FMAs.
//     ci is the innermost reduction loop, then kx, ky (ci is unrolled when
//     cin/groups <= 4, e.g. the stem).
//   * Reduction blocking (ci_block): when the weights of one channel tile do
//     not fit ~80 KB (or the padded input tile would not fit the stack
//     limit), ci is walked in chunks; the accumulator is then a <= 16 KB
//     stack block (T channels x a block of pixels/rows) and each chunk is
//     applied to every register tile of the block, so the weight chunk is
//     reused from L1/L2.
//   * Loop order: 1 = rows outer (parallel over output-row blocks, channel
//     tiles inside; activations stream once), 2 = channel tiles outer
//     (parallel over channel tiles; each weight tile is brought into cache
//     once; chosen when weight bytes > input bytes: deep layers, small maps).
//     Images (batch > 1) are outermost in order 1 and just inside the channel
//     tiles in order 2, so a weight tile is read once for all N images.
//   * Padding: a zero-padded copy of just the input footprint of a row block
//     (unchunked) or of a register tile and ci chunk (chunked) is built on
//     the stack; depthwise and cin/groups <= 4 read through
//     BoundaryConditions::constant_exterior instead (Halide's loop
//     partitioning strips the test from interior tiles).  Unpadded convs
//     read the input directly.
//   * Tails: ShiftInwards on the output (the last tile overlaps the previous
//     one and recomputes a few values), so inner loops stay vectorised with
//     constant extents; the vector width drops to a power of two <= cout
//     when cout < V.  Inside a chunked accumulator block a tile_x that does
//     not divide the block gets a guarded (slower) tail.
//   * Every intermediate allocation is constant-size and <= 16 KB, which
//     Halide 14 places on the stack: no heap allocation per call.
//   * Grouped convs whose channels-per-group is a multiple of the vector
//     width compute the group from the vector-aligned channel, so the input
//     access stays a scalar broadcast; depthwise (cin == cout == groups)
//     loads input vectors along c.  Narrow groups (Q = cin/groups =
//     cout/groups input and output channels a group, Q < V, V % Q == 0:
//     ResNeXt's 4 and 8, RegNet's 8) hold V/Q whole groups in a vector: the
//     input vector of those V channels at one pixel and tap is loaded once
//     (xin) and, for each of the group's Q input channels i,
//     lane q*Q + j gets the group's channel q*Q + i by one permute (the
//     channel is split into group and lane-in-group, both vectorised, so
//     Halide sees a broadcast of a Q-strided read of xin): one permute per
//     FMA and no zero weights (widening to V-channel groups did V/Q times
//     the MACs).  Other group shapes are correct but use gathers (slow).
//
// Schedule GeneratorParams (0 = heuristic default):
//   tile_co        output-channel tile in vectors (default: scored over
//                  FMAs-per-load, register budget and tail waste; 4 on
//                  AVX-512 for cout % 64 == 0)
//   tile_x         output pixels per register tile (default: scored, 7 for
//                  the ResNet widths 112/56/28/14/7)
//   loop_order     1 = rows outer, 2 = channel tiles outer (default: 2 when
//                  weight bytes > input bytes)
//   rows_per_task  rows per parallel task for unchunked loop_order 1
//                  (default: largest divisor of out_h <= out_h/8)
//   ci_block       input channels per reduction chunk (default: see above;
//                  = cin/groups means no chunking)
//   pad_mode       0 auto, 1 inline boundary condition, 2 padded copy
//   in_place       the output is written over the residual (the same buffer;
//                  set by the lowering when the residual has no later use):
//                  tiles are rounded down to divisors of the output extents,
//                  so no element is written twice or read after its write
//   w_block        weights layout (see Buffers; set by the lowering, not a
//                  schedule choice): 0 HWIO, 16 blocked by 16 channels.
//                  Deep layers read their weights from DRAM once per run; in
//                  HWIO a tile's weights are 256-byte pieces cout*4 bytes
//                  apart, blocked they are a few sequential streams that the
//                  hardware prefetcher follows (resnet50 layer4 in the
//                  model: 70-77% -> 75-85% of peak).
//   min_tasks      parallel tasks to aim for (default 8: balanced on 2 and 4
//                  threads): few channel tiles -> rows split too, few row
//                  blocks -> channel tiles in parallel too
//   prefetch       software prefetch of the weights: -1 off, 1 the next ci
//                  chunk at the top of each chunk, N >= 2 N input channels
//                  ahead in the innermost reduction loop (default: 32 when
//                  the weights are >= 2 MB, i.e. stream from DRAM, and the
//                  output has at most 64 pixels, so each weight feeds few
//                  FMAs and the stream must keep up (resnet50 stage 4 on 7x7:
//                  25-50% slower without); else off: on 14x14 maps and up it
//                  only cost issue slots (repvgg_b1g2's grouped 3x3 on 14x14,
//                  4.7 MB: 125 GFLOP/s with it, 221 without))
//   The projection's reduction is a second update of the same accumulator,
//   scheduled like the first (its own ci chunks when chunked), so both sums
//   stay in the register tile and the output is written once.
//
// GPU schedule (targets with a GPU feature: schedule_gpu below): blocks of output channels x
// pixels, the input footprint and the weights of a ci chunk staged in shared memory per block,
// each thread a small channels x pixels tile (the tiled-GEMM structure of Lavin & Gray, "Fast
// Algorithms for Convolutional Neural Networks", 2016, sec. 2, without the transform). Knobs:
//   gpu_tile_co, gpu_tile_x, gpu_tile_y  block tile (default 32 channels x 8 x 8 pixels)
//   gpu_reg_co, gpu_reg_x                per-thread tile (default 4 channels x 2 pixels)
//   gpu_ci_block                         input channels per staged chunk (default 16, within 32 KB)
//   gpu_stage                            1 staged (default), 0 each thread reads global memory

#include "activation.h"
#include "foldc_common.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace {

using namespace Halide;
using namespace foldc;

class Conv2D : public Generator<Conv2D> {
public:
    // pixel strides of the input, output and projection input maps in floats (0: dense; a channel
    // slice, pin_map)
    GeneratorParam<int> in_cs{"in_cs", 0};
    GeneratorParam<int> out_cs{"out_cs", 0};
    GeneratorParam<int> proj_cs{"proj_cs", 0};
    GeneratorParam<int> cin{"cin", 64};
    GeneratorParam<int> cout{"cout", 64};
    GeneratorParam<int> in_w{"in_w", 56};
    GeneratorParam<int> in_h{"in_h", 56};
    GeneratorParam<int> out_w{"out_w", 56};
    GeneratorParam<int> out_h{"out_h", 56};
    GeneratorParam<int> kw{"kw", 3};
    GeneratorParam<int> kh{"kh", 3};
    GeneratorParam<int> stride_x{"stride_x", 1};
    GeneratorParam<int> stride_y{"stride_y", 1};
    GeneratorParam<int> pad_x{"pad_x", 1};
    GeneratorParam<int> pad_y{"pad_y", 1};
    GeneratorParam<int> dil_x{"dil_x", 1};
    GeneratorParam<int> dil_y{"dil_y", 1};
    GeneratorParam<int> groups{"groups", 1};
    GeneratorParam<Act> act{"act", Act::None, act_names()};
    GeneratorParam<bool> residual{"residual", false};
    // the output overwrites the residual (one buffer): set by the lowering, not a schedule choice
    GeneratorParam<bool> in_place{"in_place", false};
    // projection input (0 = none): proj_cin channels, proj_in_w x proj_in_h, read at proj_stride
    GeneratorParam<int> proj_cin{"proj_cin", 0};
    GeneratorParam<int> proj_in_w{"proj_in_w", 0};
    GeneratorParam<int> proj_in_h{"proj_in_h", 0};
    GeneratorParam<int> proj_stride{"proj_stride", 1};
    // schedule knobs
    GeneratorParam<int> tile_co{"tile_co", 0};
    GeneratorParam<int> tile_x{"tile_x", 0};
    GeneratorParam<int> loop_order{"loop_order", 0};
    GeneratorParam<int> rows_per_task{"rows_per_task", 0};
    GeneratorParam<int> ci_block{"ci_block", 0};
    GeneratorParam<int> pad_mode{"pad_mode", 0};
    // weights layout: 0 = (co, ci, kx, ky); B > 0 = blocked by B output channels
    GeneratorParam<int> w_block{"w_block", 0};
    GeneratorParam<int> prefetch{"prefetch", 0};
    GeneratorParam<int> min_tasks{"min_tasks", 0};
    // images per call (the lowering sets it only when > 1)
    GeneratorParam<int> batch{"batch", 1};
    // GPU schedule knobs (targets with a GPU feature; 0 = default): a block computes gpu_tile_co
    // output channels x gpu_tile_x x gpu_tile_y pixels, each thread gpu_reg_co channels x gpu_reg_x
    // pixels in registers; the input and weights of gpu_ci_block input channels at a time are
    // staged in shared memory (gpu_stage=0: read from global memory instead).
    GeneratorParam<int> gpu_tile_co{"gpu_tile_co", 0};
    GeneratorParam<int> gpu_tile_x{"gpu_tile_x", 0};
    GeneratorParam<int> gpu_tile_y{"gpu_tile_y", 0};
    GeneratorParam<int> gpu_reg_co{"gpu_reg_co", 0};
    GeneratorParam<int> gpu_reg_x{"gpu_reg_x", 0};
    GeneratorParam<int> gpu_ci_block{"gpu_ci_block", 0};
    GeneratorParam<int> gpu_stage{"gpu_stage", 1};

    // Added in configure() (in this order: the kernel's arguments), so that the activations take
    // an image dimension when batch > 1.
    Input<Buffer<float>> *in_p = nullptr, *w_p = nullptr, *b_p = nullptr;
    Input<Buffer<float>> *proj_in = nullptr, *proj_w = nullptr, *res_in = nullptr;
    Output<Buffer<float>> *out_p = nullptr;

    void configure() {
        const int R = batch > 1 ? 4 : 3;
        in_p = add_input<Buffer<float>>("input", R);
        w_p = add_input<Buffer<float>>("weights", 4);
        b_p = add_input<Buffer<float>>("bias", 1);
        if (proj_cin > 0) {
            proj_in = add_input<Buffer<float>>("proj_input", R);
            proj_w = add_input<Buffer<float>>("proj_weights", 4);
        }
        if (residual) {
            res_in = add_input<Buffer<float>>("residual", R);
        }
        out_p = add_output<Buffer<float>>("output", R);
    }

    // GPU schedule. Block: TC output channels x BX x BY pixels (of one image), threads
    // (TC / RC) x (BX / RX) x BY, each updating an RC x RX part of the block's accumulator (in
    // shared memory; Halide 14 would give each thread a private copy of the whole block's
    // accumulator if asked for registers at the block level). The
    // reduction walks the input channels in chunks of CB: per chunk the block's threads copy the
    // zero-padded input footprint (CB channels x the block's receptive field) and the chunk's
    // weights (TC x CB x kw x kh) to shared memory, then each thread runs its taps out of it. A 1x1
    // conv is thereby a GEMM tiled as (channels x pixels) blocks over k-chunks; depthwise and
    // grouped convs stage the channels their block reads. Epilogue (bias, projection, residual,
    // activation) in the same thread. Tiles overlap at the tails (ShiftInwards), except in place,
    // where they are divisors of the extents so that no element is read after another block
    // wrote it.
    void schedule_gpu(Func output, Func acc, Func src, Func wts, RDom r, RDom rp,
                      Var c, Var x, Var y, Var n) {
        const int CIN = cin, COUT = cout, OW = out_w, OH = out_h, G = groups, CPG = CIN / G, OPG = COUT / G;
        const int KW = kw, KH = kh, SX = stride_x, SY = stride_y, DX = dil_x, DY = dil_y;
        auto pick = [&](int knob, int def, int extent) {
            int v = gpu_fit(knob > 0 ? knob : def, extent);
            return in_place ? std::max(1, largest_divisor_in(extent, 1, v)) : v;
        };
        const int TC = pick(gpu_tile_co, 32, COUT), BX = pick(gpu_tile_x, 8, OW), BY = pick(gpu_tile_y, 8, OH);
        int RC = std::max(1, largest_divisor_in(TC, 1, gpu_reg_co > 0 ? (int)gpu_reg_co : 4));
        int RX = std::max(1, largest_divisor_in(BX, 1, gpu_reg_x > 0 ? (int)gpu_reg_x : 2));
        // a block of fewer threads than a warp (32) takes one output a thread (an SE conv on a 1x1
        // map: 4 outputs, one block); a block of one thread reads global memory (nothing to share,
        // and pocl cannot build barriers in groups of one item)
        if ((TC / RC) * (BX / RX) * BY < 32 && gpu_reg_co <= 0 && gpu_reg_x <= 0) RC = 1, RX = 1;
        const int TTC = TC / RC, TTX = BX / RX;
        const bool stage = gpu_stage && TTC * TTX * BY > 1;
        // ci chunk: a divisor of cin/groups, shrunk until the staged input and weights fit 32 KB
        const int in_fw = (BX - 1) * SX + (KW - 1) * DX + 1, in_fh = (BY - 1) * SY + (KH - 1) * DY + 1;
        const int grp_span = G > 1 ? ((TC - 1) / OPG + 1) : 1;  // groups one block touches
        auto staged_bytes = [&](int cb) {
            const long long chans = G > 1 ? (long long)(grp_span - 1) * CPG + cb : cb;
            return 4LL * (chans * in_fw * in_fh + (long long)TC * cb * KW * KH);
        };
        int CB = gpu_fit(gpu_ci_block > 0 ? (int)gpu_ci_block : 16, CPG);
        while (CB > 1 && staged_bytes(CB) > 32 * 1024) CB--;
        if (const int d = largest_divisor_in(CPG, std::max(1, CB / 2), CB)) CB = d;
        const bool NBX = batch > 1;
        const TailStrategy ts = in_place ? TailStrategy::GuardWithIf : TailStrategy::ShiftInwards;

        Var cb("cb"), ct("ct"), cr("cr"), xb("xb"), xt("xt"), xr("xr"), yb("yb"), yt("yt"), ybn("ybn");
        output.split(c, cb, c, TC, ts)
            .split(c, ct, cr, RC)
            .split(x, xb, x, BX, ts)
            .split(x, xt, xr, RX)
            .split(y, yb, yt, BY, ts);
        if (NBX) {
            output.reorder(cr, xr, ct, xt, yt, cb, xb, yb, n).fuse(yb, n, ybn).gpu_blocks(cb, xb, ybn);
        } else {
            output.reorder(cr, xr, ct, xt, yt, cb, xb, yb).gpu_blocks(cb, xb, yb);
        }
        output.gpu_threads(ct, xt, yt).unroll(cr).unroll(xr);

        RVar rco("rco"), rci("rci");
        if (!stage) {
            // each thread's RC x RX accumulator in registers, operands read from global memory
            acc.compute_at(output, ct).unroll(c).unroll(x);
            acc.update(0).reorder(c, x, r.x, r.y, r.z, y).unroll(c).unroll(x);
            if (proj_cin > 0) acc.update(1).reorder(c, x, rp.x, y).unroll(c).unroll(x);
            return;
        }
        // the block's accumulator in shared memory, each thread updating its own RC x RX part
        acc.compute_at(output, cb);
        acc.split(c, ct, cr, RC).split(x, xt, xr, RX).reorder(cr, xr, ct, xt, y).gpu_threads(ct, xt, y).unroll(cr).unroll(xr);
        acc.update(0)
            .split(r.x, rco, rci, CB, TailStrategy::GuardWithIf)
            .split(c, ct, cr, RC)
            .split(x, xt, xr, RX)
            .reorder(cr, xr, rci, r.y, r.z, ct, xt, y, rco)
            .gpu_threads(ct, xt, y)
            .unroll(cr)
            .unroll(xr);
        if (proj_cin > 0) {
            acc.update(1)
                .split(c, ct, cr, RC)
                .split(x, xt, xr, RX)
                .reorder(cr, xr, rp.x, ct, xt, y)
                .gpu_threads(ct, xt, y)
                .unroll(cr)
                .unroll(xr);
        }
        src.compute_at(acc, rco);
        gpu_stage_shared(src, {TTC, TTX, BY});
        wts.compute_at(acc, rco);
        gpu_stage_shared(wts, {TTC, TTX, BY});
    }

    void generate() {
        const int CIN = cin, COUT = cout, IW = in_w, IH = in_h, OW = out_w, OH = out_h;
        const int KW = kw, KH = kh, SX = stride_x, SY = stride_y, PX = pad_x, PY = pad_y;
        const int DX = dil_x, DY = dil_y, G = groups;
        if (!(G >= 1 && CIN % G == 0 && COUT % G == 0)) {
            fprintf(stderr, "conv2d: groups must divide cin and cout\n");
            abort();
        }
        if (!(CIN > 0 && COUT > 0 && OW > 0 && OH > 0 && KW > 0 && KH > 0 && SX > 0 && SY > 0 && DX > 0 && DY > 0)) {
            fprintf(stderr, "conv2d: bad shape\n");
            abort();
        }
        const int CPG = CIN / G, OPG = COUT / G;
        const int NB = batch;
        if (NB < 1) {
            fprintf(stderr, "conv2d: batch must be >= 1\n");
            abort();
        }
        auto &input = *in_p;
        auto &weights = *w_p;
        auto &bias = *b_p;
        auto &output = *out_p;
        // batch > 1: every activation Func and buffer takes the image index n as its last dimension
        Var n("n");
        auto at = [&](std::vector<Expr> a) {
            if (NB > 1) a.push_back(n);
            return a;
        };
        auto vars = [&](std::vector<Var> a) {
            if (NB > 1) a.push_back(n);
            return a;
        };
        auto ext = [&](std::vector<int> e) {
            if (NB > 1) e.push_back(NB);
            return e;
        };
        const int PCIN = proj_cin, PIW = proj_in_w, PIH = proj_in_h, PS = proj_stride;
        if (PCIN > 0 && !(PS > 0 && (OW - 1) * PS < PIW && (OH - 1) * PS < PIH)) {
            fprintf(stderr, "conv2d: the projection input does not cover the output grid\n");
            abort();
        }
        const bool depthwise = (G > 1 && CPG == 1 && OPG == 1);

        const Target t = get_target();
        const bool gpu = t.has_gpu_feature();
        const int V = natural_vector_size<float>();
        const int regs = vector_registers(t);
        int vw = vec_for(COUT, V);
        // narrow groups (see the top comment): whole groups in a vector, every vector full
        const bool narrow = !gpu && G > 1 && !depthwise && CPG == OPG && CPG < vw && vw % CPG == 0 && COUT % vw == 0;
        // Other groups that straddle a vector (RegNet's 24 channels a group on 16 lanes) would
        // gather their input: vectors of a power of two >= 4 lanes that the groups tile keep it a
        // broadcast (8 lanes for 24)
        if (G > 1 && !depthwise && !narrow && OPG % vw != 0) {
            int w = vw;
            while (w > 4 && OPG % w != 0) w /= 2;
            if (OPG % w == 0) vw = w;
        }
        const int VW = vw;

        // ---- tile selection -------------------------------------------------
        int tco = tile_co, tx = tile_x;
        if (depthwise) {
            if (tco <= 0) tco = (COUT >= 2 * VW && COUT % (2 * VW) == 0) ? 2 : 1;
            if (tx <= 0) {
                // strided: a tile reads (tx - 1) * stride + kw input vectors a row, and LLVM keeps
                // them live beside the accumulators, so half the accumulators (MobileNetV2's
                // stride-2 3x3s on AVX-512: 2x8 -> 2x4 on 112x112x96 spilled 40 vectors, 104-150
                // -> 95-105 us; 1x14 -> 1x7 on 56x56x144 48-62 -> 33-40 us)
                const int acc_regs = SX > 1 ? regs / 4 : regs / 2;
                int cap = std::max(1, std::min(OW, acc_regs / tco));
                tx = largest_divisor_in(OW, std::max(2, cap / 2), cap);
                if (tx == 0) tx = std::min(OW, 4);
            }
        } else if (narrow) {
            // the input vectors take as many registers as the accumulators: 4 pixels, one
            // vector of 4-channel groups or two of 8-channel ones (ResNeXt-50's 56x56x128 and
            // 28x28x256 on AVX-512: 287 and 283 us against 335-735 and 298-695 for the other
            // tiles of 1-2 vectors x 2-8 pixels)
            if (tco <= 0) tco = (CPG >= 8 && COUT % (2 * VW) == 0) ? 2 : 1;
            if (tx <= 0) tx = std::min(OW, 4);
        } else if (tco <= 0 || tx <= 0) {
            double best = -1;
            int bc = 1, bx = 1;
            for (int c = 1; c <= 8; c++) {
                if (tco > 0 && c != tco) continue;
                if (c * VW > COUT) continue;
                for (int xx = 1; xx <= 16; xx++) {
                    if (tx > 0 && xx != tx) continue;
                    if (xx > OW) continue;
                    int need = c * xx + c + 1;  // accumulators, weight vectors, the broadcast input
                    if (need > regs) continue;
                    // in place: only tiles that divide the output (see in_place below)
                    if (in_place && (COUT % (c * VW) != 0 || OW % xx != 0)) continue;
                    // FMAs per load: c weight vectors and, per pixel, one broadcast per group the
                    // tile spans (dense: one; grouped convs of one or two vectors a group: a 1x14
                    // tile on ResNeXt-50 layer3's 14x14 groups of 16 ran 155 us, the 4x7 one the
                    // dense rule picks 205 us)
                    const int spans = (G > 1 && !depthwise) ? std::max(1, (c * VW + OPG - 1) / OPG) : 1;
                    double ratio = double(c * xx) / double(c + xx * spans);
                    double wc = double((COUT + c * VW - 1) / (c * VW) * (c * VW)) / COUT;
                    double wx = double((OW + xx - 1) / xx * xx) / OW;
                    double score = ratio / (wc * wx);
                    if (score > best + 1e-9) {
                        best = score;
                        bc = c;
                        bx = xx;
                    }
                }
            }
            if (tco <= 0) tco = bc;
            if (tx <= 0) tx = bx;
        }
        // Keep tiles inside the extents (ShiftInwards needs factor <= extent).
        while (tco > 1 && tco * VW > COUT) tco--;
        tx = std::max(1, std::min(tx, OW));
        if (in_place) {
            // every output element written once, after its residual was read: no overlapping
            // (ShiftInwards) tiles, so the tiles are rounded down to divisors of the extents
            if (!res_in) {
                fprintf(stderr, "conv2d: in_place needs residual\n");
                abort();
            }
            while (tco > 1 && COUT % (tco * VW) != 0) tco--;
            tx = largest_divisor_in(OW, 1, tx);
        }
        // narrow groups: a channel tile starts on a group (xin holds the tile's own channels)
        while (narrow && tco > 1 && COUT % (tco * VW) != 0) tco--;
        const int T = tco * VW;

        // Pin shapes / strides.
        pin_map(input, CIN, IW, IH, in_cs, NB);
        const int WB = w_block;
        if (WB < 0 || (WB > 0 && COUT % WB != 0)) {
            fprintf(stderr, "conv2d: w_block must divide cout\n");
            abort();
        }
        const std::vector<int> wshape = WB > 0 ? std::vector<int>{WB, CPG, KW, KH * (COUT / WB)}
                                               : std::vector<int>{COUT, CPG, KW, KH};
        pin_dense(weights, wshape);
        pin_dense(bias, {COUT});
        if (res_in) pin_dense(*res_in, ext({COUT, OW, OH}));
        const std::vector<int> pwshape = WB > 0 ? std::vector<int>{WB, PCIN, 1, COUT / WB}
                                                : std::vector<int>{COUT, PCIN, 1, 1};
        if (proj_in) {
            pin_map(*proj_in, PCIN, PIW, PIH, proj_cs, NB);
            pin_dense(*proj_w, pwshape);
        }

        // ---- algorithm ------------------------------------------------------
        Var c("c"), x("x"), y("y");
        const bool inside_x = PX == 0 && (OW - 1) * SX + (KW - 1) * DX < IW;
        const bool inside_y = PY == 0 && (OH - 1) * SY + (KH - 1) * DY < IH;
        const bool need_pad = !(inside_x && inside_y);

        Func src("src");
        Func in_pad("in_pad");
        // pad_mode: 0 = auto (padded copy, except depthwise and cin/group <= 4
        // (the stem), which read through the boundary condition: Halide's
        // loop partitioning then removes the test from interior tiles),
        // 1 = inline boundary condition, 2 = padded copy.
        const bool copy_pad = !gpu && need_pad && (pad_mode == 2 || (pad_mode == 0 && !depthwise && (CPG > 4 || narrow)));
        const int V0 = natural_vector_size<float>();
        const bool flat_pad = copy_pad && G == 1 && CIN < V0 && 4LL * CIN * ((tx - 1) * SX + (KW - 1) * DX + 1) * ((KH - 1) * DY + 1) <= 16 * 1024;
        Func in_flat("in_flat");
        if (need_pad && !copy_pad) {
            Region bounds = map_bounds(IW, IH, NB);
            src = BoundaryConditions::constant_exterior(input, 0.0f, bounds);
        } else if (need_pad && flat_pad) {
            // Few input channels (the stem): pad in a flattened (c + x*cin, y)
            // layout so the copy vectorises along the contiguous row.
            Region bounds = map_bounds(IW, IH, NB);
            Func in_b = BoundaryConditions::constant_exterior(input, 0.0f, bounds);
            Var i("i");
            in_flat(vars({i, y})) = in_b(at({i % CIN, i / CIN, y}));
            src(vars({c, x, y})) = in_flat(at({x * CIN + c, y}));
        } else if (need_pad) {
            Region bounds = map_bounds(IW, IH, NB);
            Func in_b = BoundaryConditions::constant_exterior(input, 0.0f, bounds);
            in_pad(vars({c, x, y})) = in_b(at({c, x, y}));
            src = in_pad;
        } else {
            src(vars({c, x, y})) = input(at({c, x, y}));
        }

        RDom r(0, CPG, 0, KW, 0, KH, "r");
        Expr ci;
        if (G == 1) {
            ci = r.x;
        } else if (depthwise) {
            ci = c;
        } else if (!gpu && OPG % VW == 0) {
            // Group index from the vector-aligned channel: identical to
            // c / OPG because groups never straddle a vector, but lets the
            // simplifier prove it is uniform across the vector lanes.
            ci = (((c / VW) * VW) / OPG) * CPG + r.x;
        } else {
            ci = (c / OPG) * CPG + r.x;
        }

        // narrow groups read the input through xin: one tap's input vectors (a few, on the stack)
        Func xin("xin");
        xin(vars({c, x, y})) = src(at({c, x, y}));
        // GPU: the staged input with its channel clamped, so that a last chunk of channels past the
        // group (guarded in the sum) reads in bounds (the weights likewise, below)
        Func src_in("src_in");
        if (gpu) src_in(vars({c, x, y})) = src(at({min(c, CIN - 1), x, y}));
        Func &read = narrow ? xin : gpu ? src_in : src;

        Func acc("acc");
        acc(vars({c, x, y})) = bias(c);
        Expr wv = WB > 0 ? weights(c % WB, r.x, r.y, r.z + KH * (c / WB)) : weights(c, r.x, r.y, r.z);
        Func wts("wts");  // GPU: the weights as (co, ci, kx, ky) whatever their layout, staged per ci chunk
        if (gpu) {
            Var wi("wi"), wkx("wkx"), wky("wky");
            const Expr wc = min(wi, CPG - 1);
            wts(c, wi, wkx, wky) = WB > 0 ? weights(c % WB, wc, wkx, wky + KH * (c / WB)) : weights(c, wc, wkx, wky);
            wv = wts(c, r.x, r.y, r.z);
        }
        acc(vars({c, x, y})) += wv *
                        read(at({ci, x * SX - PX + r.y * DX, y * SY - PY + r.z * DY}));
        RDom rp(0, std::max(1, PCIN), "rp");
        if (proj_in) {
            Expr pw = WB > 0 ? (*proj_w)(c % WB, rp, 0, c / WB) : (*proj_w)(c, rp, 0, 0);
            acc(vars({c, x, y})) += pw * (*proj_in)(at({rp, x * PS, y * PS}));
        }

        Expr v = acc(at({c, x, y}));
        if (res_in) v += (*res_in)(at({c, x, y}));
        output(vars({c, x, y})) = activate(act, v);
        pin_map(output, COUT, OW, OH, out_cs, NB);

        // Estimates (for autoschedulers; not used by the hand schedule).
        auto estimates = [&]() {
            estimate_dense(input, ext({CIN, IW, IH}));
            estimate_dense(weights, wshape);
            estimate_dense(bias, {COUT});
            if (res_in) estimate_dense(*res_in, ext({COUT, OW, OH}));
            if (proj_in) {
                estimate_dense(*proj_in, ext({PCIN, PIW, PIH}));
                estimate_dense(*proj_w, pwshape);
            }
            estimate_dense(output, ext({COUT, OW, OH}));
        };

        if (gpu) {
            schedule_gpu(output, acc, src_in, wts, r, rp, c, x, y, n);
            estimates();
            return;
        }

        // ---- schedule -------------------------------------------------------
        // All intermediate allocations are kept <= 16 KB: Halide 14 puts
        // constant-size allocations up to 16 KB on the stack and anything
        // bigger on the heap (even with MemoryType::Stack), so this keeps the
        // kernels free of per-call heap allocation.
        const long long kStackBytes = 16 * 1024;
        const long long kL1Bytes = 80 * 1024;
        const long long wbytes = 4LL * COUT * (CPG * KW * KH + PCIN);
        const long long ibytes = 4LL * (CIN * IW * IH + PCIN * PIW * PIH);
        int order = loop_order;
        if (order != 1 && order != 2) order = (wbytes > ibytes) ? 2 : 1;

        // Reduction blocking over input channels: the weight chunk
        // (cib * kw * kh * T floats) should stay in L1 while it is applied to
        // a block of pixel tiles, and the padded input tile (cib channels x
        // the tile's input footprint) must fit the stack limit.
        const int in_tile_w = (tx - 1) * SX + (KW - 1) * DX + 1;
        int cib = ci_block;
        if (cib <= 0) {
            long long cap = std::max(1LL, kL1Bytes / (4LL * T * KW * KH));
            if (copy_pad) cap = std::min(cap, std::max(1LL, kStackBytes / (4LL * in_tile_w * KH)));
            if (CPG <= cap) {
                cib = CPG;
            } else {
                cib = largest_divisor_in(CPG, std::max(1, (int)cap / 2), (int)cap);
                if (cib == 0) cib = (int)cap;
            }
        }
        cib = std::max(1, std::min(cib, CPG));
        if (narrow) cib = CPG; // a tap's input vectors serve all of the group's channels
        const bool chunked = cib < CPG;
        int PF = prefetch;
        if (PF == 0) PF = (wbytes >= 2 * 1024 * 1024 && OW * OH <= 64) ? 32 : -1; // (tune.prefetch_runoff mirrors this)
        // Halide prefetches a box: with blocked weights and kh > 1 the box of a channel tile's
        // blocks (dim 3 = ky + kh * block) spans the other rows' taps too (10 lines per step
        // instead of 4 for a 4-vector tile of a 3x3 conv). Placed per output-channel vector
        // (the vector loop outside the unrolled pixels), each prefetch is the one line that
        // vector reads PF channels ahead (resnet50 stage 4's 3x3, 3x7 tile, 16-channel chunks:
        // 1.20 -> 1.10 ms in the model).
        const bool pf_per_vector = PF >= 2 && WB > 0 && KH > 1;

        // Accumulator block (chunked case): T channels x bx pixels x by rows,
        // at most 16 KB.  Unchunked: the accumulator is the register tile and
        // by is just the number of rows per parallel task.
        int bx = OW, by = 1;
        int rpt = rows_per_task;
        if (rpt <= 0) rpt = std::max(1, largest_divisor_in(OH, 1, std::max(1, OH / 8)));
        rpt = std::min(rpt, OH);
        if (chunked) {
            long long row_bytes = 4LL * T * OW;
            if (row_bytes > kStackBytes) {
                bx = std::max(1, (int)(kStackBytes / (4LL * T * tx))) * tx;
                bx = std::min(bx, OW);
                int d = 0;
                for (int b2 = bx; b2 >= std::max(tx, bx / 2); b2 -= tx) {
                    if (OW % b2 == 0) {
                        d = b2;
                        break;
                    }
                }
                if (d) bx = d;
                by = 1;
            } else {
                int fit = (int)std::min<long long>(OH, kStackBytes / row_bytes);
                if (order == 1) fit = std::min(fit, std::max(1, OH / 4));
                fit = std::max(1, fit);
                int d = largest_divisor_in(OH, std::max(1, (fit * 2) / 3), fit);
                by = d ? d : fit;
            }
        } else {
            by = (order == 1) ? rpt : OH;
            if (copy_pad) {
                // The padded copy is made per output row and x block of bx
                // pixels (a multiple of tx): bx as large as the stack limit
                // allows, preferring divisors of out_w.
                long long per_c = flat_pad ? 1 : (G == 1 ? CIN : CPG);
                auto copy_bytes = [&](int w) {
                    return 4LL * per_c * ((long long)(w - 1) * SX + (KW - 1) * DX + 1) * ((KH - 1) * DY + 1) *
                           (flat_pad ? CIN : 1);
                };
                int best = tx;
                for (int k = 1; k * tx <= OW; k++) {
                    if (copy_bytes(k * tx) > kStackBytes) break;
                    if (OW % (k * tx) == 0 || k * tx > 2 * best) best = k * tx;
                }
                bx = best;
            }
        }
        // Parallel tasks: at least min_tasks (default 8) where the shape allows, so that two (or
        // four) threads get balanced work. Channel tiles outer with few tiles (the stem: one;
        // 128-256 channels: two to four) also split the rows, into blocks that divide out_h
        // (no recomputed tail); rows outer with few row blocks (7x7 maps: seven) also run the
        // channel tiles in parallel (the two loops are fused).
        const int n_co = (COUT + T - 1) / T;
        const int MT = min_tasks > 0 ? (int)min_tasks : 8;
        if (order == 2 && n_co < MT && OH > 1) {
            const int want_y = (MT + n_co - 1) / n_co;
            const int cap = std::max(1, OH / want_y);
            if (by > cap) {
                const int d = largest_divisor_in(OH, std::max(1, cap / 2), cap);
                if (d) by = d;
            }
        }
        if (in_place) {
            by = largest_divisor_in(OH, 1, by);
            int b2 = bx - bx % tx;
            while (b2 > tx && OW % b2 != 0) b2 -= tx;
            bx = std::max(tx, b2);
            if (COUT % T != 0 || OW % bx != 0 || bx % tx != 0) {
                fprintf(stderr, "conv2d: in_place needs tiles that divide the output (cout %d, out_w %d)\n", COUT, OW);
                abort();
            }
        }
        const int n_y = (OH + by - 1) / by;
        const int blk_in_w = (bx - 1) * SX + (KW - 1) * DX + 1;

        Var co("co"), cv("cv"), cl("cl"), xoo("xoo"), xo("xo"), xi("xi"), yo("yo"), yi("yi");
        output.split(c, co, c, T, TailStrategy::ShiftInwards)
            .split(c, cv, cl, VW)
            .split(y, yo, yi, by, TailStrategy::ShiftInwards)
            .split(x, xoo, x, bx, TailStrategy::ShiftInwards)
            .split(x, xo, xi, tx, TailStrategy::ShiftInwards)
            .vectorize(cl)
            .unroll(cv)
            .unroll(xi);
        Var task("task");
        if (order == 1) {
            output.reorder(cl, cv, xi, xo, yi, xoo, co, yo);
            if (n_y < MT && n_co > 1) {
                output.fuse(co, yo, task).parallel(task);
            } else {
                output.parallel(yo);
            }
        } else if (NB > 1) {
            // the images inside the channel tiles: each weight tile serves all N images
            Var yn("yn");
            output.reorder(cl, cv, xi, xo, yi, xoo, yo, n, co).fuse(yo, n, yn).fuse(yn, co, task).parallel(task);
        } else {
            output.reorder(cl, cv, xi, xo, yi, xoo, yo, co);
            if (n_y > 1) {
                output.fuse(yo, co, task).parallel(task);
            } else {
                output.parallel(co);
            }
        }

        Var pc("pc"), pl("pl");
        const int VC = vec_for(G == 1 ? std::min(CIN, cib) : cib, V);
        if (!chunked) {
            // Accumulator = register tile; reduction over all of ci.
            acc.compute_at(output, xo)
                .split(c, cv, cl, VW)
                .vectorize(cl)
                .unroll(cv)
                .unroll(x);
            Stage u = acc.update();
            RVar rci = r.x, rkx = r.y, rky = r.z;
            u.split(c, cv, cl, VW);
            if (narrow) {
                // lane-in-group inner, group outer, both vectorised; the group's input
                // channels (unrolled) outside the register tile, xin loaded once a tap
                Var cq("cq"), cj("cj");
                u.split(cl, cq, cj, CPG).reorder(cj, cq, cv, x, rci, rkx, rky, y);
                u.vectorize(cj).vectorize(cq).unroll(cv).unroll(x).unroll(rci);
                xin.compute_at(acc, rkx);
                Var xc = xin.args()[0], xcv("xcv"), xcl("xcl");
                xin.bound_extent(xc, T).split(xc, xcv, xcl, VW).vectorize(xcl).unroll(xcv).unroll(xin.args()[1]);
            } else if (pf_per_vector) {
                u.reorder(cl, x, cv, rci, rkx, rky, y);
            } else {
                u.reorder(cl, cv, x, rci, rkx, rky, y);
            }
            if (!narrow) u.vectorize(cl).unroll(cv).unroll(x);
            if (PF >= 2) {
                u.prefetch(weights, pf_per_vector ? VarOrRVar(cv) : VarOrRVar(rci), rci, PF,
                           PrefetchBoundStrategy::NonFaulting);
            }
            if (CPG <= 4 && !narrow) {
                u.unroll(rci);
                if (CPG * KW <= 8) u.unroll(rkx);
            }
            if (proj_in) {
                Stage up = acc.update(1);
                up.split(c, cv, cl, VW).reorder(cl, cv, x, rp.x, y).vectorize(cl).unroll(cv).unroll(x);
                if (PF >= 2) up.prefetch(*proj_w, rp.x, rp.x, PF, PrefetchBoundStrategy::NonFaulting);
            }
            if (flat_pad) {
                Var fi = in_flat.args()[0], fo("fo"), fl("fl");
                in_flat.compute_at(output, yi)
                    .split(fi, fo, fl, vec_for(CIN * blk_in_w, V), TailStrategy::ShiftInwards)
                    .vectorize(fl);
                in_flat.bound_storage(fi, CIN * blk_in_w).bound_storage(y, (KH - 1) * DY + 1);
            } else if (copy_pad) {
                in_pad.compute_at(output, yi).split(c, pc, pl, VC, TailStrategy::ShiftInwards).vectorize(pl);
                in_pad.bound_storage(x, blk_in_w).bound_storage(y, (KH - 1) * DY + 1);
            }
        } else {
            // Accumulator block in a stack buffer; the update walks ci in
            // chunks (outermost), then pixel tiles, then the register tile's
            // reduction over the chunk.  Update stages cannot use
            // ShiftInwards (it would accumulate twice), so tiles that do not
            // divide the block get a guarded tail.
            acc.compute_at(output, xoo).split(c, cv, cl, VW).vectorize(cl).unroll(cv);
            Stage u = acc.update();
            RVar rco("rco"), rci("rci"), rkx = r.y, rky = r.z;
            Var uxo("uxo"), uxi("uxi");
            u.split(r.x, rco, rci, cib, TailStrategy::GuardWithIf)
                .split(c, cv, cl, VW)
                .split(x, uxo, uxi, tx, TailStrategy::GuardWithIf);
            if (pf_per_vector) {
                u.reorder(cl, uxi, cv, rci, rkx, rky, uxo, y, rco);
            } else {
                u.reorder(cl, cv, uxi, rci, rkx, rky, uxo, y, rco);
            }
            u.vectorize(cl).unroll(cv).unroll(uxi);
            if (PF == 1) {
                u.prefetch(weights, rco, rco, 1, PrefetchBoundStrategy::GuardWithIf);
            } else if (PF >= 2) {
                u.prefetch(weights, pf_per_vector ? VarOrRVar(cv) : VarOrRVar(rci), rci, PF,
                           PrefetchBoundStrategy::NonFaulting);
            }
            if (cib <= 4) {
                u.unroll(rci);
                if (CPG * KW <= 8) u.unroll(rkx);
            }
            if (proj_in) {
                // the projection in chunks of the same weight footprint (T x cibp floats)
                const int pcap = (int)std::max(1LL, kL1Bytes / (4LL * T));
                int cibp = PCIN;
                if (PCIN > pcap) {
                    cibp = largest_divisor_in(PCIN, std::max(1, pcap / 2), pcap);
                    if (cibp == 0) cibp = pcap;
                }
                Stage up = acc.update(1);
                RVar rpo("rpo"), rpi("rpi");
                Var pxo("pxo"), pxi("pxi");
                up.split(rp.x, rpo, rpi, cibp, TailStrategy::GuardWithIf)
                    .split(c, cv, cl, VW)
                    .split(x, pxo, pxi, tx, TailStrategy::GuardWithIf)
                    .reorder(cl, cv, pxi, rpi, pxo, y, rpo)
                    .vectorize(cl)
                    .unroll(cv)
                    .unroll(pxi);
                if (PF == 1) {
                    up.prefetch(*proj_w, rpo, rpo, 1, PrefetchBoundStrategy::GuardWithIf);
                } else if (PF >= 2) {
                    up.prefetch(*proj_w, rpi, rpi, PF, PrefetchBoundStrategy::NonFaulting);
                }
            }
            if (flat_pad) {
                Var fi = in_flat.args()[0], fo("fo"), fl("fl");
                in_flat.compute_at(acc, uxo)
                    .split(fi, fo, fl, vec_for(CIN * in_tile_w, V), TailStrategy::ShiftInwards)
                    .vectorize(fl);
                in_flat.bound_storage(fi, CIN * in_tile_w).bound_storage(y, (KH - 1) * DY + 1);
            } else if (copy_pad) {
                in_pad.compute_at(acc, uxo).split(c, pc, pl, VC, TailStrategy::ShiftInwards).vectorize(pl);
                // constant-size (stack) storage even for the guarded x tail
                in_pad.bound_storage(x, in_tile_w).bound_storage(y, (KH - 1) * DY + 1);
            }
        }

        estimates();
    }
};

}  // namespace

HALIDE_REGISTER_GENERATOR(Conv2D, conv2d)
