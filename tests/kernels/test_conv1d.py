"""Causal depthwise conv1d: backends against the float32 reference (outputs, final states, all gradients)."""

import importlib.util
import os
import subprocess
import sys

import pytest
import torch

import archsearch.kernels as K
from kernels_testlib import REL_TOL_GPU_FP32, assert_close, assert_same_call, run_with_grads, shape_id, sm90_source


def make_inputs(b, d, l, k, *, bias=True, init=False, dtype=torch.float32, device="cpu", seed=0):
    gen = torch.Generator().manual_seed(seed)

    def rnd(*shape):
        return torch.randn(*shape, generator=gen).to(device=device, dtype=dtype)

    return dict(x=rnd(b, d, l), weight=rnd(d, k), bias=rnd(d) if bias else None,
                initial_states=rnd(b, d, k - 1) if init else None)


def conv(backend, activation):
    def call(**inputs):
        with K.force_backend("causal_conv1d", backend):
            return K.causal_conv1d(activation=activation, return_final_states=True, **inputs)

    return call


def independent_conv(x, weight, bias, activation, initial_states):
    """A second oracle, written differently: an explicit sum over output positions in float64."""
    b, d, l = x.shape
    k = weight.shape[1]
    head = initial_states if initial_states is not None else torch.zeros(b, d, k - 1, dtype=x.dtype)
    xfull = torch.cat([head, x], -1).double()
    y = torch.stack([(xfull[..., t : t + k] * weight.double()).sum(-1) for t in range(l)], -1)
    if bias is not None:
        y = y + bias.double()[:, None]
    return torch.nn.functional.silu(y) if activation == "silu" else y


CASES = [(2, 8, 33, 4, True, True), (1, 5, 7, 2, False, True), (2, 6, 16, 3, True, False), (1, 4, 2, 4, True, True),
         (1, 3, 9, 1, True, False)]
IDS = [shape_id(B=c[0], D=c[1], L=c[2], K=c[3]) + ("-bias" if c[4] else "") + ("-init" if c[5] else "") for c in CASES]


@pytest.mark.parametrize("activation", [None, "silu"])
@pytest.mark.parametrize("b,d,l,k,bias,init", CASES, ids=IDS)
def test_reference_matches_independent_oracle(b, d, l, k, bias, init, activation):
    inputs = make_inputs(b, d, l, k, bias=bias, init=init)
    y, final = K.causal_conv1d_reference(activation=activation, return_final_states=True, **inputs)
    assert_close(y, independent_conv(activation=activation, **inputs), torch.float32, "y")
    head = inputs["initial_states"] if init else torch.zeros(b, d, k - 1)
    assert torch.equal(final, torch.cat([head, inputs["x"]], -1)[..., l:])


@pytest.mark.parametrize("activation", [None, "silu"])
@pytest.mark.parametrize("b,d,l,k,bias,init", CASES, ids=IDS)
def test_torch_backend_matches_reference_fp32(b, d, l, k, bias, init, activation):
    inputs = make_inputs(b, d, l, k, bias=bias, init=init)
    assert_same_call(run_with_grads(conv("torch", activation), inputs),
                     run_with_grads(conv("reference", activation), inputs), torch.float32)


def test_torch_backend_matches_reference_bf16():
    inputs = make_inputs(2, 16, 40, 4, init=True, dtype=torch.bfloat16)
    got = run_with_grads(conv("torch", "silu"), inputs)
    want = run_with_grads(conv("reference", "silu"), inputs, upcast=True)
    assert got[0][0].dtype == torch.bfloat16
    assert_same_call(got, want, torch.bfloat16)


def test_triton_backend_refuses_cpu_and_names_why():
    with pytest.raises(K.BackendError, match=r"'causal_conv1d'.*'triton'.*(triton not installed|no CUDA|needs a CUDA)"):
        with K.force_backend("causal_conv1d", "triton"):
            K.causal_conv1d(**make_inputs(1, 4, 8, 4))


