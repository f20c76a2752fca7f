"""The Pareto front of two objectives, in O(n log n) so that a study of 10,000 trials stays instant."""

from __future__ import annotations

from collections.abc import Sequence


def pareto_front(points: Sequence[tuple[float, float]], directions: tuple[str, str]) -> list[int]:
    """Indices of the points no other point dominates, given 'minimize'/'maximize' for each axis.

    A point is dominated when another is at least as good on both axes and better on one; equal points
    are all on the front.
    """
    for direction in directions:
        if direction not in ("minimize", "maximize"):
            raise ValueError(f"direction {direction!r}: expected 'minimize' or 'maximize'")
    sign = tuple(1.0 if d == "minimize" else -1.0 for d in directions)
    keyed = sorted(range(len(points)), key=lambda i: (sign[0] * points[i][0], sign[1] * points[i][1]))
    front: list[int] = []
    best_y = float("inf")
    last: tuple[float, float] | None = None
    for i in keyed:
        x, y = sign[0] * points[i][0], sign[1] * points[i][1]
        if y < best_y:
            front.append(i)
            best_y, last = y, (x, y)
        elif (x, y) == last:
            front.append(i)
    return sorted(front)
