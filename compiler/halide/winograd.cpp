// conv2d_winograd: 3x3 stride-1 dense convolution by Winograd's minimal
// filtering F(m x m, 3 x 3) (Lavin & Gray 2016, "Fast Algorithms for
// Convolutional Neural Networks"), channels innermost, float32; batch > 1 adds an outer image
// dimension to input, residual and output, as in conv2d.
// Same shapes, epilogue and buffers as conv2d (groups = 1, kw = kh = 3,
// stride 1, dilation 1), except that the weights come already transformed.
//
// Maths (a = m + 2 points per tile side; tiles of m x m outputs):
//   out(co, x, y) = act( bias(co) + sum_{ci,kx,ky} g(co,ci,kx,ky) * in(ci, x-px+kx, y-py+ky)
//                        [+ residual(co,x,y)] )                        (zero padding)
//   per tile (tx, ty), with d = the a x a input patch at (m*tx - px, m*ty - py):
//     V[ci]  = B^T d[ci] B                       input transform
//     M[co]  = sum_ci U[co,ci] (.) V[ci]          a*a independent GEMMs over ci
//     Y[co]  = A^T M[co] A                        output transform (m x m outputs)
//   with U = G g G^T (a x a per (co, ci)), done by the caller in double.
//   The matrices come from Toom-Cook on the points of `points` (a - 1 finite
//   points, plus infinity):
//     A^T[i][j] = p_j^i (j < a-1),  A^T[i][a-1] = [i == m-1]
//     G[j][k]   = p_j^k / prod_{l != j} (p_j - p_l)  (j < a-1),  G[a-1] = (0, 0, 1)
//     B^T[j]    = ascending coefficients of prod_{l != j} (x - p_l)  (j < a-1),
//     B^T[a-1]  = coefficients of prod_l (x - p_l)
//   (winograd_matrices() below; compiler/winograd.lua and the kernel test
//   build the same G from the same points).
//
// Buffers (all dense, min 0, channels innermost):
//   input    (cin, in_w, in_h)
//   weights  (co, ci, ex, ey) = (cout, cin, a, a): U[ey][ex] of (co, ci), i.e.
//            memory [ey][ex][ci][co], co innermost
//   bias     (cout)
//   residual (cout, out_w, out_h)   -- only when residual=true
//   output   (cout, out_w, out_h)
//
// Schedule (everything fused per block of tiles, no intermediate > 16 KB,
// so Halide 14 keeps them all on the stack: no heap allocation per call):
//   * output loops: co tile (T = tile_co vectors) > block of tile_rows tile
//     rows (parallel) > block of tile_t tiles along x (blocks that do not
//     divide the map overlap the previous one: ShiftInwards) > tile row >
//     tile > m x m pixels (unrolled) > co vectors; images (batch > 1) just inside
//     the co tile, so a co tile's U is read from memory once for all N images.
//     A map size that m does not divide gets partial edge tiles: the input
//     outside the map reads as zero and the stores past the edge are guarded
//     (the guard is on unrolled pixels, the channel vectors stay whole).
//   * per tile block, for each transform row i (a separate Func per i, so all
//     transform coefficients are compile-time constants and zeros vanish):
//       tmp_i(c, x)    = sum_r B^T[i][r] in(c, x, m*ty + r - py)   (row transform, shared by overlapping tiles)
//       V_i(c, j, t)   = sum_col B^T[j][col] tmp_i(c, m*t + col - px)
//       M_i(co, j, t) += U(co, c, j, i) * V_i(c, j, t)   register tile: tile_co vectors of co x tile_t tiles,
//                        one U vector load per tile_t FMAs, V broadcast from L1; reduction over c innermost,
//                        in chunks of ci_block channels (V_i of a chunk is built just before it is used).
//   * per tile: O1(co, q, i) = sum_j A^T[q][j] M_i(co, j, t);  Y(co, q, p) = sum_i A^T[p][i] O1(co, q, i);
//     then bias, residual and the activation `act` (activation.h) on the way to the output.
//   The input transform is redone per co tile (cout / T times); T = 64 on
//   AVX-512 where cout allows.
//
// Schedule GeneratorParams (0 = heuristic default):
//   tile_co   output channels per tile in vectors (default: 4 on AVX-512, within cout)
//   tile_t    tiles per block along x (register tile width; default: the largest
//             divisor of the tile count that fits the registers and the 16 KB limit)
//   tile_rows tile rows per block (default 1; each block streams all of U once,
//             so taller blocks read it fewer times, within the 16 KB limit on M_i)
//   ci_block  input channels per reduction chunk (default: as many as fit 16 KB)
//   u_block   0: weights (co, ci, ex, ey); B: blocked by B output channels,
//             (co % B, ci, ex, ey + a * (co / B)) (set by the lowering: 16 when cout % 16 == 0)
// Algorithm GeneratorParams:
//   m         output tile side: 2, 4 or 6 (alpha = m + 2)
//   points    the a - 1 finite interpolation points, comma-separated
//             (default: m=2 "0,1,-1"; m=4 "0,1,-1,0.5,-2"; m=6 "0,1,-1,2,-2,0.5,-0.5")

