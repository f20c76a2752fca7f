"""Search spaces: paths checked against the schema, generators that only make valid patterns, probes that catch
ranges that can only produce invalid specs."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archsearch.spec import expand_pattern, parse_spec
from archsearch.studies import FileError, RandomSource, check_space, parse_space
from archsearch.studies.params import PointSource
from archsearch.studies.pattern_space import PatternSpace, place

from studies_helpers import BASE_SPEC


def _base():
    return parse_spec(BASE_SPEC)


def _space(**doc):
    return parse_space(doc)


def test_block_path_that_does_not_exist_is_named():
    space = _space(parameters={"blocks.Q.d_state": {"type": "int", "low": 8, "high": 16},
                               "blocks.M.nonsense": 3, "dmodel": {"type": "categorical", "choices": [64]},
                               "pattern": "MM"})
    with pytest.raises(FileError) as info:
        check_space(space, _base())
    text = str(info.value)
    assert "blocks.Q.d_state" in text and "defines no block 'Q'" in text
    assert "block 'M' (mamba2) has no field 'nonsense'" in text
    assert "no spec field 'dmodel'" in text
    assert "use the `pattern:` generator" in text


def test_range_that_only_makes_invalid_specs_is_named():
    # n_groups must divide the 2 heads of block M: 3 and 5 never do, whatever else is drawn.
    space = _space(parameters={"blocks.M.n_groups": {"type": "categorical", "choices": [3, 5]},
                               "d_model": {"type": "categorical", "choices": [64, 128]}})
    with pytest.raises(FileError) as info:
        check_space(space, _base())
    assert "parameters.blocks.M.n_groups" in str(info.value)
    assert "can only produce invalid specs" in str(info.value)
    assert "d_model" not in str(info.value).split("n_groups", 1)[1]


def test_partially_invalid_range_is_accepted():
    # window 4096 is fine, 3_000_000 exceeds max_context: some values valid, so the space is usable.
    space = _space(pattern={"n_layers": 4, "attention_count": 2, "local_global": "1:1"},
                   parameters={"blocks.L.window": {"type": "categorical", "choices": [4096, 3000000]}})
    check_space(space, _base())


def test_generator_needing_undefined_block_is_an_error():
    base = dict(BASE_SPEC, blocks={k: v for k, v in BASE_SPEC["blocks"].items() if k != "L"})
    space = _space(pattern={"n_layers": 4, "attention_count": 2,
                            "local_global": {"type": "categorical", "choices": ["0:1", "3:1"]}})
    with pytest.raises(FileError, match="can produce layers 'L'"):
        check_space(space, parse_spec(base))


def test_when_must_name_an_earlier_parameter():
    space = _space(parameters={"blocks.-.ffn_ratio": {"type": "categorical", "choices": [2, 3],
                                                      "when": {"pattern.mlp": "interleave"}}})
    with pytest.raises(FileError, match="not a searched parameter listed before"):
        check_space(space, _base())


def test_conditional_parameters_are_drawn_only_when_active():
    space = _space(pattern={"n_layers": 4, "attention_count": {"type": "int", "low": 0, "high": 2},
                            "local_global": "1:1", "mlp": {"type": "categorical", "choices": ["interleave", "none"]}},
                   parameters={"blocks.L.window": {"type": "categorical", "choices": [16, 32]},
                               "blocks.-.ffn_ratio": {"type": "categorical", "choices": [2, 3],
                                                      "when": {"pattern.mlp": "interleave"}}})
    check_space(space, _base())
    no_attention = space.sample(PointSource({"pattern.attention_count": 0, "pattern.mlp": "none"}))
    assert "blocks.L.window" not in no_attention.values and "blocks.-.ffn_ratio" not in no_attention.values
    both = space.sample(PointSource({"pattern.attention_count": 2, "pattern.mlp": "interleave"}))
    assert both.values["blocks.L.window"] == 16 and both.values["blocks.-.ffn_ratio"] == 2
    assert set(both.pattern) == {"M", "L", "*", "-"}


@pytest.mark.parametrize("count, n, how, expected", [
    (0, 6, "evenly", []), (1, 6, "evenly", [3]), (2, 8, "evenly", [2, 6]), (3, 8, "late", [4, 6, 7]),
    (8, 8, "late", list(range(8))), (5, 6, "evenly", [0, 1, 3, 4, 5]),
])
def test_placement(count, n, how, expected):
    assert place(count, n, how) == expected


def test_local_global_ratio_and_mlp_interleave():
    generator = PatternSpace(n_layers=8, attention_count=4, local_global="3:1", mlp="interleave")
    layers = generator.layers(generator.sample(PointSource()))
    assert "".join(layers) == "M-L-M-L-M-L-M-*-"
    explicit = PatternSpace(n_layers=6, placement=[0, 5], mlp="none")
    assert explicit.build(explicit.sample(PointSource())) == "*MMMM*"


def test_explicit_positions_beyond_the_smallest_stack_are_refused():
    with pytest.raises(FileError, match="beyond the smallest n_layers"):
        parse_space({"pattern": {"n_layers": {"type": "int", "low": 3, "high": 8}, "placement": [1, 5]}})


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**31), n_low=st.integers(1, 12), extra=st.integers(0, 12),
       ratio=st.sampled_from(["0:1", "1:1", "3:1", "1:0", "2:3"]))
def test_generated_patterns_are_always_valid(seed, n_low, extra, ratio):
    generator = PatternSpace(n_layers={"type": "int", "low": n_low, "high": n_low + extra},
                             attention_ratio={"type": "float", "low": 0.0, "high": 1.0},
                             placement={"type": "categorical", "choices": ["evenly", "late"]},
                             local_global=ratio, mlp={"type": "categorical", "choices": ["interleave", "none"]})
    drawn = generator.sample(RandomSource(seed))
    layers = generator.layers(drawn)
    mixers = [s for s in layers if s != "-"]
    assert len(mixers) == drawn["n_layers"]
    assert expand_pattern(generator.build(drawn)) == tuple(layers)
    n_attention = sum(s in "*L" for s in mixers)
    assert n_attention == min(drawn["n_layers"], int(drawn["attention_ratio"] * drawn["n_layers"] + 0.5))
    if ratio.endswith(":0"):
        assert "*" not in mixers
    elif n_attention:
        assert mixers[max(i for i, s in enumerate(mixers) if s in "*L")] == "*"  # the last one is global


def test_shipped_space_samples_valid_specs():
    from archsearch.studies import load_space

    space, marks, source = load_space("hybrid-tiny")
    check_space(space, _base(), marks, source)
    source_ = RandomSource(1)
    base_doc = _base().to_dict()
    for _ in range(200):
        space.sample(source_).spec(base_doc, "t")  # raises on an invalid spec


def test_grid_lists_every_value():
    space = _space(pattern={"n_layers": {"type": "int", "low": 2, "high": 6, "step": 2}},
                   parameters={"norm.eps": {"type": "float", "low": 1e-6, "high": 3e-6, "step": 1e-6}})
    assert space.grid() == {"pattern.n_layers": [2, 4, 6], "norm.eps": [1e-6, 2e-6, 3e-6]}
    with pytest.raises(FileError, match="needs a step"):
        _space(parameters={"norm.eps": {"type": "float", "low": 1e-6, "high": 1e-5}}).grid()
