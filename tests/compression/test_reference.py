"""The compression study's reference is its parent: name, exact size, pattern and val_loss measured as the
trainer measures a child's (the same validation batches, batch size and precision), stored with the study (the
dashboard shows it beside the best child) and reported by `compress` as `parent`."""

import json

import pytest

from archsearch.compression.search import parent_reference
from archsearch.spec import parse_spec
from archsearch.studies.evaluate import resolve_training
from archsearch.studies.study_file import Reference
from archsearch.training import Recipe, TaskSpec, train

from compression_helpers import PARENT, TASK, train_parent



@pytest.fixture(scope="module")
def parent_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "parent"
    train_parent(out, eval_batches=2)
    return out


def test_the_parents_val_loss_is_the_trainers_measurement(parent_run):
    """Measured with the recipe the parent was evaluated with, the reference's val_loss is the one train() recorded:
    the same batches, the same sum over target positions, the same precision."""
    from archsearch.compression.parent import load_parent

    recorded = json.loads((parent_run / "result.json").read_text())
    parent = load_parent(parent_run)
    _, recipe = resolve_training(TASK, {"steps": 1, "batch_size": 4, "seq_len": 16, "eval_batches": 2}, 0)
    reference = parent_reference(parent, recipe)
    assert reference["metrics"]["val_loss"] == pytest.approx(recorded["metrics"]["val_loss"], rel=1e-6)
    assert reference["n_params"] == recorded["n_params"] == sum(p.numel() for p in parent.model.parameters())
    assert reference["pattern"] == "M-*-M-" == reference["layers"] and reference["name"] == "parent"
    assert reference["source"] == str(parent_run.resolve())
    assert Reference.model_validate(reference).blocks["*"].kind == "attention"
    # other validation batches, another value: the reference follows the children's recipe
    _, fewer = resolve_training(TASK, {"steps": 1, "batch_size": 4, "seq_len": 16, "eval_batches": 1}, 0)
    assert parent_reference(parent, fewer)["metrics"]["val_loss"] != reference["metrics"]["val_loss"]


@pytest.mark.slow
def test_compress_stores_the_parent_as_the_studys_reference(parent_run, tmp_path, capsys):
    from starlette.testclient import TestClient

    from archsearch.cli import main
    from archsearch.dashboard.app import create_app
    from archsearch.storage import Database, records

    db = tmp_path / "c.db"
    study_file = tmp_path / "compress.yaml"
    # d_model 32 prunes nothing: that child is the parent, its zero-shot loss the parent's own
    study_file.write_text(f"name: compress-ref\ncalibration: {{batches: 1, batch_size: 2}}\n"
                          f"search: {{d_model: [24, 32]}}\nrecipe: {{steps: 1, eval_batches: 2, warmup: 0}}\n"
                          f"n_trials: 2\ndevice: cpu\nstorage: sqlite:///{db}\n")
    argv = ["compress", str(parent_run), "--study", str(study_file), "-o", str(tmp_path / "out"), "--json"]
    assert main(argv) == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out)
    parent = summary["parent"]
    assert parent["name"] == "parent" and parent["run"] == str(parent_run.resolve())
    assert parent["pattern"] == "M-*-M-" and parent["n_params"] > max(r["n_params"] for r in summary["ranked"]
                                                                       if r["n_params"] != parent["n_params"])
    assert json.loads((tmp_path / "out" / "compression.json").read_text())["parent"] == parent
    whole = [r for r in summary["ranked"] if r["n_params"] == parent["n_params"]]
    assert len(whole) == 1 and whole[0]["zero_shot_loss"] == pytest.approx(parent["val_loss"], rel=1e-6)

    with Database(f"sqlite:///{db}") as database:
        record = records.study_by_name(database, "compress-ref")
        stored = Reference.model_validate(record.study_file["reference"])
    assert stored.metrics == {"val_loss": parent["val_loss"]} and stored.n_params == parent["n_params"]
    assert stored.source == parent["run"] and stored.layers == "M-*-M-"

    page = TestClient(create_app(f"sqlite:///{db}")).get(f"/study/{record.id}")
    assert page.status_code == 200
    assert '<section id="reference">' in page.text and '<td class="ref-name">parent</td>' in page.text
    best = min(r["val_loss"] for r in summary["ranked"])
    assert f'<tr data-metric="val_loss" data-direction="minimize" data-reference="{parent["val_loss"]}">' in page.text
    assert f"(#{summary['best']['number']})" in page.text and f"{best:.4g}" in page.text
