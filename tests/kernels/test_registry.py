"""The backend registry: priority, refusal fallback with a logged reason, overrides, errors, records, reports."""

import logging
import subprocess
import sys

import pytest
import torch

import archsearch.kernels as K
from archsearch.kernels import registry

CALLS = []


@pytest.fixture
def toy_op():
    """A throwaway op with four backends: best (unavailable), picky (refuses odd n), plain, oracle (forced only)."""
    name = "toy_op"
    registry.register_op(name, "toy", lambda: dict(device="cpu", n=2))

    def make(tag):
        return lambda n: CALLS.append(tag) or tag

    registry.register_backend(name, "best", 100, make("best"), probe=lambda: (False, "best_pkg not installed"))
    registry.register_backend(name, "picky", 80, make("picky"),
                              accepts=lambda **info: f"n={info['n']} is odd" if info.get("n", 0) % 2 else None)
    registry.register_backend(name, "plain", 50, make("plain"))
    registry.register_backend(name, "oracle", 0, make("oracle"), auto=False)
    registry._logged.clear()
    registry._choice_cache.clear()
    CALLS.clear()
    yield name
    registry._OPS.pop(name)
    registry._choice_cache.clear()
    registry._used.pop(name, None)
    registry._scope.pop(name, None)


def test_priority_then_refusal_fallback_with_logged_reason(toy_op, caplog):
    caplog.set_level(logging.INFO, logger="archsearch.kernels")
    assert registry.run(toy_op, dict(n=2), n=2) == "picky"
    assert registry.run(toy_op, dict(n=3), n=3) == "plain"
    assert registry.run(toy_op, dict(n=5), n=5) == "plain"
    messages = [r.getMessage() for r in caplog.records if r.name == "archsearch.kernels"]
    assert any("using backend picky" in m and "best: unavailable (best_pkg not installed)" in m for m in messages)
    assert any("using backend plain" in m and "picky: refuses (n=3 is odd)" in m for m in messages)
    assert len([m for m in messages if "using backend plain" in m]) == 2  # once per distinct reason (n=3, n=5)
    registry.run(toy_op, dict(n=3), n=3)  # same call again: not logged again
    messages = [r.getMessage() for r in caplog.records if r.name == "archsearch.kernels"]
    assert len([m for m in messages if "using backend plain" in m]) == 2
    assert CALLS == ["picky", "plain", "plain", "plain"]


def test_oracle_never_auto_chosen_but_can_be_forced(toy_op):
    with K.force_backend(toy_op, "oracle"):
        assert registry.run(toy_op, dict(n=2), n=2) == "oracle"
    assert registry.run(toy_op, dict(n=2), n=2) == "picky"


def test_env_override_and_force_wins_over_env(toy_op, monkeypatch):
    monkeypatch.setenv("ARCHSEARCH_BACKEND_TOY_OP", "plain")
    assert registry.run(toy_op, dict(n=2), n=2) == "plain"
    with K.force_backend(toy_op, "oracle"):
        assert registry.run(toy_op, dict(n=2), n=2) == "oracle"
    monkeypatch.delenv("ARCHSEARCH_BACKEND_TOY_OP")
    assert registry.run(toy_op, dict(n=2), n=2) == "picky"


def test_forced_unavailable_error_names_op_backend_reason_and_alternatives(toy_op, monkeypatch):
    monkeypatch.setenv("ARCHSEARCH_BACKEND_TOY_OP", "best")
    with pytest.raises(K.BackendError) as err:
        K.check(toy_op, n=3)
    msg = str(err.value)
    for needle in ["'toy_op'", "'best'", "$ARCHSEARCH_BACKEND_TOY_OP", "best_pkg not installed",
                   "picky (refuses: n=3 is odd)", "plain (ok)"]:
        assert needle in msg, (needle, msg)
    assert CALLS == []  # check() runs nothing


