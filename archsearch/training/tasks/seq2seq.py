"""Sequence-to-sequence tasks on a decoder-only model: each (source, target) pair is one sequence
`source <sep> target <end>` (UTF-8 bytes), the loss on the target and its end only. Evaluation adds, beside the
validation loss, greedy generation through the builder's prefill + decode path (batched) scored with sacrebleu's
chrF++ and exact match.

Pairs come from the machine's gettext catalogs (`source: gettext`), a prepared JSONL file of them (`jsonl`, see
gettext_source.py), or a toy `copy` / `reverse` set. Training examples go through the declared `transforms`
(transforms.py); validation and generation see the plain pairs, as inference would.

Ids: bytes 0..255, separator 256, end 257 (also the padding of inputs, never scored)."""

from __future__ import annotations

import contextlib
import random
import string
from typing import Any, Callable, ContextManager, Literal

import torch
from pydantic import Field, field_validator

from archsearch.errors import UserError

from .base import IGNORE, Batch, Task, TaskOptions, generator, need
from .gettext_source import LOCALE_ROOT, Pair, read_catalogs, read_pairs, split_of
from .transforms import Example, Pipeline, normalize

SEP, END = 256, 257


class Seq2SeqOptions(TaskOptions):
    source: Literal["gettext", "jsonl", "copy", "reverse"] = Field(
        "gettext", description="gettext: the machine's .mo catalogs; jsonl: a prepared file; copy/reverse: toy pairs")
    path: str | None = Field(None, description=f"gettext: the locale folder (default {LOCALE_ROOT}); jsonl: the file")
    languages: list[str] | None = Field(None, description="the languages paired with English, a list or de,fr "
                                                          "(None: all there are)")
    direction: Literal["from_english", "into_english"] = Field("from_english", description="which side is the source")
    max_chars: int = Field(96, ge=1, description="pairs with a longer source or target are left out")
    max_pairs: int | None = Field(None, ge=1, description="keep at most this many training pairs (a fixed sample)")
    toy_pairs: int = Field(2000, ge=10, description="copy/reverse: how many strings")
    toy_length: int = Field(8, ge=1, description="copy/reverse: longest string, in letters")
    toy_letters: int = Field(8, ge=2, le=26, description="copy/reverse: letters drawn from (a, b, ...)")
    transforms: list[Any] = Field(default_factory=list, description="training-time reformulations, in order: names, "
                                  "NAME:KEY=VALUE text joined by +, or {name, options} (see transforms.py)")
    eval_split: Literal["validation", "test"] = Field("validation", description="the held-out pairs evaluated "
                                                      "(loss and generation); test: for a final report")
    generate_examples: int = Field(64, ge=0, description="validation pairs decoded greedily at each evaluation "
                                                         "(chrF++, exact match); 0: none")
    generate_batch: int = Field(32, ge=1, description="sequences decoded together")

    @field_validator("languages", mode="before")
    @classmethod
    def _languages(cls, value):  # the command line gives text: de,fr
        return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value

    @field_validator("transforms", mode="before")
    @classmethod
    def _transforms(cls, value):
        if isinstance(value, str) or value is None:
            value = [value] if value else []
        try:
            return normalize(value)
        except UserError as err:
            raise ValueError(str(err)) from None


def encode(text: str) -> list[int]:
    return list(text.encode("utf-8"))


def toy_pairs(o: Seq2SeqOptions, seed: int = 0) -> list[Pair]:
    rng = random.Random(f"toy-{o.source}-{seed}")
    letters = string.ascii_lowercase[:o.toy_letters]
    words = {"".join(rng.choice(letters) for _ in range(rng.randint(1, o.toy_length))) for _ in range(o.toy_pairs)}
    make = (lambda w: w) if o.source == "copy" else (lambda w: w[::-1])
    return [Pair(o.source, w, make(w), split_of(w, 0.1)) for w in sorted(words)]


