"""Attention with GQA, causal masking aligned to the END of the keys, sliding window and logit soft-cap.

q (b, hq, t, d), k/v (b, hkv, s, d), t <= s. Query i sits at absolute position s - t + i, so t = 1 decodes
against a cache of s keys. Key j is visible to query i iff j <= pos_i (causal) and pos_i - window < j
(window=None: global). softcap c: logits -> c * tanh(logits / c) (Gemma 2), applied after the scale.
Backends: flash_attn (package), sdpa (torch), flex (FlexAttention), naive (reference, also the CPU fallback).

With `positions` (attn_positions.CachePositions) visibility comes from absolute positions instead: attention
over a preallocated cache whose slots may be empty or in ring order (attn_positions.py). Chunked prefill after
the first chunk (t < s) needs causality aligned to the END: SDPA gets `causal_lower_right` (flash serves it,
GQA included, without a mask), flex a block mask built from positions.
"""

from __future__ import annotations

import functools
import math
import warnings

import torch
import torch.nn.functional as F

from . import _batching, _checks, _optional, registry
from .attn_positions import CachePositions, position_block_mask, visible_from_positions

OP = "attention"
SDPA_MAX_MASK_ELEMENTS = 1 << 20  # beyond this an explicit (t, s) mask is slower than flex (H100: 2.4x at 4096^2)
# cuDNN SDPA failed (mha_graph.execute not good) at batch 194 x 16 heads x 2048 queries on the H100 (2026-11-24);
# 2^18 query rows (b * hq * t) per call is the largest size that ran there, so larger calls go in sub-batches.
SDPA_MAX_QUERY_ROWS = 1 << 18


def _validate(q, k, v, causal, window, softcap, scale):
    # Plain comparisons first; a helper (which formats the error) runs only when one fails, in the same order.
    ok = _checks.floating_on(q.device, q, k, v)
    if not ok:
        _checks.floating(OP, q=q, k=k, v=v)
    q_shape = q.shape
    if len(q_shape) != 4:
        _checks.fail(OP, "q.shape", tuple(q.shape), "4 dims (b, hq, t, d)")
    b, hq, t, d = q_shape
    k_shape = k.shape
    if len(k_shape) != 4 or k_shape[0] != b or k_shape[3] != d:
        _checks.fail(OP, "k.shape", tuple(k.shape), f"({b}, hkv, s, {d}) with layout (b, hkv, s, d)")
    hkv, s = k_shape[1], k_shape[2]
    if v.shape != k_shape:
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
    if not ok:
        _checks.same_device(OP, q, k=k, v=v)


def _validate_positions(q, k, causal, positions):
    if not isinstance(positions, CachePositions):
        _checks.fail(OP, "positions", type(positions).__name__, "None or a CachePositions")
    t, s = q.shape[2], k.shape[2]
    if not causal:
        _checks.fail(OP, "causal", causal, "True when positions are given")
    q_pos_T, k_pos_S = positions.q_pos_T, positions.k_pos_S
    if q_pos_T.shape != (t,):
        _checks.shape(OP, "positions.q_pos_T", q_pos_T, (t,), "(t,) int64")
    if k_pos_S.shape != (s,):
        _checks.shape(OP, "positions.k_pos_S", k_pos_S, (s,), "(s,) int64")
    n = positions.end_aligned
    if n is not None and not (isinstance(n, int) and t <= n <= s):
        _checks.fail(OP, "positions.end_aligned", n, f"None or an int in [{t}, {s}] (queries, keys)")
    device = q.device
    if q_pos_T.device != device or k_pos_S.device != device:
        _checks.same_device(OP, q, q_pos_T=q_pos_T, k_pos_S=k_pos_S)


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
def attention_reference(q, k, v, causal=True, window=None, softcap=None, scale=None, positions=None):
    """Explicit matmul + mask + softmax in float32."""
    hq, t, d = q.shape[1], q.shape[2], q.shape[3]
    s = k.shape[2]
    rep = hq // k.shape[1]
    k_f, v_f = k.float().repeat_interleave(rep, dim=1), v.float().repeat_interleave(rep, dim=1)
    logits_BHTS = torch.matmul(q.float(), k_f.transpose(-1, -2)) * (scale if scale is not None else d**-0.5)
    if softcap is not None:
        logits_BHTS = softcap * torch.tanh(logits_BHTS / softcap)
    if positions is not None:
        visible = visible_from_positions(positions.q_pos_T, positions.k_pos_S, window)
    else:
        visible = visible_mask(t, s, causal, window, q.device)
    logits_BHTS = logits_BHTS.masked_fill(~visible, -math.inf)
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


