"""A study's identity is its question (issue 14.4): a rerun whose base, target, space, task, recipe, objectives or
constraints changed is refused, naming each change; `--as NEW_NAME` starts a new study; equivalent rewrites and
studies stored before identities existed are accepted."""

import sqlalchemy as sa
import pytest

from archsearch.cli import main
from archsearch.storage import Database, StudyMismatchError
from archsearch.storage import records
from archsearch.storage.models import StudyRecord
from archsearch.studies import load_study
from archsearch.studies.identity import changes, study_identity

from studies_helpers import BASE_SPEC, run_study

SPACE = {"parameters": {"blocks.M.d_state": {"type": "categorical", "choices": [8, 16]}}}
TARGET = {**BASE_SPEC, "name": "toy-target", "d_model": 256}
FIRST = dict(n_trials=1, space=SPACE, recipe={"steps": 30, "lr": 0.003}, target=TARGET,
             task={"name": "mqar", "options": {"vocab": 64}}, objectives=["val_loss", "n_params"])


def _run(path, url, as_name=None):
    study = load_study(path)
    if as_name is not None:
        from archsearch.studies.identity import renamed
        study = renamed(study, as_name)
    return run_study(study, url)


def _stored_identity(url, name="toy"):
    with Database(url) as db:
        return records.study_by_name(db, name).identity


def _blocks(**m):
    return {**BASE_SPEC["blocks"], "M": {**BASE_SPEC["blocks"]["M"], **m}}


# (what changes, the line the refusal must hold)
CHANGES = [
    ("base", dict(base={**BASE_SPEC, "blocks": _blocks(chunk_size=64)}),
     ["base toy-hybrid (", "base.blocks.M.chunk_size 32 -> 64"]),
    ("target", dict(target={**TARGET, "d_model": 512}), ["target toy-target (", "target.d_model 256 -> 512"]),
    ("target dropped", dict(target=None), ["target toy-target ("]),
    ("space", dict(space={"parameters": {"blocks.M.d_state": {"type": "categorical", "choices": [8, 32]}}}),
     ["space.parameters.blocks.M.d_state.choices [8, 16] -> [8, 32]"]),
    ("task", dict(task={"name": "mqar", "options": {"vocab": 32}}), ["task.options.vocab 64 -> 32"]),
    ("task name", dict(task="selective_copy"), ["task.name 'mqar' -> 'selective_copy'", "task.options.vocab 64 -> (absent)"]),
    ("recipe", dict(recipe={"steps": 60, "lr": 0.003}), ["recipe.steps 30 -> 60"]),
    ("recipe field added", dict(recipe={"steps": 30, "lr": 0.003, "warmup": 5}), ["recipe.warmup (absent) -> 5"]),
    ("objectives", dict(objectives=["val_loss"]), ["objectives [val_loss min, n_params min] -> [val_loss min]"]),
    ("objectives direction", dict(objectives=["val_loss", {"metric": "n_params", "direction": "maximize"}]),
     ["objectives [val_loss min, n_params min] -> [val_loss min, n_params max]"]),
    ("constraints", dict(constraints={"budget": [{"device": "a10g", "context": "1M", "batch": 16}]}),
     ["constraints.budget[0].context '2M' -> '1M'"]),
    ("constraints params", dict(constraints={"budget": [{"device": "a10g", "context": "2M", "batch": 16}],
                                            "params": {"max": 1e9}}),
     ["constraints.params None -> {'min': None, 'max': 1000000000.0}"]),
]


@pytest.mark.parametrize("field,overrides,expected", CHANGES, ids=[c[0] for c in CHANGES])
def test_a_changed_question_is_refused_naming_each_change(write_study, sqlite_url, field, overrides, expected):
    _run(write_study(**FIRST), sqlite_url)
    stored = _stored_identity(sqlite_url)
    changed = write_study("changed.yaml", **{**FIRST, **overrides})
    with pytest.raises(StudyMismatchError) as caught:
        _run(changed, sqlite_url)
    message = str(caught.value)
    for line in expected:
        assert line in message, message
    # Only the field that changed is named.
    named = {line.split()[0].split(".")[0] for line in message.splitlines()[1:-1]}
    assert named == {field.split()[0]}, message
    assert _stored_identity(sqlite_url) == stored  # nothing written
    with Database(sqlite_url) as db:
        assert len(records.trials_of(db, records.study_by_name(db, "toy").id)) == 1


def test_as_new_name_starts_a_new_study_and_leaves_the_old_one(write_study, sqlite_url):
    _run(write_study(**FIRST), sqlite_url)
    changed = write_study("changed.yaml", **{**FIRST, "recipe": {"steps": 60, "lr": 0.003}})
    _run(changed, sqlite_url, as_name="toy-60")
    assert _stored_identity(sqlite_url, "toy-60")["parts"]["recipe"]["steps"] == 60
    assert _stored_identity(sqlite_url, "toy")["parts"]["recipe"]["steps"] == 30
    _run(changed, sqlite_url, as_name="toy-60")  # and the new study resumes under its new name


