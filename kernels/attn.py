"""Attention with GQA, causal masking aligned to the END of the keys, sliding window and logit soft-cap.

q (b, hq, t, d), k/v (b, hkv, s, d), t <= s. Query i sits at absolute position s - t + i, so t = 1 decodes
against a cache of s keys. Key j is visible to query i iff j <= pos_i (causal) and pos_i - window < j
(window=None: global). softcap c: logits -> c * tanh(logits / c) (Gemma 2), applied after the scale.
Backends: flash_attn (package), sdpa (torch), flex (FlexAttention), naive (reference, also the CPU fallback).
"""

from __future__ import annotations

import functools
import math
import warnings

import torch
import torch.nn.functional as F

from . import _checks, _optional, registry

OP = "attention"
SDPA_MAX_MASK_ELEMENTS = 1 << 20  # beyond this an explicit (t, s) mask is slower than flex (H100: 2.4x at 4096^2)


def _validate(q, k, v, causal, window, softcap, scale):
    _checks.floating(OP, q=q, k=k, v=v)
    if q.dim() != 4:
        _checks.fail(OP, "q.shape", tuple(q.shape), "4 dims (b, hq, t, d)")
    b, hq, t, d = q.shape
    if k.dim() != 4 or k.shape[0] != b or k.shape[3] != d:
        _checks.fail(OP, "k.shape", tuple(k.shape), f"({b}, hkv, s, {d}) with layout (b, hkv, s, d)")
    hkv, s = k.shape[1], k.shape[2]
    _checks.shape(OP, "v", v, (b, hkv, s, d), "(b, hkv, s, d)")
    if hq % hkv:
        _checks.fail(OP, "k.shape[1] (kv heads)", hkv, f"a divisor of the query heads {hq}")
    if t > s:
        _checks.fail(OP, "q.shape[2] (queries)", t, f"at most the number of keys {s} (queries align to the end)")
    if window is not None:
        if not isinstance(window, int) or window < 1:
            _checks.fail(OP, "window", window, "None or an int >= 1")
        if not causal:
            _checks.fail(OP, "window", window, "None when causal=False")
    if softcap is not None and not softcap > 0:
        _checks.fail(OP, "softcap", softcap, "None or a float > 0")
    if scale is not None and not scale > 0:
        _checks.fail(OP, "scale", scale, "None or a float > 0")
    _checks.same_device(OP, q, k=k, v=v)


def visible_mask(t: int, s: int, causal: bool, window: int | None, device) -> torch.Tensor:
    """(t, s) bool: True where query i may attend to key j."""
    pos_q = torch.arange(s - t, s, device=device)[:, None]
    pos_k = torch.arange(s, device=device)[None, :]
    mask = torch.ones(t, s, dtype=torch.bool, device=device)
    if causal:
        mask &= pos_k <= pos_q
    if window is not None:
        mask &= pos_k > pos_q - window
    return mask


# ---------------------------------------------------------------- naive (reference) -------------------------
def attention_reference(q, k, v, causal=True, window=None, softcap=None, scale=None):
    """Explicit matmul + mask + softmax in float32."""
    hq, t, d = q.shape[1], q.shape[2], q.shape[3]
    s = k.shape[2]
    rep = hq // k.shape[1]
    k_f, v_f = k.float().repeat_interleave(rep, dim=1), v.float().repeat_interleave(rep, dim=1)
    logits_BHTS = torch.matmul(q.float(), k_f.transpose(-1, -2)) * (scale if scale is not None else d**-0.5)
    if softcap is not None:
        logits_BHTS = softcap * torch.tanh(logits_BHTS / softcap)
    logits_BHTS = logits_BHTS.masked_fill(~visible_mask(t, s, causal, window, q.device), -math.inf)
    return torch.matmul(torch.softmax(logits_BHTS, dim=-1), v_f).to(q.dtype)