class Seq2Seq(Task):
    name = "seq2seq"
    Options = Seq2SeqOptions
    description = "(source, target) pairs as `source <sep> target <end>`: gettext catalogs, a JSONL file, or toys"

    def __init__(self, options: Seq2SeqOptions, seq_len: int, seed: int):
        super().__init__(options, seq_len, seed)
        self.pipeline = Pipeline(options.transforms)
        self.horizon: int | None = None  # micro-batches of the run (set by the trainer): the hints' schedule
        pairs = self._pairs()
        by_split: dict[str, list[Example]] = {"train": [], "validation": [], "test": []}
        for p in pairs:
            src, tgt, langs = (p.source, p.target, ("en", p.lang))
            if options.direction == "into_english":
                src, tgt, langs = tgt, src, langs[::-1]
            by_split[p.split].append(Example(src, tgt, *langs))
        self.pair_counts = {split: len(examples) for split, examples in by_split.items()}
        self.train_examples = by_split["train"]
        # evaluated pairs in a fixed mixed order (not by language), the same for every seed: seeds pair up
        self.val_examples = by_split[options.eval_split]
        random.Random(0).shuffle(self.val_examples)
        if options.max_pairs is not None and len(self.train_examples) > options.max_pairs:
            self.train_examples = random.Random(seed).sample(self.train_examples, options.max_pairs)
        need(self.name, len(self.train_examples) >= 1 and len(self.val_examples) >= 1,
             f"source {options.source!r} gave {len(self.train_examples)} training and {len(self.val_examples)} "
             f"{options.eval_split} pairs; need at least one of each (more languages, a larger max_chars, more "
             "toy_pairs)")
        need(self.name, seq_len >= 8, f"seq_len {seq_len} is too short for a pair; needs >= 8")

    def _pairs(self) -> list[Pair]:
        o = self.options
        if o.source in ("copy", "reverse"):
            return toy_pairs(o)
        if o.source == "jsonl":
            if o.path is None:
                raise UserError("task 'seq2seq': source jsonl needs the option path (a file written by "
                                "`python -m archsearch.training.tasks.gettext_source OUT`)")
            return [p for p in read_pairs(o.path, o.languages) if max(len(p.source), len(p.target)) <= o.max_chars]
        return read_catalogs(o.path or LOCALE_ROOT, o.languages, o.max_chars)

    @property
    def vocab_size(self) -> int:
        return END + 1

    def set_horizon(self, micro_batches: int) -> None:
        self.horizon = micro_batches

    # ------------------------------------------------------------------------------------------ batches
    def prompt_ids(self, e: Example) -> list[int]:
        """Everything before the scored part: prefix + source, the separator, the hint."""
        budget = self.seq_len // 2  # a long source is cut so that half the sequence stays for the target
        source = encode(e.prefix + e.source)[:budget]
        return source + [SEP] + encode(e.target[:e.given])

    def row(self, e: Example) -> tuple[list[int], int]:
        """The sequence (at most seq_len + 1 ids) and where its scored part starts."""
        prompt = self.prompt_ids(e)
        rest = encode(e.target[e.given:]) + [END]
        return (prompt + rest)[:self.seq_len + 1], len(prompt)

    def batch(self, examples: list[Example]) -> Batch:
        rows_BT = torch.full((len(examples), self.seq_len + 1), END, dtype=torch.long)
        targets_BT = torch.full((len(examples), self.seq_len), IGNORE, dtype=torch.long)
        for b, e in enumerate(examples):
            ids, start = self.row(e)
            rows_BT[b, :len(ids)] = torch.tensor(ids)
            targets_BT[b, start - 1:len(ids) - 1] = rows_BT[b, start:len(ids)]  # position t predicts id t + 1
        return Batch(rows_BT[:, :-1].contiguous(), targets_BT)

    def train_batch(self, index: int, batch_size: int) -> Batch:
        picks = torch.randint(len(self.train_examples), (batch_size,), generator=generator(self.seed, "s2s", index))
        rng = random.Random(f"{self.seed}-{index}")
        progress = index / self.horizon if self.horizon else 0.0
        return self.batch([self.pipeline(self.train_examples[i], rng, progress) for i in picks.tolist()])

    def val_batch(self, index: int, batch_size: int) -> Batch:
        n = len(self.val_examples)
        return self.batch([self.val_examples[(index * batch_size + b) % n] for b in range(batch_size)])

    # ------------------------------------------------------------------------------------------ generation
    @torch.no_grad()
    def generate(self, model, prompts: list[list[int]], max_new: int, device: torch.device,
                 autocast: Callable[[], ContextManager] = contextlib.nullcontext) -> list[list[int]]:
        """Greedy continuations (ids before END) of prompts of different lengths, decoded together: the shortest
        prompt's length is prefilled at once, then each row is fed its own prompt until it runs out, then its own
        prediction, one decode step for all rows at a time (every row stays exactly causal, no padding)."""
        b, shortest, longest = len(prompts), min(map(len, prompts)), max(map(len, prompts))
        cache = model.allocate_cache(b, longest + max_new, device=device)
        with autocast():
            logits_B1V = model.prefill(torch.tensor([p[:shortest] for p in prompts], device=device), cache)
        out: list[list[int]] = [[] for _ in range(b)]
        done = [False] * b
        for t in range(shortest, longest + max_new):
            guess = logits_B1V[:, -1].argmax(-1).tolist()
            feed = []
            for i, p in enumerate(prompts):
                if t < len(p):
                    feed.append(p[t])
                    continue
                if not done[i]:
                    if guess[i] == END or len(out[i]) >= max_new:
                        done[i] = True
                    else:
                        out[i].append(guess[i])
                feed.append(out[i][-1] if out[i] and not done[i] else END)
            if all(done):
                break
            if t == longest + max_new - 1:
                break
            with autocast():
                logits_B1V = model.decode_step(torch.tensor(feed, device=device).view(b, 1), cache)
        return out

    def generation_metrics(self, model, device: torch.device,
                           autocast: Callable[[], ContextManager] = contextlib.nullcontext) -> dict[str, float]:
        """chrF++ (sacrebleu, word order 2) and exact match of greedy outputs on the first validation pairs."""
        n = min(self.options.generate_examples, len(self.val_examples))
        if n == 0:
            return {}
        from sacrebleu.metrics import CHRF

        examples = self.val_examples[:n]
        hypotheses: list[str] = []
        was_training = model.training
        model.eval()
        try:
            for start in range(0, n, self.options.generate_batch):
                chunk = examples[start:start + self.options.generate_batch]
                prompts = [self.prompt_ids(e) for e in chunk]
                max_new = max(1, self.seq_len - max(map(len, prompts)))
                for ids in self.generate(model, prompts, max_new, device, autocast):
                    hypotheses.append(bytes(i for i in ids if i < 256).decode("utf-8", errors="replace"))
        finally:
            model.train(was_training)
        references = [e.target for e in examples]
        chrf = CHRF(word_order=2).corpus_score(hypotheses, [references]).score
        exact = sum(h == r for h, r in zip(hypotheses, references)) / n
        return {"chrf_pp": chrf, "exact_match": exact}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "pairs": self.pair_counts, "train_pairs": len(self.train_examples),
                "eval_split": self.options.eval_split, "transforms": self.pipeline.items}
