// linear_tokens: a Linear layer over the rows of a token matrix, with a fused epilogue.
//
//   out(co, r) = act( bias(co) + sum_{ci < cin} w(co, ci) * in(ci, r) ) (+ residual(co, r))
//   act: the activation `act` (activation.h), none by default; the residual is added after it.
//   Buffers: input (cin, rows), weights (cout, cin, 1) i.e. memory [ci][co], co innermost, or with
//   w_block = B: (co % B, ci, co / B), i.e. blocks of B output channels, each a contiguous [ci][B]
//   run (set by the lowering: in [ci][co] a weight panel's rows are cout*4 bytes apart, a page each
//   on 768-3072 channels), bias (cout), [residual (cout, rows)], output (cout, rows).
//   row_bias: the bias is per row, bias (rows): a Linear over the token axis (ops/token_linear.lua)
//   runs here with the tokens x [N][C] as the weights (cin = N, cout = C) and its weight [M][N] as
//   the input (rows = M).
//
// Schedule (a GEMM blocked for the cache): for each block of T = tco vectors of output channels,
// the accumulator of all rows (T x rows, L2-resident) is built over slices of KB input channels
// so that the weight panel being read (T x KB floats, <= 32 KB) stays in L1, or over all of them
// at once when the block's weights fit 256 KB and a register tile has 6 rows or more (read from
// L2); inside a slice, register blocks of tco vectors x tr rows (unrolled) run over the slice's
// channels. Rows are padded up to a multiple of tr (align_bounds; the padded rows read the last
// row and are never stored), so row counts such as 197 or 50 need no scalar tail. The epilogue
// then runs over the block (with one panel over all channels: on each register tile, or over the
// block the tiles are stored into, see tile_acc). Needs cout to be a multiple of the vector width
// (the lowering falls back to `linear` otherwise).
//
// With batch = N > 1 (the rows are N images' tokens, set by the lowering) the rows are taken in
// blocks whose accumulator (T x block) stays within 16 KB, which Halide 14 keeps on the stack: N
// times the rows would otherwise put it on the heap, an allocation per call. The row blocks are
// grouped into panels of about 256 rows, outermost: a panel's input (256 x cin) stays in L2 while
// every channel block runs over it, and a channel block's weights (T x cin) stay in L2 over the
// panel's row blocks, so the weights are read from memory once per panel instead of once per image.
//
// Schedule GeneratorParams (0 = heuristic default): tile_co (vectors), tile_r (rows), kb.
// GPU (targets with a GPU feature): foldc_common.h's gpu_gemm (as linear's), any cout.

#include "activation.h"
#include "foldc_common.h"

#include <cstdio>
#include <cstdlib>

namespace {

using namespace Halide;
using namespace foldc;

class LinearTokens : public Generator<LinearTokens> {
public:
    GeneratorParam<int> cin{"cin", 384};
    GeneratorParam<int> cout{"cout", 1536};
    GeneratorParam<int> rows{"rows", 197};
    GeneratorParam<Act> act{"act", Act::None, act_names()};
    GeneratorParam<bool> residual{"residual", false};
    GeneratorParam<int> tile_co{"tile_co", 0};
    GeneratorParam<int> tile_r{"tile_r", 0};
    GeneratorParam<int> kb{"kb", 0};
    // weights layout: 0 = (cout, cin); B > 0 = blocked by B output channels (not a schedule choice)
    GeneratorParam<int> w_block{"w_block", 0};
    // images the rows hold (the lowering sets it only when > 1)
    GeneratorParam<int> batch{"batch", 1};
    // the bias indexed by row instead of output channel (ops/token_linear.lua)
    GeneratorParam<bool> row_bias{"row_bias", false};
    // GPU schedule knobs (0 = default; foldc_common.h gpu_gemm): block gpu_tile_co x gpu_tile_r
    // outputs, gpu_reg_co x gpu_reg_r per thread, gpu_k_block input channels per staged chunk,
    // gpu_stage 1 staged in shared memory / 0 from global memory
    GeneratorParam<int> gpu_tile_co{"gpu_tile_co", 0};
    GeneratorParam<int> gpu_tile_r{"gpu_tile_r", 0};
    GeneratorParam<int> gpu_reg_co{"gpu_reg_co", 0};
    GeneratorParam<int> gpu_reg_r{"gpu_reg_r", 0};
    GeneratorParam<int> gpu_k_block{"gpu_k_block", 0};
    GeneratorParam<int> gpu_stage{"gpu_stage", 1};

