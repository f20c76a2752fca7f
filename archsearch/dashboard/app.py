"""The dashboard's ASGI app: read-only pages and JSON over one results database, every asset served locally."""

from __future__ import annotations

import logging

import optuna
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import UserError, first_line
from . import api, pages
from .assets import plotly_js, static_files
from .importance import ImportanceCache
from .optuna_source import OptunaSource
from .queries import NotFound, Repository
from .readonly import open_readonly
from .schema import check_archsearch_database
from .templating import make_environment

log = logging.getLogger("archsearch.dashboard")

# No inline script may run: the pages load only our own files, so a stored string can never become code.
# Plotly needs inline styles; `data:` images are its toolbar icons.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
                               "frame-ancestors 'none'; form-action 'self'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


class SecurityHeaders:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.decode().lower() not in SECURITY_HEADERS]
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = dict(message, headers=headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _error(request: Request, status: int, title: str, message: str) -> Response:
    if _wants_json(request):
        return JSONResponse({"error": message}, status_code=status)
    return pages.render(request, "error.html", status_code=status, title=title, message=message)


async def _not_found(request: Request, exc: Exception) -> Response:
    what = str(exc) if isinstance(exc, NotFound) else "this page"
    return _error(request, 404, "Not found", f"{what} does not exist in this database.")


async def _bad_request(request: Request, exc: Exception) -> Response:
    return _error(request, 400, "Bad request", str(exc))


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return await _not_found(request, exc)
    return _error(request, exc.status_code, f"Error {exc.status_code}", str(exc.detail))


async def _database(request: Request, exc: Exception) -> Response:
    reason = first_line(exc)
    log.warning("database error on %s: %s", request.url.path, reason)
    return _error(request, 503, "Database unavailable", f"the results database could not be read: {reason}")


async def _internal(request: Request, exc: Exception) -> Response:
    log.exception("error on %s", request.url.path)  # the traceback goes to the server's log, never the page
    return _error(request, 500, "Internal error", "the dashboard hit an internal error; the server log has details.")


def create_app(storage_url: str) -> Starlette:
    """The app over `storage_url`; raises `StorageError` (a UserError) if it is not a readable archsearch
    database, before any server starts."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    engine = open_readonly(storage_url)
    check_archsearch_database(engine)
    repo = Repository(engine)
    routes = [
        Route("/", pages.index, methods=["GET"]),
        Route("/study/{study_id:int}", pages.study, methods=["GET"]),
        Route("/study/{study_id:int}/compare", pages.compare, methods=["GET"]),
        Route("/ablation/{ablation_id:int}", pages.ablation_page, methods=["GET"]),
        Route("/api/study/{study_id:int}/summary", api.study_summary, methods=["GET"]),
        Route("/api/study/{study_id:int}/trials", api.trials, methods=["GET"]),
        Route("/api/study/{study_id:int}/pareto", api.pareto, methods=["GET"]),
        Route("/api/study/{study_id:int}/memory", api.memory, methods=["GET"]),
        Route("/api/study/{study_id:int}/curves", api.curves, methods=["GET"]),
        Route("/api/study/{study_id:int}/importance", api.importance, methods=["GET"]),
        Route("/api/study/{study_id:int}/optuna", api.optuna_plot, methods=["GET"]),
        Route("/assets/plotly-basic.min.js", plotly_js, methods=["GET"]),
        Mount("/static", app=static_files(), name="static"),
    ]
    handlers = {NotFound: _not_found, UserError: _bad_request, HTTPException: _http,
                sa.exc.DBAPIError: _database, Exception: _internal}
    app = Starlette(routes=routes, exception_handlers=handlers, middleware=[Middleware(SecurityHeaders)])
    app.state.repo = repo
    app.state.templates = make_environment()
    app.state.optuna_source = OptunaSource(storage_url, engine)
    app.state.importance = ImportanceCache(repo, app.state.optuna_source)
    app.state.storage_url = storage_url
    return app
