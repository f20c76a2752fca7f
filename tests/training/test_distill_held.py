"""train(teacher=model): the teacher run folder's model already in the caller's memory is used as it is, and the
run is the one that reads the teacher from its folder, exactly; train(init_weights=...) starts from given weights.
What does not fit is refused with a clear error."""

import pytest
import torch
from safetensors.torch import load_file

from archsearch.builder import build
from archsearch.errors import UserError
from archsearch.training import Recipe, TaskSpec, train
from archsearch.training.checkpoint import load_weights

TASK = TaskSpec(name="memorization", options={"n_keys": 16, "map_seed": 1})


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory, make_spec):
    out = tmp_path_factory.mktemp("held-teacher") / "run"
    train(make_spec(64), TASK, Recipe(steps=4, batch_size=8, seq_len=16, warmup=0, eval_every=4), out_dir=out,
          progress=False, device="cpu")
    return out


def teacher_model(make_spec, folder):
    model = build(make_spec(64), "cpu", torch.float32, seed=0)
    load_weights(folder, model, torch.device("cpu"))
    return model


def recipe(teacher_dir, **fields):
    return Recipe(steps=3, batch_size=8, seq_len=16, warmup=1, eval_every=1, seed=1,
                  distill={"teacher": str(teacher_dir), "alpha": 0.5, "temperature": 2.0}, **fields)


def test_a_held_teacher_trains_the_student_as_the_teacher_read_from_disk(make_spec, teacher_dir, tmp_path):
    from_disk = train(make_spec(64), TASK, recipe(teacher_dir), out_dir=tmp_path / "disk", progress=False,
                      device="cpu")
    held = teacher_model(make_spec, teacher_dir)
    in_memory = train(make_spec(64), TASK, recipe(teacher_dir), out_dir=tmp_path / "held", progress=False,
                      device="cpu", teacher=held)
    assert in_memory.curve == from_disk.curve and in_memory.metrics == from_disk.metrics
    assert in_memory.extra["teacher"] == str(teacher_dir)  # the record names the folder the model came from
    assert not held.training and not any(p.requires_grad for p in held.parameters())  # frozen, where it is
    a, b = load_file(tmp_path / "disk" / "model.safetensors"), load_file(tmp_path / "held" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_init_weights_are_the_starting_point(make_spec, teacher_dir, tmp_path):
    start = teacher_model(make_spec, teacher_dir).state_dict()
    plain = Recipe(steps=1, batch_size=8, seq_len=16, warmup=0, eval_every=1)
    from_folder = train(make_spec(64), TASK, plain.model_copy(update={"init_from": str(teacher_dir)}),
                        progress=False, device="cpu")
    from_memory = train(make_spec(64), TASK, plain, progress=False, device="cpu", init_weights=start)
    assert from_memory.curve == from_folder.curve


def test_what_does_not_fit_is_refused(make_spec, teacher_dir, tmp_path):
    other = build(make_spec(260), "cpu", torch.float32, seed=0)
    with pytest.raises(UserError, match="the teacher model given is not the model of"):
        train(make_spec(64), TASK, recipe(teacher_dir), progress=False, device="cpu", teacher=other)
    with pytest.raises(UserError, match="a teacher model was given but the recipe has no distill"):
        train(make_spec(64), TASK, Recipe(steps=1, seq_len=16), progress=False, device="cpu",
              teacher=teacher_model(make_spec, teacher_dir))
    with pytest.raises(UserError, match="init_weights do not fit the spec's model"):
        train(make_spec(64), TASK, Recipe(steps=1, seq_len=16), progress=False, device="cpu",
              init_weights=other.state_dict())
    with pytest.raises(UserError, match="init_weights and recipe.init_from both give starting weights"):
        train(make_spec(64), TASK, Recipe(steps=1, seq_len=16, init_from=str(teacher_dir)), progress=False,
              device="cpu", init_weights=teacher_model(make_spec, teacher_dir).state_dict())
    with pytest.raises(UserError, match="a resumed run continues its own checkpoint"):
        train(None, None, None, out_dir=teacher_dir, progress=False, device="cpu", resume=True,
              init_weights=teacher_model(make_spec, teacher_dir).state_dict())
