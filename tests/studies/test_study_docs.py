"""Study and space files for a newcomer: an unknown field lists the allowed ones (at every depth, inline or in a
space file), and the JSON Schemas of `archsearch schema --kind study|space` accept the shipped files."""

import pytest
import yaml

from archsearch.studies import load_study
from archsearch.studies.documents import FileError
from archsearch.studies.space import load_space
from archsearch.studies.study_file import StudyFile

from studies_helpers import study_doc


def _problems(write_study, **overrides) -> dict[str, str]:
    with pytest.raises(FileError) as err:
        load_study(write_study(**overrides))
    return {".".join(map(str, i.path)): f"{i.message}; allowed: {i.allowed}" for i in err.value.issues}


def test_unknown_fields_list_the_allowed_ones(write_study):
    space = {"pattern": {"n_layers": 3, "colour": 2},
             "parameters": {"d_model": {"type": "categorical", "choices": [64, 128], "whne": 1}}}
    found = _problems(write_study, samplr={"type": "tpe"}, constraints={"budgt": []}, space=space,
                      early_stop={"patiense": 2}, objectives=[{"metric": "val_loss", "dir": "minimize"}])
    assert set(found) == {"samplr", "constraints.budgt", "space.pattern.colour", "space.parameters.d_model.whne",
                          "early_stop.patiense", "objectives.0.dir"}, found
    assert all(m.startswith("unknown field; allowed: fields: ") for m in found.values()), found
    allowed = {k: m.split("fields: ", 1)[1].split(", ") for k, m in found.items()}
    assert allowed["samplr"] == list(StudyFile.model_fields)
    assert allowed["constraints.budgt"] == ["budget", "params"]
    assert {"n_layers", "attention_count", "placement", "local_global", "mlp", "choices"} <= set(
        allowed["space.pattern.colour"])
    assert allowed["space.parameters.d_model.whne"] == ["type", "choices", "when"]  # the tagged member's own
    assert "patience" in allowed["early_stop.patiense"] and allowed["objectives.0.dir"][:2] == ["metric", "direction"]


def test_a_space_file_names_its_allowed_fields_too(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("pattern: {n_layers: 4}\nparameters:\n  d_model: {type: int, low: 64, high: 128, stepp: 64}\n"
                    "paramters: {}\n")
    with pytest.raises(FileError) as err:
        load_space(path)
    found = {".".join(map(str, i.path)): i for i in err.value.issues}
    assert set(found) == {"parameters.d_model.stepp", "paramters"}  # no "not a bool / int / str" noise
    assert found["paramters"].allowed == "fields: name, description, pattern, parameters"
    assert found["parameters.d_model.stepp"].allowed == "fields: type, low, high, step, log, when"
    assert found["paramters"].location.startswith(f"{path}:4:")
