"""The compression search: score the parent, then run an Optuna study (archsearch.studies.StudyRunner, stored in
SQL like any study and shown by the dashboard) whose candidates are pruned children. The runner screens each
candidate with the study's constraints (the same `Screen` as any study: budgets, parameter range); a child that
passes is sliced from the parent, scored zero-shot (its validation loss before any training), and distilled from
the parent for the short recipe (logit KL, archsearch.training.distill). The ranking by distilled validation loss
is compared with the zero-shot one (Kendall's tau), and the best child is distilled for the `final` recipe.

Each candidate trains from its sliced weights: the child is written as a run folder at step 0 (definition, weights,
a fresh optimizer) and resumed, so `train()` runs unchanged.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from ..spec import ModelSpec, parse_spec
from ..studies.evaluate import TrainEvaluator
from ..studies.fidelity_stats import kendall_tau
from .file import CompressionFile
from .importance import FILE as IMPORTANCE_FILE
from .importance import Importance, score_run
from .parent import Parent, load_parent
from .prune import child_pattern, resolved_spec, slice_weights, width_fields
from .space import compression_space

ZERO_SHOT = "zero_shot_loss"


@torch.no_grad()
def validation_loss(model: torch.nn.Module, task, batches: int, batch_size: int) -> float:
    """Mean next-token loss over the task's first validation batches (the zero-shot score of a child)."""
    from ..training.losses import masked_ce_sum

    device = next(model.parameters()).device
    total, count = 0.0, 0
    model.eval()
    for index in range(batches):
        batch = task.val_batch(index, batch_size).to(device)
        loss, n = masked_ce_sum(model(batch.input_ids_BT), batch.targets_BT)
        total, count = total + float(loss), count + int(n)
    return total / max(count, 1)


def write_start(out: Path, model: torch.nn.Module, spec: ModelSpec, recipe, task: dict) -> None:
    """A run folder at step 0 holding `model`'s weights: `train(..., resume=True)` continues from them."""
    from ..training import checkpoint
    from ..training.prepare import parameter_groups

    if checkpoint.has_checkpoint(out):
        raise UserError(f"{str(out)!r} already holds a run; choose another output folder")
    checkpoint.write_definition(out, spec, recipe.to_dict(), task)
    optimizer = torch.optim.AdamW(parameter_groups(model, recipe.weight_decay), lr=recipe.lr, betas=recipe.betas,
                                  eps=recipe.eps)
    checkpoint.save_checkpoint(out, model, optimizer, {"step": 0, "tokens": 0, "flops": 0, "curve": [],
                                                       "metrics": {}})


def distil_child(parent: Parent, importance: Importance, spec: ModelSpec, recipe, out: Path, *,
                 device: str | None, callback=None) -> dict[str, Any]:
    """Slice `spec` from the parent, score it zero-shot, distil it from the parent for `recipe` in run folder
    `out`; the training's record with `metrics.zero_shot_loss` added."""
    from ..training import TaskSpec, train
    from ..training.tasks import make_task

    child = slice_weights(parent.model, importance, spec)
    task = make_task(TaskSpec.model_validate(parent.task), recipe.seq_len, recipe.seed)
    zero_shot = validation_loss(child, task, recipe.eval_batches, recipe.batch_size)
    write_start(out, child, spec, recipe, parent.task)
    del child
    result = train(None, None, None, out_dir=out, callback=callback, progress=False, device=device,
                   resume=True).to_dict()
    from ..training.checkpoint import write_json

    if isinstance(result.get("metrics"), dict):
        result["metrics"][ZERO_SHOT] = zero_shot
        if (out / "result.json").is_file():  # the run folder records its starting point too
            write_json(out / "result.json", result)
    result["out_dir"] = str(out)
    return result


class CompressionEvaluator(TrainEvaluator):
    """What trains a candidate of a compression study: the child sliced from the parent, distilled from it."""

    def __init__(self, parent: Parent, importance: Importance, recipe: dict, trials_dir: Path, *, seed: int,
                 device: str | None):
        super().__init__(parent.task, recipe, seed=seed, device=device)
        self.parent, self.importance, self.trials_dir = parent, importance, trials_dir

    def __call__(self, spec: ModelSpec, callback, *, out_dir: Path | None = None) -> dict[str, Any]:
        out = out_dir or self.trials_dir / spec.name
        return distil_child(self.parent, self.importance, spec, self.recipe, out, device=self.device,
                            callback=callback)


def short_recipe(config: CompressionFile, parent: Parent) -> dict[str, Any]:
    """The candidates' recipe: the file's, seq_len and batch_size defaulting to the parent's, the parent as teacher."""
    recipe = {k: parent.recipe[k] for k in ("seq_len", "batch_size") if k in parent.recipe}
    recipe.update(config.recipe)
    if "distill" in recipe:
        raise UserError("recipe.distill: set by the compression search (the parent is the teacher); use the file's "
                        "`distill:` for temperature and alpha")
    recipe["distill"] = {"teacher": str(parent.folder.resolve()), **config.distill.model_dump()}
    return recipe


