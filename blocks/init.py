"""Deterministic initialisation: each draw has its own CPU generator, seeded from the model's seed and the draw's
place in a fixed order, and is then copied into its parameter; so the same seed gives the same weights on any
device, in any dtype, and however many threads draw them (a 100M model's ~0.3 s of serial CPU draws was most of a
study trial's set-up on a GPU)."""

from __future__ import annotations

import hashlib
import math
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import torch

INLINE_BELOW = 1 << 16  # elements: smaller draws run on the calling thread (a task costs more than they do)


def draw_seed(seed: int, index: int) -> int:
    """The generator seed of draw `index` of a model seeded `seed`: a hash, so neighbouring seeds and indices give
    unrelated streams (torch's CPU generator keeps 64 bits of it)."""
    return int.from_bytes(hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).digest(), "little")


def default_threads() -> int:
    return max(1, min(8, os.cpu_count() or 1))


@dataclass
class Initializer:
    seed: int
    std: float  # hidden projections
    output_std: float  # projections that write into the residual stream
    embedding_std: float
    threads: int = 1  # > 1: large draws run on a pool; finish() (or leaving a `with` block) waits for them
    _draws: int = 0
    _pool: ThreadPoolExecutor | None = field(default=None, repr=False)
    _pending: list[Future] = field(default_factory=list, repr=False)

    @classmethod
    def from_seed(cls, seed: int, std: float, output_std: float, embedding_std: float,
                  threads: int = 1) -> "Initializer":
        return cls(seed, std, output_std, embedding_std, threads)

    def next_generator(self) -> torch.Generator:
        """The generator of the next draw in the fixed order."""
        index, self._draws = self._draws, self._draws + 1
        return torch.Generator(device="cpu").manual_seed(draw_seed(self.seed, index))

    def normal_(self, param: torch.Tensor, std: float) -> None:
        generator = self.next_generator()
        self._run(param, lambda: torch.empty(param.shape, dtype=torch.float32).normal_(0.0, std, generator=generator))

    def uniform_(self, param: torch.Tensor, low: float, high: float) -> None:
        generator = self.next_generator()
        self._run(param, lambda: torch.empty(param.shape, dtype=torch.float32).uniform_(low, high,
                                                                                       generator=generator))

    def log_uniform_(self, param: torch.Tensor, low: float, high: float) -> torch.Tensor:
        """Values exp(u) with u uniform in [log low, log high], returned (float32, CPU) without copying."""
        u = torch.rand(param.shape, dtype=torch.float32, generator=self.next_generator())
        return torch.exp(u * (math.log(high) - math.log(low)) + math.log(low))

    def _run(self, param: torch.Tensor, draw: Callable[[], torch.Tensor]) -> None:
        if self.threads <= 1 or param.numel() < INLINE_BELOW:
            self._copy(param, draw())
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="init")
        self._pending.append(self._pool.submit(lambda: self._copy(param, draw())))

    def finish(self) -> None:
        """Wait for every draw handed to the pool (the first failure is raised) and close the pool."""
        pending, self._pending = self._pending, []
        try:
            for future in pending:
                future.result()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None

    def __enter__(self) -> "Initializer":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finish()
            return
        try:  # the body failed: still wait (no thread may write a parameter later), but keep its error
            self.finish()
        except Exception:  # noqa: BLE001 - the body's exception is the one to see
            pass

    @staticmethod
    def _copy(param: torch.Tensor, value: torch.Tensor) -> None:
        with torch.no_grad():
            param.copy_(value.to(device=param.device, dtype=param.dtype))

    def linear_(self, linear: torch.nn.Linear, std: float) -> None:
        self.normal_(linear.weight, std)
        if linear.bias is not None:
            with torch.no_grad():
                linear.bias.zero_()
