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
RECIPE = Recipe(steps=2, batch_size=2, seq_len=32, compile="model", eval_every=2, eval_batches=1)


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
    assert first.extra["compile_info"] == {"scope": "model", "seen_before": False, "dynamo_reset": False,
                                           "signatures_held": 1, "capacity": compile_session.capacity()}
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


@pytest.fixture
def recompile_limit():
    """Sets dynamo's limit for one test. (monkeypatch's undo deletes the config entry: the module's attributes are
    not in its __dict__.)"""
    saved = torch._dynamo.config.recompile_limit

    def set_limit(value: int) -> None:
        torch._dynamo.config.recompile_limit = value

    yield set_limit
    torch._dynamo.config.recompile_limit = saved


def test_past_the_recompile_limit_a_new_shape_resets_dynamo_and_a_known_one_does_not(counter, recompile_limit):
    recompile_limit(2)  # room for one signature (train + eval)
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


def _run_layers(spec: ModelSpec, seed: int = 0):
    recipe = RECIPE.model_copy(update={"seed": seed, "compile": "layers"})
    return train(spec, TASK, recipe, progress=False, device="cpu")


def test_layers_scope_compiles_each_distinct_layer_once_whatever_the_pattern(counter):
    first = _run_layers(_small("M*"))
    # two layer programs (the Mamba-2 layer, the attention layer), each in train and in eval mode
    assert counter.frame_count == 4
    assert first.extra["compile_info"] == {"scope": "layers", "seen_before": False, "dynamo_reset": False,
                                           "layer_programs": 2, "new_layer_programs": 2, "signatures_held": 2,
                                           "capacity": compile_session.capacity()}
    # other patterns of the same layers: a whole-model compile would trace each anew, the layers scope nothing
    for pattern in ("*M", "MM*M", "*"):
        info = _run_layers(_small(pattern)).extra["compile_info"]
        assert counter.frame_count == 4, pattern
        assert (info["seen_before"], info["new_layer_programs"]) == (True, 0)
    other = _run_layers(_small("M-*")).extra["compile_info"]  # the MLP layer is new: it alone compiles
    assert counter.frame_count == 6 and (other["new_layer_programs"], other["signatures_held"]) == (1, 3)


def test_layers_scope_trains_as_the_eager_model_does(counter):
    spec = _small("M-*")
    eager = train(spec, TASK, RECIPE.model_copy(update={"compile": False}), progress=False, device="cpu")
    layers = _run_layers(spec)
    assert counter.frame_count > 0
    train_losses = [[p["loss"] for p in run.curve if "loss" in p] for run in (eager, layers)]
    assert len(train_losses[0]) == 2 and train_losses[1] == pytest.approx(train_losses[0], rel=1e-5)
    assert layers.metrics["val_loss"] == pytest.approx(eager.metrics["val_loss"], rel=1e-5)


def test_one_model_with_more_layer_programs_than_fit_raises_the_recompile_limit(counter, recompile_limit):
    recompile_limit(4)  # room for two layer programs
    first = _run_layers(_small("M*")).extra["compile_info"]
    assert "recompile_limit_raised_to" not in first and counter.frame_count == 4
    # three programs, two of them held: the limit rises before the room check, so nothing held is thrown away
    info = _run_layers(_small("M-*")).extra["compile_info"]
    assert info["recompile_limit_raised_to"] == 6 and info["layer_programs"] == 3
    assert (info["dynamo_reset"], info["new_layer_programs"]) == (False, 1)
    assert counter.frame_count == 6  # only the MLP layer compiled (train and eval), none sent to eager by the limit
    again = _run_layers(_small("M-*")).extra["compile_info"]
    assert (again["seen_before"], again["dynamo_reset"]) == (True, False) and counter.frame_count == 6
    # a new program past the (raised) room resets dynamo first; the record then counts every program as new
    wider = _small("M-")
    doc = wider.to_dict()
    doc["blocks"]["-"] = {**doc["blocks"]["-"], "ffn_ratio": 2}  # a new MLP width: a new layer program
    info = _run_layers(ModelSpec.model_validate(doc)).extra["compile_info"]
    assert (info["new_layer_programs"], info["dynamo_reset"], info["signatures_held"]) == (2, True, 2)
    assert counter.frame_count == 10
    compile_session.forget()  # puts back the limit it raised
    assert compile_session.recompile_limit() == 4


def test_recipe_compile_takes_a_scope_and_names_the_allowed_ones():
    assert Recipe(compile=True).compile_scope("cpu") == "layers"
    assert Recipe(compile="model").compile_scope("cuda") == "model"
    assert Recipe(compile="yes").compile_scope("cpu") == "layers"  # what a plain bool field took before still works
    assert Recipe().compile_scope("cuda") is None
    # auto, the default of study trials: compiled on a GPU, eager on a CPU (a short trial's steps there cost less
    # than inductor's compile)
    assert Recipe(compile="auto").compile_scope("cuda") == "layers"
    assert Recipe(compile="auto").compile_scope("cpu") is None
    with pytest.raises(ValueError) as refused:
        Recipe(compile="layer")
    first = refused.value.errors()[0]["msg"]  # what the CLI and study files show: the first error alone
    assert "compile 'layer' is not allowed" in first and "'model', 'layers'" in first
