"""The run folder: what a run was (spec.yaml, recipe.json, task.json), where it got to (model.safetensors,
optimizer.pt, rng.pt, state.json), and what it gave (result.json). Files are written to a temporary name and
renamed, so a crash never leaves half a checkpoint."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model
from torch import nn

from archsearch.errors import UserError
from archsearch.spec import ModelSpec, dump_spec, loads_spec

CHECKPOINT_FILES = ("model.safetensors", "optimizer.pt", "rng.pt", "state.json")


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    _atomic(path, lambda p: p.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8"))


def write_definition(out: Path, spec: ModelSpec, recipe: dict, task: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    _atomic(out / "spec.yaml", lambda p: p.write_text(dump_spec(spec), encoding="utf-8"))
    write_json(out / "recipe.json", recipe)
    write_json(out / "task.json", task)


def has_checkpoint(out: Path) -> bool:
    return all((out / name).exists() for name in CHECKPOINT_FILES)


def read_definition(out: Path) -> tuple[ModelSpec, dict, dict]:
    if not has_checkpoint(out):
        missing = [n for n in CHECKPOINT_FILES if not (out / n).exists()]
        raise UserError(f"resume: {str(out)!r} holds no checkpoint (missing {', '.join(missing)})")
    try:
        spec = loads_spec((out / "spec.yaml").read_text(encoding="utf-8"), str(out / "spec.yaml"))
        recipe = json.loads((out / "recipe.json").read_text(encoding="utf-8"))
        task = json.loads((out / "task.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"resume: cannot read the run definition in {str(out)!r}: {err}") from None
    return spec, recipe, task


def save_checkpoint(out: Path, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Weights (safetensors), optimizer state, RNG states, and `state` (step, tokens, curve...)."""
    out.mkdir(parents=True, exist_ok=True)
    _atomic(out / "model.safetensors", lambda p: save_model(model, str(p)))
    _atomic(out / "optimizer.pt", lambda p: torch.save(optimizer.state_dict(), p))
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.stack(torch.cuda.get_rng_state_all())
    _atomic(out / "rng.pt", lambda p: torch.save(rng, p))
    version, internal, gauss = random.getstate()
    write_json(out / "state.json", {**state, "python_random": [version, list(internal), gauss]})


def load_weights(out: Path, model: nn.Module, device: torch.device) -> None:
    missing, unexpected = load_model(model, str(out / "model.safetensors"), strict=False, device=str(device))
    if missing or unexpected:
        raise UserError(f"checkpoint {str(out)!r} does not fit the model: missing {sorted(missing)[:5]}, "
                        f"unexpected {sorted(unexpected)[:5]}")


def load_checkpoint(out: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                    device: torch.device) -> dict[str, Any]:
    """Restore weights, optimizer and RNG states in place; returns state.json."""
    load_weights(out, model, device)
    optimizer.load_state_dict(torch.load(out / "optimizer.pt", map_location=device, weights_only=True))
    rng = torch.load(out / "rng.pt", weights_only=True)
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(rng["cuda"]))
    state = json.loads((out / "state.json").read_text(encoding="utf-8"))
    version, internal, gauss = state.pop("python_random")
    random.setstate((version, tuple(internal), gauss))
    return state
