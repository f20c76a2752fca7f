"""Hugging Face configs of the wrong shape: published configs mutated at random (values of the wrong type, huge
or non-finite numbers, zeros and negatives, deleted fields, nested damage) end in a spec or in SpecError naming
the field, never in another exception; plus the hand-found cases, through the command line."""

import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archsearch.cli import main
from archsearch.hf import import_hf_config
from archsearch.spec import ModelSpec, SpecError
from archsearch.spec.errors import format_path

pytestmark = pytest.mark.filterwarnings("ignore::archsearch.hf.IgnoredConfigField")  # hostile extra keys

CONFIGS = {p.stem: json.loads(p.read_text()) for p in sorted((Path(__file__).parent / "configs").glob("*.json"))}
EXTRA_KEYS = ["sliding_window_pattern", "query_pre_attn_scalar", "layers_block_type", "layer_types", "rope_scaling",
              "rope_parameters", "time_step_limit", "expand", "architectures", "model_type", "use_sliding_window",
              "max_window_layers", "num_nextn_predict_layers", "head_dim", "dtype"]

# the values a hand-edited or hostile config holds where a number, a string or a list belongs
HOSTILE = [None, True, False, "", "x", "64", [], {}, [1], [[1]], {"a": 1}, 0, -1, 1, 3, 0.5, -0.5, 1e308, -1e-300,
           (1 << 53) + 1, 10**30, -(10**30), 10**400, math.nan, math.inf, -math.inf]
scalars = st.one_of(st.sampled_from(HOSTILE), st.integers(-(1 << 70), 1 << 70), st.floats(), st.text(max_size=6))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=12), inner, max_size=3)),
                      max_leaves=6)


def _shifted(value):
    """The original value in another shape: the kind of mistake a hand-edited config makes."""
    return st.sampled_from([str(value), [value], {"value": value}]) | values


@st.composite
def mutated_configs(draw):
    name = draw(st.sampled_from(sorted(CONFIGS)))
    config = json.loads(json.dumps(CONFIGS[name]))
    if draw(st.booleans()):  # then the family comes from `architectures`, itself maybe damaged
        del config["model_type"]
    for _ in range(draw(st.integers(1, 6))):
        key = draw(st.sampled_from(sorted(config) + EXTRA_KEYS))
        action = draw(st.sampled_from(["replace", "replace", "shift", "delete", "nested"]))
        if action == "delete":
            config.pop(key, None)
        elif action == "shift" and key in config:
            config[key] = draw(_shifted(config[key]))
        elif action == "nested" and isinstance(config.get(key), (list, dict)) and config[key]:
            inner = config[key]
            slot = draw(st.sampled_from(list(range(len(inner))) if isinstance(inner, list) else sorted(inner)))
            inner[slot] = draw(values)
        else:
            config[key] = draw(values)
    return name, config


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_configs())
def test_mutated_published_configs_end_in_a_spec_or_a_spec_error(case):
    name, config = case
    try:
        spec = import_hf_config(config, source=f"{name}.json")
    except SpecError as err:
        assert err.issues, "a SpecError names at least one field"
        for line in str(err).splitlines():
            assert len(line) < 600, "errors quote values cut short, never a whole document"
        return
    assert isinstance(spec, ModelSpec)


def _gemma(**changes):
    config = dict(CONFIGS["gemma2-2b"])
    config.pop("layer_types", None)  # the older spelling: every Nth layer global
    config.update(changes)
    return config


