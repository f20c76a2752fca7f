"""The model spec: a layer pattern plus a table of block definitions and model-wide settings."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .dtypes import WEIGHT_DTYPES
from .fields import MAX_DIM, bounded_int, token_count
from .kinds import BlockKind, BlockSpec
from .errors import SpecIssue, _IssueGroup
from .pattern import RESERVED_CHARS, PatternError, expand_pattern, is_valid_symbol

MOE_SYMBOL = "E"


def pattern_issues(pattern, symbols: list[str]) -> list[SpecIssue]:
    """Problems of the pattern against the block table: malformed, or naming undefined symbols (each once)."""
    try:
        layers = expand_pattern(pattern)
    except PatternError as err:
        where = f" at position {err.position}" if err.position is not None else ""
        return [SpecIssue(("pattern",), err.reason + where, pattern)]
    issues, seen = [], set()
    for index, symbol in enumerate(layers):
        if symbol in symbols or symbol in seen:
            continue
        seen.add(symbol)
        why = " (reserved for MoE blocks, which archsearch does not build yet)" if symbol == MOE_SYMBOL else ""
        issues.append(SpecIssue(("pattern",), f"symbol {symbol!r} of layer {index}{why} is not defined in blocks",
                                pattern, "symbols defined in blocks: " + (", ".join(repr(s) for s in symbols)
                                                                          or "(none)")))
    return issues


class NormSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    eps: Annotated[float, Field(gt=0, lt=1)] = 1e-5
    post_block_norm: bool = False  # Gemma 2: RMSNorm on each block's output before the residual add
    unit_offset: bool = False  # Gemma: the scale is (1 + weight), weight initialised at zero


class InitSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    std: Annotated[float, Field(gt=0, le=1)] = 0.02
    embedding_std: Annotated[float, Field(gt=0, le=10)] | None = None  # None: std
    # GPT-2 style: output projections scaled by 1/sqrt(2 * n_layers) to keep the residual stream's variance.
    scale_output_projections: bool = True


@dataclass(frozen=True)
class Layer:
    index: int
    symbol: str
    block: BlockKind

    @property
    def kind(self) -> str:
        return self.block.kind


class ModelSpec(BaseModel):
    """A whole model. Immutable and JSON-serialisable: a stored spec rebuilds the same model later."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True, allow_inf_nan=False)

    name: Annotated[str, Field(min_length=1, max_length=200)]
    description: str | None = None
    vocab_size: bounded_int(2, 1 << 22)
    d_model: bounded_int(1, MAX_DIM)
    max_context: token_count(1, 1 << 24)  # 131072 or 128k
    pattern: str | list[str]
    blocks: dict[str, BlockSpec]
    norm: NormSpec = NormSpec()
    tie_embeddings: bool = True
    embedding_multiplier: Annotated[float, Field(gt=0)] | Literal["sqrt_d_model"] = 1.0
    final_logit_softcap: Annotated[float, Field(gt=0)] | None = None
    init: InitSpec = InitSpec()
    param_dtype: Literal[WEIGHT_DTYPES] = "float32"

    @model_validator(mode="after")
    def _check(self) -> "ModelSpec":
        issues: list[SpecIssue] = []
        for symbol in self.blocks:
            if not is_valid_symbol(symbol):
                issues.append(SpecIssue(("blocks", symbol), "a block symbol is one non-space character", symbol,
                                        f"any single character except whitespace and {''.join(sorted(RESERVED_CHARS))!r}"))
        issues.extend(pattern_issues(self.pattern, list(self.blocks)))
        for symbol, block in self.blocks.items():
            for issue in block.check_against(self.d_model, self.max_context):
                issues.append(SpecIssue(("blocks", symbol) + issue.path, issue.message, issue.value, issue.allowed))
        if issues:
            raise _IssueGroup(issues)
        return self

    @cached_property
    def layers(self) -> tuple[Layer, ...]:
        """The explicit per-layer list; the only place the pattern is read after validation."""
        return tuple(Layer(i, s, self.blocks[s]) for i, s in enumerate(expand_pattern(self.pattern)))

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def pattern_string(self) -> str:
        """The expanded pattern as one flat string, one character per layer."""
        return "".join(layer.symbol for layer in self.layers)

    def warnings(self) -> list[SpecIssue]:
        """Problems that do not make the spec invalid."""
        used = set(self.pattern_string)
        return [SpecIssue(("blocks", symbol), "block is defined but never used in the pattern")
                for symbol in self.blocks if symbol not in used]

    def to_dict(self) -> dict:
        return self.model_dump(mode="json", exclude_none=False)

    def spec_hash(self) -> str:
        """Stable hash of the resolved spec (keys sorted); the same model always hashes the same."""
        payload = json.dumps(self.model_dump(mode="json", exclude={"name", "description"}), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]
