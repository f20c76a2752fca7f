"""YAML documents (study and space files) read into pydantic models, with every problem located at file:line:col."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import UserError
from ..spec.errors import SpecError, SpecIssue, format_path
from ..spec.loader import load_spec, parse_spec, read_document
from ..spec.model import ModelSpec

Marks = dict[tuple, yaml.Mark]
M = TypeVar("M", bound=BaseModel)


class FileError(UserError, ValueError):
    """An invalid study or space file; `issues` lists every problem with its location."""

    def __init__(self, what: str, issues: list[SpecIssue], source: str | None = None):
        self.issues = list(issues)
        self.source = source
        head = f"invalid {what}{f' {source}' if source else ''}: {len(self.issues)} problem(s)"
        super().__init__("\n".join([head] + [f"  - {issue}" for issue in self.issues]))


def locate(marks: Marks, path: tuple, source: str | None) -> str | None:
    """`file:line:col` of the deepest part of `path` present in the document."""
    probe = tuple(path)
    while probe not in marks and probe:
        probe = probe[:-1]
    mark = marks.get(probe)
    if mark is None:
        return source
    return f"{source or '<string>'}:{mark.line + 1}:{mark.column + 1}"


def issue(marks: Marks, source: str | None, path: tuple, message: str, value: Any = None,
          allowed: str | None = None) -> SpecIssue:
    return SpecIssue(tuple(path), message, value, allowed, locate(marks, path, source))


def _clean(loc: tuple) -> tuple:
    # pydantic adds union branch names ("int", "function-after[...]", a discriminator tag) to locations.
    return tuple(p for p in loc if not (isinstance(p, str) and (
        p in ("int", "float", "str", "bool", "list[...]", "none") or "[" in p or p.startswith(("function-",
                                                                                                "constrained-")))))


def validation_issues(err: ValidationError, marks: Marks, source: str | None) -> list[SpecIssue]:
    out: dict[tuple, SpecIssue] = {}
    for item in err.errors():
        path = _clean(item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if len(message) > 160:  # a validator's message may quote the input; never carry a whole document
            message = message[:157] + "..."
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        elif item["type"] == "missing":
            message = "required field is missing"
        value = item.get("input")
        shown = value if isinstance(value, (str, int, float, bool)) and item["type"] != "missing" else None
        out.setdefault((path, message), issue(marks, source, path, message, shown))
    return list(out.values())


def parse_model(model: type[M], data: Any, marks: Marks, source: str | None, what: str) -> M:
    if not isinstance(data, dict):
        got = "an empty document" if data is None else f"a {type(data).__name__}"
        raise FileError(what, [SpecIssue((), f"must be a mapping of fields, got {got}", location=source)], source)
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise FileError(what, validation_issues(err, marks, source), source) from None


def read_yaml(path: str | Path, what: str) -> tuple[Any, Marks, str]:
    """Read a YAML file; a missing file or bad syntax is a FileError naming it."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise FileError(what, [SpecIssue((), f"cannot read file: {err.strerror if isinstance(err, OSError) else err}",
                                         location=source)], source) from None
    try:
        data, marks = read_document(text, source)
    except SpecError as err:
        raise FileError(what, err.issues, source) from None
    return data, marks, source


def under(marks: Marks, key: str) -> Marks:
    """The marks of one section of a document, with paths relative to it."""
    return {k[1:]: v for k, v in marks.items() if k[:1] == (key,)}


def nested(key: str, issues: list[SpecIssue]) -> list[SpecIssue]:
    """Issues found inside one section, with their paths from the document's root."""
    return [SpecIssue((key,) + i.path, i.message, i.value, i.allowed, i.location) for i in issues]


def resolve_spec(key: str, raw: str | dict, marks: Marks, source: str | None, directory: Path) -> ModelSpec:
    """A spec section of a study file (`base:`, `target:`): an example name, a path relative to the file, or an
    inline spec; its problems are located under the section."""
    try:
        if isinstance(raw, dict):
            return parse_spec(raw, source, under(marks, key))
        relative = directory / raw
        return load_spec(relative if relative.is_file() else raw)
    except SpecError as err:
        raise FileError("study file", nested(key, err.issues), source) from None


def where(path: tuple) -> str:
    return format_path(path)
