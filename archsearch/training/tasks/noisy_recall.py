"""Noisy in-context recall (MAD): in-context recall with a share of pair slots replaced by tokens of a separate
noise vocabulary, which the model must learn to ignore."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field

from .base import Batch, SyntheticTask, TaskOptions, need
from .in_context_recall import recall_batch


class NoisyRecallOptions(TaskOptions):
    vocab: Annotated[int, Field(ge=4)] = 32  # keys + values, equally split
    noise_vocab: Annotated[int, Field(ge=1)] = 16
    frac_noise: Annotated[float, Field(ge=0, lt=1)] = 0.4


class NoisyRecall(SyntheticTask):
    name = "noisy_recall"
    Options = NoisyRecallOptions
    description = "noisy in-context recall (MAD): in-context recall with noise tokens interleaved"

    def __init__(self, options: NoisyRecallOptions, seq_len: int, seed: int):
        super().__init__(options, seq_len, seed)
        need(self.name, seq_len >= 4, f"seq_len {seq_len} holds no repeated pair: needs >= 4")
        self.n_keys = options.vocab // 2
        self.n_values = options.vocab - self.n_keys

    @property
    def vocab_size(self) -> int:
        return self.options.vocab + self.options.noise_vocab

    def sample(self, gen: torch.Generator, batch_size: int) -> Batch:
        o = self.options
        return recall_batch(gen, batch_size, self.seq_len, self.n_keys, self.n_values, o.noise_vocab, o.frac_noise)
