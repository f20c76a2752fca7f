"""CPU trainings of tiny models run on one intra-op thread (they gain nothing from more, and lose a lot on shared
cores); larger ones get torch's default whatever ran before them; the recipe can say otherwise; the count used is
recorded."""

import torch

from archsearch.spec import load_spec, parse_spec
from archsearch.training import Recipe, TaskSpec, train
from archsearch.training import threads
from archsearch.training.threads import SMALL_MODEL_PARAMS, apply_cpu_threads, cpu_threads_for


def _wide():
    spec = parse_spec({"name": "wide", "vocab_size": 32000, "d_model": 512, "max_context": 256, "pattern": "*-*-",
                       "blocks": {"*": {"kind": "attention", "n_heads": 8, "n_kv_heads": 2},
                                  "-": {"kind": "mlp", "ffn_ratio": 4}}})
    from archsearch.spec import count_parameters
    assert count_parameters(spec).total >= SMALL_MODEL_PARAMS
    return spec


def test_tiny_models_take_one_thread_larger_ones_the_default_the_recipe_overrides():
    tiny = load_spec("nemotron-h-tiny")
    assert cpu_threads_for(tiny, None) == 1
    assert cpu_threads_for(_wide(), None) == threads._DEFAULT_THREADS
    assert cpu_threads_for(tiny, 3) == 3


def test_the_setting_follows_each_run_not_the_one_before(monkeypatch):
    monkeypatch.setattr(threads, "_DEFAULT_THREADS", 2)
    before = torch.get_num_threads()
    try:
        assert apply_cpu_threads(torch.device("cpu"), load_spec("nemotron-h-tiny"), None) == 1
        assert torch.get_num_threads() == 1
        assert apply_cpu_threads(torch.device("cpu"), _wide(), None) == 2  # not left at the tiny run's 1
        assert torch.get_num_threads() == 2
        assert apply_cpu_threads(torch.device("meta"), _wide(), None) is None
    finally:
        torch.set_num_threads(before)


def test_a_training_records_the_threads_it_used():
    before = torch.get_num_threads()
    try:
        result = train(load_spec("nemotron-h-tiny"), TaskSpec(name="mqar", options={"vocab": 16, "n_pairs": 2}),
                       Recipe(steps=2, batch_size=2, seq_len=16, eval_every=2, cpu_threads=2), device="cpu")
        assert result.extra["cpu_threads"] == 2 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
