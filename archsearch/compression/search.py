"""The compression search: score the parent, then run an Optuna study (archsearch.studies.StudyRunner, stored in
SQL like any study and shown by the dashboard) whose candidates are pruned children. The runner screens each
candidate with the study's constraints (the same `Screen` as any study: budgets, parameter range); a child that
passes is sliced from the parent, scored zero-shot (its validation loss before any training), and distilled from
the parent for the short recipe (logit KL, archsearch.training.distill). The ranking by distilled validation loss
is compared with the zero-shot one (Kendall's tau), and the best child is distilled for the `final` recipe. The
parent is the study's `reference:` (its name, size, pattern and val_loss measured as a child's is), so the
dashboard shows it beside the best child.

Each candidate is sliced on the parent's device and trains from its sliced weights handed to `train()` in memory
(`init_weights`), with the parent the search holds as its teacher (`teacher`): per candidate nothing of the parent
is read from disk again and no starting checkpoint is written only to be read back. The trial's run folder is what
any distillation run leaves (definition, final checkpoint, result.json naming the parent folder as teacher).
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from ..spec import ModelSpec, parse_spec
from ..studies.evaluate import TrainEvaluator, resolve_training
from ..studies.fidelity_stats import kendall_tau
from .file import CompressionFile
from .importance import FILE as IMPORTANCE_FILE
from .importance import Importance, score_parent
from .parent import Parent, load_parent
from .prune import child_pattern, resolved_spec, slice_weights, width_fields
from .space import compression_space

ZERO_SHOT = "zero_shot_loss"


@torch.no_grad()
def validation_loss(model: torch.nn.Module, task, batches: int, batch_size: int,
                    autocast_dtype: torch.dtype | None = None) -> float:
    """Mean next-token loss over the task's first validation batches, as train()'s evaluation measures val_loss:
    the same batches (task.val_batch(i, batch_size), i < batches), the loss summed over target positions then
    divided once, under the autocast the run would use (`evaluation_autocast`)."""
    from ..training.losses import masked_ce_sum

    device = next(model.parameters()).device
    autocast = (torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None
                else contextlib.nullcontext())
    total, count = 0.0, 0
    model.eval()
    for index in range(batches):
        batch = task.val_batch(index, batch_size).to(device)
        with autocast:
            logits_BTV = model(batch.input_ids_BT)
        loss, n = masked_ce_sum(logits_BTV, batch.targets_BT)
        total, count = total + float(loss), count + int(n)
    return total / max(count, 1)


def evaluation_autocast(recipe, device: torch.device, spec: ModelSpec) -> torch.dtype | None:
    """The autocast dtype train() evaluates `spec` under with `recipe` on `device` (its precision plan: bf16 on
    GPUs, none on CPUs). A child that trains in fp8 is evaluated through fp8 Linear layers as well; the losses
    measured here leave those layers in bf16, the difference fp8 makes to a forward pass."""
    from ..training.precision import plan_precision

    return plan_precision(recipe, device, spec, recipe.batch_size * recipe.seq_len).autocast_dtype


def eval_task(task: dict, recipe):
    """The task as train() builds it for `recipe` (its seq_len and seed pick the validation batches)."""
    from ..training import TaskSpec
    from ..training.tasks import make_task

    return make_task(TaskSpec.model_validate(task), recipe.seq_len, recipe.seed)


def parent_reference(parent: Parent, recipe) -> dict[str, Any]:
    """The study's `reference:`: the parent's name, exact size, pattern and block kinds, and its val_loss on the
    validation batches every child is evaluated on (the children's `recipe`: its eval_batches, batch_size,
    seq_len, seed and precision)."""
    from ..spec import compress_pattern, count_parameters

    spec = parent.spec
    device = parent.model_device
    val_loss = validation_loss(parent.model, eval_task(parent.task, recipe), recipe.eval_batches, recipe.batch_size,
                               evaluation_autocast(recipe, device, spec))
    used = dict.fromkeys(spec.pattern_string)
    return {"name": spec.name, "source": str(parent.folder.resolve()), "n_params": int(count_parameters(spec).total),
            "pattern": compress_pattern(spec.pattern_string), "layers": spec.pattern_string,
            "blocks": {s: {"kind": spec.blocks[s].kind, "window": getattr(spec.blocks[s], "window", None)}
                       for s in used},
            "metrics": {"val_loss": val_loss}}


def distil_child(parent: Parent, importance: Importance, spec: ModelSpec, recipe, out: Path, *,
                 device: str | None, callback=None) -> dict[str, Any]:
    """Slice `spec` from the parent, score it zero-shot, distil it from the parent for `recipe` in run folder
    `out`; the training's record with `metrics.zero_shot_loss` added."""
    from ..training import TaskSpec, train
    from ..training.checkpoint import write_json

    # on the parent's device: the zero-shot loss is measured where (and under the autocast with which) train()
    # evaluates, and the weights never leave the device
    child = slice_weights(parent.model, importance, spec, device=parent.model_device)
    zero_shot = validation_loss(child, eval_task(parent.task, recipe), recipe.eval_batches, recipe.batch_size,
                                evaluation_autocast(recipe, parent.model_device, spec))
    # train() builds the child's model and copies these weights in (the AdamW it builds starts empty, as a fresh one)
    result = train(spec, TaskSpec.model_validate(parent.task), recipe, out_dir=out, callback=callback,
                   progress=False, device=device, teacher=parent.model, init_weights=child.state_dict()).to_dict()
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
    # eager unless the file asks: children differ in widths, so compiled, each would compile its own layers (study
    # trials default to compile: auto, measured on trials sharing their layers; children are not measured)
    recipe.setdefault("compile", False)
    return recipe


def build_study(config: CompressionFile, parent: Parent, importance: Importance, storage: str | None, *,
                reference: dict[str, Any] | None = None):
    """The compression study as an archsearch Study: base = the parent (sizes resolved), the compression space,
    the parent's task, the short distillation recipe, objective val_loss, the file's constraints, and
    `reference` (`parent_reference`: the parent measured as the children are) as its reference."""
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
        "device": config.device, "early_stop": {"enabled": False}, "reference": reference})
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
    parent: dict[str, Any] | None = None  # the parent measured as the children are: val_loss, n_params, ...

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
    parent = load_parent(run, device)  # once: it is scored, sliced and every candidate's teacher
    if rescore or not (run / IMPORTANCE_FILE).is_file():
        score_parent(parent, batches=config.calibration.batches, batch_size=config.calibration.batch_size)
    importance = Importance.load(run)
    if importance.layers.numel() != parent.spec.n_layers or importance.d_model.numel() != parent.spec.d_model:
        raise UserError(f"{str(run / IMPORTANCE_FILE)!r} scores another model than the run's; pass rescore=True")
    _, children_recipe = resolve_training(parent.task, short_recipe(config, parent), config.seed)
    reference = parent_reference(parent, children_recipe)
    study = build_study(config, parent, importance, storage, reference=reference)
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
                                 sorted(ranked, key=lambda r: (r["val_loss"] is None, r["val_loss"] or 0.0)), tau,
                                 parent={"name": reference["name"], "run": reference["source"],
                                         "n_params": reference["n_params"], "pattern": reference["pattern"],
                                         "val_loss": reference["metrics"]["val_loss"]})
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
