"""Helpers for the interop tests: transformers models built on the meta device (no memory, no weights)."""

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def hf_config(config: dict):
    return transformers.AutoConfig.for_model(**config)


def hf_parameter_count(config: dict) -> int:
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(hf_config(config))
    return sum(p.numel() for p in model.parameters())


@pytest.fixture
def hf_count():
    return hf_parameter_count


@pytest.fixture
def hf_config_of():
    return hf_config
