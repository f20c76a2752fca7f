"""The closed table of block kinds (archsearch.spec.kinds): one class per kind, every figure a method of it."""

import re
from pathlib import Path
from typing import get_args

import pytest

from archsearch.spec import SpecError, loads_spec
from archsearch.spec.kinds import (BLOCK_KINDS, KINDS, AttentionBlock, BlockKind, BlockSpec, LayerWorkspace,
                                   Mamba2Block, MlpBlock, StateTerms, kind_class)

ROOT = Path(__file__).resolve().parents[2]


def test_table_rows_are_their_classes_kind_tags():
    assert BLOCK_KINDS == ("mamba2", "attention", "mlp")
    for name, cls in KINDS.items():
        assert cls.model_fields["kind"].default == name and issubclass(cls, BlockKind) and cls.label
    union = get_args(get_args(BlockSpec)[0])
    assert union == tuple(KINDS.values())


@pytest.mark.parametrize("name", ["moe", "Mamba2", "", None, 3])
def test_unknown_kind_names_the_valid_ones(name):
    with pytest.raises(ValueError, match=r"unknown block kind .*; allowed: mamba2, attention, mlp"):
        kind_class(name)


def test_a_spec_with_an_unknown_kind_lists_the_table():
    doc = "name: x\nvocab_size: 10\nd_model: 8\nmax_context: 16\npattern: E\nblocks:\n  E: {kind: moe}\n"
    with pytest.raises(SpecError, match=r"blocks\.E\.kind.*unknown block kind.*mamba2, attention, mlp"):
        loads_spec(doc)


def test_a_kind_missing_a_method_cannot_be_made():
    class Half(BlockKind):  # dims, parameters, forward_flops, workspace and linears are required
        def dims(self, d_model):
            return d_model

    with pytest.raises(TypeError, match="abstract"):
        Half()


def test_state_terms_keep_a_window_or_everything():
    assert StateTerms(kv_per_token=6, window=10).kv_bytes(4) == 24
    assert StateTerms(kv_per_token=6, window=10).kv_bytes(25) == 60
    assert StateTerms(kv_per_token=6).kv_bytes(25) == 150
    assert StateTerms().kv_bytes(1000) == 0


def test_state_of_each_kind_by_hand():
    # attention: K and V of 2 kv heads x 16 per token, 2 bytes each; window kept
    assert AttentionBlock(n_heads=4, n_kv_heads=2, head_dim=16, window=7).state(64, 2, 4, 2) == \
        StateTerms(kv_per_token=2 * 2 * 16 * 2, window=7)
    # Mamba-2: 4 heads x 8 x d_state 16 in float32; conv channels 32 + 2*1*16 = 64, kernel 4 -> 3 columns
    assert Mamba2Block(n_heads=4, head_dim=8, d_state=16).state(64, 2, 4, 2) == \
        StateTerms(ssm=4 * 8 * 16 * 4, conv=64 * 3 * 2)
    assert MlpBlock(ffn_dim=10).state(64, 2, 4, 2) == StateTerms()


def test_buffers_are_rope_frequencies_only():
    assert AttentionBlock(n_heads=4, head_dim=16).buffer_bytes(64) == 8 * 4
    assert AttentionBlock(n_heads=4, head_dim=16, rope_theta=None).buffer_bytes(64) == 0
    assert Mamba2Block(n_heads=2).buffer_bytes(64) == MlpBlock(ffn_dim=4).buffer_bytes(64) == 0


def test_linears_by_hand():
    assert Mamba2Block(n_heads=2, head_dim=8, d_state=4, n_groups=1).linears(16) == \
        [("in_proj", 16, 2 * 16 + 2 * 4 + 2), ("out_proj", 16, 16)]
    assert AttentionBlock(n_heads=4, n_kv_heads=1, head_dim=8).linears(16) == \
        [("q_proj", 16, 32), ("k_proj", 16, 8), ("v_proj", 16, 8), ("o_proj", 32, 16)]
    assert MlpBlock(ffn_dim=24, gated=True).linears(16) == [("gate_proj", 16, 24), ("up_proj", 16, 24),
                                                            ("down_proj", 24, 16)]
    assert MlpBlock(ffn_dim=24).linears(16) == [("up_proj", 16, 24), ("down_proj", 24, 16)]


def test_workspace_of_a_kind_leaves_out_the_carried_input():
    # MLP relu2: up, relu's temporary and its square alive together (3 F a)
    assert MlpBlock(ffn_dim=24).workspace(16, 2, "fused", False) == LayerWorkspace(3 * 24 * 2, 0.0)



def test_resolved_sizes_make_equal_blocks_equal():
    # The same module written two ways resolves to one dict; a relative field never survives.
    assert Mamba2Block(expand=2, head_dim=32).resolved(64) == Mamba2Block(n_heads=4, head_dim=32).resolved(64)
    assert Mamba2Block(expand=2, head_dim=32).resolved(64) != Mamba2Block(expand=2, head_dim=32).resolved(128)
    assert MlpBlock(ffn_ratio=2.5, multiple_of=64).resolved(100) == MlpBlock(ffn_dim=256).resolved(100)
    assert AttentionBlock(n_heads=4).resolved(64) == AttentionBlock(n_heads=4, n_kv_heads=4, head_dim=16).resolved(64)
    assert AttentionBlock(n_heads=4, window=8).resolved(64) != AttentionBlock(n_heads=4).resolved(64)
    for cls in KINDS.values():
        assert set(cls.relative_fields) <= set(cls.model_fields)
    resolved = MlpBlock(ffn_ratio=2.0).resolved(64)
    assert resolved["ffn_dim"] == 128 and "ffn_ratio" not in resolved and "multiple_of" not in resolved

# Consumers never ask which kind a block is; only a kind's own modules (and the two binding tables) name its class.
_SWITCH = re.compile(r"isinstance\([^)]*\b(Mamba2Block|AttentionBlock|MlpBlock|Mamba2Mixer|Attention|Mlp|KVCache|"
                     r"MambaState)\b")
_CHECKED = ["archsearch/spec", "archsearch/checks", "archsearch/builder", "archsearch/hf", "archsearch/cli",
            "archsearch/training", "blocks", "kernels"]


def test_no_module_switches_on_a_block_kind():
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
             for folder in _CHECKED for path in sorted((ROOT / folder).rglob("*.py"))
             for n, line in enumerate(path.read_text().splitlines(), 1) if _SWITCH.search(line)]
    assert not found, "dispatch on the kind through its methods or the kinds table instead:\n" + "\n".join(found)
