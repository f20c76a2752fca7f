"""What cannot be imported or exported is reported, every feature at once, with its field and value."""

import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archsearch.hf import NotExpressibleError, export_hf_config, import_hf_config, write_hf_config
from archsearch.spec import SpecError, load_spec, parse_spec
from archsearch.spec.errors import format_path


def paths(err):
    return {format_path(issue.path) for issue in err.issues}


def test_llama_cannot_hold_a_local_global_pattern():
    spec = load_spec("gemma2-tiny")
    with pytest.raises(NotExpressibleError) as info:
        export_hf_config(spec, "llama")
    assert paths(info.value) >= {"norm.post_block_norm", "norm.unit_offset", "embedding_multiplier",
                                 "final_logit_softcap", "blocks.L.window", "blocks.L.logit_softcap"}
    message = str(info.value)
    assert "cannot be written as a Hugging Face llama config" in message and "Llama has no sliding-window" in message


def test_closest_family_is_named_when_none_fits():
    document = load_spec("nemotron-h-tiny").to_dict()
    document["blocks"]["*"]["rope_theta"] = 10000.0  # NemotronH attention has no RoPE
    with pytest.raises(NotExpressibleError) as info:
        export_hf_config(parse_spec(document))
    assert info.value.family == "nemotron_h" and paths(info.value) == {"blocks.*.rope_theta"}
    assert "the closest family" in str(info.value) and "llama:" in str(info.value)


def test_each_family_lists_what_it_lacks():
    qwen = load_spec("qwen3-tiny")
    with pytest.raises(NotExpressibleError) as info:
        export_hf_config(qwen, "qwen2")
    assert paths(info.value) == {"blocks.*.qk_norm", "blocks.*.qkv_bias"}
    with pytest.raises(NotExpressibleError) as info:
        export_hf_config(load_spec("mamba2-tiny"), "gemma2")
    assert "pattern" in paths(info.value)
    with pytest.raises(SpecError, match="unknown Hugging Face family"):
        export_hf_config(qwen, "gpt2")


def test_gemma2_query_scale_must_come_from_an_integer():
    document = load_spec("gemma2-tiny").to_dict()
    for symbol in ("L", "*"):
        document["blocks"][symbol]["query_scale"] = 0.3
    with pytest.raises(NotExpressibleError) as info:
        export_hf_config(parse_spec(document), "gemma2")
    assert paths(info.value) == {"blocks.L.query_scale"}


def test_blocks_of_one_kind_must_agree():
    document = load_spec("nemotron-h-tiny").to_dict()
    document["pattern"] = "M-N-*-"
    document["blocks"]["N"] = {**document["blocks"]["M"], "d_state": 32}
    with pytest.raises(NotExpressibleError) as info:
        export_hf_config(parse_spec(document), "nemotron_h")
    (issue,) = info.value.issues
    assert format_path(issue.path) == "blocks.N.d_state" and issue.value == 32 and issue.allowed == "16"


def test_mamba2_needs_an_integer_expand():
    document = load_spec("mamba2-tiny").to_dict()
    document["blocks"]["M"].update(expand=None, n_heads=5)
    document["tie_embeddings"] = False
    spec = parse_spec(document)
    with pytest.raises(NotExpressibleError, match="integer") as info:
        export_hf_config(spec, "mamba2")
    assert paths(info.value) == {"blocks.M.n_heads"}
    assert export_hf_config(spec)["model_type"] == "nemotron_h"  # NemotronH has no such constraint


