"""Token counts written the way people say them: 8k, 128k, 1M (binary: k = 1024, as "128k context" means 131072)."""

from __future__ import annotations

from ..spec.units import parse_size


def parse_count(text: str | int, argument: str = "--context") -> int:
    """`128k` -> 131072, `1M` -> 1048576, `4096` -> 4096; exact, bounded, errors naming `argument` (the spec's
    size rule, so a context reads the same in a spec, a study file and on the command line)."""
    return parse_size(text, argument)


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