def build_study(config: CompressionFile, parent: Parent, importance: Importance, storage: str | None):
    """The compression study as an archsearch Study: base = the parent (sizes resolved), the compression space,
    the parent's task, the short distillation recipe, objective val_loss, the file's constraints."""
    from ..studies.study_file import Study, StudyFile

    base = resolved_spec(parent.spec)
    too_deep = [n for n in (config.search.n_layers or []) if n > base.n_layers]
    if too_deep:
        raise UserError(f"search.n_layers: {too_deep} above the parent's {base.n_layers} layers; allowed: 1 .. "
                        f"{base.n_layers}")
    depths = {n: child_pattern(base, importance, n) for n in (config.search.n_layers or [])}
    space = compression_space(base, config.search, depths, width_fields)
    description = config.description or f"compression of {parent.folder.resolve()} ({parent.spec.name})"
    file = StudyFile.model_validate({
        "name": config.name, "description": description, "base": base.to_dict(), "space": space.model_dump(mode="json"),
        "task": parent.task, "recipe": short_recipe(config, parent), "objectives": ["val_loss"],
        "constraints": config.constraints.model_dump(mode="json"), "sampler": config.sampler.model_dump(mode="json"),
        "n_trials": config.n_trials, "storage": storage or config.storage, "seed": config.seed,
        "device": config.device, "early_stop": {"enabled": False}})
    return Study(file, base, space, None, Path.cwd())


@dataclass
class CompressionOutcome:
    study: str
    storage: str
    importance: str
    counts: dict[str, int]
    ranked: list[dict[str, Any]] = field(default_factory=list)  # completed trials: number, val_loss, zero-shot
    kendall_tau: float | None = None
    best: dict[str, Any] | None = None
    final: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def compress(run: Path, config: CompressionFile, out: Path, *, storage: str | None = None, live: bool | None = False,
             rescore: bool = False) -> CompressionOutcome:
    """Score `run` (unless its importance file exists), run the compression study, distil the best child for the
    file's `final` recipe in `out/best-tN` (N its trial number); the summary also goes to `out/compression.json`."""
    from ..storage import records
    from ..studies.progress import Display
    from ..studies.runner import StudyRunner
    from ..training.checkpoint import write_json

    run = Path(run).expanduser()
    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if rescore or not (run / IMPORTANCE_FILE).is_file():
        score_run(run, batches=config.calibration.batches, batch_size=config.calibration.batch_size, device=device)
    parent = load_parent(run, device)
    importance = Importance.load(run)
    if importance.layers.numel() != parent.spec.n_layers or importance.d_model.numel() != parent.spec.d_model:
        raise UserError(f"{str(run / IMPORTANCE_FILE)!r} scores another model than the run's; pass rescore=True")
    study = build_study(config, parent, importance, storage)
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    evaluator = CompressionEvaluator(parent, importance, study.file.recipe, out / "trials", seed=config.seed,
                                     device=config.device)
    # progress goes to stderr: stdout is the summary's (one JSON object with `compress --json`)
    display = Display(study.name, ["val_loss"], config.n_trials, live=live, stream=sys.stderr)
    runner = StudyRunner(study, evaluator, display=display)
    try:
        summary = runner.run()
        rows = records.trials_of(runner.db, runner.record.id, ("completed",))
    finally:
        runner.close()
    ranked = [{"number": r.number, "val_loss": (r.objectives or [None])[0],
               ZERO_SHOT: (r.metrics or {}).get(ZERO_SHOT), "n_params": r.n_params, "pattern": r.pattern_compact}
              for r in rows]
    pairs = [(r["val_loss"], r[ZERO_SHOT]) for r in ranked
             if r["val_loss"] is not None and r[ZERO_SHOT] is not None
             and math.isfinite(r["val_loss"]) and math.isfinite(r[ZERO_SHOT])]
    tau = kendall_tau([a for a, _ in pairs], [b for _, b in pairs]) if len(pairs) >= 2 else None
    outcome = CompressionOutcome(summary.study, summary.storage, str(run / IMPORTANCE_FILE), summary.counts,
                                 sorted(ranked, key=lambda r: (r["val_loss"] is None, r["val_loss"] or 0.0)), tau)
    if summary.best:
        outcome.best = summary.best[0]
        best_row = next(r for r in rows if r.number == outcome.best["number"])
        if config.final is not None:
            outcome.final = _final(config, parent, importance, ModelSpec.model_validate(best_row.spec), study,
                                   out / f"best-t{best_row.number}")
    write_json(out / "compression.json", outcome.to_dict())
    return outcome


def _final(config: CompressionFile, parent: Parent, importance: Importance, spec: ModelSpec, study,
           out: Path) -> dict[str, Any]:
    """The best child distilled for the `final` recipe (the short recipe with `final`'s fields over it)."""
    from ..studies.evaluate import resolve_training

    lengths = ("steps", "tokens", "flops")
    recipe = dict(study.file.recipe)
    if any(k in config.final for k in lengths):  # the final length replaces the short one, however it is given
        recipe = {k: v for k, v in recipe.items() if k not in lengths}
    recipe.update(config.final)
    _, recipe_obj = resolve_training(parent.task, recipe, config.seed)
    spec = parse_spec({**spec.to_dict(), "name": f"{config.name}-best"})
    if (out / "result.json").is_file():  # a rerun of a finished compression: the best child is already distilled
        result = json.loads((out / "result.json").read_text(encoding="utf-8"))
    else:
        result = distil_child(parent, importance, spec, recipe_obj, out, device=config.device)
    return {"out_dir": str(out), "spec": spec.name, "n_params": result.get("n_params"),
            "metrics": result.get("metrics"), "steps": result.get("steps"), "tokens": result.get("tokens"),
            "status": result.get("status")}


def outcome_json(outcome: CompressionOutcome) -> str:
    return json.dumps(outcome.to_dict(), indent=2, default=str)