@pytest.mark.parametrize(
    "change, needle",
    [(dict(weight=torch.zeros(5, 4)), "weight.shape"), (dict(bias=torch.zeros(3)), "bias.shape"),
     (dict(initial_states=torch.zeros(1, 4, 4)), "initial_states.shape"), (dict(x=torch.zeros(4, 8)), "x.shape")],
    ids=["weight", "bias", "initial_states", "x"],
)
def test_bad_arguments_name_the_argument(change, needle):
    inputs = make_inputs(1, 4, 8, 4)
    inputs.update(change)
    with pytest.raises(K.KernelArgumentError, match=needle):
        K.causal_conv1d(**inputs)
    with pytest.raises(K.KernelArgumentError, match="activation='relu'"):
        K.causal_conv1d(activation="relu", **make_inputs(1, 4, 8, 4))


# ---------------------------------------------------------------- GPU: our Triton kernel ---------------------
GPU_CASES = [(2, 64, 300, 4, True, False), (1, 4352, 1000, 4, True, True), (2, 96, 17, 3, False, True),
             (3, 40, 513, 2, True, True), (1, 33, 5, 4, True, True), (2, 200, 3000, 3, True, True),
             (2, 130, 2100, 4, False, False)]  # L 2000+: many l-blocks
GPU_IDS = [shape_id(B=c[0], D=c[1], L=c[2], K=c[3]) + ("-bias" if c[4] else "") + ("-init" if c[5] else "")
           for c in GPU_CASES]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("activation", [None, "silu"])
@pytest.mark.parametrize("b,d,l,k,bias,init", GPU_CASES, ids=GPU_IDS)
@pytest.mark.parametrize("backend", ["triton", "torch"])
def test_gpu_backends_match_reference(backend, b, d, l, k, bias, init, activation, dtype):
    ok, why = K.registry.get_backend("causal_conv1d", backend).available()
    if not ok:
        pytest.skip(why)
    inputs = make_inputs(b, d, l, k, bias=bias, init=init, dtype=dtype, device="cuda")
    got = run_with_grads(conv(backend, activation), inputs)
    want = run_with_grads(conv("reference", activation), inputs, upcast=True)
    assert got[0][0].dtype == dtype
    # fp32: the kernel accumulates in fp32, so far tighter than bf16; cuDNN's conv may use TF32
    tol = 1e-5 if (dtype == torch.float32 and backend == "triton") else (REL_TOL_GPU_FP32 if dtype == torch.float32 else None)
    assert_same_call(got, want, dtype, tol=tol, grad_tol=tol)


@pytest.mark.gpu
@pytest.mark.parametrize("d,l,init", [(64, 50, False), (300, 777, True)], ids=["d64-L50", "d300-L777-init"])
def test_gpu_triton_handles_strided_input(d, l, init):
    """xBC comes out of a projection as a channel-last view: the kernel takes any strides, and its output and
    input gradient keep that layout (the scan after it and the gradient concatenation before it need it)."""
    def strided(backend):
        def call(xbc, weight, bias, initial_states=None):
            x = xbc[..., 64:64 + d].transpose(1, 2)  # (b, d, l), non-contiguous, stride(1) == 1
            assert not x.is_contiguous() and x.stride(1) == 1
            return conv(backend, "silu")(x=x, weight=weight, bias=bias, initial_states=initial_states)

        return call

    inputs = dict(xbc=torch.randn(2, l, 2 * d + 64, device="cuda", dtype=torch.bfloat16),
                  weight=torch.randn(d, 4, device="cuda"), bias=torch.randn(d, device="cuda"))
    if init:
        inputs["initial_states"] = torch.randn(2, d, 3, device="cuda", dtype=torch.bfloat16)
    got = run_with_grads(strided("triton"), inputs)
    want = run_with_grads(strided("reference"), inputs, upcast=True)
    assert_same_call(got, want, torch.bfloat16)

    # the output gradient channel-last, as Mamba-2's eager backward hands it over, and (b, d, l)-contiguous, as a
    # compiled step may: same values as the reference, the input gradient channel-last either way
    for dy_layout in ("channel-last", "contiguous"):
        grads = {}
        for backend in ("triton", "reference"):
            xbc = inputs["xbc"].clone().requires_grad_()
            x = xbc[..., 64:64 + d].transpose(1, 2)
            y, _ = conv(backend, "silu")(x=x, weight=inputs["weight"], bias=inputs["bias"],
                                         initial_states=inputs.get("initial_states"))
            if backend == "triton":
                assert y.stride(1) == 1, f"output not channel-last: strides {y.stride()}"
            dy = torch.randn(y.shape[0], y.shape[2], y.shape[1], device="cuda",
                             generator=torch.Generator("cuda").manual_seed(7)).to(y.dtype).transpose(1, 2)
            if dy_layout == "contiguous":
                dy = dy.contiguous()
            (grads[backend],) = torch.autograd.grad(y, x, dy)
        assert grads["triton"].stride(1) == 1, f"input gradient not channel-last: strides {grads['triton'].stride()}"
        assert_close(grads["triton"], grads["reference"], torch.bfloat16, f"dx with a {dy_layout} dy")


