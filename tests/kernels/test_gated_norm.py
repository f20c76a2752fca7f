"""Gated RMSNorm (Mamba-2): the torch path against an independent float64 formula; our Triton kernels under
Triton's interpreter on the CPU; mamba-ssm's and our Triton kernels on the GPU."""

import importlib.util
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import archsearch.kernels as K
from kernels_testlib import assert_close, assert_same_call, run_with_grads, shape_id


def oracle(x, weight, z, eps, group_size, norm_before_gate):
    """Per group, with the mean of squares spelled out as a sum."""
    x, weight = x.double(), weight.double()
    gate = F.silu(z.double()) if z is not None else None
    h = x * gate if (gate is not None and not norm_before_gate) else x
    g = group_size or h.shape[-1]
    parts = []
    for start in range(0, h.shape[-1], g):
        part = h[..., start : start + g]
        parts.append(part / torch.sqrt((part * part).sum(-1, keepdim=True) / g + eps))
    out = torch.cat(parts, -1) * weight
    return out * gate if (gate is not None and norm_before_gate) else out


CASES = [((2, 5, 32), None, True, False), ((3, 64), 16, True, False), ((4, 24), 8, True, True), ((2, 16), None, False, False)]
IDS = [shape_id(X="x".join(map(str, c[0])), G=c[1] or "all") + ("-z" if c[2] else "") + ("-normfirst" if c[3] else "")
       for c in CASES]


def make_inputs(shape, z=True, dtype=torch.float32, device="cpu", seed=0):
    gen = torch.Generator().manual_seed(seed)
    return dict(x=torch.randn(*shape, generator=gen).to(device, dtype),
                weight=(1 + 0.1 * torch.randn(shape[-1], generator=gen)).to(device, dtype),
                z=torch.randn(*shape, generator=gen).to(device, dtype) if z else None)


def norm(backend, group_size, norm_before_gate, eps=1e-5):
    def call(**inputs):
        with K.force_backend("gated_rmsnorm", backend):
            return K.gated_rms_norm(**inputs, eps=eps, group_size=group_size, norm_before_gate=norm_before_gate)

    return call


@pytest.mark.parametrize("shape,group_size,z,norm_before_gate", CASES, ids=IDS)
def test_torch_matches_oracle(shape, group_size, z, norm_before_gate):
    inputs = make_inputs(shape, z)
    got = norm("torch", group_size, norm_before_gate)(**inputs)
    assert_close(got, oracle(**inputs, eps=1e-5, group_size=group_size, norm_before_gate=norm_before_gate),
                 torch.float32, "y")


def test_default_on_cpu_is_torch_and_bad_group_is_named():
    K.reset_backends_used()
    K.gated_rms_norm(**make_inputs((2, 8)), group_size=4)
    assert K.backends_used() == {"gated_rmsnorm": "torch"}
    with pytest.raises(K.KernelArgumentError, match="group_size=3"):
        K.gated_rms_norm(**make_inputs((2, 8)), group_size=3)


def test_ours_is_chosen_before_mamba_ssms_on_a_gpu_and_either_can_be_forced(monkeypatch):
    """Our kernels passed their GPU parity tests and are faster on both sides, so a GPU call gets them; a group too
    wide for them falls to mamba-ssm's, and the environment can force either."""
    from archsearch.kernels import gated_norm, registry

    for name in ("triton", "mamba_ssm"):
        monkeypatch.setattr(registry.get_backend(gated_norm.OP, name), "_availability", (True, "as on a GPU (test)"))
    registry._choice_cache.clear()
    try:
        call = dict(device="cuda", dtype=torch.bfloat16, group_size=768, itemsize=2)
        assert gated_norm.TRITON_BY_DEFAULT and registry.select(gated_norm.OP, **call).name == "triton"
        wide = {**call, "group_size": gated_norm.TRITON_MAX_GROUP * 2}
        assert registry.select(gated_norm.OP, **wide).name == "mamba_ssm"
        monkeypatch.setenv(registry.env_var(gated_norm.OP), "mamba_ssm")
        assert registry.select(gated_norm.OP, **call).name == "mamba_ssm"
        monkeypatch.setenv(registry.env_var(gated_norm.OP), "triton")
        assert registry.select(gated_norm.OP, **call).name == "triton"
    finally:
        registry._choice_cache.clear()


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("shape,group_size,z,norm_before_gate",
                         [((2, 256, 1024), 256, True, False), ((4, 100, 512), None, True, True), ((8, 64), 32, False, False),
                          # groups where one row fills a tile: nemotron-nano's 1,280, the widest ours takes, one group
                          ((4, 100, 2560), 1280, True, False), ((2, 50, 8192), 8192, True, False),
                          ((3, 70, 4096), None, True, False)],
                         ids=["B2-T256-D1024-G256", "B4-T100-D512-normfirst", "B8-D64-G32-noz", "G1280", "G8192",
                              "G4096-one-group"])
