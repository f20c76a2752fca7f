"""Fixtures for the data-parallel tests: a tiny hybrid (one Mamba-2, one attention, one MLP layer) and a small
MQAR task, so a two-process gloo run on CPU takes seconds."""

import textwrap

import pytest
import torch

from archsearch.spec import loads_spec
from archsearch.training import TaskSpec

TINY = """
name: tiny-ddp
vocab_size: 64
d_model: 32
max_context: 256
pattern: M*-
blocks:
  M: {kind: mamba2, n_heads: 2, head_dim: 16, d_state: 16, n_groups: 1, conv_kernel: 4, chunk_size: 16}
  "*": {kind: attention, n_heads: 2, n_kv_heads: 1, head_dim: 16, rope_theta: null}
  "-": {kind: mlp, ffn_ratio: 2, activation: relu2}
"""

TASK = TaskSpec(name="mqar", options={"vocab": 16, "n_pairs": 2})


@pytest.fixture(autouse=True, scope="session")
def _threads():
    torch.set_num_threads(2)


@pytest.fixture
def spec():
    return loads_spec(TINY)


@pytest.fixture
def task():
    return TASK


STUDY = """
name: ddp-study
base:
{base}
space:
  parameters:
    blocks.M.d_state: {{type: categorical, choices: [8, 16]}}
task: {{name: mqar, options: {{vocab: 16, n_pairs: 2}}}}
recipe: {{steps: 3, batch_size: 4, seq_len: 16, eval_every: 3, eval_batches: 1, warmup: 1}}
objectives: [val_loss]
sampler: {{type: random}}
n_trials: {n_trials}
gpus_per_trial: {gpus_per_trial}
device: {device}
seed: 0
"""


@pytest.fixture
def study_file(tmp_path):
    """Writes a study of the tiny hybrid (random sampler, 3 steps) and returns its path."""
    def write(gpus_per_trial: int, n_trials: int = 1, device: str = "cpu"):
        path = tmp_path / "study.yaml"
        path.write_text(STUDY.format(base=textwrap.indent(TINY.strip(), "  "), gpus_per_trial=gpus_per_trial,
                                     n_trials=n_trials, device=device))
        return path
    return write
