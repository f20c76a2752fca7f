"""In-context recall of a trained model: MQAR-style key/value probes (Zoology's layout), scored after training.

A loss-only proxy cannot see what attention layers buy (arXiv 2507.06457: loss is nearly flat across linear:full
attention ratios while recall collapses), so a study can score each candidate on `recall` as well.

A probe sequence is n key/value pairs, `k1 v1 ... kn vn`, then each key again (shuffled) at every other position,
0 between them; at a repeated key the model must predict that key's value. Keys come from ids 1 .. V/2 - 1 and
values from V/2 .. V - 1 of the task's vocabulary V, so a model trained on the mqar task sees exactly its task, and
a text-trained model sees an induction-style copy probe of random tokens. `recall` is the share of queries whose
value is the model's top prediction (chance: about 2 / V). The probes are fixed by `seed`, so every candidate of a
study answers the same ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from archsearch.errors import UserError

from .tasks.base import IGNORE, generator


@dataclass(frozen=True)
class RecallProbe:
    vocab: int  # the task's vocabulary: keys and values are drawn from it
    seq_len: int
    n_pairs: int = 8
    batches: int = 4
    batch_size: int = 16
    seed: int = 1234

    def __post_init__(self) -> None:
        if self.vocab < 6:
            raise UserError(f"recall probe: vocab {self.vocab} is too small; allowed: >= 6 (keys and values)")
        if self.n_pairs > self.vocab // 2 - 1:
            raise UserError(f"recall probe: n_pairs {self.n_pairs} needs distinct keys; allowed: <= "
                            f"{self.vocab // 2 - 1} for vocab {self.vocab}")
        if 4 * self.n_pairs > self.seq_len:
            raise UserError(f"recall probe: seq_len {self.seq_len} is too short for {self.n_pairs} pairs and "
                            f"queries; allowed: n_pairs <= seq_len / 4 = {self.seq_len // 4}")

    @classmethod
    def fitting(cls, vocab: int, seq_len: int, **options) -> "RecallProbe":
        """A probe with as many pairs as the vocabulary and sequence allow, up to `n_pairs` (default 8)."""
        n_pairs = max(1, min(options.pop("n_pairs", 8), vocab // 2 - 1, seq_len // 4))
        return cls(vocab, seq_len, n_pairs, **options)

    def batch(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Probe batch `index`: (input ids, targets with IGNORE except at the queries)."""
        gen = generator(self.seed, "recall", index)
        n, half, b = self.n_pairs, self.vocab // 2, self.batch_size
        keys_BN = torch.argsort(torch.rand(b, half - 1, generator=gen), dim=1)[:, :n] + 1
        values_BN = torch.randint(half, self.vocab, (b, n), generator=gen)
        ids_BT = torch.zeros(b, self.seq_len, dtype=torch.long)
        ids_BT[:, 0:2 * n:2], ids_BT[:, 1:2 * n:2] = keys_BN, values_BN
        order_BN = torch.argsort(torch.rand(b, n, generator=gen), dim=1)
        query_pos = 2 * n + 2 * torch.arange(n)
        ids_BT[:, query_pos] = torch.gather(keys_BN, 1, order_BN)
        targets_BT = torch.full_like(ids_BT, IGNORE)
        targets_BT[:, query_pos] = torch.gather(values_BN, 1, order_BN)
        return ids_BT, targets_BT


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
