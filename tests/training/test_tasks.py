"""Synthetic tasks: every scored target follows from the inputs by the task's rule; batches are reproducible."""

import pytest
import torch

from archsearch.errors import UserError
from archsearch.training import TaskSpec
from archsearch.training.tasks import IGNORE, TASKS, make_task

SYNTHETIC = [name for name in TASKS if name not in ("text", "seq2seq")]  # data-backed: their own tests


def task(name, seq_len=64, seed=0, **options):
    return make_task(TaskSpec(name=name, options=options), seq_len, seed)


@pytest.mark.parametrize("name", SYNTHETIC)
def test_batches_are_reproducible_and_in_vocab(name):
    t = task(name)
    a, b = t.train_batch(3, 8), t.train_batch(3, 8)
    assert torch.equal(a.input_ids_BT, b.input_ids_BT) and torch.equal(a.targets_BT, b.targets_BT)
    assert a.input_ids_BT.shape == a.targets_BT.shape == (8, 64)
    assert not torch.equal(a.input_ids_BT, t.train_batch(4, 8).input_ids_BT)
    assert not torch.equal(t.val_batch(0, 8).input_ids_BT, t.train_batch(0, 8).input_ids_BT)
    assert not torch.equal(task(name, seed=1).train_batch(3, 8).input_ids_BT, a.input_ids_BT)
    assert 0 <= int(a.input_ids_BT.min()) and int(a.input_ids_BT.max()) < t.vocab_size
    scored = a.targets_BT[a.targets_BT != IGNORE]
    assert scored.numel() > 0 and int(scored.max()) < t.vocab_size


def test_mqar_queries_ask_for_the_value_paired_with_the_key():
    t = task("mqar", seq_len=64, vocab=64, n_pairs=6)
    batch = t.train_batch(0, 16)
    for ids, targets in zip(batch.input_ids_BT.tolist(), batch.targets_BT.tolist()):
        context = dict(zip(ids[0:12:2], ids[1:12:2]))
        assert len(context) == 6  # distinct keys
        queries = [(ids[j], y) for j, y in enumerate(targets) if y != IGNORE]
        assert len(queries) == 6 and all(context[k] == v for k, v in queries)
        assert all(1 <= k < 32 <= v < 64 for k, v in context.items())


@pytest.mark.parametrize("name, options", [("in_context_recall", {}), ("noisy_recall", {"frac_noise": 0.5})])
def test_recall_targets_repeat_the_earlier_value_of_the_key(name, options):
    t = task(name, seq_len=64, **options)
    batch = t.train_batch(0, 16)
    noise_low = 32  # default vocab: keys 0..15, values 16..31, noise from 32
    n_noise = 0
    for ids, targets in zip(batch.input_ids_BT.tolist(), batch.targets_BT.tolist()):
        seen = {}
        for j in range(0, 64, 2):
            key, value = ids[j], ids[j + 1]
            if key >= noise_low:
                n_noise += 1
                assert targets[j] == IGNORE
                continue
            if key in seen:
                assert targets[j] == value == seen[key]
            else:
                assert targets[j] == IGNORE
                seen[key] = value
    assert (n_noise > 0) == (name == "noisy_recall")


def test_fuzzy_recall_scores_value_tokens_of_a_repeated_key():
    t = task("fuzzy_recall", seq_len=96)
    batch = t.train_batch(0, 8)
    for ids, targets in zip(batch.input_ids_BT.tolist(), batch.targets_BT.tolist()):
        scored = [j for j, y in enumerate(targets) if y != IGNORE]
        assert scored, "a sequence of 96 tokens repeats some of its 8 keys"
        assert all(targets[j] == ids[j + 1] and ids[j + 1] >= 8 for j in scored)  # value tokens are 8..15


def test_selective_copy_targets_are_the_scattered_tokens_in_order():
    t = task("selective_copy", seq_len=64, vocab=10, n_copy=6)
    batch = t.train_batch(0, 8)
    for ids, targets in zip(batch.input_ids_BT.tolist(), batch.targets_BT.tolist()):
        copy_at = ids.index(11)
        content = [x for x in ids[:copy_at] if x != 10]
        assert [y for y in targets if y != IGNORE] == content and len(content) == 6
        assert all(x == 10 for x in ids[copy_at + 1:])  # the answer is never in the input


def test_compression_answers_each_position_query():
    t = task("compression", seq_len=41, vocab=8)
    batch = t.train_batch(0, 8)
    for ids, targets in zip(batch.input_ids_BT.tolist(), batch.targets_BT.tolist()):
        assert ids[20] == 9  # 20 tokens, the compression token, 20 queries
        for j in range(21, 41):
            assert targets[j] == ids[ids[j] - 10]


def test_memorization_table_is_fixed_by_map_seed_not_the_training_seed():
    a, b = task("memorization", seed=0, n_keys=16), task("memorization", seed=5, n_keys=16)
    assert torch.equal(a.table, b.table)
    assert not torch.equal(a.table, task("memorization", n_keys=16, map_seed=1).table)
    batch = a.train_batch(0, 8)
    keys = batch.input_ids_BT[:, 0::2]
    assert torch.equal(batch.targets_BT[:, 1::2], a.table[keys])


@pytest.mark.parametrize("name, options, message", [
    ("mqar", {"n_pairs": 40}, "seq_len 64 is too short"),
    ("mqar", {"vocab": 8, "n_pairs": 4}, "at most vocab/2 - 1 = 3"),
    ("mqar", {"n_pair": 4}, "unknown option 'n_pair'; allowed options: seq_len, vocab, n_pairs, power_a"),
    ("mqar", {"n_pairs": "many"}, "option n_pairs"),
    ("selective_copy", {"n_copy": 40}, "too short to scatter"),
    ("fuzzy_recall", {"vocab": 4, "k_motif": 1, "n_keys": 5}, "distinct key motifs"),
    ("compression", {"n_tokens": 40}, "cannot hold 40 tokens"),
])
def test_bad_options_are_clear_errors(name, options, message):
    with pytest.raises(UserError, match=message):
        task(name, **options)


def test_unknown_task_lists_the_tasks():
    with pytest.raises(UserError, match="unknown task 'mqr'; tasks: mqar, selective_copy"):
        TaskSpec(name="mqr")


def test_task_option_seq_len_overrides_the_recipe():
    assert make_task(TaskSpec(name="mqar", options={"seq_len": 32}), 64, 0).seq_len == 32
