"""Spec diff: every path of any spec, flagged where the specs disagree."""

from archsearch.dashboard.specdiff import flatten, spec_diff


def test_flatten_keeps_lists_and_empty_tables_whole():
    spec = {"d_model": 64, "blocks": {"M": {"kind": "mamba2", "d_state": 16}}, "pattern": ["M", "*"], "norm": {}}
    assert flatten(spec) == {"d_model": 64, "blocks.M.kind": "mamba2", "blocks.M.d_state": 16,
                             "pattern": ["M", "*"], "norm": {}}


def test_diff_of_three_specs_with_a_block_only_some_have():
    a = {"d_model": 64, "blocks": {"M": {"d_state": 16}}}
    b = {"d_model": 64, "blocks": {"M": {"d_state": 32}, "L": {"window": 32}}}
    c = {"d_model": 96, "blocks": {"M": {"d_state": 16}}}
    rows = {r.path: r for r in spec_diff([a, b, c])}
    assert list(rows) == ["d_model", "blocks.M.d_state", "blocks.L.window"]
    assert rows["d_model"].values == (64, 64, 96) and rows["d_model"].differs
    assert rows["blocks.M.d_state"].values == (16, 32, 16) and rows["blocks.M.d_state"].differs
    assert rows["blocks.L.window"].values == (None, 32, None) and rows["blocks.L.window"].differs


def test_identical_specs_differ_nowhere():
    spec = {"d_model": 64, "blocks": {"M": {"d_state": 16}}}
    assert not any(r.differs for r in spec_diff([spec, dict(spec)]))
