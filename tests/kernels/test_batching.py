"""Sub-batching of large fused calls: exact results with and without autograd, the note it records, and the
sizes chosen for mamba-ssm's scan (its 32-bit offsets)."""

import torch

import archsearch.kernels as K
from archsearch.kernels import _batching
from archsearch.kernels.ssd import scan_elements_per_sequence


def _op(x, y, scale):
    return x * scale + y, (x * y).sum(-1)


def test_sub_batches_equal_one_call_and_record_why():
    x, y = torch.randn(7, 5), torch.randn(7, 5)
    K.reset_backends_used()
    with torch.no_grad():
        got = _batching.run_in_sub_batches("demo", _op, 3, dict(x=x, y=y), dict(scale=2.0), "too large")
    for g, e in zip(got, _op(x, y, 2.0)):
        torch.testing.assert_close(g, e)
    assert K.registry.notes()["demo"] == "batch 7 run in sub-batches of 3: too large"


def test_sub_batches_keep_gradients():
    x = torch.randn(5, 4, requires_grad=True)
    y = torch.randn(5, 4)
    out, _ = _batching.run_in_sub_batches("demo", _op, 2, dict(x=x, y=y), dict(scale=3.0), "test")
    (out * torch.arange(20.0).view(5, 4)).sum().backward()
    torch.testing.assert_close(x.grad, 3.0 * torch.arange(20.0).view(5, 4))


def test_one_call_when_it_fits_records_nothing():
    K.reset_backends_used()
    _batching.run_in_sub_batches("demo", _op, 10, dict(x=torch.ones(4, 2), y=torch.ones(4, 2)), dict(scale=1.0), "-")
    assert "demo" not in K.registry.notes()


def test_scan_sub_batch_keeps_the_chunk_states_under_int32():
    """Batch 194 x 8192 tokens x 64 heads x 64 x d_state 128 (the failing H100 call):
    each sub-batch stays under 2^31 elements."""
    x, B = torch.empty(1, 8192, 64, 64, device="meta"), torch.empty(1, 8192, 8, 128, device="meta")
    per = scan_elements_per_sequence(x, B, 256)
    assert per == 8192 * 64 * 64  # x and y; the float32 chunk states are half of it at chunk 256
    step = _batching.sub_batch(194, per, _batching.INT32_ELEMENTS)
    assert step * per <= _batching.INT32_ELEMENTS < (step + 1) * per
    assert 194 * per > _batching.INT32_ELEMENTS  # the unsplit call would overflow


def test_sub_batch_counts_the_span_of_column_views():
    """z and dt are column slices of the in_proj output: sequence i starts at i * stride(0), so the split follows
    the parent's width, not the view's (batch 194 x 2048 tokens of nemotron-h-1b faulted unsplit on the H100)."""
    zxbcdt = torch.empty(194, 2048, 10304, device="meta")
    z, dt = zxbcdt[..., :4096], zxbcdt[..., -64:]
    assert z[0].numel() * 194 < _batching.INT32_ELEMENTS < zxbcdt[0].numel() * 194
    step = _batching.sub_batch(194, z[0].numel(), _batching.INT32_ELEMENTS, z, dt)
    assert step * zxbcdt.stride(0) <= _batching.INT32_ELEMENTS < (step + 1) * zxbcdt.stride(0)
    assert _batching.sub_batch(194, z[0].numel(), _batching.INT32_ELEMENTS, z.contiguous()) == 194


def test_sub_batches_inside_a_compiled_region_break_no_graph_and_record_the_note():
    """The note's log call is a graph break under torch.compile (dynamo cannot trace a Logger method): inside a
    compiled region the note is recorded but not logged."""
    def step(x, y):
        out, _ = _batching.run_in_sub_batches("demo-compiled", _op, 2, dict(x=x, y=y), dict(scale=2.0), "compiled")
        return out * 2

    torch._dynamo.reset()
    K.reset_backends_used()
    x, y = torch.randn(5, 3), torch.randn(5, 3)
    got = torch.compile(step, fullgraph=True, backend="eager")(x, y)  # a graph break raises
    torch.testing.assert_close(got, _op(x, y, 2.0)[0] * 2)
    assert K.registry.notes()["demo-compiled"] == "batch 5 run in sub-batches of 2: compiled"
