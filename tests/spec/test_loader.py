import json

import pytest

from archsearch.spec import SpecError, dump_spec, example_names, load_spec, loads_spec

GOOD = """\
name: tiny
vocab_size: 64
d_model: 32
max_context: 256
pattern: (M-*-)x2
blocks:
  M: {kind: mamba2, n_heads: 2, head_dim: 16, d_state: 8}
  "*": {kind: attention, n_heads: 2, n_kv_heads: 1}
  "-": {kind: mlp, ffn_ratio: 2}
"""


def error_of(text, source="spec.yaml"):
    with pytest.raises(SpecError) as info:
        loads_spec(text, source)
    return info.value


def test_errors_cite_file_line_column_of_the_field():
    text = GOOD.replace("n_kv_heads: 1", "n_kv_heads: 3")
    (issue,) = error_of(text).issues
    line = text.splitlines()[7]
    column = line.index("n_kv_heads: 3") + len("n_kv_heads: ") + 1  # the value inside the flow mapping
    assert issue.location == f"spec.yaml:8:{column}"
    assert str(issue).startswith(f"spec.yaml:8:{column}: blocks.*.n_kv_heads:")


def test_unknown_field_points_at_itself_and_lists_allowed_fields():
    err = error_of(GOOD + "colour: red\n")
    (issue,) = err.issues
    assert issue.location == "spec.yaml:10:9" and "unknown field" in str(issue) and "vocab_size" in issue.allowed


def test_pattern_error_points_at_the_pattern_line():
    (issue,) = error_of(GOOD.replace("(M-*-)x2", "(M-*-x2")).issues
    assert issue.location == "spec.yaml:5:10" and "never closed at position 0" in issue.message


def test_yaml_syntax_error_has_a_location():
    (issue,) = error_of("name: [unclosed\nvocab_size: 3\n").issues
    assert issue.location.startswith("spec.yaml:") and issue.location.count(":") == 2


def test_duplicate_keys_are_refused_with_both_lines():
    (issue,) = error_of(GOOD + "d_model: 64\n").issues
    assert "duplicate key 'd_model' (first at line 3)" in issue.message and issue.location == "spec.yaml:10:1"


def test_nested_duplicate_key():
    text = GOOD.replace("  M: {kind: mamba2,", "  M: {kind: mamba2, kind: mlp,")
    (issue,) = error_of(text).issues
    assert "duplicate key 'kind'" in issue.message


def test_unhashable_key():
    (issue,) = error_of("? [a, b]\n: 1\n").issues
    assert "plain value" in issue.message


@pytest.mark.parametrize("text, got", [("", "an empty document"), ("- 1\n- 2\n", "a list"), ("42\n", "a int"),
                                       ("just text\n", "a str")])
def test_documents_that_are_not_mappings(text, got):
    (issue,) = error_of(text).issues
    assert f"a spec must be a mapping of fields, got {got}" in issue.message


def test_several_documents_are_refused():
    assert "single document" in str(error_of(GOOD + "---\n" + GOOD))


def test_json_is_accepted():
    spec = loads_spec(GOOD)
    assert loads_spec(json.dumps(spec.to_dict())) == spec


def test_dump_then_load_is_the_identity_for_every_example():
    for name in example_names():
        spec = load_spec(name)
        again = loads_spec(dump_spec(spec))
        assert again == spec and again.spec_hash() == spec.spec_hash()


def test_spec_hash_ignores_formatting_name_and_description_but_not_the_model():
    spec = loads_spec(GOOD)
    reformatted = loads_spec(json.dumps({**spec.to_dict(), "name": "other", "description": "same model"}, indent=4))
    assert reformatted.spec_hash() == spec.spec_hash()
    explicit = loads_spec(GOOD.replace("(M-*-)x2", "M-*-M-*-"))
    assert explicit.layers == spec.layers  # the same layers, written differently, hash differently:
    assert explicit.spec_hash() != spec.spec_hash()  # the hash is of the document as stated
    assert loads_spec(GOOD.replace("d_state: 8", "d_state: 16")).spec_hash() != spec.spec_hash()
    assert spec.spec_hash() == loads_spec(GOOD).spec_hash() and len(spec.spec_hash()) == 16


def test_load_by_example_name_or_path(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text(GOOD)
    assert load_spec(path).name == "tiny"
    assert load_spec("nemotron-h-tiny.yaml") == load_spec("nemotron-h-tiny")
    with pytest.raises(SpecError, match="no such file or example") as info:
        load_spec(tmp_path / "missing.yaml")
    assert "nemotron-h-tiny" in str(info.value)


def test_file_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD.replace("d_model: 32", "d_model: -1"))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value.issues[0]).startswith(f"{path}:3:10: d_model:")
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(SpecError, match="cannot read file"):
        load_spec(binary)


def test_specs_are_immutable():
    spec = loads_spec(GOOD)
    with pytest.raises(Exception):
        spec.d_model = 64
