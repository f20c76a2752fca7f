"""A study's recall objective scores the trained model in memory: the same value as scoring the saved run, without
writing a checkpoint only to read it back (that round trip was ~2.5 s of a ~7 s GPU trial in the hybrid study)."""

import json

import pytest

from archsearch.spec import parse_spec
from archsearch.studies.evaluate import TrainEvaluator
from archsearch.training import checkpoint
from archsearch.training.recall import recall_of_run

from studies_helpers import BASE_SPEC

TASK = {"name": "mqar", "options": {"vocab": 16, "n_pairs": 2}}
RECIPE = {"steps": 30, "batch_size": 8, "seq_len": 16, "eval_every": 30, "warmup": 3, "lr": 3e-3}


def test_in_memory_recall_equals_the_saved_runs_and_writes_no_checkpoint(tmp_path, monkeypatch):
    spec = parse_spec({**BASE_SPEC, "name": "r", "pattern": "*-"})
    saved = TrainEvaluator(TASK, RECIPE, seed=0, device="cpu")  # no recall: train and keep the run folder
    saved(spec, lambda step, metrics: None, out_dir=tmp_path / "run")
    evaluator = TrainEvaluator(TASK, RECIPE, seed=0, device="cpu", recall=True)
    expected = recall_of_run(tmp_path / "run", evaluator.probe(), "cpu")

    def refuse(*args, **kwargs):
        raise AssertionError("a checkpoint was written to score recall")

    monkeypatch.setattr(checkpoint, "save_checkpoint", refuse)
    result = evaluator(spec, lambda step, metrics: None)
    assert result["metrics"]["recall"] == pytest.approx(expected, abs=1e-12)
    saved_metrics = json.loads((tmp_path / "run" / "result.json").read_text())["metrics"]
    assert result["metrics"]["val_loss"] == pytest.approx(saved_metrics["val_loss"], rel=1e-6)


def test_a_run_trained_in_fp8_is_scored_as_its_float32_weights(tmp_path):
    """The trained model holds fp8 layers (torchao, emulated on CPU); recall scores a float32 copy of its weights,
    as the saved run rebuilt would be, not the fp8 forward."""
    pytest.importorskip("torchao")
    task = {"name": "mqar", "options": {"vocab": 64, "n_pairs": 4}}
    recipe = {"steps": 60, "batch_size": 16, "seq_len": 32, "eval_every": 60, "warmup": 3, "lr": 3e-3,
              "precision": "fp8", "fp8_emulate": True, "fp8_min_dim": 16}
    spec = parse_spec({**BASE_SPEC, "name": "r", "pattern": "*-*-"})
    evaluator = TrainEvaluator(task, recipe, seed=0, device="cpu", recall=True)
    result = evaluator(spec, lambda step, metrics: None, out_dir=tmp_path / "run")
    assert result["precision"] == "fp8" and result["fp8_layers"]
    assert result["metrics"]["recall"] == recall_of_run(tmp_path / "run", evaluator.probe(), "cpu")
