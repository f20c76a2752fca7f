"""The recall objective: MQAR-style probes scored on planted models (exact answers known), and on trained toy
models, where attention recalls what an MLP-only stack cannot."""

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from archsearch.errors import UserError
from archsearch.spec import parse_spec
from archsearch.training.recall import RecallProbe, recall_score
from archsearch.training.tasks.base import IGNORE

sys.path.insert(0, str(Path(__file__).parents[1] / "studies"))
from studies_helpers import BASE_SPEC  # noqa: E402


class Lookup(nn.Module):
    """Planted recall: at each position, the token that followed the latest earlier occurrence of this token
    among the first `remember` context pairs (else token 0)."""

    def __init__(self, vocab: int, n_pairs: int, remember: int):
        super().__init__()
        self.vocab, self.n_pairs, self.remember = vocab, n_pairs, remember

    def forward(self, ids_BT):
        b, t = ids_BT.shape
        logits = torch.zeros(b, t, self.vocab)
        for i in range(b):
            table = {int(ids_BT[i, 2 * p]): int(ids_BT[i, 2 * p + 1]) for p in range(self.remember)}
            for j in range(2 * self.n_pairs, t):
                logits[i, j, table.get(int(ids_BT[i, j]), 0)] = 1.0
        return logits


def test_probe_layout_and_planted_scores():
    probe = RecallProbe(vocab=32, seq_len=40, n_pairs=6, batches=3, batch_size=5)
    ids, targets = probe.batch(0)
    assert torch.equal(ids, probe.batch(0)[0]) and not torch.equal(ids, probe.batch(1)[0])  # fixed by the seed
    scored = targets != IGNORE
    assert int(scored.sum()) == 5 * 6  # each key queried once
    keys, values = ids[:, 0:12:2], ids[:, 1:12:2]
    assert bool(((keys >= 1) & (keys < 16)).all()) and bool(((values >= 16) & (values < 32)).all())
    assert all(len(set(row.tolist())) == 6 for row in keys)  # distinct keys: every query has one answer
    assert recall_score(Lookup(32, 6, remember=6), probe) == 1.0
    assert recall_score(Lookup(32, 6, remember=3), probe) == 0.5  # half the pairs remembered: half the queries
    assert recall_score(Lookup(32, 6, remember=0), probe) == 0.0


def test_probe_sizes_are_checked_with_clear_errors():
    with pytest.raises(UserError, match="n_pairs 20 needs distinct keys"):
        RecallProbe(vocab=16, seq_len=200, n_pairs=20)
    with pytest.raises(UserError, match="seq_len 8 is too short"):
        RecallProbe(vocab=64, seq_len=8, n_pairs=4)
    fitted = RecallProbe.fitting(16, 16)
    assert fitted.n_pairs == 4  # min(8, 16/2 - 1, 16/4)


def test_attention_recalls_more_than_an_mlp_stack_after_the_same_training():
    from archsearch.studies.evaluate import TrainEvaluator

    task = {"name": "mqar", "options": {"vocab": 16, "n_pairs": 2}}
    recipe = {"steps": 80, "batch_size": 16, "seq_len": 16, "eval_every": 80, "warmup": 10, "lr": 3e-3}
    evaluator = TrainEvaluator(task, recipe, seed=0, device="cpu", recall=True)
    recall = {}
    for pattern in ("*-", "--"):
        result = evaluator(parse_spec({**BASE_SPEC, "name": "r", "pattern": pattern}), lambda step, metrics: None)
        recall[pattern] = result["metrics"]["recall"]
    # values are 8 of 16 ids: an MLP stack (no token mixing) can only guess, about 1/8
    assert recall["--"] < 0.25
    assert recall["*-"] > recall["--"] + 0.15, recall


