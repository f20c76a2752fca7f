"""Argument checks shared by the ops: every error names the op, the argument, its value and what is allowed.

The ops run on every call, so they test their arguments with plain comparisons first and call these helpers only
when a test fails: the helper repeats the test and raises the message. Nothing is formatted on a valid call.
"""

from __future__ import annotations

from typing import Sequence

import torch


class KernelArgumentError(ValueError):
    pass


def fail(op: str, arg: str, value: object, allowed: str) -> None:
    raise KernelArgumentError(f"{op}: argument {arg}={value} is invalid; allowed: {allowed}")


def shape(op: str, arg: str, t: torch.Tensor, expected: Sequence[int | None], names: str) -> None:
    """`expected` holds sizes or None (any); `names` spells the layout, e.g. "(b, l, h, p)"."""
    if t.dim() != len(expected) or any(e is not None and s != e for s, e in zip(t.shape, expected)):
        want = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
        fail(op, f"{arg}.shape", tuple(t.shape), f"{want} with layout {names}")


def same_device(op: str, ref: torch.Tensor, **tensors: torch.Tensor | None) -> None:
    for name, t in tensors.items():
        if t is not None and t.device != ref.device:
            fail(op, f"{name}.device", t.device, f"the device of the first input ({ref.device})")


def floating(op: str, **tensors: torch.Tensor | None) -> None:
    for name, t in tensors.items():
        if t is not None and not t.is_floating_point():
            fail(op, f"{name}.dtype", t.dtype, "a floating-point dtype")


def floating_on(device: torch.device, *tensors: torch.Tensor | None) -> bool:
    """Whether every tensor given is floating-point and on `device`: one pass for the ops' hot path. When it is
    False they call `floating` at once and `same_device` after their shape checks, so errors keep their order."""
    for t in tensors:
        if t is not None and (not t.is_floating_point() or t.device != device):
            return False
    return True


def device_type(t: torch.Tensor) -> str:
    """t.device.type, without building a device object for the common cases (0.3 us -> 0.05 us)."""
    return "cuda" if t.is_cuda else "cpu" if t.is_cpu else t.device.type