def _end_aligned(k, v, positions):
    """Backends without position support: the same call over the first `end_aligned` keys."""
    return k[:, :, :positions.end_aligned], v[:, :, :positions.end_aligned]


def attention_sdpa(q, k, v, causal=True, window=None, softcap=None, scale=None, positions=None):
    if positions is not None:
        k, v = _end_aligned(k, v, positions)
        if window is not None and window >= k.shape[2]:
            window = None
    if not q.is_cuda:
        return _sdpa_call(q, k, v, causal, window, scale)
    return _sdpa_batched(q, k, v, causal, window, scale)


def _sdpa_batched(q, k, v, causal, window, scale):
    """The CUDA path: cuDNN first, in sub-batches where one call would be too large for it."""
    batch, heads, t = q.shape[0], q.shape[1], q.shape[2]
    step = _batching.sub_batch(batch, heads * t, SDPA_MAX_QUERY_ROWS)
    if step >= batch:  # one call (the usual case): no dicts, no note
        return _sdpa_cuda(q, k, v, causal, window, scale)
    return _batching.run_in_sub_batches(
        OP, _sdpa_cuda, step, dict(q=q, k=k, v=v), dict(causal=causal, window=window, scale=scale), _SDPA_SPLIT_WHY)


_SDPA_SPLIT_WHY = f"SDPA calls of more than {SDPA_MAX_QUERY_ROWS} query rows (b * heads * t) failed in cuDNN"


def _sdpa_cuda(q, k, v, causal, window, scale):
    priority = None if torch.compiler.is_compiling() else _sdpa_priority()
    if priority is None:
        return _sdpa_call(q, k, v, causal, window, scale)
    with priority():  # ~20 us of host time a call (bench/bench_dispatch.py); kept for its public, stable API
        return _sdpa_call(q, k, v, causal, window, scale)


@functools.cache
def _lower_right():
    try:
        from torch.nn.attention.bias import causal_lower_right
    except ImportError:
        return None
    return causal_lower_right


def _sdpa_call(q, k, v, causal, window, scale):
    t, s = q.shape[2], k.shape[2]
    gqa = q.shape[1] != k.shape[1]
    if not causal or (window is None and t == 1):
        return F.scaled_dot_product_attention(q, k, v, scale=scale, enable_gqa=gqa)
    if window is None and t == s:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, enable_gqa=gqa)
    if window is None and _lower_right() is not None:
        # queries aligned to the end: flash (GQA included) or memory-efficient attention take it without a mask
        return F.scaled_dot_product_attention(q, k, v, attn_mask=_lower_right()(t, s), scale=scale, enable_gqa=gqa)
    mask = visible_mask(t, s, causal, window, q.device)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, enable_gqa=gqa)


def lower_right_without_mask(info) -> bool:
    """Whether SDPA serves a causal end-aligned call with t < s without materialising a mask: on CUDA, the
    flash kernel (bf16/fp16, head_dim <= 256, GQA native) or, without GQA, the memory-efficient one. Elsewhere
    CausalBias falls back to an explicit mask."""
    if info.get("device") != "cuda" or info.get("window") is not None:
        return False
    half = info.get("dtype") in (torch.float16, torch.bfloat16) and (info.get("head_dim") or 0) <= 256
    return half or not info.get("gqa", True)


def _sdpa_needs_mask(info) -> bool:
    t, s, window = info.get("t"), info.get("s"), info.get("window")
    if not info.get("causal", True):
        return False
    if window is None and (t == 1 or (t is not None and t == s)):
        return False
    return not lower_right_without_mask(info)


def _sdpa_accepts(**info) -> registry.Refusal:
    if info.get("softcap") is not None:
        return "SDPA has no logit soft-cap"
    if info.get("positional") and not info.get("end_aligned"):
        return "keys out of order (a ring buffer) need positions, which SDPA cannot take"
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


