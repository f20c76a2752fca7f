"""bench/step_gaps.py: the idle between kernels of a profiled step, summed by its neighbours, with the host op."""

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("step_gaps", ROOT / "bench" / "step_gaps.py")
step_gaps = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(step_gaps)

CUDA, CPU = torch.autograd.DeviceType.CUDA, torch.autograd.DeviceType.CPU


def _event(name, start, end, device=CUDA, parent=None):
    return SimpleNamespace(name=name, device_type=device, time_range=SimpleNamespace(start=start, end=end),
                           cpu_parent=parent)


def _kind(name):
    return name.split("_")[0]


def test_gaps_are_summed_by_their_neighbours_and_overlaps_count_as_busy():
    step = _event("ProfilerStep", 0, 1000, CPU)
    launch = _event("mamba_bwd_launch", 150, 210, CPU, parent=step)
    events = [
        _event("gemm_a", 0, 100),
        _event("gemm_b", 50, 120),    # overlaps the first (another stream): no gap
        _event("ssd_x", 200, 300),    # 80 us after gemm_b ends
        _event("ssd_y", 302, 400),    # 2 us: a launch's own latency, below the threshold
        _event("gemm_c", 450, 500),   # 50 us
        _event("Optimizer.step#AdamW.step", 500, 900),  # an annotation on the device timeline, not a kernel
        _event("ssd_z", 520, 600),    # 20 us
        step, launch,
    ]
    report = step_gaps.idle_gaps(events, steps=2, category=_kind)
    assert report["idle_ms"] == pytest.approx((80 + 50 + 20) / 2 / 1e3)
    assert report["gaps_per_step"] == 1.5
    assert report["by_pair"] == pytest.approx({"gemm -> ssd": 0.05, "ssd -> gemm": 0.025})
    assert list(report["by_pair"]) == ["gemm -> ssd", "ssd -> gemm"]  # largest first
    largest = report["largest"][0]
    assert (largest["us"], largest["before"], largest["after"]) == (80, "gemm_b", "ssd_x")
    assert largest["host"] == "mamba_bwd_launch < ProfilerStep"  # innermost first, then what encloses it
    assert report["largest"][1]["host"] == "ProfilerStep"


def test_no_device_events_means_no_idle():
    report = step_gaps.idle_gaps([_event("aten::mm", 0, 10, CPU)], steps=1, category=_kind)
    assert report["idle_ms"] == 0 and report["largest"] == [] and report["by_pair"] == {}
