"""The inference cache of a whole model: one preallocated state per stateful layer plus the position."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class MixerState(Protocol):
    """What a mixer's `allocate_cache` returns (archsearch.blocks.KVCache, MambaState, ...)."""

    def nbytes(self) -> int: ...

    def reset(self) -> None: ...


@dataclass
class ModelCache:
    batch: int
    max_len: int
    layers: list[MixerState | None]  # None for layers without state (MLP)
    seq_len: int = 0  # tokens consumed so far = absolute position of the next token

    def nbytes(self) -> int:
        return sum(s.nbytes() for s in self.layers if s is not None)

    def reset(self) -> None:
        """Start a new sequence in the same buffers."""
        for state in self.layers:
            if state is not None:
                state.reset()
        self.seq_len = 0
