"""Noisy in-context recall (MAD): in-context recall with a share of pair slots replaced by tokens of a separate
noise vocabulary, which the model must learn to ignore."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field

from .base import Batch, TaskOptions
from .in_context_recall import InContextRecall, recall_batch


class NoisyRecallOptions(TaskOptions):
    vocab: Annotated[int, Field(ge=4, description="keys + values, equally split")] = 32
    noise_vocab: Annotated[int, Field(ge=1, description="noise tokens (a vocabulary of their own)")] = 16
    frac_noise: Annotated[float, Field(ge=0, lt=1, description="share of pair slots holding noise")] = 0.4


class NoisyRecall(InContextRecall):
    """In-context recall's keys, values and checks, plus noise tokens drawn from their own vocabulary."""

    name = "noisy_recall"
    Options = NoisyRecallOptions
    description = "noisy in-context recall (MAD): in-context recall with noise tokens interleaved"

    @property
    def vocab_size(self) -> int:
        return self.options.vocab + self.options.noise_vocab

    def sample(self, gen: torch.Generator, batch_size: int) -> Batch:
        o = self.options
        return recall_batch(gen, batch_size, self.seq_len, self.n_keys, self.n_values, o.noise_vocab, o.frac_noise)
