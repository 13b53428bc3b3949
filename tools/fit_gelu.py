#!/usr/bin/env python3
"""Fit the rational approximation of erf inside qcore's GELU and print its constants.

qcore's GELU (csrc/include/qcore_activation.h, qcore/reference/activation.py) evaluates

    u = x * 0.70710677f,  uc = min(max(u, -A), A),  s = uc * uc,
    erf(u) ~= uc * P(s) / Q(s),  y = (0.5f * x) * (1 + erf(u))

in float32 (Horner, no FMA). This script derives P, Q and A:

1. B = the smallest float32 at which float32(erf(B)) is 1: the fit interval is [0, B].
2. P (degree ``--p``) and Q (degree ``--q``, monic: leading coefficient 1) minimise the
   largest absolute error of ``u * P(u^2) / Q(u^2) - erf(u)`` on a dense grid of [0, B] in
   float64, by Loeb's linearisation ``u P - erf(u) Q`` divided by the previous Q, solved as
   weighted least squares with Lawson's weight update (weights times |error|), which
   converges to the minimax (equioscillating) error.
3. The coefficients are rounded to float32 and the approximation is evaluated exactly as
   the kernels do (float32 Horner) on every float32 u in [0, B]; A is the smallest float32
   at which that evaluation reaches 1 (it is exactly 1 there), so erf stays within
   [-1, 1] and the clamp maps every |u| >= A to +-1. The largest absolute error over every
   float32 in [0, A], and erfc(A) (the error beyond the clamp), are printed.

Run ``python tools/fit_gelu.py`` (one to two minutes: the exhaustive float32 check);
``--scan`` also prints the float64 minimax error of other degree pairs. Lower degrees fit
worse than 3e-7 in float64 already (P6/Q3 4.0e-7, P5/Q4 4.3e-7); from P5/Q5, P6/Q4 and
P7/Q3 on, the float32 rounding of the twenty-odd Horner steps, not the fit, sets the error
(exhaustively: P5/Q5 and P6/Q4 3.94e-7 with A = 3.60, P7/Q3 3.705e-7 with A = 3.70; P4/Q6's
Q has a zero in the interval). The kernels use the default, P7/Q3. Needs numpy and scipy.
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.special import erf

F32 = np.float32
INV_SQRT2 = F32(0.70710678118654752)


def float32_range(lo: np.float32, hi: np.float32) -> np.ndarray:
    """Every float32 in [lo, hi] for 0 <= lo <= hi (consecutive bit patterns)."""
    return np.arange(F32(lo).view(np.int32), F32(hi).view(np.int32) + 1, dtype=np.int32).view(np.float32)


def erf_rounds_to_one() -> np.float32:
    """The smallest float32 u with float32(erf(u)) == 1."""
    u = float32_range(F32(3.5), F32(4.5))
    return u[np.argmax(erf(u.astype(np.float64)).astype(np.float32) == 1)]


def fit(p_degree: int, q_degree: int, b: float, points: int = 6000, iterations: int = 300):
    """Minimax ``u P(u^2) / Q(u^2)`` for erf on [0, b], Q monic; returns (error, P, Q) ascending."""
    k = np.arange(points)
    u = np.concatenate([b * (1 - np.cos(np.pi * (k + 0.5) / points)) / 2, np.linspace(0, b, points)[1:]])
    u = np.unique(u)
    s = u * u
    f = erf(u)
    # unknowns p_0..p_m, q_0..q_(n-1); q_n = 1: u P(s) - f (Q(s) - s^n) = f s^n
    columns = np.concatenate([u[:, None] * s[:, None] ** np.arange(p_degree + 1),
                              -f[:, None] * s[:, None] ** np.arange(q_degree)], axis=1)
    rhs = f * s ** q_degree
    scale = np.abs(columns).max(axis=0)
    columns = columns / scale
    lawson = np.full(len(u), 1.0 / len(u))
    q_prev = np.ones_like(u)
    best = None
    for _ in range(iterations):
        w = np.sqrt(lawson) / np.abs(q_prev)
        c = np.linalg.lstsq(columns * w[:, None], rhs * w, rcond=None)[0] / scale
        p = c[:p_degree + 1]
        q = np.concatenate([c[p_degree + 1:], [1.0]])
        q_prev = np.polyval(q[::-1], s)
        err = u * np.polyval(p[::-1], s) / q_prev - f
        e = np.abs(err).max()
        if best is None or e < best[0]:
            best = (e, p.copy(), q.copy())
        lawson = lawson * np.abs(err)
        lawson /= lawson.sum()
    return best


def erf_f32(p: np.ndarray, q: np.ndarray, uc: np.ndarray) -> np.ndarray:
    """``uc * (P(s) / Q(s))``, ``s = uc * uc``, in float32 exactly as the kernels (Q monic)."""
    s = uc * uc
    num = np.full_like(s, p[-1])
    for c in p[-2::-1]:
        num = num * s + c
    den = s + q[-2]
    for c in q[-3::-1]:
        den = den * s + c
    return uc * (num / den)


def first_reaching_one(p: np.ndarray, q: np.ndarray, b: np.float32) -> np.float32:
    """A: the smallest float32 u in [3, b] whose float32 evaluation is >= 1 (b if none)."""
    top = float32_range(F32(3), b)
    reach = np.nonzero(erf_f32(p, q, top) >= 1)[0]
    return top[reach[0]] if len(reach) else b


def check(p: np.ndarray, q: np.ndarray, b: np.float32, chunk: int = 1 << 24):
    """A (:func:`first_reaching_one`) and the largest error over every float32 in [0, A]."""
    a = first_reaching_one(p, q, b)
    worst, at = 0.0, F32(0)
    first, last = 0, int(a.view(np.int32))
    for lo in range(first, last + 1, chunk):
        u = np.arange(lo, min(lo + chunk, last + 1), dtype=np.int32).view(np.float32)
        err = np.abs(erf_f32(p, q, u).astype(np.float64) - erf(u.astype(np.float64)))
        i = int(err.argmax())
        if err[i] > worst:
            worst, at = float(err[i]), u[i]
    return a, worst, at


def c_literal(v: np.float32) -> str:
    """Shortest decimal that round-trips to the float32 v, as a C float literal."""
    text = np.format_float_positional(v, unique=True, trim="-") if 1e-4 <= abs(v) < 1e4 else \
        np.format_float_scientific(v, unique=True, trim="-")
    if "." not in text and "e" not in text:
        text += ".0"
    return (text + "f") if v >= 0 else f"({text}f)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--p", type=int, default=7, help="degree of P in s = u^2")
    parser.add_argument("--q", type=int, default=3, help="degree of the monic Q in s")
    parser.add_argument("--scan", action="store_true", help="also print other degree pairs' float64 error")
    args = parser.parse_args()

    b = erf_rounds_to_one()
    print(f"fit interval [0, {b!r}] (float32(erf(u)) == 1 from there on)")
    if args.scan:
        for m, n in [(4, 4), (5, 3), (5, 4), (4, 5), (6, 3), (5, 5), (6, 4), (7, 3), (4, 6)]:
            print(f"  P{m}/Q{n}: float64 minimax error {fit(m, n, float(b))[0]:.3g}")
    e64, p64, q64 = fit(args.p, args.q, float(b))
    p, q = p64.astype(F32), q64.astype(F32)
    s = np.linspace(0, float(b) ** 2, 100001)
    assert (np.polyval(q64[::-1], s) > 0).all(), "Q has a zero in [0, B^2]"
    a, worst, at = check(p, q, b)
    one = erf_f32(p, q, np.array([a], F32))[0]
    assert one == 1, f"evaluation at A is {one!r}, not 1"
    print(f"P{args.p}/Q{args.q} (Q monic): float64 minimax error {e64:.3g}")
    print(f"A = {a!r}: float32 evaluation reaches 1 there; erfc(A) = {1 - erf(float(a)):.3g}")
    print(f"largest float32 error over every float32 u in [0, A]: {worst:.4g} at u = {at!r}")
    print()
    print(f"#define QC__GELU_ERF_A {c_literal(a)}")
    for j, c in enumerate(p):
        print(f"#define QC__GELU_ERF_P{j} {c_literal(c)}")
    for j, c in enumerate(q[:-1]):
        print(f"#define QC__GELU_ERF_Q{j} {c_literal(c)}")
    print(f"/* Q{len(q) - 1} = 1 (monic) */")


if __name__ == "__main__":
    main()
