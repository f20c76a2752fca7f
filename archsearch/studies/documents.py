"""YAML documents (study and space files) read into pydantic models, with every problem located at file:line:col."""

from __future__ import annotations

from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

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


def _is_branch(part: Any) -> bool:
    """A union branch name pydantic adds to a location ("int", "function-after[...]", "tagged-union[...]")."""
    return isinstance(part, str) and (part in ("int", "float", "str", "bool", "list[...]", "none") or "[" in part
                                      or part.startswith(("function-", "constrained-")))


def _clean(loc: tuple) -> tuple:
    # Branch names go, and so does the discriminator tag that follows a tagged union ("categorical").
    out, after_tagged = [], False
    for part in loc:
        if not (_is_branch(part) or after_tagged):
            out.append(part)
        after_tagged = isinstance(part, str) and part.startswith("tagged-union[")
    return tuple(out)


def _models_in(annotation: Any) -> list[Any]:
    """The leaf types of an annotation: Annotated, Optional and Union unwrapped."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _models_in(get_args(annotation)[0])
    if origin in (Union, UnionType):
        return [leaf for arg in get_args(annotation) for leaf in _models_in(arg)]
    return [annotation]


def _step(leaves: list[Any], part: Any) -> list[Any]:
    """The types one location part leads to: a model's field, a dict's value, a list's item, or (for a
    discriminator tag) the union members tagged so; [] when `part` selects nothing (a branch name)."""
    models = [t for t in leaves if isinstance(t, type) and issubclass(t, BaseModel)]
    tagged = [m for m in models if isinstance(part, str) and any(
        get_origin(f.annotation) is Literal and part in get_args(f.annotation) for f in m.model_fields.values())]
    if tagged and not any(part in m.model_fields for m in models):
        return tagged
    out = []
    for leaf in leaves:
        origin = get_origin(leaf)
        if leaf in models and part in leaf.model_fields:
            out += _models_in(leaf.model_fields[part].annotation)
        elif origin is dict and isinstance(part, str):
            out += _models_in(get_args(leaf)[1])
        elif origin is list and isinstance(part, int):
            out += _models_in(get_args(leaf)[0])
    return out


def allowed_fields(model: type[BaseModel], loc: tuple) -> list[str]:
    """The field names allowed where pydantic's raw location `loc` (of an unknown field) points, from the models'
    own fields: what an "unknown field" error lists."""
    leaves: list[Any] = [model]
    for part in loc[:-1]:
        leaves = _step(leaves, part) or leaves
    names: list[str] = []
    for leaf in leaves:
        if isinstance(leaf, type) and issubclass(leaf, BaseModel):
            names += [n for n in leaf.model_fields if n not in names]
    return names


def validation_issues(err: ValidationError, marks: Marks, source: str | None,
                      model: type[BaseModel] | None = None) -> list[SpecIssue]:
    """One issue per problem; an unknown field lists the allowed ones (given `model`, the validated class). Where a
    value failed as a mapping (a model of a union), the same value's "not an int / str / ..." errors from the
    union's scalar branches are dropped: they only repeat that it is not a scalar."""
    items = err.errors()
    deeper = {_clean(i["loc"])[:-1] for i in items if i["type"] != "missing" and len(_clean(i["loc"])) > 1}
    deeper |= {p[:k] for p in deeper for k in range(len(p))}
    out: dict[tuple, SpecIssue] = {}
    for item in items:
        path = _clean(item["loc"])
        if item["type"].endswith("_type") and path in deeper and isinstance(item.get("input"), dict):
            continue
        message = item["msg"].removeprefix("Value error, ")
        if len(message) > 160:  # a validator's message may quote the input; never carry a whole document
            message = message[:157] + "..."
        allowed = None
        if item["type"] == "extra_forbidden":
            message = "unknown field"
            names = allowed_fields(model, item["loc"]) if model is not None else []
            allowed = "fields: " + ", ".join(names) if names else None
        elif item["type"] == "missing":
            message = "required field is missing"
        value = item.get("input")
        shown = value if isinstance(value, (str, int, float, bool)) and item["type"] != "missing" else None
        out.setdefault((path, message), issue(marks, source, path, message, shown, allowed))
    return list(out.values())


def parse_model(model: type[M], data: Any, marks: Marks, source: str | None, what: str) -> M:
    if not isinstance(data, dict):
        got = "an empty document" if data is None else f"a {type(data).__name__}"
        raise FileError(what, [SpecIssue((), f"must be a mapping of fields, got {got}", location=source)], source)
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise FileError(what, validation_issues(err, marks, source, model), source) from None


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
