"""Reading and writing `config.json` files. The checkpoint export (torch, loaded lazily) builds on
`write_hf_config`: it writes the same config next to the weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..outputs import check_output, write_failed
from ..spec import ModelSpec
from .convert import HfImport, export_hf_config, import_hf, import_hf_config


def read_hf_config(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        if path.is_dir():
            path = path / "config.json"
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file; give a config.json or the folder that holds one") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UserError(f"{str(path)[:200]}: cannot read: {str(err)[:200]}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"{path}:{err.lineno}:{err.colno}: not valid JSON: {err.msg}") from None
    except (ValueError, RecursionError) as err:  # a number of over 4300 digits, nesting deeper than Python's stack
        raise UserError(f"{path}: not a usable JSON document: {str(err)[:200]}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a Hugging Face config is a JSON object, got {type(data).__name__}")
    return data


def load_hf_config(path: str | Path, *, name: str | None = None, max_context: int | None = None) -> ModelSpec:
    """The spec of a config file; warns (IgnoredConfigField) of each field archsearch ignored."""
    return import_hf_config(read_hf_config(path), name=name, max_context=max_context, source=str(path))


def load_hf_import(path: str | Path, *, name: str | None = None, max_context: int | None = None) -> HfImport:
    """The spec of a config file and the fields archsearch ignored."""
    return import_hf(read_hf_config(path), name=name, max_context=max_context, source=str(path))


def write_hf_config(spec: ModelSpec, out_dir: str | Path, family: str | None = None) -> Path:
    """Write `out_dir/config.json` for `spec` (creating the folder) and return its path."""
    config = export_hf_config(spec, family)
    out = check_output(out_dir, "-o", folder=True)
    target = out / "config.json"
    try:
        out.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    except OSError as err:
        raise write_failed(out, "-o", err) from None
    return target
