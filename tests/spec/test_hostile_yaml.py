"""Hostile YAML: recursive aliases, alias bombs, booleans for integers, huge integers (issue 13, points 2 and 8)."""

import time

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archsearch.errors import UserError
from archsearch.spec import SpecError, loads_spec
from archsearch.spec.loader import MAX_NODES
from archsearch.studies.documents import FileError, read_yaml

GOOD = """\
name: tiny
vocab_size: 64
d_model: 32
max_context: 256
pattern: A-
blocks:
  A: {kind: attention, n_heads: 2}
  "-": {kind: mlp, ffn_ratio: 2}
"""

BOMB = "a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n" + "".join(
    f"{n}: &{n} [{','.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi"))


def error_of(text):
    with pytest.raises(SpecError) as info:
        loads_spec(text, "spec.yaml")
    return info.value


def test_recursive_alias_is_refused_at_once():
    start = time.perf_counter()
    err = error_of("a: &a [*a]\n")
    assert time.perf_counter() - start < 0.5
    (issue,) = err.issues
    assert "recursive YAML alias" in issue.message and issue.location.startswith("spec.yaml:1:")


def test_recursive_alias_in_a_mapping_is_refused():
    assert "recursive" in str(error_of("a: &a {b: *a}\n"))


def test_nested_alias_bomb_is_refused_quickly_without_the_input():
    assert len(BOMB) < 400
    start = time.perf_counter()
    err = error_of(BOMB)
    assert time.perf_counter() - start < 0.5
    text = str(err)
    assert f"more than {MAX_NODES} values" in text and "spec.yaml:" in text
    assert "lol" not in text and len(text) < 400


def test_merge_key_bomb_is_refused_quickly():
    text = "a: &a {x: 1, y: 2, z: 3}\n" + "".join(
        f"{n}: &{n} {{<<: [{','.join(['*' + p] * 9)}]}}\n" for p, n in zip("abcdefg", "bcdefgh"))
    start = time.perf_counter()
    assert "more than" in str(error_of(text))
    assert time.perf_counter() - start < 0.5


def test_bomb_in_a_study_file_is_a_file_error(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(BOMB)
    with pytest.raises(FileError) as info:
        read_yaml(path, "study file")
    assert str(path) in str(info.value) and "lol" not in str(info.value)


def test_shared_aliases_within_the_bound_still_load():
    text = GOOD.replace('  "-": {kind: mlp, ffn_ratio: 2}', '  "-": &mlp {kind: mlp, ffn_ratio: 2}\n  B: *mlp')
    assert loads_spec(text).blocks["B"].ffn_ratio == 2


def test_merge_keys_load():
    text = GOOD.replace('  "-": {kind: mlp, ffn_ratio: 2}',
                        '  "-": &mlp {kind: mlp, ffn_ratio: 2}\n  B: {<<: *mlp, ffn_ratio: 3}')
    spec = loads_spec(text)
    assert spec.blocks["B"].kind == "mlp" and spec.blocks["B"].ffn_ratio == 3


def test_duplicate_keys_are_still_refused_beside_a_merge():
    text = GOOD.replace('  "-": {kind: mlp, ffn_ratio: 2}',
                        '  "-": &mlp {kind: mlp, ffn_ratio: 2}\n  B: {<<: *mlp, gated: true, gated: false}')
    assert "duplicate key 'gated'" in str(error_of(text))


@pytest.mark.parametrize("field,old", [("d_model", "d_model: 32"), ("vocab_size", "vocab_size: 64"),
                                       ("max_context", "max_context: 256"),
                                       ("blocks.A.n_heads", "n_heads: 2")])
def test_booleans_are_not_integers(field, old):
    key = old.split(":")[0]
    (issue,) = error_of(GOOD.replace(old, f"{key}: true")).issues
    assert str(issue).startswith("spec.yaml:") and f"{field}: must be an integer, not a boolean (got True)" in str(issue)
    assert "allowed: an integer 1 .. " in str(issue) or "allowed: an integer 2 .. " in str(issue)


@pytest.mark.parametrize("old,field", [("max_context: 256", "max_context"), ("d_model: 32", "d_model"),
                                       ("vocab_size: 64", "vocab_size"), ("n_heads: 2", "blocks.A.n_heads")])
def test_a_400_digit_integer_is_a_bound_error_naming_the_field(old, field):
    key = old.split(":")[0]
    (issue,) = error_of(GOOD.replace(old, f"{key}: {'9' * 400}")).issues
    text = str(issue)
    assert f"{field}: Input should be less than or equal to" in text and len(text) < 300


def test_a_huge_window_and_repeat_count_are_bound_errors():
    (issue,) = error_of(GOOD.replace("n_heads: 2}", "n_heads: 2, window: 1000000000000}")).issues
    assert "blocks.A.window" in str(issue) and "less than or equal to" in str(issue)
    (issue,) = error_of(GOOD.replace("pattern: A-", "pattern: Ax" + "9" * 400)).issues
    assert "repeat count" in str(issue) and len(str(issue)) < 400


# ---------------------------------------------------------------------------------------------- property
_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20))
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)), max_leaves=20)
_FIELDS = ["name", "vocab_size", "d_model", "max_context", "pattern", "blocks", "norm", "init", "kind", "n_heads"]


def _documents():
    dumped = st.dictionaries(st.sampled_from(_FIELDS), _values, max_size=8).map(
        lambda d: yaml.safe_dump(d, sort_keys=False))
    fragments = st.lists(st.sampled_from(["a: ", "&x ", "*x", "[", "]", "{", "}", "<<: ", "- ", "\n", "  ", "1",
                                          "true", "d_model", ": ", ", ", "'", '"', "?", "!!python/object ", "~",
                                          "9" * 50, "\t", "#", "&y ", "*y", "pattern: A\n"]), max_size=30).map("".join)
    mutated = st.tuples(st.just(GOOD), st.integers(0, len(GOOD)), st.text(max_size=10)).map(
        lambda t: t[0][:t[1]] + t[2] + t[0][t[1]:])
    return st.one_of(dumped, fragments, mutated, st.text(max_size=60))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_documents())
def test_any_small_document_loads_or_raises_a_user_error(text):
    try:
        loads_spec(text, "fuzz.yaml")
    except UserError as err:
        assert isinstance(err, SpecError) and len(str(err)) < 5000
