"""Names and rules shared by every Hugging Face family: activations, RoPE settings, dtypes, block symbols."""

from __future__ import annotations

import math
from typing import Any

from ..spec import ModelSpec
from ..spec.dtypes import WEIGHT_DTYPES
from ..spec.errors import SpecIssue
from ._config import ConfigReader, finite_number

# transformers' ACT2FN name -> archsearch activation. gelu_new and gelu_pytorch_tanh are the same tanh formula.
ACTIVATION_FROM_HF = {"gelu_pytorch_tanh": "gelu_tanh", "gelu_new": "gelu_tanh", "gelu": "gelu", "silu": "silu",
                      "swish": "silu", "relu": "relu", "relu2": "relu2"}
ACTIVATION_TO_HF = {"gelu_tanh": "gelu_pytorch_tanh", "gelu": "gelu", "silu": "silu", "relu": "relu",
                    "relu2": "relu2"}

# Symbols an import writes: the Megatron / NemotronH alphabet plus `L` for sliding-window attention.
MAMBA, ATTENTION, LOCAL, MLP = "M", "*", "L", "-"

# When a config has no maximum context (Mamba-2 has none), an import uses this unless told otherwise.
DEFAULT_MAX_CONTEXT = 8192


def activation(reader: ConfigReader, key: str, default: str) -> str | None:
    name = reader.str(key, default)
    if name is None:
        return None
    if name not in ACTIVATION_FROM_HF:
        reader.problem(key, "activation has no archsearch equivalent", name, ", ".join(ACTIVATION_FROM_HF))
        return None
    return ACTIVATION_FROM_HF[name]


# Parameters of each RoPE type transformers defines and archsearch expresses (rope_scaling's `type` of the spec).
_ROPE_KEYS = {"default": (), "linear": ("factor",),
              "yarn": ("factor", "original_max_position_embeddings", "beta_fast", "beta_slow", "attention_factor",
                       "truncate", "mscale", "mscale_all_dim"),
              "llama3": ("factor", "original_max_position_embeddings", "low_freq_factor", "high_freq_factor")}
_ROPE_COMMON = ("rope_type", "type", "rope_theta", "partial_rotary_factor")


def _yarn_mscale(factor: float, mscale: float) -> float:
    return 0.1 * mscale * math.log(factor) + 1.0 if factor > 1 else 1.0


def rope_settings(reader: ConfigReader, default: float) -> tuple[float | None, dict[str, Any] | None]:
    """(rope_theta, rope_scaling of the spec) from `rope_parameters` (transformers 5) or `rope_theta` +
    `rope_scaling` (4.x): plain RoPE, or linear, YaRN or Llama 3 scaling, read as transformers reads them.
    Other RoPE types, partial rotary factors and unknown parameters are reported, never dropped."""
    params = reader.raw("rope_parameters")
    scaling = reader.raw("rope_scaling")
    if params is not None and not isinstance(params, dict):
        reader.problem("rope_parameters", "must be a mapping", params)
        params = None
    if scaling is not None and not isinstance(scaling, dict):
        reader.problem("rope_scaling", "must be a mapping or null", scaling)
        scaling = None
    merged = {**(params or {}), **(scaling or {})}  # transformers 5 takes rope_scaling over rope_parameters
    key = "rope_scaling" if scaling else "rope_parameters"
    kind = merged.get("rope_type", merged.get("type", "default"))
    if kind not in _ROPE_KEYS:
        reader.problem((key, "rope_type"), "RoPE type not expressible in an archsearch spec", kind,
                       ", ".join(_ROPE_KEYS))
        kind = "default"
    for name in merged:
        if name not in _ROPE_COMMON + _ROPE_KEYS[kind]:
            reader.problem((key, name), f"not a parameter of {kind} RoPE that archsearch expresses", None,
                           ", ".join(_ROPE_COMMON + _ROPE_KEYS[kind]))
    partial = merged.get("partial_rotary_factor", reader.raw("partial_rotary_factor", 1.0))  # 5.x reads both
    if partial != 1.0:
        where = (key, "partial_rotary_factor") if "partial_rotary_factor" in merged else "partial_rotary_factor"
        reader.problem(where, "partial RoPE is not expressible", partial, "1.0")
    theta = merged.get("rope_theta", reader.raw("rope_theta", default))
    if not finite_number(theta) or not theta > 0:
        reader.problem("rope_theta", "must be a positive number", theta)
        theta = None
    if kind == "default":
        return (float(theta) if theta is not None else None), None

    def number(name: str, fallback: Any = None) -> Any:
        value = merged.get(name, fallback)
        if value is not None and not finite_number(value):
            reader.problem((key, name), "must be a finite number", value)
            return None
        return value

    out: dict[str, Any] = {"type": kind}
    longest = reader.raw("max_position_embeddings")
    longest = longest if finite_number(longest) and longest > 0 else None
    if kind != "linear":
        # transformers: a top-level original_max_position_embeddings (Phi-3) wins, then the rope's, then the maximum
        top = reader.int("original_max_position_embeddings", None)
        out["original_max_context"] = top if top is not None else number("original_max_position_embeddings",
                                                                           longest)
    factor = number("factor")
    if factor is None and kind == "yarn" and out.get("original_max_context") and longest:
        factor = longest / out["original_max_context"]  # as transformers derives a missing YaRN factor
    if factor is None:
        reader.problem((key, "factor"), f"{kind} RoPE scaling needs a factor", None, "a number >= 1")
    out["factor"] = factor
    if kind == "yarn":
        for name in ("beta_fast", "beta_slow"):
            if merged.get(name):  # transformers: a missing, null or zero beta takes its default
                out[name] = number(name)
        if merged.get("attention_factor") is not None:
            out["attention_factor"] = number("attention_factor")
        mscale, all_dim = number("mscale"), number("mscale_all_dim")
        if out.get("attention_factor") is None and mscale and all_dim and factor:
            denominator = _yarn_mscale(factor, all_dim)
            if denominator > 0:
                out["attention_factor"] = _yarn_mscale(factor, mscale) / denominator
        if "truncate" in merged:
            out["truncate"] = merged["truncate"]
    if kind == "llama3":
        for name in ("low_freq_factor", "high_freq_factor"):
            if name not in merged:
                reader.problem((key, name), "llama3 RoPE scaling needs it", None, "a positive number")
            out[name] = number(name)
    return (float(theta) if theta is not None else None), out


