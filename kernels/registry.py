"""One registry of backends per op: availability, priority, per-call refusal, override, record of what ran.

An op's public function describes its call as keyword "call info" (device type, dtype, sizes, flags) and asks
`select(op, **call_info)` for a backend. The same question can be asked before any tensor exists
(`check(op, device="cuda", dtype=torch.bfloat16, head_dim=128, window=4096)`), so a builder can fail early.
Fused packages are imported only inside `Backend.available()`, never when this module is imported.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch

log = logging.getLogger("archsearch.kernels")

Refusal = str | None  # None: the backend accepts the call; a string: why it refuses


class BackendError(RuntimeError):
    """No backend can serve a call, or a forced backend is unknown, unavailable or refuses the call."""


@dataclass
class Backend:
    op: str
    name: str
    priority: int
    fn: Callable[..., Any]
    probe: Callable[[], tuple[bool, str]]
    accepts_fn: Callable[..., Refusal]
    auto: bool = True  # False: only runs when forced (test oracles)
    _availability: tuple[bool, str] | None = field(default=None, repr=False)

    def available(self) -> tuple[bool, str]:
        # Probes import packages and may touch CUDA: run each once per process.
        if self._availability is None:
            try:
                self._availability = self.probe()
            except Exception as e:  # a broken install must read as "unavailable", not crash the registry
                self._availability = (False, f"probe failed: {type(e).__name__}: {e}")
        return self._availability

    def accepts(self, **call_info: Any) -> Refusal:
        return self.accepts_fn(**call_info)


@dataclass
class Op:
    name: str
    doc: str
    default_call: Callable[[], dict[str, Any]]  # the call info `describe()` asks about
    backends: dict[str, Backend] = field(default_factory=dict)
    # ops a backend of this one fuses: their overrides are part of this op's choice (a fused backend refuses a call
    # whose component is forced elsewhere, so that forcing the conv onto its reference also reaches the fused layer)
    components: tuple[str, ...] = ()

    def ranked(self) -> list[Backend]:
        return sorted(self.backends.values(), key=lambda b: -b.priority)


_OPS: dict[str, Op] = {}
_forced: dict[str, str] = {}  # set by force_backend(); wins over the environment


class _Choice:
    """One op's recorded backend ("": none yet): a cell, never rebound. A compiled graph replays its write into the
    cell and dynamo guards only on the cell's identity; a write into a shared dict of names made it guard on every
    other op's name too, so a layer compiled before another op first ran recompiled at its second call."""

    __slots__ = ("name",)

    def __init__(self) -> None:
        self.name = ""


# Every registered op, recorded process-wide (reset_backends_used clears the names, never the cells).
_used: dict[str, _Choice] = {}
_notes: dict[str, str] = {}  # op -> how the last call that needed it was adapted (e.g. split into sub-batches)
# The innermost open recording()'s own choices, a cell per registered op like _used: only the names change, so the
# hot path is one more attribute write and a compiled graph's replayed write reaches whichever scope is open when it
# runs.
_scope: dict[str, _Choice] = {}
_scope_notes: dict[str, str] = {}
_scopes: list[BackendRecord] = []  # the open recording() blocks, outermost first
_logged: set[tuple] = set()
_choice_cache: dict[tuple, Backend] = {}
_lock = threading.Lock()


def _always() -> tuple[bool, str]:
    return True, "pure PyTorch"


def _accept_all(**_: Any) -> Refusal:
    return None


def register_op(name: str, doc: str, default_call: Callable[[], dict[str, Any]],
                components: tuple[str, ...] = ()) -> None:
    _OPS.setdefault(name, Op(name, doc, default_call, components=components))
    _used.setdefault(name, _Choice())
    _scope.setdefault(name, _Choice())


def register_backend(
    op: str,
    name: str,
    priority: int,
    fn: Callable[..., Any],
    probe: Callable[[], tuple[bool, str]] = _always,
    accepts: Callable[..., Refusal] = _accept_all,
    auto: bool = True,
) -> Backend:
    if op not in _OPS:
        raise KeyError(f"register_op({op!r}, ...) must come before its backends")
    backend = Backend(op, name, priority, fn, probe, accepts, auto)
    _OPS[op].backends[name] = backend
    _choice_cache.clear()
    return backend


def env_var(op: str) -> str:
    return f"ARCHSEARCH_BACKEND_{op.upper()}"


def ops() -> list[str]:
    return sorted(_OPS)


