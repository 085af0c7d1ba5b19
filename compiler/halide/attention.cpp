// attention: the core of multi-head self-attention, one kernel for all heads.
//
//   in  qkv (e, h, s, j): element e of head h of q (s = 0), k (1), v (2) of token j, i.e. the
//       [N, 3 D] output of the qkv Linear viewed as (hd, heads, 3, N)
//   out (d, h, i):        the [N, D] input of the proj Linear viewed as (hd, heads, N)
//   out(d, h, i) = sum_j P(j, i, h) v(d, h, j),  P = softmax_j(scale * q(., h, i) . k(., h, j))
//
// Schedule (per head, per tile of QT queries): the scores of the tile against all N keys (padded
// to NP, a multiple of the vector width, padded keys masked out) go to a stack buffer, never to
// memory: S = Q K^T register-blocked as jv vectors of keys x SB queries over the head dim (K is
// transposed once per head so that keys are contiguous); row max and sum of exponentials with
// vector partial reductions; then O = P V register-blocked as hd/VD vectors of the head dim x RB
// queries over the keys, divided by the row sums. Token counts such as 197 or 50 never fall into
// scalar tails: keys are padded, query tiles use ShiftInwards.
// exp is Halide's fast_exp (vectorisable; relative error ~1e-6) on arguments clamped to >= -80.

#include "foldc_common.h"

#include <cfloat>

namespace {

using namespace Halide;
using namespace foldc;

class Attention : public Generator<Attention> {
public:
    GeneratorParam<int> tokens{"tokens", 197};
    GeneratorParam<int> heads{"heads", 6};
    GeneratorParam<int> head_dim{"head_dim", 64};
    GeneratorParam<float> scale{"scale", 0.125f};

    Input<Buffer<float, 4>> qkv{"qkv"};
    Output<Buffer<float, 3>> output{"output"};

    void generate() {
        const int N = tokens, H = heads, HD = head_dim;
        pin_dense(qkv, {HD, H, 3, N});
        const int V = natural_vector_size<float>();
        const int NP = (N + V - 1) / V * V;
        const int regs = vector_registers(get_target());

        Var j("j"), i("i"), h("h"), e("e"), d("d"), l("l");
        RDom re(0, HD, "re"), rk(0, NP / V, "rk"), rl(0, V, "rl"), rj(0, N, "rj");

        Func qs("qs"), kT("kT"), s("s"), pm("pm"), mx("mx"), p("p"), ps("ps"), den("den"), acc("acc");
        qs(e, i, h) = qkv(e, h, 0, i) * (float)scale;
        kT(j, e, h) = qkv(e, h, 1, min(j, N - 1));
        s(j, i, h) = 0.0f;
        s(j, i, h) += qs(re, i, h) * kT(j, re, h);
        Expr masked = select(rk * V + l < N, s(rk * V + l, i, h), -FLT_MAX);
        pm(l, i, h) = -FLT_MAX;
        pm(l, i, h) = max(pm(l, i, h), masked);
        mx(i, h) = -FLT_MAX;
        mx(i, h) = max(mx(i, h), pm(rl, i, h));
        p(j, i, h) = select(j < N, fast_exp(max(s(j, i, h) - mx(i, h), -80.0f)), 0.0f);
        ps(l, i, h) = 0.0f;
        ps(l, i, h) += p(rk * V + l, i, h);
        den(i, h) = 0.0f;
        den(i, h) += ps(rl, i, h);
        acc(d, i, h) = 0.0f;
        acc(d, i, h) += p(rj, i, h) * qkv(d, h, 2, rj);
        output(d, h, i) = acc(d, i, h) / den(i, h);
        pin_dense(output, {HD, H, N});

        // Tiles: QT queries per score tile (12: the tile's scores and probabilities stay in L1;
        // 24 was 10% slower and 48 much slower on 730 tokens); SB queries x JV key vectors per S register block;
        // RB queries x HD/VD head-dim vectors per O register block.
        const int QT = std::min(12, N);
        int VD = 1;
        while (VD * 2 <= V && HD % (VD * 2) == 0) VD *= 2;
        const int DV = HD / VD;
        int JV = 1;
        if ((NP / V) % 2 == 0) JV = 2;
        const int acc_regs = regs - 4;
        int SB = largest_divisor_in(QT, 1, std::max(1, acc_regs / JV));
        int RB = largest_divisor_in(QT, 1, std::max(1, acc_regs / DV));

        Var io("io"), ii("ii"), ib("ib"), ir("ir"), dv("dv"), dl("dl");
        output.reorder(d, i, h)
            .split(i, io, ii, QT, TailStrategy::ShiftInwards)
            .split(ii, ib, ir, RB)
            .split(d, dv, dl, VD)
            .vectorize(dl)
            .unroll(dv)
            .unroll(ir)
            .reorder(dl, dv, ir, ib, io, h)
            .parallel(h);
        acc.compute_at(output, ib)
            .split(d, dv, dl, VD)
            .vectorize(dl).unroll(dv).unroll(i);
        acc.update()
            .split(d, dv, dl, VD)
            .vectorize(dl).unroll(dv).unroll(i)
            .reorder(dl, dv, i, rj);
        den.compute_at(output, io);
        ps.compute_at(output, io).vectorize(l);
        ps.update().vectorize(l);
        p.compute_at(output, io).vectorize(j, V);
        mx.compute_at(output, io);
        pm.compute_at(output, io).vectorize(l);
        pm.update().vectorize(l);
        Var jo("jo"), jv("jv"), jl("jl"), sb("sb"), si("si");
        s.compute_at(output, io).vectorize(j, V);
        s.update()
            .split(j, jo, jl, JV * V)
            .split(jl, jv, jl, V)
            .split(i, sb, si, SB)
            .vectorize(jl)
            .unroll(jv)
            .unroll(si)
            .reorder(jl, jv, si, re, sb, jo);
        qs.compute_at(output, io);
        kT.compute_at(output, h).vectorize(j, V);

        estimate_dense(qkv, {HD, H, 3, N});
        estimate_dense(output, {HD, H, N});
    }
};

}  // namespace

HALIDE_REGISTER_GENERATOR(Attention, attention)
