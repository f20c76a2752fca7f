"""Measured check: the builder's weights and caches equal the analytic figures byte for byte (CPU), and on a GPU
the allocator peak is near the estimate."""

import pytest

from archsearch.checks import CheckSettings
from archsearch.checks.measure import kernels_profile, measure_memory
from archsearch.spec import load_spec, parse_spec

FAMILIES = ["nemotron-h-tiny", "gemma2-tiny", "mamba2-tiny", "qwen3-tiny"]


@pytest.mark.parametrize("name", FAMILIES)
def test_builder_weights_and_caches_match_the_estimate(name):
    spec = load_spec(name)
    settings = CheckSettings(param_dtype="float32", act_dtype="float32", kv_dtype="float32", prefill_chunk=48)
    m = measure_memory(spec, context=200, batch=2, settings=settings, decode_steps=3, device="cpu")
    parts = m.estimated["components"]
    assert m.weight_bytes == parts["weights"]
    assert m.cache_bytes == parts["kv_cache"] + parts["ssm_state"] + parts["conv_state"]
    assert m.peak_bytes is None and m.error is None
    assert m.settings["kernels"] == "eager"  # the CPU runs the PyTorch scan


def test_kernels_profile_follows_the_scan_then_the_device():
    assert kernels_profile({"ssd_scan": "mamba_ssm", "attention": "sdpa"}, cuda=True) == "fused"
    assert kernels_profile({"ssd_scan": "torch_chunked"}, cuda=True) == "eager"
    assert kernels_profile({"mamba_mixer": "fused", "attention": "sdpa"}, cuda=False) == "fused"
    assert kernels_profile({"mamba_mixer": "composite", "ssd_scan": "torch_chunked"}, cuda=True) == "eager"
    assert kernels_profile({"attention": "sdpa"}, cuda=True) == "fused"  # no mask on CUDA
    assert kernels_profile({"attention": "sdpa"}, cuda=False) == "eager"


def _widened(name: str):
    """A tiny family spec at d_model 1024 and a 32k vocabulary: at the tiny specs' own size (10-16 MiB in all)
    a few MiB of fixed library workspace (cuBLAS, cuDNN) would dominate the comparison."""
    return parse_spec({**load_spec(name).to_dict(), "d_model": 1024, "vocab_size": 32000, "max_context": 16384})


@pytest.mark.gpu
@pytest.mark.parametrize("name", FAMILIES)
def test_gpu_peak_within_five_percent_of_the_estimate(name):
    m = measure_memory(_widened(name), context=16384, batch=16, settings=CheckSettings(prefill_chunk=2048),
                       decode_steps=4)
    assert m.estimated_bytes > 2**30  # large enough for the 5% beside fixed library workspace
    assert abs(m.error) < 0.05, m.to_dict()


@pytest.mark.gpu
def test_gpu_layer_probe_keeps_the_overall_peak_and_sees_every_symbol():
    """The per-layer probe resets the allocator's peak around each layer: the run's peak must not shrink."""
    spec = load_spec("nemotron-h-tiny")
    settings = CheckSettings(prefill_chunk=512)
    plain = measure_memory(spec, context=2048, batch=4, settings=settings, decode_steps=4)
    probed = measure_memory(spec, context=2048, batch=4, settings=settings, decode_steps=4, per_layer=True)
    assert probed.peak_bytes == plain.peak_bytes
    assert set(probed.layer_peaks) == {layer.symbol for layer in spec.layers} | {"lm_head"}
    assert all(p["measured"] > 0 and p["estimated"] > 0 for p in probed.layer_peaks.values())


def test_a_peak_below_the_weights_and_caches_is_refused_not_reported():
    from archsearch.checks.measure import MeasurementDisturbed, checked_peak

    assert checked_peak(1_000, weight_bytes=600, cache_bytes=400) == 1_000
    with pytest.raises(MeasurementDisturbed, match="below the model's weights"):
        checked_peak(999, weight_bytes=600, cache_bytes=400)


def test_garbage_is_collected_before_the_baseline():
    import gc
    import weakref

    from archsearch.checks.measure import _collect_garbage

    class Node:
        pass

    gc.disable()  # so that only the collection before the baseline can free the cycle
    try:
        cycle = Node()
        cycle.self = cycle
        alive = weakref.ref(cycle)
        del cycle
        assert alive() is not None
        _collect_garbage()
        assert alive() is None
    finally:
        gc.enable()
