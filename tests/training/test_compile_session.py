"""Runs of one process (a study worker's trials) compile each shape once: a second trial of the same spec reuses
the compiled code, a different spec adds its own, and dynamo is reset only when the recompile limit would
otherwise send a new trial to eager. Compiles are counted with dynamo's counting backend (CPU, no inductor)."""

import pytest
import torch
from torch._dynamo.testing import CompileCounter

from archsearch.spec import ModelSpec, load_spec
from archsearch.training import Recipe, TaskSpec, train
from archsearch.training import compile_session

TASK = TaskSpec(name="mqar", options={"vocab": 32})
RECIPE = Recipe(steps=2, batch_size=2, seq_len=32, compile=True, eval_every=2, eval_batches=1)


@pytest.fixture
def counter(monkeypatch):
    counter = CompileCounter()
    monkeypatch.setattr(compile_session, "BACKEND", counter)
    compile_session.forget()
    yield counter
    compile_session.forget()


def _run(spec: ModelSpec, seed: int = 0):
    return train(spec, TASK, RECIPE.model_copy(update={"seed": seed}), progress=False, device="cpu")


def _small(pattern: str = "M*") -> ModelSpec:
    """nemotron-h-tiny's blocks in a two-layer pattern (tracing time grows with the layers)."""
    doc = load_spec("nemotron-h-tiny").to_dict()
    doc["pattern"] = pattern
    return ModelSpec.model_validate(doc)


def _other(spec: ModelSpec) -> ModelSpec:
    return _small("M-")


def test_a_second_trial_of_the_same_shapes_compiles_nothing(counter):
    spec = _small()
    first = _run(spec)
    # once in train mode, once in eval mode; the first step's empty backend record no longer recompiles the second
    assert counter.frame_count == 2
    assert first.extra["compile_info"] == {"seen_before": False, "dynamo_reset": False, "signatures_held": 1,
                                           "capacity": compile_session.capacity()}
    second = _run(spec, seed=1)  # new weights, same shapes
    assert counter.frame_count == 2
    assert second.extra["compile_info"]["seen_before"] is True
    doc = spec.to_dict()
    doc["init"] = {**doc["init"], "std": 0.05}  # another candidate (init scale), the same program
    doc["blocks"]["M"] = {**doc["blocks"]["M"], "dt_max": 0.2}
    doc["pattern"] = ["M", "*"]  # the same layers, written as a list
    rescaled = _run(ModelSpec.model_validate(doc))
    assert counter.frame_count == 2 and rescaled.extra["compile_info"]["seen_before"] is True
    assert second.backends == first.backends  # the record still holds what ran under the reused code
    other = _run(_other(spec))
    assert counter.frame_count == 4 and other.extra["compile_info"]["signatures_held"] == 2
    assert "attention" not in other.backends  # a pattern without attention records no attention backend
    _run(spec, seed=2)  # back to the first shapes: still compiled
    assert counter.frame_count == 4


def test_past_the_recompile_limit_a_new_shape_resets_dynamo_and_a_known_one_does_not(counter, monkeypatch):
    monkeypatch.setattr(torch._dynamo.config, "recompile_limit", 2)  # room for one signature (train + eval)
    assert compile_session.capacity() == 1
    spec = _small()
    assert _run(spec).extra["compile_info"]["dynamo_reset"] is False
    again = _run(spec, seed=1).extra["compile_info"]
    assert (again["seen_before"], again["dynamo_reset"]) == (True, False)
    frames = counter.frame_count
    other = _run(_other(spec)).extra["compile_info"]
    assert (other["seen_before"], other["dynamo_reset"], other["signatures_held"]) == (False, True, 1)
    assert counter.frame_count == frames + 2  # compiled, not run eagerly past the limit
    back = _run(spec).extra["compile_info"]
    assert (back["seen_before"], back["dynamo_reset"]) == (False, True)
