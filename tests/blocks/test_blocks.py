"""Each block against a direct formula written here, and gradients reaching every parameter."""

import math

import pytest
import torch
import torch.nn.functional as F

from archsearch.blocks import ACTIVATIONS, Attention, Mamba2Mixer, Mlp, RMSNorm, Rotary
from archsearch.blocks.init import Initializer
from archsearch.kernels import force_backend
from archsearch.spec import AttentionBlock, Mamba2Block, MlpBlock

GEN = torch.Generator().manual_seed(0)


def _init(module, seed=0):
    module.init_weights(Initializer.from_seed(seed, 0.2, 0.1, 1.0))
    return module


@pytest.mark.parametrize("unit_offset", [False, True])
def test_rmsnorm(unit_offset):
    norm = RMSNorm(6, eps=1e-3, unit_offset=unit_offset)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(6, generator=GEN))
    x = torch.randn(2, 3, 6, generator=GEN)
    scale = norm.weight + 1 if unit_offset else norm.weight
    expected = x / torch.sqrt((x**2).mean(-1, keepdim=True) + 1e-3) * scale
    torch.testing.assert_close(norm(x), expected)


def test_activations():
    x = torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0])
    torch.testing.assert_close(ACTIVATIONS["relu2"](x), torch.tensor([0.0, 0.0, 0.0, 0.25, 4.0]))
    torch.testing.assert_close(ACTIVATIONS["gelu_tanh"](x),
                               0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))))
    torch.testing.assert_close(ACTIVATIONS["silu"](x), x * torch.sigmoid(x))


@pytest.mark.parametrize("gated", [False, True])
def test_mlp(gated):
    mlp = _init(Mlp(MlpBlock(ffn_dim=10, activation="silu", gated=gated, bias=True), 4))
    x = torch.randn(2, 3, 4, generator=GEN)
    h = F.linear(x, mlp.up_proj.weight, mlp.up_proj.bias)
    h = F.silu(F.linear(x, mlp.gate_proj.weight, mlp.gate_proj.bias)) * h if gated else F.silu(h)
    torch.testing.assert_close(mlp(x), F.linear(h, mlp.down_proj.weight, mlp.down_proj.bias))


def test_rotary_scores_depend_only_on_relative_position():
    rot = Rotary(8, 100.0)
    q, k = torch.randn(1, 1, 1, 8, generator=GEN), torch.randn(1, 1, 1, 8, generator=GEN)

    def score(m, n):
        cq, sq = rot.cos_sin(m, 1, "cpu")
        ck, sk = rot.cos_sin(n, 1, "cpu")
        return (rot(q, cq, sq) * rot(k, ck, sk)).sum()

    torch.testing.assert_close(score(7, 3), score(14, 10))
    assert not torch.allclose(score(7, 3), score(7, 4))
    c, s = rot.cos_sin(5, 1, "cpu")
    torch.testing.assert_close(rot(q, c, s).norm(), q.norm())


def _attention_by_hand(att, x, window):
    b, t, _ = x.shape
    q = (x @ att.q_proj.weight.T).view(b, t, att.n_heads, -1).transpose(1, 2)
    k = (x @ att.k_proj.weight.T).view(b, t, att.n_kv_heads, -1).transpose(1, 2)
    v = (x @ att.v_proj.weight.T).view(b, t, att.n_kv_heads, -1).transpose(1, 2)
    if att.q_norm is not None:
        q, k = att.q_norm(q), att.k_norm(k)
    rep = att.n_heads // att.n_kv_heads
    k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    logits = q @ k.transpose(-1, -2) * (att.scale or q.shape[-1] ** -0.5)
    if att.softcap:
        logits = att.softcap * torch.tanh(logits / att.softcap)
    i, j = torch.arange(t)[:, None], torch.arange(t)[None, :]
    visible = (j <= i) & ((i - j < window) if window else True)
    out = logits.masked_fill(~visible, -math.inf).softmax(-1) @ v
    return out.transpose(1, 2).reshape(b, t, -1) @ att.o_proj.weight.T


@pytest.mark.parametrize("window,softcap,qk_norm", [(None, None, False), (3, 2.0, False), (None, None, True)],
                         ids=["global", "window3-softcap", "qk-norm"])
