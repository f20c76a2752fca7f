"""archsearch.kernels: ops with several backends, a registry that chooses and records, naive references.

Every public op goes through `registry`: the highest-priority backend that is importable and accepts the call,
unless ARCHSEARCH_BACKEND_<OP>=<name> or `force_backend(op, name)` says otherwise. No fused package (mamba_ssm,
causal_conv1d, flash_attn, triton) is imported here; each is probed on first use.
"""

from .attn import attention, attention_reference
from .attn_positions import CachePositions
from .conv1d import causal_conv1d, causal_conv1d_reference
from .decode import conv_state_update, conv_state_update_reference, ssm_state_update, ssm_state_update_reference
from .gated_norm import gated_rms_norm, gated_rms_norm_reference
from .mixer import mamba_mixer
from .registry import (
    BackendError,
    BackendRecord,
    backends_used,
    check,
    describe,
    force_backend,
    format_report,
    recording,
    reset_backends_used,
    select,
)
from .ssd import ssd_chunk_scan, ssd_scan_reference, ssd_scan_torch_chunked
from ._checks import KernelArgumentError

__all__ = [
    "BackendError",
    "BackendRecord",
    "CachePositions",
    "KernelArgumentError",
    "attention",
    "attention_reference",
    "backends_used",
    "causal_conv1d",
    "causal_conv1d_reference",
    "check",
    "conv_state_update",
    "conv_state_update_reference",
    "describe",
    "force_backend",
    "format_report",
    "gated_rms_norm",
    "gated_rms_norm_reference",
    "mamba_mixer",
    "recording",
    "reset_backends_used",
    "select",
    "ssd_chunk_scan",
    "ssd_scan_reference",
    "ssd_scan_torch_chunked",
    "ssm_state_update",
    "ssm_state_update_reference",
]
