"""The inference cache of a whole model: one preallocated state per stateful layer plus the position."""

from __future__ import annotations

from dataclasses import dataclass

from archsearch.blocks import KVCache, MambaState


@dataclass
class ModelCache:
    batch: int
    max_len: int
    layers: list[KVCache | MambaState | None]  # None for layers without state (MLP)
    seq_len: int = 0  # tokens consumed so far = absolute position of the next token

    def nbytes(self) -> int:
        return sum(s.nbytes() for s in self.layers if s is not None)

    def reset(self) -> None:
        """Start a new sequence in the same buffers."""
        for state in self.layers:
            if isinstance(state, MambaState):
                state.ssm_BHPN.zero_()
                state.conv_BDK.zero_()
        self.seq_len = 0
