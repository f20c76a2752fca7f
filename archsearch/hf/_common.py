"""Names and rules shared by every Hugging Face family: activations, RoPE settings, dtypes, block symbols."""

from __future__ import annotations

from typing import Any

from ..spec import ModelSpec
from ..spec.errors import SpecIssue
from ._config import ConfigReader, finite_number

# transformers' ACT2FN name -> archsearch activation. gelu_new and gelu_pytorch_tanh are the same tanh formula.
ACTIVATION_FROM_HF = {"gelu_pytorch_tanh": "gelu_tanh", "gelu_new": "gelu_tanh", "gelu": "gelu", "silu": "silu",
                      "swish": "silu", "relu": "relu", "relu2": "relu2"}
ACTIVATION_TO_HF = {"gelu_tanh": "gelu_pytorch_tanh", "gelu": "gelu", "silu": "silu", "relu": "relu",
                    "relu2": "relu2"}
DTYPES = ("float32", "bfloat16", "float16")

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


def rope_theta(reader: ConfigReader, default: float) -> float | None:
    """The RoPE base from `rope_parameters` (transformers 5) or `rope_theta` + `rope_scaling` (4.x).

    Only plain RoPE over the whole head is expressible; scaled variants (llama3, yarn, ...) and partial rotary
    factors are reported as problems rather than silently dropped.
    """
    params = reader.raw("rope_parameters")
    scaling = reader.raw("rope_scaling")
    if params is not None and not isinstance(params, dict):
        reader.problem("rope_parameters", "must be a mapping", params)
        params = None
    if scaling is not None and not isinstance(scaling, dict):
        reader.problem("rope_scaling", "must be a mapping or null", scaling)
        scaling = None
    merged = {**(scaling or {}), **(params or {})}
    kind = merged.get("rope_type", merged.get("type", "default"))
    key = "rope_parameters" if params is not None else "rope_scaling"
    if kind != "default":
        reader.problem((key, "rope_type"), "scaled RoPE variants are not expressible in an archsearch spec", kind,
                       "default")
    if merged.get("partial_rotary_factor", 1.0) != 1.0:
        reader.problem((key, "partial_rotary_factor"), "partial RoPE is not expressible",
                       merged["partial_rotary_factor"], "1.0")
    theta = merged.get("rope_theta", reader.raw("rope_theta", default))
    if not finite_number(theta) or not theta > 0:
        reader.problem("rope_theta", "must be a positive number", theta)
        return None
    return float(theta)


def rope_fields(theta: float) -> dict[str, Any]:
    """Both spellings, so transformers 4.x and 5.x read the same base."""
    return {"rope_theta": theta, "rope_parameters": {"rope_type": "default", "rope_theta": theta}}


def param_dtype(reader: ConfigReader) -> str:
    name = reader.raw("dtype", reader.raw("torch_dtype", "float32"))
    return name if name in DTYPES else "float32"


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


def plain_model_checks(check: Checker, spec: ModelSpec) -> None:
    """Model-wide features only Gemma 2 has; every other family needs them off."""
    check.expect(("norm", "post_block_norm"), spec.norm.post_block_norm, False, "no post-block norms")
    check.expect(("norm", "unit_offset"), spec.norm.unit_offset, False, "plain RMSNorm scales (no 1 + w)")
    check.expect(("embedding_multiplier",), spec.embedding_multiplier, 1.0, "unscaled embeddings")
    check.expect(("final_logit_softcap",), spec.final_logit_softcap, None, "no final logit soft-cap")
