"""Our Triton kernels load and store rows of a 5,144-wide bf16 buffer (the 100M trial's Mamba-2 input projection,
8 x 643 elements a row) in vectors: read off the PTX Triton makes for an H100, on the CPU.

Triton assumes a stride aligned only when it is a multiple of 16, so without the kernels' promise
(triton_launch.promise_multiple) every z or xBC row access there was one 2-byte load or store per element. With
ALIGN=1 (no promise) the same kernels compile to those scalar accesses: the control that shows the check can fail."""

import importlib.util
import re

import pytest

from kernels_testlib import sm90_ptx

pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs the triton package")

TRIAL_ROW, TRIAL_INNER = 5144, 1536  # zxbcdt's row; y's row (d_inner), a multiple of 16


def global_accesses(ptx: str) -> dict[str, int]:
    """Global loads and stores by kind: 'ld.global.b16' is one bf16 element, '.v2' / '.v4' vectors."""
    kinds: dict[str, int] = {}
    for op in re.findall(r"\b((?:ld|st)\.global(?:\.[a-z0-9]+)*)", ptx):
        kinds[op] = kinds.get(op, 0) + 1
    return kinds


def scalar_bf16(kinds: dict[str, int]) -> int:
    return sum(n for op, n in kinds.items() if op.endswith(".b16") or op.endswith(".u16"))


def test_stride_alignment_is_the_largest_shared_power_of_two_up_to_16():
    from archsearch.kernels.triton_launch import stride_alignment

    assert stride_alignment(TRIAL_ROW, TRIAL_INNER) == 8
    assert stride_alignment(TRIAL_INNER, 2048 * TRIAL_INNER) == 16
    assert stride_alignment(3 * 1027) == 1 and stride_alignment(6) == 2 and stride_alignment(0, 12) == 4
    assert stride_alignment() == 16


def _norm_ptx(kernel_name: str, align: int) -> dict[str, int]:
    from archsearch.kernels import triton_gated_norm as norm

    kernel = getattr(norm, kernel_name)
    backward = kernel_name == "_gated_rms_bwd_kernel"
    pointers = {"X", "Z", "W", "RSTD", "DY", "DX", "DZ", "DW_PART"} if backward else {"X", "Z", "W", "Y", "RSTD"}
    constexprs = dict(HAS_Z=True, NORM_BEFORE_GATE=False, BLOCK_M=16, BLOCK_G=256, ALIGN=align)
    if backward:
        constexprs["TILES"] = 32
    # the trial's call: 32,768 rows, groups of 192 (multiples of 16, as Triton marks them); the strides not
    ptx = sm90_ptx(kernel, constexprs, pointers, num_warps=8, fp32=frozenset({"W", "RSTD", "DW_PART"}),
                   multiples_of_16=frozenset({"M", "G", "N"}))
    return global_accesses(ptx)


@pytest.mark.parametrize("kernel_name", ["_gated_rms_fwd_kernel", "_gated_rms_bwd_kernel"])
def test_gated_norm_moves_strided_rows_in_vectors(kernel_name):
    from archsearch.kernels.triton_launch import stride_alignment

    promised = _norm_ptx(kernel_name, stride_alignment(TRIAL_ROW, TRIAL_INNER))
    assert scalar_bf16(promised) == 0, promised
    assert any(".v4" in op for op in promised), promised
    unpromised = _norm_ptx(kernel_name, 1)
    assert scalar_bf16(unpromised) >= 16, unpromised  # the control: one access per element


def _walk_ptx(kernel_name: str, align: int) -> dict[str, int]:
    from archsearch.kernels import triton_conv1d as conv

    kernel = getattr(conv, kernel_name)
    pointers = {n for n in kernel.arg_names if n.isupper() and n not in ("D", "L")}
    constexprs = dict(K=4, HAS_BIAS=True, HAS_INIT=False, SILU=True, BLOCK_D=128, CHUNK=64, ALIGN=align)
    # channel-last (b, d, l) tensors: unit channel stride, which Triton specialises to the constant 1
    constexprs.update({n: 1 for n in ("sxd", "syd", "sgd", "sdd") if n in kernel.arg_names})
    ptx = sm90_ptx(kernel, constexprs, pointers, num_warps=1, fp32=frozenset({"W", "BIAS", "DW_PART", "DB_PART"}),
                   multiples_of_16=frozenset({"D", "L"}))
    return global_accesses(ptx)


@pytest.mark.parametrize("kernel_name", ["_conv_fwd_walk_kernel", "_conv_bwd_walk_kernel"])
def test_conv_walk_kernels_move_strided_rows_in_vectors(kernel_name):
    """The default conv kernels for xBC (a 3,584-wide slice of 5,144-wide rows): 4 channels a thread, 8 bytes."""
    from archsearch.kernels.triton_launch import stride_alignment

    promised = _walk_ptx(kernel_name, stride_alignment(TRIAL_ROW, 2048 * TRIAL_ROW))
    assert scalar_bf16(promised) == 0, promised
    assert any(".v2" in op or ".b64" in op for op in promised), promised
    assert scalar_bf16(_walk_ptx(kernel_name, 1)) >= 4
