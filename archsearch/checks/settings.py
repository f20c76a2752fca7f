"""What a budget check assumes about how the model is served: dtypes, prefill chunking, attention backend."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Literal

from ..errors import UserError
from ..spec.dtypes import normalize_dtype
from .devices import BudgetPolicy


@dataclass(frozen=True)
class CheckSettings:
    """Serving assumptions. Every field is a plain value, so a study can store the settings it screened with.

    param_dtype: weights; act_dtype: activations and conv states (the builder keeps conv states in the
    activation dtype); kv_dtype: attention caches; state_dtype: SSM states (float32 as NemotronH keeps them).
    prefill_chunk: tokens per prefill step (chunked prefill). logits: "last" computes the LM head only for the
    chunk's last token (what generation needs, what serving engines do, and the builder's prefill default),
    "all" for every token of the chunk (the builder's `prefill(..., logits="all")`, used by parity tests).
    kernels: the kernel path, "fused" (CUDA: mamba-ssm's Triton scan and gated norm; attention that needs no
    element mask) or "eager" (the CPU path: the chunked PyTorch scan, float32 inside, and SDPA with a boolean
    mask for chunks after the first); see workspace.py for what each holds.
    attention_scores: "fused" backends (flash, cuDNN, memory-efficient SDPA) never hold the score matrix;
    "materialized" (eager/math attention) holds (heads, chunk, keys) scores in float32.
    policy: the budget policy; None uses the device's own, else the Nemotron default.
    """

    param_dtype: str = "bfloat16"
    act_dtype: str = "bfloat16"
    kv_dtype: str = "bfloat16"
    state_dtype: str = "float32"
    prefill_chunk: int = 2048
    logits: Literal["last", "all"] = "last"
    kernels: Literal["fused", "eager"] = "fused"
    attention_scores: Literal["fused", "materialized"] = "fused"
    policy: BudgetPolicy | None = field(default=None)

    def __post_init__(self) -> None:
        for name in ("param_dtype", "act_dtype", "kv_dtype", "state_dtype"):
            object.__setattr__(self, name, normalize_dtype(getattr(self, name), f"--{name.replace('_', '-')}"))
        if self.act_dtype == "float8":
            raise UserError("--act-dtype: activations cannot be float8; allowed: bfloat16, float16, float32")
        if not isinstance(self.prefill_chunk, int) or self.prefill_chunk < 1:
            raise UserError(f"--prefill-chunk: must be a whole number of tokens >= 1, got {self.prefill_chunk!r}")
        if self.logits not in ("last", "all"):
            raise UserError(f"logits: {self.logits!r} is not allowed; allowed: last, all")
        if self.kernels not in ("fused", "eager"):
            raise UserError(f"--kernels: {self.kernels!r} is not allowed; allowed: fused, eager")
        if self.attention_scores not in ("fused", "materialized"):
            raise UserError(f"attention_scores: {self.attention_scores!r} is not allowed; allowed: fused, "
                            f"materialized")

    def with_(self, **changes) -> "CheckSettings":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["policy"] = self.policy.model_dump() if self.policy else None
        return out
