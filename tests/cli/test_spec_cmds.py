"""`archsearch validate | show | schema | import-hf | export-hf`, called through the real entry point."""

import json
import subprocess
import sys

import pytest

from archsearch.cli import main
from archsearch.hf import export_hf_config
from archsearch.spec import count_parameters, inference_state, load_spec, loads_spec, training_flops_per_token

BAD = "name: bad\nvocab_size: 64\nd_model: 32\nmax_context: 64\npattern: M*\nblocks:\n  M: {kind: mlp, ffn_dim: 8}\n"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_prints_ok_and_warnings(capsys, tmp_path):
    unused = tmp_path / "unused.yaml"
    unused.write_text(BAD.replace("pattern: M*", "pattern: M") + "  L: {kind: mlp, ffn_dim: 4}\n")
    code, out, err = run(capsys, "validate", "nemotron-h-tiny", str(unused))
    assert code == 0 and err == ""
    assert "OK nemotron-h-tiny" in out and f"OK {unused}" in out
    assert "warning: blocks.L: block is defined but never used" in out


def test_validate_exits_2_with_the_location_on_stderr(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    code, out, err = run(capsys, "validate", "qwen3-tiny", str(bad))
    assert code == 2
    assert "OK qwen3-tiny" in out
    assert f"{bad}:5:10: pattern: symbol '*' of layer 1 is not defined" in err
    assert "1 of 2 file(s) invalid" in err and "Traceback" not in err


def test_show_draws_the_strip_and_reports_the_figures(capsys):
    code, out, _ = run(capsys, "show", "nemotron-nano-9b-v2")
    spec = load_spec("nemotron-nano-9b-v2")
    assert code == 0
    assert spec.pattern_string in out  # the strip, one coloured symbol per layer
    assert "Mamba-2" in out and "attention" in out and "MLP" in out  # the legend
    assert f"{count_parameters(spec).total:,}" in out and "8.89B" in out
    assert "FLOPs/token at seq_len 131072" in out and "inference state at context 131072" in out


def test_show_json_has_the_exact_figures(capsys):
    code, out, _ = run(capsys, "show", "gemma2-2b", "--context", "4k", "--batch", "2", "--json")
    summary = json.loads(out)
    spec = load_spec("gemma2-2b")
    assert code == 0
    assert summary["parameters"]["total"] == count_parameters(spec).total == 2_614_341_888
    assert summary["layers_per_kind"] == {"attention": 26, "mlp": 26}
    assert summary["flops"]["seq_len"] == 4096
    assert summary["flops"]["training_per_token"] == training_flops_per_token(spec, 4096)
    assert summary["inference_state"] == inference_state(spec, 4096, 2).to_dict()
    assert summary["blocks"]["L"]["window"] == 4096


@pytest.mark.parametrize("context, message", [
    ("128q", "--context: '128q' is not a size; allowed: a positive integer, or a number with k"),
    ("0", "out of range"),
    ("1M", "exceeds the spec's max_context (2048)"),
])
def test_show_refuses_bad_contexts(capsys, context, message):
    code, _, err = run(capsys, "show", "nemotron-h-tiny", "--context", context)
    assert code == 2 and message in err and "Traceback" not in err


def test_show_of_a_missing_spec(capsys):
    code, _, err = run(capsys, "show", "no-such-model")
    assert code == 2 and "no such file or example" in err and "nemotron-h-tiny" in err


def test_schema_describes_the_spec(capsys, tmp_path):
    target = tmp_path / "spec.schema.json"
    code, out, _ = run(capsys, "schema", "-o", str(target))
    schema = json.loads(target.read_text())
    assert code == 0 and "wrote" in out
    assert set(schema["required"]) == {"name", "vocab_size", "d_model", "max_context", "pattern", "blocks"}
    assert {"Mamba2Block", "AttentionBlock", "MlpBlock"} <= set(schema["$defs"])
    code, out, _ = run(capsys, "schema")
    assert json.loads(out) == schema


def test_import_then_export_round_trip(capsys, tmp_path):
    code, out, _ = run(capsys, "export-hf", "gemma2-tiny", "-o", str(tmp_path / "hf"))
    assert code == 0 and "(gemma2)" in out
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["layer_types"][:2] == ["sliding_attention", "full_attention"]
    spec_file = tmp_path / "back.yaml"
    code, out, _ = run(capsys, "import-hf", str(tmp_path / "hf" / "config.json"), "-o", str(spec_file),
                       "--name", "gemma2-tiny")
    assert code == 0 and "wrote" in out
    back, original = loads_spec(spec_file.read_text()), load_spec("gemma2-tiny")
    assert back.name == "gemma2-tiny" and back.layers[0].block.window == 128
    # ffn_ratio comes back as the ffn_dim it resolves to: the same model, the same config
    assert back.blocks["-"].ffn_dim == original.blocks["-"].dims(original.d_model).ffn_dim == 512
    assert count_parameters(back) == count_parameters(original)
    assert export_hf_config(back) == config
    code, out, _ = run(capsys, "import-hf", str(tmp_path / "hf"), "--max-context", "512")
    assert code == 0 and loads_spec(out).max_context == 512


def test_export_lists_what_is_not_expressible(capsys, tmp_path):
    code, _, err = run(capsys, "export-hf", "gemma2-tiny", "-o", str(tmp_path), "--family", "llama")
    assert code == 2 and "not expressible" in err and "blocks.L.window" in err and "Traceback" not in err
    assert not (tmp_path / "config.json").exists()


def test_import_of_a_broken_config(capsys, tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"model_type": "llama",\n "hidden_size": }')
    code, _, err = run(capsys, "import-hf", str(path))
    assert code == 2 and f"{path}:2:17: not valid JSON" in err
    code, _, err = run(capsys, "import-hf", str(tmp_path / "nothing.json"))
    assert code == 2 and "no such file" in err


def test_the_installed_command(tmp_path):
    result = subprocess.run([sys.executable, "-m", "archsearch.cli", "show", "nemotron-h-188m", "--json"],
                            capture_output=True, text=True, check=True)
    assert json.loads(result.stdout)["parameters"]["total"] == 188_624_544
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    failed = subprocess.run([sys.executable, "-m", "archsearch.cli", "validate", str(bad)], capture_output=True,
                            text=True)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr and "bad.yaml:5:10" in failed.stderr
