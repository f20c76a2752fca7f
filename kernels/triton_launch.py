"""What our Triton kernels and their launchers share (imports triton: only our Triton modules import this).

Alignment: Triton treats an integer argument as a multiple of 16 only when it is one (it compiles a variant per
case), and loads a row in 16-byte vectors only when it can prove each row start 16-byte aligned. The input
projection's output of a Mamba-2 layer is 5,144 bf16 wide at the 100M trial (8 x 643), so every kernel reading z
or xBC as strided slices of it, or writing their gradients there, fell back to one 2-byte access per element. The
launcher works out the largest power of two its row strides share (`stride_alignment`) and the kernel states it
(`promise_multiple`), which gives Triton back its vector loads and stores; tests/kernels/test_triton_alignment.py
reads that off the compiled PTX.
"""

from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl

MAX_ALIGNMENT = 16  # elements; Triton's own specialisation stops here too


def launch_device(x: torch.Tensor):
    """Where our Triton kernels launch for x: its GPU; CPU tensors only reach them under Triton's interpreter
    (TRITON_INTERPRET=1, tests)."""
    return torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext()


def stride_alignment(*strides: int) -> int:
    """The largest power of two, up to MAX_ALIGNMENT, that divides every given stride (in elements)."""
    alignment = MAX_ALIGNMENT
    for stride in strides:
        while stride % alignment:
            alignment //= 2
    return alignment


@triton.jit
def promise_multiple(stride, ALIGN: tl.constexpr):
    """stride, which the launcher found to be a multiple of ALIGN (stride_alignment), in a form whose divisibility
    Triton's analysis can see (tl.multiple_of does not reach a scalar argument); costs one shift a program."""
    return stride // ALIGN * ALIGN
