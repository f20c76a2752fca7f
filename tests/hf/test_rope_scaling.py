"""Scaled RoPE (linear, YaRN, Llama 3) against transformers: our model and transformers' model loaded from our
exported checkpoint give the same float32 logits on CPU; the exported config reads back as the same spec; a
Qwen3 config with YaRN imports at its extended context."""

import json
import math
from pathlib import Path

import pytest
import torch

import archsearch
from archsearch.hf import export_hf_config, import_hf_config
from archsearch.hf.checkpoint import export_checkpoint
from archsearch.spec import SpecError, parse_spec

transformers = pytest.importorskip("transformers")

SEQ = 40
CONFIGS = Path(__file__).parent / "configs"

# original_max_context 256 with theta 10000 and head_dim 16 puts YaRN's ramp inside the head (dimensions 0 .. 4),
# so some frequencies are kept, some interpolated and some blended; llama3's bands split the same way.
SCALINGS = {
    "yarn": ("qwen3", {"type": "yarn", "factor": 4.0, "original_max_context": 256}),
    "yarn-tuned": ("qwen3", {"type": "yarn", "factor": 8.0, "original_max_context": 64, "beta_fast": 16.0,
                             "beta_slow": 2.0, "attention_factor": 1.3, "truncate": False}),
    "linear": ("qwen2", {"type": "linear", "factor": 2.5}),
    "llama3": ("llama", {"type": "llama3", "factor": 8.0, "original_max_context": 256, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0}),
}


def _spec(family: str, scaling: dict | None):
    attention = {"kind": "attention", "n_heads": 4, "n_kv_heads": 2, "head_dim": 16, "rope_theta": 10000.0,
                 "rope_scaling": scaling, "qk_norm": family == "qwen3", "qkv_bias": family == "qwen2"}
    return parse_spec({"name": f"rope-{family}", "vocab_size": 64, "d_model": 64, "max_context": 1024,
                       "pattern": "(*-)x2", "tie_embeddings": False, "norm": {"eps": 1e-6},
                       "init": {"scale_output_projections": False},
                       "blocks": {"*": attention, "-": {"kind": "mlp", "ffn_dim": 48, "activation": "silu",
                                                        "gated": True}}})


def _randomised(model, seed: int):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return model


@pytest.mark.parametrize("name", sorted(SCALINGS))
def test_transformers_gives_our_logits_with_scaled_rope(name, tmp_path):
    family, scaling = SCALINGS[name]
    spec = _spec(family, scaling)
    model = _randomised(archsearch.build(spec, seed=1), seed=2).eval()
    out = export_checkpoint(spec, model, tmp_path)
    hf = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32,
                                                           attn_implementation="eager").eval()
    assert hf.config.model_type == family and hf.config.rope_parameters["rope_type"] == scaling["type"]
    ids = torch.randint(0, spec.vocab_size, (2, SEQ), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        theirs, ours = hf(ids).logits, model(ids)
        plain = archsearch.build(_spec(family, None), seed=1)
        plain.load_state_dict(model.state_dict())
        unscaled = plain.eval()(ids)
    error = ((ours - theirs).norm() / theirs.norm()).item()
    assert error <= 1e-5
    # the scaling matters at these positions: without it the logits are far off, so the match above is not luck
    assert ((unscaled - theirs).norm() / theirs.norm()).item() > 100 * max(error, 1e-7)


@pytest.mark.parametrize("name", sorted(SCALINGS))
def test_scaled_rope_round_trips_through_the_config(name):
    family, scaling = SCALINGS[name]
    spec = _spec(family, scaling)
    config = export_hf_config(spec)
    assert config["model_type"] == family
    assert config["rope_scaling"]["rope_type"] == config["rope_parameters"]["rope_type"] == scaling["type"]
    back = import_hf_config(config, name=spec.name)
    assert back.blocks["*"].rope_scaling == spec.blocks["*"].rope_scaling
    assert back.spec_hash() == spec.spec_hash()


def test_qwen3_8b_with_yarn_imports_at_131072_tokens():
    """Qwen's model card: rope_scaling {rope_type: yarn, factor: 4, original_max_position_embeddings: 32768}."""
    config = json.loads((CONFIGS / "qwen3-8b.json").read_text())
    config["rope_scaling"] = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}
    spec = import_hf_config(config)
    scaling = spec.blocks["*"].rope_scaling
    assert (scaling.type, scaling.factor, scaling.original_max_context) == ("yarn", 4.0, 32768)
    assert scaling.attention_scale() == pytest.approx(0.1 * math.log(4) + 1)
    assert spec.max_context == 131072  # original x factor, beyond max_position_embeddings (40960)
    native = import_hf_config(json.loads((CONFIGS / "qwen3-8b.json").read_text()))
    assert native.max_context == 40960 and native.blocks["*"].rope_scaling is None


