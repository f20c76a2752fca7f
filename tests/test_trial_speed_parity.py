"""bench/gpu/trial_speed.sh's parity phase names the test files it runs (in the order that puts the newest first):
every file holding a GPU test must be among them, or a GPU call after a kernel change would skip its parity tests."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _parity_files() -> set[str]:
    script = (ROOT / "bench" / "gpu" / "trial_speed.sh").read_text()
    phase = re.search(r"^phase parity .*?(?<!\\)\n", script, re.S | re.M).group(0)
    return {name.split("::")[0] for name in re.findall(r"tests/\S+\.py(?:::\w+)?", phase)}


def test_the_parity_phase_runs_every_file_holding_a_gpu_test():
    holding = {str(path.relative_to(ROOT)) for path in (ROOT / "tests").rglob("test_*.py")
               if re.search(r"pytest\.mark\.gpu\b", path.read_text())}
    assert holding, "no GPU test found: the search itself is wrong"
    assert holding - _parity_files() == set(), "add these to trial_speed.sh's parity phase"
