"""A search space: a pattern generator plus ranges over spec fields by dotted path, checked against a base spec
before any trial runs.

Sampling order is the file's: the pattern first, then each parameter. A parameter is conditional when it has
`when: {NAME: value or [values]}` (NAME an earlier parameter, e.g. `pattern.local_global`), and implicitly when it
sets a field of a block the drawn pattern does not use (`blocks.L.window` is only drawn when the pattern has
local attention layers).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..spec import ModelSpec, SpecError, parse_spec
from ..spec.errors import SpecIssue
from .documents import FileError, Marks, issue, parse_model, read_yaml
from .params import ParamDef, PointSource, Scalar, Source, draw, is_searched
from .paths import block_symbol, check_path, copy_for_write, get_path, set_path
from .pattern_space import PatternSpace


class SearchSpace(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str | None = None
    description: str | None = None
    pattern: PatternSpace | None = None
    parameters: dict[str, ParamDef | Scalar | list[Scalar]] = Field(default_factory=dict)

    def fingerprint(self) -> str:
        payload = json.dumps(self.model_dump(mode="json", exclude={"name", "description"}), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def names(self) -> list[str]:
        """Optuna parameter names this space may draw."""
        out = list(self.pattern.searched()) if self.pattern else []
        return out + [name for name, d in self.parameters.items() if is_searched(d)]

    def sample(self, source: Source, base_pattern_symbols: set[str] | None = None) -> "Sample":
        """Draw one point: the generated pattern (or None: keep the base's) and every active parameter value."""
        values: dict[str, Any] = {}
        pattern = None
        if self.pattern is not None:
            drawn = self.pattern.sample(source)
            searched = self.pattern.searched()
            values.update({name: drawn[name.split(".", 1)[1]] for name in searched})
            pattern = self.pattern.build(drawn)
            used = set(pattern)
        else:
            used = base_pattern_symbols
        for name, definition in self.parameters.items():
            condition = getattr(definition, "when", None)
            if condition and not _satisfied(condition, values):
                continue
            symbol = block_symbol(name)
            if symbol is not None and used is not None and symbol not in used:
                continue
            values[name] = draw(definition, name, source)
        return Sample(pattern, values)

    def grid(self) -> dict[str, list[Any]]:
        """Every searched parameter's values, for Optuna's GridSampler; a grid over MAX_GRID_POINTS points is
        refused before any list is built (Optuna holds every point in memory)."""
        from ..limits import MAX_GRID_POINTS

        searched = dict(self.pattern.searched()) if self.pattern else {}
        searched.update({n: d for n, d in self.parameters.items() if is_searched(d)})
        issues, size = [], 1
        for name, definition in searched.items():
            path = ("pattern", name.split(".", 1)[1]) if name.startswith("pattern.") else ("parameters", name)
            try:
                size *= definition.grid_count()
            except ValueError as err:
                issues.append(SpecIssue(path, str(err)))
        if not issues and size > MAX_GRID_POINTS:
            counts = " x ".join(f"{n} {d.grid_count():,}" for n, d in searched.items())
            issues.append(SpecIssue((), f"the grid has {size:,} points ({counts}); allowed: at most "
                                        f"{MAX_GRID_POINTS:,} for sampler type grid (use another sampler, or coarser "
                                        f"steps)"))
        if issues:
            raise FileError("search space", issues)
        return {name: definition.grid_values() for name, definition in searched.items()}


def _satisfied(condition: dict[str, Any], values: dict[str, Any]) -> bool:
    for name, wanted in condition.items():
        if name not in values:
            return False
        allowed = wanted if isinstance(wanted, list) else [wanted]
        if values[name] not in allowed:
            return False
    return True


@dataclass(frozen=True)
class Sample:
    pattern: str | None
    values: dict[str, Any]

    def document(self, base: dict[str, Any], name: str) -> dict[str, Any]:
        """The spec document of this sample: `base` (a spec dict) with the pattern and values applied."""
        paths = [p for p in self.values if not p.startswith("pattern.")]
        out = copy_for_write(base, paths)
        out["name"] = name
        if self.pattern is not None:
            out["pattern"] = self.pattern
        for path in paths:
            set_path(out, path, self.values[path])
        return out

    def spec(self, base: dict[str, Any], name: str) -> ModelSpec:
        return parse_spec(self.document(base, name))


# ---------------------------------------------------------------------------------------------- checking
def parameter_path_issues(data: Any, base: ModelSpec, marks: Marks | None = None, source: str | None = None,
                          prefix: tuple = ()) -> list[SpecIssue]:
    """Parameter names of a space document (even one that failed validation) that are no field of the base, so
    that a broken space reports these together with its other problems."""
    parameters = data.get("parameters") if isinstance(data, dict) else None
    if not isinstance(parameters, dict):
        return []
    base_doc = base.to_dict()
    out = []
    for name in parameters:
        problem = check_path(name, base_doc) if isinstance(name, str) else "a parameter name is a dotted path"
        if problem:
            out.append(issue(marks or {}, source, prefix + ("parameters", name), problem))
    return out


def check_space(space: SearchSpace, base: ModelSpec, marks: Marks | None = None, source: str | None = None,
                prefix: tuple = ()) -> None:
    """Raise FileError naming every parameter whose path does not exist, whose `when` names no earlier
    parameter, or whose every probed value makes an invalid spec; and a pattern generator that needs blocks the
    base does not define."""
    marks = marks or {}
    base_doc = base.to_dict()
    issues: list[SpecIssue] = []
    known = set(space.pattern.searched()) if space.pattern else set()
    for name, definition in space.parameters.items():
        problem = check_path(name, base_doc)
        if problem:
            issues.append(issue(marks, source, prefix + ("parameters", name), problem))
        condition = getattr(definition, "when", None) or {}
        for other in condition:
            if other not in known:
                issues.append(issue(marks, source, prefix + ("parameters", name, "when"),
                                    f"`when` names {other!r}, which is not a searched parameter listed before "
                                    f"{name!r}", allowed=", ".join(sorted(known)) or "(none)"))
        if is_searched(definition):
            known.add(name)
    if space.pattern is not None:
        missing = sorted(space.pattern.symbols_used() - set(base.blocks))
        if missing:
            issues.append(issue(marks, source, prefix + ("pattern",),
                                f"the generator can produce layers {', '.join(map(repr, missing))} but the base "
                                f"spec defines no such block", allowed="symbols defined in the base: "
                                + ", ".join(map(repr, base.blocks))))
    if issues:
        raise FileError("search space", issues, source)
    issues = _probe(space, base, base_doc, marks, source, prefix)
    if issues:
        raise FileError("search space", issues, source)


def _probe(space: SearchSpace, base: ModelSpec, base_doc: dict, marks: Marks, source: str | None,
           prefix: tuple) -> list[SpecIssue]:
    """A parameter is an error when each of its extremes (or choices) makes an invalid spec at every reference
    point (the rest at the base's values, at their low ends, at their high ends): it can only produce invalid
    specs. The whole space is an error when no reference point is valid."""
    base_symbols = set(base.pattern_string)
    conditions = {}
    for definition in space.parameters.values():  # switch conditional parameters on at the reference points
        for name, wanted in (getattr(definition, "when", None) or {}).items():
            conditions.setdefault(name, wanted[0] if isinstance(wanted, list) else wanted)
    from_base = {}
    for name, definition in space.parameters.items():
        current = get_path(base_doc, name)
        if is_searched(definition) and current is not None and current in definition.probe_values():
            from_base[name] = current
    references = [({**conditions, **from_base}, "low"), (dict(conditions), "low"), (dict(conditions), "high")]

    def error_at(point: dict, default: str) -> SpecIssue | None:
        try:
            space.sample(PointSource(point, default), base_symbols).spec(base_doc, "probe")
        except SpecError as err:
            return err.issues[0]
        return None

    searched = [(("parameters", n), n, d) for n, d in space.parameters.items() if is_searched(d)]
    if space.pattern is not None:
        searched += [(("pattern", n.split(".", 1)[1]), n, d) for n, d in space.pattern.searched().items()]
    other_paths = {name: {tuple(n.split(".")) for _, n, _ in searched if n != name and not n.startswith("pattern.")}
                   for _, name, _ in searched}
    issues = []
    for path, name, definition in searched:
        errors = []
        for value in definition.probe_values():
            found = [error_at({**point, name: value}, default) for point, default in references]
            # Blame this parameter only for failures not located at another searched parameter's field.
            if all(found) and any(tuple(map(str, f.path)) not in other_paths[name] for f in found):
                errors.append((value, found[0]))
        if errors and len(errors) == len(definition.probe_values()):
            shown = "; ".join(f"{value!r}: {spec_issue.message} at {_dotted(spec_issue.path)}"
                              for value, spec_issue in errors[:3])
            issues.append(issue(marks, source, prefix + path, f"can only produce invalid specs ({shown})"))
    if not issues:
        first_errors = [error_at(point, default) for point, default in references]
        if all(first_errors):
            bad = first_errors[0]
            issues.append(issue(marks, source, prefix or (), f"no probed point of the space makes a valid spec (the "
                                f"base's values, every range's low end, every range's high end); first problem: "
                                f"{bad.message} at {_dotted(bad.path)}"))
    return issues


def _dotted(path: tuple) -> str:
    return ".".join(str(p) for p in path) or "<root>"


# ---------------------------------------------------------------------------------------------- files
def space_names() -> list[str]:
    files = resources.files("archsearch.spaces")
    return sorted(p.name.removesuffix(".yaml") for p in files.iterdir() if p.name.endswith(".yaml"))


def resolve_space_path(path: str | Path, relative_to: Path | None = None) -> Path:
    candidates = [Path(path)]
    if relative_to is not None:
        candidates.insert(0, relative_to / path)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    name = str(path).removesuffix(".yaml").removeprefix("spaces/")
    if name in space_names():
        return Path(str(resources.files("archsearch.spaces") / f"{name}.yaml"))
    raise FileError("search space", [SpecIssue((), "no such file or shipped space", str(path),
                                               "a path to a space .yaml, or: " + ", ".join(space_names()))])


def parse_space(data: Any, marks: Marks | None = None, source: str | None = None) -> SearchSpace:
    return parse_model(SearchSpace, data, marks or {}, source, "search space")


def load_space(path: str | Path, relative_to: Path | None = None) -> tuple[SearchSpace, Marks, str]:
    resolved = resolve_space_path(path, relative_to)
    data, marks, source = read_yaml(resolved, "search space")
    return parse_space(data, marks, source), marks, source
