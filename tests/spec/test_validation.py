"""Every cross-field rule: the error names the field path, the value found and what is allowed."""

import copy

import pytest

from archsearch.spec import SpecError, parse_spec
from archsearch.spec.errors import format_path

BASE = {
    "name": "v", "vocab_size": 64, "d_model": 64, "max_context": 512, "pattern": "M-*-",
    "blocks": {"M": {"kind": "mamba2", "n_heads": 4, "head_dim": 16, "d_state": 8, "n_groups": 2},
               "*": {"kind": "attention", "n_heads": 4, "n_kv_heads": 2},
               "-": {"kind": "mlp", "ffn_ratio": 2}},
}


def with_changes(**changes):
    document = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        target = document
        for part in parents:
            target = target.setdefault(part, {})
        if value is KeyError:
            del target[last]
        else:
            target[last] = value
    return document


def only_issue(document):
    with pytest.raises(SpecError) as info:
        parse_spec(document)
    assert len(info.value.issues) == 1, info.value
    return info.value.issues[0]


def test_base_is_valid():
    spec = parse_spec(BASE)
    assert spec.pattern_string == "M-*-" and spec.warnings() == []


@pytest.mark.parametrize("changes, path, message, value, allowed", [
    ({"blocks__*__n_kv_heads": 3}, "blocks.*.n_kv_heads", "must be divisible by n_kv_heads", 3, "1, 2, 4"),
    ({"blocks__M__n_groups": 3}, "blocks.M.n_groups", "n_groups must divide n_heads (4)", 3, "1, 2, 4"),
    ({"blocks__M__expand": 2.0}, "blocks.M.n_heads", "exactly one of n_heads or expand", (4, 2.0), "n_heads: int"),
    ({"blocks__M__n_heads": None}, "blocks.M.n_heads", "exactly one of n_heads or expand", (None, None), "expand"),
    ({"blocks__M__n_heads": KeyError, "blocks__M__expand": 1.5, "blocks__M__head_dim": 64},
     "blocks.M.expand", "must be a multiple of head_dim (64)", 1.5, None),
    ({"blocks__M__n_heads": KeyError, "blocks__M__expand": 1.5, "blocks__M__n_groups": 4},
     "blocks.M.n_groups", "number of heads (6 = expand * d_model / head_dim)", 4, "1, 2, 3, 6"),
    ({"blocks__M__dt_min": 0.5}, "blocks.M.dt_min", "below dt_max (0.1)", 0.5, None),
    ({"blocks__M__A_init_range": [4, 2]}, "blocks.M.A_init_range", "low <= high", (4.0, 2.0), None),
    ({"blocks__M__dt_limit": [1, 1]}, "blocks.M.dt_limit", "low < high", (1.0, 1.0), None),
    ({"blocks__-__ffn_dim": 128}, "blocks.-.ffn_dim", "exactly one of ffn_dim or ffn_ratio", (128, 2.0), "ffn_dim"),
    ({"blocks__*__head_dim": 15}, "blocks.*.head_dim", "RoPE needs an even head_dim", 15, "rope_theta: null"),
    ({"blocks__*__n_heads": 6, "blocks__*__n_kv_heads": 3}, "blocks.*.n_heads", "must divide d_model (64)", 6,
     "set head_dim"),
    ({"d_model": 96, "blocks__*__n_heads": 32, "blocks__*__n_kv_heads": 4}, "blocks.*.n_heads",
     "RoPE needs an even head_dim; d_model / n_heads = 3", None, None),
    ({"blocks__*__window": 512}, "blocks.*.window", "below max_context (512)", 512, "1 .. 511, or null"),
    ({"pattern": "M-*-Q"}, "pattern", "symbol 'Q' of layer 4 is not defined", "M-*-Q", "'M', '*', '-'"),
    ({"pattern": "M-E"}, "pattern", "'E' of layer 2 (reserved for MoE blocks", "M-E", None),
    ({"pattern": "M-(*"}, "pattern", "'(' is never closed at position 2", "M-(*", None),
    ({"blocks__MM": {"kind": "mlp", "ffn_dim": 4}}, "blocks.MM", "one non-space character", "MM", "whitespace"),
    ({"blocks__*__kind": "transformer"}, "blocks.*.kind", "unknown block kind", "transformer", "mamba2, attention, mlp"),
    ({"blocks__*__kind": KeyError}, "blocks.*.kind", "needs a 'kind'", None, "mamba2, attention, mlp"),
    ({"blocks__*__heads": 4}, "blocks.*.heads", "unknown field", None, "n_heads"),
    ({"colour": "red"}, "colour", "unknown field", None, "d_model"),
    ({"vocab_size": KeyError}, "vocab_size", "required field is missing", None, None),
    ({"d_model": 0}, "d_model", "greater than or equal to 1", 0, None),
    ({"d_model": "wide"}, "d_model", "valid integer", "wide", None),
    ({"blocks__-__activation": "tanh"}, "blocks.-.activation", "relu2", "tanh", None),
    ({"norm__eps": 2}, "norm.eps", "less than 1", 2, None),
])
def test_rule(changes, path, message, value, allowed):
    issue = only_issue(with_changes(**changes))
    assert format_path(issue.path) == path
    assert message in issue.message + str(issue)
    if value is not None:
        assert issue.value == value
    if allowed is not None:
        assert allowed in issue.allowed
    assert path in str(issue)


def test_every_problem_is_reported_at_once():
    with pytest.raises(SpecError) as info:
        parse_spec(with_changes(**{"blocks__*__n_kv_heads": 3, "blocks__M__n_groups": 3, "pattern": "M-*-Z"}))
    paths = {format_path(issue.path) for issue in info.value.issues}
    assert paths == {"blocks.*.n_kv_heads", "blocks.M.n_groups", "pattern"}
    assert "3 problem(s)" in str(info.value)


def test_unused_block_is_a_warning_not_an_error():
    spec = parse_spec(with_changes(blocks__L={"kind": "attention", "n_heads": 4, "window": 64}))
    (warning,) = spec.warnings()
    assert format_path(warning.path) == "blocks.L" and "never used" in warning.message


def test_relative_sizes_resolve_against_d_model():
    spec = parse_spec(with_changes(**{"blocks__M__n_heads": KeyError, "blocks__M__expand": 2}))
    m = spec.blocks["M"].dims(spec.d_model)
    assert (m.n_heads, m.d_inner) == (8, 128)
    assert spec.blocks["-"].dims(64).ffn_dim == 128
    assert spec.blocks["*"].dims(64).head_dim == 16
