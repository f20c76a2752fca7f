"""Accounting checked against counts worked out by hand (the builder's test compares it with real modules)."""

import pytest

from archsearch.spec import (count_parameters, forward_flops_per_token, inference_state, load_spec, parse_spec,
                             training_flops_per_token, weight_bytes)

TINY = {
    "name": "hand", "vocab_size": 10, "d_model": 8, "max_context": 128, "pattern": "M*-", "tie_embeddings": False,
    "blocks": {"M": {"kind": "mamba2", "n_heads": 2, "head_dim": 4, "d_state": 3, "n_groups": 1, "conv_kernel": 4},
               "*": {"kind": "attention", "n_heads": 2, "n_kv_heads": 1, "head_dim": 4, "qkv_bias": True},
               "-": {"kind": "mlp", "ffn_dim": 5, "gated": True, "bias": True}},
}

# Mamba-2: d_inner = 2 * 4 = 8; in_proj emits z (8), x (8), B (3), C (3) and one dt per head (2) = 24 outputs;
# the depthwise conv runs over x, B, C = 14 channels with 4 taps and a bias; dt_bias, A_log, D per head; the
# gated norm has d_inner weights; out_proj maps 8 -> 8.
MAMBA = 8 * 24 + (14 * 4 + 14) + 3 * 2 + 8 + 8 * 8
# attention: q 8 -> 8, k and v 8 -> 4 (one kv head of 4), o 8 -> 8, biases on q, k, v.
ATTENTION = 8 * 8 + 2 * 8 * 4 + 8 * 8 + (8 + 4 + 4)
# gated MLP with biases: gate and up 8 -> 5, down 5 -> 8.
MLP = 2 * 8 * 5 + 5 * 8 + (5 + 5 + 8)
NORM = 8


def test_parameters_by_hand():
    count = count_parameters(parse_spec(TINY))
    assert count.per_layer == (MAMBA + NORM, ATTENTION + NORM, MLP + NORM)
    assert count.per_kind == {"mamba2": MAMBA + NORM, "attention": ATTENTION + NORM, "mlp": MLP + NORM}
    assert (count.embedding, count.lm_head, count.final_norm) == (80, 80, 8)
    assert count.total == 80 + 80 + 8 + MAMBA + ATTENTION + MLP + 3 * NORM == 878
    assert count.non_embedding == count.total - 160


def test_tying_post_norms_qk_norm_and_flags():
    tied = parse_spec({**TINY, "tie_embeddings": True})
    assert count_parameters(tied).total == 878 - 80
    post = parse_spec({**TINY, "norm": {"post_block_norm": True}})
    assert count_parameters(post).total == 878 + 3 * NORM
    blocks = {**TINY["blocks"], "*": {**TINY["blocks"]["*"], "qk_norm": True, "out_bias": True},
              "M": {**TINY["blocks"]["M"], "bias": True, "conv_bias": False, "gated_norm": False}}
    flags = parse_spec({**TINY, "blocks": blocks})
    # qk-norm: one head_dim scale for q and one for k; out bias: 8; Mamba biases on in_proj (24) and
    # out_proj (8), no conv bias (-14), no gated norm (-8).
    assert count_parameters(flags).total == 878 + 2 * 4 + 8 + 24 + 8 - 14 - 8


def test_weight_bytes_follow_the_dtype():
    spec = parse_spec(TINY)
    assert weight_bytes(spec) == 878 * 4
    assert weight_bytes(spec, "bfloat16") == 878 * 2
    with pytest.raises(ValueError, match="unknown dtype"):
        weight_bytes(spec, "int3")


def test_inference_state_by_hand():
    state = inference_state(parse_spec(TINY), context=100, batch=3)
    assert state.kv_cache == 2 * 1 * 4 * 100 * 3 * 2  # k and v, 1 kv head of 4, bf16
    assert state.ssm_state == 2 * 4 * 3 * 3 * 4  # heads x head_dim x d_state, fp32
    assert state.conv_state == 14 * 3 * 3 * 2  # conv channels x (kernel - 1), bf16
    assert state.per_kind() == {"mamba2": 288 + 252, "attention": 4800}
    assert state.to_dict()["total"] == 4800 + 288 + 252


def test_a_window_caps_the_kv_cache():
    blocks = {**TINY["blocks"], "*": {**TINY["blocks"]["*"], "window": 16}}
    spec = parse_spec({**TINY, "blocks": blocks})
    assert inference_state(spec, 100).kv_cache == 2 * 4 * 16 * 2
    assert inference_state(spec, 10).kv_cache == 2 * 4 * 10 * 2


def test_training_flops_are_about_six_per_weight():
    """At a short sequence, training FLOPs/token ~ 6 x the weights a token passes through (the 6N rule)."""
    for name in ("qwen3-8b", "nemotron-nano-9b-v2", "gemma2-2b"):
        spec = load_spec(name)
        count = count_parameters(spec)
        matmul_weights = count.non_embedding + spec.vocab_size * spec.d_model  # the LM head multiplies, lookup does not
        ratio = training_flops_per_token(spec, 1) / (6 * matmul_weights)
        assert 0.99 < ratio < 1.05, (name, ratio)


def test_attention_flops_grow_with_the_sequence_and_windows_cap_them():
    qwen = load_spec("qwen3-8b")
    short, long = training_flops_per_token(qwen, 1024), training_flops_per_token(qwen, 32768)
    attention = qwen.blocks["*"].dims(qwen.d_model)
    extra = 3 * 36 * 4 * attention.n_heads * attention.head_dim * ((32768 + 1) / 2 - (1024 + 1) / 2)
    assert long - short == pytest.approx(extra)
    gemma = load_spec("gemma2-2b")
    per_token = [forward_flops_per_token(gemma, n, decode=True) for n in (4096, 8192)]
    local_layers, global_layers = 13, 13
    a = gemma.blocks["*"].dims(gemma.d_model)
    assert per_token[1] - per_token[0] == pytest.approx(global_layers * 4 * a.n_heads * a.head_dim * 4096)
    assert local_layers  # the 13 windowed layers add nothing beyond their 4096-token window


def test_mamba_flops_do_not_grow_past_a_chunk():
    spec = load_spec("mamba2-tiny")
    assert training_flops_per_token(spec, 4096) == training_flops_per_token(spec, 1024)
    assert training_flops_per_token(spec, 16) < training_flops_per_token(spec, 64)
