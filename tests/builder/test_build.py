"""build(): exact parameter counts, deterministic init, the meta device, clear errors on bad input."""

import pytest
import torch

import archsearch
from archsearch.builder import BackendUnavailable
from archsearch.errors import UserError
from archsearch.kernels import force_backend
from archsearch.spec import count_parameters, example_names, load_spec

SMALL = [name for name in example_names() if name.endswith("-tiny")]
LARGE = [name for name in example_names() if not name.endswith("-tiny")]


def _numel(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_examples_include_both_sizes():
    assert SMALL and LARGE


@pytest.mark.parametrize("name", SMALL)
def test_tiny_example_parameter_count_is_exact_on_cpu(name):
    spec = load_spec(name)
    model = archsearch.build(spec)
    assert _numel(model) == count_parameters(spec).total
    logits = model(torch.randint(0, spec.vocab_size, (1, 7)))
    assert logits.shape == (1, 7, spec.vocab_size) and torch.isfinite(logits).all()


@pytest.mark.parametrize("name", LARGE)
def test_full_size_example_parameter_count_is_exact_on_meta(name):
    spec = load_spec(name)
    model = archsearch.build(spec, device="meta")
    assert _numel(model) == count_parameters(spec).total
    assert all(p.device.type == "meta" for p in model.parameters())


def test_same_seed_same_weights_other_seed_other_weights():
    spec = load_spec("nemotron-h-tiny")
    a, b, c = archsearch.build(spec, seed=5), archsearch.build(spec, seed=5), archsearch.build(spec, seed=6)
    for (name, pa), pb, pc in zip(a.named_parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.layers[0].mixer.in_proj.weight, c.layers[0].mixer.in_proj.weight)


def test_init_follows_the_spec():
    tiny = load_spec("nemotron-h-tiny")
    model = archsearch.build(tiny, seed=0)
    n = tiny.n_layers
    mixer = model.layers[0].mixer
    block = tiny.layers[0].block
    dt_H = torch.nn.functional.softplus(mixer.dt_bias)
    assert dt_H.min() >= block.dt_init_floor * 0.999 and dt_H.max() <= block.dt_max * 1.001
    A_H = torch.exp(mixer.A_log)
    assert A_H.min() >= block.A_init_range[0] and A_H.max() <= block.A_init_range[1]
    assert torch.equal(mixer.D, torch.ones_like(mixer.D))
    # output projections are scaled by 1/sqrt(2 n_layers): compare the spread of in_proj and out_proj
    ratio = mixer.out_proj.weight.std() / mixer.in_proj.weight.std()
    assert abs(ratio.item() - (2 * n) ** -0.5) < 0.1 * (2 * n) ** -0.5


def test_build_in_bfloat16_gives_the_float32_weights_rounded():
    spec = load_spec("qwen3-tiny")
    full, half = archsearch.build(spec, seed=1), archsearch.build(spec, dtype="bfloat16", seed=1)
    for (name, p32), p16 in zip(full.named_parameters(), half.parameters()):
        assert p16.dtype == torch.bfloat16
        assert torch.equal(p32.to(torch.bfloat16), p16), name


def test_tied_head_shares_the_embedding():
    spec = load_spec("gemma2-tiny")
    assert spec.tie_embeddings
    model = archsearch.build(spec)
    assert model.lm_head.weight is None and model.lm_head.tied
    assert "lm_head.weight" not in model.state_dict()


@pytest.mark.parametrize("kwargs,match", [
    (dict(dtype="int8"), "dtype 'int8' is not supported; allowed: float32, bfloat16, float16"),
    (dict(dtype=torch.float64), "dtype torch.float64"),
    (dict(device="gpu0"), "device 'gpu0' is not a device"),
])
def test_bad_arguments_are_user_errors(kwargs, match):
    with pytest.raises(UserError, match=match):
        archsearch.build(load_spec("nemotron-h-tiny"), **kwargs)


def test_spec_must_be_a_modelspec():
    with pytest.raises(UserError, match="must be an archsearch.ModelSpec"):
        archsearch.build({"name": "x"})


def test_forced_backend_that_cannot_serve_fails_before_allocating(monkeypatch):
    allocated = []
    monkeypatch.setattr(torch.nn.Module, "register_parameter",
                        lambda self, name, p: allocated.append(name))
    spec = load_spec("gemma2-tiny")  # soft-capped attention: SDPA refuses it
    with force_backend("attention", "sdpa"), pytest.raises(BackendUnavailable) as err:
        archsearch.build(spec)
    assert "attention" in str(err.value) and "soft-cap" in str(err.value) and "blocks." in str(err.value)
    assert allocated == []


def test_forced_fused_backend_on_cpu_is_refused_with_the_reason():
    with force_backend("ssd_scan", "mamba_ssm"), pytest.raises(BackendUnavailable, match="ssd_scan"):
        archsearch.build(load_spec("mamba2-tiny"))


def test_model_records_the_backends_it_used():
    model = archsearch.build(load_spec("nemotron-h-tiny"))
    model(torch.randint(0, 256, (1, 5)))
    used = model.backends_used()
    assert {"ssd_scan", "causal_conv1d", "gated_rmsnorm", "attention"} <= set(used)
    with force_backend("ssd_scan", "reference"):
        model(torch.randint(0, 256, (1, 5)))
    assert model.backends_used()["ssd_scan"] == "reference"
