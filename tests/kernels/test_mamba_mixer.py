"""The Mamba-2 mixer op (conv, scan, gated norm between the projections): the fused backend's two opaque ops
against the composite path (three ops on their torch backends), on the CPU with torch stand-ins for the kernels
they call; our Triton conv itself runs in the interpreter test below, and the GPU test runs mamba-ssm's kernels.

The stand-ins keep the kernels' contracts that the fused ops rely on: gradients written in place into the views
they are given (slices of one dxBC and one dzxbcdt buffer), outputs in the layout the real kernels return."""

import contextlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from archsearch.kernels import conv1d, gated_norm, mamba_mixer_op, mixer, registry
from kernels_testlib import assert_same_call, compiled_call_targets, run_with_grads
from test_ssd_mamba_op import _stand_in_backward as scan_backward_returning, _stand_in_forward as scan_forward


def scan_backward(dout, x, dt, A, B, C, out, chunk_size, D=None, z=None, dt_bias=None, dt_softplus=False,
                  dt_limit=(0.0, float("inf")), dx=None, ddt=None, dB=None, dC=None, dz=None):
    """mamba-ssm's `_mamba_chunk_scan_combined_bwd`: given dx, ddt, dB, dC, dz are filled and returned."""
    grads = list(scan_backward_returning(dout, x, dt, A, B, C, out, chunk_size, D=D, z=z, dt_bias=dt_bias,
                                         dt_softplus=dt_softplus, dt_limit=dt_limit))
    for i, given in ((0, dx), (1, ddt), (3, dB), (4, dC), (6, dz)):
        if given is not None:
            grads[i] = given.copy_(grads[i])
    return tuple(grads)


def _norm(x, weight, z, eps, group_size):
    return gated_norm.gated_rms_norm_reference(x, weight, z, eps, group_size, norm_before_gate=False)


def norm_forward(x, weight, z, eps, group_size):
    """The norm kernels' contract for rows (M, N): (y, rstd (groups x M) float32, group-major as both kernels)."""
    assert x.stride(-1) == 1 and z.stride(-1) == 1  # what the real kernels need; z's rows may be strided
    h = (x.float() * F.silu(z.float())).view(x.shape[0], -1, group_size)
    rstd = torch.rsqrt(h.square().mean(-1) + eps).t().reshape(-1)
    return _norm(x, weight, z, eps, group_size), rstd


def norm_backward(dy, x, weight, z, rstd, eps, group_size, dz):
    """(dx, dweight, dz), dz written into the given one; rstd must be the forward's."""
    torch.testing.assert_close(rstd, norm_forward(x, weight, z, eps, group_size)[1])
    _, vjp = torch.func.vjp(lambda x_, w_, z_: _norm(x_, w_, z_, eps, group_size), x, weight, z)
    dx, dw, dz_new = vjp(dy)
    return dx, dw, dz.copy_(dz_new)


def conv_forward(x, weight, bias, initial_states, silu):
    """Our triton_conv1d.conv_forward: y in x's layout (channel-last for xBC as the projection writes it)."""
    assert initial_states is None
    y = conv1d.causal_conv1d_reference(x, weight, bias, "silu" if silu else None)
    return y.transpose(1, 2).contiguous().transpose(1, 2) if x.stride(1) == 1 else y.contiguous()


def conv_backward(x, weight, bias, initial_states, dy, silu, dx=None):
    """Our triton_conv1d.conv_backward: (dx, dweight, dbias), dx written into the given view."""
    assert initial_states is None
    args = (x, weight) + ((bias,) if bias is not None else ())
    _, vjp = torch.func.vjp(lambda *a: conv1d.causal_conv1d_reference(*a[:2], a[2] if len(a) > 2 else None,
                                                                      "silu" if silu else None), *args)
    grads = vjp(dy)
    return dx.copy_(grads[0]), grads[1], grads[2] if bias is not None else None


STAND_INS = mamba_mixer_op.Kernels(scan_forward, scan_backward, norm_forward, norm_backward, conv_forward,
                                   conv_backward)


@pytest.fixture
def stand_ins(monkeypatch):
    monkeypatch.setattr(mamba_mixer_op, "kernels", lambda norm: STAND_INS)


