"""An ablation from plain values: a base spec, axes, seeds, a task and a recipe; trains the grid and stores it.

A library function: it raises UserError before any training for a bad grid, task, recipe or database, and returns
the ablation (with the stored id); printing is the CLI's (archsearch/cli/ablate_cmd.py)."""

from __future__ import annotations

from typing import Any, Callable

from ..errors import UserError
from ..spec import ModelSpec
from .ablation import Ablation, Run, build_cells, parse_vary, run_ablation, store_ablation
from ..limits import MAX_ABLATION_RUNS, MAX_ABLATION_SEEDS
from .evaluate import resolve_training


def ablate(base: ModelSpec, vary: list[str], *, seeds: int, task: dict[str, Any], recipe: dict[str, Any],
           metric: str = "val_loss", storage: str | None = None,
           on_run: Callable[[Run], None] | None = None) -> tuple[Ablation, int | None]:
    """Train every --vary cell x `seeds` seeds of `base` on `task` ({name, options}) with `recipe` (recipe
    fields); returns the ablation and its id in `storage` (None when not stored)."""
    if not 1 <= seeds <= MAX_ABLATION_SEEDS:
        raise UserError(f"--seeds {seeds}: allowed: 1 .. {MAX_ABLATION_SEEDS:,}")
    axes = parse_vary(vary, base, task)
    cells = 1
    for axis in axes:
        cells *= len(axis.values)
    if (cells + 1) * seeds > MAX_ABLATION_RUNS:  # + 1: the base's own setting may be a cell of its own
        raise UserError(f"--vary x --seeds: {cells:,} cells x {seeds} seeds is more runs than allowed: at most "
                        f"{MAX_ABLATION_RUNS:,}")
    resolve_training(task, recipe)  # a bad task or recipe fails before any training
    as_run = with_option_defaults(task)  # the base cell of a task axis is the value its runs really use
    for cell in build_cells(base, axes, as_run):  # and so does a bad value of a task axis, naming its cell
        if cell.task_options:
            try:
                resolve_training(cell_task(task, cell.task_options), recipe)
            except UserError as err:
                raise UserError(f"ablation cell {cell.label}: {err}") from None
    db = None
    if storage is not None:
        from ..storage import Database

        db = Database(storage)  # an unreachable database fails before any training too

    def run(cell_spec, seed, task_options=None):
        from ..training import train

        task_obj, recipe_obj = resolve_training(cell_task(task, task_options or {}), recipe, seed)
        return train(cell_spec, task_obj, recipe_obj, progress=False).to_dict()

    ablation = run_ablation(base, axes, list(range(seeds)), run, metric, on_run=on_run, task=as_run)
    if db is None:
        return ablation, None
    with db:
        return ablation, store_ablation(db, ablation, task, recipe)


def with_option_defaults(task: dict[str, Any] | str) -> dict[str, Any]:
    """The task ({name, options}) with each option it leaves unset written at its default, so that a task axis
    compares against what the base really runs: `--vary task.transforms=[],hint` then knows `[]` is the base (an
    unset transforms) instead of training the baseline twice."""
    from ..training.tasks import TaskSpec, task_class

    spec = TaskSpec.model_validate(task) if isinstance(task, dict) else TaskSpec.coerce(task)
    fields = task_class(spec.name).Options.model_fields
    defaults = {name: f.get_default(call_default_factory=True) for name, f in fields.items() if not f.is_required()}
    return {**spec.to_dict(), "options": {**defaults, **spec.options}}


def cell_task(task: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """The base task with a cell's task options (task.OPTION axes) set."""
    return {**task, "options": {**(task.get("options") or {}), **options}}
