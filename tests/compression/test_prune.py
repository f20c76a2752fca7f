"""A pruned child is a real model: pruning nothing gives the parent's logits exactly (every family and block
option), pruning only dead parts gives them to float rounding, any narrowing keeps shapes, parameter counts and
the GQA / Mamba group invariants, and the child exports to Hugging Face and loads in transformers."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import archsearch
from archsearch.cli import main
from archsearch.compression.importance import score_model
from archsearch.compression.prune import derive_child, save_child, slice_weights, slicing_plan
from archsearch.errors import UserError
from archsearch.spec import count_parameters, parse_spec
from specs import families, spec


def _ids(vocab: int, seed: int = 0, shape=(2, 19)):
    return torch.randint(0, vocab, shape, generator=torch.Generator().manual_seed(seed))


def _scored(s, seed=1):
    model = archsearch.build(s, seed=seed).eval()
    with torch.no_grad():  # norms start at 1 and D at 1: perturb every parameter so each slice is exercised
        gen = torch.Generator().manual_seed(seed)
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return model, score_model(model, [_ids(s.vocab_size, 7)])


@pytest.mark.parametrize("family", sorted(families()))
def test_pruning_nothing_gives_the_parents_logits_exactly(family):
    model, imp = _scored(families()[family])
    child = slice_weights(model, imp, derive_child(model.spec, imp, name="same"))
    ids = _ids(model.spec.vocab_size)
    with torch.no_grad():
        assert torch.equal(child(ids), model(ids))


def _hybrid():
    return spec("hyb", "M-*-M-", {
        "M": {"kind": "mamba2", "n_heads": 4, "head_dim": 8, "d_state": 8, "n_groups": 2, "chunk_size": 8},
        "*": {"kind": "attention", "n_heads": 4, "n_kv_heads": 2, "head_dim": 8, "rope_theta": 1e4},
        "-": {"kind": "mlp", "ffn_dim": 64, "activation": "relu2"}}, tie_embeddings=False)


def test_pruning_dead_neurons_a_dead_group_and_a_no_op_layer_keeps_the_logits():
    model = archsearch.build(_hybrid(), seed=3).eval()
    with torch.no_grad():
        model.layers[1].mixer.up_proj.weight[40:] = 0.0  # relu2(0) = 0: neurons 40.. add nothing
        model.layers[5].mixer.up_proj.weight[40:] = 0.0
        model.layers[2].mixer.v_proj.weight[8:] = 0.0  # KV group 1: its query heads read zeros
        model.layers[3].mixer.down_proj.weight.zero_()  # layer 3 adds nothing
    imp = score_model(model, [_ids(64, 3)])
    child_spec = derive_child(model.spec, imp, name="c", n_layers=5,
                              blocks={"-": {"ffn_dim": 40}, "*": {"n_heads": 2, "n_kv_heads": 1}})
    assert child_spec.pattern_string == "M-*M-"
    child = slice_weights(model, imp, child_spec)
    ids = _ids(64, 5)
    with torch.no_grad():
        torch.testing.assert_close(child(ids), model(ids), rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def hybrid_scored():
    return _scored(_hybrid(), seed=2)


@settings(max_examples=12, deadline=None)
@given(d_model=st.integers(4, 32), n_layers=st.integers(1, 6), mamba_heads=st.sampled_from([2, 4]),
       head_dim=st.integers(1, 8), kv=st.sampled_from([1, 2]), per_group=st.sampled_from([1, 2]),
       ffn=st.integers(1, 64))
def test_any_narrowing_keeps_shapes_counts_and_group_invariants(hybrid_scored, d_model, n_layers, mamba_heads,
                                                               head_dim, kv, per_group, ffn):
    model, imp = hybrid_scored
    child_spec = derive_child(model.spec, imp, name="c", d_model=d_model, n_layers=n_layers, blocks={
        "M": {"n_heads": mamba_heads, "head_dim": head_dim}, "*": {"n_heads": kv * per_group, "n_kv_heads": kv},
        "-": {"ffn_dim": ffn}})
    child = slice_weights(model, imp, child_spec)  # every tensor sliced to the child's own shape, or an error
    assert sum(p.numel() for p in child.parameters()) == count_parameters(child_spec).total
    plans, kept_dm = slicing_plan(model.spec, imp, child_spec)
    assert len(set(kept_dm.tolist())) == d_model
    for j, layer in enumerate(child_spec.layers):
        dims = layer.block.dims(d_model)
        if layer.kind == "attention":
            assert dims.n_heads % dims.n_kv_heads == 0
            q_heads = plans[f"layers.{j}.mixer.q_proj.weight"][1][0][1][::8] // 8
            kv_heads = plans[f"layers.{j}.mixer.k_proj.weight"][1][0][1][::8] // 8
            # each kept query head reads its own (kept) KV head: groups stay whole and equal
            assert (q_heads // 2).tolist() == kv_heads.repeat_interleave(per_group).tolist()
        if layer.kind == "mamba2":
            assert dims.n_heads % dims.n_groups == 0
            heads = plans[f"layers.{j}.mixer.dt_bias"][1][0][1]
            assert (heads // 2).tolist() == torch.arange(2).repeat_interleave(mamba_heads // 2).tolist()
    with torch.no_grad():
        assert child(_ids(64, shape=(1, 9))).shape == (1, 9, 64)


def test_a_child_that_is_no_pruning_of_the_parent_is_refused(hybrid_scored):
    model, imp = hybrid_scored
    base = derive_child(model.spec, imp, name="c").to_dict()
    wider = dict(base, d_model=48)
    with pytest.raises(UserError, match="d_model 48 is above the parent's 32"):
        slice_weights(model, imp, parse_spec(wider))
    with pytest.raises(UserError, match="is not the parent's 6 layers minus the least important"):
        slice_weights(model, imp, parse_spec(dict(base, pattern="MMM")))
    changed = dict(base, blocks=dict(base["blocks"], M=dict(base["blocks"]["M"], d_state=4)))
    with pytest.raises(UserError, match="changes d_state"):
        slice_weights(model, imp, parse_spec(changed))
    more_heads = dict(base, blocks=dict(base["blocks"], M=dict(base["blocks"]["M"], n_heads=8)))
    with pytest.raises(UserError, match="does not fit in the parent's 4 x 8"):
        slice_weights(model, imp, parse_spec(more_heads))
    with pytest.raises(UserError, match="not a width pruning can change; allowed: n_heads, head_dim"):
        derive_child(model.spec, imp, name="c", blocks={"M": {"d_state": 4}})
    with pytest.raises(UserError, match="n_layers 7 is not allowed for a parent of 6 layers; allowed: 1 .. 6"):
        derive_child(model.spec, imp, name="c", n_layers=7)


transformers = pytest.importorskip("transformers")

HF_PARENTS = {
    # transformers' NemotronH clamps dt at dt_min: dt_init_floor 0.02 keeps that clamp inactive (tests/builder)
    "nemotron_h": (spec("hf-nemotron", "M-M*-M", {
        "M": {"kind": "mamba2", "n_heads": 8, "head_dim": 8, "d_state": 16, "n_groups": 2, "chunk_size": 8,
              "dt_init_floor": 0.02},
        "*": {"kind": "attention", "n_heads": 4, "n_kv_heads": 2, "head_dim": 16, "rope_theta": None},
        "-": {"kind": "mlp", "ffn_dim": 80, "activation": "relu2"}}, tie_embeddings=False),
        dict(d_model=24, n_layers=5, blocks={"M": {"n_heads": 4, "head_dim": 6}, "*": {"n_heads": 2, "n_kv_heads": 1},
                                             "-": {"ffn_dim": 40}})),
    "qwen3": (spec("hf-qwen3", "*-*-", {
        "*": {"kind": "attention", "n_heads": 4, "n_kv_heads": 2, "head_dim": 16, "qk_norm": True, "rope_theta": 5e3},
        "-": {"kind": "mlp", "ffn_dim": 72, "activation": "silu", "gated": True}}, norm={"eps": 1e-6}),
        dict(d_model=20, blocks={"*": {"n_heads": 2, "n_kv_heads": 1}, "-": {"ffn_dim": 30}})),
}


@pytest.mark.parametrize("family", sorted(HF_PARENTS))
def test_a_pruned_child_exports_and_loads_in_transformers(family, tmp_path, capsys):
    parent_spec, narrowing = HF_PARENTS[family]
    model, imp = _scored(parent_spec, seed=4)
    child = slice_weights(model, imp, derive_child(parent_spec, imp, name="child", **narrowing)).eval()
    save_child(tmp_path / "child", child)
    assert main(["export-hf", str(tmp_path / "child"), "-o", str(tmp_path / "hf")]) == 0, capsys.readouterr().err
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32,
                                                           attn_implementation="eager").eval()
    assert sum(p.numel() for p in hf.parameters()) == sum(p.numel() for p in child.parameters())
    ids = _ids(parent_spec.vocab_size, 1, (2, 23))
    with torch.no_grad():
        theirs, ours = hf(ids).logits, child(ids)
    assert ((ours - theirs).norm() / theirs.norm()).item() <= 1e-4
