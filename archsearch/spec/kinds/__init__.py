"""The closed table of block kinds: a kind name -> its definition class (one module per kind beside this one).

Everything the spec side knows about a kind (fields, sizes, parameters, FLOPs, state, prefill workspace, Linear
shapes) is a method of its class (`base.BlockKind` lists them), so no consumer switches on the kind. The torch
module of each kind is bound by name in archsearch.builder.mixers. A new kind is a module here, one row below,
its nn.Module in archsearch.blocks and one row in archsearch.builder.mixers, plus its tests.
"""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from .attention import AttentionBlock, AttentionDims
from .base import BlockKind, LayerWorkspace, StateTerms
from .mamba2 import Mamba2Block, Mamba2Dims
from .mlp import MlpBlock, MlpDims

KINDS: dict[str, type[BlockKind]] = {cls.model_fields["kind"].default: cls
                                     for cls in (Mamba2Block, AttentionBlock, MlpBlock)}
BLOCK_KINDS = tuple(KINDS)

# What `blocks:` values parse as: pydantic picks the class by the `kind` tag.
BlockSpec = Annotated[Union[tuple(KINDS.values())], Field(discriminator="kind")]


def kind_class(name: str) -> type[BlockKind]:
    """The definition class of a kind; an unknown name is a ValueError listing the valid ones."""
    try:
        return KINDS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown block kind {name!r}; allowed: {', '.join(KINDS)}") from None


__all__ = ["BLOCK_KINDS", "KINDS", "AttentionBlock", "AttentionDims", "BlockKind", "BlockSpec", "LayerWorkspace",
           "Mamba2Block", "Mamba2Dims", "MlpBlock", "MlpDims", "StateTerms", "kind_class"]
