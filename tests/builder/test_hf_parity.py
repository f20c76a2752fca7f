"""Independent check: our model and transformers' model, loaded from our exported checkpoint, give the same
logits (float32, CPU, relative error <= 1e-4) for small random specs of each family."""

import json

import pytest
import torch

import archsearch
from archsearch.errors import UserError
from archsearch.hf.checkpoint import export_checkpoint, export_checkpoint_file, load_state_dict
from specs import spec

transformers = pytest.importorskip("transformers")

SEQ = 23  # above every window and chunk size below, and a multiple of none

FAMILY_SPECS = {
    "nemotron_h": lambda: spec("p-nemotron", "M-M*-M", {
        # transformers' NemotronH clamps dt at time_step_min (dt_min) whatever time_step_limit says, while the
        # spec's default is no clamp: dt_init_floor 0.02 starts every dt far above that clamp, keeping it inactive
        "M": {"kind": "mamba2", "n_heads": 8, "head_dim": 8, "d_state": 16, "n_groups": 2, "chunk_size": 8,
              "dt_init_floor": 0.02},
        "*": {"kind": "attention", "n_heads": 4, "n_kv_heads": 2, "head_dim": 16, "rope_theta": None},
        "-": {"kind": "mlp", "ffn_dim": 80, "activation": "relu2"}}, tie_embeddings=False),
    "mamba2": lambda: spec("p-mamba2", "MMM", {
        "M": {"kind": "mamba2", "n_heads": 8, "head_dim": 8, "d_state": 16, "n_groups": 4, "chunk_size": 8,
              "dt_limit": (0.002, 0.5)}}),
    "gemma2": lambda: spec("p-gemma2", "L-G-L-", {
        "L": {"kind": "attention", "n_heads": 4, "n_kv_heads": 2, "head_dim": 16, "window": 7, "logit_softcap": 4.0,
              "query_scale": 0.2},
        "G": {"kind": "attention", "n_heads": 4, "n_kv_heads": 2, "head_dim": 16, "logit_softcap": 4.0,
              "query_scale": 0.2},
        "-": {"kind": "mlp", "ffn_dim": 64, "activation": "gelu_tanh", "gated": True}},
        norm={"eps": 1e-6, "post_block_norm": True, "unit_offset": True}, embedding_multiplier="sqrt_d_model",
        final_logit_softcap=6.0),
    "qwen3": lambda: spec("p-qwen3", "*-*-", {
        "*": {"kind": "attention", "n_heads": 4, "n_kv_heads": 1, "head_dim": 16, "qk_norm": True,
              "rope_theta": 5000.0, "qkv_bias": True, "out_bias": True},
        "-": {"kind": "mlp", "ffn_dim": 72, "activation": "silu", "gated": True}},
        norm={"eps": 1e-6}, tie_embeddings=False),
}


def _randomised(model, seed: int):
    """Our init leaves norms at 1 and D at 1; perturb every parameter so each one's mapping is exercised."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.1 * (p.detach().std() if p.numel() > 1 else 1.0)
                   + 0.05 * torch.randn(p.shape, generator=gen))
    return model


def _relative_error(ours, theirs) -> float:
    return ((ours - theirs).norm() / theirs.norm()).item()


@pytest.mark.parametrize("family", sorted(FAMILY_SPECS))
def test_transformers_gives_our_logits(family, tmp_path):
    s = FAMILY_SPECS[family]()
    model = _randomised(archsearch.build(s, seed=2), seed=4).eval()
    out = export_checkpoint(s, model, tmp_path)
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == family
    hf = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32,
                                                           attn_implementation="eager").eval()
    assert sum(p.numel() for p in hf.parameters()) == sum(p.numel() for p in model.parameters())
    ids = torch.randint(0, s.vocab_size, (2, SEQ), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        theirs = hf(ids).logits
        ours = model(ids)
    assert _relative_error(ours, theirs) <= 1e-4


def test_a_wrong_state_dict_is_refused_with_the_names(tmp_path):
    s = FAMILY_SPECS["qwen3"]()
    state = archsearch.build(s).state_dict()
    state.pop("final_norm.weight")
    state["layers.0.mixer.q_proj.weight"] = torch.zeros(3, 3)
    with pytest.raises(UserError, match=r"missing: final_norm.weight; wrong shape: layers.0.mixer.q_proj.weight"):
        export_checkpoint(s, state, tmp_path)


def test_checkpoint_files_round_trip(tmp_path):
    s = FAMILY_SPECS["mamba2"]()
    model = archsearch.build(s, seed=1)
    torch.save({"model": model.state_dict()}, tmp_path / "ckpt.pt")
    out = export_checkpoint_file(s, tmp_path / "ckpt.pt", tmp_path / "hf")
    assert {p.name for p in out.iterdir()} == {"config.json", "model.safetensors"}
    (tmp_path / "bad.pt").write_text("not a checkpoint")
    with pytest.raises(UserError, match="not a safetensors or torch file"):
        load_state_dict(tmp_path / "bad.pt")
    with pytest.raises(UserError, match="no such file"):
        load_state_dict(tmp_path / "missing.pt")
