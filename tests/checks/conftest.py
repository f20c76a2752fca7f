"""Full-size public configs (the shipped examples) and tiny specs."""

import json
from pathlib import Path

import pytest

from archsearch.hf import import_hf_config
from archsearch.spec import load_spec, loads_spec


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


QWEN3_8B_CONFIG = Path(__file__).parents[1] / "hf" / "configs" / "qwen3-8b.json"
# Qwen3-8B's model card, for 128k: rope_scaling YaRN, factor 4 over the native 32k (max_position 40960).
YARN = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}


@pytest.fixture(scope="session")
def qwen3_8b_yarn_config():
    return {**json.loads(QWEN3_8B_CONFIG.read_text()), "rope_scaling": YARN}


@pytest.fixture(scope="session")
def qwen3_8b_yarn(qwen3_8b_yarn_config):
    """Qwen3-8B imported from its config with the model card's YaRN: max_context 131072 (32768 x 4)."""
    return import_hf_config(qwen3_8b_yarn_config)


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
