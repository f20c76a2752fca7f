"""check_budget: the Done-when verdicts on public configs, hand-computed figures on tiny specs, monotonicity, fit."""

import pytest

from archsearch.checks import CheckSettings, MemoryModel, check_budget, load_catalog
from archsearch.checks.devices import GIB
from archsearch.errors import UserError
from archsearch.spec import count_parameters, loads_spec

K128 = 128 * 1024


def test_a10g_budget_is_the_nemotron_one():
    device = load_catalog().get("A10G")
    assert device.usable_bytes == 22 * GIB
    policy = device.budget
    assert policy.budget_bytes(device.usable_bytes) == int(22 * GIB * 0.95 - 1.3 * GIB)


def test_nemotron_nano_9b_fits_a10g_at_128k(nemotron_9b):
    report = check_budget(nemotron_9b, "a10g", "128k", 1, CheckSettings(param_dtype="bf16"))
    assert report.fits, report.to_dict()
    b = report.breakdown.components
    assert b["weights"] == count_parameters(nemotron_9b).total * 2
    # 4 attention layers x 8 kv heads x 128 x 2 (k, v) x 131072 tokens x 2 bytes
    assert b["kv_cache"] == 4 * 8 * 128 * 2 * K128 * 2
    # 27 Mamba-2 layers x 128 heads x 80 x 128 float32
    assert b["ssm_state"] == 27 * 128 * 80 * 128 * 4
    assert report.largest_context == K128 and report.largest_batch >= 1
    assert set(report.breakdown.per_kind) == {"mamba2", "attention", "mlp", "embedding"}


def test_nemotron_nano_12b_base_does_not_fit_a10g_at_128k(nemotron_12b):
    report = check_budget(nemotron_12b, "a10g", K128, 1)
    assert not report.fits
    assert report.breakdown.components["weights"] > report.budget_bytes  # the weights alone are too many
    assert report.largest_batch == 0 and report.largest_context == 0


def test_qwen3_8b_does_not_fit_a10g_at_128k(qwen3_8b_yarn):
    """Qwen3-8B imported from its config with YaRN (factor 4 over 32,768): a verdict at 131,072 tokens."""
    assert qwen3_8b_yarn.max_context == K128
    assert qwen3_8b_yarn.blocks["*"].rope_scaling.type == "yarn"
    report = check_budget(qwen3_8b_yarn, "a10g", K128, 1)
    assert not report.fits and not report.needs_extension and report.warnings == []
    b = report.breakdown.components
    assert b["weights"] < report.budget_bytes < b["weights"] + b["kv_cache"]  # the KV cache is what breaks it
    assert b["kv_cache"] == 36 * 8 * 128 * 2 * K128 * 2
    assert 0 < report.largest_context < K128


def _tiny_params(d=16, vocab=100):
    mamba = (d * (2 * 16 + 2 * 4 + 2) + (16 + 8) * 4 + (16 + 8) + 3 * 2 + 16 + 16 * d) + d
    attn = (d * (32 + 2 * 16) + 32 * d) + d
    window = (d * (32 + 2 * 8) + 32 * d) + d
    mlp = 2 * d * 40 + d
    return vocab * d + d + mamba + attn + window + mlp


def test_tiny_breakdown_by_hand(tiny):
    settings = CheckSettings(param_dtype="float32", act_dtype="bfloat16", kv_dtype="bfloat16", prefill_chunk=32)
    report = check_budget(tiny, "h100", 1000, 3, settings)
    b = report.breakdown.components
    assert b["weights"] == _tiny_params() * 4
    assert b["kv_cache"] == 3 * 2 * 2 * (2 * 8 * 1000 + 1 * 8 * 64)  # global: 2 kv heads; window 64: 1 kv head
    assert b["ssm_state"] == 3 * 2 * 8 * 4 * 4
    assert b["conv_state"] == 3 * (16 + 2 * 4) * 3 * 2
    per_symbol = report.breakdown.per_symbol
    assert per_symbol["W"]["kv_cache"] == 3 * 2 * 2 * 8 * 64
    assert report.breakdown.per_kind["attention"]["layers"] == 2


def test_mlp_workspace_by_hand():
    spec = loads_spec("""
name: mlp-only
vocab_size: 10
d_model: 8
max_context: 64
pattern: "-"
blocks: {"-": {kind: mlp, ffn_dim: 100, activation: relu2}}
""")
    settings = CheckSettings(act_dtype="bf16", prefill_chunk=16)
    model = MemoryModel(spec, settings)
    # relu2 holds up, relu and its square (3 x 100 x 2 bytes) next to the input and its norm (2 x 8 x 2)
    assert model.workspace(16) == (16 * (3 * 100 * 2 + 2 * 8 * 2), "-")
    assert model.workspace(5) == (5 * (3 * 100 * 2 + 2 * 8 * 2), "-")  # a short context is one short chunk


