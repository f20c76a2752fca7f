"""Placeholder module: its command group is added by the issue that builds it."""

import typer


def register(app: typer.Typer) -> None:
    """Adds this module's commands to the `archsearch` app (none yet)."""
