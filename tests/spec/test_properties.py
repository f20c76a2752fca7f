"""Malformed input of any shape ends in the documented error (SpecError / PatternError), never another one."""

import json

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archsearch.spec import ModelSpec, PatternError, SpecError, expand_pattern, compress_pattern, loads_spec, parse_spec

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VALID = {
    "name": "p", "vocab_size": 64, "d_model": 32, "max_context": 256, "pattern": "(M-*-)x2",
    "blocks": {"M": {"kind": "mamba2", "n_heads": 2, "head_dim": 16, "d_state": 8},
               "*": {"kind": "attention", "n_heads": 2, "n_kv_heads": 1},
               "-": {"kind": "mlp", "ffn_ratio": 2}},
}

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(1 << 70), max_value=1 << 70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
junk = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                    max_leaves=12)


def _paths(document, prefix=()):
    yield prefix
    if isinstance(document, dict):
        for key, value in document.items():
            yield from _paths(value, prefix + (key,))


ALL_PATHS = list(_paths(VALID))[1:]


def _replace(document, path, value):
    if len(path) == 1:
        return {**document, path[0]: value}
    return {**document, path[0]: _replace(document[path[0]], path[1:], value)}


def _accepts_or_spec_error(document):
    try:
        spec = parse_spec(document)
    except SpecError as err:
        assert err.issues and all(str(issue) for issue in err.issues)
        return None
    assert isinstance(spec, ModelSpec)
    spec.layers  # an accepted spec always expands
    return spec


@SETTINGS
@given(junk)
def test_any_document_is_a_spec_or_a_spec_error(document):
    _accepts_or_spec_error(document)


@SETTINGS
@given(st.sampled_from(ALL_PATHS), junk)
def test_any_field_replaced_by_junk(path, value):
    _accepts_or_spec_error(_replace(VALID, path, value))


@SETTINGS
@given(st.sampled_from(ALL_PATHS), st.integers(min_value=-(1 << 80), max_value=1 << 80))
def test_absurd_sizes(path, value):
    spec = _accepts_or_spec_error(_replace(VALID, path, value))
    if spec is not None:
        from archsearch.spec import count_parameters, inference_state, training_flops_per_token

        assert count_parameters(spec).total > 0
        assert training_flops_per_token(spec, spec.max_context) > 0
        assert inference_state(spec, spec.max_context).total >= 0


@SETTINGS
@given(st.text(max_size=200))
def test_any_text_loads_or_raises_spec_error(text):
    try:
        loads_spec(text, "fuzz.yaml")
    except SpecError:
        pass


@SETTINGS
@given(junk)
def test_yaml_and_json_dumps_of_junk(document):
    for text in (yaml.safe_dump(document), json.dumps(document, allow_nan=True)):
        try:
            loads_spec(text)
        except SpecError:
            pass


@SETTINGS
@given(st.text(alphabet="M*-LE()x0123456789 \t\n#", max_size=40))
def test_any_pattern_expands_or_raises_pattern_error(text):
    try:
        layers = expand_pattern(text)
    except PatternError as err:
        assert err.position is None or 0 <= err.position <= len(text)
        return
    assert layers and all(len(s) == 1 for s in layers)


@SETTINGS
@given(st.one_of(junk, st.lists(st.text(max_size=3), max_size=6)))
def test_any_non_string_pattern_raises_pattern_error(value):
    try:
        expand_pattern(value)
    except PatternError:
        pass


@SETTINGS
@given(st.lists(st.sampled_from("M*-L"), min_size=1, max_size=60))
def test_compress_then_expand_is_the_identity(symbols):
    assert expand_pattern(compress_pattern(symbols)) == tuple(symbols)
