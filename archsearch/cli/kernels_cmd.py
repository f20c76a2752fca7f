"""`archsearch kernels`: which backends each op has, which are available, and which one a call would use."""

from __future__ import annotations

import json

import typer


def register(app: typer.Typer) -> None:
    app.command("kernels")(kernels)


def kernels(as_json: bool = typer.Option(False, "--json", help="print the report as JSON")) -> None:
    """Print each kernel op's backends (priority, availability and why) and the one a default call uses."""
    from ..kernels import describe, format_report

    if as_json:
        print(json.dumps(describe(), indent=2, default=str))
    else:
        print(format_report(), end="")
