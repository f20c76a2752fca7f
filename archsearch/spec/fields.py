"""Field types and checks shared by every part of a spec: bounded integers that refuse booleans, frozen models."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from ..errors import UserError
from .errors import SpecIssue, _IssueGroup
from .units import parse_size

# Bounds that reject absurd sizes with a clear message instead of an overflow or an hours-long allocation.
MAX_DIM = 1 << 16
MAX_HEADS = 1024
MAX_WINDOW = 1 << 24  # as max_context's bound


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True, allow_inf_nan=False)


def _no_bool(low: int, high: int):
    """YAML reads `true` as a bool, which pydantic would take as 1; an integer field refuses it by name."""
    def check(value):
        if isinstance(value, bool):
            raise _IssueGroup([SpecIssue((), "must be an integer, not a boolean", value, f"an integer {low} .. {high}")])
        return value
    return BeforeValidator(check)


def bounded_int(low: int, high: int):
    """An integer field in [low, high] that refuses booleans (every integer field of a spec uses this)."""
    return Annotated[int, _no_bool(low, high), Field(ge=low, le=high)]


def token_count(low: int, high: int):
    """A count of tokens: an integer, or a size written as the CLI's --context takes it (`128k`, `1M`; k = 1024),
    read by archsearch.spec.units.parse_size, so a spec and a command line accept the same spellings."""
    def parse(value):
        if not isinstance(value, str):
            return value
        try:
            return parse_size(value, "size", maximum=high)
        except UserError as err:
            why = "out of range" if "out of range" in str(err) else "not a token count"
            raise _IssueGroup([SpecIssue((), why, value, f"an integer {low} .. {high}, or a size such as 128k or "
                                                         "1M (k = 1024)")]) from None
    schema = {"anyOf": [{"type": "integer", "minimum": low, "maximum": high},
                        {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*[kKmMgG]?\s*$"}]}
    return Annotated[int, _no_bool(low, high), BeforeValidator(parse), Field(ge=low, le=high), WithJsonSchema(schema)]


PositiveDim = bounded_int(1, MAX_DIM)
HeadCount = bounded_int(1, MAX_HEADS)


def raise_issues(issues: list[SpecIssue]) -> None:
    if issues:
        raise _IssueGroup(issues)


def divisors(n: int) -> str:
    found = [d for d in range(1, n + 1) if n % d == 0]
    return ", ".join(map(str, found[:16])) + (" ..." if len(found) > 16 else "")