#include "activation.h"
#include "foldc_common.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

using namespace Halide;
using namespace foldc;

// Default interpolation points for F(m, 3); keep in step with compiler/winograd.lua.
std::string default_points(int m) {
    if (m == 2) return "0,1,-1";
    if (m == 4) return "0,1,-1,0.5,-2";
    if (m == 6) return "0,1,-1,2,-2,0.5,-0.5";
    return "";
}

std::vector<double> parse_points(const std::string &s) {
    std::vector<double> p;
    size_t i = 0;
    while (i < s.size()) {
        size_t j = s.find(',', i);
        if (j == std::string::npos) j = s.size();
        p.push_back(std::strtod(s.substr(i, j - i).c_str(), nullptr));
        i = j + 1;
    }
    return p;
}

// Toom-Cook matrices for F(m, r) on the finite points p (size m + r - 2) and infinity.
struct WinogradMatrices {
    int m, r, a;
    std::vector<std::vector<double>> AT, G, BT;  // m x a, a x r, a x a
};

WinogradMatrices winograd_matrices(int m, int r, const std::vector<double> &p) {
    WinogradMatrices w;
    w.m = m;
    w.r = r;
    w.a = m + r - 1;
    const int a = w.a, n = a - 1;
    w.AT.assign(m, std::vector<double>(a, 0.0));
    w.G.assign(a, std::vector<double>(r, 0.0));
    w.BT.assign(a, std::vector<double>(a, 0.0));
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) w.AT[i][j] = std::pow(p[j], i);
        w.AT[i][n] = (i == m - 1) ? 1.0 : 0.0;
    }
    for (int j = 0; j < n; j++) {
        double f = 1.0;
        for (int l = 0; l < n; l++) {
            if (l != j) f *= p[j] - p[l];
        }
        for (int k = 0; k < r; k++) w.G[j][k] = std::pow(p[j], k) / f;
    }
    w.G[n][r - 1] = 1.0;
    // polynomial products, ascending coefficients
    for (int j = 0; j <= n; j++) {
        std::vector<double> poly(1, 1.0);
        for (int l = 0; l < n; l++) {
            if (l == j) continue;
            std::vector<double> next(poly.size() + 1, 0.0);
            for (size_t k = 0; k < poly.size(); k++) {
                next[k + 1] += poly[k];
                next[k] -= p[l] * poly[k];
            }
            poly = next;
        }
        for (size_t k = 0; k < poly.size() && (int)k < a; k++) w.BT[j][k] = poly[k];
    }
    return w;
}

// sum_k coef[k] * term(k), skipping zero coefficients and folding +-1.
template<typename F>
Expr lin(const std::vector<double> &coef, F term) {
    Expr e;
    for (size_t k = 0; k < coef.size(); k++) {
        double c = coef[k];
        if (c == 0.0) continue;
        Expr t = term((int)k);
        if (c == -1.0) {
            e = e.defined() ? e - t : -t;
        } else {
            if (c != 1.0) t = t * (float)c;
            e = e.defined() ? e + t : t;
        }
    }
    return e.defined() ? e : Expr(0.0f);
}