@pytest.mark.parametrize("config, field, fragment", [
    ({"architectures": 5}, "architectures", "must be a list of class names"),
    ({"architectures": [["LlamaForCausalLM"]]}, "architectures", "must be a list of class names"),
    ({"model_type": ["llama"]}, "model_type", "unsupported model family"),
    ({"model_type": {"a": 1}}, "model_type", "unsupported model family"),
    (_gemma(query_pre_attn_scalar=0), "query_pre_attn_scalar", "must be a positive number"),
    (_gemma(query_pre_attn_scalar=-4), "query_pre_attn_scalar", "must be a positive number"),
    (_gemma(sliding_window_pattern=-1), "sliding_window_pattern", "out of range"),
    (_gemma(sliding_window_pattern=0), "sliding_window_pattern", "out of range"),
    (_gemma(hidden_size=10**400), "hidden_size", "out of range"),
    (_gemma(rope_theta=10**400), "rope_theta", "must be a positive number"),
    ({**CONFIGS["nemotron-nano-9b-v2"], "time_step_limit": [0, 10**400]}, "time_step_limit", "pair of numbers"),
    ({**CONFIGS["nemotron-nano-9b-v2"], "hybrid_override_pattern": "M" * 5000}, "hybrid_override_pattern",
     "at most 4096"),
    ({**CONFIGS["qwen3-8b"], "head_dim": 1e300}, "head_dim", "out of range"),
])
def test_wrong_shapes_name_the_field(config, field, fragment):
    with pytest.raises(SpecError) as info:
        import_hf_config(config, source="config.json")
    issues = [i for i in info.value.issues if format_path(i.path) == field]
    assert issues and any(fragment in i.message or fragment in (i.allowed or "") for i in issues), info.value


def test_a_field_read_twice_is_reported_once():
    with pytest.raises(SpecError) as info:
        import_hf_config({"model_type": "llama", "vocab_size": 10})
    fields = [format_path(i.path) for i in info.value.issues]
    assert fields.count("hidden_size") == 1


def test_gemma2_pattern_one_is_all_global():
    spec = import_hf_config(_gemma(sliding_window_pattern=1, num_hidden_layers=4))
    assert all(layer.block.window is None for layer in spec.layers if layer.kind == "attention")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("text, fragment", [
    ("[1, 2]", "JSON object, got list"),
    ('"config"', "JSON object, got str"),
    ("42", "JSON object, got int"),
    ("null", "JSON object, got NoneType"),
    ("{", "not valid JSON"),
    ("[" * 100_000 + "]" * 100_000, "not a usable JSON document"),
    ('{"hidden_size": ' + "9" * 5000 + "}", "not a usable JSON document"),
    ('{"architectures": 5}', "architectures: must be a list"),
    ("\udcff", "cannot read"),
])
def test_import_hf_cli_refuses_bad_documents(capsys, tmp_path, text, fragment):
    path = tmp_path / "config.json"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    code, out, err = run(capsys, "import-hf", str(path))
    assert code == 2 and "Traceback" not in err and fragment in err, err
    assert len(err) < 2000


def test_import_hf_cli_of_gemma2_with_a_zero_scalar(capsys, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(_gemma(query_pre_attn_scalar=0)))
    code, out, err = run(capsys, "import-hf", str(path))
    assert code == 2 and "query_pre_attn_scalar" in err and "Traceback" not in err


def test_non_finite_numbers_in_json_are_refused():
    config = {**CONFIGS["qwen3-8b"], "rms_norm_eps": math.nan, "initializer_range": math.inf}
    with pytest.raises(SpecError) as info:
        import_hf_config(config)
    assert {format_path(i.path) for i in info.value.issues} >= {"rms_norm_eps", "initializer_range"}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_field_of_a_published_config_takes_every_hostile_value(name):
    """The exhaustive single-fault sweep behind the random one: each field (and each known optional field) of
    the config set to each hostile value, with and without model_type (then `architectures` picks the family)."""
    failures = []
    for drop_type in (False, True):
        base = {k: v for k, v in CONFIGS[name].items() if not (drop_type and k == "model_type")}
        for key in sorted(set(base) | set(EXTRA_KEYS)):
            for value in HOSTILE:
                try:
                    import_hf_config({**base, key: value})
                except SpecError:
                    pass
                except Exception as err:  # collected, so one run reports every failing field
                    failures.append(f"{key}={value!r:.40}: {type(err).__name__}: {err}")
    assert not failures, "\n".join(failures[:20])
