// attention: the core of multi-head self-attention, one kernel for all heads (Vaswani et al. 2017,
// "Attention is all you need", eq. 1), globally or within windows of a token map (Liu et al. 2021,
// "Swin Transformer", sec. 3.2: windows, shifted windows, relative position bias; Tu et al. 2022,
// "MaxViT", sec. 3.1: grid attention is windows with dilated tokens).
//
//   in  qkv (e, h, s, n): element e of head h of q (s = 0), k (1), v (2) of token n, i.e. the
//       [M, 3 D] output of the qkv Linear viewed as (hd, heads, 3, M)
//   in  bias (j, i, h) (when bias = 1): an additive score bias of key j for query i in head h
//       (the relative position bias); mask (j, i, c) (when mask = 4): one for all heads, class c =
//       (last window row) + 2 (last window column) of windows (the shifted windows' masks, built by
//       ops/attention.lua); keys of both padded to a multiple of 16, the pad repeating key N - 1
//   out (d, h, n):        the [M, D] input of the proj Linear viewed as (hd, heads, M)
//   For window w and its token t (N = tokens per window; globally one window, n = t):
//     out(d, h, n(i, w)) = sum_j P(j, i) v(d, h, n(j, w)),
//     P = softmax_j(scale q(., h, n(i, w)) . k(., h, n(j, w)) + bias(j, i, h) + mask(j, i, c(w)))
//   (softmax with its row max subtracted, as PyTorch). Windows of win_h x win_w tokens tile a
//   map_h x map_w token map (tokens row-major, the channels-last map): window w = (py, px) of
//   (map_h / win_h) x (map_w / win_w), token t = (a, b), at the row (the column likewise)
//     ys = (py / dil) win_h dil + a dil + py % dil,  y = (ys + shift_h) mod map_h
//   dil = 1: adjacent tokens (Swin's window partition); dil = map_h / win_h: a grid of tokens
//   map_h / win_h apart (MaxViT's grid attention); the shift is torch.roll(x, -shift) before the
//   partition and its inverse after (output written back at the token's own place): index
//   arithmetic, no copy.
//   scratch in the arena (the kernel's second and third outputs, read by nothing else; the
//   lowering gives each step its own, ops/attention.lua):
//   keys_t (l, e, jo, h + heads w): K^T of head h of window w in blocks of KB = 16 keys, key
//       jo KB + l (keys past N repeat key N - 1); 16 on every target (a vector of V <= 16 keys is
//       one load), so the arena is the same for all (heads and windows in one dimension: a bundle's
//       views have at most 4)
//   values (d, j, h, w):     V of head h of window w as dense rows (qkv's rows are 3 D floats
//       apart: at D = 1024 every row falls in the same L1 sets)
//
// Schedule, per head (and window): K is transposed once into keys_t (16 x 4 blocks through registers), V copied
// once into values. Per tile of QT queries (QT x NP scores, NP = N rounded up to V, at most 16 KB:
// on the stack), S = Q K^T (q scaled by scale log2(e) into a dense tile) as a register-blocked GEMM
// (SB queries x JV key vectors of accumulators, the head dim reduced innermost); the row max (padded
// keys repeat a real key: no mask) and the sum of exponentials with vector partial reductions;
// the bias and mask are the initial value of S's accumulators; P = 2^(S - max) (padded keys 0); then O = P V as a second register-blocked GEMM (RB queries x
// HD/VD head-dim vectors, the keys reduced innermost in chunks of KC whose v rows stay in L1 across
// the tile), times the reciprocal of the row sum. Token counts such as 197, 65 or 49 never fall
// into scalar tails: keys are padded, query tiles and S blocks shift inwards, and a tile is a whole
// number of O blocks. Knobs (tile_q, s_keys, s_queries, o_queries, o_keys) override the heuristics.
// ViT-S (197 tokens, 6 heads of 64) on the 2-core AVX-512 machine: 57.6% -> 72.8% of the FMA peak
// (kernel_test -u), the rest mostly the softmax (exp ~6%), the K/V copies (~4%) and key padding.
//
// GPU schedule (targets with a GPU feature): K^T and V copied by one thread per element; a block
// per (tile of gpu_tile_q queries (default 8), head, window), gpu_threads_x (default 32) x
// gpu_tile_q threads: the tile's scaled q, scores, row statistics and probabilities in shared
// memory (scores and probabilities TQ x N rounded up: 6.6 KB for 197 tokens), each score a
// thread's dot product over the head dim, the row max / sum as partial sums over V lanes then over
// the lanes, each output element a thread's sum over the keys, written at its token's place (the
// last tile shifted inwards writes some tokens twice, with the same values).
//
// NaN as PyTorch: a row whose scores hold a NaN or +inf (a NaN or inf in q of that token, or in k
// of any token) is NaN (softmax's max is then NaN or inf - inf), found on the scores' bits (the
// float compares assume no NaNs, see foldc_common.h); a NaN in v reaches the output through the
// P V sums. exp2 below has relative error 2.9e-7.

