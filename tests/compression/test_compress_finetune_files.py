"""The files the issue 19/20 GPU demonstration (bench/gpu/compress_finetune.sh) carries: the 100M compression study
screens a grid of 10-24 candidates of which some exceed its parameter bound and some pass (whichever layers the
parent's importance drops), distils the best child for at most 10% of the parent's tokens, and the prepared gettext
pair file is a small leak-free parallel corpus the seq2seq task reads."""

import itertools
import re
from collections import defaultdict
from pathlib import Path

import pytest
import torch

import archsearch
from archsearch.compression.file import load_compression_file
from archsearch.compression.importance import Importance
from archsearch.compression.parent import Parent
from archsearch.compression.prune import resolved_spec
from archsearch.compression.search import build_study
from archsearch.spec import load_spec, parse_spec
from archsearch.spec.accounting import count_parameters
from archsearch.studies.params import PointSource
from archsearch.training.tasks import TaskSpec, make_task
from archsearch.training.tasks.gettext_source import read_pairs

REPO = Path(archsearch.__file__).resolve().parent.parent
STUDY = REPO / "studies" / "compression" / "hybrid-100m.yaml"
PAIRS = REPO / "bench" / "data" / "gettext-pairs-4lang.jsonl"
SCRIPT = REPO / "bench" / "gpu" / "compress_finetune.sh"


def parent_spec():
    data = load_spec(str(REPO / "bench" / "specs" / "trial-d768.yaml")).to_dict()
    data["vocab_size"] = 258  # as the script makes it: the seq2seq finetuning needs 258 ids
    return parse_spec(data)


def script_default(name: str) -> int:
    match = re.search(rf"\${{{name}:-(\d+)}}", SCRIPT.read_text())
    assert match, f"{name} has no default in {SCRIPT}"
    return int(match.group(1))


def candidates(least_important: str) -> list[int]:
    """Every grid candidate's parameter count, the parent's `least_important` layer kind dropped first."""
    spec = parent_spec()
    layers = torch.tensor([0.0 if symbol == least_important else 1.0 + i / 100
                           for i, symbol in enumerate(spec.pattern_string)])
    importance = Importance(torch.ones(spec.d_model), layers, [{} for _ in spec.pattern_string])
    parent = Parent(Path("parent"), spec, {"seq_len": 2048, "batch_size": 16},
                    {"name": "text", "options": {"data_files": "text.jsonl"}}, model=None)
    study = build_study(load_compression_file(STUDY), parent, importance, storage="sqlite://")
    grid = study.space.grid()
    base = resolved_spec(spec).to_dict()
    counts = []
    for point in itertools.product(*grid.values()):
        sample = study.space.sample(PointSource(dict(zip(grid, point))))
        counts.append(count_parameters(sample.spec(base, "child")).total)
    return counts


@pytest.mark.parametrize("least_important", ["-", "M", "*"])
def test_the_100m_study_screens_a_grid_that_the_bound_splits(least_important):
    config = load_compression_file(STUDY)
    parent_params = count_parameters(parent_spec()).total
    bound = config.constraints.params.max
    assert 0.55 <= bound / parent_params <= 0.65  # about 40% compression
    counts = candidates(least_important)
    assert 10 <= len(counts) <= 24 and config.n_trials >= len(counts) and config.sampler.type == "grid"
    passing = [c for c in counts if c <= bound]
    assert 6 <= len(passing) < len(counts)  # some fail the bound, enough remain to rank


def test_the_final_distillation_is_at_most_a_tenth_of_the_parents_tokens():
    config = load_compression_file(STUDY)
    parent_tokens = script_default("PARENT_STEPS") * 16 * 2048  # the script's parent: 16 x 2048 a step
    final_tokens = config.final["steps"] * config.final["batch_size"] * 2048  # seq_len: the parent's
    assert final_tokens <= 0.10 * parent_tokens
    assert config.recipe["steps"] <= 20 and config.recipe["warmup"] < config.recipe["steps"]


