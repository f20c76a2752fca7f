"""Validation errors that name the field path, the offending value and what is allowed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import UserError


def format_path(path: tuple[str | int, ...]) -> str:
    """`("blocks", "A", "n_kv_heads")` -> `blocks.A.n_kv_heads`; list indices print as `[3]`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<root>"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class SpecIssue:
    """One problem in a document: where, what was found, what would be accepted."""

    path: tuple[str | int, ...]
    message: str
    value: Any = None
    allowed: str | None = None
    location: str | None = None  # "file.yaml:12:5" when the document came from a file

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        text = f"{where}{format_path(self.path)}: {self.message}"
        if self.value is not None:
            text += f" (got {_short(self.value)})"
        if self.allowed:
            text += f"; allowed: {self.allowed}"
        return text


class SpecError(UserError, ValueError):
    """Raised for an invalid spec; `issues` lists every problem found, not only the first."""

    def __init__(self, issues: list[SpecIssue], source: str | None = None):
        self.issues = list(issues)
        self.source = source
        head = f"invalid spec{f' {source}' if source else ''}: {len(self.issues)} problem(s)"
        super().__init__("\n".join([head] + [f"  - {issue}" for issue in self.issues]))


class _IssueGroup(ValueError):
    """Carries SpecIssues out of a pydantic validator (pydantic keeps it in `ctx['error']`)."""

    def __init__(self, issues: list[SpecIssue]):
        self.issues = issues
        super().__init__("; ".join(str(i) for i in issues))
