"""Target and proxy (issue 14.1): a study that trains a tiny proxy on CPU and judges each candidate's serving budget,
parameter count and memory on Nemotron-Nano-9B-v2 at 128k tokens on an A10G. What fits is worked out here from
archsearch.checks, never written down: the published pattern (4 attention layers) must be admitted and patterns
with more attention layers rejected from the count the memory model gives."""

import math

import pytest

from archsearch.checks import CheckSettings, check_budget, load_catalog
from archsearch.cli import main
from archsearch.spec import SpecError, count_parameters, load_spec, parse_spec
from archsearch.storage import Database
from archsearch.storage import records
from archsearch.studies import load_study
from archsearch.studies.documents import FileError
from archsearch.studies.evaluate import TrainEvaluator
from archsearch.studies.space import Sample
from archsearch.studies.target import expand

from studies_helpers import BASE_SPEC, run_study

TARGET = "nemotron-nano-9b-v2"
CONTEXT = 131072
KEY = "budget:a10g@128kx1"
# The proxy: the target's block symbols at toy widths (8 heads so that any sampled n_kv_heads divides them).
PROXY = {"name": "nano-proxy", "vocab_size": 16, "d_model": 16, "max_context": 64, "pattern": "M-*-",
         "blocks": {"M": {"kind": "mamba2", "n_heads": 2, "head_dim": 8, "d_state": 8, "chunk_size": 16},
                    "*": {"kind": "attention", "n_heads": 8, "n_kv_heads": 8, "head_dim": 4, "rope_theta": None},
                    "-": {"kind": "mlp", "ffn_ratio": 2, "activation": "relu2"}}}
TASK = {"name": "mqar", "options": {"vocab": 16, "n_pairs": 2}}
RECIPE = {"steps": 2, "batch_size": 2, "seq_len": 16, "eval_every": 2, "eval_batches": 1, "lr": 0.003}


def _with_attention(published: str, count: int) -> str:
    """The published pattern with Mamba-2 layers turned into attention until it has `count` of them (spread
    evenly over the Mamba-2 layers)."""
    layers = list(published)
    mamba = [i for i, s in enumerate(layers) if s == "M"]
    extra = count - layers.count("*")
    for j in range(extra):
        layers[mamba[int((j + 0.5) * len(mamba) / extra)]] = "*"
    return "".join(layers)


def _target_with(pattern: str, kv: int):
    doc = load_spec(TARGET).to_dict()
    doc["pattern"] = pattern
    doc["blocks"]["*"] = {**doc["blocks"]["*"], "n_kv_heads": kv}
    return parse_spec(doc)


def _report(pattern: str, kv: int):
    return check_budget(_target_with(pattern, kv), load_catalog().get("a10g"), CONTEXT, 1, CheckSettings())


def _most_attention_that_fits(published: str, kv: int) -> int:
    count = published.count("*")
    while count < published.count("M") + published.count("*") and _report(_with_attention(published, count + 1),
                                                                            kv).fits:
        count += 1
    return count