def make_mixer_inputs(b=2, l=40, h=4, p=8, g=2, n=8, k=4, norm=True, conv_bias=True, dtype=torch.float32, seed=0,
                      device="cpu"):
    gen = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=1.0, shift=0.0):
        return (torch.randn(*shape, generator=gen) * scale + shift).to(device=device, dtype=dtype)

    d_inner, conv_dim = h * p, h * p + 2 * g * n
    return dict(zxbcdt=rnd(b, l, 2 * d_inner + 2 * g * n + h), conv_weight=rnd(conv_dim, k, scale=0.5),
                conv_bias=rnd(conv_dim, scale=0.2) if conv_bias else None, dt_bias=rnd(h, scale=0.5, shift=-1.0),
                A=(-torch.empty(h).uniform_(0.5, 2.0, generator=gen)).to(device), D=rnd(h),
                norm_weight=rnd(d_inner, scale=0.2, shift=1.0) if norm else None)


def _mixer(backend, h=4, g=2, n=8, chunk=16, compiled=False):
    def call(**inputs):
        with registry.force_backend(mixer.OP, backend) if backend == "composite" else contextlib.nullcontext():
            if backend == "fused":  # the op pair itself, as the fused backend calls it on a GPU
                return mamba_mixer_op.mamba_mixer_fused(*inputs.values(), h, g, n, chunk, 1e-5, (0.0, 3.0))
            return mixer.mamba_mixer(*inputs.values(), n_heads=h, n_groups=g, d_state=n, chunk_size=chunk,
                                           norm_eps=1e-5, dt_limit=(0.0, 3.0))

    return torch.compile(call, backend="aot_eager", fullgraph=True) if compiled else call


CASES = [dict(), dict(norm=False), dict(conv_bias=False, l=37), dict(g=1, h=2, p=16, k=3)]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()) or "all")
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_fused_ops_match_the_composite_path_with_every_gradient(stand_ins, case, compiled):
    torch._dynamo.reset()
    inputs = make_mixer_inputs(**case)
    h, g = case.get("h", 4), case.get("g", 2)
    got = run_with_grads(_mixer("fused", h=h, g=g, compiled=compiled), inputs)
    want = run_with_grads(_mixer("composite", h=h, g=g), inputs)
    assert_same_call(got, want, torch.float32)


def test_compiled_mixer_is_one_graph_holding_one_forward_op(stand_ins):
    fn = _mixer("fused")
    graphs = compiled_call_targets(lambda **kw: fn(**kw).square().sum(), **make_mixer_inputs())
    assert len(graphs) == 1
    assert sum("mamba_mixer_forward" in t for t in graphs[0]) == 1, graphs[0]


