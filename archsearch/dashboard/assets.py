"""Every asset the pages load comes from this server: our own files and plotly.js from the plotly package."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles


def plotly_js_path() -> Path:
    path = Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))
    if not path.is_file():
        raise FileNotFoundError(f"plotly.min.js is missing from the installed plotly package ({path})")
    return path


def static_files() -> StaticFiles:
    return StaticFiles(directory=str(resources.files("archsearch.dashboard") / "static"))


async def plotly_js(request: Request) -> Response:
    return FileResponse(plotly_js_path(), media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=86400"})