#include "foldc_common.h"

#include <cfloat>
#include <cstdio>
#include <cstdlib>

namespace {

using namespace Halide;
using namespace foldc;

// 2^y for y <= 0 (a score minus its row's max, in log2 units): y = k + r with k = trunc(y) (an
// integer, k >= -125) and r in (-1, 0]; 2^r by a degree-5 polynomial (coefficients a least-squares
// fit of 2^r on [-1, 0] for relative error, 2.9e-7 at most in float), 2^k added to its exponent.
// About 12 instructions a vector; Halide's fast_exp takes ~20 (floor, the range selects).
Expr exp2_nonpositive(Expr y) {
    y = max(y, -125.0f);
    Expr k = cast<int>(y);
    Expr r = y - cast<float>(k);
    const float c[] = {0.99999994f, 0.69314224f, 0.24017219f, 0.05527972f, 0.00918861f, 0.00093879f};
    Expr poly = c[5];
    for (int n = 4; n >= 0; n--) poly = poly * r + c[n];
    return reinterpret<float>(reinterpret<int32_t>(poly) + k * (1 << 23));
}

class Attention : public Generator<Attention> {
public:
    GeneratorParam<int> tokens{"tokens", 197};
    GeneratorParam<int> heads{"heads", 6};
    GeneratorParam<int> head_dim{"head_dim", 64};
    GeneratorParam<float> scale{"scale", 0.125f};
    // Windows (map_w = 0: one window, the whole sequence of `tokens`): the token map, the window,
    // the distance between a window's tokens, the cyclic shift; bias: 0 (none) or 1; mask: 0 (none)
    // or 4 classes.
    GeneratorParam<int> map_h{"map_h", 0};
    GeneratorParam<int> map_w{"map_w", 0};
    GeneratorParam<int> win_h{"win_h", 0};
    GeneratorParam<int> win_w{"win_w", 0};
    GeneratorParam<int> dil_h{"dil_h", 1};
    GeneratorParam<int> dil_w{"dil_w", 1};
    GeneratorParam<int> shift_h{"shift_h", 0};
    GeneratorParam<int> shift_w{"shift_w", 0};
    GeneratorParam<int> bias{"bias", 0};
    GeneratorParam<int> mask{"mask", 0};
    // Schedule knobs (0: the heuristic below): queries per score tile, key vectors and queries per
    // S register block, queries per O register block (tile_q and o_queries are used together, as
    // are s_keys and s_queries), keys per P V chunk.
    GeneratorParam<int> tile_q{"tile_q", 0};
    GeneratorParam<int> s_keys{"s_keys", 0};
    GeneratorParam<int> s_queries{"s_queries", 0};
    GeneratorParam<int> o_queries{"o_queries", 0};
    GeneratorParam<int> o_keys{"o_keys", 0};
    // GPU schedule knobs (0 = default 8, 32): queries per block, threads per block along keys / the
    // head dim
    GeneratorParam<int> gpu_tile_q{"gpu_tile_q", 0};
    GeneratorParam<int> gpu_threads_x{"gpu_threads_x", 0};

