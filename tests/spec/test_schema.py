"""The spec's JSON Schema (what editors show and check): every field has a description for hover text, the
RoPE scalings and every block kind included, and block symbols are one character as the validator says."""

import re

import pytest

from archsearch.spec import ModelSpec, SpecError, example_names, load_spec, parse_spec
from archsearch.spec.kinds import KINDS
from archsearch.spec.pattern import is_valid_symbol

SCHEMA = ModelSpec.model_json_schema(mode="validation")


def _properties(node, where=""):
    """(path, property schema) of every property of every object in the schema."""
    if isinstance(node, dict):
        for name, prop in node.get("properties", {}).items():
            yield f"{where}.{name}", prop
        for key, child in node.items():
            yield from _properties(child, f"{where}/{key}")
    elif isinstance(node, list):
        for child in node:
            yield from _properties(child, where)


def test_every_field_has_a_description():
    fields = list(_properties(SCHEMA))
    assert len(fields) > 50  # the model, norm, init, three kinds and three RoPE scalings
    missing = [path for path, prop in fields if not prop.get("description")]
    assert missing == []
    for path, prop in fields:  # a description says more than the title hover showed before ("N Kv Heads")
        assert prop["description"].lower() != prop.get("title", "").lower(), path


def test_every_kind_and_scaling_is_in_the_schema():
    definitions = SCHEMA["$defs"]
    assert {cls.__name__ for cls in KINDS.values()} <= set(definitions)
    assert {"LinearRope", "YarnRope", "Llama3Rope"} <= set(definitions)
    assert "n_kv_heads" in definitions["AttentionBlock"]["properties"]
    assert "grouped-query" in definitions["AttentionBlock"]["properties"]["n_kv_heads"]["description"]


@pytest.mark.parametrize("symbol", ["M", "*", "-", "L", "é", "MM", "", " ", "x", "3", "(", "ab", "\t"])
def test_the_schema_takes_the_symbols_the_validator_takes(symbol):
    names = SCHEMA["properties"]["blocks"]["propertyNames"]
    by_schema = names["minLength"] <= len(symbol) <= names["maxLength"] and re.search(names["pattern"], symbol)
    assert bool(by_schema) == is_valid_symbol(symbol)
    document = {"name": "s", "vocab_size": 8, "d_model": 16, "max_context": 64, "pattern": [symbol] if symbol
                else "M", "blocks": {symbol: {"kind": "mlp", "ffn_dim": 8}}}
    if is_valid_symbol(symbol):
        parse_spec(document)
    else:
        with pytest.raises(SpecError):
            parse_spec(document)


def test_every_example_passes_the_schemas_symbol_rule():
    names = SCHEMA["properties"]["blocks"]["propertyNames"]
    for name in example_names():
        for symbol in load_spec(name).blocks:
            assert len(symbol) == 1 and re.search(names["pattern"], symbol), (name, symbol)
