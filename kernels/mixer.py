"""The middle of a Mamba-2 mixer, from the input projection's output to what the output projection reads:

    z, xBC, dt = split(zxbcdt);  x, B, C = split(silu(causal_conv1d(xBC)))
    y = ssd_scan(x, dt, A, B, C, D, dt_bias, softplus, dt_limit)   (times silu(z) in the scan if there is no norm)
    y = rmsnorm(y * silu(z)) * norm_weight per group                (with a norm; norm_before_gate=False)

Backends: fused (two opaque ops that read and write one buffer each way, kernels/mamba_mixer_op.py: CUDA, the
default where it runs since its GPU parity tests passed; a prefill with decoder states runs the composite path; the
norm's kernels are those the gated_rmsnorm op chooses, ours or mamba-ssm's) and composite (the three ops above
through the registry, each with its own backend: any device, and the path that takes and returns a decoder's conv
and SSM states).
"""

from __future__ import annotations

import math

import torch

from . import _batching, _checks, _optional, conv1d, gated_norm, mamba_mixer_op, registry, ssd

OP = "mamba_mixer"
# the component ops and the backends of each that the fused path can run: forcing a component elsewhere makes the
# fused backend refuse, so the override still takes effect. The norm's kernels follow the gated_rmsnorm op's choice.
FUSED_COMPONENTS = {conv1d.OP: ("triton",), ssd.OP: ("mamba_ssm",), gated_norm.OP: mamba_mixer_op.NORMS}


