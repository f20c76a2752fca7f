"""Reading a Hugging Face config dict field by field, collecting every problem instead of stopping at the first.

Hugging Face configs are plain JSON; a field may be missing (then the family's default applies, exactly as
transformers would fill it in), of the wrong type, or hold a value archsearch cannot express. Each problem is a
SpecIssue whose path is the config field, so an import reports all of them at once.
"""

from __future__ import annotations

import math
from typing import Any

from ..spec.errors import SpecError, SpecIssue

_MISSING = object()
# No config field is meaningfully larger: beyond it, arithmetic on the value (float(x), x * expand) would overflow
# before any range check of the spec could run. Exactly representable as a float.
MAX_MAGNITUDE = 1 << 53


def finite_number(value: Any) -> bool:
    """A JSON number (not a bool) that is finite and within MAX_MAGNITUDE (math.isfinite overflows on huge ints)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(value, int):
        return abs(value) <= MAX_MAGNITUDE
    return math.isfinite(value) and abs(value) <= MAX_MAGNITUDE


class ConfigReader:
    def __init__(self, config: dict, source: str | None = None):
        self.config = config
        self.source = source
        self.issues: list[SpecIssue] = []

    def has(self, key: str) -> bool:
        return self.config.get(key) is not None

    def raw(self, key: str, default: Any = None) -> Any:
        value = self.config.get(key, default)
        return default if value is None else value

    def problem(self, key: str | tuple, message: str, value: Any = None, allowed: str | None = None) -> None:
        path = key if isinstance(key, tuple) else (key,)
        issue = SpecIssue(path, message, value, allowed, self.source)
        if not any(str(old) == str(issue) for old in self.issues):  # a field read twice is reported once
            self.issues.append(issue)

    def int(self, key: str, default: Any = _MISSING) -> int | None:
        value = self._get(key, default)
        if value is None:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or (isinstance(value, float) and not value.is_integer()):
            self.problem(key, "must be an integer", value)
            return None
        if not finite_number(value):
            self.problem(key, "out of range", value, f"a whole number of magnitude <= {MAX_MAGNITUDE}")
            return None
        return int(value)

    def count(self, key: str, default: Any, most: int) -> int:
        """A layer count, refused (as 0) outside 1 .. most before anything is built from it."""
        value = self.int(key, default)
        if value is None:
            return 0
        if not 1 <= value <= most:
            self.problem(key, "out of range", value, f"1 .. {most}")
            return 0
        return value

    def float(self, key: str, default: Any = _MISSING) -> float | None:
        value = self._get(key, default)
        if value is None:
            return None
        if finite_number(value):
            return float(value)
        self.problem(key, "must be a finite number", value, f"a number of magnitude <= {MAX_MAGNITUDE}")
        return None

    def positive(self, key: str, default: Any = _MISSING) -> float | None:
        """A finite number > 0 (a scale, a divisor): 0 or less is reported, never divided by."""
        value = self.float(key, default)
        if value is not None and value <= 0:
            self.problem(key, "must be a positive number", value, "> 0")
            return None
        return value

    def bool(self, key: str, default: Any = _MISSING) -> bool | None:
        value = self._get(key, default)
        if value is None or isinstance(value, bool):
            return value
        self.problem(key, "must be true or false", value)
        return None

    def str(self, key: str, default: Any = _MISSING) -> str | None:
        value = self._get(key, default)
        if value is None or isinstance(value, str):
            return value
        self.problem(key, "must be a string", value)
        return None

    def _get(self, key: str, default: Any) -> Any:
        value = self.config.get(key)
        if value is not None:
            return value
        if default is _MISSING:
            self.problem(key, "required field is missing")
            return None
        return default

    def raise_if_any(self) -> None:
        if self.issues:
            raise SpecError(self.issues, self.source)
