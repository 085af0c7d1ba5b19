// Activations as a kernel epilogue: the Halide expression of each activation of
// compiler/activations.lua (the one definition: names, PyTorch names, reference), for every
// generator that fuses one (conv2d, conv2d_winograd, linear, linear_tokens, pool2d, eltwise).
//
//   GeneratorParam<Act> act{"act", Act::None, act_names()};   ...   v = activate(act, v);
//
// NaN and +-inf as PyTorch: NaN gives NaN; SiLU, Hardswish and both GELUs give NaN at -inf (-inf * 0,
// as torch computes them), ReLU6, the sigmoids and Tanh saturate. Halide compiles with LLVM's no-NaNs
// flags (see foldc_common.h): a min/max or a float compare may drop a NaN, so the clamps below
// test the float's bits, Hardswish carries a NaN through its product with x, and the ones built on
// exp/erf take their values at NaN and +-inf from at_nonfinite.
#pragma once

#include "Halide.h"

#include <map>
#include <string>

namespace foldc {

enum class Act { None, Relu, Relu6, Silu, Hardswish, Hardsigmoid, Sigmoid, Gelu, GeluTanh, Tanh };

// The generator parameter's values: compiler/activations.lua's names.
inline const std::map<std::string, Act> &act_names() {
    static const std::map<std::string, Act> names = {
        {"none", Act::None}, {"relu", Act::Relu}, {"relu6", Act::Relu6}, {"silu", Act::Silu},
        {"hardswish", Act::Hardswish}, {"hardsigmoid", Act::Hardsigmoid}, {"sigmoid", Act::Sigmoid}, {"gelu", Act::Gelu},
        {"gelu_tanh", Act::GeluTanh}, {"tanh", Act::Tanh},
    };
    return names;
}

// ReLU keeping NaN: as int32, exactly the non-NaN values <= -0 (negatives, -0, -inf) are
// <= bits(-inf) = 0xff800000 = -8388608; every NaN (either sign) is above. One integer compare and
// a masked move / and: one instruction more than maxps.
inline Halide::Expr relu_keep_nan(const Halide::Expr &v) {
    using namespace Halide;
    return select(reinterpret<int32_t>(v) <= -8388608, 0.0f, v);
}

// clamp(v, 0, 6) keeping NaN: above as for the low end; at the high end, the positive non-NaN
// values above 6 (up to +inf, bits 0x7f800000) are the int32 range (bits(6), 0x7f800000]; positive
// NaNs are above it, negative ones below zero.
inline Halide::Expr relu6_keep_nan(const Halide::Expr &v) {
    using namespace Halide;
    Expr bits = reinterpret<int32_t>(v);
    return select(bits <= -8388608, 0.0f, bits > 0x40c00000 && bits <= 0x7f800000, 6.0f, v);
}

// r (a smooth activation computed for finite x) made exact where x is NaN or +-inf, on the bits:
// NaN gives x itself, +inf gives at_pos_inf, -inf gives at_neg_inf (PyTorch's values). Halide's exp
// and erf are polynomials whose range reduction loses a NaN and does not saturate at +-inf.
inline Halide::Expr at_nonfinite(const Halide::Expr &x, const Halide::Expr &r, const Halide::Expr &at_pos_inf,
                                 const Halide::Expr &at_neg_inf) {
    using namespace Halide;
    Expr bits = reinterpret<int32_t>(x);
    return select((bits & 0x7fffffff) < 0x7f800000, r, bits == 0x7f800000, at_pos_inf, bits == -8388608,
                  at_neg_inf, x);
}

inline Halide::Expr nan_f32() { return Halide::reinterpret<float>(Halide::Expr((int32_t)0x7fc00000)); }

// exp(-x) for the sigmoids: the argument clamped where exp's float result is 0 or overflows (the
// +-inf cases are at_nonfinite's).
inline Halide::Expr exp_neg(const Halide::Expr &x) { return Halide::exp(-Halide::clamp(x, -88.0f, 88.0f)); }

// Piecewise-linear activations: a few instructions a vector, cheap enough for a GEMM's register
// tile epilogue; the others are built on exp or erf (30-50 instructions a vector, with constants
// that do not fit in the registers beside a tile's accumulators).
inline bool piecewise_linear(Act act) {
    return act == Act::None || act == Act::Relu || act == Act::Relu6 || act == Act::Hardswish ||
           act == Act::Hardsigmoid;
}

// erf(x) as a rational function, x P(x^2) / Q(x^2) with P and Q of degree 5, on x clamped to
// [-4, 4] (erf(4) = 1 - 1.5e-8), the result clamped to [-1, 1]: a minimax fit of the relative error
// (2.5e-8 in exact arithmetic; compiler/halide/fit_erf.py), 2.2e-7 of max(|x|, 1) for GELU in float.
// 10 FMAs, a division and a few min/max: about 17 instructions a vector; Halide's erf (an
// exponential times a polynomial of 1 / (1 + p x)) takes about 50.
inline Halide::Expr erf_rational(const Halide::Expr &x_full) {
    using namespace Halide;
    const float p[] = {1.128379107e+00f, 1.935456991e-01f, 5.310183391e-02f, 3.883373225e-03f, 2.845669223e-04f,
                       1.986782081e-06f};
    const float q[] = {1.0f, 5.048579574e-01f, 1.153502688e-01f, 1.520730834e-02f, 1.185578993e-03f, 3.742022818e-05f};
    Expr x = clamp(x_full, -4.0f, 4.0f), s = x * x;
    Expr num = p[5], den = q[5];
    for (int n = 4; n >= 0; n--) {
        num = num * s + p[n];
        den = den * s + q[n];
    }
    return clamp(x * num / den, -1.0f, 1.0f);
}

inline Halide::Expr activate(Act act, const Halide::Expr &v) {
    using namespace Halide;
    switch (act) {
    case Act::None: return v;
    case Act::Relu: return relu_keep_nan(v);
    case Act::Relu6: return relu6_keep_nan(v);
    case Act::Silu: return at_nonfinite(v, v / (1.0f + exp_neg(v)), v, nan_f32());
    case Act::Hardswish: return v * relu6_keep_nan(v + 3.0f) * (1.0f / 6.0f);  // -inf * 0 = NaN
    case Act::Hardsigmoid: return relu6_keep_nan(v + 3.0f) * (1.0f / 6.0f);
    case Act::Sigmoid: return at_nonfinite(v, 1.0f / (1.0f + exp_neg(v)), 1.0f, 0.0f);
    case Act::Gelu: {
        Expr e = erf_rational(v * 0.70710678118654752f);
        return at_nonfinite(v, v * (0.5f + 0.5f * e), v, nan_f32());  // one product with v: no overflow
    }
    case Act::GeluTanh: {
        // tanh(u) = 1 - 2 / (1 + exp(2u)), u clamped to +-9 (tanh(9) rounds to 1 in float); Halide's
        // tanh is a scalar libm call per lane
        Expr u = clamp(0.79788456080286536f * (v + 0.044715f * v * v * v), -9.0f, 9.0f);
        Expr t = 1.0f - 2.0f / (1.0f + exp(2.0f * u));
        return at_nonfinite(v, v * (0.5f + 0.5f * t), v, nan_f32());
    }
    case Act::Tanh: {
        // 1 - 2 / (1 + exp(2v)), v clamped to +-9 as above; below |v| = 1/8 the odd Taylor series to
        // v^7 (error under 2e-9 relative), where the difference would cancel to an absolute error
        Expr t = 1.0f - 2.0f / (1.0f + exp(2.0f * clamp(v, -9.0f, 9.0f)));
        Expr v2 = v * v;
        Expr series = v + v * v2 * (-1.0f / 3.0f + v2 * (2.0f / 15.0f - v2 * (17.0f / 315.0f)));
        return at_nonfinite(v, select(abs(v) < 0.125f, series, t), 1.0f, -1.0f);
    }
    }
    return v;
}

}  // namespace foldc
