"""The distillation teacher: a finished run folder (spec.yaml + model.safetensors [+ task.json]), rebuilt frozen on
the student's device, or that folder's model already in the caller's memory (`held_teacher`: a compression search
distils every candidate from the parent it holds). Vocabularies and tokenizers must match, or its logits would
name different tokens."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from archsearch.errors import UserError
from archsearch.spec import ModelSpec, loads_spec

from .checkpoint import load_weights
from .recipe import Distillation
from .tasks import Task


@dataclass
class Teacher:
    model: nn.Module
    spec: ModelSpec
    temperature: float
    alpha: float
    path: str


def check_teacher(config: Distillation, student: ModelSpec, task: Task) -> ModelSpec:
    """The teacher's spec, after every check that needs no weights (clear errors before anything is built)."""
    folder = Path(config.teacher).expanduser()
    for name in ("spec.yaml", "model.safetensors"):
        if not (folder / name).is_file():
            raise UserError(f"distill.teacher: {str(folder)!r} is not a run folder with {name} (train the teacher "
                            "with `archsearch train ... -o DIR` and pass that DIR)")
    spec = loads_spec((folder / "spec.yaml").read_text(encoding="utf-8"), str(folder / "spec.yaml"))
    if spec.vocab_size != student.vocab_size:
        raise UserError(f"distill.teacher: the teacher's vocab_size {spec.vocab_size} differs from the student's "
                        f"{student.vocab_size}; distillation needs the same vocabulary")
    if task.seq_len > spec.max_context:
        raise UserError(f"distill.teacher: seq_len {task.seq_len} is above the teacher's max_context "
                        f"{spec.max_context}")
    task_file = folder / "task.json"
    if task_file.is_file():
        why = task.compatible_with_teacher(json.loads(task_file.read_text(encoding="utf-8")))
        if why is not None:
            raise UserError(f"distill.teacher: {why}")
    return spec


def load_teacher(config: Distillation, spec: ModelSpec, device: torch.device) -> Teacher:
    from archsearch.builder import build

    model = build(spec, device, torch.float32, seed=0)
    load_weights(Path(config.teacher).expanduser(), model, device)
    model.eval().requires_grad_(False)
    return Teacher(model, spec, config.temperature, config.alpha, str(config.teacher))


def _same_device(a: torch.device, b: torch.device) -> bool:
    """torch.device("cuda") names the current CUDA device, so it equals "cuda:N" for that N."""
    def index(d: torch.device) -> int:
        return d.index if d.index is not None else (torch.cuda.current_device() if d.type == "cuda" else 0)
    return a.type == b.type and index(a) == index(b)


def held_teacher(config: Distillation, spec: ModelSpec, model: nn.Module, device: torch.device) -> Teacher:
    """The teacher `config.teacher` names, from `model`: that run folder's model as the caller loaded it (the same
    spec, its weights; not read again here). It is used where it is, frozen in place (eval mode, no gradients)."""
    held = getattr(model, "spec", None)
    if not isinstance(held, ModelSpec) or held.to_dict() != spec.to_dict():
        raise UserError(f"distill.teacher: the teacher model given is not the model of {config.teacher!r} (another "
                        "spec)")
    where = next(model.parameters()).device
    if not _same_device(where, device):
        raise UserError(f"distill.teacher: the teacher model given is on {where}, the run trains on {device}; load "
                        "it on the training device")
    model.eval().requires_grad_(False)
    return Teacher(model, spec, config.temperature, config.alpha, str(config.teacher))
