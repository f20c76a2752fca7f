"""The dispatch hot path (bench/bench_dispatch.py times it): a repeated call asks no backend again and logs
nothing; an op's choice is the one select() makes for the same call info; the fused wrappers split exactly as
`sub_batch` says; the cheap SDPA priority switch leaves the same state as `sdpa_kernel`."""

import logging
import math
import sys
import types

import pytest
import torch

import archsearch.kernels as K
from archsearch.kernels import _batching, _optional, attn, gated_norm, registry, ssd, ssd_mamba_op
from archsearch.kernels.attn_positions import CachePositions


def _ssd():
    b, l, h, p, g, n = 1, 8, 4, 4, 2, 4
    x, dt, B, C = torch.randn(b, l, h, p), torch.rand(b, l, h), torch.randn(b, l, g, n), torch.randn(b, l, g, n)
    A, D, dt_bias = -torch.rand(h), torch.randn(h), torch.randn(h)
    return lambda: K.ssd_chunk_scan(x, dt, A, B, C, 4, D=D, dt_bias=dt_bias, dt_softplus=True)


def _conv1d():
    x, w, bias = torch.randn(1, 6, 8), torch.randn(6, 4), torch.randn(6)
    return lambda: K.causal_conv1d(x, w, bias, "silu")


def _gated_norm():
    x, z, w = torch.randn(2, 3, 8), torch.randn(2, 3, 8), torch.randn(8)
    return lambda: K.gated_rms_norm(x, w, z, 1e-5, group_size=4)


def _attention():
    q, k = torch.randn(1, 4, 3, 16), torch.randn(1, 2, 5, 16)
    return lambda: K.attention(q, k, k, causal=True)


def _attention_positions():
    q, k = torch.randn(1, 4, 1, 16), torch.randn(1, 2, 8, 16)
    positions = CachePositions(torch.tensor([4]), torch.tensor([0, 1, 2, 3, 4, -1, -1, -1]), end_aligned=5)
    return lambda: K.attention(q, k, k, causal=True, positions=positions)


def _ssm_step():
    b, h, p, n, g = 2, 4, 3, 5, 2
    state, x, dt = torch.zeros(b, h, p, n), torch.randn(b, h, p), torch.rand(b, h)
    B, C, A, D = torch.randn(b, g, n), torch.randn(b, g, n), -torch.rand(h), torch.randn(h)
    return lambda: K.ssm_state_update(state, x, dt, A, B, C, D=D, dt_bias=torch.zeros(h), dt_softplus=True)


def _conv_step():
    x, state, w = torch.randn(2, 6), torch.zeros(2, 6, 3), torch.randn(6, 4)
    return lambda: K.conv_state_update(x, state, w, None, "silu")


CASES = dict(ssd=_ssd, conv1d=_conv1d, gated_norm=_gated_norm, attention=_attention,
             attention_positions=_attention_positions, ssm_step=_ssm_step, conv_step=_conv_step)


def _asking(monkeypatch, ops) -> list[tuple[str, dict]]:
    """Wrap the accepts check of every backend of `ops` (the backend author's hook, asked on every selection):
    the returned list receives (op, call info) for each time one is asked."""
    asked: list[tuple[str, dict]] = []
    for op in ops:
        for row in K.describe()[op]["backends"]:
            backend = registry.get_backend(op, row["name"])

            def accepts(_op=op, _fn=backend.accepts_fn, **call_info):
                asked.append((_op, call_info))
                return _fn(**call_info)

            monkeypatch.setattr(backend, "accepts_fn", accepts)
    return asked


def _fresh(used) -> None:
    """Empty the registry's choice cache for these ops (forcing a backend clears it, on entry and on exit)."""
    for op, name in used.items():
        with K.force_backend(op, name):
            pass


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_a_repeated_call_asks_no_backend_and_logs_nothing(case, monkeypatch, caplog):
    """After the first call, the same call is served from the registry's choice: no backend is asked whether it
    accepts the call again and nothing is logged (bench/bench_dispatch.py times this hot path)."""
    call = CASES[case]()
    with K.recording() as used:
        call()
    asked = _asking(monkeypatch, used)
    caplog.set_level(logging.INFO, logger="archsearch.kernels")
    call()
    call()
    assert asked == [] and [r for r in caplog.records if r.name == "archsearch.kernels"] == []
    _fresh(used)
    call()
    assert {op for op, _ in asked} == set(used)  # with the choice forgotten, the backends are asked again


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_select_with_an_ops_call_info_reuses_the_ops_choice(case, monkeypatch):
    """The ops build their call items by hand; unsorted, their choices would miss the entries select()/run()
    make for the same call info (and the reverse), and each would select afresh."""
    call = CASES[case]()
    with K.recording() as used:
        call()
    asked = _asking(monkeypatch, used)
    _fresh(used)
    call()
    infos = dict(asked)  # what each op told the backends about its call
    assert set(infos) == set(used)
    asked.clear()
    for op, info in infos.items():
        assert K.select(op, **info).name == used[op]
    assert asked == []


def test_override_still_read_on_every_call(monkeypatch):
    """The cache key holds the raw variable, so setting it between two identical calls switches backend."""
    call = _conv1d()
    call()
    assert K.backends_used()["causal_conv1d"] == "torch"
    monkeypatch.setenv("ARCHSEARCH_BACKEND_CAUSAL_CONV1D", "reference")
    call()
    assert K.backends_used()["causal_conv1d"] == "reference"
    monkeypatch.delenv("ARCHSEARCH_BACKEND_CAUSAL_CONV1D")
    call()
    assert K.backends_used()["causal_conv1d"] == "torch"


