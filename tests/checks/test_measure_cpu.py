"""`archsearch check --measure` on a CPU: the table, a measured line that says why there is no peak, and an exit
status that reflects only the verdict (0 fits, 1 does not fit, 2 bad input)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from archsearch.cli import main  # noqa: E402

ARGS = ["check", "nemotron-h-tiny", "--device", "a10g", "--context", "1k", "--measure", "--decode-steps", "2"]


@pytest.fixture
def cpu_only(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_table_on_cpu_exits_0(cpu_only, capsys):
    assert main(ARGS) == 0
    out = capsys.readouterr().out
    assert "FITS" in out
    assert "measured on cpu: peak not measured" in out and "no GPU" in out


def test_json_on_cpu_measured_null_with_reason(cpu_only, capsys):
    assert main([*ARGS, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["fits"] is True
    assert out["measured"] is None
    assert "no GPU" in out["measured_reason"]
    assert out["measured_cpu"]["device"] == "cpu" and out["measured_cpu"]["peak_bytes"] is None
    assert out["measured_cpu"]["weight_bytes"] > 0


def test_does_not_fit_on_cpu_exits_1(cpu_only, capsys):
    # a budget of 0 bytes: nothing fits, and the CPU measurement does not turn that into a crash or another status
    assert main([*ARGS, "--buffer-fraction", "0.01", "--reserve-gib", "1", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["fits"] is False and out["measured"] is None and out["measured_reason"]


def test_bad_input_with_measure_exits_2(capsys):
    # (a context beyond max_context is no longer bad input: it is answered with a warning)
    assert main(["check", "nemotron-h-tiny", "--context", "4q", "--measure"]) == 2
    assert "--context: '4q' is not a size" in capsys.readouterr().err


def test_throughput_line_names_its_lengths(capsys):
    assert main(["check", "nemotron-h-tiny", "--device", "a10g", "--context", "1k"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "at 8192 tokens in / 16384 out (--input-len/--output-len, not --context)" in out
    assert main(["check", "nemotron-h-tiny", "--context", "1k", "--input-len", "1k", "--output-len", "512"]) == 0
    assert "at 1024 tokens in / 512 out" in " ".join(capsys.readouterr().out.split())


def test_unknown_device_lists_allowed_names(capsys):
    assert main(["check", "nemotron-h-tiny", "--device", "a10x", "--context", "1k"]) == 2
    err = capsys.readouterr().err
    assert "known devices:" in err and "a10," in err and "a10g" in err


@pytest.mark.parametrize("as_json", [False, True])
def test_subprocess_on_cpu(as_json):
    exe = Path(sys.executable).with_name("archsearch")
    if not exe.exists():
        pytest.skip("no archsearch script beside this interpreter")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([str(exe), *ARGS, *(["--json"] if as_json else [])], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    if as_json:
        out = json.loads(proc.stdout)
        assert out["measured"] is None and out["measured_reason"]
    else:
        assert "peak not measured" in proc.stdout
