"""Damaged run folders on `train --resume`: each broken, missing or foreign file is one clear error naming the
file (exit 2), never a traceback and never a silent fresh start; `--output` never overwrites part of a run."""

import json
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archsearch.cli import main
from archsearch.spec import dump_spec

SMALL = ["--task", "mqar", "-t", "vocab=16", "-t", "n_pairs=2", "--seq-len", "16", "--batch-size", "4",
         "--device", "cpu"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, make_spec):
    """Two finished runs of different models: the damage is done to copies of `good`; `other` lends its files."""
    root = tmp_path_factory.mktemp("runs")
    folders = {}
    for name, spec in (("good", make_spec(64)), ("other", make_spec(128))):
        spec_path = root / f"{name}.yaml"
        spec_path.write_text(dump_spec(spec))
        assert main(["train", str(spec_path), *SMALL, "--steps", "2", "--output", str(root / name), "--json"]) == 0
        folders[name] = root / name
    return folders


@pytest.fixture
def run(runs, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(runs["good"], copy)
    return copy


def resume(capsys, folder):
    code = main(["train", "--resume", str(folder), "--steps", "3", "--device", "cpu", "--json"])
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(code, out, err, *fragments):
    assert code == 2, (out, err)
    assert "Traceback" not in err and out == "", "a refused resume trains nothing"
    for fragment in fragments:
        assert fragment in err, err


def test_an_intact_folder_resumes(run, capsys):
    code, out, err = resume(capsys, run)
    assert code == 0 and json.loads(out)["steps"] == 3


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


DAMAGE = {
    "state.json: garbled": ("state.json", lambda p: p.write_text('{"step": 2, "python_'), "cannot be read as JSON"),
    "state.json: a list": ("state.json", lambda p: p.write_text("[1, 2]"), "holds a JSON list"),
    "state.json: bad step": ("state.json", lambda p: p.write_text(json.dumps(
        {**json.loads(p.read_text()), "step": -3})), "no valid 'step'"),
    "state.json: step a string": ("state.json", lambda p: p.write_text(json.dumps(
        {**json.loads(p.read_text()), "step": "2"})), "no valid 'step'"),
    "state.json: bad random state": ("state.json", lambda p: p.write_text(json.dumps(
        {**json.loads(p.read_text()), "python_random": [3, [1, 2], None]})), "python_random"),
    "state.json: curve not a list": ("state.json", lambda p: p.write_text(json.dumps(
        {**json.loads(p.read_text()), "curve": 5})), "'curve'"),
    "recipe.json: garbled": ("recipe.json", lambda p: p.write_text("{nope"), "cannot be read as JSON"),
    "task.json: a number": ("task.json", lambda p: p.write_text("7"), "holds a JSON int"),
    "spec.yaml: garbled": ("spec.yaml", lambda p: p.write_text("name: [unclosed\n"), "spec.yaml"),
    "model.safetensors: truncated": ("model.safetensors", _truncate, "not a readable safetensors file"),
    "model.safetensors: header only": ("model.safetensors", lambda p: _truncate(p, 0.01), "model.safetensors"),
    "model.safetensors: garbage": ("model.safetensors", lambda p: p.write_bytes(b"\x00" * 64), "model.safetensors"),
    # bytes inside a tensor still parse (as other numbers, NaN included): only the saved digest tells
    "model.safetensors: a weight's bytes": ("model.safetensors", lambda p: p.write_bytes(p.read_bytes()[:-6] +
                                            b"\x00\x00\x00\x00\xc0\x7f"), "does not match the SHA-256"),
    "optimizer.pt: truncated": ("optimizer.pt", _truncate, "cannot be loaded"),
    "optimizer.pt: garbage": ("optimizer.pt", lambda p: p.write_bytes(b"not a torch file"), "cannot be loaded"),
    "optimizer.pt: a tensor": ("optimizer.pt", lambda p: torch.save(torch.zeros(3), p), "holds no optimizer state"),
    "rng.pt: garbage": ("rng.pt", lambda p: p.write_bytes(b"\x80\x04garbage"), "cannot be loaded"),
    "rng.pt: wrong state": ("rng.pt", lambda p: torch.save({"torch": torch.zeros(7, dtype=torch.uint8)}, p),
                            "unusable RNG state"),
    "rng.pt: no torch state": ("rng.pt", lambda p: torch.save({"cuda": torch.zeros(3)}, p), "holds no torch RNG"),
    "rng.pt: float state": ("rng.pt", lambda p: torch.save({"torch": torch.zeros(5056)}, p), "holds no torch RNG"),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_a_damaged_file_is_named(run, capsys, case):
    name, damage, fragment = DAMAGE[case]
    damage(run / name)
    assert_refused(*resume(capsys, run), name, fragment)


@pytest.mark.parametrize("name", ["model.safetensors", "optimizer.pt", "rng.pt", "state.json", "spec.yaml",
                                  "recipe.json", "task.json"])
def test_a_missing_file_is_named(run, capsys, name):
    (run / name).unlink()
    assert_refused(*resume(capsys, run), name, "missing")


@pytest.mark.parametrize("name, fragment", [("optimizer.pt", "another model's optimizer state"),
                                            ("model.safetensors", "does not fit the model")])
def test_a_file_from_another_model_is_named(runs, run, capsys, name, fragment):
    shutil.copy(runs["other"] / name, run / name)
    assert_refused(*resume(capsys, run), name, fragment)


def test_resume_of_a_regular_file_or_a_missing_folder(tmp_path, capsys):
    file = tmp_path / "file"
    file.write_text("x")
    assert_refused(*resume(capsys, file), "holds no checkpoint: it is not a folder")
    assert_refused(*resume(capsys, tmp_path / "nowhere"), "no such folder")


def test_out_never_overwrites_part_of_a_run(runs, tmp_path, capsys):
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(runs["good"] / "optimizer.pt", partial / "optimizer.pt")
    spec_path = runs["good"].parent / "good.yaml"
    code = main(["train", str(spec_path), *SMALL, "--steps", "1", "--output", str(partial)])
    out, err = capsys.readouterr()
    assert code == 2 and "already holds a run (or part of one)" in err and "Traceback" not in err
    assert sorted(p.name for p in partial.iterdir()) == ["optimizer.pt"]


def test_a_task_json_that_is_json_but_no_task_is_named(run, capsys):
    """Found by the random test below: one byte turned `"name"` into `"na e"`, valid JSON that is no task."""
    path = run / "task.json"
    path.write_text(path.read_text(encoding="utf-8").replace('"name"', '"na e"'), encoding="utf-8")
    assert_refused(*resume(capsys, run), "task.json", "is not a task", "damaged")


def test_a_damaged_task_json_is_named_even_when_a_task_is_given(run, capsys):
    """With --task on the command line the saved task is compared with it: a damaged one must still be named as
    damaged, not reported as a task that differs."""
    path = run / "task.json"
    path.write_text(path.read_text(encoding="utf-8").replace('"name"', '"na e"'), encoding="utf-8")
    code = main(["train", "--resume", str(run), "--task", "mqar", "-t", "vocab=16", "-t", "n_pairs=2",
                 "--steps", "3", "--device", "cpu", "--json"])
    out, err = capsys.readouterr()
    assert_refused(code, out, err, "task.json", "is not a task", "damaged")
    assert "differs" not in err


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["model.safetensors", "optimizer.pt", "rng.pt", "state.json", "recipe.json",
                             "task.json", "spec.yaml"]),
       position=st.floats(0, 1), junk=st.binary(min_size=1, max_size=64), cut=st.booleans())