def test_attention_without_rope_against_a_hand_written_softmax(window, softcap, qk_norm):
    block = AttentionBlock(n_heads=4, n_kv_heads=2, head_dim=8, window=window, logit_softcap=softcap,
                           rope_theta=None, qk_norm=qk_norm, query_scale=0.4)
    att = _init(Attention(block, 16, 1e-6))
    if qk_norm:
        with torch.no_grad():
            att.q_norm.weight.uniform_(0.5, 1.5, generator=GEN)
    x = torch.randn(2, 9, 16, generator=GEN)
    torch.testing.assert_close(att(x), _attention_by_hand(att, x, window), rtol=1e-5, atol=1e-5)


def _mamba_by_hand(mixer, x):
    """A sequential Mamba-2 written out here: conv, recurrence, gated group norm."""
    b, t, _ = x.shape
    h, p, g, n, di = mixer.n_heads, mixer.head_dim, mixer.n_groups, mixer.d_state, mixer.d_inner
    z, xbc, dt = (x @ mixer.in_proj.weight.T).split([di, mixer.conv_dim, h], -1)
    k = mixer.conv1d.weight.shape[-1]
    padded = F.pad(xbc.transpose(1, 2), (k - 1, 0))
    conv = sum(mixer.conv1d.weight[:, 0, j, None] * padded[..., j:j + t] for j in range(k)) + mixer.conv1d.bias[:, None]
    xs, B, C = F.silu(conv).transpose(1, 2).split([di, g * n, g * n], -1)
    dt = F.softplus(dt + mixer.dt_bias).clamp(*mixer.dt_limit)
    A = -torch.exp(mixer.A_log)
    state = torch.zeros(b, h, p, n)
    ys = []
    for s in range(t):
        xh = xs[:, s].view(b, h, p)
        Bh = B[:, s].view(b, g, n).repeat_interleave(h // g, 1)
        Ch = C[:, s].view(b, g, n).repeat_interleave(h // g, 1)
        state = state * torch.exp(dt[:, s] * A)[..., None, None] + (dt[:, s, :, None] * xh)[..., None] * Bh[:, :, None]
        ys.append(torch.einsum("bhpn,bhn->bhp", state, Ch) + mixer.D[:, None] * xh)
    y = torch.stack(ys, 1).reshape(b, t, di) * F.silu(z)
    yg = y.view(b, t, g, di // g)
    y = (yg / torch.sqrt((yg**2).mean(-1, keepdim=True) + mixer.norm_eps)).reshape(b, t, di) * mixer.norm.weight
    return y @ mixer.out_proj.weight.T


@pytest.mark.parametrize("dt_limit", [None, (0.01, 0.05)])
def test_mamba2_mixer_against_a_hand_written_recurrence(dt_limit):
    block = Mamba2Block(n_heads=4, head_dim=4, d_state=6, n_groups=2, chunk_size=4, dt_limit=dt_limit)
    mixer = _init(Mamba2Mixer(block, 8, 1e-5))
    with torch.no_grad():
        mixer.norm.weight.uniform_(0.5, 1.5, generator=GEN)
        mixer.D.uniform_(-1, 1, generator=GEN)
    x = torch.randn(2, 11, 8, generator=GEN)
    torch.testing.assert_close(mixer(x), _mamba_by_hand(mixer, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("make", [
    lambda: Mamba2Mixer(Mamba2Block(n_heads=4, head_dim=4, d_state=6, n_groups=2, chunk_size=4), 8, 1e-5),
    lambda: Attention(AttentionBlock(n_heads=2, head_dim=4, qk_norm=True, qkv_bias=True, out_bias=True), 8, 1e-6),
    lambda: Mlp(MlpBlock(ffn_dim=12, gated=True, bias=True, activation="gelu"), 8),
], ids=["mamba2", "attention", "mlp"])
def test_every_parameter_gets_a_gradient(make):
    module = _init(make())
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=GEN))  # zero-initialised biases have no gradient only by luck
    with force_backend("attention", "naive"):  # the CPU SDPA path is fine too; naive keeps this test about the block
        module(torch.randn(2, 6, 8, generator=GEN)).square().sum().backward()
    for name, p in module.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
