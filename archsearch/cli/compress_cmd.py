"""`archsearch compress PARENT_RUN --study FILE`: prune a trained parent to fit a budget and distil the child (the
logic is archsearch.compression; this module only reads the arguments and prints)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

STUDY_HELP = ("compression study file (YAML): calibration, search axes (d_model, n_layers, block widths), "
              "constraints, distill, recipe, final, sampler, n_trials, storage; see archsearch.compression.file")


def compress_command(
        parent: Path = typer.Argument(..., metavar="PARENT_RUN", help="the parent's run folder (spec.yaml, "
                                      "recipe.json, task.json, model.safetensors)"),
        study: Path = typer.Option(..., "--study", help=STUDY_HELP),
        output: Optional[Path] = typer.Option(None, "-o", "--output", help="folder for the trials' run folders, the "
                                              "best child (best/) and compression.json (default: "
                                              "PARENT_RUN/compression/STUDY_NAME)"),
        storage: Optional[str] = typer.Option(None, help="database URL (default: the file's `storage:`)"),
        rescore: bool = typer.Option(False, "--rescore", help="score the parent's importance again even if "
                                     "PARENT_RUN/importance.safetensors exists"),
        as_json: bool = typer.Option(False, "--json", help="print the summary as one JSON object")) -> None:
    """Score PARENT_RUN's importance, search pruned children as an Optuna study (screened by the file's
    constraints, ranked by a short distillation from the parent), and distil the best one longer.

    The study is stored like any study (`archsearch study list`, the dashboard); the summary reports the
    agreement of the distilled ranking with the zero-shot one (Kendall's tau)."""
    from ..compression.file import load_compression_file
    from ..compression.parent import read_parent
    from ..compression.search import compress, outcome_json
    from ..outputs import check_output

    read_parent(parent)  # a clear error before anything is written
    config = load_compression_file(study)
    out = output if output is not None else parent / "compression" / config.name
    check_output(out, "--output", folder=True)
    outcome = compress(parent, config, out, storage=storage, live=None if not as_json else False, rescore=rescore)
    if as_json:
        print(outcome_json(outcome))
        return
    counts = ", ".join(f"{n} {status}" for status, n in sorted(outcome.counts.items()))
    print(f"study {outcome.study} in {outcome.storage}: {counts}")
    for row in outcome.ranked:
        print(f"  #{row['number']:<4} {row['pattern']:<24} {row['n_params']:>12,} params  "
              f"val_loss={row['val_loss']:.4g}  zero-shot={row['zero_shot_loss']:.4g}")
    tau = outcome.kendall_tau
    agreement = "n/a (fewer than 2 trained)" if tau is None else f"{tau:.3f}"
    print(f"Kendall tau (distilled vs zero-shot ranking): {agreement}")
    if outcome.final is not None:
        metrics = outcome.final.get("metrics") or {}
        print(f"best child #{outcome.best['number']} distilled {outcome.final.get('steps')} steps in "
              f"{outcome.final['out_dir']}: val_loss={metrics.get('val_loss', float('nan')):.4g}")
    print(f"summary: {json.dumps(str(out / 'compression.json'))}")


def register(app: typer.Typer) -> None:
    app.command("compress")(compress_command)
