"""Mamba2 (transformers' `Mamba2Config`): a stack of identical Mamba-2 layers.

The mixer's width is `expand * hidden_size`, which transformers requires to equal `num_heads * head_dim`; the
spec stores the head count. `time_step_rank`, `residual_in_fp32` and cache settings do not change the model.
Mamba2 configs have no maximum context; export writes `max_position_embeddings` anyway (transformers keeps
unknown keys) so that a spec's max_context survives the round trip, and import reads it when present.
"""

from __future__ import annotations

from typing import Any

from ..spec import ModelSpec, compress_pattern
from ..spec.errors import SpecIssue
from ..spec.pattern import MAX_LAYERS
from . import _mamba
from ._common import DEFAULT_MAX_CONTEXT, MAMBA, Checker, base_config, base_document, model_name, one_definition, plain_model_checks
from ._config import ConfigReader

MODEL_TYPE = "mamba2"
ARCHITECTURE = "Mamba2ForCausalLM"
KINDS = ("mamba2",)  # the block kinds this family holds
# transformers' Mamba2Config fields that do not change the model (see the module docstring)
FIELDS = frozenset({"time_step_rank", "residual_in_fp32"})


def import_config(config: dict, *, name: str | None, max_context: int | None,
                  source: str | None) -> tuple[dict[str, Any], list[SpecIssue]]:
    reader = ConfigReader(config, source)
    n_layers = reader.count("num_hidden_layers", 64, MAX_LAYERS)
    block = _mamba.import_block(reader, _mamba.MAMBA2)
    expand, hidden = reader.float("expand", 2), reader.int("hidden_size")
    if None not in (expand, hidden, block["n_heads"], block["head_dim"]) \
            and expand * hidden != block["n_heads"] * block["head_dim"]:
        reader.problem("expand", f"expand * hidden_size must equal num_heads * head_dim "
                       f"({block['n_heads']} * {block['head_dim']})", expand)
    document = base_document(reader, name=model_name(reader, name, "mamba2"),
                             max_context=max_context or reader.int("max_position_embeddings", DEFAULT_MAX_CONTEXT), eps_key="layer_norm_epsilon", eps_default=1e-5,
                             tie_default=False, std_default=0.1)
    document["init"]["scale_output_projections"] = reader.bool("rescale_prenorm_residual", False)
    document["pattern"] = compress_pattern([MAMBA] * n_layers) if n_layers else ""
    document["blocks"] = {MAMBA: block}
    ignored = reader.unread("Mamba2", FIELDS)
    reader.raise_if_any()
    return document, ignored


def export_spec(spec: ModelSpec) -> tuple[dict[str, Any], Checker]:
    check = Checker("Mamba2")
    plain_model_checks(check, spec)
    config = base_config(spec, model_type=MODEL_TYPE, architecture=ARCHITECTURE, eps_key="layer_norm_epsilon")
    config["num_hidden_layers"] = spec.n_layers
    config["max_position_embeddings"] = spec.max_context
    config["rescale_prenorm_residual"] = spec.init.scale_output_projections
    for layer in spec.layers:
        if layer.kind not in KINDS:
            check.add(("pattern",), f"Mamba2 has only Mamba-2 layers; layer {layer.index} is {layer.kind}",
                      layer.symbol, "symbols of mamba2 blocks")
            break
    block = one_definition(check, spec, "mamba2")
    if block is not None:
        symbol = next(layer.symbol for layer in spec.layers if layer.kind == "mamba2")
        config.update(_mamba.export_block(check, symbol, block, spec.d_model, _mamba.MAMBA2))
        d_inner = block.dims(spec.d_model).d_inner
        if d_inner % spec.d_model:
            check.add(("blocks", symbol, "n_heads"), f"Mamba2 needs n_heads * head_dim ({d_inner}) to be an integer "
                      f"multiple of d_model ({spec.d_model}): its `expand` is an integer", block.n_heads)
        config["expand"] = d_inner // spec.d_model
    return config, check