class Conv2DWinograd : public Generator<Conv2DWinograd> {
public:
    // pixel strides of the input and output maps in floats (0: dense; a channel slice, pin_map)
    GeneratorParam<int> in_cs{"in_cs", 0};
    GeneratorParam<int> out_cs{"out_cs", 0};
    GeneratorParam<int> cin{"cin", 64};
    GeneratorParam<int> cout{"cout", 64};
    GeneratorParam<int> in_w{"in_w", 56};
    GeneratorParam<int> in_h{"in_h", 56};
    GeneratorParam<int> out_w{"out_w", 56};
    GeneratorParam<int> out_h{"out_h", 56};
    GeneratorParam<int> pad_x{"pad_x", 1};
    GeneratorParam<int> pad_y{"pad_y", 1};
    GeneratorParam<Act> act{"act", Act::None, act_names()};
    GeneratorParam<bool> residual{"residual", false};
    GeneratorParam<int> m{"m", 4};
    GeneratorParam<std::string> points{"points", ""};
    // schedule knobs
    GeneratorParam<int> tile_co{"tile_co", 0};
    GeneratorParam<int> tile_t{"tile_t", 0};
    GeneratorParam<int> tile_rows{"tile_rows", 0};
    GeneratorParam<int> ci_block{"ci_block", 0};
    GeneratorParam<int> u_block{"u_block", 0};
    // images per call (the lowering sets it only when > 1)
    GeneratorParam<int> batch{"batch", 1};

    // Added in configure() (in this order: the kernel's arguments), so that the activations take
    // an image dimension when batch > 1.
    Input<Buffer<float>> *in_p = nullptr, *w_p = nullptr, *b_p = nullptr, *res_in = nullptr;
    Output<Buffer<float>> *out_p = nullptr;

    void configure() {
        const int R = batch > 1 ? 4 : 3;
        in_p = add_input<Buffer<float>>("input", R);
        w_p = add_input<Buffer<float>>("weights", 4);
        b_p = add_input<Buffer<float>>("bias", 1);
        if (residual) {
            res_in = add_input<Buffer<float>>("residual", R);
        }
        out_p = add_output<Buffer<float>>("output", R);
    }

