"""`archsearch check SPEC --device a10g --context 128k`: does the spec serve that context on that GPU?"""

from __future__ import annotations

import json
from typing import Optional

import typer

from .. import limits
from .options import bounded


def register(app: typer.Typer) -> None:
    app.command("check")(check)


def check(
    spec: str = typer.Argument(..., help="Spec file (YAML/JSON) or example name."),
    device: str = typer.Option("a10g", "--device", help="Target GPU (catalog key or alias)."),
    context: Optional[str] = typer.Option(None, "--context", help="Tokens per sequence: 8192, 8k, 128k, 1M "
                                          "(default: the spec's max_context)."),
    batch: int = bounded(1, "--batch", low=1, high=limits.MAX_BATCH, help="Sequences served at once."),
    param_dtype: str = typer.Option("bf16", "--param-dtype", help="Weights dtype."),
    act_dtype: str = typer.Option("bf16", "--act-dtype", help="Activations and conv states dtype."),
    kv_dtype: str = typer.Option("bf16", "--kv-dtype", help="KV cache dtype."),
    state_dtype: str = typer.Option("fp32", "--state-dtype", help="SSM state dtype."),
    prefill_chunk: str = typer.Option("2k", "--prefill-chunk", help="Tokens per chunked-prefill step."),
    attention_scores: str = typer.Option("fused", "--attention-scores",
                                         help="fused (flash/cuDNN) or materialized (eager attention)."),
    buffer_fraction: Optional[float] = bounded(None, "--buffer-fraction", low=0, low_open=True, high=1,
                                               help="Budget = usable x this - reserve (default 0.95)."),
    reserve_gib: Optional[float] = bounded(None, "--reserve-gib", low=0, high=limits.MAX_RESERVE_GIB,
                                           help="Fixed reserve in GiB (default 1.3)."),
    devices: Optional[str] = typer.Option(None, "--devices", help="Your own device YAML on top of the catalog "
                                          "(or ARCHSEARCH_DEVICES)."),
    input_len: str = typer.Option("8k", "--input-len", help="Prompt tokens for the throughput projection."),
    output_len: str = typer.Option("16k", "--output-len", help="Generated tokens for the throughput projection."),
    compute_dtype: str = typer.Option("bf16", "--compute-dtype", help="Matmul dtype for the projection."),
    measure: bool = typer.Option(False, "--measure", help="Also build the model with random weights on this "
                                 "machine's GPU (or CPU) and measure peak memory and throughput."),
    decode_steps: int = bounded(8, "--decode-steps", low=1, high=limits.MAX_DECODE_STEPS,
                                help="Decode steps in the measured memory run."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Memory budget (analytic breakdown and verdict) and throughput projection of serving SPEC on a GPU."""
    from ..checks import CheckSettings, budget_policy, check_budget, load_catalog
    from ..checks.budget import check_context
    from ..checks.memory import MemoryModel
    from ..checks.roofline import project
    from ..checks.settings import normalize_dtype
    from ..errors import UserError
    from ..spec import load_spec, parse_size

    # sizes are read (bounded, 1 .. 1G tokens) before any work, so a 400-digit --context is one clear error
    context_tokens = parse_size(context, "--context") if context is not None else None
    chunk_tokens = parse_size(prefill_chunk, "--prefill-chunk")
    n_in, n_out = parse_size(input_len, "--input-len"), parse_size(output_len, "--output-len")
    model_spec = load_spec(spec)
    device_entry = load_catalog(devices).get(device)
    policy = budget_policy(device_entry.budget, buffer_fraction, reserve_gib,
                           names=("--buffer-fraction", "--reserve-gib"))
    if attention_scores not in ("fused", "materialized"):
        raise UserError(f"--attention-scores: {attention_scores!r} is not allowed; allowed: fused, materialized")
    settings = CheckSettings(param_dtype=param_dtype, act_dtype=act_dtype, kv_dtype=kv_dtype,
                             state_dtype=state_dtype, prefill_chunk=chunk_tokens,
                             attention_scores=attention_scores, policy=policy)
    # a budget question about a longer context is answered, with a warning that it needs context extension
    n_context, batch = check_context(model_spec, context_tokens if context is not None else model_spec.max_context,
                                     batch, context_arg="--context", batch_arg="--batch", beyond_max_context=True)
    model = MemoryModel(model_spec, settings)
    report = check_budget(model_spec, device_entry, n_context, batch, settings, model=model, beyond_max_context=True)
    projection = project(model_spec, device_entry, model, n_in, n_out, batch,
                         normalize_dtype(compute_dtype, "--compute-dtype"))
    measured = None
    if measure:
        from ..checks.measure import MeasurementDisturbed, measure_memory

        try:
            measured = measure_memory(model_spec, n_context, batch, settings, decode_steps=decode_steps)
        except MeasurementDisturbed as err:
            raise UserError(f"--measure: {err}") from None
    if as_json:
        out = report.to_dict()
        out["device_name"] = device_entry.name  # the catalog key's GPU, spelled out (a10 and a10g are two GPUs)
        out["throughput_projection"] = projection.to_dict()
        if measured is not None:
            reason = _unmeasured_reason(measured)
            if reason is None:
                out["measured"] = measured.to_dict()
            else:  # no allocator peak (CPU): null, why, and what the CPU run did measure
                out["measured"] = None
                out["measured_reason"] = reason
                out["measured_cpu"] = measured.to_dict()
        print(json.dumps(out, indent=2))
    else:
        _print_report(report, projection, measured, device_entry.name)
    if not report.fits:
        raise typer.Exit(1)


def _print_report(report, projection, measured, device_name: str) -> None:
    from rich.console import Console
    from rich.table import Table

    from ..checks import format_bytes
    from ..checks.sizes import format_count

    console = Console()
    b = report.breakdown
    table = Table(title=f"{report.spec_name} on {report.device} ({device_name}): context "
                        f"{format_count(report.context)} x batch {report.batch} (analytic estimate)")
    for column in ("component", "mamba2", "attention", "mlp", "embedding", "total"):
        table.add_column(column, justify="left" if column == "component" else "right")
    for component in ("weights", "kv_cache", "ssm_state", "conv_state"):
        cells = [format_bytes(b.per_kind[k][component]) if k in b.per_kind else "-"
                 for k in ("mamba2", "attention", "mlp", "embedding")]
        table.add_row(component, *cells, format_bytes(b.components[component]))
    table.add_row(f"prefill workspace (peak at {b.workspace_layer!r})", "", "", "", "",
                  format_bytes(b.components["prefill_workspace"]))
    table.add_row("[bold]total[/bold]", "", "", "", "", f"[bold]{format_bytes(report.total_bytes)}[/bold]")
    table.add_row("budget", "", "", "", "", format_bytes(report.budget_bytes))
    console.print(table)
    p = report.policy
    console.print(f"budget = {format_bytes(report.usable_bytes)} usable x {p.buffer_fraction} - {p.reserve_gib} GiB "
                  f"reserve = {format_bytes(report.budget_bytes)}")
    verdict = "[green]FITS[/green]" if report.fits else "[red]DOES NOT FIT[/red]"
    console.print(f"{verdict}: headroom {format_bytes(report.headroom_bytes)}; largest context at batch "
                  f"{report.batch}: {report.largest_context} (max_context {report.max_context}); largest batch at "
                  f"{report.context} tokens: {report.largest_batch}")
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    console.print(f"throughput, {projection.label}: at {projection.input_len} tokens in / {projection.output_len} "
                  f"out (--input-len/--output-len, not --context) and batch {projection.batch}: prefill {projection.prefill_tokens_per_s:,.0f} tok/s "
                  f"({projection.prefill_bound}-bound), decode {projection.decode_tokens_per_s:,.0f} tok/s "
                  f"({projection.decode_bound}-bound), output {projection.output_tokens_per_s:,.0f} tok/s")
    if measured is not None and _unmeasured_reason(measured) is not None:
        console.print(f"measured on {measured.device}: peak not measured ({_unmeasured_reason(measured)}); built "
                      f"weights {format_bytes(measured.weight_bytes)} and caches {format_bytes(measured.cache_bytes)} "
                      f"vs estimated total {format_bytes(measured.estimated_bytes)}")
    elif measured is not None:
        console.print(f"measured on {measured.device}: peak {format_bytes(measured.peak_bytes)} vs estimated "
                      f"{format_bytes(measured.estimated_bytes)} ({measured.error:+.1%})")


def _unmeasured_reason(measured) -> str | None:
    """Why a --measure run has no peak (None when it has one)."""
    if measured.peak_bytes is not None:
        return None
    if measured.device == "cpu":
        return "no GPU on this machine: the CPU run has no allocator peak; run --measure on a CUDA GPU"
    return "the run reported no allocator peak"
