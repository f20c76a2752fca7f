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
