"""The `archsearch` command. Each command group lives in its own module and imports heavy parts lazily."""

from __future__ import annotations

import sys

import click
import typer

from ..errors import UserError

app = typer.Typer(name="archsearch", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Declarative architecture search and ablation for hybrid language models.")


@app.command()
def version() -> None:
    """Print archsearch's version and the versions of the libraries it runs on."""
    from importlib.metadata import PackageNotFoundError, version as dist_version

    for name in ("archsearch", "torch", "pydantic", "optuna", "sqlalchemy"):
        try:
            print(f"{name} {dist_version(name)}")
        except PackageNotFoundError:
            print(f"{name} (not installed)")


def _register_all() -> None:
    from . import check_cmd, dashboard_cmd, kernels_cmd, spec_cmds, study_cmds, train_cmd

    for module in (spec_cmds, kernels_cmd, check_cmd, train_cmd, study_cmds, dashboard_cmd):
        module.register(app)


_register_all()


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors print one clear message on stderr and exit 2, never a traceback."""
    try:
        result = app(args=argv, standalone_mode=False)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except click.exceptions.Abort:
        print("aborted", file=sys.stderr)
        return 130
    except click.exceptions.ClickException as err:
        err.show(file=sys.stderr)
        return err.exit_code
    except click.exceptions.Exit as err:
        return err.exit_code
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
