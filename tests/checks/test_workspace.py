"""The prefill workspace terms of archsearch.checks.workspace, each computed by hand on CPU in a case where it is
the largest (so a wrong coefficient in it changes the estimate). The GPU tests (test_measure.py) compare the
sums with measured peaks; these pin each term. a = bytes of the activation dtype (bf16: 2, float8: 1).

Which term is the peak is a max, so some terms can never be it: for Mamba-2 the conv (3 C a) is always below
the scan, the eager gated norm below the eager scan, and the fused gated norm (held + 2 I a) below the layer's
end (the same plus d a). They record what is alive; no case can make them the peak. A 1.5x error in the conv or
the fused gated norm still fails here (it lifts them above the peak of a case below); one in the eager gated norm
cannot change any estimate. Every other term, multiplied by 1.5, fails at least one case (checked by mutation).
"""

import pytest

from archsearch.checks.workspace import LayerWorkspace, layer_workspace, lm_head_workspace
from archsearch.spec.blocks import AttentionBlock, Mamba2Block, MlpBlock


def mamba(n_heads, head_dim, d_state, chunk_size, n_groups=1):
    return Mamba2Block(n_heads=n_heads, head_dim=head_dim, d_state=d_state, n_groups=n_groups,
                       chunk_size=chunk_size)



# Mamba-2 cases: (block, d_model, kernels, expected bytes per token, the term that is the peak).
# Shapes: I = H P, C = I + 2 G N, E = 2 I + 2 G N + H, hpn = H P N, Q = chunk; held = 2 C a.
MAMBA_CASES = {
    # H=1 P=1 N=8 Q=16, d=16, bf16: I=1, C=17, E=19, held=68. Fused scan, second phase (y beside the passed
    # states and C.B^T): 8 H + 2 G N a + I a + a hpn / Q + G Q 4 = 8 + 32 + 2 + 1 + 64 -> 68 + 107 = 175.
    # Per token: carried 2 d a = 64, zxbcdt E a = 38: 64 + 38 + 175 = 277.
    "fused-scan-y-phase": (mamba(1, 1, 8, 16), 16, "fused", 64 + 38 + 175),
    # H=1 P=2 N=256 Q=16, d=16: I=2, C=514, E=517, held=2056, hpn=512. Fused scan, chunk-state phase:
    # 8 H + 2 G N a + (4 + a) hpn / Q = 8 + 1024 + 6 * 32 = 1224 -> 3280. 64 + 1034 + 3280 = 4378.
    "fused-scan-states-phase": (mamba(1, 2, 256, 16), 16, "fused", 64 + 1034 + 3280),
    # H=2 P=16 N=8 Q=16, d=64: I=32, C=48, E=82, held=192. The layer's end: y, gated norm output, out_proj
    # output: 192 + 2 I a + d a = 192 + 128 + 128 = 448 (the fused scan: 192 + 16 + 32 + 160 = 400).
    # carried 256 + E a 164 + 448 = 868 (RMSNorm's peak: 768).
    "fused-layer-end": (mamba(2, 16, 8, 16), 64, "fused", 256 + 164 + 448),
    # The eager (PyTorch, float32) scan, H=1 P=1 N=8 Q=16, d=16: held 68 + I a 2 + y etc. 5 I 4 = 20 + B, C
    # per head 2 H N 4 = 64 + decay and scores 2 H Q 4 = 128 + chunk states 3 hpn 4 / Q = 6 -> 288.
    # 64 + 38 + 288 = 390.
    "eager-scan": (mamba(1, 1, 8, 16), 16, "eager", 64 + 38 + 288),
    # A narrow mixer in a wide model: RMSNorm's peak, 2 * 64 * 2 + 2 * 64 * 4 = 768 (the mixer: 494).
    "norm-peak": (mamba(1, 1, 8, 16), 64, "fused", 768),
}


@pytest.mark.parametrize("case", MAMBA_CASES)
def test_mamba_workspace_by_hand(case):
    block, d_model, kernels, expected = MAMBA_CASES[case]
    assert layer_workspace(block, d_model, "bfloat16", kernels, False) == LayerWorkspace(expected, 0.0)


