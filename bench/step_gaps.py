"""Where a step's GPU idle sits: the gaps between consecutive kernels on the device timeline of a torch.profiler
trace, summed by the kinds of kernel on either side, with the host op that was running when the next kernel
started. When the GPU waited on the host, that op is the one that launched it (a host falling behind); when the
host op is a later one (the host was ahead, e.g. already in the backward), the gap is not the host's: a dependency,
an allocation or something the profiler does not see. bench/profile_training.py prints it after the kernel table.

A gap is time when no kernel, copy or memset runs (kernels that overlap, on other streams, count as busy).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable, Iterable

import torch

MIN_GAP_US = 4.0  # shorter gaps are a launch's own latency, not a host falling behind


def _is_device_event(event) -> bool:
    return (event.device_type == torch.autograd.DeviceType.CUDA and not getattr(event, "is_user_annotation", False)
            and "#" not in event.name)


def _host_chain(cpu_events: list, at_us: float) -> str:
    """The innermost host op that was running at `at_us`, then up to two of its enclosing ops ("inner < outer")."""
    inner = None
    for event in cpu_events:
        if event.time_range.start <= at_us <= event.time_range.end and (
                inner is None or event.time_range.start >= inner.time_range.start):
            inner = event
    chain = []
    while inner is not None and len(chain) < 3:
        chain.append(inner.name[:60])
        inner = getattr(inner, "cpu_parent", None)
    return " < ".join(chain) if chain else "(no host op)"


def idle_gaps(events: Iterable, steps: int, category: Callable[[str], str], top: int = 12,
              min_gap_us: float = MIN_GAP_US) -> dict:
    """Per-step idle (ms) in gaps of at least `min_gap_us`, by (kind before -> kind after), and the largest gaps."""
    events = list(events)
    device = sorted((e.time_range.start, e.time_range.end, e.name) for e in events if _is_device_event(e))
    cpu = [e for e in events if e.device_type == torch.autograd.DeviceType.CPU]
    by_pair: dict[str, float] = defaultdict(float)
    gaps = []
    busy_until, before = None, None
    for start, end, name in device:
        if busy_until is not None and start - busy_until >= min_gap_us:
            gap = start - busy_until
            by_pair[f"{category(before)} -> {category(name)}"] += gap
            gaps.append((gap, before, name, start))
        if busy_until is None or end > busy_until:
            busy_until, before = end, name
    largest = sorted(gaps, key=lambda g: -g[0])[:top]
    return dict(
        idle_ms=sum(g[0] for g in gaps) / steps / 1e3,
        gaps_per_step=len(gaps) / steps,
        by_pair={pair: us / steps / 1e3 for pair, us in sorted(by_pair.items(), key=lambda kv: -kv[1])[:top]},
        largest=[dict(us=gap, before=b[:80], after=a[:80], host=_host_chain(cpu, start - 1.0))
                 for gap, b, a, start in largest])


def print_gaps(report: dict) -> None:
    print(f"  idle between kernels: {report['idle_ms']:.2f} ms a step in {report['gaps_per_step']:.0f} gaps "
          f">= {MIN_GAP_US:g} us; by the kernels on either side:")
    for pair, ms in report["by_pair"].items():
        print(f"    {ms:7.2f} ms  {pair}")
    print("  largest gaps (the host op when the next kernel started: its launcher if the GPU waited on the host):")
    for row in report["largest"]:
        print(f"    {row['us']:8.1f} us  {row['before'][:50]} -> {row['after'][:50]}  [{row['host']}]")
