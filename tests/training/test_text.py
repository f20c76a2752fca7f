"""Language modelling through `datasets`: local files, packing, validation, tokenizers, metrics, clear errors."""

import json
import math

import pytest
import torch

from archsearch.errors import UserError
from archsearch.training import Recipe, TaskSpec, train
from archsearch.training.tasks import make_task


def text_task(seq_len=64, **options):
    return make_task(TaskSpec(name="text", options=options), seq_len, 0)


def test_local_python_sources_are_packed_into_shifted_sequences(stdlib_corpus):
    task = text_task(data_files=str(stdlib_corpus))
    raw = sum(len(p.read_bytes()) for p in stdlib_corpus.iterdir())
    n_docs = len(list(stdlib_corpus.iterdir()))
    assert len(task.train_ids) + len(task.val_ids) == raw + n_docs  # every byte, one end id per file
    assert task.vocab_size == 257 and int(task.train_ids.max()) == 256
    batch = task.train_batch(0, 8)
    assert batch.input_ids_BT.shape == (8, 64)
    assert torch.equal(batch.input_ids_BT[:, 1:], batch.targets_BT[:, :-1])
    assert task.bytes_per_token == pytest.approx(raw / (raw + n_docs))
    # each training sequence is a slice of the training stream
    start = int(task._permutation(0)[0]) * 64
    assert torch.equal(batch.input_ids_BT[0], task.train_ids[start:start + 64].long())


def test_epochs_visit_every_chunk_once_in_a_new_order(tmp_path):
    (tmp_path / "numbers.txt").write_text("".join(f"line {i:07d}\n" for i in range(2000)))  # every chunk unique
    task = text_task(seq_len=128, data_files=str(tmp_path / "numbers.txt"))

    def rows(first, last):
        return [bytes(task.train_batch(i, 1).input_ids_BT[0].to(torch.uint8).tolist()) for i in range(first, last)]

    epoch1, epoch2 = rows(0, task.n_train), rows(task.n_train, 2 * task.n_train)
    assert len(set(epoch1)) == task.n_train > 100
    assert set(epoch2) == set(epoch1) and epoch2 != epoch1


def test_loss_falls_on_python_sources(text_spec, stdlib_corpus, tmp_path):
    recipe = Recipe(steps=60, batch_size=16, seq_len=64, lr=3e-3, warmup=5, eval_every=20, eval_batches=4)
    result = train(text_spec, TaskSpec(name="text", options={"data_files": str(stdlib_corpus)}), recipe,
                   out_dir=tmp_path / "run", progress=False, device="cpu")
    evals = [p for p in result.curve if "val_loss" in p]
    assert result.status == "completed"
    assert evals[-1]["val_loss"] < evals[0]["val_loss"] < math.log(257)
    assert result.metrics["val_loss"] < 3.2  # uniform over bytes is 5.55
    assert result.metrics["val_ppl"] == pytest.approx(math.exp(result.metrics["val_loss"]))
    task = result.task
    assert result.metrics["bits_per_byte"] == pytest.approx(
        result.metrics["val_loss"] / math.log(2) / task["bytes_per_token"])


def test_json_files_named_column_and_named_validation_split(tmp_path):
    rows = [{"id": i, "body": f"def f{i}(x):\n    return x * {i}\n" * 20} for i in range(40)]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows[:30]))
    (tmp_path / "val.jsonl").write_text("\n".join(json.dumps(r) for r in rows[30:]))
    files = {"train": str(tmp_path / "train.jsonl"), "validation": str(tmp_path / "val.jsonl")}
    task = text_task(data_files=files, text_column="body", val_split="validation")
    val_text = "".join(r["body"] for r in rows[30:])
    assert len(task.val_ids) == len(val_text.encode()) + 10
    with pytest.raises(UserError, match="text_column 'text' is not in the dataset; its columns: id, body"):
        text_task(data_files=files)


def test_a_hugging_face_tokenizer_by_folder(tmp_path, stdlib_corpus):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel()
    texts = [p.read_text() for p in sorted(stdlib_corpus.iterdir())[:5]]
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "</s>"]))
    PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="</s>", unk_token="<unk>").save_pretrained(tmp_path / "tok")
    task = text_task(data_files=str(stdlib_corpus), tokenizer=str(tmp_path / "tok"), max_bytes=200_000)
    assert task.vocab_size == 300
    assert task.bytes_per_token > 1.5  # BPE merges bytes
    assert int(task.train_ids.max()) < 300


@pytest.mark.parametrize("options, message", [
    ({"data_files": "/nonexistent/*.txt"}, "data_files entry '/nonexistent/\\*.txt' matches no file"),
    ({}, "give the option dataset"),
    ({"data_files": {"train": "x"}, "val_split": "test"}, "matches no file"),
    ({"tokenizer": "/nonexistent/tokenizer"}, "cannot load Hugging Face tokenizer"),
])
def test_missing_data_is_a_clear_error(options, message):
    with pytest.raises(UserError, match=message):
        text_task(**options)


def test_a_file_that_is_not_utf8_is_a_clear_error(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    with pytest.raises(UserError, match="cannot load dataset 'text' split 'train': UnicodeDecodeError"):
        text_task(data_files=str(tmp_path))


def test_an_unreachable_hub_dataset_is_a_clear_error(monkeypatch):
    import datasets
    import huggingface_hub

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)  # fail at once instead of retrying a network
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError, match="cannot load dataset 'no-such-owner/no-such-dataset'"):
        text_task(dataset="no-such-owner/no-such-dataset")


def test_the_spec_vocabulary_must_hold_the_tokenizer(spec, stdlib_corpus):
    with pytest.raises(UserError, match="task 'text' needs 257 token ids but the spec's vocab_size is 64"):
        train(spec, TaskSpec(name="text", options={"data_files": str(stdlib_corpus)}), Recipe(steps=1, seq_len=32),
              progress=False, device="cpu")


def test_eos_false_trains_bytes_on_a_256_token_spec(tmp_path, capsys):
    """The tiny examples have 256 ids: `-t eos=false` joins documents without the end id (bytes need 256 ids),
    and without it the error names that option."""
    from archsearch.cli import main

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"the {i % 7} quick brown fox jumps over the lazy dog {i}\n" for i in range(3000)))
    assert main(["train", "nemotron-h-tiny", "--task", "text", "-t", f"data_files={corpus}", "--steps", "1",
                 "--seq-len", "32", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "needs 257 token ids but the spec's vocab_size is 256" in err and "-t eos=false" in err
    assert main(["train", "nemotron-h-tiny", "--task", "text", "-t", f"data_files={corpus}", "-t", "eos=false",
                 "--steps", "30", "--seq-len", "64", "--batch-size", "8", "--lr", "3e-3", "--eval-every", "15",
                 "--device", "cpu", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    evals = [p["val_loss"] for p in result["curve"] if "val_loss" in p]
    assert result["task"]["vocab_size"] == 256 and result["task"]["bytes_per_token"] == 1.0
    assert evals[-1] < evals[0] and evals[-1] < math.log(256) - 1  # it learned the bytes


def test_eos_false_adds_no_end_ids(tmp_path):
    (tmp_path / "a.txt").write_text("x" * 5000)
    (tmp_path / "b.txt").write_text("y" * 5000)
    task = text_task(data_files=str(tmp_path), eos=False)
    ids = torch.cat([task.train_ids, task.val_ids])
    assert len(ids) == 10_000 and int(ids.max()) < 256 and task.vocab_size == 256