def test_equivalent_rewrites_are_the_same_question(write_study, sqlite_url):
    _run(write_study(**FIRST), sqlite_url)
    base = dict(reversed(list({**BASE_SPEC, "pattern": "(M-)x1 *-"}.items())))  # other key order and notation
    same = write_study("same.yaml", **{**FIRST, "base": base, "recipe": {"lr": 0.003, "steps": 30.0},
                                       "task": {"options": {"vocab": 64}, "name": "mqar"}})
    _run(same, sqlite_url)  # accepted: resumes the stored study


def test_a_study_stored_before_identities_is_accepted_and_gets_one(write_study, sqlite_url):
    path = write_study(**FIRST)
    _run(path, sqlite_url)
    with Database(sqlite_url) as db, db.session() as session:
        session.execute(sa.update(StudyRecord).values(identity=None))
    changed = write_study("changed.yaml", **{**FIRST, "recipe": {"steps": 60, "lr": 0.003}})
    _run(changed, sqlite_url)  # nothing to compare with: accepted, and the file's identity is stored
    assert _stored_identity(sqlite_url) == study_identity(load_study(changed))
    with pytest.raises(StudyMismatchError, match="recipe.steps 60 -> 30"):
        _run(path, sqlite_url)


def test_many_changes_are_counted_not_all_listed(write_study):
    one = study_identity(load_study(write_study(**FIRST)))
    recipe = {f"k{i}": i for i in range(9)}
    other = study_identity(load_study(write_study("o.yaml", **{**FIRST, "recipe": {**FIRST["recipe"], **recipe}})))
    found = changes(one, other)
    assert len(found) == 5 and found[-1] == "recipe: 5 more change(s)"


def test_the_cli_exits_2_naming_the_change_and_runs_with_as(write_study, tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    tiny = dict(FIRST, target=None, task={"name": "mqar", "options": {"vocab": 16, "n_pairs": 2}},
                recipe={"steps": 2, "batch_size": 2, "seq_len": 16, "eval_every": 1, "eval_batches": 1},
                constraints={}, device="cpu")
    assert main(["study", "run", str(write_study(**tiny)), "--storage", url, "--no-progress"]) == 0
    changed = write_study("changed.yaml", **{**tiny, "recipe": {**tiny["recipe"], "steps": 3}})
    capsys.readouterr()
    assert main(["study", "run", str(changed), "--storage", url, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "recipe.steps 2 -> 3" in err and "--as NEW_NAME" in err and "Traceback" not in err
    assert main(["study", "run", str(changed), "--storage", url, "--no-progress", "--as", "toy-3"]) == 0
    assert main(["study", "run", str(changed), "--storage", url, "--as", "bad name!"]) == 2
    assert "--as 'bad name!'" in capsys.readouterr().err


def test_a_text_study_scored_on_recall_is_not_continued_with_another_probe(write_study, sqlite_url, monkeypatch):
    """A text task's recall probe changed (2026-12-06: the corpus's frequent ids instead of the vocabulary's upper
    half): a study stored with the first one would mix two recall scales, so its rerun is refused, naming it."""
    from archsearch.studies import identity

    text = dict(FIRST, task={"name": "text", "options": {"data_files": "corpus.jsonl"}},
                objectives=["val_loss", "recall"])
    monkeypatch.setattr(identity, "OWN_PROBE_TASKS", ())  # stored as before the probe was part of the question
    _run(write_study(**text), sqlite_url)
    monkeypatch.undo()
    with pytest.raises(StudyMismatchError, match=r"task\.recall_probe \(absent\) -> 2"):
        _run(write_study("again.yaml", **text), sqlite_url)
    assert "recall_probe" not in study_identity(load_study(write_study("mqar.yaml", **FIRST)))["parts"]["task"]
    loss_only = load_study(write_study("loss.yaml", **{**text, "objectives": ["val_loss"]}))
    assert "recall_probe" not in study_identity(loss_only)["parts"]["task"]  # no recall scored: nothing to mix


def test_fidelity_refuses_a_text_study_scored_with_the_first_probe(write_study, sqlite_url, monkeypatch):
    from archsearch.errors import UserError
    from archsearch.studies import identity
    from archsearch.studies.fidelity import measure_fidelity

    text = dict(FIRST, task={"name": "text", "options": {"data_files": "corpus.jsonl"}},
                objectives=["val_loss", "recall"])
    path = write_study(**text)
    monkeypatch.setattr(identity, "OWN_PROBE_TASKS", ())  # stored as before the probe was part of the question
    _run(path, sqlite_url)
    monkeypatch.undo()
    with pytest.raises(UserError, match="probe version 1, and retrainings now score it with version 2"):
        measure_fidelity(load_study(path), storage=sqlite_url, factor=2, random_k=2,
                         evaluator_for=lambda recipe, seed: None)
