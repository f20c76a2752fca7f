"""Full-size public configs (the shipped examples) and tiny specs."""

import pytest

from archsearch.spec import load_spec, loads_spec, parse_spec


def public_spec(name: str):
    return load_spec(name)


@pytest.fixture(scope="session")
def nemotron_9b():
    return public_spec("nemotron-nano-9b-v2")


@pytest.fixture(scope="session")
def nemotron_12b():
    return public_spec("nemotron-nano-12b-v2-base")


@pytest.fixture(scope="session")
def qwen3_8b():
    return public_spec("qwen3-8b")


@pytest.fixture(scope="session")
def qwen3_8b_yarn(qwen3_8b):
    """Qwen3-8B as its model card serves 128k: YaRN factor 4 over the native 32k (max_position 40960)."""
    return parse_spec({**qwen3_8b.to_dict(), "max_context": 131072})


TINY = """
name: tiny
vocab_size: 100
d_model: 16
max_context: 4096
pattern: M*-W
blocks:
  M: {kind: mamba2, n_heads: 2, head_dim: 8, d_state: 4, n_groups: 1, conv_kernel: 4, chunk_size: 8}
  "*": {kind: attention, n_heads: 4, n_kv_heads: 2, head_dim: 8, rope_theta: null}
  W: {kind: attention, n_heads: 4, n_kv_heads: 1, head_dim: 8, window: 64, rope_theta: null}
  "-": {kind: mlp, ffn_dim: 40, activation: relu2}
tie_embeddings: true
"""


@pytest.fixture
def tiny():
    return loads_spec(TINY)