def test_transformers_5_rope_parameters_form_and_mscale():
    """rope_parameters (transformers 5) carries rope_theta inside; DeepSeek-style mscale / mscale_all_dim give
    YaRN's attention factor as transformers computes it."""
    config = json.loads((CONFIGS / "qwen3-8b.json").read_text())
    del config["rope_scaling"], config["rope_theta"]
    config["rope_parameters"] = {"rope_type": "yarn", "rope_theta": 5e5, "factor": 4.0,
                                 "original_max_position_embeddings": 32768, "mscale": 1.0, "mscale_all_dim": 0.5}
    block = import_hf_config(config).blocks["*"]
    expected = (0.1 * math.log(4) + 1) / (0.05 * math.log(4) + 1)
    assert block.rope_theta == 5e5 and block.rope_scaling.attention_factor == pytest.approx(expected)


@pytest.mark.parametrize("scaling, path, fragment", [
    ({"type": "yarn", "factor": 0.5, "original_max_context": 64}, "factor", "greater than or equal to 1"),
    ({"type": "yarn", "factor": 2, "original_max_context": 64, "beta_fast": 1, "beta_slow": 2}, "beta_fast",
     "must be above beta_slow"),
    ({"type": "llama3", "factor": 2, "original_max_context": 64, "low_freq_factor": 4, "high_freq_factor": 4},
     "high_freq_factor", "must be above low_freq_factor"),
    ({"type": "yarn", "factor": 2}, "original_max_context", "required field is missing"),
    ({"type": "ntk", "factor": 2}, "type", "unknown RoPE scaling type"),
    ({"factor": 2}, "type", "needs a 'type'"),
    ({"type": "linear", "factor": 2, "original_max_context": 64}, "original_max_context", "unknown field"),
])
def test_bad_scalings_name_the_field(scaling, path, fragment):
    with pytest.raises(SpecError) as info:
        _spec("qwen3", scaling)
    messages = {".".join(map(str, i.path)): i.message for i in info.value.issues}
    assert fragment in messages[f"blocks.*.rope_scaling.{path}"], messages


def test_scaling_without_rope_is_refused():
    with pytest.raises(SpecError, match=r"blocks\.\*\.rope_scaling: scales RoPE, but rope_theta is null"):
        parse_spec({"name": "x", "vocab_size": 8, "d_model": 16, "max_context": 64, "pattern": "*",
                    "blocks": {"*": {"kind": "attention", "n_heads": 2, "rope_theta": None,
                                     "rope_scaling": {"type": "linear", "factor": 2}}}})


def test_specs_without_scaling_hash_as_before_and_scaled_ones_round_trip():
    """rope_scaling is left out of dumps while null: every spec written before it existed keeps its hash (stored
    trials, study identities); a scaled spec dumps it, reloads equal and hashes apart."""
    from archsearch.spec import dump_spec, loads_spec

    plain, scaled = _spec("qwen3", None), _spec("qwen3", SCALINGS["yarn"][1])
    assert "rope_scaling" not in plain.to_dict()["blocks"]["*"]
    assert scaled.to_dict()["blocks"]["*"]["rope_scaling"]["type"] == "yarn"
    assert loads_spec(dump_spec(scaled)) == scaled and loads_spec(dump_spec(plain)) == plain
    assert scaled.spec_hash() != plain.spec_hash()


def test_cached_decoding_with_yarn_gives_the_full_forward_logits():
    """Prefill then one-token decodes rotate each position as the full forward does (scaled frequencies and
    YaRN's cos/sin factor at every absolute position)."""
    from archsearch.kernels import force_backend

    model = archsearch.build(_spec("qwen3", SCALINGS["yarn-tuned"][1]), seed=5).eval()
    ids = torch.randint(0, 64, (2, SEQ), generator=torch.Generator().manual_seed(3))
    with torch.no_grad(), force_backend("attention", "naive"):
        full = model(ids)
        cache = model.allocate_cache(2, SEQ)
        steps = [model.prefill(ids[:, :11], cache, chunk_size=4, logits="all")]
        steps += [model.decode_step(ids[:, t:t + 1], cache) for t in range(11, SEQ)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-4, atol=1e-4)