def get_backend(op: str, name: str) -> Backend:
    entry = _get_op(op)
    if name not in entry.backends:
        raise BackendError(f"op {op!r}: unknown backend {name!r}; known: {', '.join(sorted(entry.backends))}")
    return entry.backends[name]


def _get_op(op: str) -> Op:
    if op not in _OPS:
        raise BackendError(f"unknown op {op!r}; known ops: {', '.join(ops())}")
    return _OPS[op]


def forced_backend(op: str) -> tuple[str, str] | None:
    """(backend name, where the choice came from) or None."""
    if op in _forced:
        return _forced[op], "force_backend()"
    value = os.environ.get(env_var(op))
    if value:
        return value.strip(), f"${env_var(op)}"
    return None


_env_names: dict[str, str] = {}  # op -> its override variable's name, formatted once


def _env_raw(op: str) -> str | None:
    """The override variable's value, read on every call (tests and users set it at any time); part of the
    choice cache's key, so a change of it is a new choice."""
    name = _env_names.get(op)
    if name is None:
        name = _env_names[op] = env_var(op)
    return os.environ.get(name)


def _alternatives(entry: Op, call_info: dict[str, Any], skip: str) -> str:
    parts = []
    for b in entry.ranked():
        if b.name == skip:
            continue
        ok, why = b.available()
        refusal = b.accepts(**call_info) if ok else None
        state = "ok" if ok and refusal is None else (why if not ok else f"refuses: {refusal}")
        parts.append(f"{b.name} ({state})")
    return "; ".join(parts) or "none"


def _describe_call(call_info: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(call_info.items()))


def _choose(op: str, call_info: dict[str, Any]) -> tuple[Backend, list[str], str | None]:
    """(backend, reasons the better-ranked ones were skipped, where a forced choice came from)."""
    entry = _get_op(op)
    forced = forced_backend(op)
    if forced is not None:
        name, source = forced
        if name not in entry.backends:
            raise BackendError(
                f"op {op!r}: backend {name!r} forced by {source} does not exist; known: "
                f"{', '.join(sorted(entry.backends))}"
            )
        backend = entry.backends[name]
        ok, why = backend.available()
        if not ok:
            raise BackendError(
                f"op {op!r}: backend {name!r} forced by {source} is unavailable: {why}. "
                f"Alternatives: {_alternatives(entry, call_info, name)}"
            )
        refusal = backend.accepts(**call_info)
        if refusal is not None:
            raise BackendError(
                f"op {op!r}: backend {name!r} forced by {source} refuses this call ({_describe_call(call_info)}): "
                f"{refusal}. Alternatives: {_alternatives(entry, call_info, name)}"
            )
        return backend, [], source
    skipped = []
    for backend in entry.ranked():
        if not backend.auto:
            continue
        ok, why = backend.available()
        if not ok:
            skipped.append(f"{backend.name}: unavailable ({why})")
            continue
        refusal = backend.accepts(**call_info)
        if refusal is not None:
            skipped.append(f"{backend.name}: refuses ({refusal})")
            continue
        return backend, skipped, None
    raise BackendError(f"op {op!r}: no backend accepts this call ({_describe_call(call_info)}): {'; '.join(skipped)}")


def check(op: str, **call_info: Any) -> Backend:
    """The backend `op` would use for a call described by `call_info`; raises BackendError. Allocates nothing."""
    backend, _, _ = _choose(op, call_info)
    return backend


def select(op: str, **call_info: Any) -> Backend:
    """Like `check`, and logs the choice once (with the reasons better-ranked backends were skipped)."""
    return _select(op, tuple(sorted(call_info.items())), call_info)


def _select(op: str, call_items: tuple, call_info: dict[str, Any] | None = None) -> Backend:
    """`select` for call info given as items sorted by name. A repeated call is one dict lookup: its key holds
    what can change the answer (a forced backend, the raw override variable, the call items) and is built
    without formatting anything; registering or forcing a backend clears the cache."""
    try:
        key = _cache_key(op, call_items)
        backend = _choice_cache.get(key)
    except TypeError:  # an unhashable call-info value: no caching
        key, backend = None, None
    if backend is not None:
        return backend
    if call_info is None:
        call_info = dict(call_items)
    backend, skipped, source = _choose(op, call_info)
    log_key = (op, backend.name, source, tuple(skipped))
    with _lock:
        if key is not None:
            if len(_choice_cache) > 4096:  # call info holds lengths: decoding would grow it without bound
                _choice_cache.clear()
            _choice_cache[key] = backend
        if log_key not in _logged:
            _logged.add(log_key)
            how = f"forced by {source}" if source else "highest-priority accepting backend"
            extra = f"; skipped: {'; '.join(skipped)}" if skipped else ""
            log.info("op %s: using backend %s (%s)%s", op, backend.name, how, extra)
    return backend


