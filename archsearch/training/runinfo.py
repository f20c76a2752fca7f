"""What a run records about where it ran: library versions, the device's peak FLOP/s (from archsearch.checks'
catalog), peak memory."""

from __future__ import annotations

import platform
import re
import resource
import sys
from importlib.metadata import PackageNotFoundError, version

import torch

from ..checks import load_catalog  # torch-free: the device catalog is data

PACKAGES = ("archsearch", "torch", "torchao", "transformer_engine", "triton", "mamba_ssm", "datasets",
            "transformers", "safetensors", "pydantic")


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = version(name.replace("_", "-"))
        except PackageNotFoundError:
            found[name] = None
    if torch.cuda.is_available():
        found["cuda"] = torch.version.cuda
    return found


def match_catalog_key(device_name: str, keys_names: dict[str, tuple[str, ...]]) -> str | None:
    """The catalog key whose chip matches a torch device name ("NVIDIA H100 80GB HBM3" -> "h100-80gb"): the chip
    word (h100, a100, l40s, 4090...) must appear; among those, the entry sharing most other words wins."""
    words = set(re.findall(r"[a-z0-9]+", device_name.lower()))
    best, best_score = None, 0
    for key, names in keys_names.items():
        entry_words = set(re.findall(r"[a-z0-9]+", " ".join(names).lower())) - {"nvidia", "geforce", "rtx"}
        chip = re.findall(r"[a-z]*\d+[a-z]*", key)
        if not chip or chip[0] not in words:
            continue
        score = 1 + len(words & entry_words)
        if score > best_score:
            best, best_score = key, score
    return best


def device_peak_flops(device: torch.device) -> tuple[float | None, str | None]:
    """(dense bf16 FLOP/s, where the figure comes from) for a CUDA device found in the catalog, else (None, why)."""
    if device.type != "cuda":
        return None, f"no peak for {device.type.upper()} devices"
    name = torch.cuda.get_device_name(device)
    catalog = load_catalog()
    key = match_catalog_key(name, {k: (k, d.name, *d.aliases) for k, d in catalog.devices.items()})
    if key is None:
        return None, f"{name!r} is not in the device catalog"
    entry = catalog.devices[key]
    return entry.peak_flops("bfloat16"), f"{key}: dense bf16 {entry.bf16_tflops.value:g} TFLOP/s ({entry.name})"


def peak_memory(device: torch.device) -> tuple[int | None, str]:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "cuda max_memory_allocated"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024), "process max RSS (CPU; whole process)"
