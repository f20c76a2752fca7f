"""What every task provides: batches of (input ids, targets with -100 where nothing is scored), deterministic from
(seed, step, micro-batch), a fixed validation set, and the vocabulary it needs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any, ClassVar, ContextManager

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from archsearch.errors import UserError

IGNORE = -100  # target value of positions that are not scored (torch's cross_entropy ignore_index)


@dataclass
class Batch:
    input_ids_BT: torch.Tensor  # int64 (B, T)
    targets_BT: torch.Tensor  # int64 (B, T); IGNORE where the loss is masked

    def to(self, device: torch.device) -> "Batch":
        if torch.device(device).type != "cuda":
            return Batch(self.input_ids_BT.to(device), self.targets_BT.to(device))
        # from pinned memory the copy is queued behind the running step instead of making the host wait for it
        return Batch(*(t.pin_memory().to(device, non_blocking=True) if t.device.type == "cpu" else t.to(device)
                       for t in (self.input_ids_BT, self.targets_BT)))


class TaskOptions(BaseModel):
    """Base of every task's options: strict about names, lax about "8" vs 8 (CLI values arrive as strings)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    seq_len: int | None = Field(None, description="tokens per sequence of this task (None: the recipe's seq_len)")


def parse_options(task: str, model: type[TaskOptions], options: dict[str, Any]) -> TaskOptions:
    allowed = ", ".join(model.model_fields)
    unknown = [k for k in options if k not in model.model_fields]
    if unknown:
        raise UserError(f"task {task!r}: unknown option {unknown[0]!r}; allowed options: {allowed}")
    try:
        return model.model_validate(options)
    except ValidationError as err:
        problems = "; ".join(_describe(e) for e in err.errors())
        raise UserError(f"task {task!r}: {problems}; allowed options: {allowed}") from None


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(map(str, error["loc"])) or "(options)"
    got = error.get("input")
    return f"option {where}: {error['msg']}" + ("" if isinstance(got, dict) else f" (got {got!r})")


def generator(seed: int, *parts: Any) -> torch.Generator:
    """A CPU generator seeded from (seed, *parts) by hashing, so any batch can be regenerated on its own."""
    digest = hashlib.blake2b(repr((seed, *parts)).encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") & ((1 << 63) - 1))


@dataclass(frozen=True)
class ProbeVocabulary:
    """The ids an in-context recall probe (archsearch.training.recall) draws from: keys, values, the id between
    its queries, and the id a probe starts with (a document boundary; None: none). Disjoint, and all ids the task's
    own data shows a model."""
    keys: tuple[int, ...]
    values: tuple[int, ...]
    filler: int
    separator: int | None = None


class Task:
    """Base of all tasks. Subclasses set `name`, `Options`, `metric_names`, and implement `vocab_size`,
    `train_batch` and `val_batch`; they may override `summarize`."""

    name: ClassVar[str]
    Options: ClassVar[type[TaskOptions]] = TaskOptions
    description: ClassVar[str] = ""
    text: ClassVar[bool] = False  # language modelling (perplexity, bits per byte) rather than accuracy

    def __init__(self, options: TaskOptions, seq_len: int, seed: int):
        self.options = options
        self.seq_len = seq_len
        self.seed = seed

    @property
    def vocab_size(self) -> int:  # the model's vocabulary must hold at least this many ids
        raise NotImplementedError

    def train_batch(self, index: int, batch_size: int) -> Batch:
        """Micro-batch number `index` of the run (step * grad_accum + micro): the same index, the same batch."""
        raise NotImplementedError

    def val_batch(self, index: int, batch_size: int) -> Batch:
        raise NotImplementedError

    def set_horizon(self, micro_batches: int) -> None:
        """The run's length in micro-batches, told before the first batch (tasks whose examples follow a schedule
        over training read it; others ignore it)."""

    def generation_metrics(self, model, device: torch.device,
                           autocast: Callable[[], ContextManager]) -> dict[str, float]:
        """Metrics of text the model generates (seq2seq tasks: chrF++, exact match), added to each evaluation."""
        return {}

    def summarize(self, loss: float, accuracy: float) -> dict[str, float]:
        """Validation metrics from the mean loss and accuracy over target positions."""
        return {"val_loss": loss, "accuracy": accuracy}

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "options": self.options.model_dump(mode="json"), "seq_len": self.seq_len,
                "vocab_size": self.vocab_size}

    def vocab_advice(self, vocab_size: int) -> str:
        """How to make this task fit a model of `vocab_size` ids, for the error when it does not."""
        return "or shrink the task's vocab"

    def probe_vocabulary(self) -> ProbeVocabulary | None:
        """The ids a recall probe should use, where its default layout (keys from the lower half of the vocabulary,
        values from the upper half, 0 between queries: the mqar task's own) would show ids this task never does;
        None keeps the layout."""
        return None

    def compatible_with_teacher(self, teacher_task: dict[str, Any]) -> str | None:
        """Why a teacher trained on `teacher_task` (its task.json) cannot supervise this task, or None."""
        if teacher_task.get("name") != self.name:
            return (f"the teacher was trained on task {teacher_task.get('name')!r}, the student on {self.name!r}: "
                    "their token ids mean different things")
        return None


class SyntheticTask(Task):
    """Sequences drawn on the fly by `sample(gen, batch_size)`; validation uses generators of its own stream."""

    def sample(self, gen: torch.Generator, batch_size: int) -> Batch:
        raise NotImplementedError

    def train_batch(self, index: int, batch_size: int) -> Batch:
        return self.sample(generator(self.seed, self.name, "train", index), batch_size)

    def val_batch(self, index: int, batch_size: int) -> Batch:
        return self.sample(generator(self.seed, self.name, "val", index), batch_size)


def distinct(gen: torch.Generator, rows: int, population: int, k: int, offset: int = 0) -> torch.Tensor:
    """(rows, k) draws without replacement from offset .. offset+population-1, independently per row."""
    return torch.rand(rows, population, generator=gen).argsort(dim=1)[:, :k] + offset


def need(task: str, condition: bool, message: str) -> None:
    if not condition:
        raise UserError(f"task {task!r}: {message}")
