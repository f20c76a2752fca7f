"""The run folder: what a run was (spec.yaml, recipe.json, task.json), where it got to (model.safetensors,
optimizer.pt, rng.pt, state.json), and what it gave (result.json). Files are written to a temporary name and
renamed, so a crash never leaves half a checkpoint."""

from __future__ import annotations

import hashlib
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
DEFINITION_FILES = ("spec.yaml", "recipe.json", "task.json")


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
    """Whether `out` holds a checkpoint or any part of one: a new run there would overwrite it."""
    return any((out / name).exists() for name in CHECKPOINT_FILES)


def _damaged(out: Path, name: str, what: str) -> UserError:
    return UserError(f"{str(out / name)!r} {what}; the run folder is damaged: restore the file, or start a new run "
                     "in another folder")


def _json_object(out: Path, name: str) -> dict:
    try:
        data = json.loads((out / name).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        raise _damaged(out, name, f"cannot be read as JSON ({str(err)[:120]})") from None
    if not isinstance(data, dict):
        raise _damaged(out, name, f"holds a JSON {type(data).__name__}, not an object")
    return data


def _is_int(value: Any, low: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _check_state(out: Path, state: dict) -> None:
    """state.json as save_checkpoint writes it: a step count, Python's random state, and the curve so far."""
    if not _is_int(state.get("step")):
        raise _damaged(out, "state.json", f"has no valid 'step' (got {str(state.get('step'))[:40]}); allowed: a whole "
                       "number >= 0")
    rand = state.get("python_random")
    if not (isinstance(rand, list) and len(rand) == 3 and _is_int(rand[0]) and isinstance(rand[1], list)
            and len(rand[1]) == 625 and all(_is_int(v) and v < 1 << 32 for v in rand[1])
            and (rand[2] is None or isinstance(rand[2], float))):
        raise _damaged(out, "state.json", "has no valid 'python_random' (Python's random state: [version, 625 "
                       "integers, gauss])")
    if "schedule_steps" in state and not _is_int(state["schedule_steps"], 1):
        raise _damaged(out, "state.json", f"has an invalid 'schedule_steps' (got "
                       f"{str(state['schedule_steps'])[:40]}); allowed: a whole number >= 1")
    for key, kind in (("curve", list), ("metrics", dict)):
        if key in state and not isinstance(state[key], kind):
            raise _damaged(out, "state.json", f"has a '{key}' that is not a JSON {'array' if kind is list else 'object'}")


BINARY_FILES = ("model.safetensors", "optimizer.pt", "rng.pt")


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _check_sums(out: Path, state: dict) -> None:
    """Bytes changed inside a weights or optimizer file can still parse (as other numbers, NaN included): the
    digests saved beside them are what tells. Folders written before digests were saved are taken as they are."""
    sums = state.get("sha256")
    if sums is None:
        return
    if not isinstance(sums, dict):
        raise _damaged(out, "state.json", "has a 'sha256' that is not a JSON object")
    for name in BINARY_FILES:
        if name in sums and sums[name] != _sha256(out / name):
            raise _damaged(out, name, "does not match the SHA-256 saved with it in state.json (it changed after "
                           "the run wrote it)")


def check_run_folder(out: Path) -> dict:
    """Everything `--resume` needs, checked before any model is built: the folder, each file present, the JSON
    files well-formed, the weights file's header readable. Returns state.json. UserError names the file."""
    if not out.is_dir():
        raise UserError(f"resume: {str(out)!r} holds no checkpoint: " +
                        ("no such folder" if not out.exists() else "it is not a folder"))
    missing = [n for n in (*DEFINITION_FILES, *CHECKPOINT_FILES) if not (out / n).is_file()]
    if missing:
        raise UserError(f"resume: {str(out)!r} holds no checkpoint (missing {', '.join(missing)}); "
                        "a run folder holds " + ", ".join((*DEFINITION_FILES, *CHECKPOINT_FILES)))
    for name in ("recipe.json", "task.json"):
        _json_object(out, name)
    state = _json_object(out, "state.json")
    _check_state(out, state)
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(out / "model.safetensors"), framework="pt") as weights:
            weights.keys()
    except (SafetensorError, OSError, ValueError) as err:
        raise _damaged(out, "model.safetensors", f"is not a readable safetensors file ({str(err)[:120]})") from None
    return state


def read_definition(out: Path) -> tuple[ModelSpec, dict, dict]:
    check_run_folder(out)
    try:
        text = (out / "spec.yaml").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise _damaged(out, "spec.yaml", f"cannot be read ({err})") from None
    spec = loads_spec(text, str(out / "spec.yaml"))  # SpecError (a UserError) names file:line:col
    return spec, _json_object(out, "recipe.json"), _json_object(out, "task.json")


def portable_optimizer_state(state: dict[str, Any]) -> dict[str, Any]:
    """An optimizer's state_dict as a plain step would save it: a captured step's device learning rate
    (training/step_graph.py) becomes a number again and `capturable` false, so a checkpoint does not depend on how
    its steps ran."""
    groups = []
    for group in state["param_groups"]:
        group = dict(group)
        if isinstance(group.get("lr"), torch.Tensor):
            group["lr"] = float(group["lr"])
        if group.get("capturable"):
            group["capturable"] = False
        groups.append(group)
    return {**state, "param_groups": groups}


def save_checkpoint(out: Path, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Weights (safetensors), optimizer state, RNG states, and `state` (step, tokens, curve...)."""
    out.mkdir(parents=True, exist_ok=True)
    _atomic(out / "model.safetensors", lambda p: save_model(model, str(p)))
    _atomic(out / "optimizer.pt", lambda p: torch.save(portable_optimizer_state(optimizer.state_dict()), p))
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.stack(torch.cuda.get_rng_state_all())
    _atomic(out / "rng.pt", lambda p: torch.save(rng, p))
    version, internal, gauss = random.getstate()
    sums = {name: _sha256(out / name) for name in BINARY_FILES}
    write_json(out / "state.json", {**state, "python_random": [version, list(internal), gauss], "sha256": sums})


def load_weights(out: Path, model: nn.Module, device: torch.device) -> None:
    from safetensors import SafetensorError

    try:
        missing, unexpected = load_model(model, str(out / "model.safetensors"), strict=False, device=str(device))
    except (SafetensorError, OSError, ValueError) as err:
        raise _damaged(out, "model.safetensors", f"is not a readable safetensors file ({str(err)[:120]})") from None
    except RuntimeError as err:  # a tensor of another shape: the weights of another model
        raise _damaged(out, "model.safetensors", f"does not fit the model ({str(err)[:200]})") from None
    if missing or unexpected:
        raise UserError(f"checkpoint {str(out)!r} does not fit the model: missing {sorted(missing)[:5]}, "
                        f"unexpected {sorted(unexpected)[:5]}")


def load_initial_weights(folder: Path, model: nn.Module, device: torch.device) -> None:
    """`recipe.init_from`: start from a trained run's weights (finetuning). Its spec may differ from this run's
    (context, norms' eps, rope base...) as long as every tensor has the same name and shape; otherwise a
    UserError names the tensors that do not match."""
    from safetensors import SafetensorError, safe_open

    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise UserError(f"recipe.init_from: {str(folder)!r} is not a run folder with model.safetensors (train it with "
                        "`archsearch train ... -o DIR` and pass that DIR)")
    try:
        with safe_open(str(weights), framework="pt", device=str(device)) as f:
            saved = {name: f.get_tensor(name) for name in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise _damaged(folder, "model.safetensors", f"is not a readable safetensors file ({str(err)[:120]})") from None
    own = model.state_dict()  # a tied head is not a tensor of its own here, nor in the file
    problems = [f"{n} (missing from the run)" for n in sorted(own) if n not in saved]
    problems += [f"{n} (not in this model)" for n in sorted(saved) if n not in own]
    problems += [f"{n} (run {tuple(saved[n].shape)}, model {tuple(own[n].shape)})" for n in sorted(saved)
                 if n in own and saved[n].shape != own[n].shape]
    if problems:
        raise UserError(f"recipe.init_from: the weights in {str(folder)!r} do not fit this spec: "
                        f"{'; '.join(problems[:6])}" + (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")
                        + "; finetuning needs the same tensor names and shapes (the same layers, widths and vocab)")
    load_weights(folder, model, device)


def _torch_file(out: Path, name: str, device: torch.device | str) -> Any:
    try:
        return torch.load(out / name, map_location=device, weights_only=True)
    except Exception as err:  # truncated, garbage or pickled code: every way a foreign file fails to load
        raise _damaged(out, name, f"cannot be loaded ({type(err).__name__}: {str(err)[:120]})") from None


def _load_optimizer(out: Path, optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    saved = _torch_file(out, "optimizer.pt", device)
    if not isinstance(saved, dict) or "state" not in saved or "param_groups" not in saved:
        raise _damaged(out, "optimizer.pt", "holds no optimizer state (state and param_groups)")
    try:
        optimizer.load_state_dict(saved)
    except (ValueError, KeyError, TypeError, RuntimeError, IndexError) as err:
        raise _damaged(out, "optimizer.pt", f"is another model's optimizer state ({str(err)[:120]})") from None
    # load_state_dict matches parameter counts only; moments of another shape would fail mid-training
    for group in optimizer.param_groups:
        for param in group["params"]:
            for key, value in optimizer.state.get(param, {}).items():
                if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != param.shape:
                    raise _damaged(out, "optimizer.pt", f"is another model's optimizer state ({key} of shape "
                                   f"{tuple(value.shape)} for a parameter of shape {tuple(param.shape)})")


def _load_rng(out: Path) -> None:
    rng = _torch_file(out, "rng.pt", "cpu")
    state = rng.get("torch") if isinstance(rng, dict) else None
    if not isinstance(state, torch.Tensor) or state.dtype != torch.uint8:
        raise _damaged(out, "rng.pt", "holds no torch RNG state (a uint8 tensor under 'torch')")
    try:
        torch.set_rng_state(state)
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(list(rng["cuda"]))
    except (RuntimeError, TypeError, ValueError) as err:
        raise _damaged(out, "rng.pt", f"holds an unusable RNG state ({str(err)[:120]})") from None


def load_checkpoint(out: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                    device: torch.device) -> dict[str, Any]:
    """Restore weights, optimizer and RNG states in place; returns state.json. A damaged or foreign file is a
    UserError naming it, never a silent fresh start."""
    state = check_run_folder(out)
    load_weights(out, model, device)
    _load_optimizer(out, optimizer, device)
    _load_rng(out)
    _check_sums(out, state)  # after the loads, whose errors say more; before any step trains on changed bytes
    state.pop("sha256", None)
    version, internal, gauss = state.pop("python_random")
    try:
        random.setstate((version, tuple(internal), gauss))
    except (TypeError, ValueError) as err:
        raise _damaged(out, "state.json", f"holds an unusable Python random state ({err})") from None
    return state
