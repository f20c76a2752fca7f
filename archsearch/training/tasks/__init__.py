"""Training tasks: synthetic probes generated on the fly (MQAR and the MAD set) and language modelling on a
`datasets` source; seq2seq pairs (gettext catalogs, toys) scored on generated text. `TaskSpec` names one with its
options; `make_task` builds it (loading data, checking sizes)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from archsearch.errors import UserError

from .base import IGNORE, Batch, Task, TaskOptions, parse_options
from .compression import Compression
from .fuzzy_recall import FuzzyRecall
from .in_context_recall import InContextRecall
from .memorization import Memorization
from .mqar import Mqar
from .noisy_recall import NoisyRecall
from .selective_copy import SelectiveCopy
from .seq2seq import Seq2Seq
from .text import Text

TASKS: dict[str, type[Task]] = {t.name: t for t in (Mqar, SelectiveCopy, InContextRecall, NoisyRecall, FuzzyRecall,
                                                    Compression, Memorization, Text, Seq2Seq)}


def task_class(name: str) -> type[Task]:
    try:
        return TASKS[name]
    except KeyError:
        raise UserError(f"unknown task {name!r}; tasks: {', '.join(TASKS)}") from None


class TaskSpec(BaseModel):
    """A task by name with its own options, e.g. TaskSpec(name="mqar", options={"n_pairs": 16}). Unknown names
    and options raise archsearch.errors.UserError on construction, naming what is allowed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> "TaskSpec":
        parse_options(self.name, task_class(self.name).Options, self.options)
        return self

    @classmethod
    def coerce(cls, task: "TaskSpec | str") -> "TaskSpec":
        return cls(name=task) if isinstance(task, str) else task

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def task_seq_len(spec: TaskSpec, seq_len: int) -> int:
    """The sequence length the task trains at: its own seq_len option, else the recipe's `seq_len`."""
    options = parse_options(spec.name, task_class(spec.name).Options, spec.options)
    return options.seq_len if options.seq_len is not None else seq_len


def make_task(spec: TaskSpec, seq_len: int, seed: int) -> Task:
    """The task, ready to draw batches; `seq_len` is the recipe's unless the task's own seq_len option is set."""
    cls = task_class(spec.name)
    options = parse_options(spec.name, cls.Options, spec.options)
    length = task_seq_len(spec, seq_len)
    if length < 2:
        raise UserError(f"task {spec.name!r}: seq_len must be >= 2, got {length}")
    return cls(options, length, seed)


__all__ = ["IGNORE", "TASKS", "Batch", "Task", "TaskOptions", "TaskSpec", "make_task", "task_class", "task_seq_len"]
