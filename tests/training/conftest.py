"""Fixtures for the training tests: tiny hybrids (one Mamba-2, one attention, one MLP layer) and a real corpus."""

import shutil
import sysconfig
from pathlib import Path

import pytest
import torch

from archsearch.spec import loads_spec

TINY = """
name: tiny-hybrid
vocab_size: {vocab}
d_model: 64
max_context: 256
pattern: M*-
blocks:
  M: {{kind: mamba2, n_heads: 4, head_dim: 16, d_state: 32, n_groups: 1, conv_kernel: 4, chunk_size: 32}}
  "*": {{kind: attention, n_heads: 2, n_kv_heads: 1, head_dim: 32, rope_theta: null}}
  "-": {{kind: mlp, ffn_ratio: 2, activation: relu2}}
"""


@pytest.fixture(autouse=True, scope="session")
def _threads():
    torch.set_num_threads(2)


def tiny_spec(vocab: int = 64):
    return loads_spec(TINY.format(vocab=vocab))


@pytest.fixture(scope="session")
def make_spec():
    """tiny_spec itself, for tests that need several vocabularies."""
    return tiny_spec


@pytest.fixture
def spec():
    return tiny_spec(64)


@pytest.fixture
def text_spec():
    return tiny_spec(260)  # bytes (256) + end of document


@pytest.fixture(scope="session")
def stdlib_corpus(tmp_path_factory) -> Path:
    """About 3 MB of Python's own standard-library sources, copied into a folder (one document per file)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    folder = tmp_path_factory.mktemp("stdlib")
    total = 0
    for source in sorted(stdlib.glob("*.py")):
        shutil.copy(source, folder / source.name)
        total += source.stat().st_size
        if total > 3_000_000:
            break
    assert total > 1_000_000, f"too little standard library found under {stdlib}"
    return folder