@pytest.mark.parametrize("config, path, fragment", [
    ({"model_type": "gpt2"}, "model_type", "unsupported model family"),
    ({"model_type": "nemotron_h", "hidden_size": 64, "vocab_size": 10, "hybrid_override_pattern": "ME-"},
     "layers_block_type", "MoE layers"),
    ({"model_type": "llama", "hidden_size": 64, "vocab_size": 10, "rope_scaling": {"rope_type": "dynamic"}},
     "rope_scaling.rope_type", "RoPE type not expressible"),
    ({"model_type": "llama", "hidden_size": 64, "vocab_size": 10, "rope_scaling": {"rope_type": "llama3"}},
     "rope_scaling.factor", "needs a factor"),
    ({"model_type": "llama", "hidden_size": 64, "vocab_size": 10, "rope_scaling": {"rope_type": "llama3",
                                                                                  "factor": 8}},
     "rope_scaling.low_freq_factor", "needs it"),
    ({"model_type": "qwen3", "hidden_size": 64, "vocab_size": 10, "rope_parameters": {"rope_type": "yarn",
                                                                                     "factor": 4, "alpha": 1}},
     "rope_parameters.alpha", "not a parameter of yarn RoPE"),
    ({"model_type": "qwen3", "hidden_size": 64, "vocab_size": 10, "num_experts": 8},
     "num_experts", "mixture-of-experts layers are not expressible"),
    ({"model_type": "gemma2", "hidden_size": 64, "vocab_size": 10, "use_bidirectional_attention": True},
     "use_bidirectional_attention", "bidirectional attention"),
    ({"model_type": "llama", "hidden_size": 64, "vocab_size": 10, "hidden_act": "tanh"}, "hidden_act",
     "no archsearch equivalent"),
    ({"model_type": "qwen3", "hidden_size": 64, "vocab_size": 10, "num_hidden_layers": 10 ** 9},
     "num_hidden_layers", "out of range"),
    ({"model_type": "mamba2", "hidden_size": 64, "vocab_size": 10, "num_heads": 3, "head_dim": 16},
     "expand", "must equal num_heads * head_dim"),
])
def test_import_names_the_config_field(config, path, fragment):
    with pytest.raises(SpecError) as info:
        import_hf_config(config, source="config.json")
    issue = next(i for i in info.value.issues if format_path(i.path) == path)
    assert fragment in issue.message and issue.location == "config.json"


def test_import_reports_every_problem_at_once():
    config = {"model_type": "llama", "hidden_size": "wide", "vocab_size": 10.5, "tie_word_embeddings": "yes"}
    with pytest.raises(SpecError) as info:
        import_hf_config(config)
    assert paths(info.value) == {"hidden_size", "vocab_size", "tie_word_embeddings"}


def test_nemotron_h_ties_nothing_and_refuses_to_export_a_tied_head():
    spec = import_hf_config({"model_type": "nemotron_h", "hidden_size": 32, "vocab_size": 10,
                             "hybrid_override_pattern": "M-", "tie_word_embeddings": True})
    assert spec.tie_embeddings is False
    document = {**spec.to_dict(), "tie_embeddings": True}
    with pytest.raises(NotExpressibleError, match="never ties"):
        export_hf_config(parse_spec(document), "nemotron_h")


def test_write_config_creates_the_folder(tmp_path):
    target = write_hf_config(load_spec("qwen3-tiny"), tmp_path / "out" / "qwen")
    assert target == tmp_path / "out" / "qwen" / "config.json" and '"model_type": "qwen3"' in target.read_text()


junk = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-(1 << 40), 1 << 40), st.floats(),
                              st.text(max_size=8)),
                    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner,
                                                                                         max_size=3)), max_leaves=8)
KEYS = ["hidden_size", "vocab_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
        "intermediate_size", "hybrid_override_pattern", "layers_block_type", "layer_types", "sliding_window",
        "rope_theta", "rope_parameters", "rope_scaling", "time_step_limit", "mamba_num_heads", "n_groups",
        "query_pre_attn_scalar", "num_heads", "expand", "use_sliding_window", "max_window_layers", "tie_word_embeddings"]


@pytest.mark.filterwarnings("ignore::archsearch.hf.IgnoredConfigField")  # junk in fields of other families
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["nemotron_h", "mamba2", "gemma2", "qwen3", "qwen2", "llama"]),
       st.dictionaries(st.sampled_from(KEYS), junk, max_size=6))
def test_junk_configs_end_in_spec_error(model_type, fields):
    try:
        import_hf_config({"model_type": model_type, "hidden_size": 64, "vocab_size": 100, **fields})
    except SpecError:
        pass


def test_the_interop_layer_imports_no_torch():
    code = "import sys, archsearch.hf, archsearch.spec; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
