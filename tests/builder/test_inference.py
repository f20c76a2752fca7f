"""Prefill of k tokens, then decoding the rest one by one, gives the logits of one full forward (float32)."""

import pytest
import torch

import archsearch
from archsearch.kernels import backends_used, force_backend, reset_backends_used
from specs import families

FAMILIES = families()
SEQ = 21  # longer than every window and chunk size in the specs, and not a multiple of any


@pytest.fixture(autouse=True)
def _naive_attention(request):
    """These tests are about the caches; the attention op's backends have their own parity tests. On CPU the
    soft-capped layers would otherwise run eager FlexAttention, which builds a block mask for every decode length
    (seconds per test)."""
    if "default_backends" in request.node.name:
        yield
        return
    with force_backend("attention", "naive"):
        yield


def _run_cached(model, ids_BT, prefill_len, chunk_size):
    cache = model.allocate_cache(ids_BT.shape[0], SEQ)
    logits = [model.prefill(ids_BT[:, :prefill_len], cache, chunk_size=chunk_size, logits="all")]
    for t in range(prefill_len, SEQ):
        logits.append(model.decode_step(ids_BT[:, t:t + 1], cache))
    assert cache.seq_len == SEQ
    return torch.cat(logits, dim=1)


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("prefill_len,chunk_size", [(1, None), (9, None), (13, 4), (SEQ, 5)],
                         ids=["P1", "P9", "P13-chunk4", "P21-chunk5"])
def test_cached_inference_matches_full_forward(family, prefill_len, chunk_size):
    model = archsearch.build(FAMILIES[family], seed=3).eval()
    ids_BT = torch.randint(0, 64, (2, SEQ), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(ids_BT)
    cached = _run_cached(model, ids_BT, prefill_len, chunk_size)
    torch.testing.assert_close(cached, full, rtol=1e-4, atol=1e-4)


def test_windowed_cache_keeps_only_the_window():
    model = archsearch.build(FAMILIES["windowed_mqa"])
    cache = model.allocate_cache(3, 100)
    kv = [s for s in cache.layers if s is not None and hasattr(s, "k_BHSD")]
    assert [s.k_BHSD.shape for s in kv] == [(3, 1, 3, 16), (3, 1, 3, 16)]
    assert all(s.ring for s in kv)


def test_cache_reset_starts_a_new_sequence():
    model = archsearch.build(FAMILIES["nemotron_h"]).eval()
    ids_BT = torch.randint(0, 64, (1, 10))
    cache = model.allocate_cache(1, 20)
    first = model.prefill(ids_BT, cache, logits="all")
    cache.reset()
    second = model.prefill(ids_BT, cache, logits="all")  # a global KV cache is overwritten from position 0
    torch.testing.assert_close(first, second)


def test_cache_overflow_and_batch_mismatch_are_clear_errors():
    model = archsearch.build(FAMILIES["qwen3"])
    cache = model.allocate_cache(2, 4)
    with pytest.raises(ValueError, match="cache holds 4 tokens"):
        model.prefill(torch.zeros(2, 5, dtype=torch.long), cache)
    with pytest.raises(ValueError, match="batch 1 does not match"):
        model.decode_step(torch.zeros(1, 1, dtype=torch.long), cache)
    with pytest.raises(ValueError, match=r"\(batch, 1\)"):
        model.decode_step(torch.zeros(2, 2, dtype=torch.long), cache)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_prefill_last_logits_equal_the_last_of_all(family):
    model = archsearch.build(FAMILIES[family], seed=3).eval()
    ids_BT = torch.randint(0, 64, (2, SEQ), generator=torch.Generator().manual_seed(2))
    everything = model.prefill(ids_BT, model.allocate_cache(2, SEQ), chunk_size=8, logits="all")
    last = model.prefill(ids_BT, model.allocate_cache(2, SEQ), chunk_size=8)
    assert last.shape == (2, 1, everything.shape[-1])
    torch.testing.assert_close(last, everything[:, -1:], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="logits='every'"):
        model.prefill(ids_BT, model.allocate_cache(2, SEQ), logits="every")


@pytest.mark.parametrize("family,expected", [("windowed_mqa", "flex"), ("qwen3", "sdpa")])
def test_default_backends_over_the_cache_match_full_forward(family, expected):
    """Not forcing naive attention: a ring takes flex over positions, global chunks SDPA (end-aligned)."""
    model = archsearch.build(FAMILIES[family], seed=3).eval()
    ids_BT = torch.randint(0, 64, (2, SEQ), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(ids_BT)
    cache = model.allocate_cache(2, SEQ)
    parts = [model.prefill(ids_BT[:, :4], cache, logits="all")]
    reset_backends_used()
    parts.append(model.prefill(ids_BT[:, 4:17], cache, chunk_size=5, logits="all"))  # last chunk of 3
    assert backends_used()["attention"] == expected
    parts += [model.decode_step(ids_BT[:, t:t + 1], cache) for t in range(17, SEQ)]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, rtol=1e-4, atol=1e-4)
