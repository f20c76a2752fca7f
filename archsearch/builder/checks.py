"""Ask the kernel registry, before any tensor exists, whether every op the spec needs has a backend.

A backend forced by the user (ARCHSEARCH_BACKEND_<OP> or force_backend) that cannot serve a layer then fails
the build with the layer, the op and the reason, instead of failing (or silently falling back) mid-training.
"""

from __future__ import annotations

import torch

from archsearch.errors import UserError
from archsearch.kernels import BackendError, check
from archsearch.spec import ModelSpec

from .mixers import mixer_class


class BackendUnavailable(UserError):
    """No backend (or not the forced one) can run one of the spec's layers on this device and dtype."""


def check_backends(spec: ModelSpec, device: torch.device, dtype: torch.dtype) -> None:
    """Raises BackendUnavailable naming the first layer of each symbol that no (forced) backend can serve."""
    problems = []
    for symbol, block in spec.blocks.items():
        first = next((layer.index for layer in spec.layers if layer.symbol == symbol), None)
        if first is None:
            continue
        calls = mixer_class(block.kind).kernel_calls(block, spec.d_model, spec.max_context, device.type, dtype)
        for op, info in calls:
            try:
                check(op, **info)
            except BackendError as err:
                problems.append(f"blocks.{symbol} (layer {first}, {block.kind}): {err}")
    if problems:
        raise BackendUnavailable(f"spec {spec.name!r} cannot run on {device.type} in {dtype}:\n  - "
                                 + "\n  - ".join(problems))
