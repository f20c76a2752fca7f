"""Hostile command-line input outside the study commands: unwritable output paths, numbers out of range (huge,
negative, nan, inf), YAML bombs in --recipe, long sizes and patterns, a dashboard port already taken. Each is
exit 2 with one message naming the option, never a traceback, and is refused before any work starts."""

import json
import os
import socket
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archsearch import limits
from archsearch.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "archsearch" / "examples"
QWEN_CONFIG = Path(__file__).resolve().parents[1] / "hf" / "configs" / "qwen3-8b.json"
ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(result, *fragments):
    code, out, err = result
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err
    flat = " ".join(err.replace("│", " ").split())  # click's usage errors come in a wrapped rich box
    for fragment in fragments:
        assert " ".join(fragment.split()) in flat, err
    assert len(err) < 3000, "an error never echoes a whole input"


# ---------------------------------------------------------------------------------------------- output paths
@pytest.fixture
def places(tmp_path):
    file = tmp_path / "file.txt"
    file.write_text("keep me")
    folder = tmp_path / "folder"
    folder.mkdir()
    return {"file": file, "under_file": file / "sub" / "x", "folder": folder}


@pytest.mark.parametrize("argv, place, fragment", [
    (["export-hf", "qwen3-tiny", "-o"], "file", "exists and is not a folder"),
    (["export-hf", "qwen3-tiny", "-o"], "under_file", "is a regular file, not a folder"),
    (["schema", "-o"], "folder", "is a folder; give a file name"),
    (["schema", "-o"], "under_file", "is a regular file, not a folder"),
    (["import-hf", str(QWEN_CONFIG), "-o"], "folder", "is a folder; give a file name"),
    (["import-hf", str(QWEN_CONFIG), "-o"], "under_file", "is a regular file, not a folder"),
    (["train", "qwen3-tiny", "--task", "mqar", "--device", "cpu", "--output"], "file", "exists and is not a folder"),
    (["train", "qwen3-tiny", "--task", "mqar", "--device", "cpu", "--output"], "under_file", "is a regular file"),
])
def test_unwritable_output_paths_name_the_option_and_the_path(capsys, places, argv, place, fragment):
    target = places[place]
    option = argv[-1]
    assert_refused(run(capsys, *argv, str(target)), f"{option} '{target}'", "cannot write there", fragment)
    assert places["file"].read_text() == "keep me"


@pytest.mark.skipif(ROOT, reason="root may write into a folder without write permission")
@pytest.mark.parametrize("argv", [["export-hf", "qwen3-tiny", "-o"], ["schema", "-o"],
                                  ["train", "qwen3-tiny", "--task", "mqar", "--device", "cpu", "--output"]])
def test_a_folder_without_write_permission(capsys, tmp_path, argv):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        target = locked / ("out" if argv[0] != "schema" else "schema.json")
        assert_refused(run(capsys, *argv, str(target)), "no permission to write in", str(locked))
    finally:
        locked.chmod(0o700)


def test_check_output_refuses_permission_as_os_access_reports_it(tmp_path, monkeypatch):
    """The permission branch, also where the tests run as root (os.access is what the check consults)."""
    from archsearch.errors import UserError
    from archsearch.outputs import check_output

    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(UserError, match=r"-o .*: cannot write there: no permission to write in"):
        check_output(tmp_path / "new" / "config", "-o", folder=True)


def test_writes_still_work_where_allowed(capsys, tmp_path):
    code, out, err = run(capsys, "export-hf", "qwen3-tiny", "-o", str(tmp_path / "a" / "b"))
    assert code == 0 and (tmp_path / "a" / "b" / "config.json").is_file()
    code, out, err = run(capsys, "schema", "-o", str(tmp_path / "s" / "schema.json"))
    assert code == 0 and json.loads((tmp_path / "s" / "schema.json").read_text())["title"] == "ModelSpec"


# ---------------------------------------------------------------------------------------------- numeric bounds
BOUNDED = [  # (command prefix, option, low, high, integer?)
    (["train", "qwen3-tiny", "--task", "mqar"], "--steps", 1, limits.MAX_STEPS, True),
    (["train", "qwen3-tiny", "--task", "mqar"], "--batch-size", 1, limits.MAX_BATCH, True),
    (["train", "qwen3-tiny", "--task", "mqar"], "--seq-len", 1, limits.MAX_SEQ_LEN, True),
    (["train", "qwen3-tiny", "--task", "mqar"], "--seed", 0, limits.MAX_SEED, True),
    (["train", "qwen3-tiny", "--task", "mqar"], "--eval-every", 1, limits.MAX_STEPS, True),
    (["train", "qwen3-tiny", "--task", "mqar"], "--nproc", 1, limits.MAX_NPROC, True),
    (["train", "qwen3-tiny", "--task", "mqar"], "--lr", 0, limits.MAX_LR, False),
    (["train", "qwen3-tiny", "--task", "mqar"], "--temperature", 0, limits.MAX_TEMPERATURE, False),
    (["train", "qwen3-tiny", "--task", "mqar"], "--alpha", 0, 1, False),
    (["check", "qwen3-tiny"], "--batch", 1, limits.MAX_BATCH, True),
    (["check", "qwen3-tiny"], "--decode-steps", 1, limits.MAX_DECODE_STEPS, True),
    (["check", "qwen3-tiny"], "--buffer-fraction", 0, 1, False),
    (["check", "qwen3-tiny"], "--reserve-gib", 0, limits.MAX_RESERVE_GIB, False),
    (["show", "qwen3-tiny"], "--batch", 1, limits.MAX_BATCH, True),
]
IDS = [f"{p[0]}{o}" for p, o, *_ in BOUNDED]