def _validate(zxbcdt, conv_weight, n_heads, n_groups, d_state, norm_weight):
    if zxbcdt.dim() != 3:
        _checks.fail(OP, "zxbcdt.shape", tuple(zxbcdt.shape), "3 dims (b, l, 2 d_inner + 2 g n + h)")
    for name, value in (("n_heads", n_heads), ("n_groups", n_groups), ("d_state", d_state)):
        if not isinstance(value, int) or value < 1:
            _checks.fail(OP, name, value, "a positive int")
    width = zxbcdt.shape[-1] - n_heads - 2 * n_groups * d_state
    if width <= 0 or width % 2 or (width // 2) % n_heads or n_heads % n_groups:
        _checks.fail(OP, "zxbcdt.shape[-1]", zxbcdt.shape[-1],
                     f"2 d_inner + 2 g n + h with d_inner a multiple of h={n_heads} and h a multiple of g={n_groups}")
    d_inner = width // 2
    if conv_weight.dim() != 2 or conv_weight.shape[0] != d_inner + 2 * n_groups * d_state:
        _checks.fail(OP, "conv_weight.shape", tuple(conv_weight.shape), f"({d_inner + 2 * n_groups * d_state}, k)")
    if norm_weight is not None and norm_weight.shape != (d_inner,):
        _checks.shape(OP, "norm_weight", norm_weight, (d_inner,), "(d_inner,)")
    return d_inner


def mamba_mixer_composite(zxbcdt, conv_weight, conv_bias, dt_bias, A, D, norm_weight, n_heads, n_groups, d_state,
                          chunk_size, norm_eps, dt_limit, conv_state=None, ssm_state=None):
    """y (b, l, d_inner); with states (a decoder's prefill): (y, final conv state, final SSM state)."""
    b, l, _ = zxbcdt.shape
    d_inner = mamba_mixer_op.d_inner_of(zxbcdt, n_heads, n_groups, d_state)
    z, xBC, dt = mamba_mixer_op.split_zxbcdt(zxbcdt, d_inner, n_heads)
    with_states = conv_state is not None
    conv = conv1d.causal_conv1d(xBC.transpose(1, 2), conv_weight, conv_bias, "silu", initial_states=conv_state,
                                return_final_states=with_states)
    xBC_BCL, conv_final = conv if with_states else (conv, None)
    x, B, C = mamba_mixer_op.split_xBC(xBC_BCL.transpose(1, 2), n_heads, n_groups, d_state)
    scan = ssd.ssd_chunk_scan(
        x, dt, A, B, C, chunk_size, D=D, z=None if norm_weight is not None else z, dt_bias=dt_bias, dt_softplus=True,
        dt_limit=dt_limit, initial_states=ssm_state, return_final_states=with_states)
    y, ssm_final = scan if with_states else (scan, None)
    y = y.reshape(b, l, d_inner)
    if norm_weight is not None:
        y = gated_norm.gated_rms_norm(y, norm_weight, z.flatten(2), norm_eps, group_size=d_inner // n_groups,
                                      norm_before_gate=False)
    return (y, conv_final, ssm_final) if with_states else y


def mamba_mixer_fused(zxbcdt, conv_weight, conv_bias, dt_bias, A, D, norm_weight, n_heads, n_groups, d_state,
                      chunk_size, norm_eps, dt_limit, conv_state=None, ssm_state=None):
    """The opaque ops, with the norm kernels the gated_rmsnorm op chooses; the composite path where they cannot go."""
    if conv_state is not None:  # a decoder's prefill: the fused ops carry no states (and it needs no backward)
        registry.note(OP, "a prefill with decoder states ran the composite path")
        return mamba_mixer_composite(zxbcdt, conv_weight, conv_bias, dt_bias, A, D, norm_weight, n_heads, n_groups,
                                     d_state, chunk_size, norm_eps, dt_limit, conv_state, ssm_state)
    b, l, _ = zxbcdt.shape
    d_inner = mamba_mixer_op.d_inner_of(zxbcdt, n_heads, n_groups, d_state)
    per_sequence = ssd.scan_elements(l, n_heads, d_inner // n_heads, n_groups, d_state, chunk_size)
    if _batching.sub_batch(b, per_sequence, _batching.INT32_ELEMENTS, zxbcdt) < b:
        # mamba-ssm's scan and norm index with 32 bits: the composite path splits the batch for them
        registry.note(OP, "batch too large for the fused layer's 32-bit offsets: ran the composite path")
        return mamba_mixer_composite(zxbcdt, conv_weight, conv_bias, dt_bias, A, D, norm_weight, n_heads, n_groups,
                                     d_state, chunk_size, norm_eps, dt_limit)
    norm = "mamba_ssm"
    if norm_weight is not None:
        norm = registry.chosen(gated_norm.OP, gated_norm.call_items(zxbcdt, d_inner // n_groups))
        if norm not in mamba_mixer_op.NORMS:  # only where the fused backend's accepts let it be chosen
            raise registry.BackendError(f"op {OP!r}: the gated norm's backend {norm!r} is not one the fused layer "
                                        f"runs ({', '.join(mamba_mixer_op.NORMS)})")
    # the ops' gradient buffer is laid out as zxbcdt's fake (contiguous): the input projection's output always is
    return mamba_mixer_op.mamba_mixer_fused(zxbcdt.contiguous(), conv_weight, conv_bias, dt_bias, A, D, norm_weight,
                                            n_heads, n_groups, d_state, chunk_size, norm_eps, dt_limit, norm)


def _fused_accepts(**info) -> registry.Refusal:
    refusal = _optional.refuse_unless_cuda(info) or _optional.refuse_dtype(info, _optional.HALF_OR_FLOAT)
    if refusal:
        return refusal
    for op, runs in FUSED_COMPONENTS.items():
        if op == gated_norm.OP and not info.get("norm", True):
            continue  # a mixer without the norm: its override does not apply
        forced = registry.forced_backend(op)
        if forced is not None and forced[0] not in runs:
            return f"op {op} is forced to {forced[0]!r} by {forced[1]}; the fused layer runs {' or '.join(runs)}"
    refusal = conv1d._triton_accepts(width=info.get("width", 4)) or ssd._mamba_accepts(**info)
    if refusal or not info.get("norm", True):
        return refusal
    norm_info = {k: info[k] for k in ("device", "dtype", "group_size", "itemsize") if k in info}
    try:
        norm = registry.check(gated_norm.OP, **norm_info).name
    except registry.BackendError as e:
        return str(e)
    return None if norm in mamba_mixer_op.NORMS else f"the gated norm would run on {norm!r}, which it does not fuse"


def _fused_probe() -> tuple[bool, str]:
    for probe in (conv1d._triton_probe, _optional.probe_module(mamba_mixer_op.SCAN_MODULE, mamba=True)):
        ok, why = probe()
        if not ok:
            return False, why
    return True, "our Triton conv, mamba-ssm's Triton scan, the gated norm's chosen kernels"


def _default_call():
    cuda = _optional.has_cuda()
    return dict(device="cuda" if cuda else "cpu", dtype=torch.bfloat16 if cuda else torch.float32, width=4,
                headdim=64, dstate=128, norm=True, group_size=4096, itemsize=2 if cuda else 4)


registry.register_op(OP, "Mamba-2 mixer between its projections (conv, scan, gated norm)", _default_call,
                     components=tuple(FUSED_COMPONENTS))
# The default wherever it is available since its GPU parity tests passed (H100, 2026-12-08: the model's fused
# training step, prefill + decode and layer compile, the mixer against the composite path in both norms and gate-in-
# scan, fp32 and bf16, every gradient; bench/RESULTS.md). ARCHSEARCH_BACKEND_MAMBA_MIXER=composite runs the three ops.
FUSED_BY_DEFAULT = True
registry.register_backend(OP, "fused", 100, mamba_mixer_fused, probe=_fused_probe, accepts=_fused_accepts,
                          auto=FUSED_BY_DEFAULT)
registry.register_backend(OP, "composite", 50, mamba_mixer_composite,
                          probe=lambda: (True, "conv, scan and norm as three ops, each on its own backend"))


def mamba_mixer(
    zxbcdt: torch.Tensor,  # (b, l, 2 d_inner + 2 g n + h): z, xBC, dt
    conv_weight: torch.Tensor,  # (conv_dim, k), conv_dim = d_inner + 2 g n
    conv_bias: torch.Tensor | None,  # (conv_dim,)
    dt_bias: torch.Tensor,  # (h,)
    A: torch.Tensor,  # (h,), float32, negative
    D: torch.Tensor,  # (h,)
    norm_weight: torch.Tensor | None,  # (d_inner,): gated RMSNorm; None: the scan gates by silu(z)
    *,
    n_heads: int,
    n_groups: int,
    d_state: int,
    chunk_size: int,
    norm_eps: float = 1e-5,
    dt_limit: tuple[float, float] = (0.0, math.inf),
    conv_state: torch.Tensor | None = None,  # (b, conv_dim, k-1): a decoder's prefill
    ssm_state: torch.Tensor | None = None,  # (b, h, p, n)
):
    """y (b, l, d_inner) in zxbcdt's dtype; with states: (y, final conv state, final SSM state (float32))."""
    d_inner = _validate(zxbcdt, conv_weight, n_heads, n_groups, d_state, norm_weight)
    if (conv_state is None) != (ssm_state is None):
        _checks.fail(OP, "conv_state/ssm_state", "one given", "both or neither")
    items = (("device", _checks.device_type(zxbcdt)), ("dstate", d_state), ("dtype", zxbcdt.dtype),
             ("group_size", d_inner // n_groups), ("headdim", d_inner // n_heads),
             ("itemsize", zxbcdt.element_size()), ("norm", norm_weight is not None),
             ("width", conv_weight.shape[1]))  # sorted by name
    return registry.backend_fn(OP, items)(zxbcdt, conv_weight, conv_bias, dt_bias, A, D, norm_weight, n_heads,
                                          n_groups, d_state, chunk_size, norm_eps, dt_limit, conv_state, ssm_state)
