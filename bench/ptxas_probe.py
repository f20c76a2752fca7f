"""Which ptxas a process's Triton keyed its kernels and autotune results by, printed when the process exits: used by
bench_study_time.py --stacks, so that a warm study process that still re-tunes shows whether its key differs from
the cold one's (archsearch/studies/compile_cache.py says why it could).

Triton reads the ptxas version once per process, at the first key it makes (`get_ptxas_version`, cached by arch);
this reads that cached entry at exit without importing anything new. `TRITON_PTXAS_PATH` is printed as it stands
at exit: inductor may have set it after the key was made, so it is a clue, not the key.

    python -c "$(python -c 'import ptxas_probe; print(ptxas_probe.prelude())')"   # (bench_study_time does this)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

LINE = "ptxas at exit: "  # the printed line's start (bench_study_time.py finds it in the study's log)


def _release(version_text: str) -> str:
    """'13.0, V13.0.88' from ptxas --version's output (its 'release' line), else the output's first line."""
    lines = version_text.strip().splitlines() or [""]
    found = next((line for line in lines if "release" in line), lines[0])
    return found.split("release", 1)[-1].strip()


def _current_arch() -> int | None:
    try:
        from triton.runtime import driver  # already imported wherever a key was made

        return driver.active.get_current_target().arch
    except Exception:
        return None


def keyed_by() -> str:
    """The ptxas release this process's Triton keyed by, or why none can be told."""
    compiler = sys.modules.get("triton.backends.nvidia.compiler")
    version = getattr(compiler, "get_ptxas_version", None)
    if version is None or not hasattr(version, "cache_info"):
        return "none (Triton's NVIDIA backend was not imported)"
    if not version.cache_info().currsize:
        return "none (no kernel was keyed)"
    arch = _current_arch()
    if arch is None:
        return "unknown (the device's arch could not be read)"
    hits = version.cache_info().hits
    try:
        text = version(arch)
    except Exception as error:  # ptxas could not be run again
        return f"unknown ({error!r})"
    if version.cache_info().hits == hits:  # not the cached entry: the key was made for another arch
        return f"unknown (no key cached for sm_{arch}; ptxas now would be {_release(text)})"
    return _release(text)


def print_report() -> None:
    print(f"{LINE}Triton keyed by ptxas release {keyed_by()}; TRITON_PTXAS_PATH at exit: "
          f"{os.environ.get('TRITON_PTXAS_PATH')!r}", flush=True)


def prelude() -> str:
    """Source for the start of a `python -c` program: print the report when the process exits."""
    return (f"import atexit, sys\nsys.path.insert(0, {str(Path(__file__).resolve().parent)!r})\n"
            "import ptxas_probe\natexit.register(ptxas_probe.print_report)\n")
