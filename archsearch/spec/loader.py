"""Reading and writing spec documents (YAML or JSON), with errors that cite file:line:column."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .kinds import BLOCK_KINDS, KINDS
from .kinds.rope_scaling import ROPE_SCALINGS
from .errors import SpecError, SpecIssue, _IssueGroup
from .model import InitSpec, ModelSpec, NormSpec, pattern_issues

Path_ = tuple[str | int, ...]


# ---------------------------------------------------------------------------------------------- YAML with marks
class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (plain YAML silently keeps the last one).

    Merge keys (`<<: *base`) are allowed: keys they bring in may be overridden by keys written in the mapping.
    """

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key, e.g. a list used as a key
                raise yaml.constructor.ConstructorError(None, None, "a mapping key must be a plain value",
                                                        key_node.start_mark) from None
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {_short(key)} (first at line {seen[key].line + 1})",
                    key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def _short(value: Any, limit: int = 80) -> str:
    """repr of a value for an error message, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _cut(message: str, limit: int = 160) -> str:
    """A message that quotes the input, cut so that an error never carries a whole document."""
    return message if len(message) <= limit else message[: limit - 3] + "..."


# A spec has a few hundred fields; YAML aliases can make a short file stand for billions of nodes
# ("billion laughs"), which no spec needs. MAX_NODES bounds the document as if every alias were written out in
# full (merge keys included); an alias inside its own anchor (`a: &a [*a]`) is refused outright.
MAX_NODES = 100_000


def _expanded_size(root: yaml.Node, source: str | None) -> int:
    """Nodes of the document with every alias written out; SpecError if recursive or over MAX_NODES.

    Each distinct node is visited once (sizes are memoised), so a bomb is refused in time linear in its text.
    """
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]

    def children(node: yaml.Node) -> list[yaml.Node]:
        if isinstance(node, yaml.MappingNode):
            return [part for pair in node.value for part in pair]
        if isinstance(node, yaml.SequenceNode):
            return list(node.value)
        return []

    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            total = 1 + sum(size[id(child)] for child in children(node))
            if total > MAX_NODES:
                raise SpecError([SpecIssue((), f"the document expands to more than {MAX_NODES} values through "
                                           f"YAML aliases; allowed: at most {MAX_NODES} (a spec is far smaller)",
                                           location=_where(source, node.start_mark))], source)
            size[key] = total
            continue
        if key in size:
            continue
        if key in on_path:
            raise SpecError([SpecIssue((), "recursive YAML alias (an alias inside its own anchor); allowed: "
                                       "aliases to anchors defined and closed earlier",
                                       location=_where(source, node.start_mark))], source)
        on_path.add(key)
        stack.append((node, True))
        for child in children(node):
            if id(child) in on_path:
                raise SpecError([SpecIssue((), "recursive YAML alias (an alias inside its own anchor); allowed: "
                                           "aliases to anchors defined and closed earlier",
                                           location=_where(source, child.start_mark))], source)
            if id(child) not in size:
                stack.append((child, False))
    return size[id(root)]


def _marks(root: yaml.Node, source: str | None) -> dict[Path_, yaml.Mark]:
    """Map each field path of a composed YAML document to where its value starts (after _expanded_size)."""
    out: dict[Path_, yaml.Mark] = {}
    stack: list[tuple[yaml.Node, Path_]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        out[path] = node.start_mark
        if isinstance(node, yaml.MappingNode):
            stack.extend((value, path + (key.value,)) for key, value in node.value
                         if isinstance(key, yaml.ScalarNode))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, path + (index,)) for index, item in enumerate(node.value))
    return out


def _where(source: str | None, mark: yaml.Mark | None) -> str | None:
    if mark is None:
        return source
    return f"{source or '<string>'}:{mark.line + 1}:{mark.column + 1}"


def read_document(text: str, source: str | None = None) -> tuple[Any, dict[Path_, yaml.Mark]]:
    """Parse YAML/JSON text; syntax errors and duplicate keys become SpecError with a location."""
    loader = None
    try:
        loader = _StrictLoader(text)  # the reader already rejects control characters here
        node = loader.get_single_node()
        if node is not None:
            _expanded_size(node, source)  # refuses recursive aliases and bombs before anything is built
        marks = _marks(node, source) if node is not None else {}
        data = loader.construct_document(node) if node is not None else None
    except SpecError:
        raise
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        message = _cut(" ".join(filter(None, [err.context, err.problem])) or "malformed YAML")
        raise SpecError([SpecIssue((), message, location=_where(source, mark))], source) from None
    except (yaml.YAMLError, RecursionError, ValueError, OverflowError) as err:
        raise SpecError([SpecIssue((), _cut(f"unreadable document: {err}"), location=source)], source) from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, marks


# ---------------------------------------------------------------------------------------------- validation
def _fields_at(path: Path_, data: Any) -> list[str] | None:
    """Field names allowed at `path` (for 'unknown field' errors)."""
    model: type[BaseModel] | None = ModelSpec
    if len(path) >= 1 and path[0] in ("norm", "init"):
        model = NormSpec if path[0] == "norm" else InitSpec
    elif len(path) >= 2 and path[0] == "blocks":
        kind = data.get("blocks", {}).get(path[1], {}).get("kind") if isinstance(data, dict) else None
        model = KINDS.get(kind) if isinstance(kind, str) else None
        if len(path) >= 3 and path[2] == "rope_scaling":  # the attention kind's scaling: fields of its type
            kind = _value_at(data, path[:3] + ("type",))
            model = ROPE_SCALINGS.get(kind) if isinstance(kind, str) else None
    return sorted(model.model_fields) if model else None


def _clean_loc(loc: tuple) -> Path_:
    """Drop pydantic's union markers (the discriminator tag, `str`/`list[str]` branches) from a location."""
    out: list[str | int] = []
    for index, part in enumerate(loc):
        if len(out) == 2 and out[0] == "blocks" and part in BLOCK_KINDS:
            continue
        if out[-1:] == ["rope_scaling"] and part in ROPE_SCALINGS:
            continue
        if isinstance(part, str) and (part in ("str", "list[str]", "float", "constrained-float", "tuple[float, float]")
                                      or part.startswith(("function-", "literal[", "constrained-", "tuple["))):
            continue
        out.append(part)
    return tuple(out)