def _build_block_mask(flex, t: int, s: int, causal: bool, window: int | None, device: str):
    offset = s - t

    def mask_mod(b, h, q_idx, kv_idx):
        pos_q = q_idx + offset
        visible = kv_idx <= pos_q if causal else kv_idx >= 0
        if window is not None:
            visible = visible & (kv_idx > pos_q - window)
        return visible

    return flex.create_block_mask(mask_mod, B=None, H=None, Q_LEN=t, KV_LEN=s, device=device)


@functools.lru_cache(maxsize=64)
def _block_mask(t: int, s: int, causal: bool, window: int | None, device: str):
    """Cached per (t, s, causal, window, device): building a block mask scans all (t, s) blocks."""
    return _build_block_mask(_flex_module(), t, s, causal, window, device)


def _softcap_score_mod(softcap: float):
    def score_mod(score, b, h, q_idx, kv_idx):
        return softcap * torch.tanh(score / softcap)

    return score_mod


_softcap_mod = functools.lru_cache(maxsize=16)(_softcap_score_mod)


def _kernel_options(t: int, gqa_ratio: int) -> dict | None:
    """Inductor lowers short queries (t < 128) with its flex-decoding template, which packs the query heads of
    a GQA group into one block of next_pow2(t * ratio) rows; past 128 rows it has no valid config on Hopper
    (NoValidChoicesError, measured with torch 2.11: t=64 with 4 query heads per kv head). Those shapes take
    the main FlexAttention template instead; real decoding (t * ratio <= 128) keeps the decoding kernel."""
    return {"FORCE_USE_FLEX_ATTENTION": True} if t * gqa_ratio > 128 else None


