"""In-context recall of a trained model: MQAR-style key/value probes (Zoology's layout), scored after training.

A loss-only proxy cannot see what attention layers buy (arXiv 2507.06457: loss is nearly flat across linear:full
attention ratios while recall collapses), so a study can score each candidate on `recall` as well.

A probe sequence is n key/value pairs, `k1 v1 ... kn vn`, then each key again (shuffled) at every other position,
a filler id between them; at a repeated key the model must predict that key's value. By default keys come from ids
1 .. V/2 - 1 and values from V/2 .. V - 1 of the task's vocabulary V, filler 0: a model trained on the mqar task
sees exactly its task. A task whose data would never show those ids gives its own (Task.probe_vocabulary: a text
corpus's frequent ids), so a text-trained model sees an induction-style copy probe of tokens it knows. `recall` is
the share of queries whose value is the model's top prediction (chance: about 1 / the number of values). The
probes are fixed by `seed`, so every candidate of a study answers the same ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from archsearch.errors import UserError

from .tasks.base import IGNORE, ProbeVocabulary, generator


@dataclass(frozen=True)
class RecallProbe:
    vocab: int  # the task's vocabulary: keys and values are drawn from it
    seq_len: int  # the longest sequence the model takes: the probe fits in it (and is only as long as it needs)
    n_pairs: int = 8
    batches: int = 4
    batch_size: int = 16
    seed: int = 1234
    ids: ProbeVocabulary | None = None  # the ids to draw from; None: the default layout over `vocab`

    def __post_init__(self) -> None:
        if self.ids is not None:
            self._check_ids(self.ids)
        elif self.vocab < 6:
            raise UserError(f"recall probe: vocab {self.vocab} is too small; allowed: >= 6 (keys and values)")
        if self.n_pairs > len(self.key_pool()):
            raise UserError(f"recall probe: n_pairs {self.n_pairs} needs distinct keys; allowed: <= "
                            f"{len(self.key_pool())} for {self._keys_described()}")
        if 4 * self.n_pairs + self._start() > self.seq_len:
            raise UserError(f"recall probe: seq_len {self.seq_len} is too short for {self.n_pairs} pairs and "
                            f"queries; allowed: n_pairs <= {(self.seq_len - self._start()) // 4}")

    def _check_ids(self, ids: ProbeVocabulary) -> None:
        used = (*ids.keys, *ids.values, ids.filler, *([] if ids.separator is None else [ids.separator]))
        if not ids.keys or not ids.values:
            raise UserError("recall probe: the probe vocabulary needs at least one key and one value")
        if len(set(used)) != len(used):
            raise UserError("recall probe: keys, values, filler and separator must be distinct ids")
        if min(used) < 0 or max(used) >= self.vocab:
            raise UserError(f"recall probe: ids must lie in 0 .. {self.vocab - 1} (the vocabulary)")

    @property
    def length(self) -> int:
        """The probe's sequence length: up to its last query. What follows a query cannot change a causal model's
        prediction there, so a probe as long as the task's sequences (2048) cost ~60x the compute for the same
        score."""
        return min(self.seq_len, self._start() + 4 * self.n_pairs)

    def _start(self) -> int:
        return _start(self.ids)

    def key_pool(self) -> torch.Tensor:
        if self.ids is not None:
            return torch.tensor(self.ids.keys, dtype=torch.long)
        return torch.arange(1, self.vocab // 2)

    def value_pool(self) -> torch.Tensor:
        if self.ids is not None:
            return torch.tensor(self.ids.values, dtype=torch.long)
        return torch.arange(self.vocab // 2, self.vocab)

    def _keys_described(self) -> str:
        return f"{len(self.ids.keys)} key ids" if self.ids is not None else f"vocab {self.vocab}"

    @classmethod
    def fitting(cls, vocab: int, seq_len: int, ids: ProbeVocabulary | None = None, **options) -> "RecallProbe":
        """A probe with as many pairs as the keys and sequence allow, up to `n_pairs` (default 8)."""
        keys = len(ids.keys) if ids is not None else vocab // 2 - 1
        n_pairs = max(1, min(options.pop("n_pairs", 8), keys, (seq_len - _start(ids)) // 4))
        return cls(vocab, seq_len, n_pairs, ids=ids, **options)

    def batch(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Probe batch `index`: (input ids, targets with IGNORE except at the queries)."""
        filler = self.ids.filler if self.ids is not None else 0
        separator = self.ids.separator if self.ids is not None else None
        segments = _segments(self.key_pool(), self.value_pool(), self.batch_size, self.n_pairs, filler, separator,
                             generator(self.seed, "recall", index))
        return _rows(*segments, self.batch_size, self.length, filler)


