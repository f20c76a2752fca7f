"""`export-hf RUN_FOLDER -o DIR`: a training run folder (spec.yaml + model.safetensors) becomes a Hugging Face
folder that transformers loads with the run's logits; the weights file gets the usual mode (0666 less the
umask), as config.json does."""

import os
import stat

import pytest
import torch
from safetensors.torch import load_model

import archsearch
from archsearch.cli import main
from archsearch.hf.checkpoint import run_folder
from archsearch.errors import UserError
from archsearch.spec import load_spec, parse_spec
from archsearch.training import Recipe, TaskSpec, train

transformers = pytest.importorskip("transformers")


def _qwen3(tied: bool):
    return parse_spec({"name": "run-qwen3", "vocab_size": 32, "d_model": 32, "max_context": 64, "pattern": "(*-)x2",
                       "tie_embeddings": tied, "norm": {"eps": 1e-6}, "init": {"scale_output_projections": False},
                       "blocks": {"*": {"kind": "attention", "n_heads": 2, "head_dim": 16, "qk_norm": True,
                                        "rope_theta": 1e4,
                                        "rope_scaling": {"type": "yarn", "factor": 2, "original_max_context": 32}},
                                  "-": {"kind": "mlp", "ffn_dim": 48, "activation": "silu", "gated": True}}})


@pytest.fixture(scope="module", params=[False, True], ids=["untied", "tied"])
def run(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    train(_qwen3(request.param), TaskSpec(name="mqar", options={"vocab": 32, "n_pairs": 2}),
          Recipe(steps=2, batch_size=2, seq_len=16, warmup=0), out_dir=out, progress=False, device="cpu")
    return out


def test_a_run_folder_exports_with_its_weights(run, tmp_path, capsys):
    old = os.umask(0o027)
    try:
        assert main(["export-hf", str(run), "-o", str(tmp_path / "hf")]) == 0, capsys.readouterr().err
    finally:
        os.umask(old)
    assert "model.safetensors" in capsys.readouterr().out
    for name in ("config.json", "model.safetensors"):
        assert stat.S_IMODE((tmp_path / "hf" / name).stat().st_mode) == 0o640, name
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32,
                                                           attn_implementation="eager").eval()
    spec_file, weights = run_folder(run)
    ours = archsearch.build(load_spec(spec_file)).eval()
    load_model(ours, str(weights))  # the run's weights, as training saved them
    ids = torch.randint(0, 32, (1, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        theirs, mine = hf(ids).logits, ours(ids)
    assert ((mine - theirs).norm() / theirs.norm()).item() <= 1e-5


def test_a_folder_without_weights_is_refused_by_name(tmp_path, capsys):
    (tmp_path / "spec.yaml").write_text("name: x\n")
    with pytest.raises(UserError, match="model.safetensors missing"):
        run_folder(tmp_path)
    assert main(["export-hf", str(tmp_path), "-o", str(tmp_path / "hf")]) == 2
    err = capsys.readouterr().err
    assert "model.safetensors missing" in err and "Traceback" not in err
