"""Sizes written the way people say them: `4096`, `128k`, `1M` (k = 1024, M = 1024 ** 2, as context lengths
are quoted: a "128k" model holds 131072 tokens)."""

from __future__ import annotations

import re
from fractions import Fraction

from ..errors import UserError

_SUFFIX = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kKmMgG]?)")
MAX_SIZE = 1 << 30
_MAX_TEXT = 40  # longer than any size up to 1G written out; longer text is refused before it is parsed


def _shown(text: object) -> str:
    """The value as an error quotes it, cut so that a 400-digit typo does not fill the terminal."""
    shown = repr(text)
    return shown if len(shown) <= 40 else shown[:37] + "..."


def parse_size(text: str | int, what: str = "size", maximum: int = MAX_SIZE) -> int:
    """A positive token count from `4096`, `128k`, `1M` or `1.5k`, at most `maximum`; UserError naming `what`
    otherwise. The arithmetic is exact (no float), so huge or fractional inputs are refused, never rounded."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        stripped = str(text).strip()
        match = _SIZE.fullmatch(stripped) if len(stripped) <= _MAX_TEXT else None
        if match is None and len(stripped) > _MAX_TEXT and re.fullmatch(r"[\d.]+\s*[kKmMgG]?", stripped):
            raise UserError(f"{what}: {_shown(text)} ({len(stripped)} characters) is out of range; allowed: 1 .. "
                            f"{maximum}")
        if not match:
            raise UserError(f"{what}: {_shown(text)} is not a size; allowed: a positive integer, or a number with k "
                            f"(x1024), M (x1048576) or G (x1073741824), e.g. 4096, 128k, 1M")
        number = Fraction(match.group(1)) * _SUFFIX[match.group(2).lower()]
        if number.denominator != 1:
            raise UserError(f"{what}: {_shown(text)} is not a whole number of tokens ({float(number):g})")
        value = int(number)
    if not 1 <= value <= maximum:
        raise UserError(f"{what}: {_shown(text)} is out of range; allowed: 1 .. {maximum} ({maximum >> 20}M)")
    return value
