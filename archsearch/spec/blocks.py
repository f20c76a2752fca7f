"""Block definitions: the kinds a pattern symbol can stand for, a discriminated union on `kind`.

Each kind lives in its own module under archsearch.spec.kinds; this module is the short import path for them.
Each block may give sizes relative to d_model (`expand`, `ffn_ratio`, default `head_dim`) so that a search over
d_model keeps specs valid; `dims(d_model)` resolves them to the plain integers every consumer uses.
"""

from .fields import MAX_DIM, MAX_HEADS, MAX_WINDOW, HeadCount, PositiveDim, bounded_int
from .kinds import (BLOCK_KINDS, KINDS, AttentionBlock, AttentionDims, BlockKind, BlockSpec, Mamba2Block, Mamba2Dims,
                    MlpBlock, MlpDims, kind_class)
from .kinds.mlp import ACTIVATIONS

__all__ = ["ACTIVATIONS", "BLOCK_KINDS", "KINDS", "MAX_DIM", "MAX_HEADS", "MAX_WINDOW", "AttentionBlock",
           "AttentionDims", "BlockKind", "BlockSpec", "HeadCount", "Mamba2Block", "Mamba2Dims", "MlpBlock", "MlpDims",
           "PositiveDim", "bounded_int", "kind_class"]
