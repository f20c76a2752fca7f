"""The whole model on the fused backends against the same model on the reference backends, bf16 on CUDA:
logits, every parameter's gradient, and prefill + fused decode against one forward."""

import pytest
import torch
import torch.nn.functional as F

import archsearch
from archsearch.kernels import backends_used, force_backend, reset_backends_used
from archsearch.spec import parse_spec

pytestmark = pytest.mark.gpu

# the mixer as three ops on their torch backends (forced: an environment that forces the fused mixer, as
# trial_speed.sh's mixer_parity does, would otherwise meet a refusal from it here and raise)
REFERENCE = {"mamba_mixer": "composite", "ssd_scan": "torch_chunked", "causal_conv1d": "torch",
             "gated_rmsnorm": "torch", "attention": "naive", "ssm_state_update": "torch", "conv_state_update": "torch"}
FUSED_SSD = {"mamba_ssm"}


def _scan_ran_fused(used) -> bool:
    """mamba-ssm's scan ran: as its own op, or inside the fused Mamba mixer (which records no ssd_scan)."""
    return used.get("ssd_scan") in FUSED_SSD or used.get("mamba_mixer") == "fused"


def _spec():
    return parse_spec({
        "name": "gpu-parity", "vocab_size": 512, "d_model": 256, "max_context": 1024, "pattern": "M-*-MW-M-",
        "blocks": {
            "M": {"kind": "mamba2", "n_heads": 8, "head_dim": 64, "d_state": 64, "n_groups": 2, "chunk_size": 64},
            "*": {"kind": "attention", "n_heads": 4, "n_kv_heads": 2, "head_dim": 64, "rope_theta": None},
            "W": {"kind": "attention", "n_heads": 4, "n_kv_heads": 1, "head_dim": 64, "window": 96},
            "-": {"kind": "mlp", "ffn_dim": 768, "activation": "relu2"}},
        "tie_embeddings": False})


def _rel(a, b) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-12)).item()


def _loss_and_grads(model, ids, targets):
    model.zero_grad(set_to_none=True)
    logits = model(ids)
    F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten()).backward()
    return logits.detach(), {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def _forced(ops):
    import contextlib

    stack = contextlib.ExitStack()
    for op, name in ops.items():
        stack.enter_context(force_backend(op, name))
    return stack


def _model_and_batch():
    model = archsearch.build(_spec(), device="cuda", dtype=torch.bfloat16, seed=0)
    gen = torch.Generator(device="cuda").manual_seed(0)
    ids = torch.randint(0, 512, (2, 600), device="cuda", generator=gen)
    return model, ids, torch.randint(0, 512, (2, 600), device="cuda", generator=gen)


def test_fused_training_step_matches_reference_bf16():
    model, ids, targets = _model_and_batch()
    reset_backends_used()
    fused_logits, fused_grads = _loss_and_grads(model, ids, targets)
    used = backends_used()
    if not _scan_ran_fused(used):
        pytest.skip(f"no fused SSD backend here (ran {used})")
    with _forced(REFERENCE):
        ref_logits, ref_grads = _loss_and_grads(model, ids, targets)
    assert backends_used()["ssd_scan"] == "torch_chunked"
    print("fused backends:", used)
    assert _rel(fused_logits, ref_logits) < 2e-2
    worst = max((_rel(fused_grads[n], ref_grads[n]), n) for n in ref_grads)
    print("worst gradient relative error:", worst)
    assert worst[0] < 5e-2, worst


def test_prefill_then_fused_decode_matches_forward_bf16():
    model = archsearch.build(_spec(), device="cuda", dtype=torch.bfloat16, seed=1).eval()
    ids = torch.randint(0, 512, (2, 160), device="cuda", generator=torch.Generator(device="cuda").manual_seed(1))
    with torch.no_grad():
        full = model(ids)
    cache = model.allocate_cache(2, 160)
    reset_backends_used()
    parts = [model.prefill(ids[:, :100], cache, chunk_size=64, logits="all")]
    parts += [model.decode_step(ids[:, t:t + 1], cache) for t in range(100, 160)]
    print("decode backends:", backends_used())
    assert _rel(torch.cat(parts, 1), full) < 2e-2


def test_each_layer_compiles_to_one_graph_and_matches_eager_bf16():
    """A study's compiled step compiles layer by layer; fullgraph=True raises at any graph break (mamba-ssm's scan
    broke every Mamba layer in two until it became an opaque op: kernels/ssd_mamba_op.py)."""
    model, ids, targets = _model_and_batch()
    reset_backends_used()
    eager_logits, eager_grads = _loss_and_grads(model, ids, targets)
    if not _scan_ran_fused(backends_used()):
        pytest.skip(f"no fused SSD backend here (ran {backends_used()})")
    torch._dynamo.reset()
    layers = [torch.compile(layer, fullgraph=True, dynamic=False) for layer in model.layers]
    model.zero_grad(set_to_none=True)
    logits = model.forward_through(ids, layers)
    F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten()).backward()
    assert _rel(logits, eager_logits) < 1e-2
    worst = max((_rel(p.grad, eager_grads[n]), n) for n, p in model.named_parameters())
    print("worst gradient relative error, compiled vs eager:", worst)
    assert worst[0] < 3e-2, worst