@pytest.mark.gpu
def test_gpu_looped_dpre_matches_reference_at_every_candidate_tile():
    """Every tile the bench sweeps for the looped dpre kernel, so the one a sweep picks is already checked: a
    channel-last slice and a contiguous x, lengths that end inside a block and inside a program."""
    from archsearch.kernels import triton_conv1d

    ok, why = K.registry.get_backend("causal_conv1d", "triton").available()
    if not ok:
        pytest.skip(why)
    gen = torch.Generator("cuda").manual_seed(3)
    d, l = 300, 777
    xbc = torch.randn(2, l, d + 40, device="cuda", generator=gen).to(torch.bfloat16)
    x_contiguous = torch.randn(2, d, l, device="cuda", generator=gen).to(torch.bfloat16)
    weight, bias = torch.randn(d, 4, device="cuda", generator=gen), torch.randn(d, device="cuda", generator=gen)
    chosen, chosen_walk = triton_conv1d._tiles, triton_conv1d._walk
    triton_conv1d._walk = lambda kern, d_, l_: None  # channel-last x would take the walk kernels
    try:
        for tiles in triton_conv1d.DPRE_LOOPED_CANDIDATES:
            triton_conv1d._tiles = lambda kern, d_, l_, cl_, t=tiles: (
                triton_conv1d.Tiles(*t) if kern == "dpre" else chosen(kern, d_, l_, cl_))
            for layout in ("channel-last", "contiguous"):
                def call(backend, leaf, weight, bias):
                    x = leaf[..., 24:24 + d].transpose(1, 2) if layout == "channel-last" else leaf
                    return conv(backend, "silu")(x=x, weight=weight, bias=bias)

                inputs = dict(leaf=xbc if layout == "channel-last" else x_contiguous, weight=weight, bias=bias)
                got = run_with_grads(lambda **kw: call("triton", **kw), inputs)
                want = run_with_grads(lambda **kw: call("reference", **kw), inputs, upcast=True)
                try:
                    assert_same_call(got, want, torch.bfloat16)
                except AssertionError as err:
                    raise AssertionError(f"tiles {tiles}, x {layout}: {err}") from None
    finally:
        triton_conv1d._tiles, triton_conv1d._walk = chosen, chosen_walk


