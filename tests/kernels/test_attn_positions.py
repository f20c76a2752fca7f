"""Attention over a cache by absolute positions: block masks from positions, every backend against a float64
oracle (global prefix, ring order, empty slots, windows, GQA), SDPA's refusals, and shape stability under
torch.compile (a new prefix length or ring offset is no recompile)."""

import math

import pytest
import torch

import archsearch.kernels as K
from archsearch.kernels import CachePositions
from archsearch.kernels import attn as attn_mod
from archsearch.kernels.attn_positions import BLOCK, block_pairs, visible_from_positions
from kernels_testlib import assert_close


def oracle(q, k, v, q_pos, k_pos, window=None, softcap=None):
    """Float64, one query at a time, the visible key list spelled out from the positions."""
    b, hq, t, d = q.shape
    rep = hq // k.shape[1]
    out = torch.zeros(b, hq, t, d, dtype=torch.float64)
    for i in range(t):
        p = int(q_pos[i])
        keys = [j for j in range(k.shape[2]) if 0 <= int(k_pos[j]) <= p and (window is None or int(k_pos[j]) > p - window)]
        for h in range(hq):
            logits = torch.einsum("bd,bkd->bk", q[:, h, i].double(), k[:, h // rep, keys].double()) / math.sqrt(d)
            if softcap is not None:
                logits = softcap * torch.tanh(logits / softcap)
            out[:, h, i] = torch.einsum("bk,bkd->bd", torch.softmax(logits, -1), v[:, h // rep, keys].double())
    return out


def ring_positions(written, capacity):
    slots = torch.arange(capacity)
    held = written - 1 - torch.remainder(written - 1 - slots, capacity)
    return torch.where(held >= 0, held, -1)


LAYOUTS = {
    # name: (t, k_pos, q_pos, end_aligned)
    "global-prefix": (5, torch.where(torch.arange(40) < 17, torch.arange(40), -1), torch.arange(12, 17), 17),
    "ring-wrapped": (4, torch.cat([ring_positions(23, 8), torch.arange(23, 27)]), torch.arange(23, 27), None),
    "ring-filling": (6, torch.cat([ring_positions(3, 8), torch.arange(3, 9)]), torch.arange(3, 9), None),
}


@pytest.mark.parametrize("window", [None, 6], ids=["global", "W6"])
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("backend", ["naive", "flex", "sdpa"])
def test_backends_match_oracle_over_positions(backend, layout, window):
    t, k_pos, q_pos, end_aligned = LAYOUTS[layout]
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(2, 4, t, 16, generator=gen)
    k, v = torch.randn(2, 2, len(k_pos), 16, generator=gen), torch.randn(2, 2, len(k_pos), 16, generator=gen)
    positions = CachePositions(q_pos, k_pos, end_aligned)
    refusal = K.registry.get_backend("attention", backend).accepts(
        device="cpu", dtype=torch.float32, head_dim=16, t=t, s=end_aligned or len(k_pos), causal=True,
        window=window, softcap=None, gqa=True, requires_grad=False, positional=True, end_aligned=end_aligned is not None)
    if backend == "sdpa" and end_aligned is None:
        assert "ring" in refusal
        return
    assert refusal is None
    with torch.no_grad(), K.force_backend("attention", backend):
        got = K.attention(q, k, v, window=window, positions=positions)
    assert_close(got, oracle(q, k, v, q_pos, k_pos, window).float(), torch.float32, f"{backend} {layout}")


def test_softcap_over_a_ring_takes_flex_by_default():
    t, k_pos, q_pos, _ = LAYOUTS["ring-wrapped"]
    gen = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 2, n, 16, generator=gen) for n in (t, len(k_pos), len(k_pos)))
    K.reset_backends_used()
    with torch.no_grad():
        got = K.attention(q, k, v, window=8, softcap=5.0, positions=CachePositions(q_pos, k_pos))
    assert K.backends_used()["attention"] == "flex"
    assert_close(got, oracle(q, k, v, q_pos, k_pos, 8, 5.0).float(), torch.float32, "flex softcap ring")


@pytest.mark.parametrize("case", ["global", "ring", "window", "empty-block"])
def test_block_mask_covers_every_visible_pair_and_full_blocks_are_exact(case):
    S, t = 700, 300
    start = 350
    q_pos = torch.arange(start, start + t)
    k_pos, window = {
        "global": (torch.where(torch.arange(S) < start + t, torch.arange(S), -1), None),
        "ring": (torch.cat([ring_positions(start, 400), q_pos]), 400),
        "window": (torch.where(torch.arange(S) < start + t, torch.arange(S), -1), 400),
        "empty-block": (torch.full((S,), -1), None),
    }[case]
    partial, full = block_pairs(q_pos, k_pos, window)
    dense = visible_from_positions(q_pos, k_pos, window)
    nq, nk = partial.shape
    padded = torch.zeros(nq * BLOCK, nk * BLOCK, dtype=torch.bool)
    padded[:t, :len(k_pos)] = dense
    blocks = padded.view(nq, BLOCK, nk, BLOCK)
    any_visible = blocks.any(3).any(1)
    assert not (partial & full).any()
    assert ((partial | full) >= any_visible).all(), "a visible pair lies in a skipped block"
    for i, j in full.nonzero().tolist():
        rows, cols = min(BLOCK, t - i * BLOCK), min(BLOCK, len(k_pos) - j * BLOCK)
        assert blocks[i, :rows, j, :cols].all(), f"block ({i}, {j}) marked full has an invisible pair"
    if case == "empty-block":
        assert not (partial | full).any()
    else:
        assert full.any() and (partial.sum() < partial.numel())


def test_sdpa_takes_lower_right_without_mask_on_cuda_and_refuses_rings():
    sdpa = K.registry.get_backend("attention", "sdpa")
    big = dict(device="cuda", head_dim=128, t=2048, s=30000, causal=True, window=None, softcap=None)
    assert sdpa.accepts(dtype=torch.bfloat16, gqa=True, **big) is None  # flash, GQA native, no mask
    assert sdpa.accepts(dtype=torch.float32, gqa=False, **big) is None  # memory-efficient kernel
    assert "mask" in sdpa.accepts(dtype=torch.float32, gqa=True, **big)  # CausalBias would materialise
    assert "ring" in sdpa.accepts(dtype=torch.bfloat16, gqa=True, positional=True, end_aligned=False, **big)
    assert K.check("attention", dtype=torch.bfloat16, gqa=True, positional=True, end_aligned=False,
                   requires_grad=False, **{**big, "device": "cpu"}).name == "flex"


def test_positions_bad_arguments_are_named():
    q, k = torch.zeros(1, 2, 3, 16), torch.zeros(1, 2, 10, 16)
    with pytest.raises(K.KernelArgumentError, match="k_pos_S"):
        K.attention(q, k, k, positions=CachePositions(torch.arange(3), torch.arange(9)))
    with pytest.raises(K.KernelArgumentError, match="end_aligned"):
        K.attention(q, k, k, positions=CachePositions(torch.arange(3), torch.arange(10), end_aligned=11))


def test_compiled_flex_over_positions_does_not_recompile_for_new_offsets():
    """The CUDA path compiles `flex_positional` with dynamic=False; dynamo's guards are the same with any
    backend, so the eager backend on CPU shows that moving the prefix or the ring offset reuses the graph."""
    torch._dynamo.reset()
    compiled = torch.compile(attn_mod.flex_positional, backend="eager", dynamic=False)
    gen = torch.Generator().manual_seed(2)
    q, k, v = torch.randn(1, 4, 6, 16, generator=gen), torch.randn(1, 2, 14, 16, generator=gen), torch.randn(1, 2, 14, 16, generator=gen)
    with torch.no_grad():
        for written in (0, 5, 8, 11):  # ring of 8 plus 6 new keys, at four offsets
            q_pos = torch.arange(written, written + 6)
            k_pos = torch.cat([ring_positions(written, 8), q_pos])
            with torch._dynamo.config.patch(error_on_recompile=written > 0):
                got = compiled(q, k, v, q_pos, k_pos, 8, None, None, True)
            assert_close(got, oracle(q, k, v, q_pos, k_pos, 8).float(), torch.float32, f"offset {written}")
