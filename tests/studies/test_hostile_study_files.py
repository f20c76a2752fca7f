"""Hostile study files and `study run` options: every problem of a file is reported at once, each at its
file:line:col, before anything is stored or trained; numbers out of their documented bounds are refused up front;
nothing ends in a traceback."""

import copy
import math

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from archsearch.cli import main
from archsearch.errors import UserError
from archsearch.studies import FileError, SearchSpace
from archsearch.limits import MAX_GRID_POINTS, MAX_SAMPLER_SEED, MAX_TIMEOUT_S, MAX_TRIALS
from archsearch.studies.bounds import check_run_options
from archsearch.studies.preflight import preflight

from studies_helpers import study_doc

# One breakage per entry: what to change in a valid study document, and the field the error must name.
BREAKAGES = {
    "unknown_field": (lambda d: d.update(bogus=1), ("bogus",)),
    "unknown_task": (lambda d: d.update(task="nosuch"), ("task",)),
    "task_option": (lambda d: d.update(task={"name": "mqar", "options": {"nope": 1}}), ("task",)),
    "task_too_long": (lambda d: d.update(task={"name": "mqar", "options": {"n_pairs": 100}}), ("task",)),
    "device_tpu": (lambda d: d.update(device="tpu"), ("device",)),
    "unknown_metric": (lambda d: d.update(objectives=["val_losss"]), ("objectives", 0)),
    "metric_not_reported": (lambda d: d.update(objectives=[{"metric": "foo", "direction": "minimize"}]),
                            ("objectives", 0)),
    "sampler_option_type": (lambda d: d.update(sampler={"type": "tpe", "n_startup_trials": "many"}),
                            ("sampler", "n_startup_trials")),
    "sampler_option_unknown": (lambda d: d.update(sampler={"type": "random", "speed": 3}), ("sampler", "speed")),
    "sampler_type": (lambda d: d.update(sampler={"type": "annealing"}), ("sampler", "type")),
    "recipe_field": (lambda d: d.update(recipe={"stepz": 3}), ("recipe", "stepz")),
    "recipe_type": (lambda d: d.update(recipe={"steps": "lots"}), ("recipe", "steps")),
    "constraint_name": (lambda d: d.update(constraints={"budgett": []}), ("constraints", "budgett")),
    "budget_device": (lambda d: d.update(constraints={"budget": [{"device": "tpu-v9", "context": "2M"}]}),
                      ("constraints", "budget", 0, "device")),
    "n_trials_zero": (lambda d: d.update(n_trials=0), ("n_trials",)),
    "n_trials_huge": (lambda d: d.update(n_trials=10**30), ("n_trials",)),
    "seed_huge": (lambda d: d.update(seed=10**30), ("seed",)),
    "timeout_negative": (lambda d: d.update(timeout_s=-5), ("timeout_s",)),
    "batch_huge": (lambda d: d.update(constraints={"budget": [{"device": "a10g", "context": "2M", "batch": 10**7}]}),
                   ("constraints", "budget", 0, "batch")),
    "heartbeat": (lambda d: d.update(heartbeat={"interval_s": 0}), ("heartbeat", "interval_s")),
    "empty_space": (lambda d: d.update(space={}), ("space",)),
    "fixed_space": (lambda d: d.update(space={"parameters": {"d_model": 64}}), ("space",)),
}
# Breakages that replace the same field exclude each other.
FIELD = {name: path[0] for name, (_, path) in BREAKAGES.items()}


