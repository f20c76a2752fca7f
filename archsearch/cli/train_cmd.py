"""`archsearch train`: one short training run, its final metrics printed (or one JSON object with --json)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, Optional

import typer
import typer.core

from .. import limits
from ..training.recipe import DEFAULT_STEPS
from .options import bounded


def register(app: typer.Typer) -> None:
    app.command("train", cls=TaskHelpCommand)(train_command)


TASK_HELP = ("task name: mqar, selective_copy, in_context_recall, noisy_recall, fuzzy_recall, compression, "
             "memorization, text, seq2seq")
TASK_OPTION_HELP = "task option KEY=VALUE (repeatable); the options of each task are listed below"


def _default(field: str) -> Any:
    """A recipe field's default, as --help shows it (the recipe model is torch-free)."""
    from ..training.recipe import Recipe

    return Recipe.model_fields[field].default


def _looks_like_task_option(path: Path) -> bool:
    """`-o n_pairs=8`: a task option given the old way (-o was train's task option flag), not a run folder."""
    return re.fullmatch(r"[A-Za-z_]\w*=.*", str(path)) is not None and not path.exists()


class TaskHelpCommand(typer.core.TyperCommand):
    """`train --help` (and `ablate --help`) end with every task's options, their meaning and default. They are
    read from the task classes only when help is shown: the tasks import torch, which other commands must not
    pay for."""

    def format_help(self, ctx, formatter) -> None:
        super().format_help(ctx, formatter)
        from rich.console import Console
        from rich.panel import Panel
        from rich.table import Table

        table = Table(show_header=False, box=None, padding=(0, 1))
        for name, description, options in task_options():
            table.add_row(f"[bold]{name}[/bold]", description)
            for key, meaning in options:
                table.add_row(f"  -t {key}=", meaning)
        Console().print(Panel(table, title="Tasks (--task) and their options (-t KEY=VALUE)", title_align="left"))


