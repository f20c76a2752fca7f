"""The largest batch and the largest context that fit a budget, from the analytic model.

Memory is weights + batch * per_sequence(context) with per_sequence nondecreasing in context, so the largest
batch is a division and the largest context a bisection over whole tokens.
"""

from __future__ import annotations

from .memory import MemoryModel


def largest_batch(model: MemoryModel, context: int, budget: int) -> int:
    """Sequences of `context` tokens that fit (0 if not even one)."""
    room = budget - model.weight_bytes
    if room < 0:
        return 0
    return room // model.per_sequence(context)


def largest_context(model: MemoryModel, batch: int, budget: int, limit: int) -> int:
    """Tokens per sequence that fit at `batch` (at most `limit`, the spec's max_context; 0 if not even one)."""
    room = budget - model.weight_bytes
    fits = lambda context: batch * model.per_sequence(context) <= room  # noqa: E731
    if room < 0 or not fits(1):
        return 0
    if fits(limit):
        return limit
    low, high = 1, limit  # fits(low), not fits(high)
    while high - low > 1:
        mid = (low + high) // 2
        if fits(mid):
            low = mid
        else:
            high = mid
    return low
