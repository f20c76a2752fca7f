"""Importance scores find what was planted dead: d_model channels no norm lets through, MLP neurons whose input
rows are zero, a GQA group whose values are zero, Mamba-2 heads and head_dim channels the gated norm zeroes, a
layer that adds nothing to the residual stream; the scores round-trip through the run folder's file."""

import pytest
import torch

import archsearch
from archsearch.compression.importance import AXES, FILE, Importance, score_model
from archsearch.compression.prune import SLICERS, derive_child, slicing_plan
from archsearch.errors import UserError
from archsearch.spec.kinds import KINDS
from specs import spec

DEAD_CHANNELS = [3, 17]
DEAD_NEURONS = [5, 40]
DEAD_GROUP = 1  # KV head 1: query heads 2 and 3 of the 4 (2 per group) read only zeros
DEAD_HEAD, DEAD_P = 2, 6  # Mamba-2: head 2 of 4 (group 1 of 2), channel 6 of 8 in every head
DEAD_LAYER = 3  # the second MLP layer


def _parent():
    return spec("imp", "M-*-M-", {
        "M": {"kind": "mamba2", "n_heads": 4, "head_dim": 8, "d_state": 8, "n_groups": 2, "chunk_size": 8},
        "*": {"kind": "attention", "n_heads": 4, "n_kv_heads": 2, "head_dim": 8, "rope_theta": None},
        "-": {"kind": "mlp", "ffn_dim": 64, "activation": "relu2"}}, tie_embeddings=False)


@pytest.fixture(scope="module")
def planted():
    model = archsearch.build(_parent(), seed=1).eval()
    with torch.no_grad():
        for layer in model.layers:
            layer.norm.weight[DEAD_CHANNELS] = 0.0
        model.final_norm.weight[DEAD_CHANNELS] = 0.0
        for index in (1, 5):  # MLP layers other than the dead one: two dead neurons each
            model.layers[index].mixer.up_proj.weight[DEAD_NEURONS] = 0.0
        attention = model.layers[2].mixer
        attention.v_proj.weight[DEAD_GROUP * 8:(DEAD_GROUP + 1) * 8] = 0.0
        for index in (0, 4):
            norm = model.layers[index].mixer.norm.weight
            norm[DEAD_HEAD * 8:(DEAD_HEAD + 1) * 8] = 0.0
            norm[DEAD_P::8] = 0.0
        model.layers[DEAD_LAYER].mixer.down_proj.weight.zero_()
    ids = [torch.randint(0, 64, (3, 24), generator=torch.Generator().manual_seed(i)) for i in range(2)]
    return model, score_model(model, ids)


def test_every_kind_has_an_axis_reader_and_a_slicer():
    assert set(AXES) == set(KINDS) == set(SLICERS)


def test_dead_d_model_channels_score_zero_and_are_pruned_first(planted):
    model, imp = planted
    assert imp.d_model.shape == (32,)
    assert imp.d_model[DEAD_CHANNELS].eq(0).all()
    assert imp.d_model.gt(0).sum() == 32 - len(DEAD_CHANNELS)
    child = derive_child(model.spec, imp, name="c", d_model=30)
    _, kept = slicing_plan(model.spec, imp, child)
    assert not set(DEAD_CHANNELS) & set(kept.tolist())


def test_dead_mlp_neurons_score_zero(planted):
    _, imp = planted
    for index in (1, 5):
        scores = imp.per_layer[index]["neurons"]
        assert scores[DEAD_NEURONS].eq(0).all() and scores.gt(0).sum() == 64 - len(DEAD_NEURONS)


def test_a_dead_gqa_group_is_the_group_dropped(planted):
    model, imp = planted
    heads = imp.per_layer[2]["heads"]
    assert heads[2:4].eq(0).all() and heads[:2].gt(0).all()
    child = derive_child(model.spec, imp, name="c", blocks={"*": {"n_heads": 2, "n_kv_heads": 1}})
    plans, _ = slicing_plan(model.spec, imp, child)
    kv = plans["layers.2.mixer.k_proj.weight"][1][0][1]
    q = plans["layers.2.mixer.q_proj.weight"][1][0][1]
    assert kv.tolist() == list(range(8)) and q.tolist() == list(range(16))  # group 0 and both its query heads


def test_dead_mamba_heads_and_channels_score_zero(planted):
    model, imp = planted
    for index in (0, 4):
        heads, channels = imp.per_layer[index]["heads"], imp.per_layer[index]["head_dim"]
        assert heads[DEAD_HEAD] == 0 and heads.gt(0).sum() == 3
        assert channels[DEAD_P] == 0 and channels.gt(0).sum() == 7
    # each group keeps one head: group 1 (heads 2, 3) keeps the live head 3
    child = derive_child(model.spec, imp, name="c", blocks={"M": {"n_heads": 2, "head_dim": 7}})
    plans, _ = slicing_plan(model.spec, imp, child)
    heads_kept = plans["layers.0.mixer.dt_bias"][1][0][1].tolist()
    assert len(heads_kept) == 2 and DEAD_HEAD not in heads_kept and heads_kept[1] in (2, 3)
    x = plans["layers.0.mixer.norm.weight"][1][0][1]
    assert not (x % 8 == DEAD_P).any() and not (x // 8 == DEAD_HEAD).any()


def test_a_layer_that_adds_nothing_is_dropped_first(planted):
    model, imp = planted
    assert imp.layers[DEAD_LAYER] == imp.layers.min() and imp.layers[DEAD_LAYER].abs() < 1e-6
    child = derive_child(model.spec, imp, name="c", n_layers=5)
    assert child.pattern_string == "M-*M-"  # layer 3 (the second '-') is gone


def test_scores_round_trip_through_the_run_folder(planted, tmp_path):
    _, imp = planted
    imp.calibration = {"batches": 2}
    imp.save(tmp_path)
    back = Importance.load(tmp_path)
    assert (tmp_path / FILE).is_file() and back.calibration == {"batches": 2}
    assert back.tensors().keys() == imp.tensors().keys()
    assert all(torch.equal(back.tensors()[k], v) for k, v in imp.tensors().items())


def test_a_missing_or_foreign_importance_file_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="score the parent first"):
        Importance.load(tmp_path)
    (tmp_path / FILE).write_text("not safetensors")
    with pytest.raises(UserError, match="not a readable importance file"):
        Importance.load(tmp_path)


def test_no_calibration_batch_is_refused(planted):
    model, _ = planted
    with pytest.raises(UserError, match="no calibration batch"):
        score_model(model, [])
