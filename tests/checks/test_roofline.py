"""Roofline projection: hand-checked bytes per decode step, and the hybrid-vs-transformer direction."""

import pytest

from archsearch.checks import CheckSettings, MemoryModel, load_catalog
from archsearch.checks.roofline import _mean_kept, project
from archsearch.spec import count_parameters


def test_mean_kept():
    assert _mean_kept(10, 20, None) == 15
    assert _mean_kept(10, 20, 5) == 5
    assert _mean_kept(1, 4, 2) == pytest.approx((1 + 2 + 2 + 2) / 4)


def test_decode_bytes_by_hand(tiny):
    model = MemoryModel(tiny, CheckSettings(param_dtype="bf16"))
    device = load_catalog().get("h100")
    p = project(tiny, device, model, input_len=100, output_len=101, batch=2)
    weights = count_parameters(tiny).total * 2  # tied: the table is the LM head and is read
    kv = 2 * 2 * 8 * 2 * 150 + 2 * 1 * 8 * 2 * 64  # mean context 150; the window keeps 64
    states = 2 * (2 * 8 * 4 * 4 + (16 + 8) * 3 * 2)
    assert p.decode_bytes_per_step == weights + 2 * (kv + states)
    assert p.decode_bound == "memory"
    assert p.decode_tokens_per_s == pytest.approx(2 * device.bandwidth_bytes_per_s / p.decode_bytes_per_step)


def test_hybrid_outruns_transformer_on_long_outputs(nemotron_9b, qwen3_8b):
    device = load_catalog().get("h100")
    rates = {}
    for spec in (nemotron_9b, qwen3_8b):
        model = MemoryModel(spec, CheckSettings())
        rates[spec.name] = project(spec, device, model, 8192, 16384, batch=8).decode_tokens_per_s
    assert rates["nemotron-nano-9b-v2"] > 1.5 * rates["qwen3-8b"]


def test_fp8_needs_fp8_tensor_cores(tiny):
    from archsearch.errors import UserError

    model = MemoryModel(tiny, CheckSettings())
    with pytest.raises(UserError, match="no FP8 tensor cores"):
        project(tiny, load_catalog().get("a10g"), model, 10, 10, 1, compute_dtype="float8")
    assert project(tiny, load_catalog().get("h100"), model, 10, 10, 1, compute_dtype="float8").prefill_seconds > 0
