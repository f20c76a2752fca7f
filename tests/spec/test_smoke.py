import subprocess
import sys

from archsearch.spec import count_parameters, load_spec


def test_example_loads_without_torch():
    spec = load_spec("nemotron-h-tiny")
    assert spec.pattern_string == "M-M-*-M-M-*-M-"
    assert count_parameters(spec).total > 0
    # In a fresh interpreter: this test's own process may have torch from other tests.
    code = ("import sys; from archsearch.spec import count_parameters, load_spec;"
            "count_parameters(load_spec('nemotron-h-tiny')); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False"]
