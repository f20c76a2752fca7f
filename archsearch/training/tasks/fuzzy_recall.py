"""Fuzzy in-context recall (MAD): keys and values are motifs of 1 .. k_motif / 1 .. v_motif adjacent tokens, so the
model must find where a key ends before it recalls the value motif that followed it earlier.

Per sequence, `n_keys` distinct key motifs each get a value motif; the sequence is pairs drawn from that pool, and
the value tokens of a key that appeared before are scored. Ids: key tokens 0 .. vocab/2-1, value tokens after them,
then one pad id (end of a sequence that no whole pair fits)."""

from __future__ import annotations

import random
from typing import Annotated

import torch
from pydantic import Field

from .base import IGNORE, Batch, SyntheticTask, TaskOptions, need


class FuzzyRecallOptions(TaskOptions):
    vocab: Annotated[int, Field(ge=4, description="key tokens + value tokens, equally split")] = 16
    k_motif: Annotated[int, Field(ge=1, le=8, description="longest key motif, in tokens")] = 3
    v_motif: Annotated[int, Field(ge=1, le=8, description="longest value motif, in tokens")] = 3
    n_keys: Annotated[int, Field(ge=1, description="distinct key motifs per sequence")] = 8


class FuzzyRecall(SyntheticTask):
    name = "fuzzy_recall"
    Options = FuzzyRecallOptions
    description = "fuzzy in-context recall (MAD): keys and values of variable length (motifs)"

    def __init__(self, options: FuzzyRecallOptions, seq_len: int, seed: int):
        super().__init__(options, seq_len, seed)
        o = options
        self.key_tokens = o.vocab // 2
        self.pad = o.vocab
        possible = sum(self.key_tokens ** size for size in range(1, o.k_motif + 1))
        need(self.name, o.n_keys <= possible, f"n_keys {o.n_keys} distinct key motifs do not exist with "
                                               f"{self.key_tokens} key tokens and k_motif {o.k_motif}")
        need(self.name, seq_len >= 2 * (o.k_motif + o.v_motif),
             f"seq_len {seq_len} holds no repeated pair: needs >= {2 * (o.k_motif + o.v_motif)}")

    @property
    def vocab_size(self) -> int:
        return self.options.vocab + 1

    def _motif(self, rng: random.Random, max_len: int, low: int, high: int) -> tuple[int, ...]:
        return tuple(rng.randrange(low, high) for _ in range(rng.randint(1, max_len)))

    def _sequence(self, rng: random.Random) -> tuple[list[int], list[int]]:
        o = self.options
        keys: set[tuple[int, ...]] = set()
        while len(keys) < o.n_keys:
            keys.add(self._motif(rng, o.k_motif, 0, self.key_tokens))
        pool = [(k, self._motif(rng, o.v_motif, self.key_tokens, o.vocab)) for k in sorted(keys)]
        ids: list[int] = []
        targets: list[int] = []
        seen: set[tuple[int, ...]] = set()
        while True:
            key, value = pool[rng.randrange(len(pool))]
            if len(ids) + len(key) + len(value) > self.seq_len:
                break
            ids += key + value
            # the last key token predicts the first value token; each value token predicts the next
            scored = list(value) if key in seen else [IGNORE] * len(value)
            targets += [IGNORE] * (len(key) - 1) + scored + [IGNORE]
            seen.add(key)
        targets = targets[:len(ids)]
        pad = self.seq_len - len(ids)
        return ids + [self.pad] * pad, targets + [IGNORE] * pad

    def sample(self, gen: torch.Generator, batch_size: int) -> Batch:
        rows = [self._sequence(random.Random(int(torch.randint(0, 1 << 62, (1,), generator=gen))))
                for _ in range(batch_size)]
        return Batch(torch.tensor([r[0] for r in rows]), torch.tensor([r[1] for r in rows]))
