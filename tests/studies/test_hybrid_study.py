"""The shipped GPU study of issue 16 (studies/hybrid-a10g.yaml) and its report's hypervolume
(bench/hybrid_study_report.py): the file loads, searches >= 24 distinct candidates including pure Mamba-2 and pure
attention, names a Nemotron-Nano-9B-v2-wide target judged at 128k on an A10G, and halves; the exact 3-D hypervolume
agrees with hand-computed volumes and with a brute-force count."""

import importlib.util
import itertools
import math
import random
from importlib import resources
from pathlib import Path

import pytest

from archsearch.spec import load_spec
from archsearch.studies import load_study
from archsearch.studies.dedup import canonical_hash
from archsearch.studies.params import PointSource

ROOT = Path(__file__).resolve().parents[2]


def _report_module():
    spec = importlib.util.spec_from_file_location("hybrid_study_report", ROOT / "bench" / "hybrid_study_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def study():
    return load_study(str(resources.files("archsearch.study_files") / "hybrid-a10g.yaml"))


def _distinct(study):
    grid = study.space.grid()
    out = {}
    for combo in itertools.product(*grid.values()):
        sample = study.space.sample(PointSource(dict(zip(grid, combo))))
        proxy = sample.spec(study.base.to_dict(), "p")
        out.setdefault(canonical_hash(proxy), proxy)
    return list(out.values())


def test_the_grid_has_at_least_24_distinct_candidates_with_both_pure_kinds(study):
    assert study.file.sampler.type == "grid"  # deterministic: the same candidates again without halving
    proxies = _distinct(study)
    assert len(proxies) >= 24
    mixers = [[layer.symbol for layer in p.layers if layer.symbol != "-"] for p in proxies]
    assert any(set(m) == {"M"} for m in mixers), "no pure Mamba-2 candidate"
    assert any("M" not in m for m in mixers), "no pure attention candidate"
    assert any("M" in m and ({"*", "L"} & set(m)) for m in mixers), "no hybrid"
    points = math.prod(len(values) for values in study.space.grid().values())
    assert study.file.n_trials >= points  # every grid point is tried
    fields = {name.split(".", 1)[1] for name in study.space.names()}
    assert {"n_layers", "attention_ratio", "placement", "local_global", "mlp"} <= fields


def test_proxy_is_100m_class_and_the_target_has_nemotron_nano_widths(study):
    base = study.base
    assert base.d_model == 768 and base.vocab_size == 257
    assert 80e6 < _params(base, "M-" * 12) < 130e6  # 12 Mamba-2 + 12 MLP layers
    builtin = load_spec("nemotron-nano-9b-v2")
    target = study.target
    assert target is not None and target.d_model == builtin.d_model and target.vocab_size == builtin.vocab_size
    for symbol in ("M", "*", "-"):
        assert target.blocks[symbol] == builtin.blocks[symbol], symbol
    assert target.blocks["L"].window == 1024


def _params(spec, pattern):
    from archsearch.spec import count_parameters, parse_spec

    return count_parameters(parse_spec({**spec.to_dict(), "pattern": pattern})).total


def test_objectives_budget_and_halving(study):
    f = study.file
    assert [o.metric for o in f.objectives] == ["val_loss", "recall", "decode_tokens_per_s"]
    assert [o.direction for o in f.objectives] == ["minimize", "maximize", "maximize"]
    budget = f.constraints.budget[0]
    assert (budget.device, str(budget.context), budget.batch) == ("a10g", "128k", 1)
    assert f.recipe.get("flops") and f.task["name"] == "text"
    assert f.halving is not None and f.halving.rungs[-1] == 1.0 and len(f.halving.rungs) >= 3
    assert abs(f.halving.keep - 1 / 3) < 1e-9


# ------------------------------------------------------------------------------------------------ hypervolume
def test_hypervolume_of_boxes_by_hand():
    hv = _report_module().hypervolume
    assert hv([(0.0, 0.0, 0.0)], (1.0, 1.0, 1.0)) == pytest.approx(1.0)
    # two boxes 0.5 x 1 x 1 and 1 x 0.5 x 1 overlapping in 0.5 x 0.5 x 1: 0.75
    assert hv([(0.5, 0.0, 0.0), (0.0, 0.5, 0.0)], (1.0, 1.0, 1.0)) == pytest.approx(0.75)
    # a dominated point and one outside the reference add nothing
    assert hv([(0.0, 0.0, 0.0), (0.5, 0.5, 0.5), (2.0, 0.0, 0.0)], (1.0, 1.0, 1.0)) == pytest.approx(1.0)
    # three staircase points in 3-D: inclusion-exclusion by hand
    points = [(0.0, 0.5, 0.5), (0.5, 0.0, 0.5), (0.5, 0.5, 0.0)]
    # each box is 1 x 0.5 x 0.5 = 0.25; pairwise overlaps 0.5 x 0.5 x 0.5 = 0.125; triple 0.125
    assert hv(points, (1.0, 1.0, 1.0)) == pytest.approx(3 * 0.25 - 3 * 0.125 + 0.125)
    assert hv([], (1.0, 1.0, 1.0)) == 0.0


def test_hypervolume_matches_a_brute_force_count():
    hv = _report_module().hypervolume
    rng = random.Random(3)
    for _ in range(5):
        points = [tuple(rng.randrange(0, 8) / 8 for _ in range(3)) for _ in range(rng.randrange(1, 7))]
        # count the cells of a 1/8 grid (each cell whole: coordinates on the grid) dominated by some point
        cells = sum(1 for c in itertools.product(range(8), repeat=3)
                    if any(all(p[k] <= c[k] / 8 for k in range(3)) for p in points))
        assert hv(points, (1.0, 1.0, 1.0)) == pytest.approx(cells / 512)


def test_scaling_and_front():
    report = _report_module()
    scale = report.Scale(["minimize", "maximize", "maximize"], [[2.0, 0.1, 100.0], [3.0, 0.3, 50.0]])
    assert scale([2.0, 0.3, 100.0]) == pytest.approx((0.0, 0.0, 0.0))
    assert scale([3.0, 0.1, 50.0]) == pytest.approx((1.0, 1.0, 1.0))
    constant = report.Scale(["maximize"], [[0.0], [0.0]])
    assert constant([0.0]) == (0.0,)  # a constant objective: no division by zero
    assert report.front_of({"a": [1, 1], "b": [2, 2], "c": [0, 3]}) == ["a", "c"]


def test_derive_writes_a_warmup_study_of_the_candidates_with_every_block_kind(tmp_path):
    """bench/gpu/hybrid_study.sh runs it first, so that neither timed study pays the cold machine's compile and
    autotune (2026-12-06: ~110 s in the first timed phase's first trial)."""
    report = _report_module()
    source = ROOT / "studies" / "hybrid-a10g.yaml"
    halving_path, full_path, warmup_path = report.derive(source, tmp_path)
    warmup, full = load_study(str(warmup_path)), load_study(str(full_path))
    assert warmup.name == "hybrid-a10g-warmup" and warmup.file.n_trials == 2 and warmup.file.halving is None
    assert warmup.file.storage == f"sqlite:///{(tmp_path / 'warmup.db').resolve()}"
    patterns = warmup.space.grid()["pattern.choice"]
    assert len(patterns) == 2 and all({"M", "L", "*", "-"} <= set(p) for p in patterns)
    assert set(patterns) <= set(report.distinct_patterns(source))
    # each warm-up candidate trains (a share of the FLOPs budget bought no step of the 12-layer ones): 3 steps, an
    # evaluation at the end, at the full study's batch and sequence length
    from archsearch.training import Recipe
    from archsearch.training.budget import resolve_budget

    recipe = Recipe.model_validate(warmup.file.recipe)
    assert (recipe.batch_size, recipe.seq_len) == (full.file.recipe["batch_size"], full.file.recipe["seq_len"])
    for proxy in _distinct(warmup):
        budget = resolve_budget(recipe, proxy, recipe.seq_len)
        assert budget.steps == 3 and budget.eval_every == 3
