"""torch.compile over a built model: the kernel registry's choice is a trace-time constant, so compiling causes
no graph break and no recompile from the registry (dynamo's eager backend on CPU shows the tracing)."""

import torch

import archsearch
from archsearch.kernels import recording
from specs import families


def test_compiled_model_has_no_graph_breaks_and_no_recompiles():
    model = archsearch.build(families()["nemotron_h"], seed=0).eval()
    ids = torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(0))
    torch._dynamo.reset()
    with torch.no_grad():
        explained = torch._dynamo.explain(model)(ids)
        assert explained.graph_break_count == 0, [str(b.reason) for b in explained.break_reasons]
        with recording() as eager_used:
            expected = model(ids)
        torch._dynamo.reset()
        compiled = torch.compile(model, backend="eager", dynamic=False)
        with recording() as compiled_used:  # the compiled call alone: tracing must record what it chose
            actual = compiled(ids)
        torch.testing.assert_close(actual, expected)
        other = torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(1))
        with torch._dynamo.config.patch(error_on_recompile=True):
            torch.testing.assert_close(compiled(other), model(other))
    assert set(eager_used) == {"mamba_mixer", "ssd_scan", "causal_conv1d", "gated_rmsnorm", "attention"}, dict(eager_used)
    assert dict(compiled_used) == dict(eager_used)  # the record still happens under compile, and agrees


def test_layers_compiled_one_by_one_stay_within_the_recompile_limit():
    """bench_model compiles each layer: every layer calls the registry with its own call info."""
    model = archsearch.build(families()["nemotron_h"], seed=0).eval()
    torch._dynamo.reset()
    for layer in model.layers:
        layer.compile(backend="eager", dynamic=False)
    ids = torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):
        for _ in range(2):
            model(ids)
