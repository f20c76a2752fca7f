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
        self.issues.append(SpecIssue(path, message, value, allowed, self.source))

    def int(self, key: str, default: Any = _MISSING) -> int | None:
        value = self._get(key, default)
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        self.problem(key, "must be an integer", value)
        return None

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
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        self.problem(key, "must be a finite number", value)
        return None

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