# ---------------------------------------------------------------- sdpa --------------------------------------
@functools.cache
def _sdpa_priority():
    """On CUDA, prefer cuDNN's fused attention (78-89% of the matmul rate on the H100, GPU-NOTES.md) over
    PyTorch's default order; returns None where this torch cannot set a priority."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        order = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                 SDPBackend.MATH]
        sdpa_kernel(order, set_priority=True)  # raises TypeError on a torch without set_priority
        return functools.partial(sdpa_kernel, order, set_priority=True)
    except (ImportError, TypeError, AttributeError):
        return None


def attention_sdpa(q, k, v, causal=True, window=None, softcap=None, scale=None):
    priority = _sdpa_priority() if q.is_cuda else None
    if priority is None:
        return _sdpa_call(q, k, v, causal, window, scale)
    with priority():
        return _sdpa_call(q, k, v, causal, window, scale)


def _sdpa_call(q, k, v, causal, window, scale):
    t, s = q.shape[2], k.shape[2]
    gqa = q.shape[1] != k.shape[1]
    if not causal or (window is None and t == 1):
        return F.scaled_dot_product_attention(q, k, v, scale=scale, enable_gqa=gqa)
    if window is None and t == s:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, enable_gqa=gqa)
    # SDPA's is_causal aligns queries to the start; anything else needs an explicit mask.
    mask = visible_mask(t, s, causal, window, q.device)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, enable_gqa=gqa)


def _sdpa_needs_mask(info) -> bool:
    t, s, window = info.get("t"), info.get("s"), info.get("window")
    if not info.get("causal", True):
        return False
    if window is None and (t == 1 or (t is not None and t == s)):
        return False
    return True


def _sdpa_accepts(**info) -> registry.Refusal:
    if info.get("softcap") is not None:
        return "SDPA has no logit soft-cap"
    if _sdpa_needs_mask(info):
        t, s = info.get("t"), info.get("s")
        if t is None or s is None or t * s > SDPA_MAX_MASK_ELEMENTS:
            what = "window" if info.get("window") is not None else "queries not aligned to the keys' start"
            return f"{what} needs an explicit (t, s) mask, too large here (t={t}, s={s}, limit {SDPA_MAX_MASK_ELEMENTS})"
    return None


def _sdpa_probe():
    # enable_gqa arrived in torch 2.5; the builtin has no inspectable signature, so try it on a tiny input.
    q = torch.zeros(1, 2, 1, 8)
    try:
        F.scaled_dot_product_attention(q, q[:, :1], q[:, :1], enable_gqa=True)
    except TypeError as e:
        return False, f"torch {torch.__version__} SDPA lacks enable_gqa: {e}"
    return True, f"torch {torch.__version__}"


# ---------------------------------------------------------------- flex --------------------------------------
@functools.cache
def _flex_module():
    from torch.nn.attention import flex_attention as flex

    return flex


@functools.cache
def _compiled_flex():
    return torch.compile(_flex_module().flex_attention, dynamic=False)


@functools.lru_cache(maxsize=64)
def _block_mask(t: int, s: int, causal: bool, window: int | None, device: str):
    """Cached per (t, s, causal, window, device): building a block mask scans all (t, s) blocks."""
    offset = s - t

    def mask_mod(b, h, q_idx, kv_idx):
        pos_q = q_idx + offset
        visible = kv_idx <= pos_q if causal else kv_idx >= 0
        if window is not None:
            visible = visible & (kv_idx > pos_q - window)
        return visible

    return _flex_module().create_block_mask(mask_mod, B=None, H=None, Q_LEN=t, KV_LEN=s, device=device)


@functools.lru_cache(maxsize=16)
def _softcap_mod(softcap: float):
    def score_mod(score, b, h, q_idx, kv_idx):
        return softcap * torch.tanh(score / softcap)

    return score_mod


def attention_flex(q, k, v, causal=True, window=None, softcap=None, scale=None):
    t, s = q.shape[2], k.shape[2]
    block_mask = _block_mask(t, s, causal, window, str(q.device)) if (causal or window is not None) else None
    kwargs = dict(score_mod=_softcap_mod(float(softcap)) if softcap is not None else None, block_mask=block_mask,
                  scale=scale, enable_gqa=q.shape[1] != k.shape[1])
    if q.is_cuda:
        return _compiled_flex()(q, k, v, **kwargs)
    with warnings.catch_warnings():  # eager on CPU is the point (a correct fallback), not a mistake
        warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
        return _flex_module().flex_attention(q, k, v, **kwargs)


def _flex_probe():
    try:
        _flex_module()
    except ImportError as e:
        return False, f"torch {torch.__version__} has no FlexAttention: {e}"
    return True, f"torch {torch.__version__} (compiled on CUDA, eager on CPU)"


def _flex_accepts(**info) -> registry.Refusal:
    if info.get("device") == "cpu" and info.get("requires_grad", False):
        return "FlexAttention has no backward on CPU"
    d = info.get("head_dim")
    if d is not None and (d < 16 or d & (d - 1)):
        return f"head_dim {d} is not a power of two >= 16"
    return None


# ---------------------------------------------------------------- flash_attn --------------------------------
def attention_flash(q, k, v, causal=True, window=None, softcap=None, scale=None):
    module, reason = _optional.import_module("flash_attn")
    if module is None:
        raise registry.BackendError(f"op {OP!r}: backend 'flash_attn' unavailable: {reason}")
    # flash_attn: layout (b, t, h, d); causal aligned to the bottom-right (end) as ours; window (left, right)
    # makes key j visible iff pos_i - left <= j <= pos_i + right, so ours is (window - 1, 0).
    out_BTHD = module.flash_attn_func(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), softmax_scale=scale, causal=causal,
        window_size=(window - 1, 0) if window is not None else (-1, -1),
        softcap=softcap if softcap is not None else 0.0,
    )
    return out_BTHD.transpose(1, 2)


def _flash_accepts(**info) -> registry.Refusal:
    refusal = _optional.refuse_unless_cuda(info) or _optional.refuse_dtype(info, (torch.float16, torch.bfloat16))
    if refusal:
        return refusal
    d = info.get("head_dim")
    if d is not None and (d > 256 or d % 8):
        return f"head_dim {d} must be a multiple of 8 and at most 256"
    return None


# ---------------------------------------------------------------- registration + public entry ---------------
def _default_call():
    cuda = _optional.has_cuda()
    return dict(device="cuda" if cuda else "cpu", dtype=torch.bfloat16 if cuda else torch.float32,
                head_dim=128, t=4096, s=4096, causal=True, window=None, softcap=None, requires_grad=True)


registry.register_op(OP, "attention (GQA, causal from the end, window, soft-cap)", _default_call)
registry.register_backend(OP, "flash_attn", 100, attention_flash, probe=_optional.probe_module("flash_attn"),
                          accepts=_flash_accepts)
registry.register_backend(OP, "sdpa", 80, attention_sdpa, probe=_sdpa_probe, accepts=_sdpa_accepts)
registry.register_backend(OP, "flex", 50, attention_flex, probe=_flex_probe, accepts=_flex_accepts)
registry.register_backend(OP, "naive", 0, attention_reference)


def attention(
    q: torch.Tensor,  # (b, hq, t, d)
    k: torch.Tensor,  # (b, hkv, s, d)
    v: torch.Tensor,  # (b, hkv, s, d)
    causal: bool = True,
    window: int | None = None,
    softcap: float | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """(b, hq, t, d) in q.dtype."""
    _validate(q, k, v, causal, window, softcap, scale)
    if window is not None and window >= k.shape[2]:
        window = None  # every key already lies inside the window: the global path is the same function
    info = dict(device=q.device.type, dtype=q.dtype, head_dim=q.shape[-1], t=q.shape[2], s=k.shape[2],
                causal=causal, window=window, softcap=softcap,
                requires_grad=torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad))
    return registry.run(OP, info, q, k, v, causal=causal, window=window, softcap=softcap, scale=scale)
