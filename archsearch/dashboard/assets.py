"""Every asset the pages load comes from this server: our own files and plotly.js.

plotly.js is the "basic" bundle (trace types bar, pie and scatter; 1.2 MB), kept in static/ beside its licence,
rather than the full bundle of the plotly package (4.8 MB, every trace type): evaluating the full one is a single
task of about 0.85 s on a 2-core machine, and a click on the trials table while it ran waited for it (see
bench/RESULTS.md, Dashboard). The Python plotly package still builds the figures; its plotly.js major version must
match the bundle's (tests/dashboard/test_http.py checks it).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles

PLOTLY_BUNDLE = "plotly-basic.min.js"
PLOTLY_TRACE_TYPES = frozenset({"bar", "pie", "scatter"})  # what the basic bundle can draw


def _static_dir() -> Path:
    return Path(str(resources.files("archsearch.dashboard") / "static"))


def plotly_js_path() -> Path:
    path = _static_dir() / PLOTLY_BUNDLE
    if not path.is_file():
        raise FileNotFoundError(f"{PLOTLY_BUNDLE} is missing from the installed archsearch package ({path})")
    return path


def static_files() -> StaticFiles:
    return StaticFiles(directory=str(_static_dir()))


async def plotly_js(request: Request) -> Response:
    return FileResponse(plotly_js_path(), media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=86400"})
