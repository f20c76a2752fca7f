"""kernels.recording(): a record of the backends (and notes) chosen inside one block, nested blocks included."""

import torch

import archsearch
from archsearch import kernels as K
from archsearch.kernels import registry


def _conv():
    K.causal_conv1d(torch.randn(1, 4, 8), torch.randn(4, 4))


def _attention():
    q = torch.randn(1, 2, 4, 16)
    K.attention(q, q, q)


def test_records_only_the_block_and_keeps_the_process_record():
    K.reset_backends_used()
    _conv()
    with K.recording() as used:
        assert dict(used) == {}
        _attention()
        assert set(used) == {"attention"}  # live inside the block
    _conv()
    assert set(used) == {"attention"}  # frozen after it
    assert set(K.backends_used()) == {"causal_conv1d", "attention"}


def test_nested_blocks_reach_the_outer_one():
    with K.recording() as outer:
        _conv()
        with K.recording() as inner:
            with K.force_backend("causal_conv1d", "reference"):
                _conv()
            _attention()
            assert dict(outer)["causal_conv1d"] == "reference"  # the outer view sees the open inner block
        assert set(inner) == {"causal_conv1d", "attention"}
        with K.recording() as second:
            pass
        assert dict(second) == {}
        _conv()
    assert dict(inner)["causal_conv1d"] == "reference"
    assert set(outer) == {"causal_conv1d", "attention"}
    assert outer["causal_conv1d"] == "torch"  # the last one that ran
    with K.force_backend("causal_conv1d", "reference"):
        _conv()  # after every block closed: reaches none of them
    assert (outer["causal_conv1d"], inner["causal_conv1d"]) == ("torch", "reference") and dict(second) == {}
    assert registry._scopes == []  # and no closed block is left behind (a leak nothing else would show)


def test_notes_are_scoped_too():
    registry.note("causal_conv1d", "split into 2 sub-batches")
    with K.recording() as used:
        assert used.notes == {}
        registry.note("causal_conv1d", "split into 2 sub-batches")  # the same note again still reaches the block
        with K.recording() as inner:
            registry.note("attention", "chunked")
    assert used.notes == {"causal_conv1d": "split into 2 sub-batches", "attention": "chunked"}
    assert inner.notes == {"attention": "chunked"}


def test_an_exception_closes_the_block():
    try:
        with K.recording() as used:
            _conv()
            raise ValueError("boom")
    except ValueError:
        pass
    _attention()  # the block closed with the exception: what runs after it is not recorded in it
    assert set(used) == {"causal_conv1d"} and registry._scopes == []


def test_compiled_model_records_into_each_block_without_recompiling():
    from specs import families

    model = archsearch.build(families()["nemotron_h"], seed=0).eval()
    ids = torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(0))
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="eager", dynamic=False)
    with torch.no_grad():
        model(ids)  # the process-wide record is not empty (an empty one is a guard of its own)
        with K.recording() as first:
            compiled(ids)
            with torch._dynamo.config.patch(error_on_recompile=True):
                compiled(ids)  # the block's record is no longer empty: no new guard fails
        with torch._dynamo.config.patch(error_on_recompile=True), K.recording() as second:
            compiled(ids)
    assert dict(first) and dict(second) == dict(first)
