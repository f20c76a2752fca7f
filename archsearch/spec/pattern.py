"""The layer pattern: a compact string expanded once, by one pure function, into one symbol per layer.

Alphabet (Megatron / NemotronH): `M` Mamba-2, `*` attention, `-` MLP, `E` reserved for MoE; any other
character may be defined in a spec's block table (e.g. `L` for sliding-window attention). Whitespace is
ignored, and `(...)xN` (or `SxN` for one symbol) repeats: `(M-M-L-)x4 M*` is 14 layers.
"""

from __future__ import annotations

# Characters the grammar itself uses; they can never name a block.
RESERVED_CHARS = frozenset("()x0123456789")
MAX_LAYERS = 4096
MAX_NESTING = 16


class PatternError(ValueError):
    """A malformed pattern; `position` is the 0-based character offset of the problem."""

    def __init__(self, message: str, position: int | None = None, pattern: str | None = None):
        self.reason = message
        self.position = position
        self.pattern = pattern
        where = f" at position {position}" if position is not None else ""
        shown = f" in {_cut(pattern, position)}" if pattern is not None else ""
        super().__init__(f"{message}{where}{shown}")


def _cut(text: str, position: int | None = None, limit: int = 60) -> str:
    """repr of a pattern for an error, at most about `limit` characters around `position`: a pattern may be any
    length, and an error must not echo all of it."""
    if len(text) <= limit:
        return repr(text)
    start = max(0, min((position or 0) - limit // 2, len(text) - limit))
    return ("..." if start else "") + repr(text[start:start + limit]) + ("..." if start + limit < len(text) else "")


def _digits(digits: str, limit: int = 12) -> str:
    return digits if len(digits) <= limit else f"{digits[:limit]}... ({len(digits)} digits)"


def is_valid_symbol(symbol: str) -> bool:
    return len(symbol) == 1 and not symbol.isspace() and symbol not in RESERVED_CHARS


def expand_pattern(pattern: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Return one symbol per layer. Raises PatternError for malformed input; never anything else."""
    if isinstance(pattern, (list, tuple)):
        for index, symbol in enumerate(pattern):
            if not isinstance(symbol, str) or not is_valid_symbol(symbol):
                raise PatternError(
                    f"layer {index} must be one non-space character other than {''.join(sorted(RESERVED_CHARS))!r},"
                    f" got {_cut(symbol) if isinstance(symbol, str) else type(symbol).__name__}", index)
        if not pattern:
            raise PatternError("the pattern has no layers")
        if len(pattern) > MAX_LAYERS:
            raise PatternError(f"the pattern has {len(pattern)} layers; at most {MAX_LAYERS} are allowed")
        return tuple(pattern)
    if not isinstance(pattern, str):
        raise PatternError(f"a pattern is a string or a list of symbols, not {type(pattern).__name__}")
    layers, end = _parse_sequence(pattern, 0, depth=0)
    if end != len(pattern):  # only a stray ')' stops the top-level sequence early
        raise PatternError("unmatched ')'", end, pattern)
    if not layers:
        raise PatternError("the pattern has no layers", None, pattern)
    return tuple(layers)


def _parse_sequence(text: str, pos: int, depth: int) -> tuple[list[str], int]:
    out: list[str] = []
    while pos < len(text):
        char = text[pos]
        if char.isspace():
            pos += 1
            continue
        if char == ")":  # the caller decides whether a ')' is welcome here
            return out, pos
        if char == "(":
            if depth >= MAX_NESTING:
                raise PatternError(f"groups nest more than {MAX_NESTING} deep", pos, text)
            inner, close = _parse_sequence(text, pos + 1, depth + 1)
            if close >= len(text) or text[close] != ")":
                raise PatternError("'(' is never closed", pos, text)
            if not inner:
                raise PatternError("empty group '()'", pos, text)
            item, pos = inner, close + 1
        elif char in RESERVED_CHARS:
            what = "a repeat 'xN' must follow a symbol or a ')'" if char == "x" else f"unexpected {char!r}"
            raise PatternError(what, pos, text)
        else:
            item, pos = [char], pos + 1
        count, pos = _parse_repeat(text, pos)
        if len(out) + len(item) * count > MAX_LAYERS:  # checked before expanding: `((Mx999)x999)x999`
            raise PatternError(f"the pattern expands to more than {MAX_LAYERS} layers", pos, text)
        out.extend(item * count)
    return out, pos


def _parse_repeat(text: str, pos: int) -> tuple[int, int]:
    """Parse an optional `xN` right after an item (spaces allowed before the x)."""
    probe = pos
    while probe < len(text) and text[probe].isspace():
        probe += 1
    if probe >= len(text) or text[probe] != "x":
        return 1, pos
    start = probe + 1
    end = start
    while end < len(text) and text[end].isdigit():
        end += 1
    if end == start:
        raise PatternError("'x' must be followed by a repeat count", probe, text)
    digits = text[start:end]
    if len(digits) > 5 or int(digits) < 1 or int(digits) > MAX_LAYERS:
        raise PatternError(f"repeat count must be between 1 and {MAX_LAYERS}, got {_digits(digits)}", start, text)
    return int(digits), end


def compress_pattern(symbols: tuple[str, ...] | list[str]) -> str:
    """A readable string for an explicit layer list: the shortest repeating unit as `(unit)xN`, else flat."""
    flat = "".join(symbols)
    n = len(flat)
    for size in range(1, n // 2 + 1):
        if n % size == 0 and flat[:size] * (n // size) == flat:
            unit = flat[:size]
            return f"{unit}x{n // size}" if size == 1 else f"({unit})x{n // size}"
    return flat