@pytest.fixture(scope="module")
def nano_study(tmp_path_factory):
    import torch
    import yaml

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 56 tiny layers: threads only add overhead (and the CI machine's 2 cores are shared)
    try:
        yield _nano_study(tmp_path_factory, yaml)
    finally:
        torch.set_num_threads(threads)


def _nano_study(tmp_path_factory, yaml):
    tmp = tmp_path_factory.mktemp("nano")
    published = load_spec(TARGET).pattern_string
    assert published.count("*") == 4
    most = _most_attention_that_fits(published, 8)
    assert _report(published, 8).fits and most >= 4  # the memory model admits the published model
    counts = list(range(4, most + 3))  # up to two attention layers past what fits
    study = {"name": "nano", "base": PROXY, "target": TARGET,
             "space": {"pattern": {"choices": [_with_attention(published, c) for c in counts]}},
             "task": TASK, "recipe": RECIPE, "objectives": ["val_loss", "n_params", "memory_bytes"],
             "constraints": {"budget": [{"device": "a10g", "context": "128k", "batch": 1}]},
             "sampler": {"type": "grid"}, "n_trials": len(counts), "early_stop": {"enabled": False},
             "device": "cpu", "seed": 0}
    path = tmp / "nano.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    url = f"sqlite:///{tmp / 'nano.db'}"
    summary = run_study(path, url, TrainEvaluator(TASK, RECIPE, seed=0, device="cpu"))
    with Database(url) as db:
        rows = records.trials_of(db, records.study_by_name(db, "nano").id)
    return path, url, published, summary, rows


def test_the_budget_is_judged_on_the_target_and_the_proxy_trains(nano_study):
    path, url, published, summary, rows = nano_study
    most = _most_attention_that_fits(published, 8)
    seen = set()
    for row in rows:
        pattern = row.params["pattern.choice"]
        count = pattern.count("*")
        seen.add(count)
        target = _target_with(pattern, 8)
        report = _report(pattern, 8)
        # Both sides got the sample (the layers); each kept its own widths.
        proxy = parse_spec(row.spec)
        stored_target = parse_spec(row.target["spec"])
        assert proxy.pattern_string == stored_target.pattern_string == pattern
        assert stored_target.blocks == load_spec(TARGET).blocks
        assert (proxy.d_model, stored_target.d_model) == (16, 4480)
        assert row.target["canonical_hash"] != row.candidate_key
        # Constraints and sizes are the target's ...
        assert row.fits is report.fits is (count <= most)
        assert row.budget[KEY]["total_bytes"] == report.total_bytes
        assert row.target["n_params"] == count_parameters(target).total
        assert row.objectives[1:] == [float(count_parameters(target).total), float(report.total_bytes)]
        # ... the trained metrics and the row's own size are the proxy's.
        assert row.n_params == count_parameters(proxy).total < 10**6
        if report.fits:
            assert row.status == "completed" and math.isfinite(row.metrics["val_loss"]) and row.curve
            assert row.objectives[0] == row.metrics["val_loss"]
        else:
            assert row.status == "infeasible" and not row.curve and f"{KEY}: needs" in row.error
    # The published model (4 attention layers, 8 KV heads) is admitted; one attention layer past the count the
    # memory model allows is rejected.
    published_row = next(r for r in rows if r.params["pattern.choice"] == published)
    assert published_row.status == "completed"
    past = [r for r in rows if r.params["pattern.choice"].count("*") == most + 1]
    assert len(past) == 1 and past[0].status == "infeasible"
    assert seen == set(range(4, most + 3))  # the grid ran every pattern once


def test_study_best_and_the_dashboard_show_the_target(nano_study, capsys):
    from starlette.testclient import TestClient

    from archsearch.dashboard import create_app

    path, url, published, summary, rows = nano_study
    assert main(["study", "best", str(path), "--storage", url]) == 0
    out = capsys.readouterr().out
    best = summary.best
    assert best and all(b["target"]["name"] == TARGET for b in best)
    for b in best:
        assert f"target {TARGET} ({b['target']['n_params']:,} params, {b['target']['canonical_hash'][:8]})" in out
    row = next(r for r in rows if r.status == "completed")
    with Database(url) as db:
        study_id = records.study_by_name(db, "nano").id
    page = TestClient(create_app(url)).get(f"/study/{study_id}/compare?t={row.id}").text
    assert "parameters (trained proxy)" in page and f"{TARGET} <code>{row.target['canonical_hash'][:8]}" in page
    out_file = path.parent / "nano.csv"
    assert main(["results", "export", "--storage", url, "--format", "csv", "--output", str(out_file)]) == 0
    import csv

    exported = {int(r["number"]): r for r in csv.DictReader(out_file.open())}
    for r in rows:
        assert exported[r.number]["target.name"] == TARGET
        assert int(exported[r.number]["target.n_params"]) == r.target["n_params"] != r.n_params


def test_without_a_target_the_proxy_is_judged(write_study, sqlite_url):
    path = write_study(n_trials=3, objectives=["val_loss", "n_params"])
    run_study(path, sqlite_url)
    with Database(sqlite_url) as db:
        rows = records.trials_of(db, records.study_by_name(db, "toy").id)
    for row in rows:
        assert row.target is None
        if row.spec is not None:
            assert row.n_params == count_parameters(parse_spec(row.spec)).total
        if row.status == "completed":
            assert row.objectives[1] == row.n_params


def test_a_width_search_with_a_target_is_refused(write_study):
    path = write_study(target=TARGET, space={"parameters": {"d_model": {"type": "categorical", "choices": [32, 64]},
                                                            "blocks.*.n_heads": {"type": "int", "low": 2, "high": 4}}})
    with pytest.raises(FileError) as caught:
        load_study(path)
    message = str(caught.value)
    assert "parameters.d_model: searches d_model, an absolute width" in message
    assert "parameters.blocks.*.n_heads: searches blocks.*.n_heads" in message


def test_a_target_missing_a_block_of_the_space_is_refused(write_study):
    # hybrid-tiny's generator makes local-attention layers (L); Nemotron-Nano defines M, * and - only.
    space = {"pattern": {"n_layers": 4, "attention_count": 2, "local_global": "1:1"},
             "parameters": {"blocks.M.d_state": {"type": "categorical", "choices": [8, 16]}}}
    with pytest.raises(FileError, match=f"on the target '{TARGET}': the generator can produce layers 'L'"):
        load_study(write_study(target=TARGET, space=space))


def test_a_bad_target_is_located(write_study):
    with pytest.raises(FileError, match="target: no such"):
        load_study(write_study(target="no-such-model"))


@pytest.mark.parametrize("pattern,message", [
    ({"choices": ["M-", "(M-)x1"]}, "choices[1] expands to the same layers as an earlier choice"),
    ({"choices": ["M-(("]}, "choices[0]: "),
    ({"choices": ["M-"], "n_layers": 2}, "choices lists whole patterns; drop n_layers"),
    ({"attention_count": 1}, "give n_layers (a generated pattern) or choices"),
])
def test_pattern_choices_are_checked(write_study, pattern, message):
    with pytest.raises(FileError) as caught:
        load_study(write_study(space={"pattern": pattern}))
    assert message in str(caught.value)


def test_a_sample_applies_to_both_sides_and_widths_stay_their_own():
    target = load_spec(TARGET).to_dict()
    pattern = _with_attention(load_spec(TARGET).pattern_string, 6)
    sample = Sample(pattern, {"blocks.*.n_kv_heads": 4, "blocks.M.d_state": 64})
    candidate = expand(sample, PROXY, target, "t0")
    for spec in (candidate.proxy, candidate.target):
        assert spec.pattern_string == pattern
        assert (spec.blocks["*"].n_kv_heads, spec.blocks["M"].d_state) == (4, 64)
    assert (candidate.proxy.blocks["*"].n_heads, candidate.target.blocks["*"].n_heads) == (8, 40)
    assert candidate.judged is candidate.target and candidate.target.name == TARGET


def test_a_sample_invalid_only_on_the_target_names_the_target():
    proxy = {**BASE_SPEC, "blocks": {**BASE_SPEC["blocks"], "*": {**BASE_SPEC["blocks"]["*"], "n_heads": 6,
                                                                  "head_dim": 8}}}
    target = load_spec(TARGET).to_dict()
    sample = Sample(None, {"blocks.*.n_kv_heads": 3})  # divides the proxy's 6 heads, not the target's 40
    with pytest.raises(SpecError) as caught:
        expand(sample, proxy, target, "t0")
    assert caught.value.issues[0].path[:3] == ("target", "blocks", "*")
    assert expand(sample, proxy, None, "t0").target is None
