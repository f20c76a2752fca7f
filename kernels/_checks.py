"""Argument checks shared by the ops: every error names the op, the argument, its value and what is allowed."""

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


def device_type(t: torch.Tensor) -> str:
    return t.device.type