def _start(ids: ProbeVocabulary | None) -> int:
    """Where a probe's pairs begin: after the separator, where there is one."""
    return 1 if ids is not None and ids.separator is not None else 0


DRILL_PAIRS = 8  # pairs per drill segment: the evaluation probe's default


def drill_rows(ids: ProbeVocabulary, rows: int, seq_len: int,
               gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Recall drills for training (a text task's `recall_share`): the evaluation probe's segments (the filler
    standing in for a missing separator), packed as many to a row as fit, fresh pairs in every segment.
    (ids (rows, seq_len), targets likewise)."""
    separator = ids.separator if ids.separator is not None else ids.filler
    n = max(1, min(DRILL_PAIRS, len(ids.keys), (seq_len - 1) // 4))
    per_row = max(1, seq_len // (1 + 4 * n))
    segments = _segments(torch.tensor(ids.keys), torch.tensor(ids.values), rows * per_row, n, ids.filler, separator,
                         gen)
    return _rows(*segments, rows, seq_len, ids.filler)


def _segments(keys: torch.Tensor, values: torch.Tensor, count: int, n: int, filler: int, separator: int | None,
              gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` probe segments: the separator (if any), n key/value pairs (keys distinct), then the keys again in
    a shuffled order with the filler between; targets (IGNORE but at the queries) alike. (count, width) each."""
    s = 0 if separator is None else 1
    keys_SN = keys[torch.argsort(torch.rand(count, len(keys), generator=gen), dim=1)[:, :n]]
    values_SN = values[torch.randint(0, len(values), (count, n), generator=gen)]
    ids_SW = torch.full((count, s + 4 * n), filler, dtype=torch.long)
    if s:
        ids_SW[:, 0] = separator
    ids_SW[:, s:s + 2 * n:2], ids_SW[:, s + 1:s + 2 * n:2] = keys_SN, values_SN
    order_SN = torch.argsort(torch.rand(count, n, generator=gen), dim=1)
    query_pos = s + 2 * n + 2 * torch.arange(n)
    ids_SW[:, query_pos] = torch.gather(keys_SN, 1, order_SN)
    targets_SW = torch.full_like(ids_SW, IGNORE)
    targets_SW[:, query_pos] = torch.gather(values_SN, 1, order_SN)
    return ids_SW, targets_SW


def _rows(ids_SW: torch.Tensor, targets_SW: torch.Tensor, rows: int, seq_len: int,
          filler: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The segments laid end to end, `rows` rows of `seq_len`: the filler (and IGNORE) after the last one."""
    ids_RT = torch.full((rows, seq_len), filler, dtype=torch.long)
    targets_RT = torch.full((rows, seq_len), IGNORE, dtype=torch.long)
    used = min(seq_len, ids_SW.numel() // rows)
    ids_RT[:, :used] = ids_SW.reshape(rows, -1)[:, :used]
    targets_RT[:, :used] = targets_SW.reshape(rows, -1)[:, :used]
    return ids_RT, targets_RT


@torch.no_grad()
def recall_score(model: nn.Module, probe: RecallProbe, device: torch.device | str = "cpu") -> float:
    """The share of probe queries whose value is `model`'s top prediction (model: ids (B, T) -> logits (B, T, V))."""
    was_training = model.training
    model.eval()
    correct = total = 0
    try:
        for index in range(probe.batches):
            ids_BT, targets_BT = probe.batch(index)
            logits_BTV = model(ids_BT.to(device))
            scored = targets_BT != IGNORE
            predicted = logits_BTV.argmax(-1).cpu()
            correct += int((predicted[scored] == targets_BT[scored]).sum())
            total += int(scored.sum())
    finally:
        model.train(was_training)
    return correct / total


def recall_of_run(out_dir: Path, probe: RecallProbe, device: str | None = None) -> float:
    """`recall_score` of the model saved in run folder `out_dir` (its spec.yaml and model.safetensors)."""
    from archsearch.builder import build

    from .checkpoint import load_weights, read_definition
    from .prepare import training_device

    spec, _, _ = read_definition(Path(out_dir))
    torch_device = training_device(device)
    model = build(spec, torch_device, torch.float32)
    load_weights(Path(out_dir), model, torch_device)
    return recall_score(model, probe, torch_device)
