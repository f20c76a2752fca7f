"""SSD chunked scan: every backend against the sequential float32 recurrence (outputs, final states, all grads)."""

import importlib.util
import os
import subprocess
import sys

import pytest
import torch

import archsearch.kernels as K
from archsearch.kernels import ssd
from kernels_testlib import REL_TOL, REL_TOL_GPU_FP32, assert_close, assert_same_call, run_with_grads, shape_id


def make_inputs(b, l, h, p, g, n, *, D="h", z=True, dt_bias=True, init=True, dtype=torch.float32, device="cpu",
                seed=0):
    gen = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen) * scale).to(device=device, dtype=dtype)

    inputs = dict(
        x=rnd(b, l, h, p),
        dt=rnd(b, l, h, scale=0.5),
        A=(-torch.empty(h).uniform_(0.5, 2.0, generator=gen)).to(device),  # A stays float32, as in Mamba-2
        B=rnd(b, l, g, n, scale=0.5),
        C=rnd(b, l, g, n, scale=0.5),
        D={"h": rnd(h), "hp": rnd(h, p), None: None}[D],
        z=rnd(b, l, h, p) if z else None,
        dt_bias=(torch.randn(h, generator=gen) * 0.5 - 1.0).to(device) if dt_bias else None,
        initial_states=rnd(b, h, p, n) if init else None,
    )
    return inputs


CASES = [
    # (b, l, h, p, g, n, chunk, options)
    (2, 64, 4, 8, 2, 16, 16, dict()),
    (1, 70, 4, 8, 1, 16, 16, dict(D="hp")),  # l not a multiple of the chunk
    (2, 37, 6, 4, 3, 8, 8, dict(init=False, z=False)),
    (1, 5, 2, 4, 1, 8, 16, dict(D=None, dt_bias=False)),  # shorter than one chunk
]
IDS = [shape_id(B=c[0], L=c[1], H=c[2], P=c[3], G=c[4], N=c[5], Q=c[6]) + "".join(f"-{k}{v}" for k, v in c[7].items())
       for c in CASES]


def scan(backend, chunk, **kw):
    def call(**inputs):
        with K.force_backend("ssd_scan", backend):
            return K.ssd_chunk_scan(chunk_size=chunk, dt_softplus=True, return_final_states=True, **inputs, **kw)

    return call


@pytest.mark.parametrize("b,l,h,p,g,n,chunk,opts", CASES, ids=IDS)
def test_torch_chunked_matches_reference_fp32(b, l, h, p, g, n, chunk, opts):
    inputs = make_inputs(b, l, h, p, g, n, **opts)
    got = run_with_grads(scan("torch_chunked", chunk), inputs)
    want = run_with_grads(scan("reference", chunk), inputs)
    assert_same_call(got, want, torch.float32, tol=2e-5, grad_tol=5e-5)


def test_torch_chunked_bf16_matches_reference():
    inputs = make_inputs(2, 48, 4, 8, 2, 16, dtype=torch.bfloat16)
    got = run_with_grads(scan("torch_chunked", 16), inputs)
    want = run_with_grads(scan("reference", 16), inputs, upcast=True)
    assert got[0][0].dtype == torch.bfloat16
    assert_same_call(got, want, torch.bfloat16)


@pytest.mark.parametrize("chunk", [1, 7, 32, 100])
def test_chunk_size_does_not_change_the_result(chunk):
    inputs = make_inputs(1, 45, 2, 4, 1, 8, D="hp")
    y_ref, f_ref = scan("reference", 1)(**inputs)
    y, f = scan("torch_chunked", chunk)(**inputs)
    assert_close(y, y_ref, torch.float32, "y", tol=2e-5)
    assert_close(f, f_ref, torch.float32, "final state", tol=2e-5)


def test_scan_continues_from_final_state():
    inputs = make_inputs(2, 50, 4, 8, 2, 16)
    y_full, f_full = scan("torch_chunked", 16)(**inputs)
    first = {k: (v[:, :30] if k in ("x", "dt", "B", "C", "z") else v) for k, v in inputs.items()}
    second = {k: (v[:, 30:] if k in ("x", "dt", "B", "C", "z") else v) for k, v in inputs.items()}
    y1, f1 = scan("torch_chunked", 16)(**first)
    y2, f2 = scan("torch_chunked", 16)(**{**second, "initial_states": f1})
    assert_close(torch.cat([y1, y2], 1), y_full, torch.float32, "y", tol=2e-5)
    assert_close(f2, f_full, torch.float32, "final state", tol=2e-5)


