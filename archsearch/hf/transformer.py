"""Decoder-only transformers: Llama, Qwen2, Qwen3 and Gemma2. One Hugging Face layer (attention + MLP) is two
archsearch layers, so their patterns are attention/MLP pairs: `(*-)x32`, or `(L-*-)x13` with Gemma 2's
alternating sliding-window (`L`) and global (`*`) attention.

Each family is a table of traits read from transformers' config and modeling code:
- Llama: `attention_bias` on q, k, v and o; `mlp_bias`; `head_dim`; global attention only.
- Qwen2: biases on q, k, v always and never on o; head_dim = hidden_size / heads; sliding-window layers.
- Qwen3: per-head RMSNorm on q and k; `attention_bias` on all four projections; `head_dim`; sliding windows.
- Gemma2: RMSNorm with (1 + w) scales, a norm after the attention and after the MLP, embeddings times
  sqrt(hidden_size), attention and final logit soft-caps, query scale `query_pre_attn_scalar ** -0.5`.
All four use plain RoPE, gated MLPs and a final RMSNorm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..spec import ModelSpec, compress_pattern
from ..spec.errors import SpecIssue
from ..spec.pattern import MAX_LAYERS
from ._common import (ACTIVATION_TO_HF, ATTENTION, LOCAL, MLP, Checker, activation, base_config, base_document,
                      check_windows, extended_context, model_name, one_definition, plain_model_checks, rope_fields,
                      rope_settings)
from ._config import ConfigReader


KINDS = ("attention", "mlp")  # the block kinds every family here holds, in attention / MLP pairs


@dataclass(frozen=True)
class Family:
    name: str
    model_type: str
    architecture: str
    qk_norm: bool
    fixed_qkv_bias: bool  # Qwen2: q/k/v biased, o not, whatever the config says
    head_dim_field: bool
    windows: bool
    mlp_bias_field: bool
    gemma: bool
    act_key: str
    hidden_divisible: bool  # the config itself rejects hidden_size % num_attention_heads != 0
    defaults: dict[str, Any] = field(default_factory=dict)
    # transformers' config fields of the family: one this model does not use (max_window_layers without
    # sliding windows, ...) is no surprise; a field outside them is reported (archsearch.hf._config)
    fields: frozenset[str] = frozenset()


_FIELDS = frozenset({"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                     "num_key_value_heads", "hidden_act", "max_position_embeddings", "initializer_range",
                     "rms_norm_eps", "tie_word_embeddings", "rope_theta", "rope_scaling", "rope_parameters",
                     "vocab_size", "attention_bias"})
_WINDOW_FIELDS = frozenset({"use_sliding_window", "sliding_window", "max_window_layers", "layer_types"})

_COMMON = {"intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32, "hidden_act": "silu",
           "max_position_embeddings": 2048, "rms_norm_eps": 1e-6, "tie_word_embeddings": False}
_QWEN = {**_COMMON, "intermediate_size": 22016, "max_position_embeddings": 32768, "sliding_window": 4096,
         "max_window_layers": 28, "num_key_value_heads": 32}

FAMILIES = {
    "llama": Family("Llama", "llama", "LlamaForCausalLM", qk_norm=False, fixed_qkv_bias=False, head_dim_field=True,
                    windows=False, mlp_bias_field=True, gemma=False, act_key="hidden_act", hidden_divisible=True,
                    defaults=_COMMON, fields=_FIELDS | {"head_dim", "mlp_bias", "pretraining_tp"}),
    "qwen2": Family("Qwen2", "qwen2", "Qwen2ForCausalLM", qk_norm=False, fixed_qkv_bias=True, head_dim_field=False,
                    windows=True, mlp_bias_field=False, gemma=False, act_key="hidden_act", hidden_divisible=False,
                    defaults=_QWEN, fields=_FIELDS | _WINDOW_FIELDS),
    "qwen3": Family("Qwen3", "qwen3", "Qwen3ForCausalLM", qk_norm=True, fixed_qkv_bias=False, head_dim_field=True,
                    windows=True, mlp_bias_field=False, gemma=False, act_key="hidden_act", hidden_divisible=False,
                    defaults={**_QWEN, "head_dim": 128}, fields=_FIELDS | _WINDOW_FIELDS | {"head_dim"}),
    "gemma2": Family("Gemma2", "gemma2", "Gemma2ForCausalLM", qk_norm=False, fixed_qkv_bias=False,
                     head_dim_field=True, windows=True, mlp_bias_field=False, gemma=True, act_key="hidden_activation",
                     hidden_divisible=True,
                     defaults={"intermediate_size": 9216, "num_hidden_layers": 26, "num_attention_heads": 8,
                               "num_key_value_heads": 4, "head_dim": 256, "hidden_activation": "gelu_pytorch_tanh",
                               "max_position_embeddings": 8192, "rms_norm_eps": 1e-6, "tie_word_embeddings": True,
                               "query_pre_attn_scalar": 256, "sliding_window": 4096,
                               "final_logit_softcapping": 30.0, "attn_logit_softcapping": 50.0},
                     # hidden_act: the legacy name beside hidden_activation, which the modeling code reads
                     fields=_FIELDS | _WINDOW_FIELDS | {"head_dim", "hidden_activation", "query_pre_attn_scalar",
                                                        "final_logit_softcapping", "attn_logit_softcapping",
                                                        "sliding_window_pattern"}),
}


# ---------------------------------------------------------------------------------------------- import
def _layer_windows(reader: ConfigReader, family: Family, n_layers: int) -> list[bool]:
    """Which HF layers use the sliding window, as transformers derives it when `layer_types` is absent."""
    types = reader.raw("layer_types")
    if types is not None:
        if not isinstance(types, list) or len(types) != n_layers or \
                not all(t in ("full_attention", "sliding_attention") for t in types):
            reader.problem("layer_types", f"must list {n_layers} entries, each full_attention or sliding_attention",
                           types)
            return [False] * n_layers
        if not family.windows and "sliding_attention" in types:
            reader.problem("layer_types", f"{family.name} has no sliding-window layers", types, "full_attention")
        return [t == "sliding_attention" for t in types]
    if family.gemma:
        # older Gemma configs: every Nth layer is global (1: all global); 0 or less would divide by zero
        every = reader.count("sliding_window_pattern", 2, MAX_LAYERS)
        return [bool((i + 1) % every) for i in range(n_layers)] if every else [False] * n_layers
    if family.windows and reader.bool("use_sliding_window", False):
        first = reader.int("max_window_layers", family.defaults["max_window_layers"])
        return [i >= first for i in range(n_layers)] if first is not None else [False] * n_layers
    return [False] * n_layers


def import_config(config: dict, family: Family, *, name: str | None, max_context: int | None,
                  source: str | None) -> tuple[dict[str, Any], list[SpecIssue]]:
    """The spec document of a config, and the config's fields that archsearch ignored (as warnings)."""
    reader = ConfigReader(config, source)
    d = family.defaults
    n_layers = reader.count("num_hidden_layers", d["num_hidden_layers"], MAX_LAYERS // 2)
    windows = _layer_windows(reader, family, n_layers)
    hidden = reader.int("hidden_size")
    n_heads = reader.int("num_attention_heads", d["num_attention_heads"])
    head_dim = reader.int("head_dim", d.get("head_dim")) if family.head_dim_field else None
    if head_dim is None and hidden and n_heads:
        head_dim = hidden // n_heads
        given = reader.int("head_dim", None)  # transformers 5 reads a head_dim key that 4.x ignored
        if given is not None and given != head_dim:
            reader.problem("head_dim", f"{family.name} derives head_dim as hidden_size // num_attention_heads "
                           f"({head_dim}) in transformers 4.x and reads this key in 5.x; the two disagree", given,
                           str(head_dim))
    bias = reader.bool("attention_bias", False)
    theta, scaling = rope_settings(reader, 10000.0)
    attention: dict[str, Any] = {
        "kind": "attention", "n_heads": n_heads,
        "n_kv_heads": reader.int("num_key_value_heads", d.get("num_key_value_heads", n_heads)),
        "head_dim": head_dim, "rope_theta": theta, "rope_scaling": scaling, "qk_norm": family.qk_norm,
        "qkv_bias": True if family.fixed_qkv_bias else bias, "out_bias": False if family.fixed_qkv_bias else bias,
    }
    if family.gemma:
        if reader.bool("use_bidirectional_attention", False):
            reader.problem("use_bidirectional_attention", "bidirectional attention is not expressible (archsearch "
                           "models are causal)", True, "false")
        attention["logit_softcap"] = reader.float("attn_logit_softcapping", None)
        scalar = reader.positive("query_pre_attn_scalar", d["query_pre_attn_scalar"])  # the scale is scalar ** -0.5
        if scalar is not None and scalar != head_dim:
            attention["query_scale"] = scalar ** -0.5
    blocks: dict[str, Any] = {}
    if not all(windows):
        blocks[ATTENTION] = attention
    if any(windows):
        blocks[LOCAL] = {**attention, "window": reader.int("sliding_window", d.get("sliding_window"))}
    blocks[MLP] = {"kind": "mlp", "ffn_dim": reader.int("intermediate_size", d["intermediate_size"]),
                   "activation": activation(reader, family.act_key, d.get(family.act_key, "silu")), "gated": True,
                   "bias": reader.bool("mlp_bias", False) if family.mlp_bias_field else False}
    # a YaRN scaling serves original x factor tokens, beyond max_position_embeddings in Qwen's configs
    longest = reader.int("max_position_embeddings", d["max_position_embeddings"])
    if longest is not None and extended_context(scaling):
        longest = max(longest, extended_context(scaling))
    document = base_document(reader, name=model_name(reader, name, family.model_type),
                             max_context=max_context or longest,
                             eps_key="rms_norm_eps", eps_default=d["rms_norm_eps"],
                             tie_default=d["tie_word_embeddings"])
    document["init"]["scale_output_projections"] = False
    if family.gemma:
        document["norm"].update(post_block_norm=True, unit_offset=True)
        document["embedding_multiplier"] = "sqrt_d_model"
        document["final_logit_softcap"] = reader.float("final_logit_softcapping", None)
    document["pattern"] = compress_pattern([s for w in windows for s in ((LOCAL if w else ATTENTION), MLP)]) \
        if n_layers >= 1 else ""
    document["blocks"] = blocks
    ignored = reader.unread(family.name, family.fields)
    reader.raise_if_any()
    return document, ignored


# ---------------------------------------------------------------------------------------------- export
def _check_pairs(check: Checker, spec: ModelSpec) -> None:
    for layer in spec.layers:
        wanted = "attention" if layer.index % 2 == 0 else "mlp"
        if layer.kind != wanted:
            check.add(("pattern",), f"{check.family} layers are attention then MLP pairs; layer {layer.index} "
                      f"({layer.symbol!r}) is {layer.kind}, not {wanted}", spec.pattern_string,
                      "a pattern such as (*-)xN")
            return
    if spec.n_layers % 2:
        check.add(("pattern",), f"{check.family} layers are attention then MLP pairs; the last attention layer "
                  "has no MLP", spec.pattern_string, "an even number of layers")


def _check_attention(check: Checker, family: Family, spec: ModelSpec, path: tuple, block) -> dict[str, Any]:
    dims = block.dims(spec.d_model)
    if block.rope_theta is None:
        check.add(path + ("rope_theta",), f"{family.name} attention uses RoPE", None, "a positive rope_theta")
    check.expect(path + ("qk_norm",), block.qk_norm, family.qk_norm, "qk_norm " + ("on" if family.qk_norm else "off"))
    if family.fixed_qkv_bias:
        check.expect(path + ("qkv_bias",), block.qkv_bias, True, "biases on q, k and v")
        check.expect(path + ("out_bias",), block.out_bias, False, "no bias on the output projection")
    elif block.qkv_bias != block.out_bias:
        check.add(path + ("out_bias",), f"{family.name} has one attention_bias for q, k, v and o; qkv_bias is "
                  f"{block.qkv_bias}", block.out_bias, repr(block.qkv_bias))
    if not family.gemma:
        check.expect(path + ("logit_softcap",), block.logit_softcap, None, "no attention logit soft-cap")
        if block.query_scale is not None:
            check.expect(path + ("query_scale",), block.query_scale, dims.head_dim ** -0.5,
                         "the default query scale head_dim ** -0.5")
    if not family.head_dim_field and dims.head_dim != spec.d_model // dims.n_heads:
        check.add(path + ("head_dim",), f"{family.name} derives head_dim as d_model // n_heads "
                  f"({spec.d_model // dims.n_heads})", dims.head_dim, str(spec.d_model // dims.n_heads))
    if family.hidden_divisible and spec.d_model % dims.n_heads:
        check.add(path + ("n_heads",), f"{family.name} configs require n_heads to divide d_model ({spec.d_model})",
                  dims.n_heads)
    config: dict[str, Any] = {"num_attention_heads": dims.n_heads, "num_key_value_heads": dims.n_kv_heads,
                              **(rope_fields(block.rope_theta, block.rope_scaling) if block.rope_theta else {})}
    if family.head_dim_field:
        config["head_dim"] = dims.head_dim
    if not family.fixed_qkv_bias:
        config["attention_bias"] = block.qkv_bias
    if family.gemma:
        config["attn_logit_softcapping"] = block.logit_softcap
        scalar = dims.head_dim if block.query_scale is None else block.query_scale ** -2
        if not math.isclose(scalar, round(scalar), rel_tol=1e-9):
            check.add(path + ("query_scale",), "Gemma2 writes the query scale as query_pre_attn_scalar ** -0.5 with "
                      "an integer scalar", block.query_scale, "1 / sqrt(n) for an integer n")
        config["query_pre_attn_scalar"] = round(scalar)
    return config


def export_spec(spec: ModelSpec, family: Family) -> tuple[dict[str, Any], Checker]:
    check = Checker(family.name)
    if family.gemma:
        check.expect(("norm", "post_block_norm"), spec.norm.post_block_norm, True, "post-block norms")
        check.expect(("norm", "unit_offset"), spec.norm.unit_offset, True, "(1 + w) norm scales")
        check.expect(("embedding_multiplier",), spec.embedding_multiplier, "sqrt_d_model", "embeddings scaled by "
                     "sqrt(d_model)")
    else:
        plain_model_checks(check, spec)
    _check_pairs(check, spec)
    config = base_config(spec, model_type=family.model_type, architecture=family.architecture, eps_key="rms_norm_eps")
    config["num_hidden_layers"] = sum(1 for layer in spec.layers if layer.kind == "attention")
    config["max_position_embeddings"] = spec.max_context
    attention = one_definition(check, spec, "attention", ignore=("window",))
    window = check_windows(check, spec, family.windows)
    if attention is not None:
        symbol = next(layer.symbol for layer in spec.layers if layer.kind == "attention")
        config.update(_check_attention(check, family, spec, ("blocks", symbol), attention))
        if family.windows:
            # any mix of local and global layers: transformers 5 reads layer_types for Gemma2, Qwen3 and Qwen2
            windows = [layer.block.window for layer in spec.layers if layer.kind == "attention"]
            config["layer_types"] = ["sliding_attention" if w else "full_attention" for w in windows]
            config["sliding_window"] = window
            if not family.gemma:
                config["use_sliding_window"] = window is not None
                config["max_window_layers"] = next((i for i, w in enumerate(windows) if w), len(windows))
    mlp = one_definition(check, spec, "mlp")
    if mlp is not None:
        path = ("blocks", next(layer.symbol for layer in spec.layers if layer.kind == "mlp"))
        check.expect(path + ("gated",), mlp.gated, True, "a gated MLP")
        if not family.mlp_bias_field:
            check.expect(path + ("bias",), mlp.bias, False, "an MLP without biases")
        config["intermediate_size"] = mlp.dims(spec.d_model).ffn_dim
        config[family.act_key] = ACTIVATION_TO_HF[mlp.activation]
        if family.mlp_bias_field:
            config["mlp_bias"] = mlp.bias
    if family.gemma:
        config["final_logit_softcapping"] = spec.final_logit_softcap
    return config, check
