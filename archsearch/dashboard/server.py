"""Run the dashboard under uvicorn: the database is checked, then the port is bound by us and handed to uvicorn,
so a port already in use or a host that is no address of this machine is one clear error (exit 2 in the CLI)
before anything is served, instead of uvicorn's log line and exit 3."""

from __future__ import annotations

import socket

import uvicorn

from ..errors import UserError
from .app import create_app


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port), or UserError naming --host/--port and why not."""
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise UserError(f"--port {port!r}: not a TCP port; allowed: 1 .. 65535")
    shown = host if len(host) <= 80 else host[:77] + "..."
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError, ValueError) as err:
        raise UserError(f"--host {shown!r}: not an address or host name this machine can resolve ({err}); allowed: "
                        "an address of this machine, e.g. 127.0.0.1 (this machine only) or 0.0.0.0 (all)") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT does not block
        sock.bind(address)
        sock.listen(2048)
    except OSError as err:
        sock.close()
        raise UserError(f"--host {shown} --port {port}: cannot listen there: {err.strerror or err}; choose another "
                        "--port (or stop what uses it), or an address of this machine for --host") from None
    sock.setblocking(False)
    return sock


def serve(storage_url: str, *, host: str = "127.0.0.1", port: int = 8080) -> None:
    app = create_app(storage_url)  # raises StorageError (exit 2 in the CLI) for a bad URL or database
    sock = bind(host, port)
    print(f"archsearch dashboard on http://{host}:{port}/ (read-only; Ctrl-C stops)", flush=True)
    config = uvicorn.Config(app, log_level="warning", server_header=False, proxy_headers=False)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