def test_a_text_task_probes_with_ids_its_corpus_shows(tmp_path):
    """Bytes of English or Python text: the default layout's values (ids 128-256) never occur in the corpus, so no
    model could recall them; a text task draws keys and values from its frequent ids instead."""
    import json

    from archsearch.studies.evaluate import TrainEvaluator
    from archsearch.training.tasks import TaskSpec, make_task

    corpus = tmp_path / "train.jsonl"
    words = "the quick brown fox jumps over the lazy dog while a cat naps and birds sing loudly " * 20
    corpus.write_text("".join(json.dumps({"text": words[i:] + words[:i]}) + "\n" for i in range(0, 400, 7)))
    task = {"name": "text", "options": {"data_files": str(corpus), "tokenizer": "bytes", "eos": True}}
    made = make_task(TaskSpec.model_validate(task), 64, 0)
    ids = made.probe_vocabulary()
    counts = torch.bincount(made.train_ids.long(), minlength=made.vocab_size)
    assert ids.filler == ord(" ")  # the most frequent byte
    assert 256 not in (*ids.keys, *ids.values, ids.filler)  # the end-of-document id only as the separator
    assert all(counts[i] > 0 and i < 128 for i in (*ids.keys, *ids.values))  # ids the corpus shows
    assert not set(ids.keys) & set(ids.values)
    assert min(counts[list(ids.keys)]) >= max(counts[[i for i in range(256) if i not in (*ids.keys, *ids.values,
                                                                                         ids.filler)]])
    probe = TrainEvaluator(task, {"seq_len": 64}, seed=0, device="cpu", recall=True).probe()
    assert probe.ids == ids and probe.n_pairs == 8
    ids_BT, targets_BT = probe.batch(0)
    scored = targets_BT != IGNORE
    assert set(targets_BT[scored].tolist()) <= set(ids.values)
    assert ids.separator == 256 and bool((ids_BT[:, 0] == 256).all())  # a probe starts at a document boundary
    assert set(ids_BT[:, 1:17:2].flatten().tolist()) <= set(ids.keys)
    assert scored[:, 17:33:2].all() and int(scored.sum()) == 8 * probe.batch_size  # the queries, after the pairs
    assert bool((ids_BT[:, 18:33:2] == ids.filler).all())  # between the queries
    assert ids_BT.shape == (probe.batch_size, 33)  # no longer than its last query: the rest could change nothing


def test_a_probe_vocabulary_is_checked():
    from archsearch.training.tasks.base import ProbeVocabulary

    with pytest.raises(UserError, match="distinct ids"):
        RecallProbe(vocab=32, seq_len=40, n_pairs=1, ids=ProbeVocabulary((3, 4), (4, 5), 6))
    with pytest.raises(UserError, match=r"ids must lie in 0 \.\. 31"):
        RecallProbe(vocab=32, seq_len=40, n_pairs=1, ids=ProbeVocabulary((3,), (40,), 6))
    with pytest.raises(UserError, match="n_pairs 3 needs distinct keys; allowed: <= 2 for 2 key ids"):
        RecallProbe(vocab=32, seq_len=40, n_pairs=3, ids=ProbeVocabulary((3, 4), (5,), 6))
    assert RecallProbe.fitting(32, 40, ids=ProbeVocabulary((3, 4), (5,), 6)).n_pairs == 2


def test_a_probe_as_long_as_its_last_query_scores_as_a_full_length_one():
    """Causal models: what follows the last query changes no prediction at a query, so the short probe (33 ids,
    not the task's sequence length) reads the same logits there, Mamba-2's chunked scan included."""
    from archsearch.builder import build
    from archsearch.training.tasks.base import ProbeVocabulary

    spec = parse_spec({**BASE_SPEC, "name": "causal", "vocab_size": 64, "max_context": 96, "pattern": "M*-"})
    model = build(spec, "cpu", torch.float32, seed=0).eval()
    ids = ProbeVocabulary(keys=tuple(range(10, 26)), values=tuple(range(30, 46)), filler=5, separator=1)
    probe = RecallProbe.fitting(64, 96, ids=ids, batch_size=4)
    short_BT, targets_BT = probe.batch(0)
    assert short_BT.shape == (4, 33)
    long_BT = torch.cat([short_BT, torch.randint(0, 64, (4, 96 - 33), generator=torch.Generator().manual_seed(0))],
                        dim=1)
    queries = targets_BT != IGNORE
    with torch.no_grad():
        short, full = model(short_BT), model(long_BT)[:, :33]
    torch.testing.assert_close(short[queries], full[queries], rtol=1e-4, atol=1e-5)


def test_the_default_probe_is_pinned():
    """Stored studies compare recall across runs and machines: the default layout's draw must not change silently
    (a change of layout or random stream needs a new `task.recall_probe` version in the study identity)."""
    probe = RecallProbe(vocab=16, seq_len=64, n_pairs=3, batches=1, batch_size=2, seed=7)
    ids, targets = probe.batch(0)
    assert ids.tolist() == [[1, 9, 2, 8, 3, 9, 3, 0, 2, 0, 1, 0], [6, 11, 7, 11, 2, 9, 6, 0, 2, 0, 7, 0]]
    no = IGNORE
    assert targets.tolist() == [[no] * 6 + [9, no, 8, no, 9, no], [no] * 6 + [11, no, 9, no, 11, no]]
