"""A study's compile and autotune caches, kept beside its storage so that trials, workers and reruns reuse what
torch.compile (inductor's FX graph and AOTAutograd caches, its autotuning) and Triton (compiled kernels, and
@triton.autotune results where Triton >= 3.4 caches them; archsearch.kernels.autotune_cache adds the pre-hooked
kernels Triton skips) produced once.

Where: for `sqlite:///path/x.db`, the folder `path/x.compile-cache/`; for any other database (PostgreSQL, an
in-memory SQLite), `~/.cache/archsearch/compile/<study name>/`. ARCHSEARCH_COMPILE_CACHE=<folder> puts it there
instead; ARCHSEARCH_COMPILE_CACHE=off leaves the environment as it is. A cache folder or ptxas already set in the
environment (TRITON_CACHE_DIR, TRITON_PTXAS_PATH, ...) is kept. The caches are keyed by their content (graph,
versions, device), so one folder serves any number of studies and workers at once.

AOTAutograd's cache skips, by default, every graph holding a custom autograd.Function (torch cannot vouch that
the function's code is in its key): a Mamba layer on the composite path has two (our Triton conv, the gated norm),
so every process traced their forward and backward again before finding inductor's compiled code (the fused mixer,
the GPU default, is two torch.library ops instead). The study's variables let that cache take them, and tag every
cache key with a fingerprint of what the key would miss: the source of archsearch's kernels and mamba-ssm's
version. Editing a kernel then misses the cache instead of loading stale code.

Triton keys its compiled kernels and its autotune results by the version of the ptxas it runs, read once per
process, the first time a key is made. Inductor points Triton at torch's own ptxas (CUDA wheels ship one: torch
2.11's in torch/bin, CUDA 13.0 on the GPU machine, where Triton's is 12.8) when it compiles a kernel in the
process, so which version a process keys by depends on whether something made a key before that switch: one
process can key mamba-ssm's kernels by one version and the next by the other. Setting TRITON_PTXAS_PATH to torch's
ptxas from the start gives every process one version whatever the order; torch's, because torch bundles it against
miscompiles by Triton's (pytorch#163801). On an H100 (2026-12-07, bench/RESULTS.md; before and after, in two
sessions): without it a warm study process autotuned all fourteen of mamba-ssm's scan kernels again (68 s of a
78 s warm-up, every graph a cache hit); with it, none (warm-up 9.4 s). Blackwell's ptxas is another variable
(TRITON_PTXAS_BLACKWELL_PATH), which inductor leaves alone.

The variables must be in the environment before torch and Triton read them: `study run` sets them in its own
process (before the first compile) and hands them to every worker it starts. Torch-free.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import MutableMapping

from ..errors import UserError
from ..storage.urls import safe_folder_name, sqlite_sibling

CACHE_ENV = "ARCHSEARCH_COMPILE_CACHE"
OFF = "off"
DEFAULT_ROOT = Path("~/.cache/archsearch/compile")
ALLOW_CUSTOM_AUTOGRAD = "TORCHINDUCTOR_AUTOGRAD_CACHE_ALLOW_CUSTOM_AUTOGRAD"
CACHE_KEY_TAG = "TORCH_COMPILE_CACHE_KEY_TAG"  # part of every inductor and AOTAutograd cache key
AUTOTUNING_SINCE = (3, 4)  # Triton caches @triton.autotune timings on disk (TRITON_CACHE_AUTOTUNING) from 3.4.0
PTXAS = "TRITON_PTXAS_PATH"
KEPT_WHEN_SET = ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", PTXAS)  # the user's choice wins


def cache_folder(url: str, study_name: str, environ: MutableMapping[str, str] | None = None) -> Path | None:
    """The study's cache folder (not created), or None when ARCHSEARCH_COMPILE_CACHE=off."""
    environ = os.environ if environ is None else environ
    chosen = environ.get(CACHE_ENV, "").strip()
    if chosen.lower() == OFF:
        return None
    if chosen:
        return Path(chosen).expanduser()
    return sqlite_sibling(url, ".compile-cache") or DEFAULT_ROOT.expanduser() / safe_folder_name(study_name)


def triton_version() -> tuple[int, ...] | None:
    try:
        text = version("triton")
    except PackageNotFoundError:
        return None
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3]) or None