def test_dt_limit_and_no_softplus_follow_mamba_semantics():
    inputs = make_inputs(1, 20, 2, 4, 1, 8)
    # without softplus, the default limit (0, inf) clamps negative dt to 0 (mamba-ssm's kernel does the same)
    eff = ssd.effective_dt(inputs["dt"], inputs["dt_bias"], False, ssd.DEFAULT_DT_LIMIT)
    assert (eff >= 0).all() and (eff == 0).any()
    for limit in [(0.0, float("inf")), (0.1, 0.5)]:
        with K.force_backend("ssd_scan", "reference"):
            ref = K.ssd_chunk_scan(chunk_size=8, dt_limit=limit, **inputs)
        with K.force_backend("ssd_scan", "torch_chunked"):
            got = K.ssd_chunk_scan(chunk_size=8, dt_limit=limit, **inputs)
        assert_close(got, ref, torch.float32, f"y with dt_limit={limit}", tol=2e-5)


def test_default_backend_on_cpu_is_torch_chunked():
    K.reset_backends_used()
    inputs = make_inputs(1, 16, 2, 4, 1, 8)
    y = K.ssd_chunk_scan(chunk_size=8, **inputs)
    assert y.shape == (1, 16, 2, 4)
    assert K.backends_used() == {"ssd_scan": "torch_chunked"}


@pytest.mark.parametrize(
    "change, needle",
    [
        (dict(dt=torch.zeros(1, 16, 3)), "dt.shape"),
        (dict(A=torch.zeros(3)), "A.shape"),
        (dict(D=torch.zeros(2, 5)), "D.shape"),
        (dict(initial_states=torch.zeros(1, 2, 4, 7)), "initial_states.shape"),
        (dict(dt_limit=(1.0, 0.5)), "dt_limit"),
    ],
    ids=["dt", "A", "D", "initial_states", "dt_limit"],
)
def test_bad_arguments_name_the_argument(change, needle):
    inputs = make_inputs(1, 16, 2, 4, 1, 8)
    inputs.update(change)
    with pytest.raises(K.KernelArgumentError, match=needle) as err:
        K.ssd_chunk_scan(chunk_size=8, **inputs)
    assert "ssd_scan" in str(err.value) and "allowed" in str(err.value)


