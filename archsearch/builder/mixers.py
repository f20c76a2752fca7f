"""The one place a block kind's name meets its torch module: kind -> nn.Module class.

Every class here takes `(block, d_model, norm_eps, device=, dtype=)`, and has `init_weights(init)`,
`allocate_cache(batch, max_len, device, dtype)` (None when the kind keeps no state) and a static
`kernel_calls(block, d_model, max_context, device, dtype)` listing the archsearch.kernels calls it makes, so the
builder never asks which kind a layer is. The keys are archsearch.spec.kinds.KINDS' (a test checks both tables
hold the same kinds).
"""

from __future__ import annotations

from torch import nn

from archsearch.blocks import Attention, Mamba2Mixer, Mlp

MIXERS: dict[str, type[nn.Module]] = {"mamba2": Mamba2Mixer, "attention": Attention, "mlp": Mlp}


def mixer_class(kind: str) -> type[nn.Module]:
    """The module class of a block kind; an unknown kind is a ValueError listing the built ones."""
    try:
        return MIXERS[kind]
    except (KeyError, TypeError):
        raise ValueError(f"no module for block kind {kind!r}; allowed: {', '.join(MIXERS)}") from None


def make_mixer(block, d_model: int, eps: float, device, dtype) -> nn.Module:
    return mixer_class(block.kind)(block, d_model, eps, device=device, dtype=dtype)
