"""Ask the kernel registry, before any tensor exists, whether every op the spec needs has a backend.

A backend forced by the user (ARCHSEARCH_BACKEND_<OP> or force_backend) that cannot serve a layer then fails
the build with the layer, the op and the reason, instead of failing (or silently falling back) mid-training.
"""

from __future__ import annotations

import torch

from archsearch.errors import UserError
from archsearch.kernels import BackendError, check
from archsearch.spec import AttentionBlock, Mamba2Block, ModelSpec


class BackendUnavailable(UserError):
    """No backend (or not the forced one) can run one of the spec's layers on this device and dtype."""


def layer_calls(block, d_model: int, max_context: int, device: str, dtype: torch.dtype) -> list[tuple[str, dict]]:
    """(op, call info) for every kernel call a layer makes in training and decoding."""
    base = dict(device=device, dtype=dtype)
    if isinstance(block, Mamba2Block):
        m = block.dims(d_model)
        calls = [("ssd_scan", dict(base, headdim=m.head_dim, dstate=m.d_state)),
                 ("causal_conv1d", dict(base, width=m.conv_kernel)),
                 ("conv_state_update", dict(base)),
                 ("ssm_state_update", dict(base, dt_limit=tuple(block.dt_limit or (0.0, float("inf")))))]
        if block.gated_norm:
            itemsize = torch.empty((), dtype=dtype).element_size()
            calls.append(("gated_rmsnorm", dict(base, group_size=m.d_inner // m.n_groups, itemsize=itemsize)))
        return calls
    if isinstance(block, AttentionBlock):
        a = block.dims(d_model)
        return [("attention", dict(base, head_dim=a.head_dim, t=max_context, s=max_context, causal=True,
                                   window=block.window, softcap=block.logit_softcap, requires_grad=True))]
    return []


def check_backends(spec: ModelSpec, device: torch.device, dtype: torch.dtype) -> None:
    """Raises BackendUnavailable naming the first layer of each symbol that no (forced) backend can serve."""
    problems = []
    for symbol, block in spec.blocks.items():
        first = next((layer.index for layer in spec.layers if layer.symbol == symbol), None)
        if first is None:
            continue
        for op, info in layer_calls(block, spec.d_model, spec.max_context, device.type, dtype):
            try:
                check(op, **info)
            except BackendError as err:
                problems.append(f"blocks.{symbol} (layer {first}, {block.kind}): {err}")
    if problems:
        raise BackendUnavailable(f"spec {spec.name!r} cannot run on {device.type} in {dtype}:\n  - "
                                 + "\n  - ".join(problems))
