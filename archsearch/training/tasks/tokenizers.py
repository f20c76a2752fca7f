"""Tokenizers for language modelling: bytes by default (256 byte ids + an end-of-document id), or any Hugging Face
tokenizer by name (transformers, imported only then)."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from archsearch.errors import UserError


class Tokenizer(Protocol):
    name: str
    vocab_size: int
    eos_id: int | None

    def encode(self, texts: list[str]) -> list[np.ndarray]: ...


class ByteTokenizer:
    """UTF-8 bytes as ids 0..255; id 256 ends a document (257 ids), or, with `eos=False`, documents are simply
    joined and 256 ids suffice (the vocabulary of the tiny example specs)."""

    name = "bytes"

    def __init__(self, eos: bool = True):
        self.vocab_size = 257 if eos else 256
        self.eos_id = 256 if eos else None

    def encode(self, texts: list[str]) -> list[np.ndarray]:
        return [np.frombuffer(t.encode("utf-8"), dtype=np.uint8).astype(np.int32) for t in texts]


class HFTokenizer:
    def __init__(self, name: str, eos: bool = True):
        try:
            from transformers import AutoTokenizer
        except ImportError:
            raise UserError(f"task option tokenizer={name!r} needs the transformers package; install it or use "
                            "tokenizer=bytes") from None
        try:
            self._tok = AutoTokenizer.from_pretrained(name)
        except (OSError, ValueError) as err:
            raise UserError(f"task option tokenizer: cannot load Hugging Face tokenizer {name!r} ({err}); give a "
                            "hub name reachable from here, a local tokenizer folder, or 'bytes'") from None
        self.name = name
        self.vocab_size = len(self._tok)
        self.eos_id = self._tok.eos_token_id if eos else None

    def encode(self, texts: list[str]) -> list[np.ndarray]:
        ids = self._tok(texts, add_special_tokens=False)["input_ids"]
        return [np.asarray(x, dtype=np.int32) for x in ids]


def make_tokenizer(name: str, eos: bool = True) -> Tokenizer:
    """`eos`: end each document with the tokenizer's end-of-document id (False: documents are joined as they are)."""
    return ByteTokenizer(eos) if name == "bytes" else HFTokenizer(name, eos)