def test_random_corruption_resumes_or_is_named(runs, tmp_path, capsys, name, position, junk, cut):
    """Bytes overwritten or the file cut at a random place: the resume either works (the damage hit bytes that
    carry nothing, e.g. JSON whitespace) or is refused naming the file; never a traceback, never a fresh start."""
    run = Path(tempfile.mkdtemp(dir=tmp_path)) / "run"  # (a resume restores Python's random state: no getrandbits)
    shutil.copytree(runs["good"], run)
    path = run / name
    data = path.read_bytes()
    at = int(position * len(data))
    path.write_bytes(data[:at] if cut else data[:at] + junk + data[at + len(junk):])
    code, out, err = resume(capsys, run)
    assert "Traceback" not in err
    if code == 0:
        assert json.loads(out)["steps"] == 3
    else:
        assert code == 2 and out == "", (code, err)
    shutil.rmtree(run)


@pytest.mark.parametrize("damage", ["truncated", "foreign"])
def test_a_damaged_teacher_is_named(runs, run, capsys, damage):
    if damage == "truncated":
        _truncate(run / "model.safetensors")
    else:
        shutil.copy(runs["other"] / "model.safetensors", run / "model.safetensors")
    spec_path = runs["good"].parent / "good.yaml"
    code = main(["train", str(spec_path), *SMALL, "--steps", "1", "--teacher", str(run)])
    out, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err and "model.safetensors" in err, err


def test_export_hf_of_a_truncated_checkpoint(runs, tmp_path, capsys):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes((runs["good"] / "model.safetensors").read_bytes()[:100])
    code = main(["export-hf", str(runs["good"] / "spec.yaml"), "--checkpoint", str(weights), "-o",
                 str(tmp_path / "hf")])
    out, err = capsys.readouterr()
    assert code == 2 and "--checkpoint" in err and "not a readable safetensors file" in err and "Traceback" not in err