def extended_context(scaling: dict[str, Any] | None) -> int | None:
    """The context a YaRN scaling reaches, original x factor (Qwen's configs keep max_position_embeddings at the
    native length; DeepSeek's write the product), when both are numbers. Llama 3's bands name no such length."""
    scaling = scaling or {}
    original, factor = scaling.get("original_max_context"), scaling.get("factor")
    if scaling.get("type") == "yarn" and finite_number(original) and finite_number(factor) and original > 0 \
            and factor >= 1:
        return min(int(original * factor), 1 << 24)
    return None


def rope_fields(theta: float, scaling=None) -> dict[str, Any]:
    """Both spellings, so transformers 4.x and 5.x read the same RoPE: `rope_theta` with `rope_scaling` (4.x;
    5.x takes it over `rope_parameters` when both are present) and `rope_parameters`."""
    params: dict[str, Any] = {"rope_type": scaling.type if scaling is not None else "default", "rope_theta": theta}
    if scaling is not None:
        params["factor"] = scaling.factor
        if scaling.type in ("yarn", "llama3"):
            params["original_max_position_embeddings"] = scaling.original_max_context
        if scaling.type == "yarn":
            params.update(beta_fast=scaling.beta_fast, beta_slow=scaling.beta_slow, truncate=scaling.truncate)
            if scaling.attention_factor is not None:
                params["attention_factor"] = scaling.attention_factor
        if scaling.type == "llama3":
            params.update(low_freq_factor=scaling.low_freq_factor, high_freq_factor=scaling.high_freq_factor)
    fields: dict[str, Any] = {"rope_theta": theta, "rope_parameters": params}
    if scaling is not None:
        fields["rope_scaling"] = {k: v for k, v in params.items() if k != "rope_theta"}
    return fields


def param_dtype(reader: ConfigReader) -> str:
    name = reader.raw("dtype", reader.raw("torch_dtype", "float32"))
    return name if name in WEIGHT_DTYPES else "float32"


def model_name(reader: ConfigReader, name: str | None, fallback: str) -> str:
    if name:
        return name
    path = reader.raw("_name_or_path")
    if isinstance(path, str) and path.strip("/"):
        return path.strip("/").split("/")[-1][:200]
    return fallback


