"""The full-size examples are the published models: the same spec as importing their public config.json, the
same parameter count as transformers builds from our exported config, and close to the published figure."""

import json
from pathlib import Path

import pytest

from archsearch.hf import export_hf_config, import_hf_config
from archsearch.spec import count_parameters, load_spec

CONFIGS = Path(__file__).parent / "configs"

# name -> parameter count as published (model cards), in parameters
PUBLISHED = {
    "nemotron-nano-9b-v2": 8.89e9,
    "nemotron-nano-12b-v2-base": 12.31e9,
    "gemma2-2b": 2.61e9,
    "gemma2-9b": 9.24e9,
    "qwen3-8b": 8.19e9,
    "nemotron-h-188m": 188.6e6,  # /work/shared/GPU-NOTES.md, measured with transformers' NemotronH
    "nemotron-h-1b": 930e6,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_example_count_matches_transformers_and_the_published_figure(name, hf_count):
    spec = load_spec(name)
    ours = count_parameters(spec).total
    assert ours == hf_count(export_hf_config(spec))
    assert ours == pytest.approx(PUBLISHED[name], rel=0.005)


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.json")), ids=lambda p: p.stem)
def test_example_is_the_import_of_the_public_config(path, hf_count):
    config = json.loads(path.read_text())
    imported = import_hf_config(config, source=str(path))
    example = load_spec(path.stem)
    assert imported.spec_hash() == example.spec_hash(), (imported.to_dict(), example.to_dict())
    assert count_parameters(imported).total == hf_count(config)
