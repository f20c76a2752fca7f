"""Server-side Jinja2 templates: autoescape on for every template, so each stored string is HTML-escaped."""

from __future__ import annotations

import json
import math
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from ..storage.export import finite  # noqa: F401 - the one non-finite -> null rule, re-exported here


def fmt_number(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 1000:
        return f"{int(value):,}"
    return f"{value:.4g}"


def fmt_bytes(value: Any) -> str:
    if value is None:
        return "—"
    value = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.3g} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    return str(value)


def strict_json(value: Any, **kwargs: Any) -> str:
    """Strict JSON text (no `Infinity` or `NaN`): non-finite floats become null."""
    return json.dumps(finite(value), default=str, allow_nan=False, **kwargs)


def json_script(value: Any) -> Markup:
    """JSON for a `<script type="application/json">` block: `<`, `>` and `&` escaped so no stored string can
    close the element or start markup."""
    text = strict_json(value)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


def make_environment() -> Environment:
    env = Environment(loader=PackageLoader("archsearch.dashboard", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = fmt_number
    env.filters["bytes"] = fmt_bytes
    env.filters["json_script"] = json_script
    return env
