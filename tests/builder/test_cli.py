"""The commands this part owns: `archsearch kernels` and `archsearch export-hf --checkpoint`."""

import json

import torch

import archsearch
from archsearch.cli import main
from archsearch.kernels.registry import ops
from archsearch.spec import load_spec


def test_kernels_prints_every_op_and_its_choice(capsys):
    assert main(["kernels"]) == 0
    out = capsys.readouterr().out
    for op in ops():
        assert f"{op}:" in out
    assert "default call" in out and "*" in out


def test_kernels_json_is_the_registry_report(capsys):
    assert main(["kernels", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == set(ops())
    assert all(entry["chosen"] for entry in report.values())  # something serves every op on a CPU


def test_export_hf_with_checkpoint_writes_loadable_weights(tmp_path, capsys):
    spec = load_spec("qwen3-tiny")
    model = archsearch.build(spec, seed=7)
    torch.save(model.state_dict(), tmp_path / "ckpt.pt")
    assert main(["export-hf", "qwen3-tiny", "--checkpoint", str(tmp_path / "ckpt.pt"), "-o", str(tmp_path / "hf")]) == 0
    assert "model.safetensors" in capsys.readouterr().out
    from safetensors.torch import load_file

    weights = load_file(str(tmp_path / "hf" / "model.safetensors"))
    assert torch.equal(weights["model.layers.1.mlp.down_proj.weight"], model.layers[3].mixer.down_proj.weight)


def test_export_hf_with_a_bad_checkpoint_exits_2(tmp_path, capsys):
    (tmp_path / "x.pt").write_bytes(b"garbage")
    assert main(["export-hf", "qwen3-tiny", "--checkpoint", str(tmp_path / "x.pt"), "-o", str(tmp_path / "o")]) == 2
    assert "not a safetensors or torch file" in capsys.readouterr().err
