"""A recipe's length in steps, tokens or training FLOPs, resolved per spec (archsearch.training.budget): step counts
follow the spec accounting, rounding never trains past the budget, bad lengths name the field."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from archsearch.errors import UserError
from archsearch.spec import load_spec, training_flops_per_token
from archsearch.training import Recipe
from archsearch.training.budget import fraction_or_steps, parse_flops, parse_tokens, resolve_budget
from archsearch.training.schedule import lr_at

EXAMPLES = ("nemotron-h-tiny", "mamba2-tiny")


@pytest.fixture(scope="module")
def examples():
    return {name: load_spec(name) for name in EXAMPLES}


def one_step_flops(spec, batch, seq_len, grad_accum=1):
    return batch * grad_accum * seq_len * training_flops_per_token(spec, seq_len)


@pytest.mark.parametrize("name", EXAMPLES)
@pytest.mark.parametrize("batch, seq_len, grad_accum", [(8, 128, 1), (4, 512, 2)])
def test_a_flops_budget_buys_the_steps_the_accounting_gives(examples, name, batch, seq_len, grad_accum):
    spec = examples[name]
    per_step = one_step_flops(spec, batch, seq_len, grad_accum)
    budget = 1e14
    plan = resolve_budget(Recipe(flops=budget, batch_size=batch, seq_len=seq_len, grad_accum=grad_accum), spec,
                          seq_len)
    assert plan.kind == "flops" and plan.axis == "flops"
    assert plan.steps == math.floor(budget / per_step) >= 1
    assert plan.flops_at(plan.steps) <= budget < plan.flops_at(plan.steps + 1)
    assert plan.tokens_at(plan.steps) == plan.steps * batch * grad_accum * seq_len
    assert plan.flops_per_token == training_flops_per_token(spec, seq_len)


def test_one_flops_budget_gives_the_smaller_model_more_steps(examples):
    nemotron, mamba = examples["nemotron-h-tiny"], examples["mamba2-tiny"]
    recipe = Recipe(flops="2P", batch_size=8, seq_len=256)
    a, b = resolve_budget(recipe, nemotron, 256), resolve_budget(recipe, mamba, 256)
    cheaper, dearer = sorted((a, b), key=lambda p: p.flops_per_token)
    assert cheaper.steps > dearer.steps
    assert cheaper.steps == math.floor(2e15 / cheaper.flops_per_step)
    assert dearer.steps == math.floor(2e15 / dearer.flops_per_step)


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(EXAMPLES), batch=st.integers(1, 64), seq_len=st.sampled_from([16, 100, 256, 1000]),
       steps=st.integers(1, 10_000))
def test_an_exact_multiple_of_one_step_is_never_lost_to_rounding(examples, name, batch, seq_len, steps):
    spec = examples[name]
    per_step = one_step_flops(spec, batch, seq_len)
    exact = resolve_budget(Recipe(flops=steps * per_step, batch_size=batch, seq_len=seq_len), spec, seq_len)
    assert exact.steps == steps
    if steps > 1:
        below = resolve_budget(Recipe(flops=(steps - 0.001) * per_step, batch_size=batch, seq_len=seq_len), spec,
                               seq_len)
        assert below.steps == steps - 1  # floor: never past the budget


def test_a_tokens_budget_floors_to_whole_steps_for_any_spec(examples):
    recipe = Recipe(tokens="5M", batch_size=8, seq_len=256, grad_accum=2)
    plans = [resolve_budget(recipe, spec, 256) for spec in examples.values()]
    assert {p.steps for p in plans} == {5 * 2**20 // (8 * 2 * 256)}
    assert all(p.kind == "tokens" and p.axis == "tokens" and p.per_step() == 8 * 2 * 256 for p in plans)


def test_a_steps_budget_is_unchanged_and_compared_by_step(examples):
    plan = resolve_budget(Recipe(steps=37, warmup=0.1, eval_every=0.25), examples["mamba2-tiny"], 256)
    assert (plan.kind, plan.axis, plan.steps, plan.per_step()) == ("steps", "step", 37, 1.0)
    assert (plan.warmup, plan.eval_every) == (round(3.7), round(9.25))


def test_the_task_seq_len_sets_the_cost_of_a_step(examples):
    spec = examples["nemotron-h-tiny"]
    recipe = Recipe(flops=1e13, batch_size=4, seq_len=256)
    short, long = resolve_budget(recipe, spec, 64), resolve_budget(recipe, spec, 1024)
    assert short.steps == math.floor(1e13 / one_step_flops(spec, 4, 64))
    assert long.steps == math.floor(1e13 / one_step_flops(spec, 4, 1024)) < short.steps


def test_a_budget_that_buys_no_step_is_refused_with_the_minimum(examples):
    spec = examples["nemotron-h-tiny"]
    per_step = one_step_flops(spec, 8, 128)
    with pytest.raises(UserError, match=r"recipe\.flops: .*buy no step.*raise flops to >= "):
        resolve_budget(Recipe(flops=per_step * 0.99, batch_size=8, seq_len=128), spec, 128)
    with pytest.raises(UserError, match=r"recipe\.tokens: 1000 tokens buy no step; one step is 1024 tokens"):
        resolve_budget(Recipe(tokens=1000, batch_size=8, seq_len=128), spec, 128)


@pytest.mark.parametrize("text, tokens", [(4096, 4096), ("512k", 512 * 1024), ("5M", 5 * 2**20), ("5e6", 5_000_000),
                                          (2.0e9, 2_000_000_000), ("1.5k", 1536)])
def test_token_counts(text, tokens):
    assert parse_tokens(text) == tokens
    assert Recipe(tokens=text).tokens == tokens


@pytest.mark.parametrize("text, flops", [(3e15, 3e15), ("3e15", 3e15), ("3P", 3e15), ("250T", 2.5e14),
                                         ("1.5 G", 1.5e9), ("2E", 2e18), (7, 7.0)])
def test_flop_counts(text, flops):
    assert parse_flops(text) == pytest.approx(flops, rel=1e-15)
    assert Recipe(flops=text).flops == pytest.approx(flops, rel=1e-15)


@pytest.mark.parametrize("fields, message", [
    ({"steps": 10, "flops": 1e15}, "steps and flops are both set"),
    ({"tokens": "1M", "flops": "1P"}, "tokens and flops are both set"),
    ({"tokens": "5x"}, "tokens: '5x' is not a size"),
    ({"tokens": "5.5e0"}, "not a whole number of tokens"),
    ({"tokens": 0}, "out of range"),
    ({"tokens": True}, "not a token count"),
    ({"flops": "3Q"}, "flops: '3Q' is not a FLOP count"),
    ({"flops": -1}, "flops: -1 is out of range"),
    ({"flops": "inf"}, "flops"),
    ({"warmup": 1.5}, "warmup"),
    ({"eval_every": 0}, "eval_every"),
    # 1.0 used to pass as the integer 1: "the whole run" silently became "every step"
    ({"eval_every": 1.0}, r"eval_every 1.0 is neither: a fraction of the run is below 1 .* steps are an integer"),
    ({"warmup": 20.0}, r"warmup 20.0 is neither"),
])
def test_bad_lengths_name_the_field(fields, message):
    with pytest.raises(ValidationError, match=message):
        Recipe(**fields)


def test_the_default_length_is_200_steps_and_lengths_round_trip():
    assert (Recipe().steps, Recipe().budget_kind) == (200, "steps")
    for recipe in (Recipe(flops="3P", warmup=0.05), Recipe(tokens="5M", eval_every=0.5), Recipe(steps=7)):
        again = Recipe.model_validate_json(recipe.model_dump_json())
        assert again == recipe and again.budget_kind == recipe.budget_kind


def test_fractions_of_the_run_become_steps():
    assert fraction_or_steps(0.1, 95) == 10 and fraction_or_steps(0.001, 95) == 1 and fraction_or_steps(20, 95) == 20


def test_the_schedule_of_a_flops_recipe_follows_its_resolved_length():
    recipe = Recipe(flops=1e15, lr=1.0, min_lr=0.0, warmup=0.1)
    with pytest.raises(ValueError, match="total"):
        lr_at(recipe, 0)
    rates = [lr_at(recipe, s, 50) for s in range(50)]
    assert rates[:5] == pytest.approx([(s + 1) / 5 for s in range(5)])  # warmup: 10% of 50 steps
    assert rates[5] == pytest.approx(1.0) and rates[-1] < 0.01
    assert rates == [lr_at(Recipe(steps=50, lr=1.0, min_lr=0.0, warmup=5), s) for s in range(50)]


def test_one_written_as_text_is_refused_too():
    with pytest.raises(ValidationError, match="eval_every 1.0 is neither"):
        Recipe(eval_every="1.0")
    assert Recipe(eval_every="0.5").eval_every == 0.5 and Recipe(eval_every="8").eval_every == 8