def test_forced_refusing_and_unknown_backends(toy_op, monkeypatch):
    with K.force_backend(toy_op, "picky"):
        with pytest.raises(K.BackendError, match=r"'picky' forced by force_backend\(\) refuses.*n=3 is odd"):
            K.check(toy_op, n=3)
    with pytest.raises(K.BackendError, match="unknown backend 'nope'.*best, oracle, picky, plain"):
        with K.force_backend(toy_op, "nope"):
            pass
    monkeypatch.setenv("ARCHSEARCH_BACKEND_TOY_OP", "nope")
    with pytest.raises(K.BackendError, match="'nope' forced by .ARCHSEARCH_BACKEND_TOY_OP does not exist"):
        K.check(toy_op, n=2)


def test_probe_that_raises_reads_as_unavailable(toy_op):
    def broken():
        raise OSError("libcudart.so.12: cannot open shared object file")

    registry.register_backend(toy_op, "broken", 200, lambda n: "broken", probe=broken)
    ok, why = registry.get_backend(toy_op, "broken").available()
    assert not ok and "OSError" in why and "libcudart" in why
    assert registry.run(toy_op, dict(n=2), n=2) == "picky"


def test_real_op_forced_unavailable_fails_before_allocating(monkeypatch):
    """A builder asks check() with call info only; the forced Triton conv is refused on a CPU machine."""
    monkeypatch.setenv("ARCHSEARCH_BACKEND_CAUSAL_CONV1D", "triton")
    with pytest.raises(K.BackendError) as err:
        K.check("causal_conv1d", device="cpu", dtype=torch.float32, width=4)
    msg = str(err.value)
    assert "'causal_conv1d'" in msg and "'triton'" in msg and "torch (ok)" in msg
    monkeypatch.setenv("ARCHSEARCH_BACKEND_CAUSAL_CONV1D", "torch")
    assert K.check("causal_conv1d", device="cpu", dtype=torch.float32, width=4).name == "torch"


def test_backends_used_records_what_ran_and_resets():
    K.reset_backends_used()
    assert K.backends_used() == {}
    x = torch.randn(1, 4, 8)
    K.causal_conv1d(x, torch.randn(4, 4))
    with K.force_backend("causal_conv1d", "reference"):
        K.causal_conv1d(x, torch.randn(4, 4))
    q = torch.randn(1, 2, 4, 16)
    K.attention(q, q, q, softcap=10.0)
    used = K.backends_used()
    assert used["causal_conv1d"] == "reference"  # the last one that ran
    assert used["attention"] in ("flex", "naive")
    used["attention"] = "tampered"
    assert K.backends_used()["attention"] != "tampered"  # a copy
    K.reset_backends_used()
    assert K.backends_used() == {}


def test_describe_and_report_cover_every_op_and_backend():
    info = K.describe()
    assert set(info) == {"ssd_scan", "causal_conv1d", "attention", "gated_rmsnorm", "ssm_state_update",
                         "conv_state_update", "mamba_mixer"}
    report = K.format_report()
    for op, entry in info.items():
        assert entry["chosen"] is not None, (op, entry["error"])
        assert op in report
        for row in entry["backends"]:
            assert row["name"] in report and isinstance(row["available"], bool) and row["reason"]
    if not torch.cuda.is_available():
        assert info["ssd_scan"]["chosen"] == "torch_chunked"
        assert info["causal_conv1d"]["chosen"] == "torch"


def test_import_pulls_in_no_fused_package():
    # torch's own compiler (torch._dynamo, which the registry's torch.compiler decorator loads) imports triton when
    # it is installed: only what our import adds beyond that counts
    code = ("import sys; fused = lambda: {m for m in sys.modules if m.split('.')[0] in "
            "('triton', 'mamba_ssm', 'causal_conv1d', 'flash_attn', 'transformer_engine', 'selective_scan_cuda')}; "
            "import torch._dynamo; torchs = fused(); "
            "import archsearch.kernels as K; K.format_report(); print(sorted(fused() - torchs))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    if torch.cuda.is_available():
        pytest.skip("with CUDA, format_report() probes (and may import) the fused packages by design")
    assert out == "[]"