    Input<Buffer<float, 4>> qkv{"qkv"};
    Input<Buffer<float, 3>> *bias_in = nullptr;
    Input<Buffer<float, 3>> *mask_in = nullptr;
    Output<Buffer<float, 3>> output{"output"};
    Output<Buffer<float, 4>> keys_t{"keys_t"};
    Output<Buffer<float, 4>> values{"values"};

    void configure() {
        if (bias != 0 && bias != 1) fail("bias must be 0 or 1");
        if (mask != 0 && mask != 4) fail("mask must be 0 or 4");
        if (bias > 0) bias_in = add_input<Buffer<float, 3>>("bias");
        if (mask > 0) mask_in = add_input<Buffer<float, 3>>("mask");
    }

    static void fail(const char *msg) {
        fprintf(stderr, "attention: %s\n", msg);
        abort();
    }

    void generate() {
        const int N = tokens, H = heads, HD = head_dim;
        const int V = natural_vector_size<float>();
        const int NV = (N + V - 1) / V, NP = NV * V;
        const int regs = vector_registers(get_target());

        const int KB = 16, NKB = (N + KB - 1) / KB;
        if (KB % V != 0) {
            fprintf(stderr, "attention: the vector width %d does not divide %d\n", V, KB);
            abort();
        }

        // The window partition: token n(t, w) of the map for token t of window w.
        const bool windowed = map_w > 0;
        const int MH = windowed ? (int)map_h : 1, MW = windowed ? (int)map_w : N;
        const int WH = windowed ? (int)win_h : 1, WW = windowed ? (int)win_w : N;
        if (windowed && (WH < 1 || WW < 1 || WH * WW != N || MH % (WH * dil_h) != 0 || MW % (WW * dil_w) != 0 ||
                         dil_h < 1 || dil_w < 1 || shift_h < 0 || shift_h >= MH || shift_w < 0 || shift_w >= MW)) {
            fail("win_h x win_w must be tokens, and win x dil must divide the map");
        }
        const int NWY = MH / WH, NWX = MW / WW, NW = NWY * NWX, M = MH * MW;
        auto token = [&](Expr t, Expr w) -> Expr {
            if (!windowed) return t;
            Expr py = w / NWX, px = w % NWX, a = t / WW, b = t % WW;
            Expr ys = (py / dil_h) * (WH * dil_h) + a * dil_h + py % dil_h;
            Expr xs = (px / dil_w) * (WW * dil_w) + b * dil_w + px % dil_w;
            if (shift_h > 0) ys = (ys + shift_h) % MH;
            if (shift_w > 0) xs = (xs + shift_w) % MW;
            return ys * MW + xs;
        };
        pin_dense(qkv, {HD, H, 3, M});
        const int BJ = NKB * KB, MC = mask;
        if (bias_in) pin_dense(*bias_in, {BJ, N, H});
        if (mask_in) pin_dense(*mask_in, {BJ, N, MC});

        Var j("j"), i("i"), h("h"), e("e"), d("d"), l("l"), jo("jo"), w("w"), hw("hw");
        RDom re(0, HD, "re"), rk(0, NV, "rk"), rl(0, V, "rl"), rj(0, N, "rj");

        // K^T, blocked: keys_t(l, e, jo, h + H w) = k(e, h, n(jo KB + l, w))
        Func kin("kin");
        kin(e, l, jo, hw) = qkv(e, hw % H, 1, token(min(jo * KB + l, N - 1), hw / H));
        keys_t(l, e, jo, hw) = kin(e, l, jo, hw);
        pin_dense(keys_t, {KB, HD, NKB, H * NW});

        // V dense: values(d, j, h, w) = v(d, h, n(j, w))
        values(d, j, h, w) = qkv(d, h, 2, token(j, w));
        pin_dense(values, {HD, N, H, NW});

        // Scores in log2 units (s = scale log2(e) q . k + log2(e) (bias + mask)), so that softmax =
        // 2^(s - max) / sum; q scaled into a dense tile qs.
        const float log2e = 1.44269504f;
        Func qs("qs");
        qs(e, i, h, w) = qkv(e, h, 0, token(i, w)) * ((float)scale * log2e);
        Func dot("dot"), s("s"), pm("pm"), mx("mx"), p("p"), ps("ps"), den("den"), rden("rden"), acc("acc");
        Expr init = 0.0f;
        if (bias_in) init = (*bias_in)(j, i, h);
        if (mask_in) {
            Expr c = select(w / NWX == NWY - 1, 1, 0) + select(w % NWX == NWX - 1, 2, 0);
            init = init + (*mask_in)(j, i, c);
        }
        dot(j, i, h, w) = (bias_in || mask_in) ? init * log2e : init;
        dot(j, i, h, w) += qs(re, i, h, w) * keys_t(j % KB, re, j / KB, h + H * w);
        s(j, i, h, w) = dot(j, i, h, w);
        // row max (float) and the largest of the scores' magnitudes as bits, -inf excluded (NaN or
        // +inf when >= 0x7f800000)
        Expr sv = s(rk * V + l, i, h, w);
        Expr bits = reinterpret<uint32_t>(sv);
        const Expr u_minus_inf = Internal::make_const(UInt(32), 0xff800000u);
        const Expr u_inf = Internal::make_const(UInt(32), 0x7f800000u);
        const Expr u_abs = Internal::make_const(UInt(32), 0x7fffffffu);
        const Expr u_nan = Internal::make_const(UInt(32), 0x7fc00000u), u_zero = Internal::make_const(UInt(32), 0);
        Expr mag = select(bits == u_minus_inf, u_zero, bits & u_abs);
        pm(l, i, h, w) = Tuple(-FLT_MAX, u_zero);
        pm(l, i, h, w) = Tuple(max(pm(l, i, h, w)[0], sv), max(pm(l, i, h, w)[1], mag));
        Func mxn("mxn");
        mx(i, h, w) = -FLT_MAX;
        mx(i, h, w) = max(mx(i, h, w), pm(rl, i, h, w)[0]);
        mxn(i, h, w) = u_zero;
        mxn(i, h, w) = max(mxn(i, h, w), pm(rl, i, h, w)[1]);
        p(j, i, h, w) = select(j < N, exp2_nonpositive(s(j, i, h, w) - mx(i, h, w)), 0.0f);
        ps(l, i, h, w) = 0.0f;
        ps(l, i, h, w) += p(rk * V + l, i, h, w);
        den(i, h, w) = 0.0f;
        den(i, h, w) += ps(rl, i, h, w);
        rden(i, h, w) = 1.0f / den(i, h, w);
        acc(d, i, h, w) = 0.0f;
        acc(d, i, h, w) += p(rj, i, h, w) * values(d, rj, h, w);

        // ---- schedule -------------------------------------------------------
        // O blocks: RB queries x DV vectors of VD head-dim lanes, with the DV v vectors and one
        // broadcast in registers; a tile of QT queries (QT x NP scores, and as many probabilities,
        // at most 16 KB each: Halide 14 keeps constant allocations up to 16 KB on the stack) is a
        // whole number of O blocks, chosen for the fewest query rows computed (the last tile
        // shifts inwards over the one before it).
        int VD = 1;
        while (VD * 2 <= V && HD % (VD * 2) == 0) VD *= 2;
        const int DV = HD / VD;
        const int qt_max = std::max(1, std::min(N, 4096 / NP));
        const int rb_max = std::max(1, (regs - DV - 1) / DV);
        int QT = 0, RB = 0;
        double best = 0;
        for (int T = (N + qt_max - 1) / qt_max; T <= N; T++) {
            const int base = (N + T - 1) / T;
            for (int rb = std::min(rb_max, base); rb >= 1; rb--) {
                const int q = (base + rb - 1) / rb * rb;
                if (q > qt_max) continue;
                // rows computed, and fewer than 12 accumulators do not cover the FMA latency
                const double cost = (double)T * q * std::max(1.0, 12.0 / (rb * DV));
                if (QT == 0 || cost < best) best = cost, QT = q, RB = rb;
            }
            if (QT > 0 && (double)T * ((N + T - 1) / T) >= best) break;
        }
        if (tile_q > 0 && o_queries > 0) QT = tile_q, RB = o_queries;
        const bool gpu = get_target().has_gpu_feature();
        if (gpu) QT = gpu_fit(gpu_tile_q > 0 ? (int)gpu_tile_q : 8, N), RB = 1;
        QT = std::min(QT, N);
        RB = std::min(RB, QT);
        if (QT % RB != 0) {
            fprintf(stderr, "attention: o_queries=%d does not divide tile_q=%d\n", RB, QT);
            abort();
        }

        // The output, query tile by query tile of each window (the last tile shifted inwards),
        // stored at the tokens' own places in the map.
        const int NT = (N + QT - 1) / QT;
        RDom ro(0, QT, 0, NT, 0, NW, "ro");
        Expr qi = min(ro.y * QT, N - QT) + ro.x;
        Expr o = acc(d, qi, h, ro.z) * rden(qi, h, ro.z);
        Expr nan_bits = select(mxn(qi, h, ro.z) >= u_inf, u_nan, u_zero);
        output(d, h, i) = undef<float>();
        output(d, h, token(qi, ro.z)) = reinterpret<float>(reinterpret<uint32_t>(o) | nan_bits);
        pin_dense(output, {HD, H, M});

        auto estimates = [&]() {
            estimate_dense(qkv, {HD, H, 3, M});
            if (bias_in) estimate_dense(*bias_in, {BJ, N, H});
            if (mask_in) estimate_dense(*mask_in, {BJ, N, MC});
            estimate_dense(output, {HD, H, M});
            estimate_dense(keys_t, {KB, HD, NKB, H * NW});
            estimate_dense(values, {HD, N, H, NW});
        };
        if (gpu) {
            const int TX = gpu_threads_x > 0 ? (int)gpu_threads_x : 32;
            const std::vector<int> th = {TX, QT};
            Var db("db"), dt("dt");
            output.update()
                .allow_race_conditions()
                .split(d, db, dt, gpu_fit(TX, HD), TailStrategy::GuardWithIf)
                .reorder(db, dt, ro.x, ro.y, h, ro.z)
                .gpu_blocks(ro.y, h, ro.z)
                .gpu_threads(dt, ro.x);
            acc.compute_at(output, dt);
            acc.update().reorder(d, i, h, w, rj);
            const LoopLevel block(output, ro.y);
            for (Func f : {qs, s, p, pm, mx, mxn, ps, den, rden}) {
                f.compute_at(block);
                gpu_block_threads(f, f.args(), th);
            }
            gpu_block_threads(pm.update(), pm.args(), th, {rk});
            gpu_block_threads(ps.update(), ps.args(), th, {rk});
            for (Func f : {mx, mxn, den}) gpu_block_threads(f.update(), f.args(), {QT}, {rl});
            dot.compute_at(s, Var(j.name() + "_st"));
            gpu_map(keys_t, {KB, HD, NKB}, {16, 16, 1});
            gpu_map(values, {HD, N, H}, {32, 8, 1});
            estimates();
            return;
        }

        // S blocks: SB queries x JV key vectors of accumulators (with the JV key vectors and one
        // broadcast in registers), chosen for the fewest FMAs computed (blocks shift inwards too),
        // counting the loads per FMA and the FMA latency.
        int JV = 0, SB = 0;
        best = 0;
        for (int jv = 1; jv <= std::min(NV, 4); jv++) {
            for (int sb = std::min(QT, (regs - jv - 1) / jv); sb >= 1; sb--) {
                const double fmas = (double)((QT + sb - 1) / sb * sb) * ((NV + jv - 1) / jv * jv);
                const double cost = fmas * std::max(1.0, 12.0 / (jv * sb)) * (1.0 + 0.25 * (jv + sb) / (jv * sb));
                if (JV == 0 || cost < best) best = cost, JV = jv, SB = sb;
            }
        }
        if (s_keys > 0 && s_queries > 0) JV = std::min((int)s_keys, NV), SB = std::min((int)s_queries, QT);
        // P V reduces over chunks of KC keys, whose v rows (16 KB) stay in L1 across the tile's O
        // blocks.
        const int KC = o_keys > 0 ? (int)o_keys : std::max(1, 4096 / HD);

        Var dv("dv"), dl("dl");
        RVar rjo("rjo"), rji("rji");
        Var ib("ib"), ir("ir");
        output.update()
            .split(d, dv, dl, VD)
            .vectorize(dl)
            .reorder(dl, dv, ro.x, ro.y, ro.z, h)
            .parallel(h);
        const LoopLevel tile(output, ro.y);
        acc.compute_at(tile)
            .split(d, dv, dl, VD)
            .vectorize(dl);
        acc.update()
            .split(rj, rjo, rji, KC, TailStrategy::GuardWithIf)
            .split(i, ib, ir, RB)
            .split(d, dv, dl, VD)
            .vectorize(dl).unroll(dv).unroll(ir)
            .reorder(dl, dv, ir, rji, ib, rjo);
        rden.compute_at(tile);
        den.compute_at(tile);
        den.update().atomic().vectorize(rl);
        ps.compute_at(tile).vectorize(l);
        ps.update().vectorize(l);
        p.compute_at(tile).vectorize(j, V);
        mx.compute_at(tile);
        mx.update().atomic().vectorize(rl);
        mxn.compute_at(tile);
        mxn.update().atomic().vectorize(rl);
        pm.compute_at(tile).vectorize(l);
        pm.update().vectorize(l);

        Var jb("jb"), jq("jq"), jv("jv"), jl("jl"), sb("sb"), si("si");
        s.compute_at(tile)
            .split(j, jb, jq, JV * V, TailStrategy::ShiftInwards)
            .split(jq, jv, jl, V)
            .split(i, sb, si, SB, TailStrategy::ShiftInwards)
            .reorder(jl, jv, si, jb, sb)
            .vectorize(jl)
            .unroll(jv)
            .unroll(si);
        dot.compute_at(s, jb)
            .split(j, jv, jl, V).vectorize(jl).unroll(jv).unroll(i);
        dot.update()
            .split(j, jv, jl, V).vectorize(jl).unroll(jv).unroll(i)
            .reorder(jl, jv, i, re);

        // keys_t: KB x EB blocks, loaded as EB-wide rows of K and transposed in registers (EB = 4:
        // LLVM's shuffles for 16 x 4 blocks take about one instruction per element, 2.7 for 16 x 16)
        int EB = 1;
        while (EB * 2 <= 4 && HD % (EB * 2) == 0) EB *= 2;
        Var eo("eo"), ei("ei");
        keys_t.split(e, eo, ei, EB)
            .reorder(l, ei, eo, jo, hw)
            .vectorize(l)
            .unroll(ei)
            .parallel(hw);
        kin.compute_at(keys_t, eo).vectorize(e).unroll(l);
        values.split(d, dv, dl, VD).vectorize(dl).reorder(dl, dv, j, w, h).parallel(h);
        qs.compute_at(tile).split(e, dv, dl, VD).vectorize(dl);

        estimates();
    }
};

}  // namespace

HALIDE_REGISTER_GENERATOR(Attention, attention)