    Input<Buffer<float, 2>> input{"input"};
    Input<Buffer<float, 3>> weights{"weights"};
    Input<Buffer<float, 1>> bias{"bias"};
    Input<Buffer<float, 2>> *res = nullptr;
    Output<Buffer<float, 2>> output{"output"};

    void configure() {
        if (residual) res = add_input<Buffer<float, 2>>("residual");
    }

    void generate() {
        const int CIN = cin, COUT = cout, R = rows, WB = w_block;
        if (WB < 0 || (WB > 0 && COUT % WB != 0)) {
            fprintf(stderr, "linear_tokens: w_block must divide cout\n");
            abort();
        }
        pin_dense(input, {CIN, R});
        const std::vector<int> wshape = WB > 0 ? std::vector<int>{WB, CIN, COUT / WB} : std::vector<int>{COUT, CIN, 1};
        pin_dense(weights, wshape);
        pin_dense(bias, {row_bias ? R : COUT});
        if (res) pin_dense(*res, {COUT, R});

        const int V = natural_vector_size<float>();
        const int regs = vector_registers(get_target());
        // Register tile: tco vectors of output channels x tr rows (unrolled), within the registers
        // (tco x tr accumulators, tco weight vectors, the broadcast input; on AVX-512 three left to
        // LLVM: the 31-register 3x9 ran 17% slower than 4x6 on 49 rows, and a 4x7 needing 33
        // spilled), scored by FMAs per load with each weight vector (64 bytes, from L2 when the
        // panel passes L1) counted twice, over the rows padded up to a multiple of tr (align_bounds):
        // 4x6 on 197, 196 or 65 rows, 3x8 on 3136 or 784, 3x7 on 49. Counted once, 6x4 won
        // wherever 4 divided the rows (its 4-row tiles also take the sliced reduction below):
        // Swin-T stage 1's qkv, proj and fc1 12-17% slower than now, ViT-S qkv 3%.
        int tco = tile_co, tr = tile_r;
        if (tco <= 0 || tr <= 0) {
            double best = -1;
            int bc = 1, br = 1;
            for (int c : {1, 2, 3, 4, 6}) {
                if (tco > 0 && c != tco) continue;
                if (COUT % (c * V) != 0) continue;
                for (int rr = 1; rr <= std::min(R, 16); rr++) {
                    if (tr > 0 && rr != tr) continue;
                    if (c * rr + c + 1 > (regs >= 32 ? regs - 3 : regs)) continue;
                    const double waste = double((R + rr - 1) / rr * rr) / R;
                    const double score = double(c * rr) / double(2 * c + rr) / waste;
                    if (score > best + 1e-9) {
                        best = score;
                        bc = c;
                        br = rr;
                    }
                }
            }
            if (tco <= 0) tco = bc;
            if (tr <= 0) tr = br;
        }
        const int T = tco * V;
        // Weight panel depth: the whole reduction when the block's weights (T x cin) fit 256 KB of
        // L2 and the register tile has 6 rows or more (a weight vector from L2 per 6 FMAs or
        // fewer): the accumulators then go to memory once a row tile, not once per slice (ViT-S
        // qkv and proj 2% faster in the kernel bench, ViT-B qkv 3-8%). Else slices of KB channels
        // whose panel (T x KB, <= 32 KB) stays in L1: PiT-S's 6x2 tiles over all 288 channels were
        // 21-24% slower (a weight vector per 2 FMAs from L2), ViT-B fc2's 786 KB panel 5-8%.
        int KB = kb;
        if (KB <= 0 && tr >= 6 && (long long)T * CIN * 4 <= 256 * 1024) KB = CIN;
        if (KB <= 0) {
            const int kmax = std::max(1, 8192 / T);
            KB = largest_divisor_in(CIN, std::max(1, kmax / 2), kmax);
            if (KB == 0) KB = CIN;
        }

        const bool gpu = get_target().has_gpu_feature();
        // batch > 1: rows in blocks of RB (a multiple of tr) with a T x RB accumulator <= 16 KB
        const int RB = std::max(tr, (16 * 1024 / (4 * T)) / tr * tr);
        const bool row_blocks = !gpu && batch > 1 && RB < R;
        // One weight panel over the whole reduction: the accumulator is one register tile (T x tr),
        // started from the bias in registers and stored once. A piecewise-linear activation and
        // the residual run on the tile before that store (tile_acc: ViT-S qkv, proj, fc2 1-4%
        // faster than through an accumulator of all rows). The activations built on exp/erf run
        // as a pass over a block of all rows (T x rows) that the tiles are stored into
        // (tile_block): in the tile's epilogue they made the GEMM 8-13% slower (the pass's
        // constants and chains beside the tile), and through an accumulator of all rows (written
        // with the bias, then read and written by every tile) 2-12% (kernel bench, GELU: ViT-S fc1
        // 1134 -> 1066 us, Swin-T stage-1 fc1 1415 -> 1244).
        const bool one_panel = !gpu && !row_blocks && KB == CIN;
        const bool tile_acc = one_panel && piecewise_linear(act);
        const bool tile_block = one_panel && !tile_acc;

        Var c("c"), r("r");
        RDom k(0, CIN, "k");
        Func acc("acc");
        acc(c, r) = row_bias ? bias(min(r, R - 1)) : bias(c);
        Expr w = WB > 0 ? weights(c % WB, k, c / WB) : weights(c, k, 0);
        Func wa("wa"), xb("xb");  // GPU: the operands as Funcs (weights as (co, ci)), staged in shared memory
        if (gpu) {
            Var kk("kk");
            // kk clamped: a last chunk of k past CIN (guarded in the sum) stages in-bounds reads
            const Expr kc = min(kk, CIN - 1);
            wa(c, kk) = WB > 0 ? weights(c % WB, kc, c / WB) : weights(c, kc, 0);
            xb(kk, r) = input(kc, r);
            acc(c, r) += wa(c, k) * xb(k, r);
        } else {
            acc(c, r) += w * input(k, min(r, R - 1));
        }
        Func block("block");  // tile_block: the register tiles stored, before the activation
        if (tile_block) block(c, r) = acc(c, r);
        Expr v = activate(act, tile_block ? block(c, r) : acc(c, r));
        if (res) v += (*res)(c, r);
        output(c, r) = v;
        pin_dense(output, {COUT, R});
        if (gpu) {
            gpu_gemm(output, acc, k, wa, xb, COUT, R, CIN,
                     {gpu_tile_co, gpu_tile_r, gpu_reg_co, gpu_reg_r, gpu_k_block, (bool)gpu_stage});
            estimate_dense(input, {CIN, R});
            estimate_dense(weights, wshape);
            estimate_dense(bias, {COUT});
            if (res) estimate_dense(*res, {COUT, R});
            estimate_dense(output, {COUT, R});
            return;
        }

        Var co("co"), ci("ci"), cv("cv"), cl("cl"), rb("rb"), ri("ri"), ro("ro");
        RVar ko("ko"), ki("ki");
        output.split(c, co, ci, T, TailStrategy::ShiftInwards);
        if (row_blocks) {
            Var rp("rp");
            const int RP = RB * std::max(1, 256 / RB);
            if (RP < R) {
                output.split(r, rp, r, RP, TailStrategy::ShiftInwards)
                    .split(r, ro, r, RB, TailStrategy::ShiftInwards)
                    .reorder(ci, r, ro, co, rp);
            } else {
                output.split(r, ro, r, RB, TailStrategy::ShiftInwards).reorder(ci, r, ro, co);
            }
        } else if (tile_acc) {
            output.split(r, ro, r, tr, TailStrategy::ShiftInwards).reorder(ci, r, ro, co);
        } else {
            output.reorder(ci, r, co);
        }
        output.vectorize(ci, V);
        const long long work = (long long)COUT * CIN * R;
        if (work >= (1 << 18) && COUT / T > 1) output.parallel(co);
        if (tile_block) {
            block.compute_at(output, co)
                .split(r, ro, r, tr, TailStrategy::ShiftInwards)
                .reorder(c, r, ro)
                .vectorize(c, V);
            acc.compute_at(block, ro);
        } else {
            acc.compute_at(output, (row_blocks || tile_acc) ? ro : co);
        }
        acc.align_bounds(r, tr)
            .vectorize(c, V);
        acc.update()
            .split(k, ko, ki, KB)
            .split(c, cv, cl, V)
            .split(r, rb, ri, tr)
            .vectorize(cl)
            .unroll(cv)
            .unroll(ri)
            .reorder(cl, cv, ri, ki, rb, ko);

        estimate_dense(input, {CIN, R});
        estimate_dense(weights, wshape);
        estimate_dense(bias, {row_bias ? R : COUT});
        if (res) estimate_dense(*res, {COUT, R});
        estimate_dense(output, {COUT, R});
    }
};

}  // namespace

HALIDE_REGISTER_GENERATOR(LinearTokens, linear_tokens)