def task_options() -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(name, description, [(option, meaning and default)]) of every task, from the task classes."""
    from ..training.tasks import TASKS

    return [(name, cls.description, [(key, _describe_option(field)) for key, field in cls.Options.model_fields.items()])
            for name, cls in TASKS.items()]


def _describe_option(field) -> str:
    meaning = field.description or ""
    if field.default is None and "None:" in meaning:  # the meaning says what leaving it out does
        return meaning
    return f"{meaning} (default: {field.default})".strip()


def parse_task_options(pairs: list[str]) -> dict[str, Any]:
    """k=v pairs; v is read as JSON where it parses (numbers, true/false, null, lists), else as a string."""
    from ..errors import UserError

    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--task-option: expected KEY=VALUE, got {pair!r}")
        try:
            options[key] = json.loads(raw)
        except json.JSONDecodeError:
            options[key] = raw
    return options


LENGTHS = {"steps", "tokens", "flops"}  # a run's length is given as exactly one of them


def build_recipe(recipe_file: str | None, overrides: dict[str, Any], base: dict[str, Any] | None = None):
    """The recipe: `base` (a resumed run's), then a JSON/YAML file's fields, then the command-line values."""
    from pydantic import ValidationError

    from ..errors import UserError
    from ..training import Recipe

    data: dict[str, Any] = dict(base or {})
    if recipe_file is not None:
        data.update(read_recipe_file(recipe_file))
    given = {k: v for k, v in overrides.items() if v is not None}
    if given.keys() & LENGTHS:  # a length on the command line replaces the file's (or resumed run's) length
        data = {k: v for k, v in data.items() if k not in LENGTHS}
    data.update(given)
    try:
        return Recipe.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(map(str, first["loc"])) or "recipe"
        raise UserError(f"recipe field {where}: {_cut(first['msg'], 240)} (got {_cut(repr(first.get('input')))}); "
                        f"fields: {', '.join(Recipe.model_fields)}") from None


def _cut(text: str, limit: int = 80) -> str:
    """`text` for an error message: each long unbroken run (a 400-digit number) shortened, then the whole cut."""
    text = re.sub(r"\S{40,}", lambda m: m.group()[:30] + "...", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_recipe_file(recipe_file: str) -> dict[str, Any]:
    """A recipe file's fields, read by the spec loader's YAML reader: the same guards against alias bombs,
    recursive aliases and duplicate keys, and errors with file:line:col that never quote the whole input."""
    from ..errors import UserError
    from ..spec import SpecError
    from ..spec.loader import read_document

    try:
        text = Path(recipe_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UserError(f"--recipe: cannot read {_cut(repr(recipe_file))}: {_cut(str(err), 200)}") from None
    try:
        data, _ = read_document(text, recipe_file)
    except SpecError as err:  # the spec reader's wording ("invalid spec") would mislead here
        raise UserError("; ".join(f"--recipe: {issue}" for issue in err.issues)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"--recipe: {_cut(repr(recipe_file))} must hold a mapping of recipe fields, not "
                        f"{type(data).__name__}")
    return data


def train_command(
        spec_path: Optional[str] = typer.Argument(None, metavar="SPEC", help="spec file or example name (optional "
                                                  "with --resume)"),
        task: Optional[str] = typer.Option(None, "--task", help=TASK_HELP),
        task_option: list[str] = typer.Option([], "--task-option", "-t", help=TASK_OPTION_HELP),
        recipe_file: Optional[str] = typer.Option(None, "--recipe", help="recipe fields in a YAML/JSON file "
                                                  "(values given below override it)"),
        steps: Optional[int] = bounded(None, "--steps", low=1, high=limits.MAX_STEPS,
                                       help=f"training steps (default: {DEFAULT_STEPS}, unless --tokens or --flops)"),
        tokens: Optional[str] = typer.Option(None, "--tokens", help="train this many tokens instead (e.g. 5M)"),
        flops: Optional[str] = typer.Option(None, "--flops", help="train this many training FLOPs (e.g. 3e15, 3P)"),
        batch_size: Optional[int] = bounded(None, "--batch-size", low=1, high=limits.MAX_BATCH,
                                            help=f"global batch in sequences (default: {_default('batch_size')})"),
        seq_len: Optional[int] = bounded(None, "--seq-len", low=1, high=limits.MAX_SEQ_LEN,
                                         help=f"tokens per sequence (default: {_default('seq_len')})"),
        lr: Optional[float] = bounded(None, "--lr", low=0, low_open=True, high=limits.MAX_LR,
                                      help=f"peak learning rate (default: {_default('lr')}; warmup "
                                           f"{_default('warmup')} steps, then {_default('schedule')} decay to "
                                           f"min_lr {_default('min_lr')}: set both in --recipe)"),
        seed: Optional[int] = bounded(None, "--seed", low=0, high=limits.MAX_SEED,
                                      help=f"seed of weights and data (default: {_default('seed')})"),
        precision: Optional[str] = typer.Option(None, "--precision", help="bf16 | fp8 | fp32 (default: bf16 "
                                                "autocast on CUDA, fp32 on CPU)"),
        require_fp8: bool = typer.Option(False, "--require-fp8", help="fail instead of falling back from fp8"),
        compile_: bool = typer.Option(False, "--compile", help="torch.compile each residual layer on its own (one "
                                      "program per distinct layer: less compiling across specs)"),
        compile_model: bool = typer.Option(False, "--compile-model", help="torch.compile the whole forward as one "
                                           "program (each new pattern compiles anew)"),
        cuda_graph: bool = typer.Option(False, "--cuda-graph", help="capture the whole step as one CUDA graph "
                                        "after two plain steps and replay it (recipe cuda_graph; the result says "
                                        "whether it ran)"),
        eval_every: Optional[int] = bounded(None, "--eval-every", low=1, high=limits.MAX_STEPS,
                                            help=f"evaluate every this many steps (default: {_default('eval_every')}, "
                                                 "and at the last step)"),
        device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:N (default: cuda if present)"),
        nproc: Optional[int] = bounded(None, "--nproc", low=1, high=limits.MAX_NPROC,
                                       help="data-parallel processes under torchrun (one per "
                                            "GPU; gloo on CPU); --batch-size stays the global batch"),
        output: Optional[Path] = typer.Option(None, "-o", "--output", help="run folder to write: checkpoint, "
                                              "result.json (default: none, nothing written)"),
        resume: Optional[Path] = typer.Option(None, "--resume", help="continue the run in this folder"),
        init_from: Optional[Path] = typer.Option(None, "--init-from", help="finetune: start from this run folder's "
                                                 "weights (SPEC may be left out: the run's spec is used)"),
        teacher: Optional[Path] = typer.Option(None, "--teacher", help="distil from this run folder's model"),
        temperature: float = bounded(1.0, "--temperature", low=0, low_open=True, high=limits.MAX_TEMPERATURE,
                                      help="distillation temperature"),
        alpha: float = bounded(0.5, "--alpha", low=0, high=1,
                               help="weight of the distillation KL (1 - alpha: next-token)"),
        as_json: bool = typer.Option(False, "--json", help="print one JSON object (the run's record)")) -> None:
    """Train SPEC on a task for a short run; print the final metrics."""
    from ..errors import UserError
    from ..outputs import check_output
    from ..spec import load_spec
    from ..training import TaskSpec, train
    from ..training.checkpoint import read_definition

    if compile_ and compile_model:
        raise UserError("--compile and --compile-model: give one; allowed: --compile (each layer on its own) or "
                        "--compile-model (the whole forward as one program)")
    if precision is not None and precision not in ("bf16", "fp8", "fp32"):
        raise UserError(f"--precision: {_cut(repr(precision))} is not one of bf16, fp8, fp32")
    if output is not None and _looks_like_task_option(output):
        raise UserError(f"-o {_cut(str(output))}: -o/--output is the run folder; task options are given with "
                        f"-t/--task-option KEY=VALUE")
    if resume is not None and output is not None and Path(output) != Path(resume):
        raise UserError("--output and --resume name different folders; a resumed run stays in its folder")
    lengths = [name for name, value in (("--steps", steps), ("--tokens", tokens), ("--flops", flops))
               if value is not None]
    if len(lengths) > 1:
        raise UserError(f"{', '.join(lengths)}: give the run's length once; allowed: one of --steps, --tokens, "
                        f"--flops")
    if output is not None and resume is None:
        check_output(output, "--output", folder=True)  # before any work: an existing regular file, no permission, ...
    if spec_path is None and init_from is not None and resume is None:
        spec_path = str(Path(init_from) / "spec.yaml")  # finetune the run's own model
        if not Path(spec_path).is_file():
            raise UserError(f"--init-from {_cut(str(init_from))}: no spec.yaml there (not a run folder); give SPEC "
                            "or a folder written by `archsearch train -o`")
    spec = load_spec(spec_path) if spec_path is not None else None
    task_spec = TaskSpec(name=task, options=parse_task_options(task_option)) if task is not None else None
    overrides = dict(steps=steps, tokens=tokens, flops=flops, batch_size=batch_size, seq_len=seq_len, lr=lr, seed=seed,
                     precision=precision, require_fp8=require_fp8 or None,
                     compile="model" if compile_model else compile_ or None, cuda_graph=cuda_graph or None,
                     eval_every=eval_every)
    if init_from is not None:
        overrides["init_from"] = str(init_from)
    if teacher is not None:
        overrides["distill"] = {"teacher": str(teacher), "temperature": temperature, "alpha": alpha}
    if resume is not None:
        _, saved_recipe, _ = read_definition(Path(resume))
        recipe = build_recipe(recipe_file, overrides, base=saved_recipe)
    else:
        if spec is None or task_spec is None:
            raise UserError("archsearch train needs SPEC and --task (or --resume DIR)")
        recipe = build_recipe(recipe_file, overrides)
    result = train(spec, task_spec, recipe, out_dir=resume or output, progress=not as_json and sys.stderr.isatty(),
                   device=device, resume=resume is not None, nproc=nproc)
    if as_json:
        print(json.dumps(result.to_dict(), default=str))
    else:
        print_summary(result)
    if result.status != "completed":
        raise typer.Exit(1)


def print_summary(result) -> None:
    from rich.console import Console
    from rich.table import Table

    flops = f", {result.flops:.3g} FLOPs" if result.flops is not None else ""
    table = Table(title=f"{result.status}: {result.steps} steps, {result.tokens:,} tokens{flops}", show_header=False)
    for name, value in result.metrics.items():
        table.add_row(name, f"{value:.4f}")
    speed = f"{result.tokens_per_s:,.0f}" if result.tokens_per_s else "-"
    table.add_row("tokens/s", speed)
    table.add_row("MFU", f"{result.mfu:.1%}" if result.mfu is not None else f"- ({result.peak_flops_source})")
    table.add_row("precision", f"{result.precision} ({result.precision_reason})")
    if result.recipe.get("cuda_graph"):
        table.add_row("CUDA graph", result.extra.get("cuda_graph", "-"))
    table.add_row("wall time", f"{result.wall_time_s:.1f} s")
    if result.reason:
        table.add_row("reason", result.reason)
    if result.out_dir:
        table.add_row("run folder", result.out_dir)
    Console().print(table)
