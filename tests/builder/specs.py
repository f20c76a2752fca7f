"""Small specs covering every block option, shared by the builder tests (imported as a plain module)."""

from archsearch.spec import ModelSpec, parse_spec

MAMBA = {"kind": "mamba2", "n_heads": 4, "head_dim": 8, "d_state": 8, "n_groups": 2, "conv_kernel": 4,
         "chunk_size": 8}
GLOBAL_ATTN = {"kind": "attention", "n_heads": 4, "n_kv_heads": 2, "head_dim": 8, "rope_theta": None}
MLP = {"kind": "mlp", "ffn_ratio": 2, "activation": "relu2"}


def spec(name: str, pattern: str, blocks: dict, **extra) -> ModelSpec:
    data = {"name": name, "vocab_size": 64, "d_model": 32, "max_context": 128, "pattern": pattern,
            "blocks": blocks, **extra}
    return parse_spec(data)


def families() -> dict[str, ModelSpec]:
    """One spec per family the inference path must serve; windows are smaller than the test sequences."""
    return {
        "nemotron_h": spec("t-nemotron", "M-*-M-", {"M": MAMBA, "*": GLOBAL_ATTN, "-": MLP}, tie_embeddings=False),
        "mamba2": spec("t-mamba2", "MMM", {"M": dict(MAMBA, n_groups=1, chunk_size=5)}),
        "mamba2_ungated": spec("t-mamba2-nonorm", "MM", {"M": dict(MAMBA, gated_norm=False,
                                                                    dt_limit=(0.001, 1.0))}),
        "gemma2": spec(
            "t-gemma2", "L-G-L-", {
                "L": {"kind": "attention", "n_heads": 4, "n_kv_heads": 2, "head_dim": 8, "window": 6,
                      "logit_softcap": 5.0, "query_scale": 0.3},
                "G": {"kind": "attention", "n_heads": 4, "n_kv_heads": 2, "head_dim": 8, "logit_softcap": 5.0},
                "-": {"kind": "mlp", "ffn_dim": 48, "activation": "gelu_tanh", "gated": True}},
            norm={"eps": 1e-6, "post_block_norm": True, "unit_offset": True}, embedding_multiplier="sqrt_d_model",
            final_logit_softcap=3.0),
        "qwen3": spec(
            "t-qwen3", "A-A-", {
                "A": {"kind": "attention", "n_heads": 4, "n_kv_heads": 1, "head_dim": 8, "qk_norm": True,
                      "rope_theta": 1000.0, "qkv_bias": True, "out_bias": True},
                "-": {"kind": "mlp", "ffn_dim": 40, "activation": "silu", "gated": True, "bias": True}},
            tie_embeddings=False),
        "windowed_mqa": spec(
            "t-window", "W-MW", {"W": {"kind": "attention", "n_heads": 2, "n_kv_heads": 1, "head_dim": 16,
                                       "window": 3}, "M": MAMBA, "-": dict(MLP, activation="gelu")}),
    }
