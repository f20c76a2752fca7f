"""`archsearch train --nproc N`: end to end on CPU (two gloo processes), and bad values exit 2 with one line."""

import json

import pytest

from archsearch.cli import main
from archsearch.spec import dump_spec

SMALL = ["--task", "mqar", "-t", "vocab=16", "-t", "n_pairs=2", "--seq-len", "16", "--batch-size", "4",
         "--device", "cpu", "--eval-every", "2"]


@pytest.fixture
def spec_file(spec, tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(dump_spec(spec))
    return str(path)


def test_nproc_2_trains_writes_one_run_folder_and_prints_rank_0s_record(spec_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", spec_file, *SMALL, "--steps", "3", "--nproc", "2", "--output", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "completed" and result["steps"] == 3 and result["extra"]["world_size"] == 2
    assert result["tokens"] == 3 * 4 * 16  # the global batch: --batch-size is not multiplied by the processes
    assert result["out_dir"] == str(out.resolve())
    assert json.loads((out / "result.json").read_text()) == result
    assert not list(out.glob("*.tmp"))


@pytest.mark.parametrize("args, message", [
    (["--nproc", "0"], "allowed: [1, 1024]"),  # the option's documented bound, checked by click
    (["--nproc", "3"], "error: recipe batch_size 4 is not divisible by nproc 3"),
    (["--nproc", "2", "--device", "cuda:0"], "error: device 'cuda:0' with nproc 2: name the device type only"),
])
def test_bad_nproc_exits_2_without_a_traceback(spec_file, args, message, capsys):
    base = [a for a in SMALL if a not in ("--device", "cpu")]
    assert main(["train", spec_file, *base, "--steps", "1", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_an_existing_run_folder_is_refused_before_any_process_starts(spec_file, tmp_path, capsys):
    out = tmp_path / "run"
    for name in ("model.safetensors", "optimizer.pt", "rng.pt", "state.json"):
        out.mkdir(exist_ok=True)
        (out / name).write_text("x")
    assert main(["train", spec_file, *SMALL, "--steps", "1", "--nproc", "2", "--output", str(out)]) == 2
    assert "already holds a run" in capsys.readouterr().err
