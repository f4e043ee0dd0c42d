"""Comparing two sets of weights on the very same test repairs.

Both are scored on the same simulated damage (same sections, crops and masks), so each test
repair gives one paired difference ``after - before``. Their mean is the change; its 95 %
interval (Student's t over the paired differences) says how sure that change is. The verdict
(:meth:`PairedChange.verdict`):

- **better**: the whole interval lies above 0 dB and the mean gain is at least
  :data:`WORTHWHILE_DB`;
- **worse**: the whole interval lies below 0 dB;
- **no clear change**: anything else (the interval holds 0, or the gain is too small to
  matter).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["PairedChange", "WORTHWHILE_DB", "paired_change"]

#: The smallest mean gain (dB of PSNR) called "better", however sure it is.
WORTHWHILE_DB = 0.1


@dataclass(frozen=True)
class PairedChange:
    """The change of a score between two sets of weights, over paired test repairs.

    Attributes
    ----------
    mean : float
        Mean of ``after - before`` over the pairs (dB).
    low, high : float
        The interval around ``mean`` at ``level`` (``-inf``/``inf`` with a single pair).
    n : int
        Pairs compared (those with both scores finite).
    level : float
        Confidence level of the interval (0.95).
    """

    mean: float
    low: float
    high: float
    n: int
    level: float = 0.95

    def verdict(self, worthwhile: float = WORTHWHILE_DB) -> str:
        """``"better"``, ``"worse"`` or ``"no clear change"`` (the rule in the module's
        docstring)."""
        if self.low > 0 and self.mean >= worthwhile:
            return "better"
        if self.high < 0:
            return "worse"
        return "no clear change"


def paired_change(before, after, *, level: float = 0.95) -> PairedChange:
    """The mean of ``after - before`` over paired scores and its interval (Student's t).

    Parameters
    ----------
    before, after : sequence of float or None
        Scores of the same test repairs, in the same order, with the two sets of weights.
        Pairs where either score is None or not finite (a perfect repair) are left out.
    level : float, keyword-only
        Confidence level of the interval, in (0, 1).

    Returns
    -------
    PairedChange

    Raises
    ------
    ValueError
        When the two lists differ in length, or no pair has two finite scores.
    """
    from scipy.stats import t

    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}.")
    if len(before) != len(after):
        raise ValueError(f"the scores do not pair up: {len(before)} before, {len(after)} "
                         "after. Score both weights on the same test repairs.")
    b = np.array([np.nan if v is None else v for v in before], dtype=np.float64)
    a = np.array([np.nan if v is None else v for v in after], dtype=np.float64)
    d = (a - b)[np.isfinite(a) & np.isfinite(b)]
    if d.size == 0:
        raise ValueError("no test repair has a finite score with both weights.")
    mean = float(d.mean())
    if d.size < 2:
        return PairedChange(mean, -math.inf, math.inf, 1, level)
    half = float(t.ppf(0.5 + level / 2, d.size - 1) * d.std(ddof=1) / math.sqrt(d.size))
    return PairedChange(mean, mean - half, mean + half, int(d.size), level)
