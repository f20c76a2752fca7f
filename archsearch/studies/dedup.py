"""Each distinct candidate is trained once: candidates that expand to the same model (and target) under the same
task, recipe and seed share one key, and a later one reuses the first one's stored result.

Samples often repeat a model without repeating their parameters: no attention layers make `placement` and
`local_global` irrelevant, a pattern without local layers ignores `blocks.L.window`, `(M-)x2` is `M-M-`. So the
key is built from the canonical form of each spec, not from the sampled values or the spec as written.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..spec import ModelSpec


def canonical_form(spec: ModelSpec) -> dict[str, Any]:
    """The model a spec describes, independent of how it is written: its layers as indices into its distinct
    blocks (symbols, unused blocks and the pattern's notation drop out), each block with its sizes resolved
    against d_model (ffn_ratio 2 at d_model 64 is ffn_dim 128), and every other field as the spec holds it."""
    model = spec.model_dump(mode="json", exclude={"name", "description", "pattern", "blocks"})
    blocks: list[str] = []  # canonical JSON of each distinct block, in order of first use
    layers: list[int] = []
    by_symbol: dict[str, int] = {}
    for layer in spec.layers:
        if layer.symbol not in by_symbol:
            text = json.dumps(layer.block.resolved(spec.d_model), sort_keys=True)
            if text not in blocks:
                blocks.append(text)
            by_symbol[layer.symbol] = blocks.index(text)
        layers.append(by_symbol[layer.symbol])
    return {"model": model, "blocks": [json.loads(b) for b in blocks], "layers": layers}


def _digest(payload: Any, length: int = 16) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:length]


def canonical_hash(spec: ModelSpec) -> str:
    """Hash of `canonical_form`: equal for specs that build the same model, whatever the key order or notation."""
    return _digest(canonical_form(spec))


def candidate_key(proxy: ModelSpec, target: ModelSpec | None, training: dict[str, Any]) -> str:
    """The key under which a trained result is reused: proxy and target models, task, recipe and seed."""
    return _digest({"proxy": canonical_form(proxy), "target": canonical_form(target) if target is not None else None,
                    "training": training}, 32)


def training_identity(task: str | dict, recipe: dict, seed: int) -> dict[str, Any]:
    """What besides the model decides a training's result, in canonical form."""
    from .identity import canonical_task

    # The recipe's own seed wins over the study's (archsearch.studies.evaluate.resolve_training).
    return {"task": canonical_task(task), "recipe": {k: v for k, v in recipe.items() if k != "seed"},
            "seed": recipe.get("seed", seed)}
