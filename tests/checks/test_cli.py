"""`archsearch check`: table and verdict, one JSON object, exit codes, clear errors."""

import json

from archsearch.cli import main


def test_json_verdicts(capsys):
    assert main(["check", "nemotron-nano-9b-v2", "--device", "a10g", "--context", "128k", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["fits"] is True and out["context"] == 131072
    assert out["total_bytes"] == sum(out["breakdown"].values()) <= out["budget_bytes"]
    assert out["throughput_projection"]["label"].startswith("roofline projection")
    assert main(["check", "nemotron-nano-12b-v2-base", "--device", "a10g", "--context", "128k", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["fits"] is False


def test_table(capsys):
    assert main(["check", "nemotron-nano-9b-v2", "--context", "128k", "--batch", "1"]) == 0
    out = capsys.readouterr().out
    assert "FITS" in out and "kv_cache" in out and "19.60 GiB" in out and "projection" in out


def test_policy_options(capsys):
    assert main(["check", "nemotron-h-tiny", "--device", "l4", "--context", "1k", "--reserve-gib", "0",
                 "--buffer-fraction", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["budget_bytes"] == 24 * 2**30


def test_errors(capsys):
    cases = [
        (["--device", "b300"], "known devices: a10"),
        (["--context", "128q"], "--context: '128q' is not a size"),
        (["--batch", "0"], "0 is out of range; allowed: [1, 65536]"),
        (["--kv-dtype", "int4"], "--kv-dtype: unknown dtype 'int4'"),
        (["--attention-scores", "some"], "--attention-scores: 'some' is not allowed"),
    ]
    for args, message in cases:
        assert main(["check", "nemotron-h-tiny", *args]) == 2, args
        assert message in capsys.readouterr().err


def test_a_context_beyond_max_context_is_answered_with_a_warning(capsys):
    assert main(["check", "nemotron-h-tiny", "--context", "1M"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # rich wraps lines
    assert "FITS" in out and "warning: context 1048576 is beyond the spec's max_context (2048)" in out
    assert "would need context extension" in out
    assert main(["check", "nemotron-h-tiny", "--context", "1M", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["needs_context_extension"] is True and report["context"] == 1048576
    assert main(["check", "nemotron-h-tiny", "--context", "1k", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["needs_context_extension"] is False and report["warnings"] == []


def test_qwen3_8b_imported_with_yarn_gets_a_verdict_at_128k(qwen3_8b_yarn_config, tmp_path, capsys):
    """import-hf of Qwen3-8B's config with the model card's YaRN, then check it on the A10G at 128k."""
    (tmp_path / "config.json").write_text(json.dumps(qwen3_8b_yarn_config))
    assert main(["import-hf", str(tmp_path / "config.json"), "-o", str(tmp_path / "qwen3-yarn.yaml")]) == 0
    capsys.readouterr()
    assert main(["check", str(tmp_path / "qwen3-yarn.yaml"), "--device", "a10g", "--context", "128k",
                 "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["fits"] is False and report["context"] == report["max_context"] == 131072
    assert report["needs_context_extension"] is False and 0 < report["largest_context"] < 131072


def test_a10_and_a10g_are_two_gpus(capsys):
    """The A10 (24 GB, 125 TFLOP/s bf16) and AWS's A10G (22 GiB usable, the Nemotron Nano 2 budget)."""
    reports = {}
    for device in ("a10", "a10g", "A10G", "a10g-24gb", "a10-24gb"):
        assert main(["check", "nemotron-h-tiny", "--device", device, "--context", "1k", "--json"]) == 0
        reports[device] = json.loads(capsys.readouterr().out)
    assert {d: r["device"] for d, r in reports.items()} == {"a10": "a10", "a10g": "a10g", "A10G": "a10g",
                                                           "a10g-24gb": "a10g", "a10-24gb": "a10"}
    assert reports["a10"]["device_name"] == "NVIDIA A10" and reports["a10g"]["device_name"].startswith("NVIDIA A10G")
    assert reports["a10"]["usable_bytes"] == 24 * 2**30 and reports["a10g"]["usable_bytes"] == 22 * 2**30
    assert main(["check", "nemotron-h-tiny", "--device", "a10x"]) == 2
    err = capsys.readouterr().err
    assert "unknown device 'a10x'; known devices: a10, " in err and "a10g" in err
    assert main(["check", "nemotron-h-tiny", "--device", "a10", "--context", "1k"]) == 0
    assert "on a10 (NVIDIA A10)" in " ".join(capsys.readouterr().out.split())
