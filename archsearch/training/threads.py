"""How many intra-op threads a CPU training uses.

Tiny models (the quickstart's, the tests') gain nothing from a second thread: their GEMMs are too small to split,
and on cores that other jobs share two threads waiting on each other made each step about 10x slower (measured,
bench/RESULTS.md "quickstart"). So a CPU training of a model under SMALL_MODEL_PARAMS uses one thread unless the
recipe's `cpu_threads` says otherwise; larger models get torch's default (as it was when this module loaded, so a
tiny run before them in the same process does not leave them on one thread). GPU trainings are not touched."""

from __future__ import annotations

import torch

from archsearch.spec import ModelSpec, count_parameters

SMALL_MODEL_PARAMS = 5_000_000
_DEFAULT_THREADS = torch.get_num_threads()


def cpu_threads_for(spec: ModelSpec, requested: int | None) -> int:
    """The intra-op thread count for a CPU training of `spec`."""
    if requested is not None:
        return requested
    return 1 if count_parameters(spec).total < SMALL_MODEL_PARAMS else _DEFAULT_THREADS


def apply_cpu_threads(device: torch.device, spec: ModelSpec, requested: int | None) -> int | None:
    """Sets torch's intra-op threads for a CPU training; returns the count in use (None on a GPU)."""
    if device.type != "cpu":
        return None
    threads = cpu_threads_for(spec, requested)
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    return threads
