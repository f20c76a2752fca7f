"""How long a run trains: a recipe gives its length as steps, tokens or training FLOPs; `resolve_budget` turns it
into a step count for one spec (pure, no torch), so trials of different sizes under one FLOPs budget each get
the steps their compute buys.

Rounding: a run never trains past its budget. Tokens buy `tokens // tokens_per_step` steps; FLOPs buy the
largest whole number of steps whose FLOPs (steps x tokens_per_step x training FLOPs per token, from
archsearch.spec.accounting at the run's seq_len) do not exceed the budget, with a 1e-9 relative allowance so a
budget written as an exact multiple of one step is not lost to float rounding. A budget that buys no step is
refused. `warmup` and `eval_every` may be fractions of the resolved run (0 < x < 1) or step counts.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from archsearch.errors import UserError
from archsearch.spec import ModelSpec, parse_size, training_flops_per_token

KINDS = ("steps", "tokens", "flops")
MAX_TOKENS = 1 << 50
MAX_FLOPS = 1e30
_REL = 1e-9  # float allowance when a FLOPs budget is an exact multiple of one step
_SI = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
_NUMBER = r"((?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)"
_FLOPS = re.compile(_NUMBER + r"\s*([kKMGTPE]?)")
_SCIENTIFIC = re.compile(_NUMBER)


def parse_tokens(value: Any, what: str = "tokens") -> int:
    """A token count: an integer, a size with k / M suffixes as spec sizes take them (x1024, e.g. 5M), or a
    whole number in scientific notation (5e6, as YAML leaves it a string)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and _SCIENTIFIC.fullmatch(value.strip()) and "e" in value.lower():
        number = float(value)
        if not number.is_integer():
            raise UserError(f"{what}: {value!r} is not a whole number of tokens")
        value = int(number)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise UserError(f"{what}: {value!r} is not a token count; allowed: a positive integer, 5e6, or a size "
                        f"with k (x1024) or M (x1048576), e.g. 512k, 5M")
    return parse_size(value, what, maximum=MAX_TOKENS)


def parse_flops(value: Any, what: str = "flops") -> float:
    """A FLOP count: a number (3e15) or a number with an SI suffix, decimal as FLOPs are quoted (k, M, G, T, P, E:
    3P = 3e15)."""
    if isinstance(value, bool):
        number = math.nan
    elif isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str) and (match := _FLOPS.fullmatch(value.strip())):
        number = float(match.group(1)) * _SI[match.group(2)]
    else:
        raise UserError(f"{what}: {value!r} is not a FLOP count; allowed: a positive number such as 3e15, or one "
                        f"with an SI suffix k, M, G, T, P, E (decimal), e.g. 3P, 250T")
    if not (math.isfinite(number) and 0 < number <= MAX_FLOPS):
        raise UserError(f"{what}: {value!r} is out of range; allowed: a positive number up to {MAX_FLOPS:g}")
    return number


def fraction_or_steps(value: int | float, total: int) -> int:
    """`warmup` / `eval_every` in steps: an integer is steps; 0 < x < 1 is that fraction of the run (rounded,
    at least 1 step when x > 0)."""
    if isinstance(value, float) and 0 < value < 1:
        return max(1, round(value * total))
    return int(value)


@dataclass(frozen=True)
class Budget:
    """A recipe's length resolved for one spec: the planned steps and what each step costs."""

    kind: str  # "steps" | "tokens" | "flops": how the recipe gave the length
    requested: float  # the recipe's figure, in the unit of `kind`
    steps: int  # planned optimizer steps
    tokens_per_step: int  # batch_size x grad_accum x seq_len
    flops_per_token: float  # training (3 x forward) FLOPs per token at seq_len
    seq_len: int
    warmup: int  # steps
    eval_every: int  # steps

    @property
    def flops_per_step(self) -> float:
        return self.tokens_per_step * self.flops_per_token

    def tokens_at(self, step: int) -> int:
        return step * self.tokens_per_step

    def flops_at(self, step: int) -> float:
        return step * self.flops_per_step

    @property
    def axis(self) -> str:
        """What trials are compared on when stopping early: equal compute for a FLOPs budget, equal tokens for
        a token budget, equal step otherwise."""
        return self.kind if self.kind != "steps" else "step"

    def per_step(self) -> float:
        """How far one step moves along `axis`."""
        return {"step": 1.0, "tokens": float(self.tokens_per_step), "flops": self.flops_per_step}[self.axis]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "requested": self.requested, "steps": self.steps,
                "tokens": self.tokens_at(self.steps), "flops": self.flops_at(self.steps), "tokens_per_step": self.tokens_per_step,
                "flops_per_token": self.flops_per_token, "seq_len": self.seq_len, "warmup": self.warmup,
                "eval_every": self.eval_every}


def resolve_budget(recipe, spec: ModelSpec, seq_len: int) -> Budget:
    """The step count `recipe` (archsearch.training.Recipe) buys for `spec` at `seq_len` (the task's sequence
    length, which is the recipe's unless the task sets its own). UserError when it buys no step."""
    tokens_per_step = recipe.batch_size * recipe.grad_accum * seq_len
    flops_per_token = training_flops_per_token(spec, seq_len)
    flops_per_step = tokens_per_step * flops_per_token
    kind = recipe.budget_kind
    if kind == "steps":
        requested: float = recipe.steps
        steps = recipe.steps
    elif kind == "tokens":
        requested = recipe.tokens
        steps = recipe.tokens // tokens_per_step
        if steps < 1:
            raise UserError(f"recipe.tokens: {recipe.tokens} tokens buy no step; one step is {tokens_per_step} tokens "
                            f"(batch_size {recipe.batch_size} x grad_accum {recipe.grad_accum} x seq_len {seq_len}); "
                            f"raise tokens to >= {tokens_per_step}")
    else:
        requested = recipe.flops
        steps = math.floor(recipe.flops / flops_per_step * (1 + _REL))
        if steps < 1:
            raise UserError(f"recipe.flops: {recipe.flops:g} FLOPs buy no step of {spec.name!r}; one step is "
                            f"{flops_per_step:.4g} FLOPs ({tokens_per_step} tokens x {flops_per_token:.4g} training "
                            f"FLOPs per token at seq_len {seq_len}); raise flops to >= {flops_per_step:.4g}")
    return Budget(kind, requested, steps, tokens_per_step, flops_per_token, seq_len,
                  fraction_or_steps(recipe.warmup, steps), fraction_or_steps(recipe.eval_every, steps))
