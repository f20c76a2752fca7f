"""A study file's optional `reference:` (what the trials are compared against): read and checked torch-free,
every problem named at its field with what is allowed, stored with the resolved study, described by the JSON
Schema, and no part of the study's identity."""

import pytest

from archsearch.studies import load_study
from archsearch.studies.documents import FileError
from archsearch.studies.identity import study_identity
from archsearch.studies.schemas import study_schema
from archsearch.studies.study_file import Reference

PARENT = {"name": "parent", "source": "runs/parent", "n_params": 1_127_388, "pattern": "(M-)x2 *-",
          "blocks": {"M": {"kind": "mamba2"}, "-": {"kind": "mlp"}, "*": {"kind": "attention", "window": 64}},
          "metrics": {"val_loss": 0.7639, "accuracy": 1}}


def _issues(write_study, reference) -> dict[str, tuple[str, str]]:
    with pytest.raises(FileError) as err:
        load_study(write_study(reference=reference))
    return {".".join(map(str, i.path)): (i.message, i.allowed or "") for i in err.value.issues}


def test_a_reference_is_read_expanded_and_stored_with_the_study(write_study):
    study = load_study(write_study(reference=PARENT))
    ref = study.file.reference
    assert ref.layers == "M-M-*-" and ref.n_params == 1_127_388 and ref.blocks["*"].window == 64
    assert ref.metrics == {"val_loss": 0.7639, "accuracy": 1.0}
    stored = study.resolved()["reference"]
    assert stored == {**PARENT, "layers": "M-M-*-", "metrics": {"val_loss": 0.7639, "accuracy": 1.0},
                      "blocks": {s: {"window": None, **b} for s, b in PARENT["blocks"].items()}}
    assert Reference.model_validate(stored) == ref  # what is stored reads back as the same reference
    assert load_study(write_study(name="plain.yaml")).resolved()["reference"] is None
    # only a name is needed (a published model known by its numbers)
    assert load_study(write_study(name="named.yaml", reference={"name": "Nemotron-H-8B"})).file.reference.layers is None


def test_the_reference_is_not_part_of_the_studys_identity(write_study):
    """A rerun that measures the parent again (another device, another value) joins the same stored study."""
    first = load_study(write_study(name="a.yaml", reference=PARENT))
    again = load_study(write_study(name="b.yaml", reference={**PARENT, "metrics": {"val_loss": 0.8}}))
    assert study_identity(first)["hash"] == study_identity(again)["hash"]


def test_reference_problems_name_the_field_and_what_is_allowed(write_study):
    found = _issues(write_study, {**PARENT, "colour": "red"})
    assert list(found) == ["reference.colour"]
    assert found["reference.colour"] == ("unknown field", "fields: " + ", ".join(Reference.model_fields))
    found = _issues(write_study, {**PARENT, "blocks": {**PARENT["blocks"], "M": {"kind": "mamba"}}})
    assert "kind 'mamba' is not a block kind; allowed: mamba2, attention, mlp" in found["reference.blocks.M"][0]
    found = _issues(write_study, {**PARENT, "pattern": "(M-x2"})
    assert "pattern '(M-x2'" in found["reference"][0] and "never closed" in found["reference"][0]
    found = _issues(write_study, {**PARENT, "layers": "MMM"})
    assert "layers 'MMM' is not pattern '(M-)x2 *-' expanded ('M-M-*-')" in found["reference"][0]
    found = _issues(write_study, {**PARENT, "blocks": {"M": {"kind": "mamba2"}}})
    assert "blocks has no entry for the symbols ['*', '-']" in found["reference"][0]
    found = _issues(write_study, {**PARENT, "metrics": {"val_loss": "low"}, "n_params": True})
    assert set(found) == {"reference.metrics.val_loss", "reference.n_params"}
    assert _issues(write_study, {"n_params": 3})["reference.name"][0] == "required field is missing"


def test_the_study_schema_describes_the_reference():
    schema = study_schema()
    field = schema["properties"]["reference"]
    assert "compared against" in field["description"]
    definition = schema["$defs"]["Reference"]
    assert definition["additionalProperties"] is False and definition["required"] == ["name"]
    assert set(definition["properties"]) == set(Reference.model_fields)
    assert all(p.get("description") for p in definition["properties"].values())


def test_a_rerun_stores_the_reference_it_measured(write_study, sqlite_url):
    """The stored study keeps its first file but shows the reference of the latest run (a parent measured again)."""
    from archsearch.storage import Database, records

    from studies_helpers import run_study

    run_study(write_study(name="a.yaml", reference=PARENT, n_trials=1), sqlite_url)
    remeasured = {**PARENT, "metrics": {"val_loss": 0.8}}
    run_study(write_study(name="b.yaml", reference=remeasured, n_trials=2), sqlite_url)
    with Database(sqlite_url) as db:
        stored = records.study_by_name(db, "toy")
        assert stored.study_file["reference"]["metrics"] == {"val_loss": 0.8}
        assert len(records.trials_of(db, stored.id)) == 2  # the same study, joined
