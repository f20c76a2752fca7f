"""precision auto: fp8 per trial only where a measured point that speaks for its chip gained, bf16 otherwise; the
decision is a pure function of the spec, the tokens per forward and the device name, and the run records it with its
reason. No GPU needed: a GPU is what plan_precision sees through monkeypatched torch.cuda queries."""

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from archsearch.builder import build
from archsearch.spec import ModelSpec, load_spec
from archsearch.training import Recipe, TaskSpec, train
from archsearch.training import precision
from archsearch.training.fp8 import eligible_linears
from archsearch.training.fp8_table import (GAIN, MEASURED, Fp8Point, chip_of, decide_fp8, linear_intensity,
                                           linear_shapes)
from archsearch.training.precision import plan_precision

REPO = Path(__file__).resolve().parents[2]
TRIAL_D768 = str(REPO / "bench/specs/trial-d768.yaml")


def _spec(name: str) -> ModelSpec:
    return load_spec(str(REPO / name) if name.endswith(".yaml") else name)


@pytest.mark.parametrize("point", [p for p in MEASURED if p.spec], ids=lambda p: p.what.split(",")[0])
def test_each_measured_intensity_is_its_specs(point):
    """The table's numbers are what linear_intensity gives for the model and tokens measured, not typed guesses."""
    assert linear_intensity(_spec(point.spec), point.tokens) == pytest.approx(point.intensity, abs=0.05)


@pytest.mark.parametrize("name", ["nemotron-h-tiny", "qwen3-tiny", "gemma2-tiny", "mamba2-tiny"])
@pytest.mark.parametrize("min_dim", [16, 64])
def test_the_layers_counted_are_the_layers_fp8_converts(name, min_dim):
    spec = load_spec(name)
    model = build(spec, torch.device("cpu"), torch.float32, seed=0)
    modules = dict(model.named_modules())
    counted = {fqn: (k, n) for fqn, k, n in linear_shapes(spec, min_dim)}
    assert set(counted) == set(eligible_linears(model, min_dim))
    for fqn, (k, n) in counted.items():
        assert (modules[fqn].in_features, modules[fqn].out_features) == (k, n)


def test_the_100m_trial_stays_bf16_and_the_1b_models_take_fp8_on_hopper():
    small, big = _spec(TRIAL_D768), _spec("nemotron-h-1b")
    for device in ("NVIDIA H200", "NVIDIA H100 80GB HBM3"):
        no = decide_fp8(small, 32768, device)  # its own measurement (1.025x on the H200) rules fp8 out
        assert not no.use_fp8 and no.reason.startswith("bf16: GEMM intensity 1125") and "trial-d768" in no.reason
        assert "1.025x bf16" in no.reason and "no gain" in no.reason
        yes = decide_fp8(big, 16384, device)
        assert yes.use_fp8 and ("1.134x" in yes.reason and "third session" in yes.reason if "H100" in device
                                else "1.142x" in yes.reason and "seventh" in yes.reason)  # each chip's own point
        # without that measurement: still bf16, below the smallest measured gain (nemotron-h-1b's), which is named
        below = decide_fp8(small, 32768, device, table=tuple(p for p in MEASURED if "trial-d" not in p.what))
        assert not below.use_fp8 and "below every measured fp8 gain" in below.reason and "2803" in below.reason
        # d_model 1024 (intensity 1543): compiled whole, its step gained (1.055x H100, 1.067x H200); layer by layer
        # (the study default) the H100's gained 1.005x only: that loss voids the gains at its intensity, on both
        # chips, and at more tokens too (where it no longer lies above the trial's intensity)
        d1024 = _spec(str(REPO / "bench/specs/trial-d1024.yaml"))
        for tokens in (32768, 36864, 65536):
            wider = decide_fp8(d1024, tokens, device)
            assert not wider.use_fp8, (tokens, wider.reason)
        assert "1.005x bf16 on the H100" in decide_fp8(d1024, 32768, device).reason
        assert "layer by layer" in decide_fp8(d1024, 32768, device).reason
        # without that point the whole-model gains decide; without any d1024 step, its layers alone (0.956x) lost
        no_layers = tuple(p for p in MEASURED if "layer by layer" not in p.what)
        wider = decide_fp8(d1024, 32768, device, table=no_layers)
        assert wider.use_fp8 and ">= 1543 of trial-d1024" in wider.reason
        assert ("1.067x bf16 on the H200" if "H200" in device else "1.055x bf16 on the H100") in wider.reason
        no_step = tuple(p for p in MEASURED if not (p.spec and p.spec.endswith("d1024.yaml") and not p.layers_only))
        wider = decide_fp8(d1024, 32768, device, table=no_step)
        assert not wider.use_fp8 and "1543" in wider.reason and "0.956x" in wider.reason
        # the 1B model at 32,768 tokens: fp8 from its whole-step point at 16,384 tokens; its layers-alone 1.204x at
        # 32,768 tokens is no gain point (it leaves the casts around the layers out)
        at_32k = decide_fp8(big, 32768, device)
        assert at_32k.use_fp8 and "2803" in at_32k.reason and "1.204x" not in at_32k.reason
        layers = tuple(p for p in MEASURED if p.layers_only)
        alone = decide_fp8(big, 32768, device, table=layers)  # layers-alone gains alone: no fp8, and it says so
        assert not alone.use_fp8 and "no whole-step fp8 gain" in alone.reason and "below" not in alone.reason
    # the 1B model at a quarter of the tokens: below its measured point, so nothing shows fp8 gains there
    assert not decide_fp8(big, 1024, "NVIDIA H100 80GB HBM3").use_fp8