@pytest.mark.gpu
def test_gpu_walk_kernels_match_reference_at_every_candidate_tile():
    """Every tile the bench sweeps for the walk kernels (channel-last x), so the one a sweep picks is already
    checked, and the compiled kernels at every k with and without SiLU and bias: a length that ends inside a chunk,
    initial states, bf16 and fp32. The output gradient comes (b, d, l)-contiguous and is copied into x's layout;
    the walk backward must have run every time."""
    from archsearch.kernels import triton_conv1d

    ok, why = K.registry.get_backend("causal_conv1d", "triton").available()
    if not ok:
        pytest.skip(why)
    gen = torch.Generator("cuda").manual_seed(5)
    d, l = 600, 777
    chosen, walk_backward = triton_conv1d._walk, triton_conv1d._backward_walk
    backward_calls = []
    triton_conv1d._backward_walk = lambda *args: backward_calls.append(1) or walk_backward(*args)
    first = triton_conv1d.WALK_CANDIDATES[0]
    cases = [(t, 4, torch.bfloat16, "silu", True) for t in triton_conv1d.WALK_CANDIDATES] + [
        (first, 3, torch.bfloat16, "silu", True), (first, 2, torch.float32, "silu", False),
        (first, 1, torch.bfloat16, None, True), (first, 4, torch.float32, None, False)]
    try:
        for tiles, k, dtype, activation, with_bias in cases:
            triton_conv1d._walk = lambda kern, d_, l_, t=tiles: triton_conv1d.Walk(*t)
            inputs = dict(leaf=torch.randn(2, l, d + 40, device="cuda", generator=gen).to(dtype),
                          weight=torch.randn(d, k, device="cuda", generator=gen),
                          bias=torch.randn(d, device="cuda", generator=gen) if with_bias else None,
                          initial_states=torch.randn(2, d, k - 1, device="cuda", generator=gen).to(dtype))

            def call(backend, leaf, **kw):
                return conv(backend, activation)(x=leaf[..., 24:24 + d].transpose(1, 2), **kw)

            calls_before = len(backward_calls)
            got = run_with_grads(lambda **kw: call("triton", **kw), inputs)
            want = run_with_grads(lambda **kw: call("reference", **kw), inputs, upcast=True)
            what = f"walk tiles {tiles}, k {k}, {dtype}, activation {activation}, bias {with_bias}"
            assert len(backward_calls) == calls_before + 1, f"{what}: the walk backward did not run"
            tol = 1e-5 if dtype == torch.float32 else None
            try:
                assert_same_call(got, want, dtype, tol=tol, grad_tol=tol)
            except AssertionError as err:
                raise AssertionError(f"{what}: {err}") from None
    finally:
        triton_conv1d._walk, triton_conv1d._backward_walk = chosen, walk_backward


