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


def test_the_autotune_seed_holds_only_autotune_timings_and_its_card():
    """bench/gpu/autotune-seed.tgz is extracted into a GPU call's Triton cache: Triton's own autotune files
    (<kernel>.autotune.json) and kernels/autotune_cache.py's (<kernel>.autotune-hooked.json), each in its key's
    folder, and the card the timings were taken on; nothing else (no compiled kernel, no absolute path)."""
    import json
    import tarfile

    with tarfile.open(ROOT / "bench" / "gpu" / "autotune-seed.tgz") as seed:
        members = [m for m in seed.getmembers() if m.isfile()]
        names = {m.name for m in members}
        assert "./CARD" in names and seed.extractfile("./CARD").read().decode().startswith("NVIDIA ")
        timings = [m for m in members if m.name != "./CARD"]
        assert timings
        for member in timings:
            parts = member.name.split("/")
            assert len(parts) == 3 and parts[0] == "." and re.fullmatch(r"[A-Z0-9]{52}", parts[1]), member.name
            assert parts[2].endswith((".autotune.json", ".autotune-hooked.json")), member.name
            data = json.loads(seed.extractfile(member).read())
            assert set(data) >= {"key", "configs_timings"} and data["configs_timings"], member.name