def _cache_key(op: str, call_items: tuple) -> tuple:
    """What can change `op`'s choice: its own override (forced, environment), its components' overrides, the call."""
    key = (op, _forced.get(op), _env_raw(op), call_items)
    entry = _OPS.get(op)
    if entry is not None and entry.components:
        key += tuple((_forced.get(c), _env_raw(c)) for c in entry.components)
    return key


@torch.compiler.assume_constant_result
def _chosen_name(op: str, call_items: tuple) -> str:
    """The selected backend's name for hashable, plain call info. Under torch.compile, dynamo calls this once
    while tracing and bakes the answer into the graph instead of tracing the registry's caches and lock (which
    recompiled on every new cache entry and hit the recompile limit); a new call signature is a new shape or
    constant, which dynamo guards on anyway."""
    try:  # _select's cache hit: this runs on every op call
        backend = _choice_cache.get(_cache_key(op, call_items))
    except TypeError:
        backend = None
    return (backend or _select(op, call_items)).name


def backend_fn(op: str, call_items: tuple) -> Callable[..., Any]:
    """The callable of the backend selected for `call_items` (call info as items sorted by name, i.e.
    `tuple(sorted(call_info.items()))`), recorded in `backends_used()`. The ops' hot path: they build the items
    in sorted order and call the backend with plain positional arguments, so no dict is sorted or re-packed."""
    return _OPS[op].backends[chosen(op, call_items)].fn


def chosen(op: str, call_items: tuple) -> str:
    """The name of the backend selected for `call_items`, recorded as `backend_fn` records it: for a fused op that
    runs a component's kernels itself (the Mamba mixer picks its norm kernels this way)."""
    name = _chosen_name(op, call_items)
    _used[op].name = name
    _scope[op].name = name
    return name