INTERPRETED = """
import sys, torch
sys.path.insert(0, {tests!r})
from archsearch.kernels import ssd
from kernels_testlib import assert_same_call, run_with_grads
from test_ssd import CASES, make_inputs

# every case above (groups of 1, 2 and 3 heads, lengths past, at and short of the kernels' chunks, with and
# without an initial state, D per head or per channel, the gate, dt's bias), and a head at the 100M trial's size
for b, l, h, p, g, n, chunk, opts in CASES + [(1, 130, 2, 64, 1, 128, 256, dict())]:
    inputs = make_inputs(b, l, h, p, g, n, **opts)
    kw = dict(chunk_size=chunk, dt_softplus=True, dt_limit=(0.0, 3.0), return_final_states=True)
    got = run_with_grads(lambda **i: ssd.ssd_scan_triton(**i, **kw), inputs)
    want = run_with_grads(lambda **i: ssd.ssd_scan_reference(**i, **kw), inputs)
    assert_same_call(got, want, torch.float32, tol=2e-5, grad_tol=5e-5)
# every tiling the benchmark may choose (rows a chunk forward and backward, warps, state columns a backward program)
from archsearch.kernels import triton_ssd
for tiles in triton_ssd.CANDIDATES:
    triton_ssd.TILES = tiles
    inputs = make_inputs(2, 150, 6, 16, 3, 48)  # 48 state columns: several backward blocks where they hold 16 or 32
    got = run_with_grads(lambda **i: ssd.ssd_scan_triton(**i, **kw), inputs)
    want = run_with_grads(lambda **i: ssd.ssd_scan_reference(**i, **kw), inputs)
    assert_same_call(got, want, torch.float32, tol=2e-5, grad_tol=5e-5)
print("ok")
"""


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs the triton package (its interpreter)")
def test_our_triton_scan_matches_the_reference_under_the_interpreter():
    """Outputs, final states and every gradient (x, dt, A, B, C, D, z, dt_bias, the initial state) of our Triton
    kernels, run by Triton's interpreter on the CPU."""
    script = INTERPRETED.format(tests=os.path.dirname(__file__))
    done = subprocess.run([sys.executable, "-c", script], env={**os.environ, "TRITON_INTERPRET": "1"},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs the triton package")
def test_our_scan_kernels_compile_for_an_h100_with_bf16_operands():
    """The interpreter runs float32 only; a bf16 layer's kernels (bf16 matmul operands, float32 accumulators) are
    compiled here for an H100, on the CPU, at the 100M trial's head: they build, and their matmuls use the tensor
    cores."""
    from kernels_testlib import sm90_ptx

    from archsearch.kernels import triton_ssd

    tiles = triton_ssd.TILES
    sizes = dict(BLOCK_P=64, BLOCK_N=128, HAS_D=True, D_PER_CHANNEL=False)
    forward = triton_ssd._ssd_fwd_kernel
    backward = triton_ssd._ssd_bwd_kernel
    bf16 = {"x_ptr", "B_ptr", "C_ptr", "y_ptr", "dy_ptr", "states_ptr"}  # a bf16 layer's
    for kernel, constexprs, warps in [
            (forward, dict(HAS_INIT=True, WRITE_Y=True, STORE_STATES=False, BLOCK_Q=tiles.q_forward),
             tiles.warps_forward),
            (forward, dict(HAS_INIT=False, WRITE_Y=False, STORE_STATES=True, BLOCK_Q=tiles.q_backward),
             tiles.warps_backward),
            (backward, dict(HAS_DFINAL=True, BLOCK_Q=tiles.q_backward), tiles.warps_backward)]:
        pointers = {n for n in kernel.arg_names if n.endswith("_ptr")}
        ptx = sm90_ptx(kernel, {**sizes, **constexprs}, pointers, num_warps=warps, fp32=frozenset(pointers - bf16))
        assert "mma" in ptx, kernel.fn.__name__


def test_our_triton_scan_is_opt_in_until_its_gpu_parity_is_shown():
    backend = K.registry.get_backend("ssd_scan", "triton")
    assert backend.auto is ssd.TRITON_BY_DEFAULT is False
    assert "state of 256 x 128" in ssd._triton_accepts(device="cuda", dtype=torch.bfloat16, headdim=256, dstate=128)
    assert ssd._triton_accepts(device="cuda", dtype=torch.bfloat16, headdim=64, dstate=128) is None


# ---------------------------------------------------------------- GPU ---------------------------------------
GPU_CASES = [(2, 512, 8, 64, 1, 64, 128), (1, 300, 4, 32, 2, 128, 64)]
GPU_IDS = [shape_id(B=c[0], L=c[1], H=c[2], P=c[3], G=c[4], N=c[5], Q=c[6]) for c in GPU_CASES]


@pytest.mark.gpu
@pytest.mark.parametrize("b,l,h,p,g,n,chunk", GPU_CASES, ids=GPU_IDS)
@pytest.mark.parametrize("backend", ["mamba_ssm", "triton", "torch_chunked"])
def test_gpu_backends_match_reference_bf16(backend, b, l, h, p, g, n, chunk):
    if backend != "torch_chunked":
        ok, why = K.registry.get_backend("ssd_scan", backend).available()
        if not ok:
            pytest.skip(why)
    inputs = make_inputs(b, l, h, p, g, n, dtype=torch.bfloat16, device="cuda")
    got = run_with_grads(scan(backend, chunk), inputs)
    # the float32 sequential oracle is slow for long l: it is still the oracle, run on the GPU
    want = run_with_grads(scan("reference", chunk), inputs, upcast=True)
    assert got[0][0].dtype == torch.bfloat16
    assert_same_call(got, want, torch.bfloat16, tol=REL_TOL[torch.bfloat16], grad_tol=3e-2)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
@pytest.mark.parametrize("options", [dict(), dict(init=False, z=False, D="hp")], ids=["all", "noinit-noz-Dhp"])
def test_gpu_our_scan_matches_reference(dtype, options):
    """Ours in float32 (TF32 matmuls) and float16, at the 100M trial's head (p 64, n 128: two backward column
    blocks), 3 heads a group, a length that ends mid-chunk."""
    ok, why = K.registry.get_backend("ssd_scan", "triton").available()
    if not ok:
        pytest.skip(why)
    inputs = make_inputs(2, 333, 6, 64, 2, 128, dtype=dtype, device="cuda", **options)
    got = run_with_grads(scan("triton", 256), inputs)
    want = run_with_grads(scan("reference", 256), inputs, upcast=True)
    assert got[0][0].dtype == dtype
    tol = REL_TOL_GPU_FP32 if dtype == torch.float32 else REL_TOL[dtype]
    assert_same_call(got, want, dtype, tol=tol, grad_tol=2 * tol)


@pytest.mark.gpu
@pytest.mark.parametrize("options", [dict(), dict(init=False, z=False, D="hp")], ids=["all", "noinit-noz-Dhp"])
def test_gpu_ops_match_mamba_ssms_own_function(options):
    """Our opaque ops (kernels/ssd_mamba_op.py) call mamba-ssm's forward and backward: the same numbers as
    mamba-ssm's own autograd.Function, final states and every gradient included."""
    ok, why = K.registry.get_backend("ssd_scan", "mamba_ssm").available()
    if not ok:
        pytest.skip(why)
    from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined

    inputs = make_inputs(2, 300, 8, 64, 2, 64, dtype=torch.bfloat16, device="cuda", **options)

    def theirs(**kw):
        return mamba_chunk_scan_combined(chunk_size=64, dt_softplus=True, return_final_states=True, **kw)

    got = run_with_grads(scan("mamba_ssm", 64), inputs)
    want = run_with_grads(theirs, inputs)
    assert_same_call(got, want, torch.bfloat16, tol=1e-3, grad_tol=1e-3)
