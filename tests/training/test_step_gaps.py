"""bench/step_gaps.py: the idle between kernels of a profiled step, summed by its neighbours, split into waiting on
the host (the next kernel launched after the GPU went idle) and queued, with the launching op."""

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


def _event(name, start, end, device=CUDA, parent=None, id=0, linked=0):
    return SimpleNamespace(name=name, device_type=device, time_range=SimpleNamespace(start=start, end=end),
                           cpu_parent=parent, id=id, linked_correlation_id=linked)


def _launched(name, start, end, op, launch_at):
    """A kernel, the op that launched it and the runtime call (at launch_at), linked as the profiler links them."""
    return [_event(name, start, end, linked=op.id), _event("cudaLaunchKernel", launch_at, launch_at + 2, CPU,
                                                            linked=op.id)]


def _kind(name):
    return name.split("_")[0]


def test_gaps_are_summed_by_their_neighbours_and_split_by_whether_the_host_was_late():
    step = _event("ProfilerStep", 0, 1000, CPU, id=1)
    forward = _event("aten::mm", 10, 20, CPU, parent=step, id=2)
    scan = _event("archsearch::mamba_ssd_backward", 100, 260, CPU, parent=step, id=3)
    late = _event("aten::copy_", 440, 449, CPU, parent=step, id=4)
    events = [
        step, forward, scan, late,
        *_launched("gemm_a", 0, 100, forward, launch_at=12),
        _event("gemm_b", 50, 120),                                      # overlaps the first: no gap
        *_launched("ssd_x", 200, 300, scan, launch_at=190),             # 80 us gap, launched late: the host's
        _event("ssd_y", 302, 400),                                      # 2 us: a launch's own latency
        *_launched("gemm_c", 450, 500, late, launch_at=445),            # 50 us, launched late
        _event("Optimizer.step#AdamW.step", 500, 900),                  # an annotation, not a kernel
        *_launched("ssd_z", 520, 600, forward, launch_at=15),           # 20 us, queued long before
    ]
    report = step_gaps.idle_gaps(events, steps=2, category=_kind)
    assert report["idle_ms"] == pytest.approx((80 + 50 + 20) / 2 / 1e3)
    assert report["host_ms"] == pytest.approx((80 + 50) / 2 / 1e3)
    assert report["queued_ms"] == pytest.approx(20 / 2 / 1e3)
    assert report["gaps_per_step"] == 1.5 and report["min_gap_us"] == step_gaps.MIN_GAP_US
    assert report["by_pair"] == pytest.approx({"gemm -> ssd": 0.05, "ssd -> gemm": 0.025})
    assert list(report["by_pair"]) == ["gemm -> ssd", "ssd -> gemm"]  # largest first
    first, second, third = report["largest"]
    assert (first["us"], first["before"], first["after"], first["waited_on"]) == (80, "gemm_b", "ssd_x", "host")
    assert first["launched_by"] == "archsearch::mamba_ssd_backward < ProfilerStep"
    assert (second["after"], second["waited_on"], second["launched_by"]) == ("gemm_c", "host", "aten::copy_ < ProfilerStep")
    assert (third["after"], third["waited_on"], third["launched_by"]) == ("ssd_z", "queued", "aten::mm < ProfilerStep")


def test_a_kernel_without_a_recorded_launch_counts_as_queued():
    events = [_event("gemm_a", 0, 100), _event("ssd_b", 150, 200)]
    report = step_gaps.idle_gaps(events, steps=1, category=_kind)
    assert report["idle_ms"] == pytest.approx(0.05) and report["host_ms"] == 0
    assert report["largest"][0]["launched_by"] == "(no launching op recorded)"


def test_no_device_events_means_no_idle():
    report = step_gaps.idle_gaps([_event("aten::mm", 0, 10, CPU, id=1)], steps=1, category=_kind)
    assert report["idle_ms"] == 0 and report["largest"] == [] and report["by_pair"] == {}


REDUCE = ("void at::native::reduce_kernel<512, 1, at::native::ReduceOp<float, at::native::func_wrapper_t<float, "
          "at::native::sum_functor<float, float, float>::operator()(at::TensorIterator&)::{lambda(float, float)#1}>, "
          "unsigned int, float, 4, 4> >(at::native::ReduceOp<float, at::native::func_wrapper_t<float, "
          "at::native::sum_functor<float, float, float>::operator()(at::TensorIterator&)::{lambda(float, float)#1}>, "
          "unsigned int, float, 4, 4>)")
COPY = ("void at::native::vectorized_elementwise_kernel<4, at::native::(anonymous namespace)::direct_copy_kernel_cuda("
        "at::TensorIteratorBase&)::{lambda()#3}::operator()() const::{lambda()#10}::operator()() const::{lambda(float)"
        "#1}, std::array<char*, 2ul> >(int, at::native::(anonymous namespace)::direct_copy_kernel_cuda(at::"
        "TensorIteratorBase&)::{lambda()#3}::operator()() const::{lambda()#10}::operator()() const::{lambda(float)#1},"
        " std::array<char*, 2ul>)")


@pytest.mark.parametrize("name,kernel", [(REDUCE, True), (COPY, True), ("triton_poi_fused_add_0", True),
                                         ("_chunk_scan_bwd_dcb_kernel", True), ("Optimizer.step#AdamW.step", False),
                                         ("Optimizer.zero_grad#AdamW.zero_grad", False), ("ProfilerStep#3", False)])
def test_kernels_whose_names_hold_cpp_lambdas_are_work_and_annotations_are_not(name, kernel):
    assert step_gaps.is_kernel(_event(name, 0, 1)) is kernel


def test_a_reduction_between_two_kernels_is_not_idle():
    """torch's sum between two scan kernels (its name holds "#1"): busy, so no gap."""
    events = [_event("scan_a", 0, 100), _event(REDUCE, 100, 360), _event("scan_b", 362, 400)]
    report = step_gaps.idle_gaps(events, steps=1, category=_kind)
    assert report["idle_ms"] == 0 and report["gaps_per_step"] == 0
