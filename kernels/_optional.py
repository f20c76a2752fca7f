"""Availability probes for optional fused packages. Everything here imports lazily and caches the result.

The caches are plain dicts looked up before anything else: the backends call `import_module` / `import_mamba`
inside compiled models, and dynamo traces through functools.cache to the body, whose importlib calls it cannot
trace (one graph break per fused call: 9 of the 18 in the 100M trial's compiled step on the H200, 2026-12-06).
A dict lookup it traces, and the registry's probe has filled the dict before any backend runs.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
import types
from typing import Any

import torch


def has_cuda() -> bool:
    return torch.cuda.is_available()


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


@functools.cache
def triton_status() -> tuple[bool, str]:
    if not _installed("triton"):
        return False, "triton not installed"
    if not has_cuda():
        return False, "triton installed but no CUDA device"
    import triton

    return True, f"triton {triton.__version__}"


_MODULES: dict[str, tuple[Any, str]] = {}  # name -> import_module's answer
_MAMBA_MODULES: dict[str, tuple[Any, str]] = {}  # name -> import_mamba's answer


def import_module(name: str) -> tuple[Any, str]:
    """(module or None, reason). For a plain optional package such as flash_attn or causal_conv1d."""
    known = _MODULES.get(name)
    if known is None:
        known = _MODULES[name] = _import_module(name)
    return known


def _import_module(name: str) -> tuple[Any, str]:
    top = name.split(".")[0]
    if not _installed(top):
        return None, f"{top} not installed"
    try:
        module = importlib.import_module(name)
    except Exception as e:  # ImportError, but also CUDA-extension load errors (OSError, RuntimeError)
        return None, f"import {name} failed: {type(e).__name__}: {e}"
    version = getattr(sys.modules.get(top), "__version__", "?")
    return module, f"{top} {version}"


_PLACEHOLDER = "selective_scan_cuda"


def import_mamba(name: str) -> tuple[Any, str]:
    """Import a Triton-only submodule of mamba_ssm (e.g. `mamba_ssm.ops.triton.ssd_combined`).

    mamba-ssm 2.3.x's package __init__ imports its CUDA extension `selective_scan_cuda`, so without that
    extension (a build with MAMBA_SKIP_CUDA_BUILD) even its pure-Triton kernels cannot be imported. When that
    extension is the only thing missing we put an empty placeholder module in sys.modules, import, and say so
    in the reason; anything that really needs the extension then fails loudly with an AttributeError.
    """
    known = _MAMBA_MODULES.get(name)
    if known is None:
        known = _MAMBA_MODULES[name] = _import_mamba(name)
    return known


def _import_mamba(name: str) -> tuple[Any, str]:
    if not _installed("mamba_ssm"):
        return None, "mamba_ssm not installed"
    ok, why = triton_status()
    if not ok:
        return None, f"mamba_ssm installed but {why}"
    note = ""
    if _PLACEHOLDER not in sys.modules and not _installed(_PLACEHOLDER):
        placeholder = types.ModuleType(_PLACEHOLDER)
        placeholder.__doc__ = "archsearch placeholder: mamba_ssm's CUDA extension was not built"
        sys.modules[_PLACEHOLDER] = placeholder
        note = f" (CUDA extension {_PLACEHOLDER} missing: imported with an empty placeholder module)"
    try:
        module = importlib.import_module(name)
    except Exception as e:
        return None, f"import {name} failed: {type(e).__name__}: {e}{note}"
    # its backward kernels' autotune results, which Triton would benchmark again in every process
    from . import autotune_cache
    autotune_cache.persist_hooked_in_modules("mamba_ssm.")
    version = getattr(sys.modules.get("mamba_ssm"), "__version__", "?")
    return module, f"mamba_ssm {version}{note}"


def probe_module(name: str, mamba: bool = False, need_cuda: bool = True):
    """A zero-argument probe for the registry: (available, reason)."""

    def probe() -> tuple[bool, str]:
        if need_cuda and not has_cuda():
            return False, "no CUDA device"
        module, reason = (import_mamba if mamba else import_module)(name)
        return module is not None, reason

    return probe


# Call-info helpers shared by the ops' `accepts` functions.
HALF_OR_FLOAT = (torch.float16, torch.bfloat16, torch.float32)


def refuse_unless_cuda(call_info: dict[str, Any]) -> str | None:
    device = call_info.get("device", "cuda")
    return None if device == "cuda" else f"needs a CUDA tensor, got device {device!r}"


def refuse_dtype(call_info: dict[str, Any], allowed: tuple[torch.dtype, ...]) -> str | None:
    dtype = call_info.get("dtype")
    if dtype is None or dtype in allowed:
        return None
    return f"dtype {dtype} not in {', '.join(str(d) for d in allowed)}"
