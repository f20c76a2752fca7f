"""One plain dict with everything `archsearch show` reports about a spec (parameters, FLOPs, inference state),
so the terminal view, `--json` and the dashboard read the same figures."""

from __future__ import annotations

from typing import Any

from .accounting import (count_parameters, forward_flops_per_token, inference_state, training_flops_per_token,
                         weight_bytes)
from .model import ModelSpec
from .pattern import compress_pattern


def summarize(spec: ModelSpec, context: int | None = None, batch: int = 1) -> dict[str, Any]:
    """`context` defaults to the spec's max_context; FLOPs are per token at that sequence length."""
    context = spec.max_context if context is None else context
    params = count_parameters(spec)
    layers_per_kind: dict[str, int] = {}
    blocks: dict[str, dict[str, Any]] = {}
    for layer, count in zip(spec.layers, params.per_layer):
        layers_per_kind[layer.kind] = layers_per_kind.get(layer.kind, 0) + 1
        entry = blocks.setdefault(layer.symbol, {"kind": layer.kind, "layers": 0, "parameters_per_layer": count})
        entry["layers"] += 1
        if getattr(layer.block, "window", None):
            entry["window"] = layer.block.window
    state = inference_state(spec, context, batch)
    return {
        "name": spec.name,
        "spec_hash": spec.spec_hash(),
        "n_layers": spec.n_layers,
        "pattern": spec.pattern if isinstance(spec.pattern, str) else compress_pattern(spec.pattern_string),
        "layers": spec.pattern_string,
        "layers_per_kind": layers_per_kind,
        "blocks": blocks,
        "parameters": {k: v for k, v in params.to_dict().items() if k != "per_layer"},
        "weight_bytes": weight_bytes(spec),
        "param_dtype": spec.param_dtype,
        "flops": {
            "seq_len": context,
            "forward_per_token": forward_flops_per_token(spec, context),
            "training_per_token": training_flops_per_token(spec, context),
            "decode_per_token": forward_flops_per_token(spec, context, decode=True),
        },
        "inference_state": state.to_dict(),
        "warnings": [str(issue) for issue in spec.warnings()],
    }
