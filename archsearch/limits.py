"""Bounds of the numeric inputs a user types or writes in a recipe or a study file, in one table (no torch, no
pydantic), so the recipe and study models, the command-line options and their --help agree. Each bound is far beyond any sensible run and
well inside what the code can compute with (int64 tensors, float math), so a typo such as `--seed 10**30` or
`--batch-size 10000000` is refused up front instead of ending in an OverflowError or an allocation failure."""

from __future__ import annotations

MAX_STEPS = 10**9  # steps, eval/log/checkpoint intervals, warmup steps
MAX_BATCH = 1 << 16  # sequences per step (training) or served at once (check, show)
MAX_SEQ_LEN = 1 << 20  # tokens per training sequence (the spec's max_context applies too)
MAX_GRAD_ACCUM = 1 << 16
MAX_EVAL_BATCHES = 1 << 16
MAX_FP8_MIN_DIM = 1 << 20
MAX_SEED = (1 << 63) - 1  # torch, numpy and Python's random all take it
MAX_LR = 1e9  # no useful bound from above (tests force a divergence with 1e6); finite is what matters
MAX_NPROC = 1024
MAX_TEMPERATURE = 1000.0
MAX_DECODE_STEPS = 1 << 16
MAX_RESERVE_GIB = 1 << 20

# studies (checked by archsearch.studies.bounds and the study file's model)
MAX_TRIALS = 100_000  # n_trials / --n-trials
MAX_TIMEOUT_S = 10_000_000  # timeout_s / --timeout: about 115 days
MAX_WORKERS = 256  # --workers
MAX_SAMPLER_SEED = 2**32 - 1  # a study's seed: numpy and Optuna samplers take 32-bit seeds
MAX_SEED_OFFSET = 1_000_000  # --seed-offset
MAX_GRID_POINTS = 100_000  # sampler type grid: Optuna holds every point of the grid in memory
MAX_SERVED_BATCH = 1 << 20  # constraints.budget[].batch: sequences served at once
MAX_ABLATION_SEEDS = 1_000  # ablate --seeds
MAX_ABLATION_RUNS = 10_000  # ablate: cells x seeds
