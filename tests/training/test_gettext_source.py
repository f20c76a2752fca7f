"""The gettext parallel corpus: .mo catalogs written here byte by byte (both byte orders, contexts, plurals, a
Latin-1 charset), read back exactly, deduplicated per language, split by English message so nothing leaks, written
to JSONL and read by the seq2seq task."""

import json
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archsearch.errors import UserError
from archsearch.training.tasks import TaskSpec, make_task
from archsearch.training.tasks.gettext_source import (SPLITS, parse_mo, prepare_corpus, read_catalogs, read_pairs,
                                                      split_of)


def mo_bytes(messages: dict[str, str], charset: str = "UTF-8", order: str = "<") -> bytes:
    """A GNU .mo file: header entry, then the messages sorted by id (as msgfmt writes them)."""
    entries = {b"": f"Content-Type: text/plain; charset={charset}\n".encode("ascii")}
    entries.update({k.encode(charset): v.encode(charset) for k, v in messages.items()})
    keys = sorted(entries)
    n, ids_at = len(keys), 28
    strs_at = ids_at + 8 * n
    data_at = strs_at + 8 * n
    blob, id_table, str_table = b"", b"", b""
    for table_is_id in (True, False):
        for k in keys:
            text = k if table_is_id else entries[k]
            entry = struct.pack(order + "2I", len(text), data_at + len(blob))
            blob += text + b"\0"
            if table_is_id:
                id_table += entry
            else:
                str_table += entry
    header = struct.pack(order + "7I", 0x950412DE, 0, n, ids_at, strs_at, 0, 0)
    return header + id_table + str_table + blob


def write_locale(root, lang, name, messages, **kw):
    folder = root / lang / "LC_MESSAGES"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.mo").write_bytes(mo_bytes(messages, **kw))


words = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF, blacklist_characters="\x00\x04"),
                min_size=1, max_size=12).filter(str.strip)


@settings(max_examples=50, deadline=None)
@given(messages=st.dictionaries(words, words, max_size=12), order=st.sampled_from("<>"))
def test_a_catalog_reads_back_exactly(messages, order):
    assert parse_mo(mo_bytes(messages, order=order)) == messages


def test_context_plural_charset_and_damage():
    catalog = mo_bytes({"menu\x04Open": "Öffnen", "one file\x00%d files": "eine Datei\x00%d Dateien"},
                       charset="ISO-8859-1")
    assert parse_mo(catalog) == {"Open": "Öffnen", "one file": "eine Datei"}
    with pytest.raises(ValueError, match="not a .mo file"):
        parse_mo(b"\0" * 40)


@pytest.fixture
def locales(tmp_path):
    root = tmp_path / "locale"
    write_locale(root, "de", "a", {"Open": "Öffnen", "Close": "Schließen", "Quit": "Beenden", "Same": "Same"})
    write_locale(root, "de", "b", {"Open": "Aufmachen"})
    write_locale(root, "de", "c", {"Open": "Öffnen"})
    write_locale(root, "fr", "a", {f"message {i}": f"message n°{i}" for i in range(300)} | {"Open": "Ouvrir"})
    (root / "de" / "LC_MESSAGES" / "broken.mo").write_bytes(b"garbage")  # skipped, the language is not lost
    return root


def test_pairs_are_deduplicated_per_language(locales):
    pairs = read_catalogs(locales, ["de"])
    assert {(p.source, p.target) for p in pairs} == {("Open", "Öffnen"), ("Close", "Schließen"), ("Quit", "Beenden")}
    assert len(read_catalogs(locales)) == 3 + 301  # an untranslated message (source == target) is left out
    with pytest.raises(UserError, match="language\\(s\\) xx have no catalogs.*languages there: de, fr"):
        read_catalogs(locales, ["xx"])


def test_the_split_follows_the_english_message_and_never_leaks(locales, tmp_path):
    pairs = read_catalogs(locales)
    split = {}
    for p in pairs:
        assert split.setdefault(p.source, p.split) == p.split  # one split per message, in every language
    assert {p.split for p in pairs} == set(SPLITS)
    assert all(p.split == split_of(p.source) for p in pairs)
    out = tmp_path / "pairs.jsonl"
    counts = prepare_corpus(out, locales)
    assert sum(counts.values()) == len(pairs) and read_pairs(out) == pairs
    assert read_pairs(out, ["de"]) == [p for p in pairs if p.lang == "de"]
    (tmp_path / "bad.jsonl").write_text(json.dumps({"lang": "de", "source": "a"}) + "\n")
    with pytest.raises(UserError, match="bad.jsonl' line 1: expected a JSON object with lang, source, target, split"):
        read_pairs(tmp_path / "bad.jsonl")


def test_the_task_reads_catalogs_and_prepared_files(locales, tmp_path):
    prepare_corpus(tmp_path / "pairs.jsonl", locales)
    for options in ({"source": "gettext", "path": str(locales)},
                    {"source": "jsonl", "path": str(tmp_path / "pairs.jsonl")}):
        task = make_task(TaskSpec(name="seq2seq", options={**options, "languages": ["fr"]}), 32, 0)
        assert sum(task.describe()["pairs"].values()) == 301
        test_options = {**options, "languages": ["fr"], "eval_split": "test"}
        test = make_task(TaskSpec(name="seq2seq", options=test_options), 32, 0)
        assert sorted(e.source for e in test.val_examples) == sorted(p.source for p in read_pairs(
            tmp_path / "pairs.jsonl", ["fr"]) if p.split == "test")
        e = task.train_examples[0]
        assert (e.src_lang, e.tgt_lang) == ("en", "fr") and e.source.startswith(("message", "Open"))
    back = make_task(TaskSpec(name="seq2seq", options={"source": "gettext", "path": str(locales), "languages": ["fr"],
                                                      "direction": "into_english"}), 32, 0)
    assert back.train_examples[0].tgt_lang == "en" and back.train_examples[0].target.startswith(("message", "Open"))


def test_every_seed_evaluates_the_same_pairs_in_a_mixed_order(locales):
    options = {"source": "gettext", "path": str(locales)}
    tasks = [make_task(TaskSpec(name="seq2seq", options=options), 32, seed) for seed in (0, 1)]
    assert tasks[0].val_examples == tasks[1].val_examples  # seeds pair up on one evaluation set
    langs = [e.tgt_lang for e in tasks[0].val_examples]
    assert len(set(langs)) == 2 and langs != sorted(langs)  # not all of one language first
