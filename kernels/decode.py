"""One-token decode updates for Mamba-2 layers: the SSM state step and the conv-state step.

Both update their state tensor IN PLACE and return the token's output, so a decoder keeps one state buffer
per layer. Stepping token by token equals the full scan / conv (tests/kernels/test_decode.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import _checks, _optional, registry
from .ssd import DEFAULT_DT_LIMIT, effective_dt

SSM_OP = "ssm_state_update"
CONV_OP = "conv_state_update"


# ---------------------------------------------------------------- SSM state update --------------------------
def _validate_ssm(state, x, dt, A, B, C, D, z, dt_bias, dt_limit):
    # Plain comparisons first; a helper (which formats the error) runs only when one fails, in the same order.
    ok = _checks.floating_on(state.device, state, x, dt, A, B, C, D, z, dt_bias)
    if not ok:
        _checks.floating(SSM_OP, state=state, x=x, dt=dt, A=A, B=B, C=C, D=D, z=z, dt_bias=dt_bias)
    state_shape = state.shape
    if len(state_shape) != 4:
        _checks.fail(SSM_OP, "state.shape", tuple(state.shape), "4 dims (b, h, p, n)")
    b, h, p, n = state_shape
    if x.shape != (b, h, p):
        _checks.shape(SSM_OP, "x", x, (b, h, p), "(b, h, p)")
    if dt.shape != (b, h):
        _checks.shape(SSM_OP, "dt", dt, (b, h), "(b, h)")
    if A.shape != (h,):
        _checks.shape(SSM_OP, "A", A, (h,), "(h,)")
    B_shape = B.shape
    if len(B_shape) != 3 or B_shape[0] != b or B_shape[2] != n or h % B_shape[1]:
        _checks.fail(SSM_OP, "B.shape", tuple(B.shape), f"({b}, g, {n}) with g dividing {h}, layout (b, g, n)")
    if C.shape != B_shape:
        _checks.shape(SSM_OP, "C", C, tuple(B.shape), "(b, g, n)")
    if D is not None and D.shape != (h,) and D.shape != (h, p):
        _checks.fail(SSM_OP, "D.shape", tuple(D.shape), f"({h},) or ({h}, {p})")
    if z is not None and z.shape != (b, h, p):
        _checks.shape(SSM_OP, "z", z, (b, h, p), "(b, h, p)")
    if dt_bias is not None and dt_bias.shape != (h,):
        _checks.shape(SSM_OP, "dt_bias", dt_bias, (h,), "(h,)")
    if len(dt_limit) != 2 or not dt_limit[0] <= dt_limit[1]:
        _checks.fail(SSM_OP, "dt_limit", dt_limit, "a pair (low, high) with low <= high")
    if not ok:
        _checks.same_device(SSM_OP, state, x=x, dt=dt, A=A, B=B, C=C, D=D, z=z, dt_bias=dt_bias)


def ssm_state_update_reference(state, x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False,
                               dt_limit=DEFAULT_DT_LIMIT):
    """One step of the recurrence in float32 (ours; also the reference). Writes `state`, returns y (b, h, p)."""
    h = state.shape[1]
    dt_BH = effective_dt(dt, dt_bias, dt_softplus, dt_limit)
    B_BHN = B.float().repeat_interleave(h // B.shape[1], dim=1)
    C_BHN = C.float().repeat_interleave(h // C.shape[1], dim=1)
    decay_BH = torch.exp(dt_BH * A.float())
    new_BHPN = state.float() * decay_BH[..., None, None] + (dt_BH[..., None] * x.float())[..., None] * B_BHN[
        :, :, None, :
    ]
    state.copy_(new_BHPN)
    y_BHP = torch.einsum("bhpn,bhn->bhp", new_BHPN, C_BHN)
    if D is not None:
        y_BHP = y_BHP + x.float() * (D.float() if D.dim() == 2 else D.float()[:, None])
    if z is not None:
        y_BHP = y_BHP * F.silu(z.float())
    return y_BHP.to(x.dtype)


def ssm_state_update_mamba_ssm(state, x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False,
                               dt_limit=DEFAULT_DT_LIMIT):
    module, reason = _optional.import_mamba("mamba_ssm.ops.triton.selective_state_update")
    if module is None:
        raise registry.BackendError(f"op {SSM_OP!r}: backend 'mamba_ssm' unavailable: {reason}")
    b, h, p, n = state.shape
    # Its kernel takes per-(head, channel) parameters; stride-0 expansions ("tied" head dims) take its fast path,
    # which also needs a dt_bias tensor.
    if dt_bias is None:
        dt_bias = torch.zeros(h, dtype=dt.dtype, device=dt.device)
    # (unsqueeze and view make the same views as [..., None] indexing, with less host time: 1 us per step)
    return module.selective_state_update(
        state, x, dt.unsqueeze(-1).expand(b, h, p), A.float().view(h, 1, 1).expand(h, p, n), B, C,
        D=None if D is None else (D if D.dim() == 2 else D.unsqueeze(-1).expand(h, p)), z=z,
        dt_bias=dt_bias.unsqueeze(-1).expand(h, p), dt_softplus=dt_softplus,
    )


def _mamba_ssm_accepts(**info) -> registry.Refusal:
    refusal = _optional.refuse_unless_cuda(info) or _optional.refuse_dtype(info, _optional.HALF_OR_FLOAT)
    if refusal:
        return refusal
    if info.get("dt_limit", DEFAULT_DT_LIMIT) != DEFAULT_DT_LIMIT:
        return f"dt_limit {info['dt_limit']} (its kernel has no clamp)"
    return None


def _default_call_ssm():
    cuda = _optional.has_cuda()
    return dict(device="cuda" if cuda else "cpu", dtype=torch.bfloat16 if cuda else torch.float32,
                dt_limit=DEFAULT_DT_LIMIT)


registry.register_op(SSM_OP, "one-token SSM state update (decode)", _default_call_ssm)
registry.register_backend(SSM_OP, "mamba_ssm", 100, ssm_state_update_mamba_ssm,
                          probe=_optional.probe_module("mamba_ssm.ops.triton.selective_state_update", mamba=True),
                          accepts=_mamba_ssm_accepts)
registry.register_backend(SSM_OP, "torch", 50, ssm_state_update_reference)


def ssm_state_update(
    state: torch.Tensor,  # (b, h, p, n), updated in place
    x: torch.Tensor,  # (b, h, p)
    dt: torch.Tensor,  # (b, h)
    A: torch.Tensor,  # (h,)
    B: torch.Tensor,  # (b, g, n)
    C: torch.Tensor,  # (b, g, n)
    D: torch.Tensor | None = None,  # (h,) or (h, p)
    z: torch.Tensor | None = None,  # (b, h, p)
    dt_bias: torch.Tensor | None = None,  # (h,)
    dt_softplus: bool = False,
    dt_limit: tuple[float, float] = DEFAULT_DT_LIMIT,
) -> torch.Tensor:
    """y (b, h, p) in x.dtype; `state` holds the new state afterwards."""
    _validate_ssm(state, x, dt, A, B, C, D, z, dt_bias, dt_limit)
    dt_limit = tuple(dt_limit)
    items = (("device", _checks.device_type(x)), ("dt_limit", dt_limit), ("dtype", x.dtype))  # sorted by name
    return registry.backend_fn(SSM_OP, items)(state, x, dt, A, B, C, D, z, dt_bias, dt_softplus, dt_limit)


# ---------------------------------------------------------------- conv state update -------------------------
def _validate_conv(x, conv_state, weight, bias, activation):
    # Plain comparisons first; a helper (which formats the error) runs only when one fails, in the same order.
    ok = _checks.floating_on(x.device, x, conv_state, weight, bias)
    if not ok:
        _checks.floating(CONV_OP, x=x, conv_state=conv_state, weight=weight, bias=bias)
    x_shape = x.shape
    if len(x_shape) != 2:
        _checks.fail(CONV_OP, "x.shape", tuple(x.shape), "2 dims (b, d)")
    b, d = x_shape
    w_shape = weight.shape
    if len(w_shape) != 2 or w_shape[0] != d:
        _checks.fail(CONV_OP, "weight.shape", tuple(weight.shape), f"({d}, k), layout (d, k)")
    k = w_shape[1]
    s_shape = conv_state.shape
    if len(s_shape) != 3 or s_shape[0] != b or s_shape[1] != d or s_shape[2] < k - 1:
        _checks.fail(CONV_OP, "conv_state.shape", tuple(conv_state.shape), f"({b}, {d}, L) with L >= k-1 = {k - 1}")
    if bias is not None and bias.shape != (d,):
        _checks.shape(CONV_OP, "bias", bias, (d,), "(d,)")
    if activation not in (None, "silu"):
        _checks.fail(CONV_OP, "activation", repr(activation), "None or 'silu'")
    if not ok:
        _checks.same_device(CONV_OP, x, conv_state=conv_state, weight=weight, bias=bias)


def conv_state_update_reference(x, conv_state, weight, bias=None, activation=None):
    """y = act(bias + sum_j w[:, j] * window[:, j]) over window = (last k-1 state columns, x); then the state
    shifts left by one and takes x as its last column (any state length >= k-1, as causal_conv1d)."""
    k = weight.shape[1]
    window_BDK = torch.cat([conv_state[..., conv_state.shape[-1] - (k - 1):].float(), x.float()[..., None]], -1)
    y_BD = (window_BDK * weight.float()).sum(-1)
    if bias is not None:
        y_BD = y_BD + bias.float()
    if activation == "silu":
        y_BD = F.silu(y_BD)
    if conv_state.shape[-1] > 0:
        conv_state.copy_(torch.cat([conv_state[..., 1:], x[..., None].to(conv_state.dtype)], -1))
    return y_BD.to(x.dtype)


def conv_state_update_package(x, conv_state, weight, bias=None, activation=None):
    module, reason = _optional.import_module("causal_conv1d")
    if module is None:
        raise registry.BackendError(f"op {CONV_OP!r}: backend 'causal_conv1d' unavailable: {reason}")
    return module.causal_conv1d_update(x, conv_state, weight, bias, activation)


def _conv_package_accepts(**info) -> registry.Refusal:
    return _optional.refuse_unless_cuda(info) or _optional.refuse_dtype(info, _optional.HALF_OR_FLOAT)


def _default_call_conv():
    cuda = _optional.has_cuda()
    return dict(device="cuda" if cuda else "cpu", dtype=torch.bfloat16 if cuda else torch.float32)


registry.register_op(CONV_OP, "one-token conv state update (decode)", _default_call_conv)
registry.register_backend(CONV_OP, "causal_conv1d", 100, conv_state_update_package,
                          probe=_optional.probe_module("causal_conv1d"), accepts=_conv_package_accepts)
registry.register_backend(CONV_OP, "torch", 50, conv_state_update_reference)


def conv_state_update(
    x: torch.Tensor,  # (b, d)
    conv_state: torch.Tensor,  # (b, d, L), L >= k-1, updated in place
    weight: torch.Tensor,  # (d, k)
    bias: torch.Tensor | None = None,  # (d,)
    activation: str | None = None,
) -> torch.Tensor:
    """y (b, d) in x.dtype; `conv_state` holds the shifted state afterwards."""
    _validate_conv(x, conv_state, weight, bias, activation)
    items = (("device", _checks.device_type(x)), ("dtype", x.dtype))  # sorted by name
    return registry.backend_fn(CONV_OP, items)(x, conv_state, weight, bias, activation)