# ---------------------------------------------------------------- fused wrappers with a fake package --------
class _FakeKernel:
    """Stands in for a fused entry point on meta tensors: records the batch of each call."""

    def __init__(self, out_of):
        self.batches, self.out_of = [], out_of

    def __call__(self, *args, **kwargs):
        x = args[0] if args else kwargs["x"]
        self.batches.append(x.shape[0])
        return self.out_of(x)


def _fake_mamba(monkeypatch, name, **entry_points):
    module = type("FakeModule", (), entry_points)
    monkeypatch.setattr(_optional, "import_mamba", lambda wanted: (module, "fake") if wanted == name else (None, "-"))


@pytest.mark.parametrize(
    "b, l, h, p, g, n, parent",
    [(2, 64, 4, 8, 1, 16, 0), (194, 8192, 64, 64, 8, 128, 0), (3, 2048, 32, 64, 8, 128, 2**30)],
    ids=["B2-L64-fits", "B194-L8192-split", "B3-L2048-view-split"],
)
def test_ssd_wrapper_splits_exactly_as_sub_batch(monkeypatch, b, l, h, p, g, n, parent):
    """ssd_scan_mamba_ssm reads the strides itself (no loop); its split must equal the generic sub_batch's, column
    views of a wide parent (`parent` elements per sequence) included."""
    kernel = _FakeKernel(lambda x: torch.empty(x.shape, device="meta"))
    _fake_mamba(monkeypatch, ssd._MAMBA_MODULE)  # found, so the backend runs; the scan itself is the fake kernel
    monkeypatch.setattr(ssd_mamba_op, "mamba_chunk_scan_combined", kernel)
    wide = torch.empty(b, max(parent, 1), device="meta")
    x = torch.empty(b, l, h, p, device="meta")
    dt = wide[:, : l * h].view(b, l, h) if parent else torch.empty(b, l, h, device="meta")
    B, C = torch.empty(b, l, g, n, device="meta"), torch.empty(b, l, g, n, device="meta")
    A = torch.empty(h, device="meta")
    step = _batching.sub_batch(b, ssd.scan_elements_per_sequence(x, B, 64), _batching.INT32_ELEMENTS, x, dt, B, C)
    with torch.no_grad():
        y = ssd.ssd_scan_mamba_ssm(x, dt, A, B, C, 64)
    assert y.shape == x.shape
    assert kernel.batches == [min(step, b - i) for i in range(0, b, step)]
    assert (len(kernel.batches) > 1) == (b > 2)


@pytest.mark.parametrize("shape", [(4, 16, 32), (70000, 16384, 2), (8, 32)], ids=["fits", "split", "2d"])
def test_gated_norm_wrapper_splits_rows_as_before(monkeypatch, shape):
    """Rows per call from math.prod(shape[1:]) (was x[0].numel(), which built a view on every call)."""
    kernel = _FakeKernel(lambda x: torch.empty(x.shape, device="meta"))
    _fake_mamba(monkeypatch, gated_norm._MAMBA_MODULE, rmsnorm_fn=staticmethod(kernel))
    x = torch.empty(*shape, device="meta")
    step = _batching.sub_batch(shape[0], math.prod(shape[1:]), _batching.INT32_ELEMENTS, x)
    with torch.no_grad():
        y = gated_norm.gated_rms_norm_mamba_ssm(x, torch.empty(shape[-1], device="meta"), x)
    assert y.shape == x.shape
    assert kernel.batches == [min(step, shape[0] - i) for i in range(0, shape[0], step)]


def test_optional_module_lookups_trace_without_a_graph_break(tmp_path, monkeypatch):
    # the fused backends look their module up inside compiled models; dynamo traced functools.cache's body
    # (importlib, which it cannot trace): one graph break per fused call in the 100M trial's step on the H200.
    # A stand-in mamba_ssm package and triton taken as usable, so the lookup goes all the way on this CPU.
    package = tmp_path / "mamba_ssm" / "ops" / "triton"
    package.mkdir(parents=True)
    for folder in (tmp_path / "mamba_ssm", tmp_path / "mamba_ssm" / "ops", package):
        (folder / "__init__.py").write_text("")
    (package / "ssd_combined.py").write_text("SCALE = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(sys.modules, "selective_scan_cuda", types.ModuleType("selective_scan_cuda"))
    monkeypatch.setattr(_optional, "triton_status", lambda: (True, "triton (taken as usable)"))
    monkeypatch.setattr(_optional, "_MAMBA_MODULES", {})
    name = "mamba_ssm.ops.triton.ssd_combined"
    try:
        _optional.import_module("json")  # the registry's probes import before any backend runs
        assert _optional.import_mamba(name)[0].SCALE == 3

        def lookups(x):
            module, _ = _optional.import_module("json")
            mamba, _ = _optional.import_mamba(name)
            return x * len(module.__name__) + mamba.SCALE

        x = torch.ones(2)
        torch._dynamo.reset()
        assert torch.equal(torch.compile(lookups, fullgraph=True, backend="eager")(x), torch.full((2,), 7.0))
    finally:
        for loaded in [m for m in sys.modules if m == "mamba_ssm" or m.startswith("mamba_ssm.")]:
            del sys.modules[loaded]
