"""The Mamba-2 mixer fields that NemotronH and Mamba2 configs share under different names."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..spec import Mamba2Block
from ._common import Checker
from ._config import ConfigReader, finite_number


@dataclass(frozen=True)
class MambaKeys:
    n_heads: str
    head_dim: str
    d_state: str
    activation: str
    chunk_default: int


NEMOTRON_H = MambaKeys("mamba_num_heads", "mamba_head_dim", "ssm_state_size", "mamba_hidden_act", 128)
MAMBA2 = MambaKeys("num_heads", "head_dim", "state_size", "hidden_act", 256)


def _dt_limit(reader: ConfigReader) -> tuple[float, float] | None:
    """`time_step_limit` (0, inf) is the 'no clamp' default, which the spec writes as null."""
    value = reader.raw("time_step_limit")
    if value is None:
        return None
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(finite_number(v) or (isinstance(v, float) and math.isinf(v)) for v in value)):
        reader.problem("time_step_limit", "must be a pair of numbers", value)
        return None
    low, high = float(value[0]), float(value[1])
    if low == 0 and math.isinf(high):
        return None
    if math.isinf(high) or math.isinf(low):
        reader.problem("time_step_limit", "a one-sided clamp is not expressible", value, "[0, inf] or two finite bounds")
        return None
    return (low, high)


def import_block(reader: ConfigReader, keys: MambaKeys) -> dict[str, Any]:
    act = reader.str(keys.activation, "silu")
    if act not in (None, "silu", "swish"):
        reader.problem(keys.activation, "the Mamba-2 mixer is built with silu only", act, "silu")
    return {
        "kind": "mamba2",
        "n_heads": reader.int(keys.n_heads, 128),
        "head_dim": reader.int(keys.head_dim, 64),
        "d_state": reader.int(keys.d_state, 128),
        "n_groups": reader.int("n_groups", 8),
        "conv_kernel": reader.int("conv_kernel", 4),
        "chunk_size": reader.int("chunk_size", keys.chunk_default),
        "dt_min": reader.float("time_step_min", 0.001),
        "dt_max": reader.float("time_step_max", 0.1),
        "dt_init_floor": reader.float("time_step_floor", 1e-4),
        "dt_limit": _dt_limit(reader),
        "gated_norm": True,  # both families always apply the per-group gated RMSNorm
        "conv_bias": reader.bool("use_conv_bias", True),
        "bias": reader.bool("use_bias", False),
    }


def export_block(check: Checker, symbol: str, block: Mamba2Block, d_model: int, keys: MambaKeys) -> dict[str, Any]:
    path = ("blocks", symbol)
    check.expect(path + ("gated_norm",), block.gated_norm, True, "the gated RMSNorm in every Mamba-2 mixer")
    check.expect(path + ("A_init_range",), block.A_init_range, Mamba2Block.model_fields["A_init_range"].default,
                 "the default A_init_range (its config has no field for it)")
    dims = block.dims(d_model)
    out = {
        keys.n_heads: dims.n_heads,
        keys.head_dim: dims.head_dim,
        keys.d_state: dims.d_state,
        keys.activation: "silu",
        "n_groups": dims.n_groups,
        "conv_kernel": dims.conv_kernel,
        "chunk_size": block.chunk_size,
        "time_step_min": block.dt_min,
        "time_step_max": block.dt_max,
        "time_step_floor": block.dt_init_floor,
        "use_conv_bias": block.conv_bias,
        "use_bias": block.bias,
    }
    if block.dt_limit is not None:
        out["time_step_limit"] = list(block.dt_limit)
    return out