def base_document(reader: ConfigReader, *, name: str, max_context: int | None, eps_key: str, eps_default: float,
                  tie_default: bool, std_default: float = 0.02) -> dict[str, Any]:
    """Model-wide fields every family shares (vocabulary, width, norm eps, tying, init, dtype)."""
    document = {
        "name": name,
        "vocab_size": reader.int("vocab_size"),
        "d_model": reader.int("hidden_size"),
        "max_context": max_context,
        "norm": {"eps": reader.float(eps_key, eps_default)},
        "tie_embeddings": reader.bool("tie_word_embeddings", tie_default),
        "init": {"std": reader.float("initializer_range", std_default)},
        "param_dtype": param_dtype(reader),
    }
    return document


def base_config(spec: ModelSpec, *, model_type: str, architecture: str, eps_key: str) -> dict[str, Any]:
    return {
        "architectures": [architecture],
        "model_type": model_type,
        "vocab_size": spec.vocab_size,
        "hidden_size": spec.d_model,
        eps_key: spec.norm.eps,
        "tie_word_embeddings": spec.tie_embeddings,
        "initializer_range": spec.init.std,
        "dtype": spec.param_dtype,
    }


class Checker:
    """Collects the spec features a family cannot express, each with its path, value and what would fit."""

    def __init__(self, family: str):
        self.family = family
        self.issues: list[SpecIssue] = []

    def expect(self, path: tuple, value: Any, wanted: Any, what: str) -> None:
        if value != wanted:
            self.issues.append(SpecIssue(path, f"{self.family} needs {what}", value, repr(wanted)))

    def add(self, path: tuple, message: str, value: Any = None, allowed: str | None = None) -> None:
        self.issues.append(SpecIssue(path, message, value, allowed))


def used_blocks(spec: ModelSpec, kind: str) -> dict[str, Any]:
    """Block definitions of one kind that the pattern actually uses, by symbol (in pattern order)."""
    out: dict[str, Any] = {}
    for layer in spec.layers:
        if layer.kind == kind:
            out.setdefault(layer.symbol, layer.block)
    return out


def one_definition(check: Checker, spec: ModelSpec, kind: str, ignore: tuple[str, ...] = ()) -> Any:
    """HF configs hold one set of sizes per block kind: every used definition of `kind` must agree (fields in
    `ignore` may differ, e.g. `window` between local and global attention). Returns the first, or None."""
    blocks = used_blocks(spec, kind)
    if not blocks:
        return None
    (first_symbol, first), *rest = blocks.items()
    for symbol, block in rest:
        for name in type(block).model_fields:
            if name in ignore:
                continue
            if getattr(block, name) != getattr(first, name):
                check.add(("blocks", symbol, name), f"{check.family} has one {kind} setting for all layers; "
                          f"block {first_symbol!r} has {getattr(first, name)!r}", getattr(block, name),
                          repr(getattr(first, name)))
    return first


def check_windows(check: Checker, spec: ModelSpec, has_windows: bool, note: str = "") -> int | None:
    """Judge each used attention block's window once, on its own path, so the advice never contradicts itself:
    a family without sliding windows names every windowed block (null allowed); one with a single
    `sliding_window` names each block whose size differs from the first windowed block's. Returns that size."""
    windowed = {symbol: block.window for symbol, block in used_blocks(spec, "attention").items()
                if block.window is not None}
    if not windowed:
        return None
    if not has_windows:
        for symbol, window in windowed.items():
            check.add(("blocks", symbol, "window"), f"{check.family} has no sliding-window attention{note}", window,
                      "null (global attention)")
        return None
    (first_symbol, first), *rest = windowed.items()
    for symbol, window in rest:
        if window != first:
            check.add(("blocks", symbol, "window"), f"{check.family} has one sliding_window for all local layers; "
                      f"block {first_symbol!r} has {first}", window, f"{first}, or null (global attention)")
    return first


def plain_model_checks(check: Checker, spec: ModelSpec) -> None:
    """Model-wide features only Gemma 2 has; every other family needs them off."""
    check.expect(("norm", "post_block_norm"), spec.norm.post_block_norm, False, "no post-block norms")
    check.expect(("norm", "unit_offset"), spec.norm.unit_offset, False, "plain RMSNorm scales (no 1 + w)")
    check.expect(("embedding_multiplier",), spec.embedding_multiplier, 1.0, "unscaled embeddings")
    check.expect(("final_logit_softcap",), spec.final_logit_softcap, None, "no final logit soft-cap")