def attention_flex(q, k, v, causal=True, window=None, softcap=None, scale=None, positions=None):
    if torch.compiler.is_compiling():
        return _flex_traced(q, k, v, causal, window, softcap, scale, positions)
    t, s = q.shape[2], k.shape[2]
    score_mod = _softcap_mod(float(softcap)) if softcap is not None else None
    gqa = q.shape[1] != k.shape[1]
    if positions is not None:
        if q.is_cuda:
            return _compiled_flex_positional()(q, k, v, positions.q_pos_T, positions.k_pos_S, window, softcap,
                                               scale, gqa, _kernel_options(t, q.shape[1] // k.shape[1]))
        return _eager_flex(q, k, v, score_mod=score_mod, scale=scale, enable_gqa=gqa,
                           block_mask=position_block_mask(_flex_module(), positions.q_pos_T, positions.k_pos_S,
                                                          window))
    block_mask = _block_mask(t, s, causal, window, str(q.device)) if (causal or window is not None) else None
    kwargs = dict(score_mod=score_mod, block_mask=block_mask, scale=scale, enable_gqa=gqa)
    if q.is_cuda:
        return _compiled_flex()(q, k, v, kernel_options=_kernel_options(t, q.shape[1] // k.shape[1]), **kwargs)
    return _eager_flex(q, k, v, **kwargs)


def _flex_traced(q, k, v, causal, window, softcap, scale, positions):
    """attention_flex inside a compiled model: the mask's construction and FlexAttention are traced into the
    caller's graph. The eager path's caches and inner torch.compile would add nothing there: dynamo skips a
    functools cache and traces its body, warning each time."""
    from torch.nn.attention import flex_attention as flex  # a plain import: dynamo would skip a functools cache

    gqa = q.shape[1] != k.shape[1]
    options = _kernel_options(q.shape[2], q.shape[1] // k.shape[1]) if q.is_cuda else None
    if positions is not None:
        return flex_positional(q, k, v, positions.q_pos_T, positions.k_pos_S, window, softcap, scale, gqa, options)
    t, s = q.shape[2], k.shape[2]
    block_mask = _build_block_mask(flex, t, s, causal, window, str(q.device)) if causal or window is not None \
        else None
    score_mod = _softcap_score_mod(float(softcap)) if softcap is not None else None
    return flex.flex_attention(q, k, v, score_mod=score_mod, block_mask=block_mask, scale=scale, enable_gqa=gqa,
                               kernel_options=options)


def _eager_flex(q, k, v, **kwargs):
    with warnings.catch_warnings():  # eager on CPU is the point (a correct fallback), not a mistake
        warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
        return _flex_module().flex_attention(q, k, v, **kwargs)


def flex_positional(q, k, v, q_pos_T, k_pos_S, window, softcap, scale, gqa, kernel_options=None):
    """FlexAttention over a cache with positions; built inside one function so that torch.compile traces the
    block mask and its mask_mod closure together: positions are tensor inputs, every shape is fixed by the
    cache, so a new prefix length or ring offset is no recompile."""
    from torch.nn.attention import flex_attention as flex  # a plain import: dynamo would skip an lru_cache

    block_mask = position_block_mask(flex, q_pos_T, k_pos_S, window)
    score_mod = None
    if softcap is not None:
        def score_mod(score, b, h, q_idx, kv_idx):
            return softcap * torch.tanh(score / softcap)
    return flex.flex_attention(q, k, v, score_mod=score_mod, block_mask=block_mask, scale=scale, enable_gqa=gqa,
                               kernel_options=kernel_options)


@functools.cache
def _compiled_flex_positional():
    return torch.compile(flex_positional, dynamic=False)


def _flex_probe():
    try:
        _flex_module()
    except ImportError as e:
        return False, f"torch {torch.__version__} has no FlexAttention: {e}"
    return True, f"torch {torch.__version__} (compiled on CUDA, eager on CPU)"


def _flex_accepts(**info) -> registry.Refusal:
    if info.get("positional") and info.get("requires_grad", False):
        return "attention over a cache with positions is an inference path (no backward)"
    if info.get("device") == "cpu" and info.get("requires_grad", False):
        return "FlexAttention has no backward on CPU"
    d = info.get("head_dim")
    if d is not None and (d < 16 or d & (d - 1)):
        return f"head_dim {d} is not a power of two >= 16"
    return None


# ---------------------------------------------------------------- flash_attn --------------------------------
def attention_flash(q, k, v, causal=True, window=None, softcap=None, scale=None, positions=None):
    if positions is not None:
        k, v = _end_aligned(k, v, positions)
        if window is not None and window >= k.shape[2]:
            window = None
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
    if info.get("positional") and not info.get("end_aligned"):
        return "keys out of order (a ring buffer) need positions, which flash_attn cannot take"
    d = info.get("head_dim")
    if d is not None and (d > 256 or d % 8):
        return f"head_dim {d} must be a multiple of 8 and at most 256"
    return None


# ---------------------------------------------------------------- registration + public entry ---------------
def _default_call():
    cuda = _optional.has_cuda()
    return dict(device="cuda" if cuda else "cpu", dtype=torch.bfloat16 if cuda else torch.float32,
                head_dim=128, t=4096, s=4096, causal=True, window=None, softcap=None, gqa=True, requires_grad=True)


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
    positions: CachePositions | None = None,
) -> torch.Tensor:
    """(b, hq, t, d) in q.dtype. With `positions`, key j is visible to query i by their absolute positions
    (attn_positions.py) rather than by aligning the queries to the end of the keys."""
    _validate(q, k, v, causal, window, softcap, scale)
    s = k.shape[2]
    if positions is not None:
        _validate_positions(q, k, causal, positions)
        s = positions.end_aligned if positions.end_aligned is not None else s
    elif window is not None and window >= s:
        window = None  # every key already lies inside the window: the global path is the same function
    q_shape = q.shape
    device, dtype, head_dim, t, gqa = _checks.device_type(q), q.dtype, q_shape[3], q_shape[2], q_shape[1] != k.shape[1]
    requires_grad = torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)
    if positions is None:  # the call info as items sorted by name
        items = (("causal", causal), ("device", device), ("dtype", dtype), ("gqa", gqa), ("head_dim", head_dim),
                 ("requires_grad", requires_grad), ("s", s), ("softcap", softcap), ("t", t), ("window", window))
    else:
        items = (("causal", causal), ("device", device), ("dtype", dtype),
                 ("end_aligned", positions.end_aligned is not None), ("gqa", gqa), ("head_dim", head_dim),
                 ("positional", True), ("requires_grad", requires_grad), ("s", s), ("softcap", softcap), ("t", t),
                 ("window", window))
    return registry.backend_fn(OP, items)(q, k, v, causal, window, softcap, scale, positions)
