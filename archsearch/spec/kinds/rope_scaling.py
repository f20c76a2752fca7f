"""RoPE scaling of the attention kind: linear (position interpolation), YaRN and Llama 3's, as Hugging Face
transformers defines them (`modeling_rope_utils.py`). The spec holds the parameters; archsearch.blocks.rope
turns them into frequencies.

Every variant rescales the per-pair inverse frequencies once, at build time; YaRN also multiplies cos and sin by
an attention factor. None of them changes a parameter count, a buffer size or a FLOP count.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from ..errors import SpecIssue
from ..fields import Frozen, bounded_int, raise_issues

_FACTOR = Annotated[float, Field(ge=1, le=1024, description="how many times longer the extended context is than "
                                 "the one the model was trained at (>= 1)")]
_ORIGINAL = Annotated[bounded_int(1, 1 << 24), Field(description="the context the model was pre-trained at "
                                                     "(Hugging Face: original_max_position_embeddings)")]


def _above(model, high: str, low: str):
    """`model`, once its field `high` is checked to be above its field `low` (a band's two ends)."""
    if getattr(model, high) <= getattr(model, low):
        raise_issues([SpecIssue((high,), f"must be above {low} ({getattr(model, low)})", getattr(model, high),
                                f"a number > {getattr(model, low)}")])
    return model


class LinearRope(Frozen):
    """Position interpolation: every frequency divided by `factor`."""

    type: Literal["linear"] = Field(description="linear: every frequency divided by factor")
    factor: _FACTOR

    def attention_scale(self) -> float:
        return 1.0


class YarnRope(Frozen):
    """YaRN (arXiv:2309.00071): high frequencies kept, low ones interpolated by `factor`, a linear ramp between
    the dimensions that turn `beta_fast` and `beta_slow` times over `original_max_context`; cos and sin scaled by
    `attention_factor` (default 0.1 ln(factor) + 1)."""

    type: Literal["yarn"] = Field(description="yarn: YaRN interpolation (Qwen3 at 128k, ...)")
    factor: _FACTOR
    original_max_context: _ORIGINAL
    beta_fast: Annotated[float, Field(gt=0, le=1 << 16)] = Field(
        32.0, description="rotations over original_max_context above which a dimension is not interpolated")
    beta_slow: Annotated[float, Field(gt=0, le=1 << 16)] = Field(
        1.0, description="rotations over original_max_context below which a dimension is fully interpolated")
    attention_factor: Annotated[float, Field(gt=0, le=100)] | None = Field(
        None, description="multiplier of cos and sin; null: 0.1 ln(factor) + 1")
    truncate: bool = Field(True, description="round the ramp's ends to whole dimensions (transformers' default)")

    @model_validator(mode="after")
    def _check(self) -> "YarnRope":
        return _above(self, "beta_fast", "beta_slow")

    def attention_scale(self) -> float:
        if self.attention_factor is not None:
            return self.attention_factor
        return 0.1 * math.log(self.factor) + 1.0 if self.factor > 1 else 1.0


class Llama3Rope(Frozen):
    """Llama 3.1's: wavelengths above original_max_context / low_freq_factor divided by `factor`, those below
    original_max_context / high_freq_factor kept, a smooth interpolation between."""

    type: Literal["llama3"] = Field(description="llama3: Llama 3.1's frequency-band scaling")
    factor: _FACTOR
    original_max_context: _ORIGINAL
    low_freq_factor: Annotated[float, Field(gt=0, le=1 << 16)] = Field(
        1.0, description="wavelengths above original_max_context / low_freq_factor are divided by factor")
    high_freq_factor: Annotated[float, Field(gt=0, le=1 << 16)] = Field(
        4.0, description="wavelengths below original_max_context / high_freq_factor are kept")

    @model_validator(mode="after")
    def _check(self) -> "Llama3Rope":
        return _above(self, "high_freq_factor", "low_freq_factor")  # the smoothing divides by their difference

    def attention_scale(self) -> float:
        return 1.0


ROPE_SCALINGS = {cls.model_fields["type"].annotation.__args__[0]: cls for cls in (LinearRope, YarnRope, Llama3Rope)}

# What `rope_scaling:` parses as: pydantic picks the class by the `type` tag.
RopeScaling = Annotated[Union[LinearRope, YarnRope, Llama3Rope], Field(discriminator="type")]
