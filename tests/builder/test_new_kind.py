"""Adding a block kind needs no central change: a kind defined here (a learned per-channel gain, "gain") is
counted, costed, checked, built, served and refused by Hugging Face export through its own class and module
alone, plus one row in the builder's table (archsearch.builder.mixers.MIXERS) that the test adds. If a consumer
switched on the known kinds, this spec would fail there (a KeyError, a missing term) or its numbers would
disagree with the built model's."""

from typing import Annotated, ClassVar, Literal, Union

import pytest
import torch
from pydantic import Field
from torch import nn

import archsearch
from archsearch.builder import mixers
from archsearch.checks import MemoryModel
from archsearch.checks.settings import CheckSettings
from archsearch.hf import NotExpressibleError, export_hf_config
from archsearch.spec import (ModelSpec, count_parameters, forward_flops_per_token, inference_state, load_spec,
                             summarize)
from archsearch.spec.kinds import KINDS, BlockKind, LayerWorkspace


class GainBlock(BlockKind):
    kind: Literal["gain"] = "gain"
    label: ClassVar[str] = "gain"

    def dims(self, d_model):
        return d_model

    def parameters(self, d_model):
        return d_model

    def forward_flops(self, d_model, seq_len, decode):
        return float(d_model)

    def workspace(self, d_model, act_bytes, kernels, materialize_scores):
        return LayerWorkspace(d_model * act_bytes, 0.0)

    def linears(self, d_model):
        return []


class Gain(nn.Module):
    def __init__(self, block, d_model, norm_eps, device=None, dtype=None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(d_model, device=device, dtype=dtype))

    @staticmethod
    def kernel_calls(block, d_model, max_context, device, dtype):
        return []

    def init_weights(self, init):
        init.normal_(self.weight, init.std)

    def allocate_cache(self, batch, max_len, device, dtype):
        return None

    def forward(self, x_BTD, cache=None, start=0):
        return x_BTD * self.weight


class GainSpec(ModelSpec):  # the spec language with the new kind in its `blocks` union
    blocks: dict[str, Annotated[Union[tuple(KINDS.values()) + (GainBlock,)], Field(discriminator="kind")]]


@pytest.fixture
def spec(monkeypatch):
    monkeypatch.setitem(mixers.MIXERS, "gain", Gain)
    base = load_spec("nemotron-h-tiny").to_dict()
    base["blocks"]["G"] = {"kind": "gain"}
    return GainSpec.model_validate({**base, "pattern": "M-G*-GM-"})


def test_a_new_kind_is_counted_and_built_exactly(spec):
    model = archsearch.build(spec, seed=1)
    assert sum(p.numel() for p in model.parameters()) == count_parameters(spec).total
    assert count_parameters(spec).per_kind["gain"] == 2 * (spec.d_model + spec.d_model)  # its weight + pre-norm
    ids_BT = torch.randint(0, spec.vocab_size, (2, 9))
    full_BTV = model(ids_BT)
    cache = model.allocate_cache(2, 16)
    assert [state is None for state in cache.layers] == [False, True, True, False, True, True, False, True]
    last_B1V = model.prefill(ids_BT[:, :8], cache)
    torch.testing.assert_close(last_B1V, full_BTV[:, 7:8], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(model.decode_step(ids_BT[:, 8:], cache), full_BTV[:, 8:], atol=1e-4, rtol=1e-4)


def test_a_new_kind_is_costed_through_its_methods(spec):
    doc = spec.to_dict()
    del doc["blocks"]["G"]
    without = ModelSpec.model_validate({**doc, "pattern": "M-*-M-"})
    for seq_len in (1, 100):
        assert forward_flops_per_token(spec, seq_len) == forward_flops_per_token(without, seq_len) + 2 * spec.d_model
    assert inference_state(spec, 100).total == inference_state(without, 100).total
    memory = MemoryModel(spec, CheckSettings())
    row = memory.breakdown(64, 1).per_kind["gain"]
    assert row == {"layers": 2, "weights": 2 * 2 * spec.d_model * 2, "kv_cache": 0, "ssm_state": 0, "conv_state": 0}
    assert summarize(spec)["layers_per_kind"]["gain"] == 2


def test_hugging_face_export_refuses_a_kind_no_family_holds(spec):
    with pytest.raises(NotExpressibleError, match="no gain layers"):
        export_hf_config(spec, "nemotron_h")
    with pytest.raises(NotExpressibleError):
        export_hf_config(spec)


def test_an_unbound_kind_is_a_clear_build_error(spec, monkeypatch):
    monkeypatch.delitem(mixers.MIXERS, "gain")
    with pytest.raises(ValueError, match=r"no module for block kind 'gain'; allowed: mamba2, attention, mlp"):
        archsearch.build(spec)


def test_the_builder_binds_every_spec_kind():
    assert set(mixers.MIXERS) == set(KINDS)


@pytest.mark.parametrize("name", ["nemotron-h-tiny", "qwen3-tiny", "gemma2-tiny"])
def test_each_kind_lists_the_built_linears(name):
    spec = load_spec(name)
    model = archsearch.build(spec, device="meta")
    for layer, built in zip(spec.layers, model.layers):
        found = [(n, m.in_features, m.out_features) for n, m in built.mixer.named_children()
                 if isinstance(m, nn.Linear)]
        assert sorted(found) == sorted(layer.block.linears(spec.d_model))
