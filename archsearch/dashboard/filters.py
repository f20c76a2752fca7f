"""The filter language of the trials table: one small expression per column.

Numeric columns: `<0.5`, `<=0.5`, `>1e6`, `>=1e6`, `=3`, `1e6..2e6` (inclusive), or a bare number (equal).
Text columns: a case-insensitive substring; `!text` keeps rows that do not contain it; `=text` matches whole.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

from ..errors import UserError


class FilterError(UserError):
    """A filter expression that does not parse; the message names the column and the allowed forms."""


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_COMPARE = re.compile(rf"^(<=|>=|<|>|=)?\s*({_NUMBER})$")
_RANGE = re.compile(rf"^({_NUMBER})\s*\.\.\s*({_NUMBER})$")
_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "=": operator.eq, None: operator.eq}
NUMERIC_FORMS = "<x, <=x, >x, >=x, =x, x, or a..b"


def numeric_filter(column: str, expression: str) -> Callable[[Any], bool]:
    text = expression.strip()
    if match := _RANGE.match(text):
        low, high = float(match[1]), float(match[2])
        return lambda v: isinstance(v, (int, float)) and low <= v <= high
    if match := _COMPARE.match(text):
        op, bound = _OPS[match[1]], float(match[2])
        return lambda v: isinstance(v, (int, float)) and op(v, bound)
    raise FilterError(f"filter on {column}: {expression!r} is not a number filter; allowed: {NUMERIC_FORMS}")


def text_filter(expression: str) -> Callable[[Any], bool]:
    text = expression.strip().lower()
    if text.startswith("="):
        whole = text[1:]
        return lambda v: ("" if v is None else str(v).lower()) == whole
    if text.startswith("!"):
        needle = text[1:]
        return lambda v: needle not in ("" if v is None else str(v).lower())
    return lambda v: text in ("" if v is None else str(v).lower())