def run(op: str, call_info: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
    """Select a backend for `call_info`, record it in `backends_used()`, and call it."""
    return backend_fn(op, tuple(sorted(call_info.items())))(*args, **kwargs)


def backends_used() -> dict[str, str]:
    """{op: backend} of the calls that actually ran since the last reset (the last backend per op)."""
    return {op: choice.name for op, choice in _used.items() if choice.name}


def reset_backends_used() -> None:
    """Clear the process-wide record (open `recording()` blocks keep theirs)."""
    with _lock:
        for choice in _used.values():
            choice.name = ""
        _notes.clear()
        if not _scopes:
            _set_scope({}, {})


def _set_scope(backends: dict[str, str], notes: dict[str, str]) -> None:
    for op, choice in _scope.items():
        choice.name = backends.get(op, "")
    _scope_notes.clear()
    _scope_notes.update(notes)


def _scope_backends() -> dict[str, str]:
    return {op: choice.name for op, choice in _scope.items() if choice.name}


class BackendRecord(Mapping):
    """{op: backend} of the kernel calls that ran inside one `recording()` block, inner blocks' included (the
    last backend per op); `.notes` is {op: note} likewise. Live while the block is open, frozen after it."""

    def __init__(self) -> None:
        self._backends: dict[str, str] = {}  # own choices: saved when an inner block opened, final after exit
        self._notes: dict[str, str] = {}
        self._open = True

    def _view(self, notes: bool) -> dict[str, str]:
        with _lock:
            if not self._open:
                return self._notes if notes else self._backends
            merged: dict[str, str] = {}
            inner = False
            for record in _scopes:
                inner = inner or record is self
                if inner and record is not _scopes[-1]:
                    merged.update(record._notes if notes else record._backends)
            merged.update(_scope_notes if notes else _scope_backends())
            return merged

    @property
    def notes(self) -> dict[str, str]:
        return dict(self._view(True))

    def __getitem__(self, op: str) -> str:
        return self._view(False)[op]

    def __iter__(self) -> Iterator[str]:
        return iter(dict(self._view(False)))

    def __len__(self) -> int:
        return len(self._view(False))

    def __repr__(self) -> str:
        return f"BackendRecord({self._view(False)!r}, notes={self._view(True)!r})"


@contextlib.contextmanager
def recording() -> Iterator[BackendRecord]:
    """`with recording() as used:` records the backends (and notes) chosen inside the block only, e.g. one
    training run's, unlike the process-wide `backends_used()`. Blocks nest: an inner block's choices also reach
    the outer ones. One record per process: blocks opened by concurrent threads share what runs meanwhile."""
    record = BackendRecord()
    with _lock:
        if _scopes:  # the enclosing block's choices so far move aside; _scope starts empty for this one
            _scopes[-1]._backends = _scope_backends()
            _scopes[-1]._notes = dict(_scope_notes)
        _set_scope({}, {})
        _scopes.append(record)
    try:
        yield record
    finally:
        final_backends, final_notes = dict(record._view(False)), dict(record._view(True))
        with _lock:
            index = next(i for i, r in enumerate(_scopes) if r is record)
            if index == len(_scopes) - 1:
                _scopes.pop()
                outer_backends = _scopes[-1]._backends if _scopes else {}
                outer_notes = _scopes[-1]._notes if _scopes else {}
                _set_scope({**outer_backends, **final_backends}, {**outer_notes, **final_notes})
            else:  # closed out of order (threads): its own choices go to the block below it
                del _scopes[index]
                if index > 0:
                    _scopes[index - 1]._backends.update(record._backends)
                    _scopes[index - 1]._notes.update(record._notes)
            record._backends, record._notes, record._open = final_backends, final_notes, False


def note(op: str, message: str) -> None:
    """Record (and log once) how a backend adapted a call, e.g. running it in sub-batches."""
    _scope_notes[op] = message
    if _notes.get(op) != message:
        _notes[op] = message
        key = ("note", op, message)
        if key not in _logged and not torch.compiler.is_compiling():
            # inside a compiled region a logger call is a graph break (one per windowed or global attention layer
            # of the 100M trial, H100 2026-12-07): there the note is recorded above but not logged
            _logged.add(key)
            log.info("op %s: %s", op, message)


def notes() -> dict[str, str]:
    """{op: note} since the last reset_backends_used(), for checks and trainings to record beside backends."""
    return dict(_notes)


@contextlib.contextmanager
def force_backend(op: str, name: str) -> Iterator[None]:
    """Force `op` onto backend `name` inside the block (wins over ARCHSEARCH_BACKEND_<OP>)."""
    get_backend(op, name)  # unknown names fail here, at the `with`
    previous = _forced.get(op)
    _forced[op] = name
    _choice_cache.clear()
    try:
        yield
    finally:
        if previous is None:
            _forced.pop(op, None)
        else:
            _forced[op] = previous
        _choice_cache.clear()


def describe() -> dict[str, dict[str, Any]]:
    """For each op: its backends (priority, availability and why) and the one a default call would use."""
    report: dict[str, dict[str, Any]] = {}
    for name in ops():
        entry = _OPS[name]
        call_info = entry.default_call()
        rows = []
        for b in entry.ranked():
            ok, why = b.available()
            refusal = b.accepts(**call_info) if ok else None
            rows.append(
                {
                    "name": b.name,
                    "priority": b.priority,
                    "available": ok,
                    "reason": why,
                    "auto": b.auto,
                    "refusal": refusal,
                }
            )
        try:
            chosen, error = check(name, **call_info).name, None
        except BackendError as e:
            chosen, error = None, str(e)
        report[name] = {
            "doc": entry.doc,
            "default_call": {k: str(v) for k, v in call_info.items()},
            "chosen": chosen,
            "error": error,
            "forced": forced_backend(name),
            "backends": rows,
        }
    return report


def format_report() -> str:
    """`describe()` as a printable table."""
    lines = []
    for op, info in describe().items():
        call = ", ".join(f"{k}={v}" for k, v in info["default_call"].items())
        chosen = info["chosen"] or f"NONE ({info['error']})"
        forced = f"  [forced by {info['forced'][1]}]" if info["forced"] else ""
        lines.append(f"{op}: {info['doc']}")
        lines.append(f"  default call ({call}) -> {chosen}{forced}")
        width = max(len(r["name"]) for r in info["backends"])
        for r in info["backends"]:
            mark = "*" if r["name"] == info["chosen"] else " "
            status = "available" if r["available"] else "unavailable"
            note = r["reason"]
            if r["available"] and r["refusal"]:
                note += f"; refuses default call: {r['refusal']}"
            if not r["auto"]:
                note += "; only when forced"
            lines.append(f"  {mark} {r['name']:<{width}}  prio {r['priority']:>3}  {status:<11}  {note}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
