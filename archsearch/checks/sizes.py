"""Token counts written the way people say them: 8k, 128k, 1M (binary: k = 1024, as "128k context" means 131072)."""

from __future__ import annotations

import re

from ..errors import UserError

_SUFFIX = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?)\s*$", re.IGNORECASE)


def parse_count(text: str | int, argument: str = "--context") -> int:
    """`128k` -> 131072, `1M` -> 1048576, `4096` -> 4096; a fraction must land on a whole number (`1.5k`)."""
    if isinstance(text, int):
        value = text
    else:
        match = _SIZE.match(str(text))
        if not match:
            raise UserError(f"{argument}: cannot read {text!r} as a token count; allowed: a whole number with an "
                            f"optional k (x1024), M (x1024^2) or G suffix, e.g. 8192, 8k, 128k, 1M")
        number, suffix = match.groups()
        scaled = float(number) * _SUFFIX[suffix.lower()]
        if scaled != int(scaled):
            raise UserError(f"{argument}: {text!r} is not a whole number of tokens ({scaled:g})")
        value = int(scaled)
    if value < 1:
        raise UserError(f"{argument}: must be at least 1 token, got {text!r}")
    return value


def format_count(n: int) -> str:
    for suffix, scale in (("M", 1 << 20), ("k", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{suffix}"
    return str(n)


def format_bytes(n: float) -> str:
    sign = "-" if n < 0 else ""
    n = abs(n)
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{sign}{n / scale:.2f} {unit}"
    return f"{sign}{int(n)} B"
