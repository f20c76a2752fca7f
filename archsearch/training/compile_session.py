"""torch.compile across the runs of one process (a study worker trains trial after trial): a trial whose model
has the shapes of an earlier one reuses its compiled code, never compiling twice.

Dynamo keeps compiled code per Python code object (our model's `forward`), guarded on the module's structure and
tensor shapes, so a new model instance of the same spec and batch passes the guards of the old entry. Two things
would spoil that: (1) automatic dynamic shapes: a second trial with other sizes would make dynamo recompile the
model with symbolic sizes (slower kernels, and a different program than a fresh process runs), so we compile with
dynamic=False; (2) the recompile limit (8 entries per code object): past it dynamo runs the model eagerly, silently.
Each distinct compile signature takes two entries (train and eval mode), so once the process holds as many
signatures as fit, a new one resets dynamo first; the on-disk caches (archsearch.studies.compile_cache) make the
next compile of a reset signature cheap. A signature already seen never resets anything.
"""

from __future__ import annotations

import json
from typing import Any

import torch
from torch import nn

ENTRIES_PER_SIGNATURE = 2  # the model's forward in train mode and in eval mode
BACKEND: Any = "inductor"  # torch.compile's backend (tests count compiles with a counting backend)

_seen: dict[str, None] = {}  # signatures compiled since the last reset, oldest first


def recompile_limit() -> int:
    config = torch._dynamo.config
    return int(getattr(config, "recompile_limit", getattr(config, "cache_size_limit", 8)))


def capacity() -> int:
    """Signatures one process keeps compiled at once."""
    return max(1, recompile_limit() // ENTRIES_PER_SIGNATURE)


# Spec fields that only set initial values, never the program: specs differing only there share compiled code.
INIT_ONLY = {"name", "description", "init"}
INIT_ONLY_BLOCK = {"dt_min", "dt_max", "dt_init_floor", "A_init_range"}


def program_of(spec) -> dict[str, Any]:
    """The spec without its initial-value fields: what decides the compiled forward."""
    doc = {k: v for k, v in spec.to_dict().items() if k not in INIT_ONLY}
    doc["pattern"] = spec.pattern_string  # one layer list, however the pattern was written
    doc["blocks"] = {symbol: {k: v for k, v in block.items() if k not in INIT_ONLY_BLOCK}
                     for symbol, block in doc.get("blocks", {}).items()}
    return doc


def signature(**parts: Any) -> str:
    """A stable key for what decides the compiled program (spec hash, batch shape, precision, ...)."""
    return json.dumps(parts, sort_keys=True, default=str)


def compile_model(module: nn.Module, key: str) -> tuple[nn.Module, dict[str, Any]]:
    """torch.compile(module) without dynamic shapes; resets dynamo only when `key` is new and no room is left.
    Returns the compiled module and what happened (recorded in the run's result)."""
    reused = key in _seen
    reset = False
    if not reused and len(_seen) >= capacity():
        torch._dynamo.reset()
        _seen.clear()
        reset = True
    _seen[key] = None
    info = {"seen_before": reused, "dynamo_reset": reset, "signatures_held": len(_seen), "capacity": capacity()}
    return torch.compile(module, dynamic=False, backend=BACKEND), info


def forget() -> None:
    """Reset dynamo and the signature record (tests)."""
    torch._dynamo.reset()
    _seen.clear()
