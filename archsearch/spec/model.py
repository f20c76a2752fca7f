"""The model spec: a layer pattern plus a table of block definitions and model-wide settings."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .dtypes import WEIGHT_DTYPES
from .fields import MAX_DIM, bounded_int, token_count
from .kinds import BlockKind, BlockSpec
from .errors import SpecIssue, _IssueGroup
from .pattern import RESERVED_CHARS, PatternError, expand_pattern, is_valid_symbol

# JSON Schema form of is_valid_symbol: one character, not whitespace and not a pattern character.
SYMBOL_REGEX = "^[^\\s" + "".join(re.escape(c) for c in sorted(RESERVED_CHARS)) + "]$"

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

    eps: Annotated[float, Field(gt=0, lt=1)] = Field(1e-5, description="epsilon of every RMSNorm")
    post_block_norm: bool = Field(False, description="Gemma 2: RMSNorm on each block's output before the "
                                  "residual add")
    unit_offset: bool = Field(False, description="Gemma: the norm scale is (1 + weight), weight initialised at "
                              "zero")


class InitSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    std: Annotated[float, Field(gt=0, le=1)] = Field(0.02, description="standard deviation of the normal init of "
                                                      "weight matrices")
    embedding_std: Annotated[float, Field(gt=0, le=10)] | None = Field(None, description="init std of the "
                                                                       "embedding; null: std")
    # GPT-2 style: output projections scaled by 1/sqrt(2 * n_layers) to keep the residual stream's variance.
    scale_output_projections: bool = Field(True, description="scale output projections' init by "
                                           "1/sqrt(2 n_layers) (GPT-2 style)")


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

    name: Annotated[str, Field(min_length=1, max_length=200)] = Field(description="the model's name")
    description: str | None = Field(None, description="free text")
    vocab_size: bounded_int(2, 1 << 22) = Field(description="tokens in the vocabulary")
    d_model: bounded_int(1, MAX_DIM) = Field(description="width of the residual stream")
    max_context: token_count(1, 1 << 24) = Field(description="longest sequence the model serves, in tokens: "
                                                 "131072 or 128k")
    pattern: str | list[str] = Field(description="the layers, one block symbol each: a string such as "
                                     "'(M-M-*-)x4 M-' (groups, xN repeats, spaces ignored) or a list of symbols")
    blocks: dict[str, BlockSpec] = Field(
        description="what each pattern symbol stands for: a one-character symbol -> a block (kind: mamba2, "
        "attention or mlp, and its fields)",
        # editors refuse a two-character symbol as the validator does (the runtime error stays the spec's own)
        json_schema_extra={"propertyNames": {"minLength": 1, "maxLength": 1, "pattern": SYMBOL_REGEX}})
    norm: NormSpec = Field(NormSpec(), description="RMSNorm settings")
    tie_embeddings: bool = Field(True, description="the LM head reuses the embedding matrix")
    embedding_multiplier: Annotated[float, Field(gt=0)] | Literal["sqrt_d_model"] = Field(
        1.0, description="factor on the embedding output; sqrt_d_model: Gemma's sqrt(d_model)")
    final_logit_softcap: Annotated[float, Field(gt=0)] | None = Field(None, description="tanh soft-cap on the "
                                                                      "output logits (Gemma 2); null: none")
    init: InitSpec = Field(InitSpec(), description="weight initialisation")
    param_dtype: Literal[WEIGHT_DTYPES] = Field("float32", description="dtype the built model holds its weights "
                                                "in")

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