def kernels_fingerprint() -> str:
    """A hash of the code that runs inside compiled graphs without being in torch's cache keys: archsearch's
    kernels (their source files) and mamba-ssm (its installed version)."""
    digest = hashlib.sha256()
    spec = importlib.util.find_spec("archsearch.kernels")  # imports archsearch, not its kernels (no torch)
    for root in (spec.submodule_search_locations or []) if spec else []:
        for source in sorted(Path(root).glob("*.py")):
            digest.update(source.name.encode() + b"\0" + source.read_bytes() + b"\0")
    try:
        digest.update(f"mamba_ssm {version('mamba_ssm')}".encode())
    except PackageNotFoundError:
        digest.update(b"no mamba_ssm")
    return digest.hexdigest()[:16]


# Where torch's CUDA wheels put their ptxas, and inductor looks for it: torch/_inductor/bin since pytorch#186020,
# torch/bin before (torch 2.11, the GPU machine's)
TORCH_PTXAS_PLACES = (Path("_inductor") / "bin" / "ptxas", Path("bin") / "ptxas")


def torch_ptxas() -> str | None:
    """The ptxas that torch ships, which inductor hands to Triton; None without one."""
    spec = importlib.util.find_spec("torch")  # the package's location, without importing it
    for root in (spec.submodule_search_locations or []) if spec else []:
        for place in TORCH_PTXAS_PLACES:
            candidate = Path(root) / place
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return None


def cache_variables(folder: Path, triton: tuple[int, ...] | None) -> dict[str, str]:
    """The environment variables that keep torch.compile's and Triton's work in `folder`."""
    folder = folder.expanduser().resolve()
    env = {
        "TORCHINDUCTOR_CACHE_DIR": str(folder / "inductor"),  # FX graph, AOTAutograd, autotune results, kernels
        "TRITON_CACHE_DIR": str(folder / "triton"),  # Triton's compiled kernels (ours, mamba-ssm's)
        # on by default in recent torch; explicit so that nothing in the environment has them off
        "TORCHINDUCTOR_FX_GRAPH_CACHE": "1",
        "TORCHINDUCTOR_AUTOGRAD_CACHE": "1",
        # graphs with custom autograd.Functions cached too, safe with the tag (module docstring)
        ALLOW_CUSTOM_AUTOGRAD: "1",
        CACHE_KEY_TAG: f"archsearch-kernels-{kernels_fingerprint()}",
    }
    if triton is not None and triton >= AUTOTUNING_SINCE:
        env["TRITON_CACHE_AUTOTUNING"] = "1"
    ptxas = torch_ptxas()
    if ptxas is not None:  # one ptxas, so one cache key, in cold and warm processes alike (module docstring)
        env[PTXAS] = ptxas
    return env


def study_cache_env(url: str, study_name: str, environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """The variables to add to `environ` for this study (empty when off): a cache folder or ptxas already set there
    is kept; the cache switches are set on."""
    environ = os.environ if environ is None else environ
    folder = cache_folder(url, study_name, environ)
    if folder is None:
        return {}
    wanted = cache_variables(folder, triton_version())
    theirs, ours = environ.get(CACHE_KEY_TAG, ""), wanted[CACHE_KEY_TAG]
    if theirs:  # a tag of the user's own: both count (a worker inherits the joined one)
        wanted[CACHE_KEY_TAG] = theirs if ours in theirs else f"{theirs}+{ours}"
    return {k: v for k, v in wanted.items() if not (k in KEPT_WHEN_SET and environ.get(k))}


def use_study_cache(url: str, study_name: str) -> dict[str, str]:
    """Put the study's cache variables in this process's environment (and in torch's configuration when torch
    already read it); returns what was set."""
    env = study_cache_env(url, study_name)
    for key in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR"):
        if key in env:
            try:
                Path(env[key]).mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise UserError(f"compile cache folder {env[key]!r} cannot be created ({err.strerror}); set "
                                f"{CACHE_ENV} to a writable folder, or {CACHE_ENV}=off") from None
    os.environ.update(env)
    # Configurations read their variables once, at import: follow them if torch got there first (no torch import).
    inductor = sys.modules.get("torch._inductor.config")
    if inductor is not None and env:
        inductor.fx_graph_cache = True
    functorch = sys.modules.get("torch._functorch.config")
    if functorch is not None and env:
        functorch.enable_autograd_cache = True
        functorch.autograd_cache_allow_custom_autograd_functions = True
    compiler = sys.modules.get("torch.compiler.config")
    if compiler is not None and CACHE_KEY_TAG in env:
        compiler.cache_key_tag = env[CACHE_KEY_TAG]
    return env
