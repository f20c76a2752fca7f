"""Learning-rate schedules as pure functions of the step, so a resumed run recomputes the same rate.

A schedule's length is the run's length when it started (`schedule_steps` in state.json). A resumed run whose
length changed (`train --resume DIR --steps 80` after 60) keeps that schedule, so the rate never jumps back up:
steps past its end hold its final rate (min_lr after cosine or WSD decay, lr when constant), and a shortened run
stops before its decay ends. `schedule_note` says so.
"""

from __future__ import annotations

import math

from .budget import fraction_or_steps
from .recipe import Recipe


def lr_at(recipe: Recipe, step: int, total: int | None = None) -> float:
    """The rate for optimizer step `step` (0-based): linear warmup, then cosine / warmup-stable-decay / constant.
    `total`: the run's resolved steps (archsearch.training.budget; needed when the recipe gives tokens or FLOPs)."""
    total = recipe.steps if total is None else total
    if total is None:
        raise ValueError("lr_at: a tokens/flops recipe needs the resolved step count (total=)")
    lr, floor = recipe.lr, recipe.min_lr
    warmup = fraction_or_steps(recipe.warmup, total)
    if warmup and step < warmup:
        return lr * (step + 1) / warmup
    if recipe.schedule == "constant":
        return lr
    if recipe.schedule == "cosine":
        span = max(total - warmup, 1)
        progress = min((step - warmup) / span, 1.0)
        return floor + (lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    # wsd: stable at lr, then a linear decay to min_lr over the last decay_fraction of the run
    decay_steps = max(round(total * recipe.decay_fraction), 1)
    decay_start = total - decay_steps
    if step < decay_start:
        return lr
    progress = min((step - decay_start + 1) / decay_steps, 1.0)
    return lr + (floor - lr) * progress


def schedule_note(recipe: Recipe, schedule_steps: int, total: int) -> str | None:
    """What a resumed run of `total` steps does with a schedule of `schedule_steps` (None when they agree)."""
    if total == schedule_steps:
        return None
    final = lr_at(recipe, schedule_steps, schedule_steps)
    head = (f"resume: the run now trains {total} steps; its learning-rate schedule keeps the {schedule_steps} steps "
            f"it started with ({recipe.schedule})")
    if total > schedule_steps:
        return f"{head}, so steps {schedule_steps}..{total - 1} run at its final rate {final:.3g}"
    return f"{head}, so the run stops before the schedule ends (at rate {lr_at(recipe, total - 1, schedule_steps):.3g})"
