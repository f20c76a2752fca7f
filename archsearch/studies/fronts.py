"""The best trials of a study: the best one (single objective) or the Pareto front (several), each distinct
candidate once, with its target and the trials that were its duplicates."""

from __future__ import annotations

from typing import Any

from ..storage import Database, records
from ..storage.pareto import pareto_front


def best_trials(db: Database, study_id: int, objectives, limit: int = 5) -> list[dict[str, Any]]:
    rows = _distinct(records.completed_summaries(db, study_id))
    duplicates = records.duplicates_by_original(db, study_id)
    signs = [1.0 if o.direction == "minimize" else -1.0 for o in objectives]
    points = [(r, [s * v for s, v in zip(signs, r.objectives)]) for r, _ in rows if r.objectives]
    also = {r.number: later for r, later in rows}
    if len(objectives) == 1:
        chosen = sorted(points, key=lambda p: p[1][0])[:limit]
    else:
        front = [points[i] for i in pareto_front([r.objectives for r, _ in points], [o.direction for o in objectives])]
        chosen = sorted(front, key=lambda p: p[1])[:limit]
    return [{"number": r.number, "objectives": r.objectives, "pattern_compact": r.pattern_compact,
             "n_params": r.n_params, "params": r.params, "spec_hash": r.spec_hash, "target": _target(r.target),
             "duplicates": sorted(duplicates.get(r.number, []) + also[r.number])} for r, _ in chosen]


def _distinct(rows) -> list[tuple[Any, list[int]]]:
    """Completed rows, one per candidate key (the first trained), each with the numbers of later completed rows of
    the same key (trained twice: concurrent workers, or trials stored before duplicates were recognised)."""
    first: dict[str, int] = {}
    out: list[tuple[Any, list[int]]] = []
    for row in rows:
        key = row.candidate_key
        if key is not None and key in first:
            out[first[key]][1].append(row.number)
            continue
        if key is not None:
            first[key] = len(out)
        out.append((row, []))
    return out


def _target(target: dict | None) -> dict | None:
    """The stored target, without its whole spec (a summary names it by name, size and hash)."""
    if not target:
        return None
    return {k: v for k, v in target.items() if k != "spec"}


def describe_best(summary, objectives: list[str]) -> list[str]:
    lines = []
    for b in summary.best:
        values = ", ".join(f"{m}={v:.4g}" for m, v in zip(objectives, b["objectives"]))
        line = f"  #{b['number']:<4} {b['pattern_compact']:<24} {b['n_params']:>12,} params  {values}"
        target = b.get("target")
        if target:
            size = f"{target['n_params']:,} params" if target.get("n_params") is not None else "size unknown"
            line += f"  target {target['name']} ({size}, {target['canonical_hash'][:8]})"
        if b.get("duplicates"):
            line += "  duplicates: " + ", ".join(f"#{n}" for n in b["duplicates"])
        lines.append(line)
    return lines
