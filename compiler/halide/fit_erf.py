"""The coefficients of activation.h's erf_rational: erf(x) ~ x P(x^2) / Q(x^2) on [-4, 4], P and Q of
degree 5 in x^2, Q(0) = 1, fitted for the smallest largest relative error.

    /usr/bin/python3 compiler/halide/fit_erf.py

Method: linearized least squares (Sanathanan-Koerner: P - f Q = f, weighted by 1 / (f Q_previous),
f = erf(x) / x), the weights then multiplied by each point's error (Lawson) towards the minimax
fit; points dense near x = 4. Prints the largest relative error in double, the coefficients as
float, and GELU's largest error in float (x (1/2 + erf(x / sqrt 2) / 2), as activation.h computes
it) against math.erf.
"""
import math

import numpy as np

RANGE, DEG = 4.0, 5


def fit(iterations=80):
    x = RANGE * np.sin(np.linspace(0, 1, 8000) * np.pi / 2)
    s = x * x
    f = np.array([math.erf(v) / v if v > 0 else 2 / math.sqrt(math.pi) for v in x])
    weight, q_prev, best = np.ones_like(x), np.ones_like(x), None
    for it in range(iterations):
        powers = np.vander(s, DEG + 1, increasing=True)
        m = np.hstack([powers, -f[:, None] * powers[:, 1:]])
        scale = np.sqrt(weight) / (np.abs(q_prev) * f)
        sol = np.linalg.lstsq(m * scale[:, None], f * scale, rcond=None)[0]
        p, q = sol[:DEG + 1], np.concatenate([[1.0], sol[DEG + 1:]])
        pv, qv = powers @ p, powers @ q
        err = np.abs(pv / qv - f) / f
        if qv.min() > 0 and (best is None or err.max() < best[0]):
            best = (err.max(), p, q)
        q_prev = qv
        if it > 5:
            weight = weight * err
            weight /= weight.sum()
    return best


def gelu_f32(x, p, q):
    """activation.h's GELU, step by step in float32."""
    f32 = np.float32
    u = np.clip((x * f32(0.70710678118654752)).astype(f32), f32(-RANGE), f32(RANGE))
    s = (u * u).astype(f32)
    num, den = f32(p[-1]), f32(q[-1])
    for a, b in zip(p[-2::-1], q[-2::-1]):
        num, den = (num * s + a).astype(f32), (den * s + b).astype(f32)
    e = np.clip((u * num / den).astype(f32), f32(-1), f32(1))
    return (x * (f32(0.5) + f32(0.5) * e)).astype(f32)


def main():
    err, p, q = fit()
    p32, q32 = p.astype(np.float32), q.astype(np.float32)
    print('largest relative error of erf (double): %.2e' % err)
    print('p = {%s}' % ', '.join('%.9ef' % c for c in p32))
    print('q = {%s}' % ', '.join('%.9ef' % c for c in q32))
    x = np.linspace(-12, 12, 200001).astype(np.float32)
    ref = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(np.float64)])
    g = gelu_f32(x, p32, q32).astype(np.float64)
    print('GELU in float: largest |error| / max(|x|, 1) on [-12, 12]: %.2e' %
          (np.abs(g - ref) / np.maximum(np.abs(x), 1)).max())


if __name__ == '__main__':
    main()