@pytest.mark.parametrize("prefix, option, low, high, integer", BOUNDED, ids=IDS)
@pytest.mark.parametrize("value", ["10" + "0" * 29, "9" * 400, "-1", "-" + "9" * 40, "nan", "inf", "-inf", "1e400"])
def test_out_of_range_numbers_are_refused_before_work(capsys, prefix, option, low, high, integer, value):
    expected = "valid integer" if integer and value in ("nan", "inf", "-inf", "1e400") else "out of range"
    started = time.monotonic()
    result = run(capsys, *prefix, option, value, "--device", "cpu") if prefix[0] == "train" else \
        run(capsys, *prefix, option, value)
    assert_refused(result, f"'{option}'", expected)
    assert time.monotonic() - started < 5, "refused before any work"
    assert value[:40] not in result[2] or len(value) <= 40, "the value is cut, not echoed whole"


LOW_OPEN = {"--lr", "--temperature", "--buffer-fraction"}  # 0 itself is refused there


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.sampled_from(BOUNDED), data=st.data())
def test_random_numbers_outside_each_range_are_refused(capsys, case, data):
    prefix, option, low, high, integer = case
    if integer:
        value = data.draw(st.one_of(st.integers(max_value=low - 1), st.integers(min_value=high + 1)))
    else:
        value = data.draw(st.one_of(st.floats(max_value=low, exclude_max=option not in LOW_OPEN),
                                    st.floats(min_value=high, exclude_min=True), st.just(float("nan"))))
    extra = ["--device", "cpu"] if prefix[0] == "train" else []
    assert_refused(run(capsys, *prefix, option, str(value), *extra), f"'{option}'", "out of range", "allowed")


@pytest.mark.parametrize("prefix, option, low, high, integer", BOUNDED, ids=IDS)
def test_help_documents_each_range(capsys, monkeypatch, prefix, option, low, high, integer):
    from archsearch.cli.options import describe

    monkeypatch.setenv("COLUMNS", "300")  # one help row per option
    code, out, err = run(capsys, prefix[0], "--help")
    row = next(line for line in out.splitlines() if f" {option} " in line)
    assert code == 0 and describe(low, high, option in LOW_OPEN) in row, row


@pytest.mark.parametrize("argv, option", [
    (["show", "qwen3-tiny", "--context"], "--context"),
    (["check", "qwen3-tiny", "--context"], "--context"),
    (["check", "qwen3-tiny", "--prefill-chunk"], "--prefill-chunk"),
    (["check", "qwen3-tiny", "--input-len"], "--input-len"),
    (["check", "qwen3-tiny", "--output-len"], "--output-len"),
    (["import-hf", str(QWEN_CONFIG), "--max-context"], "--max-context"),
])
@pytest.mark.parametrize("value", ["9" * 400, "9" * 400 + "k", "1" + "0" * 30 + ".5M", "0", "2G"])
def test_sizes_of_any_length_are_refused_with_a_short_message(capsys, argv, option, value):
    code, out, err = run(capsys, *argv, value)
    assert_refused((code, out, err), f"{option}:", "allowed")
    assert "9" * 50 not in err


# ---------------------------------------------------------------------------------------------- --recipe
@pytest.mark.parametrize("text, fragment", [
    ("a: &a [*a]\n", "recursive"),
    ("".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" if i else "l0: &l0 [lol]\n" for i in range(10)),
     "through YAML aliases"),
    ("steps: 5\nsteps: 6\n", "duplicate key"),
    ("[1, 2]\n", "must hold a mapping"),
    ("seed: " + "9" * 300 + "\n", "recipe field seed"),
    ("batch_size: 10000000\n", "recipe field batch_size"),
    ("lr: .nan\n", "recipe field lr"),
])
def test_recipe_files_are_read_with_the_spec_guards(capsys, tmp_path, text, fragment):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    started = time.monotonic()
    code, out, err = run(capsys, "train", "qwen3-tiny", "--task", "mqar", "--device", "cpu", "--recipe", str(path))
    assert time.monotonic() - started < 5
    assert_refused((code, out, err), "--recipe" if "recipe field" not in fragment else "recipe field", fragment)
    assert "lol" * 3 not in err and "9" * 100 not in err


