"""One searched value: an int, float or categorical range, or a fixed value; and the sources that draw from them.

A source has Optuna's `suggest_int / suggest_float / suggest_categorical` methods, so an `optuna.Trial` is one;
`PointSource` (fixed values, for probing a space's extremes) and `RandomSource` (numpy-free uniform draws, for
screening benchmarks) are the others.
"""

from __future__ import annotations

import math
import random
from typing import Annotated, Any, Literal, Protocol, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

Scalar = Union[bool, int, float, str, None]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Source(Protocol):
    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...
    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None,
                      log: bool = False) -> float: ...
    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


class IntParam(_Frozen):
    type: Literal["int"]
    low: int
    high: int
    step: Annotated[int, Field(ge=1)] = 1
    log: bool = False
    when: dict[str, Any] | None = None  # sampled only when these earlier parameters have these values

    @model_validator(mode="after")
    def _check(self) -> "IntParam":
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        if self.log and self.low < 1:
            raise ValueError(f"a log range needs low >= 1, got {self.low}")
        if self.log and self.step != 1:
            raise ValueError("a log range takes no step")
        if (self.high - self.low) % self.step:
            raise ValueError(f"high - low ({self.high - self.low}) must be a multiple of step ({self.step})")
        return self

    def suggest(self, name: str, source: Source) -> int:
        return source.suggest_int(name, self.low, self.high, step=self.step, log=self.log)

    def probe_values(self) -> list[int]:
        return sorted({self.low, self.high})

    def grid_count(self) -> int:
        return (self.high - self.low) // self.step + 1

    def grid_values(self) -> list[int]:
        return list(range(self.low, self.high + 1, self.step))


class FloatParam(_Frozen):
    type: Literal["float"]
    low: float
    high: float
    step: Annotated[float, Field(gt=0)] | None = None
    log: bool = False
    when: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> "FloatParam":
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got {self.low}")
        if self.log and self.step is not None:
            raise ValueError("a log range takes no step")
        return self

    def suggest(self, name: str, source: Source) -> float:
        return source.suggest_float(name, self.low, self.high, step=self.step, log=self.log)

    def probe_values(self) -> list[float]:
        return sorted({self.low, self.high})

    def grid_count(self) -> int:
        if self.step is None:
            raise ValueError("a float range needs a step for the grid sampler")
        return int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1

    def grid_values(self) -> list[float]:
        return [round(self.low + i * self.step, 12) for i in range(self.grid_count())]


class CategoricalParam(_Frozen):
    type: Literal["categorical"]
    choices: Annotated[list[Scalar], Field(min_length=1)]
    when: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> "CategoricalParam":
        seen = []
        for choice in self.choices:
            if choice in seen and type(choice) in {type(s) for s in seen if s == choice}:
                raise ValueError(f"choice {choice!r} is listed twice")
            seen.append(choice)
        return self

    def suggest(self, name: str, source: Source) -> Any:
        return source.suggest_categorical(name, list(self.choices))

    def probe_values(self) -> list[Any]:
        return list(self.choices)

    def grid_count(self) -> int:
        return len(self.choices)

    def grid_values(self) -> list[Any]:
        return list(self.choices)


ParamDef = Annotated[Union[IntParam, FloatParam, CategoricalParam], Field(discriminator="type")]
# A searched value or a fixed one (a plain scalar, applied to every trial).
ValueDef = Union[ParamDef, Scalar]


def is_searched(definition: Any) -> bool:
    return isinstance(definition, (IntParam, FloatParam, CategoricalParam))


def draw(definition: Any, name: str, source: Source) -> Any:
    return definition.suggest(name, source) if is_searched(definition) else definition


class PointSource:
    """Answers each suggestion from a table of values, else the range's low end (or first choice)."""

    def __init__(self, values: dict[str, Any] | None = None, default: Literal["low", "high"] = "low"):
        self.values = values or {}
        self.default = default

    def suggest_int(self, name, low, high, *, step=1, log=False):
        return self.values.get(name, low if self.default == "low" else high)

    def suggest_float(self, name, low, high, *, step=None, log=False):
        return self.values.get(name, low if self.default == "low" else high)

    def suggest_categorical(self, name, choices):
        return self.values.get(name, choices[0] if self.default == "low" else choices[-1])


class RandomSource:
    """Uniform draws (log-uniform for log ranges) from Python's `random`, without an Optuna study."""

    def __init__(self, seed: int | None = None):
        self.rng = random.Random(seed)

    def suggest_int(self, name, low, high, *, step=1, log=False):
        if log:
            return min(high, max(low, round(math.exp(self.rng.uniform(math.log(low), math.log(high))))))
        return low + step * self.rng.randrange((high - low) // step + 1)

    def suggest_float(self, name, low, high, *, step=None, log=False):
        if log:
            return math.exp(self.rng.uniform(math.log(low), math.log(high)))
        if step is not None:
            return low + step * self.rng.randrange(int(math.floor((high - low) / step + 1e-9)) + 1)
        return self.rng.uniform(low, high)

    def suggest_categorical(self, name, choices):
        return choices[self.rng.randrange(len(choices))]
