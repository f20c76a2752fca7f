"""The compression search end to end on CPU: a tiny parent trained a few steps, scored, searched as a stored
Optuna study whose candidates are screened by the study's constraints and ranked by a short distillation from
the parent (Kendall's tau against the zero-shot ranking), the best distilled longer; plus the space's checks,
Kendall's tau and the command's errors."""

import json
from itertools import permutations

import optuna
import pytest

from archsearch.cli import main
from archsearch.compression.file import SearchAxes
from archsearch.compression.importance import FILE
from archsearch.compression.prune import width_fields
from archsearch.studies.fidelity_stats import kendall_tau
from archsearch.compression.space import DEPTH, compression_space
from archsearch.errors import UserError
from archsearch.spec import parse_spec
from archsearch.storage import Database, records
from archsearch.studies.params import PointSource
from archsearch.training import Recipe, TaskSpec, train

from compression_helpers import PARENT, TASK, train_parent

MAX_PARAMS = 17_000  # between the grid's smallest and largest children (13k .. 21k): some pass, some do not

STUDY = f"""\
name: compress-e2e
calibration: {{batches: 2, batch_size: 4}}
search:
  d_model: [24, 32]
  n_layers: [4, 6]
  blocks:
    M: {{n_heads: [2, 4]}}
    "-": {{ffn_dim: [32]}}
constraints: {{params: {{max: {MAX_PARAMS}}}}}
distill: {{temperature: 2.0, alpha: 0.5}}
recipe: {{steps: 2, eval_batches: 1, warmup: 0}}
final: {{steps: 4}}
n_trials: 8
device: cpu
"""


def test_kendall_tau():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    assert kendall_tau([1, 1, 1], [1, 2, 3]) is None
    # tau-b with a tie: (C - D) / sqrt((C + D + Tx)(C + D + Ty)); pairs: (1,2)+ (1,3)+ (2,3) tie in y
    assert kendall_tau([1, 2, 3], [1, 2, 2]) == pytest.approx(2 / (3 * 2) ** 0.5)
    for perm in permutations(range(4)):  # symmetric, and reversing one side flips the sign
        xs, ys = list(range(4)), list(perm)
        assert kendall_tau(xs, ys) == pytest.approx(kendall_tau(ys, xs))
        assert kendall_tau(xs, [-y for y in ys]) == pytest.approx(-kendall_tau(xs, ys))


def test_the_space_checks_every_choice_against_the_parent():
    parent = parse_spec(dict(PARENT, blocks=dict(PARENT["blocks"], **{"-": {"kind": "mlp", "ffn_dim": 64}})))
    space = compression_space(parent, SearchAxes(d_model=[16, 32], blocks={"-": {"ffn_dim": [8, 64]}}),
                              {4: "M*M-", 6: "M-*-M-"}, width_fields)
    assert space.names() == [DEPTH, "d_model", "blocks.-.ffn_dim"]
    assert space.grid() == {DEPTH: [4, 6], "d_model": [16, 32], "blocks.-.ffn_dim": [8, 64]}
    sample = space.sample(PointSource({DEPTH: 4, "d_model": 16}))
    assert sample.pattern == "M*M-" and sample.values["d_model"] == 16
    for axes, fragment in [
            (SearchAxes(d_model=[48]), "search.d_model: [48] above the parent's 32; allowed: 1 .. 32"),
            (SearchAxes(blocks={"X": {"n_heads": [2]}}), "the parent has no block 'X'"),
            (SearchAxes(blocks={"M": {"d_state": [4]}}), "narrows only n_heads, head_dim"),
            (SearchAxes(blocks={"*": {"n_heads": [8]}}), "search.blocks.*.n_heads: [8] above the parent's 4"),
            (SearchAxes(), "nothing is searched")]:
        with pytest.raises(UserError, match=fragment.replace("*", r"\*").replace("[", r"\[").replace("]", r"\]")):
            compression_space(parent, axes, {}, width_fields)


@pytest.fixture(scope="module")
def parent_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("compress") / "parent"
    train_parent(out, eval_batches=1)
    return out