def test_recipe_file_that_cannot_be_read(capsys, tmp_path):
    assert_refused(run(capsys, "train", "qwen3-tiny", "--task", "mqar", "--recipe", str(tmp_path)), "--recipe",
                   "cannot read")
    assert_refused(run(capsys, "train", "qwen3-tiny", "--task", "mqar", "--recipe", "x" * 5000), "--recipe",
                   "cannot read")


# ---------------------------------------------------------------------------------------------- patterns and names
def test_a_huge_repeat_count_is_shown_cut(capsys, tmp_path):
    lines = (EXAMPLES / "nemotron-h-tiny.yaml").read_text().splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith("pattern:"))
    lines[i] = f"pattern: '(M-)x{'9' * 400}'"
    path = tmp_path / "spec.yaml"
    path.write_text("\n".join(lines) + "\n")
    code, out, err = run(capsys, "validate", str(path))
    assert_refused((code, out, err), "repeat count must be between 1 and 4096", "(400 digits)")
    assert "9" * 70 not in err


def test_a_file_name_too_long_is_no_such_file(capsys):
    assert_refused(run(capsys, "validate", "(Mx" + "9" * 400 + ")"), "no such file or example")


# ---------------------------------------------------------------------------------------------- dashboard
@pytest.fixture
def db_url(tmp_path):
    from archsearch.storage import Database

    url = f"sqlite:///{tmp_path / 'r.db'}"
    with Database(url):
        pass
    return url


def test_dashboard_on_a_port_in_use(capsys, db_url):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        port = taken.getsockname()[1]
        assert_refused(run(capsys, "dashboard", "--storage", db_url, "--port", str(port)), "--port", str(port),
                       "cannot listen there")
    finally:
        taken.close()


@pytest.mark.parametrize("host, fragment", [("no-such-host.invalid", "not an address or host name"),
                                            ("300.1.1.1", "not an address or host name"),
                                            ("8.8.8.8", "cannot listen there"),
                                            ("h" * 300, "not an address or host name")])
def test_dashboard_on_a_bad_host(capsys, db_url, host, fragment):
    assert_refused(run(capsys, "dashboard", "--storage", db_url, "--host", host, "--port", "1"), "--host", fragment)


@pytest.mark.parametrize("port", ["0", "65536", "-1", "9" * 30])
def test_dashboard_port_out_of_range(capsys, db_url, port):
    assert_refused(run(capsys, "dashboard", "--storage", db_url, "--port", port), "'--port'")


@pytest.mark.parametrize("args, fragment", [
    (["--precision", "x" * 2000], "--precision"),
    (["--tokens", "9" * 400], "recipe field tokens"),
    (["--tokens", "1e400"], "recipe field tokens"),
    (["--flops", "9" * 400], "recipe field flops"),
    (["--flops", "nan"], "recipe field flops"),
    (["-t", "n_pairs=" + "9" * 400], "n_pairs"),
    (["-t", "vocab=1e400"], "vocab"),
    (["--task", "x" * 2000], "unknown task"),
])
def test_train_values_of_any_length_are_refused_short(capsys, args, fragment):
    code, out, err = run(capsys, "train", "qwen3-tiny", "--task", "mqar", "--device", "cpu", "--seq-len", "64", *args)
    assert_refused((code, out, err), fragment)
    assert len(err) < 1000 and "x" * 100 not in err and "9" * 100 not in err


def test_train_compile_scopes_are_one_or_the_other(capsys):
    code, out, err = run(capsys, "train", "qwen3-tiny", "--task", "mqar", "--device", "cpu", "--compile",
                         "--compile-model")
    assert_refused((code, out, err), "--compile and --compile-model")
    assert "--compile-model (the whole forward as one program)" in err


def test_train_cuda_graph_on_a_cpu_trains_and_says_why_not(capsys):
    code, out, err = run(capsys, "train", "qwen3-tiny", "--task", "mqar", "--device", "cpu", "--steps", "2",
                         "--batch-size", "2", "--seq-len", "32", "--cuda-graph")
    assert code == 0, err
    assert "CUDA graph" in out and "off: needs a CUDA device (this run is on cpu)" in out


def test_train_cuda_graph_with_a_teacher_is_refused(capsys, tmp_path):
    code, out, err = run(capsys, "train", "qwen3-tiny", "--task", "mqar", "--device", "cpu", "--cuda-graph",
                         "--teacher", str(tmp_path))
    assert_refused((code, out, err), "cuda_graph: true cannot capture a distillation step")
