"""`archsearch ablate`: train a grid of --vary settings x seeds around a base spec; print (and optionally store)
mean, 95% CI and the paired difference to the base. The task is given as in `train`: --task NAME, -t KEY=VALUE."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..limits import MAX_ABLATION_SEEDS
from .train_cmd import TASK_HELP, TASK_OPTION_HELP, TaskHelpCommand, parse_task_options


def register(app: typer.Typer) -> None:
    app.command("ablate", cls=TaskHelpCommand)(ablate)


def ablate(spec: str = typer.Argument(..., help="base spec file or example name"),
           vary: list[str] = typer.Option(..., "--vary", help="PATH=a,b,c (repeatable): the grid's axes; "
                                          "'pattern=M-M*-,MM--' varies the whole layer pattern; "
                                          "task.OPTION=a,b a task option, e.g. task.transforms=lang_tag,hint"),
           seeds: int = typer.Option(3, help=f"seeds per cell, 1 .. {MAX_ABLATION_SEEDS:,}"),
           task: str = typer.Option("mqar", "--task", help=TASK_HELP),
           task_option: list[str] = typer.Option([], "--task-option", "-t", help=TASK_OPTION_HELP),
           recipe: Optional[str] = typer.Option(None, help="recipe fields as inline YAML/JSON or a YAML/JSON file"),
           metric: str = typer.Option("val_loss", help="the metric summarised"),
           storage: Optional[str] = typer.Option(None, help="also store every run in this database"),
           as_json: bool = typer.Option(False, "--json")) -> None:
    """Train the full grid of --vary settings x seeds; print mean, 95% CI and paired difference to the base."""
    from ..spec import load_spec
    from ..studies.ablate import ablate as run_grid
    from ..studies.ablation import format_summary

    base = load_spec(spec)
    task_spec = {"name": task, "options": parse_task_options(task_option)}

    def on_run(r) -> None:
        shown = f"{metric}={r.value:.4g}" if r.value is not None else f"{r.status}: {r.error}"
        print(f"  {r.cell.label} seed {r.seed}: {shown} ({r.wall_time_s:.1f} s)", flush=True)

    ablation, stored = run_grid(base, vary, seeds=seeds, task=task_spec, recipe=read_mapping(recipe, "--recipe"),
                                metric=metric, storage=storage, on_run=None if as_json else on_run)
    if as_json:
        print(json.dumps(ablation.summary(), indent=1))
        return
    if stored is not None:
        print(f"stored as ablation {stored}")
    print(format_summary(ablation))


def read_mapping(value: str | None, option: str) -> dict:
    """A YAML/JSON mapping given inline or as a file path."""
    from ..errors import UserError
    from ..spec import SpecError
    from ..spec.loader import read_document

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
