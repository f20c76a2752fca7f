"""The checks of a study's numeric bounds (archsearch.limits): the study file's fields and the `study run` options
are checked against them before any work starts, and `--help` quotes them.

Each bound is far above any real study and far below what would exhaust memory or overflow a seed.
"""

from __future__ import annotations

import math

from ..errors import UserError
from ..limits import MAX_SAMPLER_SEED, MAX_SEED_OFFSET, MAX_TIMEOUT_S, MAX_TRIALS, MAX_WORKERS


def sampler_seed(seed: int, seed_offset: int, stored_trials: int) -> int:
    """The seed of one worker's sampler: workers sharing a study (`seed_offset`) and a resumed study (the trials
    already stored) each draw other candidates; folded into the 32-bit range every sampler accepts."""
    return (seed + 1_000_003 * seed_offset + 7_919 * stored_trials) % (MAX_SAMPLER_SEED + 1)


def _whole(value, name: str, low: int, high: int) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return f"{name} {value!r}: allowed: a whole number {low} .. {high:,}"
    return None


def check_run_options(*, n_trials: int | None = None, timeout_s: float | None = None, workers: int | None = None,
                      seed_offset: int | None = None) -> None:
    """Refuse out-of-range `study run` options, all at once, before the study is opened."""
    problems = []
    if n_trials is not None:
        problems.append(_whole(n_trials, "--n-trials", 1, MAX_TRIALS))
    if timeout_s is not None and not (isinstance(timeout_s, (int, float)) and not isinstance(timeout_s, bool)
                                      and math.isfinite(timeout_s) and 0 < timeout_s <= MAX_TIMEOUT_S):
        problems.append(f"--timeout {timeout_s!r}: allowed: seconds > 0 and <= {MAX_TIMEOUT_S:,} (finite); leave it "
                        "out to stop at n_trials only")
    if workers is not None:
        problems.append(_whole(workers, "--workers", 1, MAX_WORKERS))
    if seed_offset is not None:
        problems.append(_whole(seed_offset, "--seed-offset", 0, MAX_SEED_OFFSET))
    problems = [p for p in problems if p]
    if problems:
        raise UserError("; ".join(problems))
