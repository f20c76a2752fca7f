"""Where a step's GPU idle sits: the gaps between consecutive kernels on the device timeline of a torch.profiler
trace, summed by the kinds of kernel on either side and split by whose they are:

- host: the next kernel was launched (its runtime call, e.g. cudaLaunchKernel) after the GPU had gone idle, so
  the GPU waited on the host (launch overhead, Python, a host sync, making the next batch);
- queued: the next kernel was already launched when the GPU went idle, so the wait was something else (a
  dependency on another stream, an allocation, work the profiler does not see).

The largest gaps are listed with the op that launched the next kernel (the profiler links each kernel to its
launching op and runtime call by correlation id). bench/profile_training.py prints this after the kernel table.
A gap is time when no kernel, copy or memset runs (kernels that overlap, on other streams, count as busy).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable, Iterable

import torch

MIN_GAP_US = 4.0  # shorter gaps are a launch's own latency, not a host falling behind
CPU, CUDA = torch.autograd.DeviceType.CPU, torch.autograd.DeviceType.CUDA


def is_kernel(event) -> bool:
    """A kernel, copy or memset on the GPU. User annotations such as "Optimizer.step#AdamW.step" or "ProfilerStep#3"
    also appear on the device timeline, spanning kernels: they are not work. A "#" alone does not make one: torch's
    reduction and many copy and cast kernels carry C++ lambdas in their names ("...{lambda(float, float)#1}..."),
    and counting those out showed their time as idle (until 2026-12-08)."""
    if event.device_type != CUDA or getattr(event, "is_user_annotation", False):
        return False
    return not is_annotation_name(event.name)


def is_annotation_name(name: str) -> bool:
    """ "Optimizer.step#AdamW.step", "ProfilerStep#3": a "#" in a name with no space, bracket or parenthesis (a
    kernel's C++ signature has them all)."""
    return "#" in name and not any(ch in name for ch in " <(")


def _chain(op) -> str:
    """An op and up to two of its enclosing ops, "inner < outer"."""
    names = []
    while op is not None and len(names) < 3:
        names.append(op.name[:60])
        op = getattr(op, "cpu_parent", None)
    return " < ".join(names) if names else "(no launching op recorded)"


def idle_gaps(events: Iterable, steps: int, category: Callable[[str], str], top: int = 12,
              min_gap_us: float = MIN_GAP_US) -> dict:
    """Per-step idle (ms) in gaps of at least `min_gap_us`: in all, the host's and queued, by (kind before -> kind
    after), and the largest gaps with their launching op."""
    events = list(events)
    ops = {e.id: e for e in events if e.device_type == CPU and getattr(e, "linked_correlation_id", 0) == 0}
    launches = {e.linked_correlation_id: e for e in events  # runtime calls (cudaLaunchKernel, ...), by correlation
                if e.device_type == CPU and getattr(e, "linked_correlation_id", 0) > 0}
    kernels = sorted((e for e in events if is_kernel(e)), key=lambda e: e.time_range.start)
    by_pair: dict[str, float] = defaultdict(float)
    gaps = []
    host_us = 0.0
    busy_until, before = None, None
    for kernel in kernels:
        start = kernel.time_range.start
        if busy_until is not None and start - busy_until >= min_gap_us:
            gap = start - busy_until
            corr = getattr(kernel, "linked_correlation_id", 0)
            launch = launches.get(corr)
            host = launch is not None and launch.time_range.start > busy_until
            host_us += gap if host else 0.0
            by_pair[f"{category(before.name)} -> {category(kernel.name)}"] += gap
            gaps.append((gap, before.name, kernel.name, host, ops.get(corr)))
        if busy_until is None or kernel.time_range.end > busy_until:
            busy_until, before = kernel.time_range.end, kernel
    idle_us = sum(g[0] for g in gaps)
    return dict(
        min_gap_us=min_gap_us,
        idle_ms=idle_us / steps / 1e3,
        host_ms=host_us / steps / 1e3,
        queued_ms=(idle_us - host_us) / steps / 1e3,
        gaps_per_step=len(gaps) / steps,
        by_pair={pair: us / steps / 1e3 for pair, us in sorted(by_pair.items(), key=lambda kv: -kv[1])[:top]},
        largest=[dict(us=gap, before=b[:80], after=a[:80], waited_on="host" if host else "queued", launched_by=_chain(op))
                 for gap, b, a, host, op in sorted(gaps, key=lambda g: -g[0])[:top]])


def print_gaps(report: dict) -> None:
    print(f"  idle between kernels: {report['idle_ms']:.2f} ms a step in {report['gaps_per_step']:.0f} gaps "
          f">= {report['min_gap_us']:g} us: {report['host_ms']:.2f} ms waiting on the host (next kernel launched "
          f"after the GPU went idle), {report['queued_ms']:.2f} ms with it queued; by the kernels on either side:")
    for pair, ms in report["by_pair"].items():
        print(f"    {ms:7.2f} ms  {pair}")
    print("  largest gaps (host: launched after the GPU went idle; queued: launched before) and the launching op:")
    for row in report["largest"]:
        print(f"    {row['us']:8.1f} us  {row['waited_on']:6s} {row['before'][:45]} -> {row['after'][:45]}  "
              f"[{row['launched_by']}]")