LAYOUTS = {  # zxbcdt as inductor may hand it to ops tagged flexible_layout: rows padded, position- or channel-major
    "padded-rows": lambda t: F.pad(t, (0, 8))[..., :t.shape[-1]],
    "position-major": lambda t: t.transpose(0, 1).contiguous().transpose(0, 1),
    "channel-major": lambda t: t.permute(2, 0, 1).contiguous().permute(1, 2, 0),
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("norm", [True, False], ids=["norm", "gate-in-scan"])
def test_fused_ops_take_zxbcdt_in_any_layout(stand_ins, layout, norm):
    """The ops carry torch.Tag.flexible_layout (no copy to the traced strides on either side of them), so they must
    give the same values and gradients whatever strides zxbcdt arrives with."""
    for op in (torch.ops.archsearch.mamba_mixer_forward.default, torch.ops.archsearch.mamba_mixer_backward.default):
        assert torch.Tag.flexible_layout in op.tags, op
    fused, relayout = _mixer("fused"), LAYOUTS[layout]
    inputs = make_mixer_inputs(norm=norm)
    assert not relayout(inputs["zxbcdt"]).is_contiguous()
    got = run_with_grads(lambda zxbcdt, **rest: fused(zxbcdt=relayout(zxbcdt), **rest), inputs)
    assert_same_call(got, run_with_grads(_mixer("composite"), inputs), torch.float32)


@pytest.mark.parametrize("norm", [True, False], ids=["norm", "gate-in-scan"])
def test_opcheck_fake_shapes_and_autograd_registration(stand_ins, norm):
    inputs = make_mixer_inputs(norm=norm)
    for t in inputs.values():
        if t is not None:
            t.requires_grad_(True)
    torch.library.opcheck(mamba_mixer_op.mamba_mixer_forward,
                          (*inputs.values(), 4, 2, 8, 16, 1e-5, "mamba_ssm", 0.0, 3.0))


def test_cpu_takes_the_composite_path_and_bad_sizes_are_named():
    inputs = make_mixer_inputs()
    with registry.recording() as used:
        mixer.mamba_mixer(*inputs.values(), n_heads=4, n_groups=2, d_state=8, chunk_size=16)
    assert used["mamba_mixer"] == "composite" and used["ssd_scan"] == "torch_chunked"
    with pytest.raises(ValueError, match=r"mamba_mixer: argument zxbcdt.shape\[-1\]=.*d_inner a multiple of h=3"):
        mixer.mamba_mixer(*inputs.values(), n_heads=3, n_groups=2, d_state=8, chunk_size=16)
    with pytest.raises(ValueError, match="conv_state/ssm_state"):
        mixer.mamba_mixer(*inputs.values(), n_heads=4, n_groups=2, d_state=8, chunk_size=16,
                                conv_state=torch.zeros(2, 48, 3))


GPU_CALL = dict(device="cuda", dtype=torch.bfloat16, width=4, headdim=64, dstate=128, norm=True, group_size=768,
                itemsize=2)


@pytest.fixture
def fused_available(monkeypatch):
    """The fused backend (and mamba-ssm's norm) as on a GPU; the choices cached meanwhile are dropped afterwards."""
    fused = registry.get_backend(mixer.OP, "fused")
    monkeypatch.setattr(fused, "_availability", (True, "as on a GPU (test)"))
    monkeypatch.setattr(registry.get_backend("gated_rmsnorm", "mamba_ssm"), "_availability", (True, "test"))
    registry._choice_cache.clear()
    yield fused
    registry._choice_cache.clear()


def test_fused_backend_refuses_components_forced_elsewhere(fused_available, monkeypatch):
    fused = fused_available
    assert registry.select(mixer.OP, **GPU_CALL).name == "fused"
    with registry.force_backend("causal_conv1d", "reference"):
        assert "forced to 'reference' by force_backend()" in fused.accepts(**GPU_CALL)
        assert registry.select(mixer.OP, **GPU_CALL).name == "composite"
    # an environment override of a component changes the cached choice too (it is part of the cache's key)
    assert registry.select(mixer.OP, **GPU_CALL).name == "fused"
    monkeypatch.setenv(registry.env_var("ssd_scan"), "torch_chunked")
    assert registry.select(mixer.OP, **GPU_CALL).name == "composite"
    monkeypatch.setenv(registry.env_var("ssd_scan"), "mamba_ssm")
    assert registry.select(mixer.OP, **GPU_CALL).name == "fused"
    assert "width 5" in fused.accepts(**{**GPU_CALL, "width": 5})
    with registry.force_backend("gated_rmsnorm", "torch"):  # a norm it does not run
        assert "forced to 'torch'" in fused.accepts(**GPU_CALL)
        assert fused.accepts(**{**GPU_CALL, "norm": False}) is None  # no norm: no matter


INTERPRETED = """
import sys, torch
sys.path.insert(0, {tests!r})
from archsearch.kernels import mamba_mixer_op, triton_conv1d
import test_mamba_mixer as t
from kernels_testlib import assert_same_call, compiled_call_targets, run_with_grads

# our Triton conv (walk kernels: xBC is a channel-last slice) inside the fused ops, mamba-ssm's kernels stood in for
mamba_mixer_op.kernels = lambda norm: t.STAND_INS._replace(conv_forward=triton_conv1d.conv_forward,
                                                           conv_backward=triton_conv1d.conv_backward)
for case in ({{}}, {{"norm": False, "conv_bias": False, "l": 37}}):
    inputs = t.make_mixer_inputs(**case)
    got = run_with_grads(t._mixer("fused"), inputs)
    want = run_with_grads(t._mixer("composite"), inputs)
    assert_same_call(got, want, torch.float32)
print("ok")
"""


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs the triton package (its interpreter)")
def test_fused_ops_with_our_triton_conv_under_the_interpreter():
    """The conv's backward writes dx into a slice of zxbcdt's gradient: checked with the real Triton kernels."""
    script = INTERPRETED.format(tests=str(Path(__file__).parent))
    done = subprocess.run([sys.executable, "-c", script], env={**os.environ, "TRITON_INTERPRET": "1"},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32, torch.float16], ids=str)  # bf16, training's, first
@pytest.mark.parametrize("case,norm", [(dict(), "mamba_ssm"), (dict(), "triton"),
                                       (dict(norm=False, conv_bias=False), "mamba_ssm")],
                         ids=["mamba-norm", "our-norm", "gate-in-scan"])
