// conv2d: shape-specialised 2-D convolution (dense, grouped, depthwise),
// channels innermost, float32, batch 1.
//
// Maths (g = co / (cout/groups), cpg = cin/groups):
//   out(co,x,y) = act( bias(co)
//       + sum_{ci<cpg, kx<kw, ky<kh} w(co,ci,kx,ky)
//             * in(g*cpg+ci, x*stride_x - pad_x + kx*dil_x, y*stride_y - pad_y + ky*dil_y)
//       [+ residual(co,x,y)] )
//   zero padding outside the input; act = relu (after the residual add) or id.
//
// Buffers (all dense, min 0, channels innermost):
//   input    (cin, in_w, in_h)
//   weights  (co, ci, kx, ky) = (cout, cin/groups, kw, kh), i.e. HWIO memory
//   bias     (cout)
//   residual (cout, out_w, out_h)   -- only when residual=true (added in
//                                      configure(), so it comes after bias)
//   output   (cout, out_w, out_h)
//
// Schedule idea (apps/conv_layer style register blocking):
//   * The output is tiled into register blocks of tile_co vectors of output
//     channels (vectorised, V = natural vector width, 16 on AVX-512) times
//     tile_x output pixels along x (unrolled).  The accumulator Func is
//     computed at that tile, so it is a constant-size block that LLVM keeps
//     in registers.  Its update loops over ci (innermost, serial), kx, ky;
//     each step is tile_co vector weight loads + tile_x scalar broadcasts of
//     the input feeding tile_co*tile_x FMAs.  For tiny cin (the stem) ci and
//     kx are unrolled too.
//   * Tails: tiles that do not divide cout / out_w use ShiftInwards (the
//     last tile overlaps the previous one and recomputes a few outputs), so
//     the inner loops always stay vectorised with constant extents.  Vector
//     width is reduced to a power of two <= cout when cout < V.
//   * Padding: when pad > 0 (or the window can leave the input) a zero-padded
//     copy of the input rows is built on the stack: with loop_order=1 per
//     strip of output rows (sliding window + storage folding, so each input
//     row is copied about once per strip), with loop_order=2 once per call.
//     With no padding the kernel reads the input directly.
//   * Loop order: 1 = rows outer (parallel over strips of rows_per_task output
//     rows, channel tiles inside: activations stream once, weights stay in
//     L2); 2 = channel tiles outer (parallel over channel tiles, all pixels
//     inside: each weight tile is loaded into cache once; best when weights
//     are larger than the activations, i.e. deep layers with small maps).
//   * Grouped convs whose channels-per-group is a multiple of the vector width
//     compute the group index from the vector-aligned channel so the input
//     access stays a scalar broadcast; depthwise (cin == cout == groups) reads
//     input vectors along c directly.  Other group shapes are correct but use
//     gathers.
//
// Schedule GeneratorParams (0 = heuristic default):
//   tile_co        output-channel tile, in vectors          (default: scored,
//                  typically 4 on AVX-512 -> 64 channels)
//   tile_x         output pixels per register tile along x  (default: scored,
//                  typically 7; prefers divisors of out_w)
//   loop_order     1 = rows outer, 2 = channel tiles outer  (default: 2 when
//                  weight bytes > input bytes, else 1)
//   rows_per_task  output rows per parallel task, loop_order 1 (default:
//                  largest divisor of out_h <= out_h/8, at least 1)

#include "foldc_common.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace {

using namespace Halide;
using namespace foldc;

class Conv2D : public Generator<Conv2D> {
public:
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
    GeneratorParam<bool> relu{"relu", false};
    GeneratorParam<bool> residual{"residual", false};
    // schedule knobs
    GeneratorParam<int> tile_co{"tile_co", 0};
    GeneratorParam<int> tile_x{"tile_x", 0};
    GeneratorParam<int> loop_order{"loop_order", 0};
    GeneratorParam<int> rows_per_task{"rows_per_task", 0};
    GeneratorParam<int> ci_block{"ci_block", 0};

    Input<Buffer<float, 3>> input{"input"};
    Input<Buffer<float, 4>> weights{"weights"};
    Input<Buffer<float, 1>> bias{"bias"};
    Input<Buffer<float, 3>> *res_in = nullptr;
    Output<Buffer<float, 3>> output{"output"};

