"""NemotronH (Nemotron-H, Nemotron-Nano-v2): any mix of Mamba-2, attention and MLP layers.

Semantics follow transformers' `NemotronHConfig` / `modeling_nemotron_h.py`: attention has no position
encoding and no biases (the modeling code ignores `attention_bias`); the LM head is never tied to the
embedding (the model declares no tied weights, whatever `tie_word_embeddings` says); the MLP is non-gated (`mlp_hidden_act`,
relu2 by default, `mlp_bias`); the Mamba mixer has `mamba_num_heads` heads of `mamba_head_dim`, `n_groups`
groups for B/C and a per-group gated RMSNorm; `use_bias` applies to the Mamba projections only. The mixer
clamps dt to (time_step_min, inf) whatever `time_step_limit` says; the spec still records `time_step_limit` as
`dt_limit`, the meaning Mamba-2 gives it. Fields with no
architectural effect (`residual_in_fp32`, dropout, cache dtypes, `use_mamba_kernels`) are not imported.
"""

from __future__ import annotations

from typing import Any

from ..spec import ModelSpec, compress_pattern
from ..spec.errors import SpecIssue
from ..spec.pattern import MAX_LAYERS
from . import _mamba
from ._common import (ACTIVATION_TO_HF, ATTENTION, MAMBA, MLP, Checker, activation, base_config, base_document,
                      check_windows, model_name, one_definition, plain_model_checks)
from ._config import ConfigReader

MODEL_TYPE = "nemotron_h"
ARCHITECTURE = "NemotronHForCausalLM"

# Layer type names of `layers_block_type` (transformers 5) and their legacy spellings -> pattern symbols.
LAYER_TYPES = {"linear_attention": MAMBA, "mamba": MAMBA, "full_attention": ATTENTION, "attention": ATTENTION,
               "mlp": MLP, "moe": "E"}
# The block kinds this family holds, each as its hybrid_override_pattern symbol; others are not expressible.
SYMBOL_OF_KIND = {"mamba2": MAMBA, "attention": ATTENTION, "mlp": MLP}
KINDS = tuple(SYMBOL_OF_KIND)
# transformers' NemotronHConfig fields this model may leave unread: sizes of kinds it has no layers of, MoE
# settings (MoE layers are refused through the layer types), and fields with no effect (module docstring)
FIELDS = frozenset({
    "num_attention_heads", "num_key_value_heads", "head_dim", "attention_bias", "intermediate_size", "mlp_bias",
    "mlp_hidden_act", "mamba_num_heads", "mamba_head_dim", "ssm_state_size", "mamba_hidden_act", "n_groups",
    "conv_kernel", "chunk_size", "time_step_min", "time_step_max", "time_step_floor", "time_step_limit", "use_bias",
    "use_conv_bias", "mamba_proj_bias", "expand", "residual_in_fp32", "use_mamba_kernels", "mamba_ssm_cache_dtype",
    "sliding_window", "moe_intermediate_size", "moe_latent_size", "moe_shared_expert_intermediate_size",
    "moe_shared_expert_overlap", "mtp_layers_block_type", "n_group", "n_routed_experts", "n_shared_experts",
    "norm_topk_prob", "num_experts_per_tok", "output_router_logits", "routed_scaling_factor", "topk_group",
    "router_aux_loss_coef", "num_nextn_predict_layers", "hybrid_override_pattern", "layers_block_type",
    "layer_types", "num_hidden_layers"})
_LEGACY_KEYS = {"mamba_n_groups": "n_groups", "mamba_d_conv": "conv_kernel", "mamba_dt_min": "time_step_min",
                "mamba_dt_max": "time_step_max", "mamba_dt_limit": "time_step_limit",
                "mamba_dt_init_floor": "time_step_floor", "mamba_conv_bias": "use_conv_bias",
                "mamba_chunk_size": "chunk_size"}


def _symbols(reader: ConfigReader) -> list[str]:
    types = reader.raw("layers_block_type", reader.raw("layer_types"))
    if types is not None:
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            reader.problem("layers_block_type", "must be a list of layer type names", types)
            return []
        unknown = sorted({t for t in types if t not in LAYER_TYPES})
        if unknown:
            reader.problem("layers_block_type", "unknown layer types", unknown, ", ".join(LAYER_TYPES))
            return []
        symbols = [LAYER_TYPES[t] for t in types]
    else:
        pattern = reader.str("hybrid_override_pattern")
        if pattern is None:
            return []
        bad = sorted(set(pattern) - {MAMBA, ATTENTION, MLP, "E"})
        if bad:
            reader.problem("hybrid_override_pattern", f"unknown symbols {bad}", pattern, "M, *, -, E")
            return []
        symbols = list(pattern)
    if "E" in symbols:
        reader.problem("layers_block_type", "MoE layers are not expressible in an archsearch spec yet",
                       "moe" if types is not None else "E", "mamba, attention and mlp layers")
    if not symbols:
        reader.problem("layers_block_type", "the model has no layers", types)
    if len(symbols) > MAX_LAYERS:  # refused before a pattern of that length is built
        reader.problem("layers_block_type" if types is not None else "hybrid_override_pattern",
                       f"{len(symbols)} layers; at most {MAX_LAYERS} are allowed", None, f"1 .. {MAX_LAYERS} layers")
        return []
    return symbols


