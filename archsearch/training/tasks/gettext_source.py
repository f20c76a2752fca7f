"""A multilingual parallel corpus from the machine's gettext catalogs (`/usr/share/locale/<lang>/LC_MESSAGES/*.mo`):
English messages (msgid) with their translations (msgstr) in each locale, a software-domain cousin of Flores-200.

Pairs are deduplicated per language and split train / validation / test by a hash of the English message, so a
message (in every language) falls in exactly one split and nothing leaks. `prepare_corpus` writes the pairs as JSONL
(one {"lang", "source", "target", "split"} per line) to carry to a machine without the catalogs; `read_pairs` reads
either. Run `python -m archsearch.training.tasks.gettext_source OUT.jsonl [--languages de,fr] [--max-chars 96]`."""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from archsearch.errors import UserError

LOCALE_ROOT = "/usr/share/locale"
SPLITS = ("train", "validation", "test")
HELD_OUT = 0.05  # share of English messages in each of validation and test


@dataclass(frozen=True)
class Pair:
    lang: str
    source: str  # English
    target: str
    split: str

    def to_dict(self) -> dict[str, str]:
        return {"lang": self.lang, "source": self.source, "target": self.target, "split": self.split}


def split_of(source: str, held_out: float = HELD_OUT) -> str:
    """The split of an English message: a hash, so every language agrees and a rerun gives the same split."""
    h = int.from_bytes(hashlib.blake2b(source.encode("utf-8"), digest_size=8).digest(), "little") / 2.0 ** 64
    return "validation" if h < held_out else "test" if h < 2 * held_out else "train"


def parse_mo(data: bytes, where: str = "catalog") -> dict[str, str]:
    """msgid -> msgstr of one .mo file (GNU format, either byte order). The header (empty msgid) is dropped, a
    context (`ctxt\\x04id`) is stripped, plurals keep their singular forms; text decodes with the header's charset."""
    if len(data) < 28:
        raise ValueError(f"{where}: too short for a .mo file")
    magic = struct.unpack("<I", data[:4])[0]
    order = "<" if magic == 0x950412DE else ">" if magic == 0xDE120495 else None
    if order is None:
        raise ValueError(f"{where}: not a .mo file (magic {magic:#x})")
    _, count, ids_at, strs_at = struct.unpack(order + "4I", data[4:20])

    def entry(table: int, i: int) -> bytes:
        length, offset = struct.unpack(order + "2I", data[table + 8 * i: table + 8 * i + 8])
        if offset + length > len(data):
            raise ValueError(f"{where}: entry {i} points past the end of the file")
        return data[offset:offset + length]

    raw = [(entry(ids_at, i), entry(strs_at, i)) for i in range(count)]
    charset = "utf-8"
    for msgid, msgstr in raw:
        if msgid == b"":
            for line in msgstr.decode("ascii", "replace").splitlines():
                if line.lower().startswith("content-type:") and "charset=" in line:
                    charset = line.split("charset=", 1)[1].strip() or "utf-8"
    try:
        "".encode(charset)
    except LookupError:
        charset = "utf-8"
    out: dict[str, str] = {}
    for msgid, msgstr in raw:
        if msgid == b"":
            continue
        try:
            source, target = msgid.decode(charset), msgstr.decode(charset)
        except UnicodeDecodeError:
            continue  # a mis-declared charset: the message is skipped, not garbled
        source = source.split("\x04", 1)[-1].split("\x00", 1)[0]
        target = target.split("\x00", 1)[0]
        if source.strip() and target.strip():
            out[source] = target
    return out


def catalog_languages(root: str | Path = LOCALE_ROOT) -> list[str]:
    return sorted(p.name for p in Path(root).iterdir() if (p / "LC_MESSAGES").is_dir()) if Path(root).is_dir() else []


def read_catalogs(root: str | Path = LOCALE_ROOT, languages: list[str] | None = None,
                  max_chars: int | None = None) -> list[Pair]:
    """Every (language, English message, translation) of the catalogs under `root`, deduplicated per language (a
    message translated differently by two packages keeps its most frequent translation, ties by text)."""
    found = catalog_languages(root)
    if not found:
        raise UserError(f"gettext corpus: no <lang>/LC_MESSAGES folders under {str(root)!r}")
    if languages is not None:
        unknown = [lang for lang in languages if lang not in found]
        if unknown:
            raise UserError(f"gettext corpus: language(s) {', '.join(unknown)} have no catalogs under {str(root)!r}; "
                            f"languages there: {', '.join(found[:40])}" + (" ..." if len(found) > 40 else ""))
    pairs: list[Pair] = []
    for lang in languages or found:
        seen: dict[str, Counter] = defaultdict(Counter)
        for mo in sorted((Path(root) / lang / "LC_MESSAGES").glob("*.mo")):
            try:
                catalog = parse_mo(mo.read_bytes(), str(mo))
            except (OSError, ValueError, struct.error):
                continue  # one unreadable catalog does not lose the language
            for source, target in catalog.items():
                if source != target and (max_chars is None or max(len(source), len(target)) <= max_chars):
                    seen[source][target] += 1
        for source in sorted(seen):
            target = min(seen[source].items(), key=lambda kv: (-kv[1], kv[0]))[0]
            pairs.append(Pair(lang, source, target, split_of(source)))
    return pairs


def prepare_corpus(out: str | Path, root: str | Path = LOCALE_ROOT, languages: list[str] | None = None,
                   max_chars: int | None = None) -> dict[str, int]:
    """Write the pairs as JSONL to `out`; returns the count per split."""
    pairs = read_catalogs(root, languages, max_chars)
    counts = Counter(p.split for p in pairs)
    tmp = Path(out).with_name(Path(out).name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for pair in pairs:
            f.write(json.dumps(pair.to_dict(), ensure_ascii=False) + "\n")
    tmp.replace(out)
    return {split: counts.get(split, 0) for split in SPLITS}


def read_pairs(path: str | Path, languages: list[str] | None = None) -> list[Pair]:
    """A prepared JSONL file's pairs (those of `languages`, if given). Each line's fields are checked."""
    pairs: list[Pair] = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"parallel corpus {str(path)!r}: cannot read ({err})") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            pair = Pair(*(row[k] for k in ("lang", "source", "target", "split")))
        except (ValueError, KeyError, TypeError):
            raise UserError(f"parallel corpus {str(path)!r} line {number}: expected a JSON object with lang, source, "
                            "target, split") from None
        if pair.split not in SPLITS or not all(isinstance(v, str) for v in (pair.lang, pair.source, pair.target)):
            raise UserError(f"parallel corpus {str(path)!r} line {number}: split must be one of {', '.join(SPLITS)} "
                            f"and the other fields text (got split {pair.split!r})")
        if languages is None or pair.lang in languages:
            pairs.append(pair)
    return pairs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the machine's gettext catalogs as a JSONL parallel corpus.")
    parser.add_argument("out")
    parser.add_argument("--root", default=LOCALE_ROOT)
    parser.add_argument("--languages", default=None, help="comma-separated locale names (default: all)")
    parser.add_argument("--max-chars", type=int, default=None)
    args = parser.parse_args(argv)
    languages = args.languages.split(",") if args.languages else None
    try:
        counts = prepare_corpus(args.out, args.root, languages, args.max_chars)
    except UserError as err:
        raise SystemExit(f"error: {err}") from None
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
