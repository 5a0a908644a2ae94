"""Exact binomial bounds for an accuracy measured on a sample: Clopper-Pearson.

``clopper_pearson(k, n, confidence)`` is the two-sided interval the weekly report prints (the accuracy of
automatic decisions from audit samples, missed defects per 1,000); ``lower_bound(k, n, confidence)`` the
one-sided bound routing calibration certifies a threshold with. Both are exact (they invert the binomial
distribution through the regularised incomplete beta function), so they hold for small samples too, where
the normal approximation does not. Pure Python: the review console and the cloud service need no SciPy.
"""

from __future__ import annotations

import math

_EPS = 1e-15
_TINY = 1e-300


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b), for a, b > 0 and 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def _beta_quantile(q: float, a: float, b: float) -> float:
    """x with I_x(a, b) = q, by bisection (monotone in x; 60 halvings reach double precision)."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if betainc(a, b, mid) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _check(k: int, n: int, confidence: float) -> None:
    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def lower_bound(k: int, n: int, confidence: float) -> float:
    """One-sided lower bound: P(true rate >= bound) >= ``confidence`` for ``k`` successes in ``n``."""
    _check(k, n, confidence)
    if k == 0:
        return 0.0
    return _beta_quantile(1.0 - confidence, k, n - k + 1)


def upper_bound(k: int, n: int, confidence: float) -> float:
    """One-sided upper bound: P(true rate <= bound) >= ``confidence``."""
    _check(k, n, confidence)
    if k == n:
        return 1.0
    return _beta_quantile(confidence, k + 1, n - k)


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The two-sided exact interval (each tail (1 - confidence) / 2); (0, 1) when nothing was sampled."""
    _check(k, n, confidence)
    if n == 0:
        return 0.0, 1.0
    tail = (1.0 - confidence) / 2
    return lower_bound(k, n, 1.0 - tail), upper_bound(k, n, 1.0 - tail)
