"""Dotted paths into a spec document (`d_model`, `blocks.M.d_state`, `norm.eps`): checked against the spec schema,
read and written on the plain dict form of a spec."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from ..spec import ModelSpec
from ..spec.kinds import KINDS
from ..spec.model import InitSpec, NormSpec

_NESTED: dict[str, type[BaseModel]] = {"norm": NormSpec, "init": InitSpec}
# Fields a space may not set directly: the pattern has its own generator, and a block's kind is its identity.
_NOT_SEARCHABLE = {"pattern": "use the `pattern:` generator of the space instead",
                   "blocks": "name one field of one block, e.g. blocks.M.d_state",
                   "name": "the study names each trial's spec itself"}


def check_path(path: str, base: dict[str, Any]) -> str | None:
    """Why `path` cannot be searched over `base` (a spec as a dict), or None when it can."""
    parts = path.split(".")
    head = parts[0]
    if head in _NOT_SEARCHABLE and len(parts) == 1:
        return f"{head!r} cannot be searched directly: {_NOT_SEARCHABLE[head]}"
    if head == "blocks":
        if len(parts) != 3:
            return "a block path is blocks.SYMBOL.FIELD, e.g. blocks.M.d_state"
        symbol, field = parts[1], parts[2]
        blocks = base.get("blocks", {})
        if symbol not in blocks:
            return f"the base spec defines no block {symbol!r}; defined: {', '.join(map(repr, blocks)) or '(none)'}"
        kind = blocks[symbol].get("kind")
        fields = sorted(f for f in KINDS[kind].model_fields if f != "kind")
        if field not in fields:
            return f"block {symbol!r} ({kind}) has no field {field!r}; fields: {', '.join(fields)}"
        return None
    if head in _NESTED:
        fields = sorted(_NESTED[head].model_fields)
        if len(parts) != 2 or parts[1] not in fields:
            return f"{head} has fields {', '.join(fields)}; write {head}.FIELD"
        return None
    fields = sorted(f for f in ModelSpec.model_fields if f not in _NOT_SEARCHABLE)
    if len(parts) != 1 or head not in ModelSpec.model_fields:
        return f"no spec field {path!r}; searchable fields: {', '.join(fields)}, norm.*, init.*, blocks.SYMBOL.FIELD"
    return None


def set_path(document: dict[str, Any], path: str, value: Any) -> None:
    """Set `path` in a spec dict in place (the dicts along the path must be the caller's own copies)."""
    parts = path.split(".")
    node = document
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def get_path(document: dict[str, Any], path: str, default: Any = None) -> Any:
    node: Any = document
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def block_symbol(path: str) -> str | None:
    """The block symbol a path points into (`blocks.M.d_state` -> `M`), else None."""
    parts = path.split(".")
    return parts[1] if parts[0] == "blocks" and len(parts) == 3 else None


def copy_for_write(document: dict[str, Any], paths: list[str]) -> dict[str, Any]:
    """A copy of `document` in which the dicts along `paths` are new (the rest is shared, which is much faster
    than a deep copy and safe because we only ever write along these paths)."""
    out = dict(document)
    for path in paths:
        parts = path.split(".")
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            node[part] = dict(child) if isinstance(child, dict) else {}
            node = node[part]
    return out