def test_monotone_in_context_and_batch(nemotron_9b, tiny):
    for spec in (nemotron_9b, tiny):
        model = MemoryModel(spec, CheckSettings(prefill_chunk=256))
        contexts = [1, 7, 63, 64, 65, 255, 256, 257, 1000, 4096]
        for batch in (1, 2, 5):
            totals = [model.total(c, batch) for c in contexts]
            assert totals == sorted(totals)
        for c in contexts:
            by_batch = [model.total(c, b) for b in (1, 2, 3, 8)]
            assert by_batch == sorted(by_batch) and len(set(by_batch)) == 4


@pytest.mark.parametrize("device", ["a10g", "l4", "h100"])
def test_largest_context_and_batch_agree_with_fits(qwen3_8b, nemotron_9b, device):
    for spec in (qwen3_8b, nemotron_9b):
        report = check_budget(spec, device, 32 * 1024, 2)
        if report.largest_context:
            assert check_budget(spec, device, report.largest_context, 2).fits
        if report.largest_context < spec.max_context:
            assert not check_budget(spec, device, report.largest_context + 1, 2).fits
        if report.largest_batch:
            assert check_budget(spec, device, 32 * 1024, report.largest_batch).fits
        assert not check_budget(spec, device, 32 * 1024, report.largest_batch + 1).fits
        assert report.fits == (report.largest_batch >= 2)


def test_qwen3_8b_native_spec_refuses_128k(qwen3_8b):
    with pytest.raises(UserError, match=r"131072 tokens is beyond the spec's max_context \(40960\)"):
        check_budget(qwen3_8b, "a10g", "128k", 1)


def test_beyond_max_context_is_answered_with_a_warning_when_asked(qwen3_8b, qwen3_8b_yarn):
    """The native spec (max_context 40960) at 128k: the same memory as the YaRN import, flagged as needing
    context extension; the largest context is searched up to the context asked."""
    report = check_budget(qwen3_8b, "a10g", "128k", 1, beyond_max_context=True)
    yarn = check_budget(qwen3_8b_yarn, "a10g", "128k", 1)
    assert report.total_bytes == yarn.total_bytes and report.fits == yarn.fits
    assert report.needs_extension and "would need context extension" in report.warnings[0]
    assert report.to_dict()["needs_context_extension"] is True and report.to_dict()["warnings"] == report.warnings
    assert report.largest_context == yarn.largest_context
    h100 = check_budget(qwen3_8b, "h100", "64k", 1, beyond_max_context=True)
    assert h100.fits and h100.largest_context == 64 * 1024 > qwen3_8b.max_context


def test_kv_dtype_changes_the_verdict(qwen3_8b):
    bf16 = check_budget(qwen3_8b, "a10g", 40 * 1024, 1)
    fp8 = check_budget(qwen3_8b, "a10g", 40 * 1024, 1, CheckSettings(kv_dtype="fp8"))
    assert fp8.breakdown.components["kv_cache"] * 2 == bf16.breakdown.components["kv_cache"]
    assert not bf16.fits and fp8.fits


def test_to_dict_has_the_promised_keys(tiny):
    out = check_budget(tiny, "a10g", "1k", 2).to_dict()
    assert out["fits"] is True and out["budget_bytes"] > 0
    assert set(out["breakdown"]) == {"weights", "kv_cache", "ssm_state", "conv_state", "prefill_workspace"}
    assert out["total_bytes"] == sum(out["breakdown"].values())


@pytest.mark.parametrize("kwargs, message", [
    (dict(device="b300"), "known devices: a10, a100-40gb"),
    (dict(context=8192), "beyond the spec's max_context (4096)"),
    (dict(batch=0), "batch: must be a whole number >= 1, got 0"),
    (dict(context="128q"), "'128q' is not a size"),
    (dict(context="0"), "'0' is out of range; allowed: 1 .."),
])
def test_bad_input(tiny, kwargs, message):
    args = dict(device="a10g", context=1024, batch=1) | kwargs
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_budget(tiny, args["device"], args["context"], args["batch"])


def test_bad_settings():
    with pytest.raises(UserError, match="--kv-dtype: unknown dtype 'int4'"):
        CheckSettings(kv_dtype="int4")
    with pytest.raises(UserError, match="--prefill-chunk"):
        CheckSettings(prefill_chunk=0)
