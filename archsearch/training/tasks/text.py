"""Language modelling on a `datasets` source: a hub name, or local text/json/jsonl/parquet/csv files (a file, a
folder, or a glob). Documents are tokenised (bytes by default), joined with an end-of-document id, packed into
fixed-length sequences; validation is a named split or the tail of the token stream.

Bits per byte use the validation text's UTF-8 bytes per token, so they compare across tokenizers."""

from __future__ import annotations

import glob
import math
import os
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
from pydantic import Field

from archsearch.errors import UserError

from .base import Batch, ProbeVocabulary, Task, TaskOptions, generator, need
from .tokenizers import make_tokenizer

PROBE_POOL = 32  # keys and values of a recall probe each come from this many of the corpus's most frequent ids
BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}  # anything else: "text"


class TextOptions(TaskOptions):
    dataset: str | None = Field(None, description="a hub name, or a builder: text, json, parquet, csv")
    data_files: str | list[str] | dict[str, str | list[str]] | None = Field(
        None, description="files, folders, globs; or split -> those")
    config: str | None = Field(None, description="the dataset's configuration name")
    split: str = Field("train", description="the split trained on")
    val_split: str | None = Field(None, description="validation split (None: hold out the last val_fraction of "
                                                    "the tokens)")
    val_fraction: Annotated[float, Field(gt=0, lt=1)] = Field(0.05, description="share of tokens held out for "
                                                                                  "validation without val_split")
    text_column: str = Field("text", description="the column holding the text")
    tokenizer: str = Field("bytes", description="bytes, or a Hugging Face tokenizer name / folder")
    eos: bool = Field(True, description="end each document with an end-of-document id (bytes: id 256, so the "
                                        "spec needs vocab_size >= 257); false: documents joined as they are, bytes "
                                        "need 256 ids")
    sample_by: str = Field("document", description="text builder: one row per file (document), paragraph or line")
    max_bytes: Annotated[int, Field(ge=1)] | None = Field(None, description="read at most this much text per split")
    recall_share: Annotated[float, Field(ge=0, lt=1)] = Field(
        0.0, description="share of training rows that are in-context recall drills (key/value pairs, then the keys "
                         "again, over the corpus's frequent ids) instead of text, so that a short proxy can learn "
                         "what attention buys and a study's recall objective can see it; validation stays text")


def expand_files(entries: str | list[str]) -> list[str]:
    files: list[str] = []
    for entry in [entries] if isinstance(entries, str) else entries:
        path = Path(entry).expanduser()
        if path.is_dir():
            found = sorted(str(p) for p in path.rglob("*") if p.is_file())
        else:
            found = sorted(p for p in glob.glob(str(path), recursive=True) if os.path.isfile(p))
        if not found:
            raise UserError(f"task 'text': data_files entry {entry!r} matches no file")
        files += found
    return files


def load_split(o: TextOptions, split: str):
    """The `datasets` split; every failure to find it is a UserError naming what was asked."""
    import datasets

    kwargs: dict[str, Any] = {"split": split}
    if o.data_files is not None:
        if isinstance(o.data_files, dict):
            if split not in o.data_files:
                raise UserError(f"task 'text': split {split!r} is not in data_files; its splits: "
                                f"{', '.join(o.data_files)}")
            files = {name: expand_files(entries) for name, entries in o.data_files.items()}
            first = files[split][0]
        else:
            files = expand_files(o.data_files)
            first = files[0]
        builder = o.dataset or BUILDERS.get(Path(first).suffix.lower(), "text")
        kwargs["data_files"] = files
        if builder == "text":
            kwargs["sample_by"] = o.sample_by
    elif o.dataset is not None:
        builder = o.dataset
    else:
        raise UserError("task 'text': give the option dataset (a hub name) or data_files (local files)")
    if o.config is not None:
        kwargs["name"] = o.config
    try:
        return datasets.load_dataset(builder, **kwargs)
    except (FileNotFoundError, ConnectionError, OSError, ValueError, KeyError,
            datasets.exceptions.DatasetNotFoundError, datasets.exceptions.DatasetGenerationError) as err:
        cause = err.__cause__ or err  # a generation error wraps the real one (e.g. a file that is not UTF-8)
        raise UserError(f"task 'text': cannot load dataset {builder!r} split {split!r}: "
                        f"{type(cause).__name__}: {cause}") from None


