"""mamba-ssm's scan as opaque custom ops: the wrapping (saved tensors, gradient order, None handling, fake shapes,
one graph under torch.compile) checked on CPU with a torch stand-in for mamba-ssm's forward and backward
functions; the GPU parity tests of test_ssd.py run the real Triton kernels through the same ops."""

import types

import pytest
import torch
import torch.nn.functional as F

from archsearch.kernels import ssd, ssd_mamba_op
from kernels_testlib import assert_same_call, compiled_call_targets, run_with_grads
from test_ssd import make_inputs, scan


def _scan(x, dt, A, B, C, chunk_size, D, z, dt_bias, initial_states, dt_softplus, dt_limit):
    return ssd.ssd_scan_torch_chunked(x, dt, A, B, C, chunk_size, D=D, z=z, dt_bias=dt_bias,
                                      initial_states=initial_states, dt_softplus=dt_softplus, dt_limit=dt_limit,
                                      return_final_states=True)


def _stand_in_forward(x, dt, A, B, C, chunk_size, D=None, z=None, dt_bias=None, initial_states=None,
                      dt_softplus=False, dt_limit=(0.0, float("inf"))):
    """mamba-ssm's `_mamba_chunk_scan_combined_fwd` contract: out, out before the gate (None without z), the
    effective dt, dA_cumsum, chunk states and float32 final states (the op uses out, out_x and final states)."""
    out_x, final = _scan(x, dt, A, B, C, chunk_size, D, None, dt_bias, initial_states, dt_softplus, dt_limit)
    out = out_x if z is None else (out_x.float() * F.silu(z.float())).to(x.dtype)
    return out, None if z is None else out_x, None, None, None, final


def _stand_in_backward(dout, x, dt, A, B, C, out, chunk_size, D=None, z=None, dt_bias=None, initial_states=None,
                       dfinal_states=None, dt_softplus=False, dt_limit=(0.0, float("inf"))):
    """mamba-ssm's `_mamba_chunk_scan_combined_bwd`: recomputes, so here autograd through the torch scan. It
    also checks that the op saved what mamba-ssm's backward reads: y before the gate when there is a z."""
    expected_out = _stand_in_forward(x, dt, A, B, C, chunk_size, D, z, dt_bias, initial_states, dt_softplus,
                                     dt_limit)[0 if z is None else 1]
    torch.testing.assert_close(out, expected_out)
    inputs = [x, dt, A, B, C, D, z, dt_bias, initial_states]
    present = [i for i, t in enumerate(inputs) if t is not None]

    def scan_of_present(*tensors):  # torch.func: a custom op's body runs below autograd, so no .backward()
        args = list(inputs)
        for i, t in zip(present, tensors):
            args[i] = t
        return _scan(*args[:5], chunk_size, *args[5:], dt_softplus, dt_limit)

    (y, final), vjp = torch.func.vjp(scan_of_present, *(inputs[i] for i in present))
    dfinal = torch.zeros_like(final) if dfinal_states is None else dfinal_states
    grads = iter(vjp((dout, dfinal)))
    return tuple(None if t is None else next(grads) for t in inputs)


@pytest.fixture
def stand_in(monkeypatch):
    module = types.SimpleNamespace(_mamba_chunk_scan_combined_fwd=_stand_in_forward,
                                   _mamba_chunk_scan_combined_bwd=_stand_in_backward)
    monkeypatch.setattr(ssd_mamba_op, "mamba_module", lambda: module)
    return module


def _through_ops(chunk, compiled=False):
    def call(**inputs):
        return ssd_mamba_op.mamba_chunk_scan_combined(chunk_size=chunk, dt_softplus=True, return_final_states=True,
                                                      **inputs)

    return torch.compile(call, backend="aot_eager", fullgraph=True) if compiled else call


CASES = [dict(), dict(D="hp"), dict(init=False, z=False), dict(D=None, dt_bias=False)]


@pytest.mark.parametrize("options", CASES, ids=lambda o: "-".join(f"{k}{v}" for k, v in o.items()) or "all")
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_ops_give_the_scans_outputs_final_states_and_every_gradient(stand_in, options, compiled):
    torch._dynamo.reset()
    inputs = make_inputs(2, 40, 4, 8, 2, 16, **options)
    got = run_with_grads(_through_ops(16, compiled), inputs)
    want = run_with_grads(scan("torch_chunked", 16), inputs)
    assert_same_call(got, want, torch.float32)


def test_compiled_scan_is_one_graph_with_the_ops_inside(stand_in):
    """fullgraph=True raises at any graph break; the ops appear in the graph as single calls."""
    def step(**kw):
        y, final = ssd_mamba_op.mamba_chunk_scan_combined(chunk_size=16, dt_softplus=True, return_final_states=True,
                                                          **kw)
        return y.relu().sum() + final.sum()

    graphs = compiled_call_targets(step, **make_inputs(1, 32, 4, 8, 2, 16))
    assert len(graphs) == 1
    assert sum("mamba_ssd_forward" in t for t in graphs[0]) == 1, graphs[0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_opcheck_fake_shapes_and_autograd_registration(stand_in, dtype):
    """The fake implementation's shapes, dtypes (final states stay float32) and strides match the real one."""
    inputs = make_inputs(2, 24, 4, 8, 2, 16, dtype=dtype)
    for name in ("x", "dt", "B", "C", "z", "initial_states", "D", "dt_bias"):
        inputs[name].requires_grad_(True)
    args = (inputs["x"], inputs["dt"], inputs["A"], inputs["B"], inputs["C"], 16, inputs["D"], inputs["z"],
            inputs["dt_bias"], inputs["initial_states"], True, 0.0, float("inf"))
    torch.library.opcheck(ssd_mamba_op.mamba_ssd_forward, args)


def test_unavailable_mamba_names_the_reason(monkeypatch):
    from archsearch.kernels import _optional

    monkeypatch.setattr(_optional, "import_mamba", lambda name: (None, "mamba_ssm not installed"))
    with pytest.raises(RuntimeError, match="mamba_ssm not installed"):
        ssd_mamba_op.mamba_module()