def test_gpu_fused_mixer_matches_the_composite_path(dtype, case, norm):
    """mamba-ssm's Triton scan, our Triton conv and the chosen norm kernels through the public op's fused backend,
    against the composite path on the same kernels (outputs and every gradient), at a Mamba-2 layer's sizes
    (h 8 x p 64, g 2, n 64, chunk 64)."""
    inputs = make_mixer_inputs(b=2, l=300, h=8, p=64, g=2, n=64, dtype=dtype, device="cuda", **case)
    sizes = dict(h=8, g=2, n=64, chunk=64)

    def public(**kw):
        return mixer.mamba_mixer(*kw.values(), n_heads=8, n_groups=2, d_state=64, chunk_size=64, norm_eps=1e-5,
                                 dt_limit=(0.0, 3.0))

    with registry.force_backend("gated_rmsnorm", norm):
        with registry.force_backend(mixer.OP, "fused"), registry.recording() as used:
            got = run_with_grads(public, inputs)
        want = run_with_grads(_mixer("composite", **sizes), inputs)
    assert used["mamba_mixer"] == "fused"
    if case.get("norm", True):
        assert used["gated_rmsnorm"] == norm  # the fused ops ran the norm kernels the op chose
    assert_same_call(got, want, dtype)


def test_fused_backend_runs_the_composite_path_past_32_bit_offsets(monkeypatch):
    """A batch whose scan or norm would index past 2^31 elements takes the composite path (which splits it)."""
    from archsearch.kernels import _batching

    inputs = make_mixer_inputs(b=4)
    want = mixer.mamba_mixer_composite(*inputs.values(), 4, 2, 8, 16, 1e-5, (0.0, 3.0))
    monkeypatch.setattr(_batching, "INT32_ELEMENTS", inputs["zxbcdt"].stride(0) * 2)  # two sequences a call
    calls = []
    monkeypatch.setattr(mamba_mixer_op, "mamba_mixer_fused", lambda *a, **k: calls.append(1))
    with registry.recording() as used:
        got = mixer.mamba_mixer_fused(*inputs.values(), 4, 2, 8, 16, 1e-5, (0.0, 3.0))
    assert calls == [] and "composite path" in used.notes["mamba_mixer"]
    torch.testing.assert_close(got, want)


def test_fused_backend_runs_a_prefill_with_states_on_the_composite_path(monkeypatch):
    """Decoder states (a prefill) go through the composite path, which returns the final states."""
    inputs = make_mixer_inputs()
    states = dict(conv_state=torch.randn(2, 64, 3), ssm_state=torch.randn(2, 4, 8, 8))  # conv_dim 32 + 2 x 2 x 8
    monkeypatch.setattr(mamba_mixer_op, "mamba_mixer_fused", lambda *a, **k: pytest.fail("the fused ops ran"))
    with registry.recording() as used:
        got = mixer.mamba_mixer_fused(*inputs.values(), 4, 2, 8, 16, 1e-5, (0.0, 3.0), **states)
    want = mixer.mamba_mixer_composite(*inputs.values(), 4, 2, 8, 16, 1e-5, (0.0, 3.0), **states)
    assert "prefill" in used.notes["mamba_mixer"] and len(got) == 3
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


def test_the_default_fused_mixer_runs_our_norm_where_both_norms_are_available(fused_available, monkeypatch):
    """The pairing a GPU gets by default: the fused mixer, with our gated norm's kernels inside it."""
    monkeypatch.setattr(registry.get_backend(gated_norm.OP, "triton"), "_availability", (True, "as on a GPU (test)"))
    registry._choice_cache.clear()
    assert registry.select(mixer.OP, **GPU_CALL).name == "fused"
    norm_call = {k: GPU_CALL[k] for k in ("device", "dtype", "group_size", "itemsize")}
    assert registry.check(gated_norm.OP, **norm_call).name == "triton"
    assert "triton" in mamba_mixer_op.NORMS


def test_fused_backend_is_the_default_and_the_composite_path_can_be_forced(fused_available, monkeypatch):
    """Its GPU parity tests passed (2026-12-08), so it runs wherever it is available; the three ops stay one
    environment variable away."""
    assert mixer.FUSED_BY_DEFAULT and registry.get_backend(mixer.OP, "fused").auto
    assert registry.select(mixer.OP, **GPU_CALL).name == "fused"
    monkeypatch.setenv(registry.env_var(mixer.OP), "composite")
    assert registry.select(mixer.OP, **GPU_CALL).name == "composite"