def read_texts(ds, column: str, max_bytes: int | None) -> list[str]:
    if column not in ds.column_names:
        raise UserError(f"task 'text': text_column {column!r} is not in the dataset; its columns: "
                        f"{', '.join(ds.column_names)}")
    texts, size = [], 0
    for rows in ds.select_columns([column]).iter(batch_size=1024):
        for text in rows[column]:
            if not isinstance(text, str):
                raise UserError(f"task 'text': column {column!r} holds {type(text).__name__}, not text")
            texts.append(text)
            size += len(text.encode("utf-8"))
            if max_bytes is not None and size >= max_bytes:
                return texts
    return texts


class TokenStream:
    """Documents tokenised and joined: one int32 array, and how many UTF-8 bytes it stands for."""

    def __init__(self, texts: list[str], tokenizer):
        pieces = []
        for ids in tokenizer.encode(texts):
            pieces.append(ids)
            if tokenizer.eos_id is not None:
                pieces.append(np.array([tokenizer.eos_id], dtype=np.int32))
        self.ids = torch.from_numpy(np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int32))
        self.n_bytes = sum(len(t.encode("utf-8")) for t in texts)

    def __len__(self) -> int:
        return len(self.ids)


class Text(Task):
    name = "text"
    Options = TextOptions
    description = "language modelling on a datasets source (hub name or local text/json/parquet files)"
    text = True

    def __init__(self, options: TextOptions, seq_len: int, seed: int):
        super().__init__(options, seq_len, seed)
        self.tokenizer = make_tokenizer(options.tokenizer, options.eos)
        train = TokenStream(read_texts(load_split(options, options.split), options.text_column, options.max_bytes),
                            self.tokenizer)
        if options.val_split is not None:
            val = TokenStream(read_texts(load_split(options, options.val_split), options.text_column,
                                         options.max_bytes), self.tokenizer)
            self.bytes_per_token = val.n_bytes / max(len(val), 1)
            self.train_ids, self.val_ids = train.ids, val.ids
        else:
            n_val = max(int(len(train) * options.val_fraction), seq_len + 1)
            self.bytes_per_token = train.n_bytes / max(len(train), 1)
            self.train_ids, self.val_ids = train.ids[:-n_val], train.ids[-n_val:]
        self.n_train = (len(self.train_ids) - 1) // seq_len
        self.n_val = (len(self.val_ids) - 1) // seq_len
        need(self.name, self.n_train >= 1 and self.n_val >= 1,
             f"the corpus has {len(train)} tokens: too few for one training and one validation sequence of "
             f"{seq_len + 1} tokens")
        self._perm: tuple[int, torch.Tensor] | None = None
        self._probe_ids: ProbeVocabulary | None = None
        if options.recall_share > 0:
            self.probe_vocabulary()  # a corpus too poor for drills fails now, not at its first drilled step

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def _chunks(self, ids: torch.Tensor, starts: torch.Tensor) -> Batch:
        rows = torch.stack([ids[s:s + self.seq_len + 1] for s in starts.tolist()]).long()
        return Batch(rows[:, :-1].contiguous(), rows[:, 1:].contiguous())

    def _permutation(self, epoch: int) -> torch.Tensor:
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, torch.randperm(self.n_train, generator=generator(self.seed, "text", epoch)))
        return self._perm[1]

    def train_batch(self, index: int, batch_size: int) -> Batch:
        samples = range(index * batch_size, (index + 1) * batch_size)
        chunks = [int(self._permutation(g // self.n_train)[g % self.n_train]) for g in samples]
        batch = self._chunks(self.train_ids, torch.tensor(chunks) * self.seq_len)
        if self.options.recall_share > 0:
            self._drill_rows(batch, index)
        return batch

    def _drill_rows(self, batch: Batch, index: int) -> None:
        """Replace a `recall_share` of the rows (each row by its own draw, fixed by seed and index) with recall
        drills: their own stream of random pairs, never the evaluation probe's."""
        from ..recall import drill_rows

        rows = batch.input_ids_BT.shape[0]
        chosen = (torch.rand(rows, generator=generator(self.seed, "recall-share", index))
                  < self.options.recall_share).nonzero().flatten()
        if len(chosen) == 0:
            return
        ids_RT, targets_RT = drill_rows(self.probe_vocabulary(), len(chosen), self.seq_len,
                                        generator(self.seed, "recall-drill", index))
        batch.input_ids_BT[chosen], batch.targets_BT[chosen] = ids_RT, targets_RT

    def val_batch(self, index: int, batch_size: int) -> Batch:
        chunks = [(index * batch_size + b) % self.n_val for b in range(batch_size)]
        return self._chunks(self.val_ids, torch.tensor(chunks) * self.seq_len)

    def summarize(self, loss: float, accuracy: float) -> dict[str, float]:
        return {"val_loss": loss, "val_ppl": math.exp(min(loss, 700.0)),
                "bits_per_byte": loss / math.log(2) / self.bytes_per_token, "accuracy": accuracy}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "train_tokens": len(self.train_ids), "val_tokens": len(self.val_ids),
                "bytes_per_token": self.bytes_per_token}

    def probe_vocabulary(self) -> ProbeVocabulary:
        """Keys and values alternate down the training text's most frequent ids (so both are common, of like
        frequency), the most frequent one fills between queries, and a probe starts with the end-of-document id (a
        document boundary) where the tokenizer has one, never using it as a key or value. The default layout drew
        values from the upper half of the vocabulary: for bytes, 128-255 and the end-of-document id, which Python
        or English text almost never shows, so no model of any architecture could recall them (every candidate of
        the 2026-12-06 GPU study scored at or under chance)."""
        if self._probe_ids is None:
            self._probe_ids = self._frequent_ids()
        return self._probe_ids

    def _frequent_ids(self) -> ProbeVocabulary:
        counts = torch.bincount(self.train_ids, minlength=self.vocab_size)  # int32 as stored: no 8-byte copy
        if self.tokenizer.eos_id is not None:
            counts[self.tokenizer.eos_id] = 0
        order = torch.argsort(counts, descending=True, stable=True)
        seen = order[counts[order] > 0].tolist()
        need(self.name, len(seen) >= 3, f"the corpus shows {len(seen)} distinct ids; a recall probe needs >= 3 (a "
                                        "key, a value and a filler)")
        pool = seen[1:1 + 2 * PROBE_POOL]
        return ProbeVocabulary(keys=tuple(pool[0::2]), values=tuple(pool[1::2]), filler=seen[0],
                               separator=self.tokenizer.eos_id)

    def vocab_advice(self, vocab_size: int) -> str:
        if self.options.tokenizer == "bytes" and self.options.eos and vocab_size >= 256:
            return ("or give the task option eos=false (-t eos=false): bytes without an end-of-document id need "
                    "256 ids")
        return "or use a tokenizer with a smaller vocabulary"

    def compatible_with_teacher(self, teacher_task: dict[str, Any]) -> str | None:
        options = teacher_task.get("options") or {}
        theirs = options.get("tokenizer", "bytes")
        if teacher_task.get("name") != self.name:
            return f"the teacher was trained on task {teacher_task.get('name')!r}, the student learns text"
        if theirs != self.options.tokenizer:
            return f"the teacher's tokenizer is {theirs!r}, the student's {self.options.tokenizer!r}"
        if options.get("eos", True) != self.options.eos:
            return f"the teacher was trained with eos={options.get('eos', True)}, the student with eos={self.options.eos}"
        return None
