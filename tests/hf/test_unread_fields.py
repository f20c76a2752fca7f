"""Every field of an imported config is used or reported, never dropped: published configs with random extra
fields (random names, and real fields of other families such as Qwen3-MoE's num_experts) import with each extra
field named, as a warning or, for mixture-of-experts sizes, as an error. "Known" is transformers' own field
list of the family, so the test does not take archsearch's word for which fields matter."""

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archsearch.cli import main
from archsearch.hf import IgnoredConfigField, import_hf, import_hf_config
from archsearch.hf._config import MOE_SIZES, NO_EFFECT
from archsearch.spec import SpecError

transformers = pytest.importorskip("transformers")

CONFIGS = {p.stem: json.loads(p.read_text()) for p in sorted((Path(__file__).parent / "configs").glob("*.json"))}
CONFIGS["llama-small"] = {"model_type": "llama", "hidden_size": 64, "vocab_size": 10, "num_hidden_layers": 2}
CONFIGS["qwen2-small"] = {"model_type": "qwen2", "hidden_size": 64, "vocab_size": 10, "num_hidden_layers": 2}
CONFIGS["mamba2-small"] = {"model_type": "mamba2", "hidden_size": 64, "vocab_size": 10, "num_heads": 8,
                           "head_dim": 16, "num_hidden_layers": 2}

# Fields archsearch reads that transformers' config classes fold into others (RoPE) or that older configs spell
# differently; a random extra key must not be one of them, or it would be used rather than reported.
READ_ELSEWHERE = {"rope_theta", "rope_scaling", "partial_rotary_factor", "original_max_position_embeddings",
                  "sliding_window_pattern", "torch_dtype", "hidden_act", "layer_types", "head_dim",
                  "use_bidirectional_attention", "mamba_n_groups", "mamba_d_conv", "mamba_dt_min", "mamba_dt_max",
                  "mamba_dt_limit", "mamba_dt_init_floor", "mamba_conv_bias", "mamba_chunk_size"}
OTHER_FAMILIES = ["num_experts", "num_local_experts", "num_experts_per_tok", "moe_intermediate_size",
                  "mlp_only_layers", "decoder_sparse_step", "norm_topk_prob", "time_step_rank",
                  "query_pre_attn_scalar", "hybrid_override_pattern", "conv_kernel", "use_mrope", "qk_layernorm"]


def _family_fields(model_type: str) -> set[str]:
    return set(transformers.AutoConfig.for_model(model_type).to_dict())


FIELDS = {name: _family_fields(config["model_type"]) for name, config in CONFIGS.items()}

values = st.one_of(st.none(), st.booleans(), st.integers(-3, 64), st.floats(-10, 10, allow_nan=False),
                   st.text(max_size=4), st.lists(st.integers(0, 3), max_size=3))
names = st.one_of(st.from_regex(r"[a-z][a-z0-9_]{0,14}", fullmatch=True), st.sampled_from(OTHER_FAMILIES))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from(sorted(CONFIGS)), extra=st.dictionaries(names, values, min_size=1, max_size=5))
def test_every_extra_field_is_used_or_reported(base, extra):
    config = CONFIGS[base]
    extra = {k: v for k, v in extra.items()
             if k not in config and k not in FIELDS[base] and k not in READ_ELSEWHERE and k not in NO_EFFECT}
    moe = {k for k, v in extra.items() if k in MOE_SIZES and v not in (None, 0, False, [], {})}
    try:
        _, ignored = import_hf({**config, **extra})
    except SpecError as err:
        # the only way an unknown field fails an import: it declares MoE layers, and then it is the error
        assert moe and {i.path[0] for i in err.issues} == moe, err
        return
    assert not moe
    assert {i.path[0] for i in ignored} == set(extra) - MOE_SIZES
    for issue in ignored:
        assert "ignored" in issue.message


@pytest.mark.parametrize("name", ["gemma2-2b", "gemma2-9b", "nemotron-nano-9b-v2", "nemotron-nano-12b-v2-base",
                                  "qwen3-8b"])
def test_published_configs_have_no_unread_field(name):
    assert import_hf(CONFIGS[name]).ignored == []


def test_qwen3_with_num_experts_is_refused_by_name():
    with pytest.raises(SpecError, match=r"num_experts: mixture-of-experts layers are not expressible"):
        import_hf_config({**CONFIGS["qwen3-8b"], "num_experts": 8, "num_experts_per_tok": 2})


def test_python_import_warns_and_the_cli_prints_each_ignored_field(tmp_path, capsys):
    config = {**CONFIGS["qwen3-8b"], "use_mrope": True}
    with pytest.warns(IgnoredConfigField, match="use_mrope: not a field of Qwen3 configs"):
        import_hf_config(config)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert main(["import-hf", str(path), "-o", str(tmp_path / "q.yaml")]) == 0
    assert "warning: " in capsys.readouterr().err and (tmp_path / "q.yaml").exists()
