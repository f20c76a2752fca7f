"""The tiny hybrid parent the compression tests prune: Mamba-2 (2 groups), GQA attention, MLP; trained a few MQAR
steps so that its run folder is a real parent."""

from pathlib import Path

from archsearch.spec import parse_spec
from archsearch.training import Recipe, TaskSpec, train

PARENT = {"name": "parent", "vocab_size": 32, "d_model": 32, "max_context": 64, "pattern": "M-*-M-",
          "tie_embeddings": False,
          "blocks": {"M": {"kind": "mamba2", "n_heads": 4, "head_dim": 8, "d_state": 8, "n_groups": 2,
                           "chunk_size": 16},
                     "*": {"kind": "attention", "n_heads": 4, "n_kv_heads": 2, "head_dim": 8},
                     "-": {"kind": "mlp", "ffn_ratio": 2}}}
TASK = {"name": "mqar", "options": {"vocab": 32, "n_pairs": 2}}


def train_parent(out: Path, *, eval_batches: int = 1) -> Path:
    """PARENT trained 3 steps into run folder `out`."""
    train(parse_spec(PARENT), TaskSpec.model_validate(TASK), Recipe(steps=3, batch_size=4, seq_len=16, warmup=0,
                                                                    eval_batches=eval_batches),
          out_dir=out, progress=False, device="cpu")
    return out
