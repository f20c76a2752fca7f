"""The study commands: bad input exits 2 with one clear line; list / best / export read what a run stored."""

import json

import pytest

from archsearch.cli import main
from archsearch.studies import StudyRunner, load_study

from studies_helpers import ToyEvaluator


@pytest.fixture
def stored(write_study, sqlite_url):
    path = write_study(n_trials=5, objectives=["val_loss", "n_params"])
    runner = StudyRunner(load_study(path), ToyEvaluator(), storage=sqlite_url, live=False)
    runner.open()
    runner.run()
    runner.close()
    return path, sqlite_url


def test_malformed_study_file_exits_2_naming_the_place(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nbase: nemotron-h-tiny\nspace: {parameters: {d_model: {type: int, low: 9}}}\n")
    assert main(["study", "run", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: invalid study file") and "bad.yaml:" in err and "Traceback" not in err


def test_unreachable_database_exits_2(write_study, capsys):
    path = write_study()
    assert main(["study", "run", str(path), "--storage", "postgresql://postgres@127.0.0.1:1/x"]) == 2
    assert "cannot reach the database postgresql://postgres@127.0.0.1:1/x" in capsys.readouterr().err


def test_list_best_and_export(stored, capsys, tmp_path):
    path, url = stored
    assert main(["study", "list", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert out.startswith("toy ") and "val_loss (min)" in out

    assert main(["study", "best", str(path), "--storage", url, "--json"]) == 0
    best = json.loads(capsys.readouterr().out)
    assert best and all(len(b["objectives"]) == 2 for b in best)
    assert main(["study", "best", "toy", "--storage", url]) == 0
    assert "Pareto front" in capsys.readouterr().out

    assert main(["results", "export", "--storage", url, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 5 and {"spec", "curve", "budget", "status"} <= set(rows[0])
    out_file = tmp_path / "t.csv"
    assert main(["results", "export", "--storage", url, "--format", "csv", "--output", str(out_file)]) == 0
    assert out_file.read_text().count("\n") >= 6


def test_reading_commands_refuse_missing_things(tmp_path, capsys):
    missing = f"sqlite:///{tmp_path / 'none.db'}"
    assert main(["study", "list", "--storage", missing]) == 2
    assert "no such SQLite file" in capsys.readouterr().err
    assert main(["study", "best", "ghost", "--storage", missing]) == 2
    assert main(["study", "best", "ghost"]) == 2
    assert "give --storage" in capsys.readouterr().err


def test_study_name_with_another_space_exits_2_and_changes_nothing(stored, write_study, capsys):
    path, url = stored
    other = write_study("other.yaml", space={"parameters": {"d_model": {"type": "categorical", "choices": [64]}}})
    assert main(["study", "run", str(other), "--storage", url]) == 2
    err = capsys.readouterr().err
    assert "asks another question" in err and "space.parameters.d_model.choices [64, 96, 128] -> [64]" in err
    assert main(["results", "export", "--storage", url, "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 5


def test_ablate_bad_vary_exits_2(capsys):
    assert main(["ablate", "nemotron-h-tiny", "--vary", "blocks.Q.d_state=1,2"]) == 2
    assert "defines no block 'Q'" in capsys.readouterr().err
