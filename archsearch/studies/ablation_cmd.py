"""What `archsearch ablate` does: read the base spec, the axes and the recipe, train the grid, print (and
optionally store) the summary."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError
from ..spec import SpecError, load_spec
from ..spec.loader import read_document
from .ablation import format_summary, parse_vary, run_ablation, store_ablation
from .evaluate import resolve_training


def _read_mapping(value: str | None, option: str) -> dict:
    """A YAML/JSON mapping given inline or as a file path."""
    if value is None:
        return {}
    inline = value.lstrip().startswith("{") or "\n" in value
    text, source = value, None
    if not inline and _is_file(value):
        try:
            text, source = Path(value).read_text(encoding="utf-8"), value
        except (OSError, UnicodeDecodeError) as err:
            raise UserError(f"{option} {value!r}: cannot read the file ({err})") from None
    try:
        data, _ = read_document(text, source)  # the spec loader's guards: alias bombs, recursion, size
    except SpecError as err:
        raise UserError(f"{option}: neither a readable file nor YAML/JSON: {err.issues[0]}") from None
    if not isinstance(data, dict):
        what = "no such file, and not" if source is None and not inline else "expected"
        raise UserError(f"{option} {value[:80]!r}: {what} a YAML/JSON mapping (got {type(data).__name__})")
    return data


def _is_file(value: str) -> bool:
    try:
        return Path(value).is_file()
    except (OSError, ValueError):  # a name too long for the file system, or with a NUL: not a file
        return False


def run_ablation_command(spec: str, vary: list[str], *, seeds: int, task, recipe: str | None, metric: str,
                         storage: str | None, as_json: bool) -> None:
    from .bounds import MAX_ABLATION_RUNS, MAX_ABLATION_SEEDS

    if not 1 <= seeds <= MAX_ABLATION_SEEDS:
        raise UserError(f"--seeds {seeds}: allowed: 1 .. {MAX_ABLATION_SEEDS:,}")
    base = load_spec(spec)
    axes = parse_vary(vary, base)
    cells = 1
    for axis in axes:
        cells *= len(axis.values)
    if (cells + 1) * seeds > MAX_ABLATION_RUNS:  # + 1: the base's own setting may be a cell of its own
        raise UserError(f"--vary x --seeds: {cells:,} cells x {seeds} seeds is more runs than allowed: at most "
                        f"{MAX_ABLATION_RUNS:,}")
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
