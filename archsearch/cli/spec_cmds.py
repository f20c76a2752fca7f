"""Commands about spec files: validate, show, schema, import-hf, export-hf."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from .. import limits
from .options import bounded

# Colours of block kinds in `show`, given in archsearch.spec.kinds.KINDS order (then reused).
PALETTE = ("black on green3", "black on orange1", "black on deep_sky_blue1", "black on orchid", "black on yellow3",
           "black on grey70")


def _kind_looks() -> tuple[dict[str, str], dict[str, str]]:
    """(style, label) of every block kind, from the kinds table (a new kind needs no row here)."""
    from ..spec.kinds import KINDS
    styles = {kind: PALETTE[i % len(PALETTE)] for i, kind in enumerate(KINDS)}
    return styles, {kind: cls.label for kind, cls in KINDS.items()}


def printable(text: object, keep: str = "") -> str:
    """`text` safe for a terminal: control characters (ESC sequences, C1 codes, DEL) escaped as \\xNN / \\uNNNN,
    except those in `keep` (e.g. newlines of a CSV). One helper for every command printing user-chosen names."""
    out = []
    for ch in str(text):
        code = ord(ch)
        if ch not in keep and (code < 0x20 or 0x7F <= code <= 0x9F or code in (0x2028, 0x2029)):
            out.append(f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
    app.command("show")(show)
    app.command("schema")(schema)
    app.command("import-hf")(import_hf)
    app.command("export-hf")(export_hf)


# ---------------------------------------------------------------------------------------------- validate
def validate(files: list[str] = typer.Argument(..., help="spec files (YAML or JSON) or example names")) -> None:
    """Check spec files; print OK and any warnings per file. Exit 2 if any is invalid."""
    from ..spec import SpecError, load_spec

    failed = 0
    for name in files:
        try:
            spec = load_spec(name)
        except SpecError as err:
            failed += 1
            print(printable(f"error: {err}", keep="\n"), file=sys.stderr)
            continue
        print(printable(f"OK {name} ({spec.name}: {spec.n_layers} layers)"))
        for issue in spec.warnings():
            print(printable(f"  warning: {issue}"))
    if failed:
        print(f"{failed} of {len(files)} file(s) invalid", file=sys.stderr)
        raise typer.Exit(2)


# ---------------------------------------------------------------------------------------------- show
def show(spec_path: str = typer.Argument(..., metavar="SPEC", help="spec file or example name"),
         context: Optional[str] = typer.Option(None, "--context", help="sequence length, e.g. 4096, 128k, 1M "
                                               "(default: the spec's max_context)"),
         batch: int = bounded(1, "--batch", low=1, high=limits.MAX_BATCH, help="batch size for the inference state"),
         as_json: bool = typer.Option(False, "--json", help="print one JSON object instead of tables")) -> None:
    """Draw the layer pattern and report parameters, FLOPs/token and inference state."""
    from ..errors import UserError
    from ..spec import load_spec, parse_size, summarize

    spec = load_spec(spec_path)
    tokens = parse_size(context, "--context") if context is not None else None
    if tokens is not None and tokens > spec.max_context:
        raise UserError(f"--context: {context} ({tokens} tokens) exceeds the spec's max_context "
                        f"({spec.max_context}); allowed: 1 .. {spec.max_context}")
    summary = summarize(spec, tokens, batch)
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    _print_summary(spec, summary)


def _human(n: float, unit: str = "") -> str:
    for scale, suffix in ((1e12, "T"), (1e9, "G" if unit else "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{suffix}{unit}"
    return f"{n:g}{unit}"


def _bytes(n: int) -> str:
    for scale, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= scale:
            return f"{n / scale:.2f} {suffix}"
    return f"{n} B"


def _print_summary(spec, summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False)
    styles, labels = _kind_looks()
    console.print(Text(printable(spec.name), style="bold") + Text(f"  {summary['n_layers']} layers, d_model "
                                                            f"{spec.d_model}, vocab {spec.vocab_size}, "
                                                            f"max context {spec.max_context}"))
    strip = Text()
    for layer in spec.layers:
        strip.append(printable(layer.symbol), style=styles[layer.kind])
    console.print(strip)
    legend = Text("legend: ")
    for kind, count in summary["layers_per_kind"].items():
        symbols = ", ".join(printable(repr(s)) for s, b in summary["blocks"].items() if b["kind"] == kind)
        legend.append(f" {labels[kind]} ", style=styles[kind]).append(f" {symbols} x{count}   ")
    console.print(legend)
    console.print(Text(printable(f"pattern: {summary['pattern']}")))

    params = summary["parameters"]
    table = Table(title="parameters", title_justify="left")
    table.add_column("part")
    table.add_column("count", justify="right")
    table.add_column("exact", justify="right")
    rows = [("total", params["total"]), ("embedding", params["embedding"]), ("lm head", params["lm_head"]),
            ("non-embedding", params["non_embedding"])]
    rows += [(f"  {labels[k]} layers", v) for k, v in params["per_kind"].items()]
    for label, value in rows:
        table.add_row(label, _human(value), f"{value:,}")
    table.add_row("weights", _bytes(summary["weight_bytes"]), summary["param_dtype"])
    console.print(table)

    blocks = Table(title="blocks", title_justify="left")
    for column in ("symbol", "kind", "layers", "params / layer"):
        blocks.add_column(column)
    for symbol, entry in summary["blocks"].items():
        kind = entry["kind"] + (f" (window {entry['window']})" if "window" in entry else "")
        blocks.add_row(Text(printable(symbol), style=styles[entry["kind"]]), kind, str(entry["layers"]),
                       f"{entry['parameters_per_layer']:,}")
    console.print(blocks)

    flops = summary["flops"]
    console.print(f"FLOPs/token at seq_len {flops['seq_len']}: training {_human(flops['training_per_token'])}, "
                  f"forward {_human(flops['forward_per_token'])}, decode {_human(flops['decode_per_token'])}")
    state = summary["inference_state"]
    per_kind = ", ".join(f"{labels[k]} {_bytes(v)}" for k, v in state["per_kind"].items()) or "none"
    console.print(f"inference state at context {state['context']}, batch {state['batch']}: {_bytes(state['total'])} "
                  f"(KV cache {_bytes(state['kv_cache'])}, SSM state {_bytes(state['ssm_state'])}, conv state "
                  f"{_bytes(state['conv_state'])}; per kind: {per_kind})")
    for warning in summary["warnings"]:
        console.print(Text("warning: ", style="yellow") + Text(printable(warning)))


# ---------------------------------------------------------------------------------------------- schema
SCHEMA_KINDS = ("spec", "study", "space")


def schema(output: Optional[Path] = typer.Option(None, "-o", "--output", help="write the schema to this file"),
           kind: str = typer.Option("spec", "--kind", help="which file: spec, study (studies/*.yaml) or space "
                                    "(spaces/*.yaml)")) -> None:
    """Print the JSON Schema of a spec, study or space file (for editors: `# yaml-language-server: $schema=...`)."""
    from ..errors import UserError
    from ..outputs import check_output

    if kind not in SCHEMA_KINDS:
        raise UserError(f"--kind {printable(kind)[:40]!r}: allowed: {', '.join(SCHEMA_KINDS)}")
    if output is not None:
        check_output(output, "-o", folder=False)
    if kind == "spec":
        from ..spec import ModelSpec

        document = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                    **ModelSpec.model_json_schema(mode="validation")}
    else:
        from ..studies.schemas import space_schema, study_schema

        document = study_schema() if kind == "study" else space_schema()
    text = json.dumps(document, indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
        return
    _write(output, text)
    print(f"wrote {output}")


# ---------------------------------------------------------------------------------------------- import / export
def import_hf(config: Path = typer.Argument(..., help="a Hugging Face config.json (or its folder)"),
              output: Optional[Path] = typer.Option(None, "-o", "--output", help="write the spec YAML here"),
              name: Optional[str] = typer.Option(None, "--name", help="spec name (default: from the config)"),
              max_context: Optional[str] = typer.Option(None, "--max-context", help="override the max context, "
                                                        "e.g. 128k")) -> None:
    """Write the spec of a Hugging Face config (NemotronH, Mamba2, Gemma2, Qwen3, Qwen2, Llama)."""
    from ..hf import load_hf_import
    from ..outputs import check_output
    from ..spec import dump_spec, parse_size

    if name is not None and not name.strip():
        from ..errors import UserError

        raise UserError(f"--name {name!r}: a spec name cannot be empty; give a name, or leave --name out to take "
                        "the config's")
    tokens = parse_size(max_context, "--max-context") if max_context is not None else None
    if output is not None:
        check_output(output, "-o", folder=False)
    spec, ignored = load_hf_import(config, name=name, max_context=tokens)
    for issue in ignored:  # never dropped silently: each field archsearch did not read is named
        print(printable(f"warning: {issue}"), file=sys.stderr)
    text = dump_spec(spec)
    if output is None:
        sys.stdout.write(text)
        return
    _write(output, text)
    print(printable(f"wrote {output} ({spec.name}: {spec.n_layers} layers)"))


def export_hf(spec_path: str = typer.Argument(..., metavar="SPEC", help="spec file, example name, or a training "
                                             "run folder (its spec.yaml and model.safetensors)"),
              output: Path = typer.Option(..., "-o", "--output", help="folder to write config.json into"),
              family: Optional[str] = typer.Option(None, "--family", help="nemotron_h, mamba2, gemma2, qwen3, "
                                                   "qwen2 or llama (default: the one that fits)"),
              checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="our state dict (.safetensors, "
                                                        "or a torch file): also write model.safetensors (default "
                                                        "for a run folder: its model.safetensors)")) -> None:
    """Write the Hugging Face config.json of a spec, or list what the family cannot express; with weights (a run
    folder or --checkpoint), also model.safetensors under Hugging Face names."""
    from ..hf import usage_notes, write_hf_config
    from ..outputs import check_output
    from ..spec import load_spec

    check_output(output, "-o", folder=True)
    if Path(spec_path).is_dir():
        from ..hf.checkpoint import run_folder

        spec_file, weights = run_folder(spec_path)
        spec = load_spec(spec_file)
        checkpoint = checkpoint or weights
    else:
        spec = load_spec(spec_path)
    if checkpoint is not None:
        from ..hf.checkpoint import export_checkpoint_file

        out = export_checkpoint_file(spec, checkpoint, output, family)
        print(f"wrote {out / 'config.json'} and {out / 'model.safetensors'}")
        config = json.loads((out / "config.json").read_text())
    else:
        target = write_hf_config(spec, output, family)
        config = json.loads(target.read_text())
        print(f"wrote {target} ({config['model_type']})")
    for note in usage_notes(config):
        print(printable(f"note: {note}"), file=sys.stderr)


def _write(path: Path, text: str) -> None:
    from ..outputs import write_failed

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as err:
        raise write_failed(path, "-o", err) from None
