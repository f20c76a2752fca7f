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


# ------------------------------------------------------------------------------------------ JSON Schemas
def _errors(instance, schema, root, path="$") -> list[str]:
    """A small JSON Schema (2020-12) checker for the keywords pydantic's schemas use (jsonschema is not a
    dependency): $ref, anyOf / oneOf / allOf, type, enum, const, properties, required, additionalProperties,
    items, prefixItems, min/maxItems, numeric bounds, min/maxLength, pattern, propertyNames."""
    import re

    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        return _errors(instance, root["$defs"][name] if name != "#" else root, root, path)
    out = []
    for key in ("anyOf", "oneOf"):
        if key in schema:
            passing = sum(not _errors(instance, option, root, path) for option in schema[key])
            if passing == 0 or (key == "oneOf" and passing > 1):
                out.append(f"{path}: {key} matched {passing} options")
    for option in schema.get("allOf", []):
        out += _errors(instance, option, root, path)
    types = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        ok = any(isinstance(instance, int) and not isinstance(instance, bool) if k == "integer" else
                 isinstance(instance, (int, float)) and not isinstance(instance, bool) if k == "number" else
                 isinstance(instance, types[k]) for k in kinds)
        if not ok:
            return out + [f"{path}: not {kind}: {instance!r}"[:200]]
    if "enum" in schema and instance not in schema["enum"]:
        out.append(f"{path}: {instance!r} not in {schema['enum']}")
    if "const" in schema and instance != schema["const"]:
        out.append(f"{path}: {instance!r} != {schema['const']!r}")
    if isinstance(instance, dict):
        props = schema.get("properties", {})
        out += [f"{path}: missing {r}" for r in schema.get("required", []) if r not in instance]
        for key, value in instance.items():
            if key in props:
                out += _errors(value, props[key], root, f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                out.append(f"{path}: unknown {key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                out += _errors(value, schema["additionalProperties"], root, f"{path}.{key}")
            if "propertyNames" in schema:
                out += _errors(key, schema["propertyNames"], root, f"{path}[{key!r}]")
    if isinstance(instance, list):
        prefix = schema.get("prefixItems", [])
        for index, item in enumerate(instance):
            sub = prefix[index] if index < len(prefix) else schema.get("items")
            if isinstance(sub, dict):
                out += _errors(item, sub, root, f"{path}[{index}]")
        if len(instance) < schema.get("minItems", 0) or len(instance) > schema.get("maxItems", len(instance)):
            out.append(f"{path}: {len(instance)} items")
    if isinstance(instance, (int, float)) and not isinstance(instance, bool):
        for key, bad in (("minimum", lambda b: instance < b), ("maximum", lambda b: instance > b),
                         ("exclusiveMinimum", lambda b: instance <= b), ("exclusiveMaximum", lambda b: instance >= b)):
            if key in schema and bad(schema[key]):
                out.append(f"{path}: {instance} fails {key} {schema[key]}")
    if isinstance(instance, str):
        if not schema.get("minLength", 0) <= len(instance) <= schema.get("maxLength", len(instance)):
            out.append(f"{path}: length {len(instance)}")
        if "pattern" in schema and not re.search(schema["pattern"], instance):
            out.append(f"{path}: {instance!r} does not match {schema['pattern']}")
    return out


def _schema(capsys, kind, tmp_path):
    import json

    from archsearch.cli import main

    target = tmp_path / f"{kind}.schema.json"
    assert main(["schema", "--kind", kind, "-o", str(target)]) == 0
    capsys.readouterr()
    return json.loads(target.read_text())


def _shipped(folder):
    from pathlib import Path

    import archsearch

    root = Path(archsearch.__file__).resolve().parent.parent / folder
    files = sorted(root.glob("*.yaml"))
    assert files, root
    return [(f.name, yaml.safe_load(f.read_text())) for f in files]


def test_the_study_schema_accepts_the_shipped_studies_and_names_every_field(capsys, tmp_path):
    schema = _schema(capsys, "study", tmp_path)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert set(schema["properties"]) == set(StudyFile.model_fields)
    assert all(p.get("description") for p in schema["properties"].values())  # hover text for every field
    shipped = _shipped("studies")
    for name, document in shipped:
        assert _errors(document, schema, schema) == [], name
    document = dict(shipped[0][1])
    # what the schema must refuse, as the loader does
    for bad in ({"samplr": {}}, {"keep_checkpoints": "some"}, {"space": {"pattern": {"colour": 1}}},
                {"recipe": {"stepz": 3}}, {"objectives": [{"metric": "val_loss", "dir": "up"}]},
                {"base": {"name": "x"}}):
        assert _errors({**document, **bad}, schema, schema), bad
    # and what it must accept: names and paths, an inline spec, a study written as in the test helpers
    for good in ({"space": "hybrid-tiny"}, {"base": "nemotron-h-tiny", "space": "../spaces/hybrid-tiny.yaml"},
                 {"objectives": ["val_loss", {"metric": "n_params", "direction": "minimize"}]},
                 {"recipe": {"tokens": "5M", "warmup": 0.1}}, {"keep_checkpoints": "best"}):
        assert _errors({**document, **good}, schema, schema) == [], good
    assert _errors(study_doc(), schema, schema) == []


def test_the_space_schema_accepts_the_shipped_spaces(capsys, tmp_path):
    schema = _schema(capsys, "space", tmp_path)
    pattern = schema["$defs"]["PatternSpace"]["properties"]
    assert all(pattern[f].get("description") for f in ("n_layers", "placement", "local_global", "mlp", "choices"))
    for name, document in _shipped("spaces"):
        assert _errors(document, schema, schema) == [], name
        assert _errors({**document, "paramters": {}}, schema, schema), name
    assert _errors({"pattern": {"choices": ["M-M-*-", "(M-)x4 *-"]}}, schema, schema) == []
    assert _errors({"parameters": {"d_model": {"type": "int", "low": 64, "high": 128, "stepp": 64}}}, schema, schema)


def test_the_readme_study_and_space_examples_load_and_match_the_schemas(capsys, tmp_path):
    """The README's commented study and space files (with its spec example as my-hybrid.yaml) pass the full
    preflight and their schemas, so the documentation cannot drift from what is accepted."""
    import re
    from pathlib import Path

    import archsearch
    from archsearch.studies.preflight import preflight

    readme = (Path(archsearch.__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("## Study and space files"):readme.index("## Studies: what a trial")]
    study, space = re.findall(r"```yaml\n(.*?)```", section, re.S)
    spec = re.findall(r"```yaml\n(.*?)```", readme[readme.index("## Spec files"):], re.S)[0]
    for name, text in (("study.yaml", study), ("my-space.yaml", space), ("my-hybrid.yaml", spec)):
        (tmp_path / name).write_text(text)
    loaded = preflight(tmp_path / "study.yaml")
    assert {"pattern.local_global", "pattern.mlp", "blocks.L.window"} <= set(loaded.space.names())
    for kind, text in (("study", study), ("space", space)):
        schema = _schema(capsys, kind, tmp_path)
        assert _errors(yaml.safe_load(text), schema, schema) == [], kind
