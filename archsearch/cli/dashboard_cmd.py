"""`archsearch dashboard`: serve the read-only results dashboard over a storage URL."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def dashboard(
        storage: str = typer.Option("sqlite:///archsearch.db", "--storage", help="results database URL: "
                                    "sqlite:///FILE or postgresql://USER@HOST/DB"),
        host: str = typer.Option("127.0.0.1", "--host", help="address to bind; 127.0.0.1 keeps it to this machine"),
        port: int = typer.Option(8080, "--port", min=1, max=65535, help="TCP port"),
    ) -> None:
        """Serve a read-only web page over the results database (studies, trials, Pareto fronts, ablations)."""
        from ..dashboard.server import serve

        serve(storage, host=host, port=port)
