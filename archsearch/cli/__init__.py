"""The `archsearch` command. Each command group lives in its own module and imports heavy parts lazily."""

from __future__ import annotations

import sys

import typer

from ..errors import UserError

app = typer.Typer(name="archsearch", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Declarative architecture search and ablation for hybrid language models.")


def _print_versions() -> None:
    from importlib.metadata import PackageNotFoundError, version as dist_version

    for name in ("archsearch", "torch", "pydantic", "optuna", "sqlalchemy"):
        try:
            print(f"{name} {dist_version(name)}")
        except PackageNotFoundError:
            print(f"{name} (not installed)")


def _version_flag(value: bool) -> None:
    if value:
        _print_versions()
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", is_eager=True, callback=_version_flag,
                                       help="Print the versions of archsearch and its libraries, and exit.")) -> None:
    """Declarative architecture search and ablation for hybrid language models."""


@app.command()
def version() -> None:
    """Print archsearch's version and the versions of the libraries it runs on (as --version does)."""
    _print_versions()


def _register_all() -> None:
    from . import ablate_cmd, check_cmd, compress_cmd, dashboard_cmd, kernels_cmd, spec_cmds, study_cmds, train_cmd

    for module in (spec_cmds, kernels_cmd, check_cmd, train_cmd, study_cmds, ablate_cmd, compress_cmd, dashboard_cmd):
        module.register(app)


_register_all()


def shorten_echoes(message: str) -> str:
    """A user error as printed: a number of 40+ digits or any unbroken run of 300+ characters (a value typed or
    read by mistake, echoed back by the check that refused it) is shortened, so no error fills the terminal."""
    import re

    message = re.sub(r"\d{40,}", lambda m: f"{m.group()[:12]}...({len(m.group())} digits)", message)
    return re.sub(r"\S{300,}", lambda m: f"{m.group()[:60]}...({len(m.group())} characters)", message)


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors print one clear message on stderr and exit 2, never a traceback.

    Usage errors (unknown option, bad value) are click's and also exit 2.
    """
    try:
        app(args=argv, prog_name="archsearch")  # standalone: click prints its own usage errors and exits
    except UserError as err:
        print(f"error: {shorten_echoes(str(err))}", file=sys.stderr)
        return 2
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
