"""Pattern generators: layer patterns built from a few searched numbers, valid by construction.

`n_layers` mixer layers (Mamba-2 or attention); `attention` of them are attention, given as a count or as a
ratio of n_layers (rounded, clamped to 0..n_layers); `placement` puts them `evenly` through the stack, `late`
(evenly through the last half), or at explicit 0-based mixer positions; `local_global` "k:g" makes the attention
layers alternate k sliding-window (symbol `local`) then g global (symbol `attention`), the last attention layer
always global when g > 0; `mlp: interleave` follows every mixer with an MLP layer (Nemotron-H's `M-*-`), `none`
adds no MLP layer. Every generated value is an Optuna parameter named `pattern.<field>`.

`choices: [PATTERN, ...]` instead lists whole patterns (any spec pattern string, e.g. a published model's and
variants of it), drawn as the categorical `pattern.choice`; it replaces every other field.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..spec import PatternError, compress_pattern, expand_pattern
from .params import CategoricalParam, FloatParam, IntParam, Source, draw, is_searched

PLACEMENTS = ("evenly", "late")
MLP_MODES = ("interleave", "none")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Symbols(_Frozen):
    mamba: str = "M"
    attention: str = "*"
    local: str = "L"
    mlp: str = "-"


def parse_ratio(text: Any) -> tuple[int, int]:
    """"3:1" -> (3, 1): local layers, then global layers, per group."""
    try:
        local, global_ = (int(part) for part in str(text).split(":"))
    except ValueError:
        raise ValueError(f"a local:global ratio is 'K:G' with whole numbers, got {text!r}") from None
    if local < 0 or global_ < 0 or local + global_ == 0:
        raise ValueError(f"a local:global ratio needs K, G >= 0 and K + G > 0, got {text!r}")
    return local, global_


IntOr = Union[Annotated[int, Field(ge=0)], IntParam, CategoricalParam]
FloatOr = Union[Annotated[float, Field(ge=0, le=1)], FloatParam, CategoricalParam]


FIELDS = ("n_layers", "attention_count", "attention_ratio", "placement", "local_global", "mlp", "choice")


class PatternSpace(_Frozen):
    n_layers: Union[Annotated[int, Field(ge=1, le=4096)], IntParam, CategoricalParam, None] = None
    attention_count: IntOr | None = None
    attention_ratio: FloatOr | None = None
    placement: Union[Literal["evenly", "late"], list[Annotated[int, Field(ge=0)]], CategoricalParam] = "evenly"
    local_global: Union[str, CategoricalParam, None] = None
    mlp: Union[Literal["interleave", "none"], CategoricalParam] = "interleave"
    symbols: Symbols = Symbols()
    choices: Annotated[list[str], Field(min_length=1, max_length=10_000)] | None = None

    @property
    def choice(self) -> CategoricalParam | str | None:
        """The explicit patterns as one value to draw (`pattern.choice`): fixed when there is only one."""
        if self.choices is None:
            return None
        return self.choices[0] if len(self.choices) == 1 else CategoricalParam(type="categorical",
                                                                               choices=list(self.choices))

    @model_validator(mode="after")
    def _check(self) -> "PatternSpace":
        if self.choices is not None:
            return self._check_choices()
        if self.n_layers is None:
            raise ValueError("give n_layers (a generated pattern) or choices (a list of whole patterns)")
        explicit = isinstance(self.placement, list)
        if self.attention_count is not None and self.attention_ratio is not None:
            raise ValueError("give attention_count or attention_ratio, not both")
        if explicit and (self.attention_count is not None or self.attention_ratio is not None):
            raise ValueError("explicit placement positions fix the attention count; drop attention_count/ratio")
        if explicit and len(set(self.placement)) != len(self.placement):
            raise ValueError(f"placement positions repeat: {self.placement}")
        if explicit and self.placement and max(self.placement) >= self.min_layers():
            raise ValueError(f"placement position {max(self.placement)} is beyond the smallest n_layers "
                             f"({self.min_layers()}); positions are 0-based mixer layers")
        if isinstance(self.placement, CategoricalParam):
            bad = [c for c in self.placement.choices if c not in PLACEMENTS]
            if bad:
                raise ValueError(f"placement choices {bad} are not allowed; allowed: {', '.join(PLACEMENTS)}")
        if isinstance(self.mlp, CategoricalParam):
            bad = [c for c in self.mlp.choices if c not in MLP_MODES]
            if bad:
                raise ValueError(f"mlp choices {bad} are not allowed; allowed: {', '.join(MLP_MODES)}")
        for ratio in self._choices(self.local_global):
            if ratio is not None:
                parse_ratio(ratio)
        for ratio in self._choices(self.attention_ratio):
            if ratio is not None and (not isinstance(ratio, (int, float)) or not 0 <= ratio <= 1):
                raise ValueError(f"attention_ratio values must lie in 0 .. 1, got {ratio!r}")
        for count in self._choices(self.attention_count):
            if count is not None and (not isinstance(count, int) or count < 0):
                raise ValueError(f"attention_count values must be whole numbers >= 0, got {count!r}")
        for n in self._choices(self.n_layers):
            if not isinstance(n, int) or n < 1:
                raise ValueError(f"n_layers values must be whole numbers >= 1, got {n!r}")
        return self

    def _check_choices(self) -> "PatternSpace":
        others = [f for f in ("n_layers", "attention_count", "attention_ratio", "local_global")
                  if getattr(self, f) is not None]
        others += [f for f, default in (("placement", "evenly"), ("mlp", "interleave")) if getattr(self, f) != default]
        if others:
            raise ValueError(f"choices lists whole patterns; drop {', '.join(others)}")
        seen = set()
        for index, pattern in enumerate(self.choices):
            try:
                layers = "".join(expand_pattern(pattern))
            except PatternError as err:
                raise ValueError(f"choices[{index}]: {err}") from None
            if layers in seen:
                raise ValueError(f"choices[{index}] expands to the same layers as an earlier choice")
            seen.add(layers)
        return self

    @staticmethod
    def _choices(definition: Any) -> list[Any]:
        if isinstance(definition, CategoricalParam):
            return list(definition.choices)
        if isinstance(definition, (IntParam, FloatParam)):
            return [definition.low, definition.high]
        return [definition]

    def min_layers(self) -> int:
        return min(self._choices(self.n_layers))

    def searched(self) -> dict[str, Any]:
        """The searched fields, by Optuna parameter name, in sampling order."""
        return {f"pattern.{f}": getattr(self, f) for f in FIELDS if is_searched(getattr(self, f))}

    def probes(self) -> list[dict[str, Any]]:
        """Drawn values at every combination of each field's extremes (or choices): a handful of patterns that
        between them use every symbol any drawn pattern can use."""
        combos: list[dict[str, Any]] = [{}]
        for field in FIELDS:
            definition = getattr(self, field)
            values = definition.probe_values() if is_searched(definition) else [definition]
            combos = [{**combo, field: value} for combo in combos for value in values]
        return combos

    def symbols_used(self) -> set[str]:
        return {symbol for drawn in self.probes() for symbol in self.layers(drawn)}

    def sample(self, source: Source) -> dict[str, Any]:
        """Draw every field (fixed ones as they are): {field: value}."""
        return {f: draw(getattr(self, f), f"pattern.{f}", source) for f in FIELDS}

    def build(self, drawn: dict[str, Any]) -> str:
        """The pattern string for drawn values (see `sample`)."""
        return compress_pattern(self.layers(drawn))

    def layers(self, drawn: dict[str, Any]) -> list[str]:
        if drawn.get("choice") is not None:
            return list(expand_pattern(drawn["choice"]))
        n = int(drawn["n_layers"])
        placement = drawn["placement"]
        if isinstance(placement, list):
            positions = sorted(p for p in placement if p < n)
        else:
            if drawn["attention_count"] is not None:
                count = int(drawn["attention_count"])
            elif drawn["attention_ratio"] is not None:
                count = int(math.floor(float(drawn["attention_ratio"]) * n + 0.5))
            else:
                count = 0
            positions = place(min(max(count, 0), n), n, placement)
        symbols = self.symbols
        mixers = [symbols.mamba] * n
        local, global_ = parse_ratio(drawn["local_global"]) if drawn["local_global"] is not None else (0, 1)
        for j, position in enumerate(positions):
            is_global = (j % (local + global_)) >= local or (global_ > 0 and j == len(positions) - 1)
            mixers[position] = symbols.attention if is_global else symbols.local
        if drawn["mlp"] == "interleave":
            return [s for mixer in mixers for s in (mixer, symbols.mlp)]
        return mixers


def place(count: int, n: int, how: str) -> list[int]:
    """`count` distinct positions out of `n`: spread evenly through all layers or through the last half."""
    if count == 0:
        return []
    if how == "late":
        span = max(count, n - n // 2)
        start = n - span
    else:
        span, start = n, 0
    # Centre of each of `count` equal slices of the span: distinct because span >= count.
    return [start + min(span - 1, int((i + 0.5) * span / count)) for i in range(count)]