def import_config(config: dict, *, name: str | None, max_context: int | None,
                  source: str | None) -> tuple[dict[str, Any], list[SpecIssue]]:
    config = {**{new: config[old] for old, new in _LEGACY_KEYS.items() if old in config and new not in config},
              **config}
    reader = ConfigReader(config, source)
    reader.acknowledge(*_LEGACY_KEYS)  # read under their new names
    symbols = _symbols(reader)
    if (reader.int("num_nextn_predict_layers", 0) or 0) > 0:
        reader.problem("num_nextn_predict_layers", "multi-token prediction layers are not expressible",
                       config["num_nextn_predict_layers"], "0")
    blocks: dict[str, Any] = {}
    if MAMBA in symbols:
        blocks[MAMBA] = _mamba.import_block(reader, _mamba.NEMOTRON_H)
    if ATTENTION in symbols:
        blocks[ATTENTION] = {"kind": "attention", "n_heads": reader.int("num_attention_heads", 32),
                             "n_kv_heads": reader.int("num_key_value_heads", 8), "head_dim": reader.int("head_dim", 128),
                             "rope_theta": None}
    if MLP in symbols:
        blocks[MLP] = {"kind": "mlp", "ffn_dim": reader.int("intermediate_size", 21504),
                       "activation": activation(reader, "mlp_hidden_act", "relu2"), "gated": False,
                       "bias": reader.bool("mlp_bias", False)}
    document = base_document(reader, name=model_name(reader, name, "nemotron-h"),
                             max_context=max_context or reader.int("max_position_embeddings", 4096),
                             eps_key="layer_norm_epsilon", eps_default=1e-5, tie_default=False)
    document["init"]["scale_output_projections"] = reader.bool("rescale_prenorm_residual", True)
    document["tie_embeddings"] = False  # what transformers builds, see the module docstring
    document["pattern"] = compress_pattern(symbols) if symbols else ""
    document["blocks"] = blocks
    ignored = reader.unread("NemotronH", FIELDS)
    reader.raise_if_any()
    return document, ignored


def usage_notes(config: dict[str, Any]) -> list[str]:
    """What a user of an exported NemotronH config must know that the config itself cannot say."""
    if ATTENTION in config.get("hybrid_override_pattern", ATTENTION):
        return []
    return ["transformers' NemotronH runs a model without attention layers only with use_cache=False (checked "
            "with transformers 5.25: its cache asks an attention layer for the mask sizes and raises ValueError "
            "otherwise); pass use_cache=False to the model and to generate()"]


def export_spec(spec: ModelSpec) -> tuple[dict[str, Any], Checker]:
    check = Checker("NemotronH")
    plain_model_checks(check, spec)
    check.expect(("tie_embeddings",), spec.tie_embeddings, False, "an untied LM head (transformers' NemotronH "
                 "never ties it)")
    config = base_config(spec, model_type=MODEL_TYPE, architecture=ARCHITECTURE, eps_key="layer_norm_epsilon")
    for layer in spec.layers:
        if layer.kind not in SYMBOL_OF_KIND:
            check.add(("pattern",), f"NemotronH has no {layer.kind} layers; layer {layer.index} is one", layer.symbol,
                      f"symbols of {', '.join(KINDS)} blocks")
            break
    config["hybrid_override_pattern"] = "".join(SYMBOL_OF_KIND.get(layer.kind, "?") for layer in spec.layers)
    config["num_hidden_layers"] = spec.n_layers
    config["max_position_embeddings"] = spec.max_context
    config["rescale_prenorm_residual"] = spec.init.scale_output_projections
    config["residual_in_fp32"] = False
    mamba = one_definition(check, spec, "mamba2")
    if mamba is not None:
        symbol = next(layer.symbol for layer in spec.layers if layer.kind == "mamba2")
        config.update(_mamba.export_block(check, symbol, mamba, spec.d_model, _mamba.NEMOTRON_H))
    attention = one_definition(check, spec, "attention", ignore=("window",))
    check_windows(check, spec, has_windows=False, note=" (no Hugging Face family holds Mamba-2 layers beside "
                  "windowed attention; Gemma2, Qwen3 and Qwen2 hold local + global attention-only models)")
    if attention is not None:
        path = ("blocks", next(layer.symbol for layer in spec.layers if layer.kind == "attention"))
        dims = attention.dims(spec.d_model)
        check.expect(path + ("rope_theta",), attention.rope_theta, None, "attention without position encoding")
        check.expect(path + ("logit_softcap",), attention.logit_softcap, None, "no attention logit soft-cap")
        check.expect(path + ("qk_norm",), attention.qk_norm, False, "no qk-norm")
        check.expect(path + ("qkv_bias",), attention.qkv_bias, False, "attention without biases")
        check.expect(path + ("out_bias",), attention.out_bias, False, "attention without biases")
        if attention.query_scale is not None:
            check.expect(path + ("query_scale",), attention.query_scale, dims.head_dim ** -0.5,
                         "the default query scale head_dim ** -0.5")
        config.update({"num_attention_heads": dims.n_heads, "num_key_value_heads": dims.n_kv_heads,
                       "head_dim": dims.head_dim, "attention_bias": False})
    mlp = one_definition(check, spec, "mlp")
    if mlp is not None:
        path = ("blocks", next(layer.symbol for layer in spec.layers if layer.kind == "mlp"))
        check.expect(path + ("gated",), mlp.gated, False, "a non-gated MLP")
        config.update({"intermediate_size": mlp.dims(spec.d_model).ffn_dim,
                       "mlp_hidden_act": ACTIVATION_TO_HF[mlp.activation], "mlp_bias": mlp.bias})
    return config, check