INTERPRETED = """
import torch
from archsearch.kernels import triton_conv1d
from archsearch.kernels.conv1d import causal_conv1d_reference

chosen, chosen_walk = triton_conv1d._tiles, triton_conv1d._walk


def looped(tiles):  # the dpre pass's tiles forced (four numbers: the looped kernel; three: the per-block one)
    return lambda kern, d_, l_, cl_: triton_conv1d.Tiles(*tiles) if kern == "dpre" else chosen(kern, d_, l_, cl_)


def compare(x_of, leaf0, w, bias, s0, dy, what, silu=True):
    got = {}
    for name in ("triton", "reference"):
        leaf, wl = leaf0.clone().requires_grad_(), w.clone().requires_grad_()
        bl = bias.clone().requires_grad_() if bias is not None else None
        x = x_of(leaf)
        y = (triton_conv1d.causal_conv1d_fn(x, wl, bl, s0, silu) if name == "triton"
             else causal_conv1d_reference(x, wl, bl, "silu" if silu else None, s0))
        y.backward(dy)
        got[name] = (y.detach(), leaf.grad, wl.grad) + ((bl.grad,) if bias is not None else ())
    for grad, a, r in zip(("y", "dx", "dweight", "dbias"), got["triton"], got["reference"]):
        torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-4, msg=f"{grad}, {what}")


b, d, l = 2, 48, 40
triton_conv1d._walk = lambda kern, d_, l_: None  # the tiled kernels first, then the walk kernels below
# k 5 takes the per-block kernel even with looped tiles (one accumulator per tap, up to 4)
for k, init, dy_layout, bias_on, silu in [(4, False, "channel-last", True, True), (4, True, "contiguous", True, True),
                                           (2, True, "channel-last", False, True), (3, True, "contiguous", True, False),
                                           (5, True, "contiguous", True, True)]:
    gen = torch.Generator().manual_seed(k)
    xbc, w = torch.randn(b, l, d + 16, generator=gen), torch.randn(d, k, generator=gen)
    bias = torch.randn(d, generator=gen)
    s0 = torch.randn(b, d, k - 1, generator=gen) if init else None
    dy = torch.randn(b, l, d, generator=gen).transpose(1, 2)  # channel-last, as y
    if dy_layout == "contiguous":
        dy = dy.contiguous()
    for dpre in ("per-block", "looped"):
        triton_conv1d._tiles = looped((16, 16, 4, 2) if dpre == "looped" else (16, 32, 4))
        compare(lambda leaf: leaf[..., 8:8 + d].transpose(1, 2), xbc, w, bias if bias_on else None, s0, dy,
                f"k={k}, init={init}, dy {dy_layout}, silu={silu}, {dpre} dpre", silu)  # x: a slice, as xBC
# a contiguous x whose length spans several looped programs (16-position blocks, 4 blocks a program)
gen = torch.Generator().manual_seed(1)
x, w, bias = torch.randn(1, 20, 150, generator=gen), torch.randn(20, 4, generator=gen), torch.randn(20, generator=gen)
triton_conv1d._tiles = looped((16, 16, 4, 4))
compare(lambda leaf: leaf, x, w, bias, None, torch.randn(1, 20, 150, generator=gen), "contiguous, 3 looped programs")
# the walk kernels (channel-last x and dy, k <= 4): chunks that end inside the length and a chunk past it, one
# program for all channels and several, every k, with and without initial states, bias and SiLU
triton_conv1d._tiles = chosen
for k, init, bias_on, silu, walk in [(4, True, True, True, (16, 16, 1)), (4, False, True, False, (64, 8, 1)),
                                     (3, True, False, True, (32, 16, 1)), (2, False, True, True, (16, 64, 1)),
                                     (1, True, True, True, (16, 16, 1))]:
    triton_conv1d._walk = lambda kern, d_, l_, t=walk: triton_conv1d.Walk(*t)
    gen = torch.Generator().manual_seed(10 + k)
    xbc, w, bias = torch.randn(b, l, d + 16, generator=gen), torch.randn(d, k, generator=gen), torch.randn(d, generator=gen)
    s0 = torch.randn(b, d, k - 1, generator=gen) if init else None
    compare(lambda leaf: leaf[..., 8:8 + d].transpose(1, 2), xbc, w, bias if bias_on else None, s0,
            torch.randn(b, l, d, generator=gen).transpose(1, 2), f"walk {walk}, k={k}, init={init}, silu={silu}", silu)
# rows whose stride is no multiple of 16 (the input projection's are 5,144 wide): the kernels' alignment promise
# (triton_launch.promise_multiple) must take 4 for rows of 60 and 1 for rows of 57, or these offsets go wrong
triton_conv1d._walk = lambda kern, d_, l_: triton_conv1d.Walk(16, 16, 1)
for extra in (12, 9):
    xbc, w = torch.randn(b, l, d + extra, generator=gen), torch.randn(d, 4, generator=gen)
    bias = torch.randn(d, generator=gen)
    compare(lambda leaf: leaf[..., 8:8 + d].transpose(1, 2), xbc, w, bias, torch.randn(b, d, 3, generator=gen),
            torch.randn(b, l, d, generator=gen).transpose(1, 2), f"walk, rows of {d + extra}")
# a dy across x's layout, as a compiled step hands it over: copied into x's layout, then the walk
compare(lambda leaf: leaf[..., 8:8 + d].transpose(1, 2), xbc, w, bias, None,
        torch.randn(b, d, l, generator=gen), "walk, dy (b, d, l)-contiguous")
# the default tables as shipped: the walk kernels for channel-last x, the looped dpre kernel otherwise
triton_conv1d._walk = chosen_walk
assert chosen("dpre", 3584, 2048, True).steps > 0 and chosen("dpre", 3584, 2048, False).steps > 0
assert chosen_walk("fwd", 3584, 2048) is not None and chosen_walk("bwd", 3584, 2048) is not None
xbc, w, bias = torch.randn(b, l, d + 16, generator=gen), torch.randn(d, 4, generator=gen), torch.randn(d, generator=gen)
compare(lambda leaf: leaf[..., 8:8 + d].transpose(1, 2), xbc, w, bias, torch.randn(b, d, 3, generator=gen),
        torch.randn(b, l, d, generator=gen).transpose(1, 2), "default tiles, channel-last")
print("ok")
"""


