"""Plain records the pages and the JSON endpoints show: what the dashboard knows of a study and its trials."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

# Trial statuses grouped by how a plot treats them (archsearch.storage.models documents each status).
FAILED_STATUSES = ("failed", "diverged", "invalid")
# Extra axes the Pareto plot offers besides the study's objectives, with the direction that is better.
# Objectives known before training (archsearch.studies.objectives.ANALYTIC; a test keeps the two equal): an
# untrained trial's value of any other objective is a placeholder (the loss of a uniform guess), never shown.
ANALYTIC_METRICS = ("n_params", "memory_bytes", "decode_tokens_per_s")
UNTRAINED_STATUSES = ("infeasible", "invalid")
EXTRA_AXES = {"n_params": ("parameters", "minimize"), "memory": ("memory", "minimize"),
              "tokens_per_s": ("throughput (tokens/s)", "maximize")}


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: str  # "minimize" | "maximize"


@dataclass(frozen=True)
class Best:
    objective: Objective
    value: float
    trial_id: int
    number: int


@dataclass(frozen=True)
class MemoryContext:
    """Where the study's memory column comes from: the first budget constraint's device and context."""
    constraint: str
    device: str | None
    context: int | None
    batch: int | None

    @property
    def label(self) -> str:
        parts = [f"ctx {self.context}" if self.context else None, f"batch {self.batch}" if self.batch else None,
                 self.device]
        return "memory @ " + ", ".join(p for p in parts if p)


@dataclass
class TrialRow:
    id: int
    number: int
    status: str
    fits: bool | None
    values: list[float | None]
    params: dict[str, Any]
    n_params: int | None
    memory_bytes: float | None
    tokens_per_s: float | None
    precision: str | None
    backends: dict[str, Any]
    error: str | None
    wall_time_s: float | None
    pattern: str | None = None  # compact, e.g. "(M-*-)x4 M-"
    trained: bool = True  # False for a trial never trained: its non-analytic values are None, not placeholders
    rung: int | None = None  # successive halving: the last rung reached (index, 0 first); None without halving

    @property
    def verdict(self) -> str:
        return {True: "feasible", False: "infeasible", None: "unknown"}[self.fits]

    @property
    def backends_text(self) -> str:
        return ", ".join(f"{op}={backend}" for op, backend in sorted(self.backends.items()))


@dataclass(frozen=True)
class Comparison:
    """One objective of the study that its reference has a value for: the reference's value beside the best
    trial's (None while no trial has completed)."""
    objective: Objective
    reference: float
    best: Best | None

    @property
    def difference(self) -> float | None:
        return None if self.best is None else self.best.value - self.reference

    @property
    def verdict(self) -> str | None:
        """"better", "worse" or "equal": the best trial against the reference, in the objective's direction."""
        if self.difference is None:
            return None
        if self.difference == 0:
            return "equal"
        return "better" if (self.difference < 0) == (self.objective.direction == "minimize") else "worse"


@dataclass(frozen=True)
class Reference:
    """What a study's trials are compared against: its study file's `reference:` (a compression study's parent,
    a published model), as stored with the study."""
    name: str
    source: str | None
    n_params: int | None
    pattern: str | None  # compact
    strip: list[LayerCell]  # one cell per layer; empty when the reference names no layers
    metrics: dict[str, float]
    comparisons: list[Comparison]  # the study's objectives the reference has a value for, in objective order


@dataclass
class StudyView:
    id: int
    name: str
    status: str  # running | finished | incomplete
    created_at: dt.datetime
    n_trials_target: int | None
    objectives: list[Objective]
    counts: dict[str, int]  # trial status -> count
    best: list[Best | None]
    memory: MemoryContext | None
    param_names: list[str] = field(default_factory=list)
    halving: "Halving | None" = None  # None: the study did not use successive halving
    fidelity: list[Any] = field(default_factory=list)  # archsearch.storage.halving_reads.Fidelity, latest first
    reference: Reference | None = None  # the study file's `reference:`, when it has one

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class LayerCell:
    symbol: str
    kind: str  # mamba2 | attention | mlp | unknown
    local: bool = False  # attention over a sliding window (else global)

    @property
    def look(self) -> str:
        """The cell's colour class: local and global attention differ."""
        if self.kind == "attention":
            return "attention-local" if self.local else "attention-global"
        return self.kind


@dataclass
class TrialDetail:
    row: TrialRow
    spec: dict[str, Any] | None
    pattern: list[LayerCell]
    curve: list[dict[str, Any]]
    memory_breakdown: dict[str, float]
    metrics: dict[str, Any]
    versions: dict[str, Any]
    traceback: str | None
    target: dict[str, Any] | None = None  # the spec the constraints judged, when the study names a target
    duplicate_of: int | None = None  # the trial whose stored result this one reuses
    base: dict[str, Any] | None = None  # the study's base spec, for the single-trial page's diff
    memory_budget: float | None = None  # bytes the memory constraint allows
    partial: "Partial | None" = None  # a running trial's curve so far, from Optuna's intermediate values
    rungs: list[Any] = field(default_factory=list)  # archsearch.storage.halving_reads.RungResult, the first first


@dataclass(frozen=True)
class Partial:
    """A running trial's progress: the curve it has reported to Optuna so far (archsearch.studies.optuna_attrs)."""
    metric: str
    points: list[tuple[int, float]]  # (step, value), by step

    @property
    def latest(self) -> tuple[int, float]:
        return self.points[-1]


@dataclass(frozen=True)
class Halving:
    """A study's successive-halving rungs: each rung's share of the budget and how the trials fared there."""
    fractions: list[float]  # the study file's rungs; fall back to the recorded ones
    counts: list[Any]  # archsearch.storage.halving_reads.RungCount, the first rung first

    @property
    def n_rungs(self) -> int:
        return max(len(self.fractions), len(self.counts))

    def fraction_text(self, rung: int) -> str:
        return f" ({self.fractions[rung]:g} of the budget)" if rung < len(self.fractions) else ""

    def label(self, status: str, rung: int | None) -> str | None:
        """Where a trial got to, rungs counted from 1 as people count them: "stopped at rung 1 of 3 (0.25 of the
        budget)", "promoted to rung 2 of 3", "completed rung 3 of 3"; None for a trial that reached no rung."""
        if rung is None:
            return None
        n = self.n_rungs
        if status == "stopped":
            return f"stopped at rung {rung + 1} of {n}{self.fraction_text(rung)}"
        if status == "running" and rung + 1 < n:  # its last decision promoted it: it trains toward the next rung
            return f"promoted to rung {rung + 2} of {n}{self.fraction_text(rung + 1)}"
        if status == "completed":
            return f"completed rung {rung + 1} of {n}{self.fraction_text(rung)}"
        return f"reached rung {rung + 1} of {n}{self.fraction_text(rung)}"