def test_the_pair_file_is_small_leak_free_and_reads_as_a_seq2seq_task():
    assert PAIRS.stat().st_size < 3 * 2**20
    pairs = read_pairs(PAIRS)
    assert {p.lang for p in pairs} == {"de", "fr", "es", "pt_BR"}
    splits_of = defaultdict(set)
    for p in pairs:
        splits_of[p.source].add(p.split)
        assert max(len(p.source), len(p.target)) <= 32
    assert all(len(s) == 1 for s in splits_of.values())  # an English message is in one split only
    by_split = defaultdict(int)
    for p in pairs:
        by_split[p.split] += 1
    assert by_split["train"] >= 3000 and by_split["test"] >= 128 and by_split["validation"] >= 128
    task = make_task(TaskSpec(name="seq2seq", options={
        "source": "jsonl", "path": str(PAIRS), "direction": "into_english", "eval_split": "test",
        "transforms": "hint:start=0.5:end=0:schedule=linear", "generate_examples": 128}), 128, 0)
    assert task.pair_counts == dict(by_split) and len(task.val_examples) == by_split["test"]
    assert all(e.tgt_lang == "en" for e in task.val_examples)
    batch = task.train_batch(0, 4)
    assert batch.input_ids_BT.shape == (4, 128) and int(batch.input_ids_BT.max()) <= 257


def load_report():
    import importlib.util

    path = REPO / "bench" / "compress_finetune_report.py"
    spec = importlib.util.spec_from_file_location("compress_finetune_report", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_report_finds_where_training_from_scratch_matches_the_distilled_child(tmp_path):
    import json

    report = load_report()
    curve = [{"step": 10, "tokens": 1000, "loss": 3.0}, {"step": 10, "tokens": 1000, "val_loss": 3.0},
             {"step": 20, "tokens": 2000, "val_loss": 2.0}]
    assert report.crossing(curve, 2.5) == pytest.approx(1500.0)  # linear between the evaluations
    assert report.crossing(curve, 3.5) == 1000.0 and report.crossing(curve, 1.0) is None
    recipe = {"eval_batches": 4, "batch_size": 16, "seq_len": 2048}
    run = {"n_params": 100, "steps": 20, "tokens": 2000, "metrics": {"val_loss": 1.9}, "recipe": recipe}
    (tmp_path / "parent-result.json").write_text(json.dumps(run))
    (tmp_path / "best-child-result.json").write_text(json.dumps({**run, "tokens": 100}))
    (tmp_path / "compression.json").write_text(json.dumps({
        "counts": {"completed": 3, "infeasible": 2}, "kendall_tau": 0.5,
        "ranked": [{"number": n, "val_loss": 2.5, "zero_shot_loss": 3.0} for n in range(3)],
        "final": {"n_params": 60, "tokens": 100, "steps": 1, "status": "completed",
                  "metrics": {"val_loss": 2.5, "zero_shot_loss": 3.2}}}))
    (tmp_path / "5-scratch-b.out").write_text(json.dumps({**run, "curve": curve, "status": "stopped"}))
    (tmp_path / "3-ablate.out").write_text("  task.transforms=[] seed 0: chrf_pp=10 (1.0 s)\n"
                                          "  task.transforms=[] seed 1: chrf_pp=12 (1.0 s)\n"
                                          "  task.transforms=hint seed 0: chrf_pp=11 (1.0 s)\n"
                                          "  task.transforms=hint seed 1: chrf_pp=14 (1.0 s)\n")
    comp, abl = report.compression_report(tmp_path), report.ablation_report(tmp_path)
    assert comp["search"]["screened"] == 5 and comp["search"]["over_the_bound"] == 2
    assert comp["saving"]["scratch_tokens_to_match"] == pytest.approx(1500.0)
    assert comp["saving"]["x_fewer_tokens"] == pytest.approx(15.0)
    assert [r["recipe"] for r in abl["partial"]] == ["baseline (no transform)", "hint"]  # the killed ablation's runs
    assert abl["partial"][1]["diff"]["mean"] == pytest.approx(1.5)
    text = report.markdown(comp, abl)
    assert "15x the distillation's" in text and "| hint | 2 |" in text