ATTENTION_CASES = {
    # d=64 bf16, Hq=4 Hkv=2 hd=16: q=64, kv=32. q, k, v (64 + 64) * 2 = 256; RoPE: rotated q and k plus three
    # q-sized temporaries (96 + 192) * 2 = 576 (above attending's 192 + 256 + 16 = 464). 256 + 256 + 576.
    "rope": (AttentionBlock(n_heads=4, n_kv_heads=2, head_dim=16), 64, "bfloat16", 256 + 256 + 576),
    # No RoPE, Hq=8 Hkv=2 hd=16: q=128, kv=32; q, k, v (128 + 64) * 2 = 384; attending: output and its copy
    # 2 q a = 512, log-sum-exp Hq 4 = 32. 256 + 384 + 544 = 1184.
    "no-rope": (AttentionBlock(n_heads=8, n_kv_heads=2, head_dim=16, rope_theta=None), 64, "bfloat16",
                256 + 384 + 544),
    # float8 activations (a=1), d=16, Hq=Hkv=8, hd=2: q=kv=16. RoPE (32 + 48) * 1 = 80 is below attending with
    # RoPE's q and k still alive: (q + kv) a 32 + 2 q a 32 + Hq 4 = 32 -> 96. carried 32 + q,k,v 48 + 96 = 176.
    "rope-attend-peak": (AttentionBlock(n_heads=8, n_kv_heads=8, head_dim=2), 16, "float8", 32 + 48 + 96),
    # One small head in a wide model: RMSNorm's peak 2 * 256 * 2 + 2 * 256 * 4 = 3072.
    "norm-peak": (AttentionBlock(n_heads=1, head_dim=16, rope_theta=None), 256, "bfloat16", 3072),
}


@pytest.mark.parametrize("case", ATTENTION_CASES)
def test_attention_workspace_by_hand(case):
    block, d_model, act, expected = ATTENTION_CASES[case]
    kv = block.dims(d_model).n_kv_heads * block.dims(d_model).head_dim
    a = {"bfloat16": 2, "float8": 1}[act]
    assert layer_workspace(block, d_model, act, "fused", False) == LayerWorkspace(expected, 0.0, False, 2 * kv * a)


def test_attention_pair_and_key_terms_by_hand():
    block = AttentionBlock(n_heads=4, n_kv_heads=2, head_dim=16)  # q=64, kv=32
    eager = layer_workspace(block, 64, "bfloat16", "eager", True)
    # materialised float32 scores and their softmax: 2 Hq 4 = 32 bytes a (query, key) pair; the eager kernels'
    # boolean mask; a ring cache's concatenated keys and values: 2 kv a = 128 bytes a key
    assert (eager.per_pair_scores, eager.masked, eager.per_key_copy) == (32, True, 128)
    assert eager.per_token == ATTENTION_CASES["rope"][3]


@pytest.mark.parametrize("block, expected", [
    # d=8 bf16, F=100: carried 2 * 8 * 2 = 32; relu2: up, relu, its square (3 F a = 600)
    (MlpBlock(ffn_dim=100, activation="relu2"), 32 + 600),
    # gated: up, gate, act(gate) (3 F a)
    (MlpBlock(ffn_dim=100, activation="gelu", gated=True), 32 + 600),
    # one-step activation: up and act(up) (2 F a = 400)
    (MlpBlock(ffn_dim=100, activation="gelu"), 32 + 400),
    # a narrow MLP: RMSNorm's peak 2 * 8 * 2 + 2 * 8 * 4 = 96 (the MLP: 32 + 2 * 4 * 2 = 48)
    (MlpBlock(ffn_dim=4, activation="silu"), 96),
], ids=["relu2", "gated", "plain", "norm-peak"])
def test_mlp_workspace_by_hand(block, expected):
    assert layer_workspace(block, 8, "bfloat16", "eager", False) == LayerWorkspace(expected, 0.0)


@pytest.mark.parametrize("vocab, softcap, expected", [
    (100, False, 2 * 16 * 2 + 100 * 2),  # hidden states and their norm 2 d a = 64, the logits V a = 200
    (100, True, 2 * 16 * 2 + 3 * 100 * 2),  # the soft-cap holds two more V-sized temporaries
    (10, False, 2 * 16 * 2 + 2 * 16 * 4),  # a tiny vocabulary: the norm's float32 temporaries (2 d 4 = 128)
], ids=["logits", "softcap", "norm-temporaries"])
def test_lm_head_workspace_by_hand(vocab, softcap, expected):
    assert lm_head_workspace(16, vocab, "bfloat16", softcap) == expected
