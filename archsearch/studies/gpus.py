"""`study run --workers auto`: one worker per group of `gpus_per_trial` visible GPUs, each worker seeing only its
own GPUs through CUDA_VISIBLE_DEVICES; without GPUs, one CPU worker. Pure functions of the visible-device list, so
the plan is testable without GPUs."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UserError


@dataclass(frozen=True)
class WorkerPlan:
    groups: list[list[str]]  # per worker, the CUDA_VISIBLE_DEVICES entries it gets; [[]] is one CPU worker
    note: str  # what was decided, printed for the user

    @property
    def workers(self) -> int:
        return len(self.groups)

    @property
    def on_cpu(self) -> bool:
        return self.groups == [[]]

    def env(self, index: int, base: dict[str, str]) -> dict[str, str]:
        """The environment of worker `index`: its own GPUs (or none at all on the CPU plan)."""
        env = dict(base)
        if not self.on_cpu:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(self.groups[index])
        return env


def visible_devices(cuda_visible: str | None, device_count: int) -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES entries (indices or GPU-UUIDs): the variable's list
    when it is set ("" or "-1" hide every GPU), else 0 .. device_count-1."""
    if cuda_visible is None:
        return [str(i) for i in range(device_count)]
    entries = [e.strip() for e in cuda_visible.split(",")]
    visible = []
    for entry in entries:
        if not entry or entry.startswith("-"):
            break  # CUDA stops at the first invalid entry
        visible.append(entry)
    return visible[:device_count]  # an entry past the real GPUs is not a GPU


def plan_workers(devices: list[str], gpus_per_trial: int) -> WorkerPlan:
    if gpus_per_trial < 1:
        raise UserError(f"gpus_per_trial {gpus_per_trial}: must be >= 1")
    if not devices:
        extra = f"; each trial runs {gpus_per_trial} gloo processes on CPU" if gpus_per_trial > 1 else ""
        return WorkerPlan([[]], f"--workers auto: no GPU visible, so one CPU worker{extra}")
    n = len(devices) // gpus_per_trial
    if n == 0:
        raise UserError(f"--workers auto: gpus_per_trial {gpus_per_trial} needs {gpus_per_trial} GPUs per trial but "
                        f"{len(devices)} visible ({','.join(devices)}); lower gpus_per_trial or make more visible")
    groups = [devices[i * gpus_per_trial:(i + 1) * gpus_per_trial] for i in range(n)]
    idle = devices[n * gpus_per_trial:]
    note = (f"--workers auto: {n} worker(s), {gpus_per_trial} GPU(s) each: "
            + "; ".join(f"worker {i} -> CUDA_VISIBLE_DEVICES={','.join(g)}" for i, g in enumerate(groups)))
    if idle:
        note += f" ({','.join(idle)} idle: fewer than gpus_per_trial left)"
    return WorkerPlan(groups, note)


def parse_workers(value: str) -> int | None:
    """--workers: a count >= 1, or "auto" (None)."""
    if value.strip().lower() == "auto":
        return None
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise UserError(f"--workers {value!r}: expected a number of worker processes >= 1, or auto (one per GPU)")
    return count


def auto_plan(gpus_per_trial: int) -> WorkerPlan:
    """The plan for this machine: CUDA_VISIBLE_DEVICES and torch's device count."""
    import os

    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return plan_workers(visible_devices(os.environ.get("CUDA_VISIBLE_DEVICES"), count), gpus_per_trial)