    void configure() {
        if (residual) {
            res_in = add_input<Buffer<float, 3>>("residual");
        }
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
        const bool depthwise = (G > 1 && CPG == 1 && OPG == 1);

        const Target t = get_target();
        const int V = natural_vector_size<float>();
        const int regs = vector_registers(t);
        const int VW = vec_for(COUT, V);

        // ---- tile selection -------------------------------------------------
        int tco = tile_co, tx = tile_x;
        if (depthwise) {
            if (tco <= 0) tco = (COUT >= 2 * VW && COUT % (2 * VW) == 0) ? 2 : 1;
            if (tx <= 0) {
                int cap = std::max(1, std::min(OW, (regs / 2) / tco));
                tx = largest_divisor_in(OW, std::max(2, cap / 2), cap);
                if (tx == 0) tx = std::min(OW, 4);
            }
        } else if (tco <= 0 || tx <= 0) {
            double best = -1;
            int bc = 1, bx = 1;
            for (int c = 1; c <= 8; c++) {
                if (tco > 0 && c != tco) continue;
                if (c * VW > COUT) continue;
                for (int xx = 1; xx <= 16; xx++) {
                    if (tx > 0 && xx != tx) continue;
                    if (xx > OW) continue;
                    int need = c * xx + c + (regs <= 16 ? 1 : 0);
                    if (need > regs) continue;
                    double ratio = double(c * xx) / double(c + xx);
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
        const int T = tco * VW;

        // Pin shapes / strides.
        pin_dense(input, {CIN, IW, IH});
        pin_dense(weights, {COUT, CPG, KW, KH});
        pin_dense(bias, {COUT});
        if (res_in) pin_dense(*res_in, {COUT, OW, OH});

        // ---- algorithm ------------------------------------------------------
        Var c("c"), x("x"), y("y");
        const bool inside_x = PX == 0 && (OW - 1) * SX + (KW - 1) * DX < IW;
        const bool inside_y = PY == 0 && (OH - 1) * SY + (KH - 1) * DY < IH;
        const bool need_pad = !(inside_x && inside_y);

        Func src("src");
        Func in_pad("in_pad");
        if (need_pad) {
            Region bounds = {Range(Expr(), Expr()), Range(0, IW), Range(0, IH)};
            Func in_b = BoundaryConditions::constant_exterior(input, 0.0f, bounds);
            in_pad(c, x, y) = in_b(c, x, y);
            src = in_pad;
        } else {
            src(c, x, y) = input(c, x, y);
        }

        RDom r(0, CPG, 0, KW, 0, KH, "r");
        Expr ci;
        if (G == 1) {
            ci = r.x;
        } else if (depthwise) {
            ci = c;
        } else if (OPG % VW == 0) {
            // Group index from the vector-aligned channel: identical to
            // c / OPG because groups never straddle a vector, but lets the
            // simplifier prove it is uniform across the vector lanes.
            ci = (((c / VW) * VW) / OPG) * CPG + r.x;
        } else {
            ci = (c / OPG) * CPG + r.x;
        }

        Func acc("acc");
        acc(c, x, y) = bias(c);
        acc(c, x, y) += weights(c, r.x, r.y, r.z) *
                        src(ci, x * SX - PX + r.y * DX, y * SY - PY + r.z * DY);

        Expr v = acc(c, x, y);
        if (res_in) v += (*res_in)(c, x, y);
        if (relu) v = max(v, 0.0f);
        output(c, x, y) = v;
        pin_dense(output, {COUT, OW, OH});

        // ---- schedule -------------------------------------------------------
        const long long wbytes = 4LL * COUT * CPG * KW * KH;
        const long long ibytes = 4LL * CIN * IW * IH;
        int order = loop_order;
        if (order != 1 && order != 2) order = (wbytes > ibytes) ? 2 : 1;
        int rpt = rows_per_task;
        if (rpt <= 0) rpt = std::max(1, largest_divisor_in(OH, 1, std::max(1, OH / 8)));
        rpt = std::min(rpt, OH);

        Var co("co"), cv("cv"), cl("cl"), xo("xo"), xi("xi"), yo("yo"), yi("yi");
        output.split(c, co, c, T, TailStrategy::ShiftInwards)
            .split(c, cv, cl, VW)
            .split(x, xo, xi, tx, TailStrategy::ShiftInwards)
            .vectorize(cl)
            .unroll(cv)
            .unroll(xi);
        // Channel-tiles-outer blocking: accumulate a strip of rows2 output
        // rows x T channels in a stack buffer, walking the reduction in
        // chunks of ci_block input channels so that the weight chunk
        // (ci_block * kw * kh * T floats) stays in L1 across all pixel tiles.
        int cib = ci_block;
        int rows2 = 1;
        if (order == 2) {
            if (cib <= 0) {
                long long per_ci = 4LL * T * KW * KH;
                int cap = (int)std::max(1LL, (40LL * 1024) / per_ci);
                cib = largest_divisor_in(CPG, std::max(1, cap / 2), cap);
                if (cib == 0) cib = std::min(CPG, cap);
            }
            cib = std::max(1, std::min(cib, CPG));
            long long row_bytes = 4LL * T * OW;
            rows2 = std::max(1, std::min(OH, (int)((128LL * 1024) / row_bytes)));
            int d = largest_divisor_in(OH, std::max(1, (rows2 * 2) / 3), rows2);
            if (d) rows2 = d;
        }

        if (order == 1) {
            output.split(y, yo, yi, rpt, TailStrategy::ShiftInwards)
                .reorder(cl, cv, xi, xo, co, yi, yo)
                .parallel(yo);
            acc.compute_at(output, xo)
                .split(c, cv, cl, VW)
                .vectorize(cl)
                .unroll(cv)
                .unroll(x);
            Stage u = acc.update();
            RVar rci = r.x, rkx = r.y, rky = r.z;
            u.split(c, cv, cl, VW).reorder(cl, cv, x, rci, rkx, rky, y).vectorize(cl).unroll(cv).unroll(x);
            if (CPG <= 4) {
                u.unroll(rci);
                if (KW <= 7) u.unroll(rkx);
            }
        } else {
            output.split(y, yo, yi, rows2, TailStrategy::ShiftInwards)
                .reorder(cl, cv, xi, xo, yi, yo, co)
                .parallel(co);
            acc.compute_at(output, yo).split(c, cv, cl, VW).vectorize(cl).unroll(cv);
            Stage u = acc.update();
            RVar rco("rco"), rci("rci"), rkx = r.y, rky = r.z;
            Var uxo("uxo"), uxi("uxi");
            // Update stages cannot use ShiftInwards (it would accumulate
            // twice); tiles that do not divide out_w get a guarded tail.
            u.split(r.x, rco, rci, cib, TailStrategy::GuardWithIf)
                .split(c, cv, cl, VW)
                .split(x, uxo, uxi, tx, TailStrategy::GuardWithIf)
                .reorder(cl, cv, uxi, rci, rkx, rky, uxo, y, rco)
                .vectorize(cl)
                .unroll(cv)
                .unroll(uxi);
            if (cib <= 4) {
                u.unroll(rci);
                if (KW <= 7) u.unroll(rkx);
            }
        }

        if (need_pad) {
            // Padded copy of the input rows, vectorised over channels.
            const int region_c = depthwise ? T : (G == 1 ? CIN : CPG);
            const int VC = vec_for(region_c, V);
            Var pc("pc"), pl("pl");
            long long pad_w = (long long)(OW - 1) * SX + (KW - 1) * DX + 1;
            if (order == 1) {
                long long rows = (long long)(rpt - 1) * SY + (KH - 1) * DY + 1;
                long long bytes = 4LL * region_c * pad_w * rows;
                in_pad.store_at(output, yo).compute_at(output, yi).split(c, pc, pl, VC).vectorize(pl);
                if (bytes <= (2LL << 20)) in_pad.store_in(MemoryType::Stack);
            } else {
                long long rows = (long long)(OH - 1) * SY + (KH - 1) * DY + 1;
                long long bytes = 4LL * CIN * pad_w * rows;
                in_pad.compute_root().split(c, pc, pl, VC).vectorize(pl).parallel(y);
                if (bytes <= (1LL << 20)) in_pad.store_in(MemoryType::Stack);
            }
        }

        // Estimates (for autoschedulers; not used by the hand schedule).
        estimate_dense(input, {CIN, IW, IH});
        estimate_dense(weights, {COUT, CPG, KW, KH});
        estimate_dense(bias, {COUT});
        if (res_in) estimate_dense(*res_in, {COUT, OW, OH});
        estimate_dense(output, {COUT, OW, OH});
    }
};

}  // namespace

HALIDE_REGISTER_GENERATOR(Conv2D, conv2d)