def _loop_carried(kernel, constexprs: dict) -> set[str]:
    """Names of the variables Triton carries through the kernel's first loop, from its Triton IR (made on the CPU
    for an sm_90 target: no GPU needed). Tensor arguments (the walk kernels' capitalised names but D and L) are
    given as bf16 pointers (the partial sums are fp32 in real calls; the loop's structure does not depend on it),
    the rest int32."""
    import re

    import triton
    from triton._C.libtriton import ir

    pointers = {n for n in kernel.arg_names if n.isupper() and n not in ("D", "L")}
    source, target = sm90_source(kernel, constexprs, pointers)
    backend = triton.compiler.make_backend(target)
    options = backend.parse_options({})
    context = ir.context()
    ir.load_dialects(context)
    backend.load_dialects(context)
    module = source.make_ir(target, options, backend.get_codegen_implementation(options), backend.get_module_map(),
                            context)
    loop = next(line for line in str(module).splitlines() if "scf.for" in line)
    return set(re.findall(r"%([A-Za-z_]\w*?)(?:_\d+)? = %", loop.split("iter_args(", 1)[1]))


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs the triton package")
def test_walk_kernels_carry_every_row_they_shift_through_the_loop():
    """Triton carries a variable through a loop only if the loop leaves it bound to another value than before: a
    shift (g3, g2, g1 = g2, g1, g) whose rows start as one shared zero looks unchanged for g2 and g3, which then stay
    0 in the compiled kernel, though Triton's interpreter gets it right. That is what the first walk backward did on
    the H100 (dx off by 72%, 2026-12-07); this reads the compiled loop's carried variables instead."""
    from archsearch.kernels import triton_conv1d

    flags = dict(K=4, HAS_BIAS=True, HAS_INIT=True, SILU=True, BLOCK_D=256, CHUNK=64, ALIGN=8)
    forward = _loop_carried(triton_conv1d._conv_fwd_walk_kernel, flags)
    assert {"x1", "x2", "x3", "x_next"} <= forward, forward
    backward = _loop_carried(triton_conv1d._conv_bwd_walk_kernel, flags)
    assert {"xa", "xb", "xc", "x_next", "dy_next", "g1", "g2", "g3", "dc0", "dc1", "dc2", "dc3", "db"} <= backward, \
        backward
    for k in (1, 2, 3):  # narrower convs use fewer rows and taps; what they use is carried
        flags.update(K=k, HAS_BIAS=k != 2, SILU=k != 3, HAS_INIT=k != 1)
        forward = _loop_carried(triton_conv1d._conv_fwd_walk_kernel, flags)
        assert {"x1", "x_next"} <= forward, (k, forward)
        backward = _loop_carried(triton_conv1d._conv_bwd_walk_kernel, flags)
        taps = {f"dc{s}" for s in range(k)} | {f"g{s}" for s in range(1, k)}
        assert {"xa", "x_next", "dy_next"} | taps <= backward, (k, backward)


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs the triton package (its interpreter)")
def test_triton_kernels_match_reference_under_the_interpreter():
    """Our Triton kernels themselves (not a GPU stand-in) on the CPU through Triton's interpreter, float32: forward
    and every gradient against the reference, with and without initial states and bias, dy in x's layout and across
    it, both dpre kernels (per-block, and looped where k <= 4) and the walk kernels (channel-last, k <= 4)."""
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, "-c", INTERPRETED], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]
