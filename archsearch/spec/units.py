"""Sizes written the way people say them: `4096`, `128k`, `1M` (k = 1024, M = 1024 ** 2, as context lengths
are quoted: a "128k" model holds 131072 tokens)."""

from __future__ import annotations

import re

from ..errors import UserError

_SUFFIX = {"": 1, "k": 1 << 10, "m": 1 << 20}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kKmM]?)")
MAX_SIZE = 1 << 30


def parse_size(text: str | int, what: str = "size", maximum: int = MAX_SIZE) -> int:
    """A positive token count from `4096`, `128k`, `1M` or `1.5k`, at most `maximum`; UserError naming `what`
    otherwise."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        match = _SIZE.fullmatch(str(text).strip())
        if not match:
            raise UserError(f"{what}: {text!r} is not a size; allowed: a positive integer, or a number with k "
                            f"(x1024) or M (x1048576), e.g. 4096, 128k, 1M")
        number = float(match.group(1)) * _SUFFIX[match.group(2).lower()]
        if not number.is_integer():
            raise UserError(f"{what}: {text!r} is not a whole number of tokens ({number:g})")
        value = int(number)
    if not 1 <= value <= maximum:
        raise UserError(f"{what}: {text!r} is out of range; allowed: 1 .. {maximum} ({maximum >> 20}M)")
    return value
