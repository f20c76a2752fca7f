"""Fixtures for the data-parallel tests: a tiny hybrid (one Mamba-2, one attention, one MLP layer) and a small
MQAR task, so a two-process gloo run on CPU takes seconds."""

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