    void generate() {
        const int CIN = cin, COUT = cout, IW = in_w, IH = in_h, OW = out_w, OH = out_h;
        const int PX = pad_x, PY = pad_y, MM = m;
        if (!(CIN > 0 && COUT > 0 && OW > 0 && OH > 0 && OW == IW + 2 * PX - 2 && OH == IH + 2 * PY - 2)) {
            fprintf(stderr, "conv2d_winograd: bad shape (3x3 stride 1: out = in + 2*pad - 2)\n");
            abort();
        }
        if (MM < 2 || MM > 8) {
            fprintf(stderr, "conv2d_winograd: m must be in [2, 8]\n");
            abort();
        }
        const int A = MM + 2;
        const int NB = batch;
        if (NB < 1) {
            fprintf(stderr, "conv2d_winograd: batch must be >= 1\n");
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
        std::string pts = points;
        if (pts.empty()) pts = default_points(MM);
        std::vector<double> pv = parse_points(pts);
        if ((int)pv.size() != A - 1) {
            fprintf(stderr, "conv2d_winograd: m=%d needs %d points, got \"%s\"\n", MM, A - 1, pts.c_str());
            abort();
        }
        const WinogradMatrices W = winograd_matrices(MM, 3, pv);
        const int TX = (OW + MM - 1) / MM, TY = (OH + MM - 1) / MM;

        const Target t = get_target();
        const int V = natural_vector_size<float>();
        const int regs = vector_registers(t);
        const int VW = vec_for(COUT, V);

        // ---- tile selection -------------------------------------------------
        const long long kStackFloats = 16 * 1024 / 4;
        int tco = tile_co;
        if (tco <= 0) tco = regs >= 32 ? 4 : 2;
        while (tco > 1 && tco * VW > COUT) tco--;
        const int T = tco * VW;
        int nt = tile_t;
        if (nt <= 0) {
            const int cap = std::max(1, std::min<int>((regs - tco - (regs <= 16 ? 1 : 0)) / tco,
                                                      (int)(kStackFloats / ((long long)T * A))));
            nt = largest_divisor_in(TX, std::max(1, (cap + 1) / 2), cap);
            if (nt == 0) nt = std::min(cap, TX);
        }
        nt = std::max(1, std::min(nt, TX));
        // Tile rows per block: each block reads all of U (a*a*cin*cout floats), so taller
        // blocks read it fewer times, as far as M_i (T x a x nt x rb) stays within 16 KB. Not
        // measurably faster on resnet/repvgg layers, so 1 unless asked.
        int rb = tile_rows;
        if (rb <= 0) rb = 1;
        rb = std::max(1, std::min({rb, TY, (int)std::max(1LL, kStackFloats / ((long long)T * A * nt))}));
        int cib = ci_block;
        if (cib <= 0) {
            long long cap = std::max(1LL, kStackFloats / ((long long)A * nt * rb));
            cap = std::min(cap, std::max(1LL, kStackFloats / ((long long)(MM * nt + 2) * rb)));
            if (CIN <= cap) {
                cib = CIN;
            } else {
                cib = largest_divisor_in(CIN, std::max(1, (int)cap / 2), (int)cap);
                if (cib == 0) cib = (int)cap;
            }
        }
        cib = std::max(1, std::min(cib, CIN));
        const bool chunked = cib < CIN;

        pin_map(input, CIN, IW, IH, in_cs, NB);
        // u_block = B: U blocked by B output channels, dims (co % B, ci, ex, ey + a * (co / B)),
        // so a co tile's U is a few sequential streams (cold weights come from DRAM).
        const int UB = u_block;
        if (UB > 0 && (COUT % UB != 0 || UB % VW != 0)) {
            fprintf(stderr, "conv2d_winograd: u_block=%d must divide cout=%d and be a multiple of %d\n", UB, COUT, VW);
            abort();
        }
        if (UB > 0) {
            pin_dense(weights, {UB, CIN, A, A * (COUT / UB)});
        } else {
            pin_dense(weights, {COUT, CIN, A, A});
        }
        pin_dense(bias, {COUT});
        if (res_in) pin_dense(*res_in, ext({COUT, OW, OH}));

        // ---- algorithm ------------------------------------------------------
        Var c("c"), x("x"), y("y"), j("j"), q("q"), p("p"), i("i"), tx("tx"), ty("ty");
        Func inb = BoundaryConditions::constant_exterior(input, 0.0f, map_bounds(IW, IH, NB));

        std::vector<Func> tmp, Vt, Mt;
        RDom rc(0, CIN, "rc");
        for (int ii = 0; ii < A; ii++) {
            Func tf("tmp_" + std::to_string(ii)), vf("V_" + std::to_string(ii)), mf("M_" + std::to_string(ii));
            tf(vars({c, x, ty})) = lin(W.BT[ii], [&](int r) { return inb(at({c, x, MM * ty + r - PY})); });
            std::vector<Expr> vj;
            for (int jj = 0; jj < A; jj++) {
                vj.push_back(lin(W.BT[jj], [&](int col) { return tf(at({c, MM * tx + col - PX, ty})); }));
            }
            vf(vars({c, j, tx, ty})) = mux(j, vj);
            mf(vars({c, j, tx, ty})) = 0.0f;
            Expr u = UB > 0 ? weights(c % UB, rc, j, ii + A * (c / UB)) : weights(c, rc, j, ii);
            mf(vars({c, j, tx, ty})) += u * vf(at({rc, j, tx, ty}));
            tmp.push_back(tf);
            Vt.push_back(vf);
            Mt.push_back(mf);
        }
        Func O1("O1"), Y("Y");
        {
            std::vector<Expr> by_i;
            for (int ii = 0; ii < A; ii++) {
                std::vector<Expr> by_q;
                for (int qq = 0; qq < MM; qq++) {
                    by_q.push_back(lin(W.AT[qq], [&](int jj) { return Mt[ii](at({c, jj, tx, ty})); }));
                }
                by_i.push_back(mux(q, by_q));
            }
            O1(vars({c, q, i, tx, ty})) = mux(i, by_i);
            std::vector<Expr> by_p;
            for (int pp = 0; pp < MM; pp++) {
                by_p.push_back(lin(W.AT[pp], [&](int ii) { return O1(at({c, q, ii, tx, ty})); }));
            }
            Y(vars({c, q, p, tx, ty})) = mux(p, by_p);
        }
        Expr v = Y(at({c, x % MM, y % MM, x / MM, y / MM})) + bias(c);
        if (res_in) v += (*res_in)(at({c, x, y}));
        output(vars({c, x, y})) = activate(act, v);
        pin_map(output, COUT, OW, OH, out_cs, NB);

        // ---- schedule -------------------------------------------------------
        Var ct("ct"), cv("cv"), cl("cl"), xt("xt"), tb("tb"), tt("tt"), yt("yt"), yb("yb"), yr("yr");
        const TailStrategy tx_tail = (OW % MM) ? TailStrategy::GuardWithIf : TailStrategy::RoundUp;
        const TailStrategy ty_tail = (OH % MM) ? TailStrategy::GuardWithIf : TailStrategy::RoundUp;
        output.split(c, ct, c, T, TailStrategy::ShiftInwards)
            .split(c, cv, cl, VW)
            .split(x, xt, q, MM, tx_tail)
            .split(y, yt, p, MM, ty_tail)
            .split(xt, tb, tt, nt, TailStrategy::ShiftInwards)
            .split(yt, yb, yr, rb, TailStrategy::ShiftInwards)
            .reorder(NB > 1 ? std::vector<VarOrRVar>{cl, cv, q, p, tt, yr, tb, yb, n, ct}
                            : std::vector<VarOrRVar>{cl, cv, q, p, tt, yr, tb, yb, ct})
            .vectorize(cl)
            .unroll(cv)
            .unroll(q)
            .unroll(p)
            .parallel(yb);

        Y.compute_at(output, tt).split(c, cv, cl, VW).reorder(cl, cv, q, p).vectorize(cl).unroll(cv).unroll(q).unroll(p);
        O1.compute_at(output, tt).split(c, cv, cl, VW).reorder(cl, cv, q, i).vectorize(cl).unroll(cv).unroll(q).unroll(i);

        const int VC = vec_for(cib, V);
        for (int ii = 0; ii < A; ii++) {
            Func mf = Mt[ii], vf = Vt[ii], tf = tmp[ii];
            mf.compute_at(output, tb).split(c, cv, cl, VW).reorder(cl, cv, tx, ty, j).vectorize(cl).unroll(cv).unroll(tx);
            Stage u = mf.update();
            if (chunked) {
                RVar rco("rco"), rci("rci");
                u.split(rc.x, rco, rci, cib, TailStrategy::GuardWithIf)
                    .split(c, cv, cl, VW)
                    .reorder(cl, cv, tx, rci, ty, j, rco)
                    .vectorize(cl)
                    .unroll(cv)
                    .unroll(tx);
                vf.compute_at(mf, rco);
                tf.compute_at(mf, rco);
            } else {
                u.split(c, cv, cl, VW).reorder(cl, cv, tx, rc.x, ty, j).vectorize(cl).unroll(cv).unroll(tx);
                vf.compute_at(output, tb);
                tf.compute_at(output, tb);
            }
            Var vo("vo"), vi("vi");
            vf.split(c, vo, vi, VC, TailStrategy::ShiftInwards).reorder(vi, j, vo, tx, ty).vectorize(vi).unroll(j);
            tf.split(c, vo, vi, VC, TailStrategy::ShiftInwards).reorder(vi, vo, x, ty).vectorize(vi);
        }

        estimate_dense(input, ext({CIN, IW, IH}));
        if (UB > 0) {
            estimate_dense(weights, {UB, CIN, A, A * (COUT / UB)});
        } else {
            estimate_dense(weights, {COUT, CIN, A, A});
        }
        estimate_dense(bias, {COUT});
        if (res_in) estimate_dense(*res_in, ext({COUT, OW, OH}));
        estimate_dense(output, ext({COUT, OW, OH}));
        (void)TY;
    }
};

}  // namespace

HALIDE_REGISTER_GENERATOR(Conv2DWinograd, conv2d_winograd)
