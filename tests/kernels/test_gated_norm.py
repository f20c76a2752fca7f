"""Gated RMSNorm (Mamba-2): the torch path against an independent float64 formula; the Triton path on GPU."""

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


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("shape,group_size,z,norm_before_gate",
                         [((2, 256, 1024), 256, True, False), ((4, 100, 512), None, True, True), ((8, 64), 32, False, False)],
                         ids=["B2-T256-D1024-G256", "B4-T100-D512-normfirst", "B8-D64-G32-noz"])
def test_gpu_mamba_triton_matches_torch(shape, group_size, z, norm_before_gate, dtype):
    ok, why = K.registry.get_backend("gated_rmsnorm", "mamba_ssm").available()
    if not ok:
        pytest.skip(why)
    inputs = make_inputs(shape, z, dtype=dtype, device="cuda")
    got = run_with_grads(norm("mamba_ssm", group_size, norm_before_gate), inputs)
    want = run_with_grads(norm("torch", group_size, norm_before_gate), inputs, upcast=True)
    assert_same_call(got, want, dtype, tol=1e-4 if dtype == torch.float32 else None)