def test_h100_gains_hold_on_the_h200_and_h200_losses_on_the_h100_not_the_reverse():
    spec = _spec("nemotron-h-1b")
    at = linear_intensity(spec, 16384)

    def use(table, device):
        return decide_fp8(spec, 16384, device, table=table).use_fp8

    h100_gain, h200_gain = (Fp8Point(chip, "gain", at - 10, 1.2, "test") for chip in ("h100", "h200"))
    h100_loss, h200_loss = (Fp8Point(chip, "loss", at + 10, 1.0, "test") for chip in ("h100", "h200"))
    assert use((h100_gain,), "NVIDIA H200") and use((h100_gain,), "NVIDIA H100")
    assert use((h200_gain,), "NVIDIA H200") and not use((h200_gain,), "NVIDIA H100")
    assert not use((h100_gain, h200_loss), "NVIDIA H100")  # a loss speaks for both chips
    assert not use((h200_gain, h100_loss), "NVIDIA H200")
    assert not use((h100_gain, h100_loss), "NVIDIA H200") and not use((h100_gain, h100_loss), "NVIDIA H100")


def test_a_gain_contradicted_by_a_whole_step_loss_at_its_intensity_or_above_counts_for_nothing():
    spec = _spec("nemotron-h-1b")
    at = linear_intensity(spec, 16384)
    gain = Fp8Point("h100", "compiled whole", at - 100, 1.1, "test")
    for loss_at, layers_only, fp8 in ((at - 100, False, False), (at - 200, False, True), (at - 50, True, True)):
        loss = Fp8Point("h100", "compiled layer by layer", loss_at, 1.0, "test", layers_only=layers_only)
        decision = decide_fp8(spec, 16384, "NVIDIA H100", table=(gain, loss))
        assert decision.use_fp8 is fp8, (loss_at, layers_only, decision.reason)


def test_unknown_gpus_and_models_without_convertible_layers_stay_bf16():
    big = _spec("nemotron-h-1b")
    for device in ("NVIDIA A100-SXM4-80GB", "NVIDIA L40S", "Some Accelerator"):
        decision = decide_fp8(big, 16384, device)
        assert not decision.use_fp8 and "no fp8 measurement" in decision.reason and "bench_fp8_gemm.py" in decision.reason
    tiny = decide_fp8(load_spec("nemotron-h-tiny"), 16384, "NVIDIA H100 80GB HBM3")  # every dim below 512
    assert (tiny.use_fp8, tiny.intensity) == (False, 0.0) and "no Linear layer" in tiny.reason


def test_chip_names():
    assert chip_of("NVIDIA H100 80GB HBM3") == "h100"
    assert chip_of("NVIDIA H200") == "h200"
    assert chip_of("NVIDIA A100-SXM4-80GB") == "a100"
    assert chip_of("Some Accelerator") is None


@settings(max_examples=60, deadline=None)
@given(d_model=st.sampled_from([256, 512, 768, 1024, 2048, 4096]), t1=st.integers(512, 65536),
       t2=st.integers(512, 65536), gain_at=st.floats(300, 6000), loss_at=st.floats(100, 6000),
       layers_at=st.floats(100, 6000), layers_speedup=st.floats(0.8, 1.3),
       chips=st.tuples(*[st.sampled_from(["h100", "h200"])] * 3),
       device=st.sampled_from(["NVIDIA H100", "NVIDIA H200"]))
