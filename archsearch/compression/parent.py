"""The parent: a finished run folder (spec.yaml, recipe.json, task.json, model.safetensors) rebuilt with its
weights, in eval mode."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from archsearch.errors import UserError
from archsearch.spec import ModelSpec, loads_spec


@dataclass
class Parent:
    folder: Path
    spec: ModelSpec
    recipe: dict
    task: dict
    model: nn.Module

    @property
    def seed(self) -> int:
        return int(self.recipe.get("seed", 0))

    @property
    def model_device(self) -> torch.device:
        return next(self.model.parameters()).device


def read_parent(run: Path) -> tuple[ModelSpec, dict, dict]:
    """The parent's spec, recipe and task, checked before any weight is read."""
    folder = Path(run).expanduser()
    missing = [n for n in ("spec.yaml", "recipe.json", "task.json", "model.safetensors") if not (folder / n).is_file()]
    if missing:
        raise UserError(f"parent run {str(folder)!r} is not a finished run folder (missing {', '.join(missing)}); "
                        "train the parent with `archsearch train ... -o DIR` and pass DIR")
    spec = loads_spec((folder / "spec.yaml").read_text(encoding="utf-8"), str(folder / "spec.yaml"))
    documents = []
    for name in ("recipe.json", "task.json"):
        try:
            data = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise UserError(f"parent run: {str(folder / name)!r} cannot be read as JSON ({str(err)[:120]})") from None
        if not isinstance(data, dict):
            raise UserError(f"parent run: {str(folder / name)!r} holds no JSON object")
        documents.append(data)
    return spec, documents[0], documents[1]


def load_parent(run: Path, device: str | torch.device = "cpu") -> Parent:
    from archsearch.builder import build
    from archsearch.training.checkpoint import load_weights

    spec, recipe, task = read_parent(run)
    model = build(spec, device, torch.float32, seed=0)
    load_weights(Path(run).expanduser(), model, torch.device(device))
    model.eval().requires_grad_(False)
    return Parent(Path(run).expanduser(), spec, recipe, task, model)