def _value_at(data: Any, path: Path_) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def issues_from_validation(err: ValidationError, data: Any) -> list[SpecIssue]:
    issues: list[SpecIssue] = []
    for item in err.errors():
        loc = _clean_loc(item["loc"])
        inner = (item.get("ctx") or {}).get("error")
        if isinstance(inner, _IssueGroup):
            issues.extend(SpecIssue(loc + i.path, i.message, i.value, i.allowed) for i in inner.issues)
            continue
        kind = item["type"]
        if kind == "extra_forbidden":
            allowed = _fields_at(loc[:-1], data)
            issues.append(SpecIssue(loc, "unknown field", None, ", ".join(allowed) if allowed else None))
        elif kind == "missing":
            issues.append(SpecIssue(loc, "required field is missing"))
        elif kind in ("union_tag_not_found", "union_tag_invalid") and loc[-1:] == ("rope_scaling",):
            tag = _value_at(data, loc + ("type",)) if kind == "union_tag_invalid" else None
            issues.append(SpecIssue(loc + ("type",), "unknown RoPE scaling type" if tag is not None else
                                    "a RoPE scaling needs a 'type'", tag, ", ".join(ROPE_SCALINGS)))
        elif kind == "union_tag_not_found":
            issues.append(SpecIssue(loc + ("kind",), "a block needs a 'kind'", None, ", ".join(BLOCK_KINDS)))
        elif kind == "union_tag_invalid":
            issues.append(SpecIssue(loc + ("kind",), "unknown block kind", _value_at(data, loc + ("kind",)),
                                    ", ".join(BLOCK_KINDS)))
        else:
            value = item.get("input")
            issues.append(SpecIssue(loc, item["msg"], value if not isinstance(value, (dict, list)) else None))
    # A `str | list[str]` field reports once per branch; keep each (path, message) once.
    unique: dict[tuple, SpecIssue] = {}
    for issue in issues:
        unique.setdefault((issue.path, issue.message), issue)
    return list(unique.values())


def parse_spec(data: Any, source: str | None = None, marks: dict[Path_, yaml.Mark] | None = None) -> ModelSpec:
    """Validate a spec document (a mapping); raise SpecError listing every problem with its location."""
    if not isinstance(data, dict):
        got = "an empty document" if data is None else f"a {type(data).__name__}"
        raise SpecError([SpecIssue((), f"a spec must be a mapping of fields, got {got}", location=source)], source)
    try:
        return ModelSpec.model_validate(data)
    except ValidationError as err:
        issues = issues_from_validation(err, data)
        # A field error stops pydantic before the model-wide checks; still report a bad pattern alongside.
        pattern, blocks = data.get("pattern"), data.get("blocks")
        if not any(issue.path[:1] == ("pattern",) for issue in issues) and isinstance(blocks, dict) \
                and isinstance(pattern, (str, list)):
            issues.extend(pattern_issues(pattern, [k for k in blocks if isinstance(k, str)]))
    except (RecursionError, OverflowError) as err:  # absurdly nested or sized input
        issues = [SpecIssue((), f"unreadable spec: {type(err).__name__}")]
    marks = marks or {}
    located = []
    for issue in issues:
        path = issue.path
        while path not in marks and path:
            path = path[:-1]
        mark = marks.get(path)
        located.append(SpecIssue(issue.path, _cut(issue.message), issue.value, issue.allowed and _cut(issue.allowed),
                                 _where(source, mark) if marks else source))
    raise SpecError(located, source)


def loads_spec(text: str, source: str | None = None) -> ModelSpec:
    data, marks = read_document(text, source)
    return parse_spec(data, source, marks)


# ---------------------------------------------------------------------------------------------- files
def example_names() -> list[str]:
    files = resources.files("archsearch.examples")
    return sorted(p.name[: -len(".yaml")] for p in files.iterdir() if p.name.endswith(".yaml"))


def resolve_spec_path(path: str | Path) -> Path:
    """A file path, or the name of a shipped example (`nemotron-h-tiny`)."""
    candidate = Path(path)
    try:
        if candidate.exists():
            return candidate
    except (OSError, ValueError):  # a name too long for the filesystem, a NUL byte: no such file
        pass
    name = str(path).removesuffix(".yaml")
    if name in example_names():
        return Path(str(resources.files("archsearch.examples") / f"{name}.yaml"))
    raise SpecError([SpecIssue((), "no such file or example", str(path),
                               "a path to a .yaml/.json spec, or an example: " + ", ".join(example_names()))])


def load_spec(path: str | Path) -> ModelSpec:
    """Load and validate a spec file (YAML or JSON) or a shipped example by name."""
    resolved = resolve_spec_path(path)
    try:
        text = resolved.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError([SpecIssue((), f"cannot read file: {err}", location=str(path))], str(path)) from None
    return loads_spec(text, str(path))


def dump_spec(spec: ModelSpec) -> str:
    """YAML text of a spec (defaults included, so the file states the whole model)."""
    return yaml.safe_dump(spec.to_dict(), sort_keys=False, default_flow_style=None, width=100)
