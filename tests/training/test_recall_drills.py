"""A text task's `recall_share`: a share of training rows become in-context recall drills over the corpus's
frequent ids (targets only at the queries, each the value its key was paired with in the same segment); the other
rows and the validation set stay the text they were."""

import json

import pytest
import torch

from archsearch.training.recall import drill_rows
from archsearch.training.tasks import TaskSpec, make_task
from archsearch.training.tasks.base import IGNORE, ProbeVocabulary, generator


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "train.jsonl"
    words = "def load(path):\n    return open(path).read()  # the quick brown fox jumps over the lazy dog\n" * 40
    path.write_text("".join(json.dumps({"text": words[i:] + words[:i]}) + "\n" for i in range(0, 600, 5)))
    return str(path)


def _task(corpus, share):
    return make_task(TaskSpec(name="text", options={"data_files": corpus, "recall_share": share}), 128, 0)


def test_drills_replace_about_the_share_of_rows_and_nothing_else(corpus):
    plain, drilled = _task(corpus, 0.0), _task(corpus, 0.25)
    replaced = total = 0
    for index in range(40):
        a, b = plain.train_batch(index, 8), drilled.train_batch(index, 8)
        same = (a.input_ids_BT == b.input_ids_BT).all(1) & (a.targets_BT == b.targets_BT).all(1)
        replaced += int((~same).sum())
        total += 8
        for row in (~same).nonzero().flatten():
            assert b.input_ids_BT[row, 0] == 256  # a drill row starts at a segment's separator (eos)
    assert 0.15 < replaced / total < 0.35
    again = _task(corpus, 0.25)  # another process, say: the same drills at the same index
    assert torch.equal(drilled.train_batch(3, 8).input_ids_BT, again.train_batch(3, 8).input_ids_BT)
    assert torch.equal(plain.val_batch(0, 8).input_ids_BT, drilled.val_batch(0, 8).input_ids_BT)  # text only


def test_each_query_asks_for_the_value_paired_with_its_key_in_its_own_segment():
    ids = ProbeVocabulary(keys=tuple(range(10, 20)), values=tuple(range(20, 40)), filler=5, separator=1)
    ids_RT, targets_RT = drill_rows(ids, rows=3, seq_len=100, gen=generator(0, "t"))
    n, width = 8, 33  # separator + 8 pairs + 8 queries with the filler between
    for r in range(3):
        for s in range(100 // width):
            seg, tgt = ids_RT[r, s * width:(s + 1) * width], targets_RT[r, s * width:(s + 1) * width]
            assert seg[0] == 1
            keys, values = seg[1:1 + 2 * n:2].tolist(), seg[2:2 + 2 * n:2].tolist()
            assert len(set(keys)) == n and set(keys) <= set(ids.keys) and set(values) <= set(ids.values)
            pairs = dict(zip(keys, values))
            queries = seg[1 + 2 * n::2]
            assert sorted(queries.tolist()) == sorted(keys)
            assert [int(t) for t in tgt[1 + 2 * n::2]] == [pairs[int(q)] for q in queries]
            scored = (tgt != IGNORE).nonzero().flatten().tolist()
            assert scored == list(range(1 + 2 * n, width, 2))  # targets only at the queries
        assert (ids_RT[r, 99:] == 5).all() and (targets_RT[r, 99:] == IGNORE).all()  # the unused tail


def test_a_share_outside_zero_to_one_is_refused(corpus):
    from archsearch.errors import UserError

    with pytest.raises(UserError, match="recall_share"):
        _task(corpus, 1.0)


def test_a_corpus_too_poor_for_drills_fails_when_the_task_is_made(tmp_path):
    from archsearch.errors import UserError

    path = tmp_path / "poor.jsonl"
    path.write_text("".join(json.dumps({"text": "ab" * 200}) + "\n" for _ in range(20)))
    with pytest.raises(UserError, match="shows 2 distinct ids; a recall probe needs >= 3"):
        make_task(TaskSpec(name="text", options={"data_files": str(path), "recall_share": 0.1}), 32, 0)
