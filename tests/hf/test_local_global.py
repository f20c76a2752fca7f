"""Local + global attention hybrids: any mix of sliding-window and global layers exports to Gemma2, Qwen3 and
Qwen2 (transformers 5 reads `layer_types`), with transformers' logits; families without windows name each
windowed block once, and the advice never contradicts itself."""

import pytest
import torch

import archsearch
from archsearch.hf import NotExpressibleError, export_hf_config
from archsearch.hf.checkpoint import export_checkpoint
from archsearch.spec import parse_spec

transformers = pytest.importorskip("transformers")

GEMMA = dict(norm={"eps": 1e-6, "post_block_norm": True, "unit_offset": True}, embedding_multiplier="sqrt_d_model")


def _spec(pattern: str, windows: dict, extra_blocks: dict | None = None, attention: dict | None = None,
          activation: str = "gelu_tanh", **extra):
    attention = {"kind": "attention", "n_heads": 4, "n_kv_heads": 2, "head_dim": 16, **(attention or {})}
    blocks = {symbol: {**attention, "window": window} for symbol, window in windows.items()}
    blocks["-"] = {"kind": "mlp", "ffn_dim": 48, "activation": activation, "gated": True}
    return parse_spec({"name": "lg", "vocab_size": 64, "d_model": 64, "max_context": 256, "pattern": pattern,
                       "blocks": {**blocks, **(extra_blocks or {})}, **extra})


def test_a_non_alternating_gemma2_hybrid_matches_transformers(tmp_path):
    spec = _spec("L-L-G-G-L-", {"L": 5, "G": None}, **GEMMA)
    model = archsearch.build(spec, seed=3).eval()
    out = export_checkpoint(spec, model, tmp_path)
    hf = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32,
                                                           attn_implementation="eager").eval()
    assert hf.config.layer_types == ["sliding_attention", "sliding_attention", "full_attention", "full_attention",
                                     "sliding_attention"]
    ids = torch.randint(0, 64, (1, 19), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, theirs = model(ids), hf(ids).logits
    assert ((ours - theirs).norm() / theirs.norm()).item() <= 1e-5


@pytest.mark.parametrize("family", ["qwen3", "qwen2"])
def test_qwen_families_hold_any_layer_types(family):
    attention = {"qk_norm": True} if family == "qwen3" else {"qkv_bias": True}
    spec = _spec("G-L-L-G-", {"L": 7, "G": None}, attention=attention, activation="silu")
    config = export_hf_config(spec, family)
    assert config["layer_types"] == ["full_attention", "sliding_attention", "sliding_attention", "full_attention"]
    assert config["sliding_window"] == 7 and config["use_sliding_window"] is True
    built = transformers.AutoConfig.for_model(**config)
    assert built.layer_types == config["layer_types"] and built.sliding_window == 7


def _window_issues(err: NotExpressibleError) -> dict[str, str]:
    return {".".join(map(str, i.path)): i.allowed for i in err.issues if i.path[-1:] == ("window",)}


def test_a_mamba_local_global_hybrid_gets_one_consistent_advice():
    """Before: `blocks.*.window allowed: 4096` beside `blocks.L.window allowed: None`."""
    mamba = {"M": {"kind": "mamba2", "n_heads": 4, "head_dim": 32, "d_state": 16}}
    spec = _spec("M-L-M-G-", {"L": 4, "G": None}, mamba, attention={"rope_theta": None}, tie_embeddings=False)
    with pytest.raises(NotExpressibleError) as info:
        export_hf_config(spec)
    assert info.value.family == "nemotron_h"
    assert _window_issues(info.value) == {"blocks.L.window": "null (global attention)"}
    assert "no Hugging Face family holds Mamba-2 layers beside windowed attention" in str(info.value)


@pytest.mark.parametrize("family", ["llama", "nemotron_h", "gemma2", "qwen3", "qwen2", "mamba2"])
def test_window_advice_names_only_windowed_blocks_and_never_disagrees(family):
    spec = _spec("A-B-C-A-", {"A": 4, "B": None, "C": 8})
    try:
        export_hf_config(spec, family)
    except NotExpressibleError as err:
        issues = _window_issues(err)
    else:
        issues = {}
    assert "blocks.B.window" not in issues  # the global block is never told to take a window
    if family in ("gemma2", "qwen3", "qwen2"):
        assert issues == {"blocks.C.window": "4, or null (global attention)"}  # one sliding_window: A's
    elif family != "mamba2":
        assert issues == {"blocks.A.window": "null (global attention)", "blocks.C.window": "null (global attention)"}
