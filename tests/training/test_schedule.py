import math

import pytest
from pydantic import ValidationError

from archsearch.training import Recipe
from archsearch.training.schedule import lr_at, schedule_note


def test_warmup_is_linear_to_the_peak():
    r = Recipe(steps=100, lr=1.0, min_lr=0.1, warmup=10)
    assert [lr_at(r, s) for s in range(10)] == pytest.approx([(s + 1) / 10 for s in range(10)])


def test_cosine_falls_from_lr_to_min_lr_monotonically():
    r = Recipe(steps=100, lr=1.0, min_lr=0.1, warmup=10, schedule="cosine")
    rates = [lr_at(r, s) for s in range(10, 101)]
    assert rates[0] == pytest.approx(1.0)
    assert rates[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(rates, rates[1:]))
    assert lr_at(r, 55) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))


def test_wsd_is_stable_then_decays_over_the_last_fraction():
    r = Recipe(steps=100, lr=1.0, min_lr=0.0, warmup=10, schedule="wsd", decay_fraction=0.2)
    assert all(lr_at(r, s) == 1.0 for s in range(10, 80))
    assert lr_at(r, 90) == pytest.approx(1 - 11 / 20)
    assert lr_at(r, 99) == pytest.approx(0.0)


def test_constant_after_warmup():
    r = Recipe(steps=50, lr=0.5, min_lr=0.0, warmup=5, schedule="constant")
    assert {lr_at(r, s) for s in range(5, 50)} == {0.5}


@pytest.mark.parametrize("fields, message", [
    ({"min_lr": 1.0, "lr": 0.1}, "min_lr"),
    ({"require_fp8": True}, "require_fp8 needs precision: fp8"),
    ({"stepz": 3}, "stepz"),
    ({"schedule": "linear"}, "schedule"),
    ({"lr": float("nan")}, "lr"),
])
def test_bad_recipes_name_the_field(fields, message):
    with pytest.raises(ValidationError, match=message):
        Recipe(**fields)


def test_recipe_round_trips_through_json():
    r = Recipe(steps=7, precision="fp8", fp8_recipe="rowwise", distill={"teacher": "/x", "alpha": 0.3})
    assert Recipe.model_validate_json(r.model_dump_json()) == r


def test_schedule_note_says_what_a_changed_length_does():
    r = Recipe(steps=60, lr=1.0, min_lr=0.1, warmup=10, schedule="cosine")
    assert schedule_note(r, 60, 60) is None
    longer = schedule_note(r, 60, 80)
    assert "keeps the 60 steps" in longer and "steps 60..79 run at its final rate 0.1" in longer
    shorter = schedule_note(r, 60, 40)
    assert "stops before the schedule ends" in shorter and f"{lr_at(r, 39, 60):.3g}" in shorter
