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
from archsearch.spec import dump_spec, load_spec, parse_spec
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


def _nemotron(pattern: str):
    return parse_spec({"name": "noattn", "vocab_size": 64, "d_model": 24, "max_context": 256, "pattern": pattern,
                       "tie_embeddings": False,
                       "blocks": {"M": {"kind": "mamba2", "n_heads": 4, "head_dim": 8, "d_state": 16, "n_groups": 2,
                                        "chunk_size": 8, "dt_init_floor": 0.02},
                                  "*": {"kind": "attention", "n_heads": 2, "head_dim": 12, "rope_theta": None},
                                  "-": {"kind": "mlp", "ffn_dim": 40, "activation": "relu2"}}})


def test_an_attention_free_nemotron_h_export_says_how_transformers_runs_it(tmp_path, capsys):
    """A pruned hybrid can lose its last attention layer; transformers' NemotronH then runs only without a cache:
    the export says so, and the model does run that way with our logits."""
    from safetensors.torch import save_model

    spec = _nemotron("M-M-")
    ours = archsearch.build(spec, seed=0).eval()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "spec.yaml").write_text(dump_spec(spec))
    save_model(ours, str(tmp_path / "run" / "model.safetensors"))
    assert main(["export-hf", str(tmp_path / "run"), "-o", str(tmp_path / "hf")]) == 0
    err = capsys.readouterr().err
    assert "note:" in err and "use_cache=False" in err
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32).eval()
    ids = torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        theirs, mine = hf(ids, use_cache=False).logits, ours(ids)
    assert ((mine - theirs).norm() / theirs.norm()).item() <= 1e-5


def test_a_nemotron_h_export_with_attention_has_no_such_note(tmp_path, capsys):
    path = tmp_path / "spec.yaml"
    path.write_text(dump_spec(_nemotron("M-*-")))
    assert main(["export-hf", str(path), "-o", str(tmp_path / "hf")]) == 0
    assert "note:" not in capsys.readouterr().err