def test_more_tokens_never_turn_fp8_into_bf16(d_model, t1, t2, gain_at, loss_at, layers_at, layers_speedup, chips,
                                              device):
    """Intensity grows with the tokens per forward, and the rule is monotone in intensity: with any table (a
    whole-step gain, a whole-step loss, a layers-alone point, each measured on either Hopper) on either chip, a
    decision for fp8 at fewer tokens stays fp8 at more."""
    spec = _width(d_model)
    table = (Fp8Point(chips[0], "gain", gain_at, GAIN + 0.1, "test"), Fp8Point(chips[1], "loss", loss_at, 1.0, "test"),
             Fp8Point(chips[2], "layers", layers_at, layers_speedup, "test", layers_only=True))
    low, high = sorted((t1, t2))
    assert linear_intensity(spec, low) <= linear_intensity(spec, high)
    if decide_fp8(spec, low, device, table=table).use_fp8:
        assert decide_fp8(spec, high, device, table=table).use_fp8


def _width(d_model: int) -> ModelSpec:
    doc = _spec(TRIAL_D768).to_dict()
    doc["d_model"] = d_model
    doc["blocks"]["M"] = {**doc["blocks"]["M"], "n_heads": 2 * d_model // 64}
    return ModelSpec.model_validate(doc)


def _gpu(monkeypatch, name: str, installed=("torchao",)):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    monkeypatch.setattr(precision, "installed", lambda module: module in installed)
    monkeypatch.delenv(precision.FP8_BACKEND_ENV, raising=False)
    return torch.device("cuda")


def test_plan_auto_on_a_gpu_records_the_decision(monkeypatch):
    auto = Recipe(precision="auto")
    gpu = _gpu(monkeypatch, "NVIDIA H200")
    plan = plan_precision(auto, gpu, _spec("nemotron-h-1b"), 16384)
    assert (plan.name, plan.fp8_backend, plan.autocast_dtype) == ("fp8", "torchao", torch.bfloat16)
    assert plan.reason.startswith("auto: fp8: GEMM intensity 2803") and plan.auto["use_fp8"] is True
    plan = plan_precision(auto, gpu, _spec(TRIAL_D768), 32768)
    assert (plan.name, plan.fp8_backend) == ("bf16", None) and plan.reason.startswith("auto: bf16: GEMM intensity")
    assert plan.auto == {"use_fp8": False, "reason": plan.reason.removeprefix("auto: "), "intensity": 1125.2}
    # fp8 would pay, but this machine cannot run it: bf16, and the record says both
    plan = plan_precision(auto, _gpu(monkeypatch, "NVIDIA H200", installed=()), _spec("nemotron-h-1b"), 16384)
    assert plan.name == "bf16" and "would pay but is unavailable: torchao is not installed" in plan.reason
    assert plan.auto["use_fp8"] is False and plan.auto["blocked"].startswith("torchao")


def test_plan_auto_on_cpu_is_the_cpu_default():
    plan = plan_precision(Recipe(precision="auto"), torch.device("cpu"))
    assert (plan.name, plan.autocast_dtype, plan.reason, plan.auto) == ("fp32", None, "auto: fp32 on CPU", None)


def test_a_cpu_run_with_auto_records_precision_and_timing(tmp_path):
    recipe = Recipe(steps=3, batch_size=2, seq_len=32, precision="auto", eval_every=3, eval_batches=1)
    result = train(load_spec("nemotron-h-tiny"), TaskSpec(name="mqar", options={"vocab": 32}), recipe,
                   progress=False, device="cpu", out_dir=tmp_path / "run")
    assert (result.precision, result.precision_reason) == ("fp32", "auto: fp32 on CPU")
    timing = result.extra["timing"]
    assert timing["timed_steps"] == 2 and timing["steps_s"] > 0 and timing["first_step_s"] > 0
    assert timing["setup_s"] > 0 and timing["to_first_step_s"] >= timing["setup_s"] + timing["first_step_s"]
    assert timing["eval_s"] > 0 and timing["checkpoint_s"] > 0
    parts = timing["setup_s"] + timing["first_step_s"] + timing["steps_s"] + timing["eval_s"] + timing["checkpoint_s"]
    assert parts <= timing["wall_s"] + 1e-6
    assert result.extra["compile_info"] is None  # not compiled
