"""What `archsearch ablate` does: read the base spec, the axes and the recipe, train the grid, print (and
optionally store) the summary."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from ..errors import UserError
from ..spec import load_spec
from .ablation import format_summary, parse_vary, run_ablation, store_ablation
from .evaluate import resolve_training


def _read_mapping(value: str | None, option: str) -> dict:
    """A YAML/JSON mapping given inline or as a file path."""
    if value is None:
        return {}
    text = Path(value).read_text(encoding="utf-8") if Path(value).is_file() else value
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise UserError(f"{option}: neither a readable file nor YAML/JSON: {err}") from None
    if not isinstance(data, dict):
        raise UserError(f"{option}: expected a mapping, got {type(data).__name__}")
    return data


def run_ablation_command(spec: str, vary: list[str], *, seeds: int, task, recipe: str | None, metric: str,
                         storage: str | None, as_json: bool) -> None:
    base = load_spec(spec)
    axes = parse_vary(vary, base)
    recipe_data = _read_mapping(recipe, "--recipe")
    if task.strip().startswith("{"):  # a TaskSpec mapping: {name: mqar, options: {n_pairs: 4}}
        task = _read_mapping(task, "--task")
    resolve_training(task, recipe_data)  # a bad task or recipe fails before any training
    db = None
    if storage is not None:
        from ..storage import Database

        db = Database(storage)  # an unreachable database fails before any training too

    def run(cell_spec, seed):
        from ..training import train

        task_obj, recipe_obj = resolve_training(task, recipe_data, seed)
        return train(cell_spec, task_obj, recipe_obj, progress=False).to_dict()

    def on_run(r):
        shown = f"{metric}={r.value:.4g}" if r.value is not None else f"{r.status}: {r.error}"
        print(f"  {r.cell.label} seed {r.seed}: {shown} ({r.wall_time_s:.1f} s)", flush=True)

    ablation = run_ablation(base, axes, list(range(seeds)), run, metric, on_run=None if as_json else on_run)
    if db is not None:
        with db:
            ablation_id = store_ablation(db, ablation, task if isinstance(task, dict) else {"name": task},
                                         recipe_data)
        if not as_json:
            print(f"stored as ablation {ablation_id}")
    if as_json:
        print(json.dumps(ablation.summary(), indent=1))
    else:
        print(format_summary(ablation))
