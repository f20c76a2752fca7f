"""`archsearch train`: metrics printed (or one JSON object), resume and teacher folders, exit 2 on bad input."""

import json

import pytest

from archsearch.cli import main
from archsearch.spec import dump_spec

SMALL = ["--task", "mqar", "-t", "vocab=16", "-t", "n_pairs=2", "--seq-len", "16", "--batch-size", "4",
         "--device", "cpu"]


@pytest.fixture
def spec_file(spec, tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(dump_spec(spec))
    return str(path)


def run_json(capsys, *args):
    code = main(["train", *args, "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def test_json_output_has_the_metrics(spec_file, capsys):
    result = run_json(capsys, spec_file, *SMALL, "--steps", "3", "--seed", "4")
    assert result["status"] == "completed" and result["steps"] == 3
    assert set(result["metrics"]) == {"val_loss", "accuracy"}
    assert result["recipe"]["seed"] == 4 and result["task"]["options"]["n_pairs"] == 2


def test_human_output(spec_file, capsys):
    assert main(["train", spec_file, *SMALL, "--steps", "2"]) == 0
    out = capsys.readouterr().out
    assert "completed: 2 steps" in out and "val_loss" in out and "fp32 (default on CPU)" in out


def test_resume_and_teacher_folders(spec_file, tmp_path, capsys):
    run = tmp_path / "run"
    run_json(capsys, spec_file, *SMALL, "--steps", "2", "--output", str(run))
    resumed = run_json(capsys, "--resume", str(run), "--steps", "4", "--device", "cpu")
    assert resumed["steps"] == 4 and resumed["out_dir"] == str(run)
    student = run_json(capsys, spec_file, *SMALL, "--steps", "2", "--teacher", str(run), "--alpha", "1")
    assert "kl_to_teacher" in student["metrics"] and student["recipe"]["distill"]["alpha"] == 1


def test_recipe_file_with_command_line_on_top(spec_file, tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("steps: 5\nlr: 0.001\nschedule: wsd\n")
    result = run_json(capsys, spec_file, *SMALL, "--recipe", str(recipe), "--steps", "2")
    assert (result["steps"], result["recipe"]["lr"], result["recipe"]["schedule"]) == (2, 0.001, "wsd")


@pytest.mark.parametrize("args, message", [
    (["--task", "mqr"], "unknown task 'mqr'; tasks: mqar, selective_copy"),
    (["--task", "mqar", "-t", "pairs=3"], "unknown option 'pairs'; allowed options: seq_len, vocab, n_pairs"),
    (["--task", "mqar", "-t", "n_pairs"], "expected KEY=VALUE"),
    (["--task", "text", "-t", "data_files=/nonexistent.txt"], "matches no file"),
    (["--task", "mqar", "--precision", "fp4"], "--precision: 'fp4' is not one of"),
    (["--task", "mqar", "-t", "vocab=32", "--precision", "fp8", "--require-fp8", "--seq-len", "32"],
     "FP8 is unavailable here: CPU"),
    (["--task", "mqar", "-t", "vocab=32", "--seq-len", "4096"], "above the spec's max_context 256"),
    (["--task", "mqar", "--lr", "-1"], "Invalid value for '--lr': -1.0 is out of range; allowed: (0, 1000000000.0]"),
    ([], "needs SPEC and --task"),
])
def test_bad_input_exits_2_with_a_message(spec_file, capsys, args, message):
    assert main(["train", spec_file, "--device", "cpu", *args]) == 2
    assert message in capsys.readouterr().err


def test_resume_of_a_folder_without_a_run(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "holds no checkpoint" in capsys.readouterr().err