@pytest.mark.slow
def test_the_compression_study_end_to_end(parent_run, tmp_path, capsys):
    study_file = tmp_path / "compress.yaml"
    db = tmp_path / "c.db"
    study_file.write_text(STUDY + f"storage: sqlite:///{db}\n")
    out = tmp_path / "out"
    argv = ["compress", str(parent_run), "--study", str(study_file), "-o", str(out), "--json"]
    assert main(argv) == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out)
    assert (parent_run / FILE).is_file()  # the importance is stored with the parent

    # the whole grid was screened: some candidates over the parameter bound were never trained
    counts = summary["counts"]
    assert sum(counts.values()) == 8 and counts.get("infeasible", 0) >= 1 and counts.get("completed", 0) >= 2
    trained = {p.name for p in (out / "trials").iterdir()}
    assert len(trained) == counts["completed"]

    # stored as any study: our rows and Optuna's, each completed trial distilled from the parent
    database = Database(f"sqlite:///{db}")
    try:
        record = records.study_by_name(database, "compress-e2e")
        assert str(parent_run.resolve()) in record.study_file["description"]
        rows = records.trials_of(database, record.id)
    finally:
        database.close()
    assert len(optuna.load_study(study_name="compress-e2e", storage=f"sqlite:///{db}").trials) == 8
    from starlette.testclient import TestClient

    from archsearch.dashboard.app import create_app

    client = TestClient(create_app(f"sqlite:///{db}"))  # the dashboard shows it as any study
    assert "compress-e2e" in client.get("/").text
    page = client.get(f"/study/{record.id}")
    assert page.status_code == 200 and "compress-e2e" in page.text
    listed = client.get(f"/api/study/{record.id}/trials")
    assert listed.status_code == 200 and listed.json()["total"] == 8
    for row in rows:
        if row.status == "infeasible":
            assert row.n_params > MAX_PARAMS and row.constraints["params_max"] > 0
        else:
            assert row.status == "completed" and row.n_params <= MAX_PARAMS
            assert row.metrics["kl_to_teacher"] >= 0 and row.metrics["zero_shot_loss"] > 0
            recipe = json.loads((out / "trials" / row.spec["name"] / "recipe.json").read_text())
            assert recipe["distill"] == {"teacher": str(parent_run.resolve()), "temperature": 2.0, "alpha": 0.5}

    # ranked by the distilled loss; tau compares it with the zero-shot ranking
    ranked = summary["ranked"]
    assert [r["val_loss"] for r in ranked] == sorted(r["val_loss"] for r in ranked)
    assert summary["kendall_tau"] == pytest.approx(kendall_tau([r["val_loss"] for r in ranked],
                                                               [r["zero_shot_loss"] for r in ranked]))
    assert summary["best"]["number"] == ranked[0]["number"]

    # the best child distilled longer, from its sliced weights
    final = summary["final"]
    result = json.loads((out / f"best-t{ranked[0]['number']}" / "result.json").read_text())
    assert final["status"] == "completed" and final["steps"] == 4 == result["steps"]
    assert final["metrics"]["zero_shot_loss"] == pytest.approx(ranked[0]["zero_shot_loss"])
    assert json.loads((out / "compression.json").read_text())["best"] == summary["best"]

    # the same command again resumes: nothing new is trained
    assert main(argv) == 0, capsys.readouterr().err
    again = json.loads(capsys.readouterr().out)
    assert again["counts"] == counts and again["final"] == final
    assert main(argv[:-1]) == 0  # the text summary: one line per trained child, tau, the best child's run folder
    text = capsys.readouterr().out
    assert f"study compress-e2e in sqlite:///{db}: {counts['completed']} completed" in text
    assert sum(line.startswith("  #") for line in text.splitlines()) == counts["completed"]
    assert "Kendall tau (distilled vs zero-shot ranking): " in text and f"best-t{ranked[0]['number']}" in text


def test_command_errors_exit_2_naming_the_problem(parent_run, tmp_path, capsys):
    study_file = tmp_path / "bad.yaml"
    study_file.write_text(STUDY.replace("n_trials: 8", "n_trials: 0"))
    assert main(["compress", str(parent_run), "--study", str(study_file), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "n_trials" in err and "bad.yaml" in err
    assert main(["compress", str(tmp_path / "nowhere"), "--study", str(study_file)]) == 2
    assert "is not a finished run folder (missing spec.yaml" in capsys.readouterr().err
    study_file.write_text(STUDY.replace("M: {n_heads: [2, 4]}", "M: {n_heads: [2, 8]}"))
    assert main(["compress", str(parent_run), "--study", str(study_file), "-o", str(tmp_path / "o2")]) == 2
    assert "search.blocks.M.n_heads: [8] above the parent's 4" in capsys.readouterr().err


def test_the_study_screens_children_with_the_files_constraints(parent_run):
    from archsearch.compression.file import CompressionFile
    from archsearch.compression.importance import score_run
    from archsearch.compression.parent import load_parent
    from archsearch.compression.prune import derive_child
    from archsearch.compression.search import build_study
    from archsearch.studies.screening import Screen

    importance = score_run(parent_run, batches=1, batch_size=2)
    parent = load_parent(parent_run)
    config = CompressionFile.model_validate({
        "name": "screen", "search": {"d_model": [16, 32]}, "n_trials": 2,
        "constraints": {"budget": [{"device": "a10g", "context": 64}], "params": {"max": MAX_PARAMS}}})
    study = build_study(config, parent, importance, "sqlite:///:memory:")
    assert study.base.d_model == 32 and study.space.names() == ["d_model"]
    # children differ in widths: eager unless the file asks (study trials default to compile: auto)
    assert study.file.recipe["compile"] is False
    screen = Screen(study.file.constraints)
    assert screen.keys() == ["valid", "budget:a10g@64x1", "params_max"]
    whole, small = (screen(derive_child(parent.spec, importance, name="c", d_model=d)) for d in (32, 16))
    assert not whole.fits and whole.constraints["params_max"] > 0 and whole.constraints["budget:a10g@64x1"] <= 0
    assert small.fits and all(v <= 0 for v in small.constraints.values())
    config = config.model_copy(update={"search": SearchAxes(n_layers=[4, 9])})
    with pytest.raises(UserError, match=r"search.n_layers: \[9\] above the parent's 6 layers; allowed: 1 .. 6"):
        build_study(config, parent, importance, None)
