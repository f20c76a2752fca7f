"""Causal depthwise conv1d, as Mamba-2 applies it to xBC: x (b, d, l), weight (d, k), optional SiLU.

    y[:, c, t] = act(bias[c] + sum_j weight[c, j] * xfull[:, c, t - (k-1) + j])
where xfull is x preceded by initial_states (b, d, k-1) (zeros when absent). final_states are the last k-1
columns of xfull, i.e. the conv state a decoder continues from.
Backends: causal_conv1d (package), triton (ours, kernels/triton_conv1d.py), torch (F.conv1d), reference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import _checks, _optional, registry

OP = "causal_conv1d"
ACTIVATIONS = (None, "silu")


def _validate(x, weight, bias, activation, initial_states):
    # Plain comparisons first; a helper (which formats the error) runs only when one fails, in the same order.
    ok = _checks.floating_on(x.device, x, weight, bias, initial_states)
    if not ok:
        _checks.floating(OP, x=x, weight=weight, bias=bias, initial_states=initial_states)
    x_shape = x.shape
    if len(x_shape) != 3:
        _checks.fail(OP, "x.shape", tuple(x.shape), "3 dims (b, d, l)")
    b, d, _ = x_shape
    w_shape = weight.shape
    if len(w_shape) != 2 or w_shape[0] != d or w_shape[1] < 1:
        _checks.fail(OP, "weight.shape", tuple(weight.shape), f"({d}, k) with k >= 1, layout (d, k)")
    k = w_shape[1]
    if bias is not None and bias.shape != (d,):
        _checks.shape(OP, "bias", bias, (d,), "(d,)")
    if activation not in ACTIVATIONS:
        _checks.fail(OP, "activation", repr(activation), "None or 'silu'")
    if initial_states is not None and initial_states.shape != (b, d, k - 1):
        _checks.shape(OP, "initial_states", initial_states, (b, d, k - 1), "(b, d, k-1)")
    if not ok:
        _checks.same_device(OP, x, weight=weight, bias=bias, initial_states=initial_states)


def _padded(x, k, initial_states):
    """xfull (b, d, k-1+l): the inputs the output at each t sees."""
    head = initial_states.to(x.dtype) if initial_states is not None else x.new_zeros(*x.shape[:2], k - 1)
    return torch.cat([head, x], dim=-1)


def final_states_of(x, k, initial_states):
    """The last k-1 columns of xfull, differentiable with respect to x and initial_states."""
    return _padded(x, k, initial_states)[..., x.shape[-1]:]


def _act(y, activation):
    return F.silu(y) if activation == "silu" else y


def causal_conv1d_reference(x, weight, bias=None, activation=None, initial_states=None, return_final_states=False):
    """Float32, one tap at a time: the oracle."""
    k, l = weight.shape[1], x.shape[-1]
    xfull = _padded(x.float(), k, None if initial_states is None else initial_states.float())
    y = sum(weight[:, j, None].float() * xfull[..., j : j + l] for j in range(k))
    if bias is not None:
        y = y + bias.float()[:, None]
    y = _act(y, activation).to(x.dtype)
    return (y, final_states_of(x, k, initial_states)) if return_final_states else y


def causal_conv1d_torch(x, weight, bias=None, activation=None, initial_states=None, return_final_states=False):
    """F.conv1d over the left-padded input with groups=d (cuDNN on CUDA)."""
    d, k = weight.shape
    xfull = _padded(x, k, initial_states)
    y = F.conv1d(xfull, weight.to(x.dtype)[:, None, :], None if bias is None else bias.to(x.dtype), groups=d)
    y = _act(y, activation)
    return (y, final_states_of(x, k, initial_states)) if return_final_states else y


def causal_conv1d_triton(x, weight, bias=None, activation=None, initial_states=None, return_final_states=False):
    from . import triton_conv1d  # imports triton: only on first use

    y = triton_conv1d.causal_conv1d_fn(x, weight, bias, initial_states, activation == "silu")
    return (y, final_states_of(x, weight.shape[1], initial_states)) if return_final_states else y


def causal_conv1d_package(x, weight, bias=None, activation=None, initial_states=None, return_final_states=False):
    module, reason = _optional.import_module("causal_conv1d")
    if module is None:
        raise registry.BackendError(f"op {OP!r}: backend 'causal_conv1d' unavailable: {reason}")
    if initial_states is not None:
        # The package takes initial states only with channel-last x (stride(1) == 1).
        x = x.transpose(1, 2).contiguous().transpose(1, 2)
        initial_states = initial_states.to(x.dtype).transpose(1, 2).contiguous().transpose(1, 2)
    y = module.causal_conv1d_fn(x, weight, bias, initial_states=initial_states, activation=activation)
    return (y, final_states_of(x, weight.shape[1], initial_states)) if return_final_states else y


def _triton_accepts(**info) -> registry.Refusal:
    return _optional.refuse_unless_cuda(info) or _optional.refuse_dtype(info, _optional.HALF_OR_FLOAT) or (
        f"kernel width {info['width']} not in 1..4" if not 1 <= info.get("width", 4) <= 4 else None
    )


def _package_accepts(**info) -> registry.Refusal:
    refusal = _optional.refuse_unless_cuda(info) or _optional.refuse_dtype(info, _optional.HALF_OR_FLOAT)
    if refusal:
        return refusal
    if info.get("width", 2) not in (2, 3, 4):
        return f"kernel width {info['width']} not in (2, 3, 4)"
    return None


def _triton_probe():
    return _optional.triton_status()


def _default_call():
    cuda = _optional.has_cuda()
    return dict(device="cuda" if cuda else "cpu", dtype=torch.bfloat16 if cuda else torch.float32, width=4)


registry.register_op(OP, "causal depthwise conv1d", _default_call)
registry.register_backend(OP, "causal_conv1d", 100, causal_conv1d_package,
                          probe=_optional.probe_module("causal_conv1d"), accepts=_package_accepts)
registry.register_backend(OP, "triton", 80, causal_conv1d_triton, probe=_triton_probe, accepts=_triton_accepts)
registry.register_backend(OP, "torch", 50, causal_conv1d_torch)
registry.register_backend(OP, "reference", 0, causal_conv1d_reference, auto=False)


def causal_conv1d(
    x: torch.Tensor,  # (b, d, l)
    weight: torch.Tensor,  # (d, k)
    bias: torch.Tensor | None = None,  # (d,)
    activation: str | None = None,
    initial_states: torch.Tensor | None = None,  # (b, d, k-1)
    return_final_states: bool = False,
):
    """y (b, d, l) in x.dtype, or (y, final_states (b, d, k-1)) if return_final_states."""
    _validate(x, weight, bias, activation, initial_states)
    items = (("device", _checks.device_type(x)), ("dtype", x.dtype), ("width", weight.shape[1]))  # sorted by name
    return registry.backend_fn(OP, items)(x, weight, bias, activation, initial_states, return_final_states)
