"""The analytic check must not import torch: studies screen thousands of candidates a second with it."""

import subprocess
import sys


def test_analytic_check_imports_no_torch():
    code = ("import sys, archsearch.checks as c, archsearch.checks.roofline as r;"
            "from archsearch.spec import load_spec;"
            "s = load_spec('nemotron-nano-9b-v2'); rep = c.check_budget(s, 'a10g', '128k');"
            "r.project(s, c.get_device('a10g'), c.MemoryModel(s, c.CheckSettings()), 8192, 16384, 1);"
            "print('torch' in sys.modules, rep.fits)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]
