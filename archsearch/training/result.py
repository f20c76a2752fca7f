"""What a run returns and records (result.json in its folder)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrainResult:
    status: str  # "completed" | "diverged" | "stopped" (a callback raised) | "paused" (the record a Pauses decides on)
    reason: str | None
    metrics: dict[str, float]
    curve: list[dict[str, float]]
    steps: int  # trained (a stopped run: fewer than planned)
    tokens: int  # trained
    tokens_per_s: float | None
    mfu: float | None
    peak_flops: float | None
    peak_flops_source: str | None
    peak_memory_bytes: int | None
    peak_memory_kind: str
    backends: dict[str, str]
    precision: str
    precision_reason: str
    fp8_layers: list[str]
    versions: dict[str, str | None]
    wall_time_s: float
    n_params: int
    seq_len: int
    device: str
    task: dict[str, Any]
    recipe: dict[str, Any]
    out_dir: str | None
    extra: dict[str, Any] = field(default_factory=dict)
    flops: float | None = None  # training FLOPs trained (steps x tokens per step x FLOPs per token at seq_len)
    budget: dict[str, Any] = field(default_factory=dict)  # archsearch.training.budget.Budget.to_dict(): the plan

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainResult":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class TrainingStopped(Exception):
    """Raise from a callback to stop a run early (studies prune with it). `train` records the run, writes a
    resumable checkpoint (unless `save_checkpoint` is False) and raises it again carrying the run's record as
    `result` (None until then): the one exception that carries a record. Anything else a callback raises also stops
    the run, but propagates as it was raised, the record only in the run folder's result.json."""

    # False for a final stop whose folder nobody keeps (successive halving's rung verdict under keep_checkpoints:
    # none): writing ~1.2 GB for a 100M proxy that nothing will resume or read is time lost
    save_checkpoint = True

    def __init__(self, message: str = "stopped by callback", result: TrainResult | None = None):
        super().__init__(message)
        self.result = result

    def with_result(self, result: TrainResult) -> "TrainingStopped":
        self.result = result
        return self
