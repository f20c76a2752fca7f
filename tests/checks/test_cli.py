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
        (["--context", "1M"], "--context: 1048576 tokens is beyond the spec's max_context (2048)"),
        (["--batch", "0"], "0 is out of range; allowed: [1, 65536]"),
        (["--kv-dtype", "int4"], "--kv-dtype: unknown dtype 'int4'"),
        (["--attention-scores", "some"], "--attention-scores: 'some' is not allowed"),
    ]
    for args, message in cases:
        assert main(["check", "nemotron-h-tiny", *args]) == 2, args
        assert message in capsys.readouterr().err
