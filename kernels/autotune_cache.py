"""Triton's on-disk autotune cache, extended to kernels whose configs carry a pre-hook.

With TRITON_CACHE_AUTOTUNING=1 (Triton >= 3.4; a study turns it on) each @triton.autotune kernel's timings are
stored beside its compiled kernels, so a second process picks the winner without benchmarking. Triton skips any
kernel with a pre-hook on a config, though: a function cannot be written to JSON. mamba-ssm (2.3.2) zeroes the
accumulators of eight of its kernels with such hooks (`init_to_zero`); its scan's backward runs four of them
(7-9 configs each), so without this module every process would benchmark ~32 configs again before its first
backward, whatever the study's cache held. On an H100 (2026-12-07) a warm study process benchmarked none of
mamba-ssm's kernels, hooked or not (bench/RESULTS.md, with the ptxas pin of archsearch/studies/compile_cache.py).

The hook is code, not data, and this process's configs still carry it. So a config is stored as what is the same
in every process (its kwargs, warps, stages, CTAs, register cap); on a hit the matching config of this process,
hook included, is the one that runs. Configs without hooks keep Triton's own path.
"""

from __future__ import annotations

import hashlib
import json
import sys
import types
from typing import Any, Callable, Iterable

FILE_SUFFIX = ".autotune-hooked.json"  # beside Triton's own "<kernel>.autotune.json", never read by it
_PATCHED = "_archsearch_hooked_cache"


def describe(config) -> str:
    """A config as it reads in any process: everything Triton compiles or launches it by, not its hooks."""
    return json.dumps({"kwargs": config.kwargs, "num_warps": config.num_warps, "num_stages": config.num_stages,
                       "num_ctas": config.num_ctas, "maxnreg": config.maxnreg,
                       "ir_override": getattr(config, "ir_override", None)}, sort_keys=True, default=str)


def target_hash() -> str:
    """The GPU backend's hash, part of Triton's own key (a module function so that CPU tests can stand one in)."""
    from triton.compiler.compiler import make_backend
    from triton.runtime.driver import driver
    return make_backend(driver.active.get_current_target()).hash()


def _jit_function(tuner):
    from triton.runtime.jit import JITFunction
    fn = tuner.fn
    while not isinstance(fn, JITFunction):  # through @triton.heuristics and the like
        fn = fn.fn
    return fn


def cache_key(tuner, tuning_key: tuple, configs: Iterable) -> str:
    """Triton's key (its version, the backend, the kernel's source, the environment that changes code, the tuning
    key, the candidate configs), with the configs as `describe` writes them."""
    from triton._C.libtriton import get_cache_invalidating_env_vars
    from triton.runtime.cache import triton_key
    parts = [triton_key(), target_hash(), _jit_function(tuner).cache_key,
             str(sorted(get_cache_invalidating_env_vars().items())), str(tuning_key)]
    return hashlib.sha256("-".join(parts + [describe(c) for c in configs]).encode()).hexdigest()


def _check_disk_cache(tuner, tuning_key: tuple, configs: list, bench: Callable[[], None]) -> bool:
    """Autotuner.check_disk_cache for configs with pre-hooks: True when the timings came from disk."""
    if not tuning_key or not any(c.pre_hook for c in configs):
        return type(tuner).check_disk_cache(tuner, tuning_key, configs, bench)
    from triton.runtime.cache import get_cache_manager
    cache = get_cache_manager(cache_key(tuner, tuning_key, configs))
    name = _jit_function(tuner).__name__[:150] + FILE_SUFFIX
    path = cache.get_file(name)
    if path:
        live = {describe(c): c for c in configs}
        try:
            with open(path) as f:
                stored = json.load(f)["configs_timings"]
            timings = {live[text]: timing for text, timing in stored}
        except (OSError, ValueError, KeyError, TypeError):
            timings = None  # unreadable or not these configs: benchmark again and overwrite
        if timings:
            tuner.cache[tuning_key] = min(timings, key=timings.get)
            tuner.configs_timings = timings
            return True
    bench()
    record = {"key": str(tuning_key), "configs_timings": [(describe(c), t) for c, t in tuner.configs_timings.items()]}
    cache.put(json.dumps(record), name, binary=False)
    return False


def persist_hooked(tuners: Iterable[Any]) -> int:
    """Give each autotuned kernel whose configs have pre-hooks the cache above; returns how many it changed.
    Follows TRITON_CACHE_AUTOTUNING as it is now (Triton read it when the kernel's module was imported)."""
    from triton.runtime.autotuner import Autotuner
    if not hasattr(Autotuner, "check_disk_cache"):  # Triton < 3.4: no autotune results on disk at all
        return 0
    from triton import knobs
    changed = 0
    for tuner in tuners:
        if not isinstance(tuner, Autotuner) or getattr(tuner, _PATCHED, False):
            continue
        if not any(c.pre_hook for c in tuner.configs):
            continue
        tuner.check_disk_cache = types.MethodType(_check_disk_cache, tuner)
        tuner.cache_results = tuner.cache_results or (knobs.autotuning.cache and not knobs.runtime.interpret)
        setattr(tuner, _PATCHED, True)
        changed += 1
    return changed


def persist_hooked_in_modules(prefix: str) -> int:
    """`persist_hooked` over every autotuned kernel defined at the top of the loaded modules named `prefix...`."""
    modules = [m for name, m in list(sys.modules.items()) if name.startswith(prefix) and m is not None]
    return persist_hooked(value for module in modules for value in list(vars(module).values()))
