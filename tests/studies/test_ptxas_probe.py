"""bench/ptxas_probe.py: at a process's exit, the ptxas release its Triton keyed kernels by, read from Triton's
cached entry, never re-run and mislabelled (run in child processes, with a stand-in Triton where one is needed)."""

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
import ptxas_probe  # noqa: E402  (bench/ is not a package)

# a stand-in for Triton's NVIDIA backend: get_ptxas_version cached by arch, as in Triton 3.6, and the device's arch
STAND_IN = """
import functools, sys, types
releases = {{90: "ptxas: NVIDIA (R) Ptx optimizing assembler\\nCuda compilation tools, release 13.0, V13.0.88\\n"
                 "Build cuda_13.0.r13.0/compiler.36424714_0\\n", 100: "Cuda compilation tools, release 12.9, V12.9.1\\n"}}
@functools.lru_cache()
def get_ptxas_version(arch=80):
    return releases[arch]
compiler = types.ModuleType("triton.backends.nvidia.compiler")
compiler.get_ptxas_version = get_ptxas_version
sys.modules["triton.backends.nvidia.compiler"] = compiler
target = types.SimpleNamespace(arch={device_arch})
driver = types.SimpleNamespace(active=types.SimpleNamespace(get_current_target=lambda: target))
runtime = types.ModuleType("triton.runtime")
runtime.driver = driver
sys.modules["triton"], sys.modules["triton.runtime"] = types.ModuleType("triton"), runtime
{keyed}
"""


def _exit_line(program: str) -> str:
    done = subprocess.run([sys.executable, "-c", ptxas_probe.prelude() + textwrap.dedent(program)],
                          capture_output=True, text=True, timeout=60, env={"TRITON_PTXAS_PATH": "/torch/bin/ptxas"})
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith(ptxas_probe.LINE)]
    assert len(lines) == 1, done.stdout  # one line, nothing of ptxas's other output
    return lines[0]


def test_the_cached_key_is_reported_with_its_release_only():
    line = _exit_line(STAND_IN.format(device_arch=90, keyed="get_ptxas_version(90)"))
    assert "keyed by ptxas release 13.0, V13.0.88;" in line and "'/torch/bin/ptxas'" in line
    assert re.fullmatch(r"ptxas at exit: .*", line)


@pytest.mark.parametrize("device_arch, keyed, expected", [
    (90, "", "none (no kernel was keyed)"),
    (90, "get_ptxas_version(100)", "unknown (no key cached for sm_90; ptxas now would be 13.0, V13.0.88)"),
])
def test_no_key_or_another_archs_key_is_never_reported_as_the_key(device_arch, keyed, expected):
    assert f"keyed by ptxas release {expected};" in _exit_line(STAND_IN.format(device_arch=device_arch, keyed=keyed))


def test_a_process_without_triton_says_so():
    assert "none (Triton's NVIDIA backend was not imported)" in _exit_line("x = 1")
