"""Statistics over seeds, as pure functions: mean, sample std, Student-t quantile and confidence
interval, the paired difference of two variants trained with the same seeds, and a plain verdict.

Why Student t: with a handful of seeds the std is itself a noisy estimate, and the t distribution
with n - 1 degrees of freedom widens the interval for that (at 3 seeds the 95 % interval is
mean ± 4.30 std/√3, not ± 1.96). Its CDF for an integer number of degrees of freedom is a finite
sum (Abramowitz & Stegun 26.7.3-4), so the quantile needs no special-function library.

Paired by seed: variant A with seed s and variant B with seed s share the split, the batches and
(where the model allows) the initial draws, so most of the seed noise cancels in B − A; the
interval of the mean of those differences is what says whether B really differs from A.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

CONFIDENCE = 0.95  # the usual level: an interval built this way misses the true mean one time in 20
QUANTILE_TOLERANCE = 1e-12  # bisection stops when the bracket is this narrow (far below any shown digit)
QUANTILE_MAX_ITERATIONS = 200  # halvings: from a bracket of 1e12 to 1e-12 takes ~80
WITHIN_NOISE = "within seed noise"
BETTER = "better, beyond seed noise"
WORSE = "worse, beyond seed noise"
NO_INTERVAL = "one seed: no interval"


@dataclass(frozen=True)
class Summary:
    """Mean, sample std and the ``CONFIDENCE`` interval of ``n`` values; None where ``n`` is too small."""

    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None
    n: int

    def to_dict(self) -> dict:
        return asdict(self)


def mean(values: list[float]) -> float:
    return math.fsum(values) / len(values)


def sample_std(values: list[float]) -> float:
    """The std with Bessel's correction (divides by n - 1): unbiased variance from a sample."""
    m = mean(values)
    return math.sqrt(math.fsum((v - m) ** 2 for v in values) / (len(values) - 1))


def t_two_sided(t: float, df: int) -> float:
    """P(|T| <= t) for Student's T with ``df`` degrees of freedom, ``t >= 0`` (A&S 26.7.3-4)."""
    theta = math.atan(t / math.sqrt(df))
    cos2, sin = math.cos(theta) ** 2, math.sin(theta)
    if df % 2 == 0:
        term = total = 1.0
        for k in range(1, df // 2):
            term *= (2 * k - 1) / (2 * k) * cos2
            total += term
        return sin * total
    if df == 1:
        return 2 * theta / math.pi
    term = total = math.cos(theta)
    for k in range(1, (df - 1) // 2):
        term *= (2 * k) / (2 * k + 1) * cos2
        total += term
    return 2 / math.pi * (theta + sin * total)


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with ``df`` (a positive integer) degrees of freedom."""
    if not 0 < p < 1 or df < 1:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df >= 1, got p={p}, df={df}")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    target = 2 * p - 1  # P(|T| <= t) that puts p of the mass below t
    lo, hi = 0.0, 1.0
    while t_two_sided(hi, df) < target:
        lo, hi = hi, 2 * hi
    for _ in range(QUANTILE_MAX_ITERATIONS):
        if hi - lo <= QUANTILE_TOLERANCE * max(1.0, hi):
            break
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_two_sided(mid, df) < target else (lo, mid)
    return (lo + hi) / 2


def confidence_interval(values: list[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """mean ± t(1 - (1 - confidence)/2, n - 1) · std/√n; needs at least two values."""
    m, n = mean(values), len(values)
    half = t_quantile(1 - (1 - confidence) / 2, n - 1) * sample_std(values) / math.sqrt(n)
    return m - half, m + half


def summarize(values: list[float], confidence: float = CONFIDENCE) -> Summary:
    """The ``Summary`` of finite values: one value has a mean only, none has nothing."""
    n = len(values)
    if n == 0:
        return Summary(None, None, None, None, 0)
    if n == 1:
        return Summary(values[0], None, None, None, 1)
    low, high = confidence_interval(values, confidence)
    return Summary(mean(values), sample_std(values), low, high, n)


def finite(value) -> bool:
    """A number that is neither NaN nor infinite (None, text and bools are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def paired_differences(a: list, b: list) -> list[float]:
    """``b[i] - a[i]`` for every seed ``i`` where both are finite numbers (a failed run drops its seed)."""
    return [y - x for x, y in zip(a, b) if finite(x) and finite(y)]


def verdict(diff: Summary, lower_is_better: bool = True) -> str:
    """Plain words for a paired difference B − A: never "better" or "worse" when its interval holds 0."""
    if diff.n < 2:
        return NO_INTERVAL
    if diff.ci_low <= 0 <= diff.ci_high:
        return WITHIN_NOISE
    return BETTER if (diff.mean < 0) == lower_is_better else WORSE