def _write(tmp_path, doc, name="s.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(sorted(BREAKAGES)), min_size=1, max_size=5, unique_by=lambda n: FIELD[n]))
def test_every_problem_of_a_study_file_is_reported_at_once_and_located(tmp_path, names):
    doc = study_doc()
    for name in names:
        BREAKAGES[name][0](doc)
    path = _write(tmp_path, doc)
    with pytest.raises(FileError) as caught:
        preflight(path)
    found = {issue.path[:len(BREAKAGES[n][1])] for issue in caught.value.issues for n in names}
    for name in names:
        assert BREAKAGES[name][1] in found, (name, str(caught.value))
    for issue in caught.value.issues:  # each at file:line:col of this file
        assert issue.location and issue.location.startswith(f"{path}:") and issue.location.count(":") == 2, issue


@pytest.mark.parametrize("name", sorted(BREAKAGES))
def test_each_breakage_alone_exits_2_and_writes_nothing(tmp_path, capsys, name):
    doc = study_doc(storage=f"sqlite:///{tmp_path / 'r.db'}")
    BREAKAGES[name][0](doc)
    assert main(["study", "run", str(_write(tmp_path, doc))]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: invalid study file") and "Traceback" not in err
    assert not (tmp_path / "r.db").exists()


def test_the_valid_document_passes(tmp_path):
    assert preflight(_write(tmp_path, study_doc())).name == "toy"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(["n_trials", "seed", "timeout_s"]),
       value=st.one_of(st.integers(-10**40, 10**40), st.floats(allow_nan=True, allow_infinity=True),
                       st.booleans(), st.text(max_size=8)))
def test_numbers_in_a_study_file_are_bounded(tmp_path, field, value):
    """Whole numbers are whole (no `true`, "12" or 3.0), seconds are finite numbers; all within their bounds."""
    doc = study_doc(**{field: value})
    bounds = {"n_trials": (1, MAX_TRIALS), "seed": (0, MAX_SAMPLER_SEED), "timeout_s": (0, MAX_TIMEOUT_S)}
    low, high = bounds[field]
    kinds = (int, float) if field == "timeout_s" else (int,)
    fine = isinstance(value, kinds) and not isinstance(value, bool) and math.isfinite(value) and low <= value <= high \
        and (field != "timeout_s" or value > 0)
    try:
        preflight(_write(tmp_path, doc))
    except FileError as err:
        assert not fine, (value, str(err))
        assert [issue.path for issue in err.issues] == [(field,)], str(err)
    else:
        assert fine, value


@settings(max_examples=60, deadline=None)
@given(n_trials=st.one_of(st.none(), st.integers(-10**31, 10**31)),
       timeout=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
       workers=st.one_of(st.none(), st.integers(-10, 10**6)),
       offset=st.one_of(st.none(), st.integers(-10, 10**31)))
def test_run_options_are_bounded_all_at_once(n_trials, timeout, workers, offset):
    bad = []
    if n_trials is not None and not 1 <= n_trials <= MAX_TRIALS:
        bad.append("--n-trials")
    if timeout is not None and not (math.isfinite(timeout) and 0 < timeout <= MAX_TIMEOUT_S):
        bad.append("--timeout")
    if workers is not None and not 1 <= workers <= 256:
        bad.append("--workers")
    if offset is not None and not 0 <= offset <= 1_000_000:
        bad.append("--seed-offset")
    try:
        check_run_options(n_trials=n_trials, timeout_s=timeout, workers=workers, seed_offset=offset)
    except UserError as err:
        assert bad and all(option in str(err) for option in bad), (bad, str(err))
    else:
        assert not bad


@pytest.mark.parametrize("argv", [["--timeout", "0"], ["--timeout", "-5"], ["--timeout", "nan"], ["--timeout", "inf"],
                                  ["--n-trials", "0"], ["--n-trials", str(10**30)], ["--workers", "0"],
                                  ["--workers", "100000"], ["--seed-offset", str(10**30)]])
def test_study_run_refuses_out_of_range_options(write_study, tmp_path, capsys, argv):
    path = write_study(storage=f"sqlite:///{tmp_path / 'r.db'}")
    assert main(["study", "run", str(path), *argv]) == 2
    err = capsys.readouterr().err
    assert argv[0] in err and "allowed" in err or "--workers" in err
    assert not (tmp_path / "r.db").exists()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 10**7), min_size=1, max_size=4))
def test_a_grid_is_refused_by_its_size_before_any_list_is_built(sizes):
    space = SearchSpace.model_validate({"parameters": {f"p{i}": {"type": "int", "low": 0, "high": n - 1}
                                                       for i, n in enumerate(sizes)}})
    total = math.prod(sizes)
    if total > MAX_GRID_POINTS:
        with pytest.raises(FileError, match=f"{total:,} points"):
            space.grid()
    else:
        assert math.prod(len(v) for v in space.grid().values()) == total


@settings(max_examples=40, deadline=None)
@given(st.one_of(st.integers(-5, 50), st.floats(allow_nan=False), st.text(max_size=5), st.booleans(), st.none(),
                 st.lists(st.integers(), max_size=2)))
def test_sampler_options_are_type_checked_strictly(value):
    from archsearch.studies.samplers import option_problems
    import optuna

    problems = option_problems(optuna.samplers.TPESampler, {"n_startup_trials": value})
    assert bool(problems) == (not isinstance(value, int) or isinstance(value, bool))


def test_results_export_refuses_an_unwritable_out_and_never_creates_a_missing_database(tmp_path, capsys,
                                                                                     write_study):
    from archsearch.studies import StudyRunner, load_study
    from studies_helpers import ToyEvaluator

    url = f"sqlite:///{tmp_path / 'r.db'}"
    runner = StudyRunner(load_study(write_study(n_trials=1, constraints={})), ToyEvaluator(), storage=url, live=False)
    runner.open()
    runner.run()
    runner.close()
    capsys.readouterr()
    for out in (tmp_path / "no" / "such" / "x.csv", tmp_path):
        assert main(["results", "export", "--storage", url, "-o", str(out)]) == 2
        assert str(out) in capsys.readouterr().err
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        import os

        if not os.access(locked, os.W_OK):  # root writes anywhere
            assert main(["results", "export", "--storage", url, "-o", str(locked / "x.json"), "--format",
                         "json"]) == 2
            assert "x.json" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)
    missing = tmp_path / "missing.db"
    assert main(["results", "export", "--storage", f"sqlite:///{missing}"]) == 2
    assert not missing.exists()


def test_ablate_reads_a_long_inline_recipe_as_yaml(capsys):
    recipe = "{" + ", ".join(f"unknown_{i}: {i}" for i in range(30)) + "}"
    assert len(recipe) > 255
    assert main(["ablate", "nemotron-h-tiny", "--vary", "d_model=64", "--recipe", recipe]) == 2
    err = capsys.readouterr().err
    assert "recipe.unknown_0" in err and "Traceback" not in err and "File name too long" not in err


def test_a_space_file_reports_all_its_problems_at_once_at_its_own_lines(tmp_path, write_study):
    space = tmp_path / "space.yaml"
    space.write_text("parameters:\n"
                     "  d_model: {type: int, low: 64, high: 32}\n"          # low > high
                     "  blocks.M.d_state: {type: int, low: 8, hihg: 16}\n"  # unknown field, missing high
                     "  blocks.Q.n_heads: {type: categorical, choices: [1, 2]}\n"  # no block Q
                     "bogus: 1\n")
    path = write_study(space=str(space))
    with pytest.raises(FileError) as caught:
        preflight(path)
    located = {issue.location.rsplit(":", 2)[1] for issue in caught.value.issues if str(space) in issue.location}
    assert {"2", "3", "4", "5"} <= located, str(caught.value)
