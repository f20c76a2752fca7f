"""Run the dashboard under uvicorn: the database is checked before the port opens."""

from __future__ import annotations

import uvicorn

from .app import create_app


def serve(storage_url: str, *, host: str = "127.0.0.1", port: int = 8080) -> None:
    app = create_app(storage_url)  # raises StorageError (exit 2 in the CLI) for a bad URL or database
    print(f"archsearch dashboard on http://{host}:{port}/ (read-only; Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False, proxy_headers=False)
