"""The difference between two or more stored specs, as rows of dotted paths and one value per spec."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_MISSING = object()


@dataclass(frozen=True)
class DiffRow:
    path: str
    values: tuple[Any, ...]  # one per spec; `None` where the spec lacks the path
    differs: bool


def flatten(spec: Any, prefix: str = "") -> dict[str, Any]:
    """`{"blocks": {"M": {"d_state": 16}}}` -> `{"blocks.M.d_state": 16}`; lists are kept whole as values."""
    if not isinstance(spec, dict):
        return {prefix: spec}
    flat: dict[str, Any] = {}
    for key, value in spec.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            flat.update(flatten(value, path))
        else:
            flat[path] = value
    return flat


def spec_diff(specs: list[dict[str, Any]]) -> list[DiffRow]:
    """Every path of any spec, in first-seen order, marked `differs` when the specs disagree on it."""
    flats = [flatten(spec) for spec in specs]
    paths: dict[str, None] = {}
    for flat in flats:
        paths.update(dict.fromkeys(flat))
    rows = []
    for path in paths:
        raw = [flat.get(path, _MISSING) for flat in flats]
        differs = any(value != raw[0] for value in raw[1:])
        rows.append(DiffRow(path, tuple(None if v is _MISSING else v for v in raw), differs))
    return rows
