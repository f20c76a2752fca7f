"""Hostile input at the command line: foreign or missing databases, bad --storage URLs, empty --name, and
control characters in names printed by the text commands."""

import sqlite3
from pathlib import Path

import pytest

from archsearch.cli import main
from archsearch.cli.spec_cmds import printable

EXAMPLES = Path(__file__).resolve().parents[2] / "archsearch" / "examples"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_printable_escapes_control_characters():
    assert printable("a\x1b[31mb\x9b\x7f") == "a\\x1b[31mb\\x9b\\x7f"
    assert printable("x\ny\tz", keep="\n") == "x\ny\\x09z"
    assert printable("plain ü name") == "plain ü name"


@pytest.mark.parametrize("command", [("results", "export"), ("study", "list")])
def test_foreign_sqlite_is_refused_byte_identical(capsys, tmp_path, command):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE studies (id INTEGER PRIMARY KEY, title TEXT)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    code, out, err = run(capsys, *command, "--storage", f"sqlite:///{path}")
    assert code == 2 and "Traceback" not in err
    assert str(path) in err and "studies" in err and "not an archsearch or Optuna database" in err
    assert path.read_bytes() == before


@pytest.mark.parametrize("command", [("results", "export"), ("study", "list")])
def test_missing_file_is_refused_and_not_created(capsys, tmp_path, command):
    path = tmp_path / "missing.db"
    code, out, err = run(capsys, *command, "--storage", f"sqlite:///{path}")
    assert code == 2 and "no such SQLite file" in err and "--storage" in err and "Traceback" not in err
    assert not path.exists()


@pytest.mark.parametrize("url, fragment", [
    ("", "is empty"),
    ("postgresql://u:secret@localhost:99999/db", "port 99999 is out of range"),
    ("mysql://u@localhost/db", "backend 'mysql' is not supported"),
    ("postgresql+asyncpg://u@localhost/db", "is not available"),
])
@pytest.mark.parametrize("command", [("results", "export"), ("study", "list")])
def test_bad_storage_urls_exit_2_naming_the_value(capsys, command, url, fragment):
    code, out, err = run(capsys, *command, "--storage", url)
    assert code == 2 and "Traceback" not in err
    assert "--storage" in err and fragment in err and "allowed" in err and "secret" not in err
    if url:
        assert url.replace("secret", "***") in err


def test_import_hf_refuses_an_empty_name(capsys, tmp_path):
    code, out, err = run(capsys, "import-hf", str(tmp_path / "config.json"), "--name", "")
    assert code == 2 and "--name ''" in err and "Traceback" not in err


def _evil_spec(tmp_path):
    lines = (EXAMPLES / "nemotron-h-tiny.yaml").read_text().splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith("name:"))
    lines[i] = 'name: "evil\\e[31mred"'
    path = tmp_path / "evil\x1b[2J.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_validate_and_show_escape_control_characters(capsys, tmp_path):
    path = _evil_spec(tmp_path)
    code, out, err = run(capsys, "validate", str(path))
    assert code == 0 and "\x1b" not in out and "evil\\x1b[31mred" in out and "\\x1b[2J" in out
    code, out, err = run(capsys, "show", str(path))
    assert code == 0 and "\x1b" not in out and "evil\\x1b[31mred" in out


def test_study_list_and_export_escape_control_characters(capsys, tmp_path):
    from archsearch.storage import Database
    from archsearch.storage.records import ensure_study, start_trial

    url = f"sqlite:///{tmp_path / 'r.db'}"
    with Database(url) as db:
        record = ensure_study(db, name="bad\x1b[31mname", space_hash="0" * 64, study_file={},
                              objectives=[{"metric": "val_loss", "direction": "minimize"}], n_trials_target=1,
                              archsearch_version="test")
        start_trial(db, study_id=record.id, optuna_trial_id=1, number=0, params={"p": "v\x1b[2J"}, retry_of=None,
                    worker="w")
    code, out, err = run(capsys, "study", "list", "--storage", url)
    assert code == 0, err
    assert "\x1b" not in out and "bad\\x1b[31mname" in out
    code, out, err = run(capsys, "results", "export", "--storage", url)
    assert code == 0, err
    assert "\x1b" not in out and "bad\\x1b[31mname" in out
