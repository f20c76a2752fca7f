import sys

from archsearch.spec import count_parameters, load_spec


def test_example_loads_without_torch():
    spec = load_spec("nemotron-h-tiny")
    assert spec.pattern_string == "M-M-*-M-M-*-M-"
    assert count_parameters(spec).total > 0
