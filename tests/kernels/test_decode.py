"""One-token decode updates: stepping token by token equals the full scan / conv, outputs and states."""

import pytest
import torch

import archsearch.kernels as K
from kernels_testlib import assert_close, shape_id
from test_ssd import make_inputs as ssd_inputs


def step_through_scan(backend, inputs, dt_limit=(0.0, float("inf")), state_dtype=torch.float32):
    state = inputs["initial_states"].clone().to(state_dtype)
    ys = []
    with K.force_backend("ssm_state_update", backend):
        for t in range(inputs["x"].shape[1]):
            ys.append(K.ssm_state_update(
                state, inputs["x"][:, t], inputs["dt"][:, t], inputs["A"], inputs["B"][:, t], inputs["C"][:, t],
                D=inputs["D"], z=None if inputs["z"] is None else inputs["z"][:, t], dt_bias=inputs["dt_bias"],
                dt_softplus=True, dt_limit=dt_limit))
    return torch.stack(ys, 1), state


SSM_CASES = [(2, 12, 4, 8, 2, 16, "h"), (1, 9, 6, 4, 3, 8, "hp"), (2, 5, 2, 4, 1, 8, None)]
SSM_IDS = [shape_id(B=c[0], L=c[1], H=c[2], P=c[3], G=c[4], N=c[5]) + f"-D{c[6]}" for c in SSM_CASES]


@pytest.mark.parametrize("b,l,h,p,g,n,D", SSM_CASES, ids=SSM_IDS)
@pytest.mark.parametrize("dt_limit", [(0.0, float("inf")), (0.05, 0.4)], ids=["nolimit", "limit"])
def test_ssm_steps_equal_scan(b, l, h, p, g, n, D, dt_limit):
    inputs = ssd_inputs(b, l, h, p, g, n, D=D)
    y_scan, f_scan = K.ssd_scan_reference(**inputs, dt_softplus=True, dt_limit=dt_limit, return_final_states=True)
    y_step, f_step = step_through_scan("torch", inputs, dt_limit)
    assert_close(y_step, y_scan, torch.float32, "y")
    assert_close(f_step, f_scan, torch.float32, "state")


def test_ssm_state_update_names_bad_state():
    inputs = ssd_inputs(1, 3, 2, 4, 1, 8)
    with pytest.raises(K.KernelArgumentError, match="x.shape"):
        K.ssm_state_update(torch.zeros(1, 2, 4, 8), inputs["x"][:, 0, :1], inputs["dt"][:, 0], inputs["A"],
                           inputs["B"][:, 0], inputs["C"][:, 0])


CONV_CASES = [(2, 6, 10, 4), (1, 3, 5, 2), (2, 4, 7, 3)]
CONV_IDS = [shape_id(B=c[0], D=c[1], L=c[2], K=c[3]) for c in CONV_CASES]


def step_through_conv(backend, x, weight, bias, activation, state):
    ys = []
    with K.force_backend("conv_state_update", backend):
        for t in range(x.shape[-1]):
            ys.append(K.conv_state_update(x[..., t], state, weight, bias, activation))
    return torch.stack(ys, -1)


@pytest.mark.parametrize("state_len", ["k-1", "k"])
@pytest.mark.parametrize("b,d,l,k", CONV_CASES, ids=CONV_IDS)
def test_conv_steps_equal_conv(b, d, l, k, state_len):
    gen = torch.Generator().manual_seed(1)
    x, weight, bias = torch.randn(b, d, l, generator=gen), torch.randn(d, k, generator=gen), torch.randn(d, generator=gen)
    init = torch.randn(b, d, k - 1, generator=gen)
    y_full, final = K.causal_conv1d_reference(x, weight, bias, "silu", init, return_final_states=True)
    # a state of length k keeps one extra (oldest) column, which never reaches the output
    state = init.clone() if state_len == "k-1" else torch.cat([torch.randn(b, d, 1, generator=gen), init], -1)
    y_step = step_through_conv("torch", x, weight, bias, "silu", state)
    assert_close(y_step, y_full, torch.float32, "y")
    assert torch.equal(state[..., -(k - 1):], final)


# ---------------------------------------------------------------- GPU ---------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("b,h,p,g,n", [(2, 8, 64, 1, 128), (3, 6, 32, 3, 64)], ids=["B2-H8-P64-G1-N128", "B3-H6-P32-G3-N64"])
def test_gpu_mamba_state_update_matches_ours(b, h, p, g, n, dtype):
    ok, why = K.registry.get_backend("ssm_state_update", "mamba_ssm").available()
    if not ok:
        pytest.skip(why)
    inputs = ssd_inputs(b, 20, h, p, g, n, D="h", dtype=dtype, device="cuda")
    y_m, s_m = step_through_scan("mamba_ssm", inputs)
    y_t, s_t = step_through_scan("torch", inputs)
    y_scan, f_scan = K.ssd_scan_reference(**inputs, dt_softplus=True, return_final_states=True)
    tol = 1e-4 if dtype == torch.float32 else None
    assert_close(y_m, y_t, dtype, "y (mamba vs ours)", tol)
    assert_close(s_m, s_t, dtype, "state (mamba vs ours)", tol)
    assert_close(y_m, y_scan, dtype, "y (mamba vs scan)", tol)
    assert_close(s_m, f_scan, dtype, "state (mamba vs scan)", tol)
