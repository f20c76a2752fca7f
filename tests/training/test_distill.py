"""Distillation: the KL term pulls the student towards the teacher; mismatched teachers are refused.

The teacher memorises one key -> value table; the student's labels come from another table. Following the KL, the
student ends close to the teacher (and wrong on its labels); following the labels, it ends far from it."""

import pytest

from archsearch.errors import UserError
from archsearch.training import Recipe, TaskSpec, train

TEACHER_TABLE = TaskSpec(name="memorization", options={"n_keys": 16, "map_seed": 1})
STUDENT_TABLE = TaskSpec(name="memorization", options={"n_keys": 16, "map_seed": 2})


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory, make_spec):
    out = tmp_path_factory.mktemp("teacher") / "run"
    result = train(make_spec(64), TEACHER_TABLE, Recipe(steps=30, batch_size=16, seq_len=16, lr=1e-2, min_lr=1e-3,
                                                        warmup=5, eval_every=30), out_dir=out, progress=False,
                   device="cpu")
    assert result.metrics["accuracy"] > 0.9
    return out


def student(make_spec, teacher_dir, alpha, steps=30):
    recipe = Recipe(steps=steps, batch_size=16, seq_len=16, lr=1e-2, min_lr=1e-3, warmup=3, eval_every=10, seed=1,
                    distill={"teacher": str(teacher_dir), "alpha": alpha, "temperature": 1.0})
    return train(make_spec(64), STUDENT_TABLE, recipe, progress=False, device="cpu")


def test_distillation_lowers_the_students_kl_to_the_teacher(make_spec, teacher_dir):
    distilled, plain = student(make_spec, teacher_dir, alpha=1.0), student(make_spec, teacher_dir, alpha=0.0)
    kl = [p["kl_to_teacher"] for p in distilled.curve if "kl_to_teacher" in p]
    assert kl[-1] < 0.5 * kl[0]
    assert distilled.metrics["kl_to_teacher"] < 0.1 * plain.metrics["kl_to_teacher"]
    assert distilled.metrics["accuracy"] < 0.2 < 0.8 < plain.metrics["accuracy"]  # it learnt the teacher's table
    assert distilled.extra["teacher"] == str(teacher_dir)
    losses = [p for p in distilled.curve if "kl" in p]
    assert losses and all(p["loss"] == pytest.approx(p["kl"]) for p in losses)  # alpha 1: the loss is the KL


def test_mixed_loss_is_the_weighted_sum(make_spec, teacher_dir):
    mixed = student(make_spec, teacher_dir, alpha=0.25, steps=2)
    points = [p for p in mixed.curve if "kl" in p]
    assert points
    for p in points:
        assert p["loss"] == pytest.approx(0.25 * p["kl"] + 0.75 * p["ce"], rel=1e-5)


def test_a_teacher_of_another_vocabulary_is_refused(make_spec, teacher_dir):
    recipe = Recipe(steps=1, seq_len=16, distill={"teacher": str(teacher_dir)})
    with pytest.raises(UserError, match="teacher's vocab_size 64 differs from the student's 260"):
        train(make_spec(260), STUDENT_TABLE, recipe, progress=False, device="cpu")


def test_a_teacher_of_another_task_is_refused(make_spec, teacher_dir):
    recipe = Recipe(steps=1, seq_len=32, distill={"teacher": str(teacher_dir)})
    with pytest.raises(UserError, match="trained on task 'memorization', the student on 'selective_copy'"):
        train(make_spec(64), "selective_copy", recipe, progress=False, device="cpu")


def test_auto_cuda_graph_runs_a_distillation_plain_and_says_why(make_spec, teacher_dir):
    recipe = Recipe(steps=2, batch_size=16, seq_len=16, eval_every=2, cuda_graph="auto",
                    distill={"teacher": str(teacher_dir)})
    result = train(make_spec(64), STUDENT_TABLE, recipe, progress=False, device="cpu")
    assert result.status == "completed"
    assert result.extra["cuda_graph"].startswith("off: a distillation step is not captured")