@pytest.mark.parametrize("backend", ["mamba_ssm", "triton"])
def test_gpu_triton_backends_match_torch(shape, group_size, z, norm_before_gate, dtype, backend):
    ok, why = K.registry.get_backend("gated_rmsnorm", backend).available()
    if not ok:
        pytest.skip(why)
    inputs = make_inputs(shape, z, dtype=dtype, device="cuda")
    got = run_with_grads(norm(backend, group_size, norm_before_gate), inputs)
    want = run_with_grads(norm("torch", group_size, norm_before_gate), inputs, upcast=True)
    assert_same_call(got, want, dtype, tol=1e-4 if dtype == torch.float32 else None)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_gpu_ours_at_the_mamba_mixers_layout(dtype):
    """Our kernels as the fused Mamba mixer calls them: z a slice of wider rows, dz written into a slice, 192-channel
    groups (the 100M trial's), enough rows that each backward program walks several tiles."""
    from archsearch.kernels import triton_gated_norm

    gen = torch.Generator().manual_seed(3)
    M, N, G = 4099, 768, 192
    x = torch.randn(M, N, generator=gen).to("cuda", dtype)
    rows = torch.randn(M, 2 * N + 40, generator=gen).to("cuda", dtype)
    z, weight = rows[:, 7:7 + N], (1 + 0.1 * torch.randn(N, generator=gen)).to("cuda", dtype)
    dy = torch.randn(M, N, generator=gen).to("cuda", dtype)
    y, rstd = triton_gated_norm.norm_forward(x, weight, z, 1e-5, G, False)
    dz_rows = torch.zeros_like(rows)
    dx, dweight, dz = triton_gated_norm.norm_backward(dy, x, weight, z, rstd, G, False, dz=dz_rows[:, 7:7 + N])
    leaves = [t.detach().double().requires_grad_() for t in (x, weight, z)]
    want = oracle(*leaves[:1], leaves[1], leaves[2], 1e-5, G, False)
    want.backward(dy.double())
    tol = 1e-4 if dtype == torch.float32 else None
    assert_close(y, want, dtype, "y", tol)
    for name, got, leaf in (("dx", dx, leaves[0]), ("dweight", dweight, leaves[1]), ("dz", dz, leaves[2])):
        assert_close(got, leaf.grad, dtype, name, tol)
    assert dz_rows[:, :7].abs().sum() == 0 and dz_rows[:, 7 + N:].abs().sum() == 0  # only its slice written


INTERPRETED = """
import sys, torch
sys.path.insert(0, {tests!r})
from archsearch.kernels import triton_gated_norm
from test_gated_norm import oracle, make_inputs

triton_gated_norm._programs_along_rows = lambda x, n_tiles, n_groups: 2  # several tiles a backward program

# every branch (z or none, norm before or after the gate), groups that are not a power of two, rows not a multiple
# of the tile, a z with strided rows, several backward tiles a program; wide groups (one row a tile: 1,280 as
# nemotron-nano's, 8,192 the widest accepted) and float16
for (M, N, G), z_on, before, dtype in [((37, 48, 24), True, False, torch.float32), ((130, 60, 20), True, True, torch.float32),
                                       ((5, 64, 64), False, False, torch.float32), ((300, 40, 40), True, False, torch.float32),
                                       ((7, 2560, 1280), True, False, torch.float32), ((3, 8192, 8192), True, True, torch.float32),
                                       ((33, 96, 48), True, False, torch.float16)]:
    gen = torch.Generator().manual_seed(M)
    x, w = torch.randn(M, N, generator=gen), 1 + 0.2 * torch.randn(N, generator=gen)
    rows = torch.randn(M, N + 9, generator=gen)
    z = rows[:, 5:5 + N] if z_on else None
    dy = torch.randn(M, N, generator=gen)
    x, w, z, dy = (t.to(dtype) if t is not None else None for t in (x, w, z, dy))
    leaves = [t.clone().requires_grad_() if t is not None else None for t in (x, w, z)]
    y = triton_gated_norm.gated_rms_norm_fn(*leaves[:2], leaves[2], 1e-5, G, before)
    y.backward(dy)
    dleaves = [t.double().detach().requires_grad_() if t is not None else None for t in (x, w, z)]
    want = oracle(dleaves[0], dleaves[1], dleaves[2], 1e-5, G, before)
    want.backward(dy.double())
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-2, atol=2e-2)
    assert y.dtype == dtype
    torch.testing.assert_close(y.double(), want, **tol)
    for got, ref in zip(leaves, dleaves):
        if got is not None:
            scale = 1.0 if dtype == torch.float32 else max(1.0, ref.grad.abs().max().item() / 4)  # dweight sums rows
            torch.testing.assert_close(got.grad.double() / scale, ref.grad / scale, **tol)
print("ok")
"""


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs the triton package (its interpreter)")
def test_our_triton_kernels_match_the_oracle_under_the_interpreter():
    script = INTERPRETED.format(tests=os.path.dirname(__file__))
    done = subprocess.run([sys.executable, "-c", script], env={**os.environ, "TRITON_INTERPRET": "1"},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]
