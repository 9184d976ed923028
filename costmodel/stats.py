"""Mean and confidence interval over seeds, for randomized protocols (the shuffle top-k's round count varies
with the permutation it draws).

``interval(values)`` is the Student-t interval of the mean, mean +- t_{(1+level)/2, n-1} s / sqrt(n), with s
the sample standard deviation. The t quantile is computed here (bisection on the t distribution's CDF,
itself a numerical integral of the density) so the core keeps no statistics dependency; it agrees with
published tables to the digits a report prints (t_{0.975, 4} = 2.776, t_{0.975, 9} = 2.262).
"""
from __future__ import annotations

import math

__all__ = ["interval", "t_quantile"]


def _t_cdf(t: float, dof: int) -> float:
    """P(T <= t) for Student's t with ``dof`` degrees of freedom: 1/2 plus the density's integral on [0, t]
    (composite Simpson's rule on 2000 panels; the density is smooth, so the error is far below 1e-9)."""
    log_norm = math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2) - 0.5 * math.log(dof * math.pi)

    def density(x):
        return math.exp(log_norm - (dof + 1) / 2 * math.log1p(x * x / dof))

    a, b, n = 0.0, abs(t), 2000
    h = (b - a) / n
    total = density(a) + density(b) + sum((4 if i % 2 else 2) * density(a + i * h) for i in range(1, n))
    half = total * h / 3
    return 0.5 + half if t >= 0 else 0.5 - half


def t_quantile(p: float, dof: int) -> float:
    """The ``p`` quantile of Student's t with ``dof`` >= 1 degrees of freedom, for 0.5 <= p < 1."""
    if not 0.5 <= p < 1:
        raise ValueError(f"p must be in [0.5, 1), got {p}")
    if dof < 1:
        raise ValueError(f"dof must be >= 1, got {dof}")
    lo, hi = 0.0, 1.0
    while _t_cdf(hi, dof) < p:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _t_cdf(mid, dof) < p else (lo, mid)
    return (lo + hi) / 2


def interval(values, level: float = 0.95) -> dict:
    """``{"n", "mean", "lo", "hi", "values"}``: the mean of ``values`` and its ``level`` Student-t interval
    (lo = hi = mean for a single value or identical values)."""
    values = [float(v) for v in values]
    n = len(values)
    if not n:
        raise ValueError("interval of no values")
    if all(v == values[0] for v in values):  # no spread (a deterministic protocol): exactly that value
        return {"n": n, "mean": values[0], "lo": values[0], "hi": values[0], "values": values}
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile((1 + level) / 2, n - 1) * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "lo": mean - half, "hi": mean + half, "values": values}
