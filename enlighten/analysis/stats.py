"""The statistics of the reports, from scipy.stats: paired tests, slopes, Holm's correction, and the
smallest effect a design could detect.

Every test here takes one number per replicate (per seed in the claims report), so the replicates
are independent and a t-test over them is valid however the numbers were computed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

POWER = 0.8  # the minimum detectable effect: found with this probability by a two-sided test at 5%


@dataclass
class TestResult:
    """A mean effect over replicates, its 95% CI, the two-sided p-value (t-test), the minimum
    detectable effect (at 5%; a report recomputes it at its verdict's level from `sd`) and the
    replicates' sd; `p_holm` is filled in once the test's family is known."""

    n: int
    effect: float
    ci_low: float
    ci_high: float
    p: float
    mde: float
    p_holm: float = math.nan
    sd: float = math.nan


def minimum_detectable_effect(sd: float, n: int, alpha: float = 0.05, power: float = POWER, sides: int = 2) -> float:
    """The smallest mean a one-sample t-test over n values with this sd detects with `power` at level
    `alpha` (two-sided, or one-sided with sides=1): (t_{1-alpha/sides} + t_{power}) sd / sqrt(n), with
    n - 1 degrees of freedom (the usual approximation: it ignores the far tail). nan below 2 values."""
    if n < 2 or not math.isfinite(sd):
        return math.nan
    df = n - 1
    return float((stats.t.ppf(1 - alpha / sides, df) + stats.t.ppf(power, df)) * sd / math.sqrt(n))


def seeds_needed(
    sd: float, effect: float, alpha: float, n_min: int = 2, n_max: int = 1000, power: float = POWER
) -> int | None:
    """The fewest replicates in [n_min, n_max] whose minimum detectable effect (two-sided, level
    `alpha`) is at most `effect`, given the sd of a replicate's value; None when even n_max is not enough."""
    for n in range(max(2, n_min), n_max + 1):
        if minimum_detectable_effect(sd, n, alpha, power) <= effect:
            return n
    return None


def one_sample(values) -> TestResult:
    """The mean of `values` against 0: t-test, 95% CI, minimum detectable effect. With fewer than 2
    values, or no spread, only the mean (CI and p nan)."""
    x = np.asarray(values, dtype=float)
    n, mean = len(x), float(x.mean()) if len(x) else math.nan
    if n < 2 or float(x.std(ddof=1)) < 1e-12:
        return TestResult(n, mean, math.nan, math.nan, math.nan, math.nan)
    result = stats.ttest_1samp(x, 0.0)
    ci = result.confidence_interval(0.95)
    sd = float(x.std(ddof=1))
    return TestResult(
        n, mean, float(ci.low), float(ci.high), float(result.pvalue), minimum_detectable_effect(sd, n), sd=sd
    )


def paired(a, b) -> TestResult:
    """Paired comparison of a with b (same replicates, same order): the mean of a - b, with
    scipy's paired t-test (`ttest_rel`) and its confidence interval."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} and {len(b)}")
    diff = a - b
    if len(diff) < 2 or float(diff.std(ddof=1)) < 1e-12:
        return one_sample(diff)
    result = stats.ttest_rel(a, b)
    ci = result.confidence_interval(0.95)
    sd = float(diff.std(ddof=1))
    return TestResult(
        len(diff),
        float(diff.mean()),
        float(ci.low),
        float(ci.high),
        float(result.pvalue),
        minimum_detectable_effect(sd, len(diff)),
        sd=sd,
    )


def slopes(y, columns: dict[str, list[float]]) -> dict[str, float] | None:
    """Least-squares coefficients of y on an intercept and the named columns. A column with a single
    value (a factor the design did not vary) gets no coefficient; None when the design cannot
    separate the columns (fewer points than coefficients, or columns that move together). An exact
    fit (as many points as coefficients) is allowed: within a seed it is a summary, and the test
    is over the seeds."""
    varied = {name: np.asarray(v, dtype=float) for name, v in columns.items() if len(set(v)) > 1}
    design = np.column_stack([np.ones(len(y)), *varied.values()])
    if len(y) < design.shape[1] or np.linalg.matrix_rank(design) < design.shape[1]:
        return None
    coef, *_ = np.linalg.lstsq(design, np.asarray(y, dtype=float), rcond=None)
    return dict(zip(varied, coef[1:].tolist()))


def non_inferiority(a, b, margin: float) -> TestResult:
    """Is a at least as good as b, up to `margin`? The paired mean of a - b with its 95% CI, and the
    one-sided p-value of the null hypothesis "a - b <= -margin" (small p: a is not worse than b by
    the margin or more)."""
    result = paired(a, b)
    if math.isfinite(result.ci_low):
        diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
        se = float(diff.std(ddof=1)) / math.sqrt(len(diff))
        result.p = float(stats.t.sf((result.effect + margin) / se, len(diff) - 1))
    return result


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error), in the input order; nan stays nan
    and does not count as a test."""
    order = sorted((p, i) for i, p in enumerate(p_values) if math.isfinite(p))
    m, adjusted, running = len(order), [math.nan] * len(p_values), 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted
