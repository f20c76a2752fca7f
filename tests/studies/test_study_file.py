"""Study files: every problem located at file:line:col, nothing run before the file is known to be good."""

import pytest
import yaml

from archsearch.studies import FileError, load_study


def _write(tmp_path, text, name="s.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_shipped_quickstart_loads():
    from importlib import resources

    study = load_study(str(resources.files("archsearch.study_files") / "quickstart.yaml"))
    assert study.space.names() and study.file.constraints.budget


def test_yaml_syntax_error_is_located(tmp_path):
    path = _write(tmp_path, "name: x\nobjectives: [val_loss\n")
    with pytest.raises(FileError, match=r"s\.yaml:3:1"):
        load_study(path)


def test_field_errors_are_located(write_study, tmp_path):
    path = write_study(objectives=["val_loss", {"metric": "perplexity"}], n_trials=0, sampler={"type": "bayes"})
    with pytest.raises(FileError) as info:
        load_study(path)
    text = str(info.value)
    assert "objectives.[1]" in text or "objectives[1]" in text
    assert "give its direction" in text
    assert "n_trials" in text and "greater than or equal to 1" in text
    assert "sampler.type" in text
    lines = path.read_text().splitlines()
    n_trials_line = next(i for i, line in enumerate(lines, 1) if line.startswith("n_trials"))
    assert f"study.yaml:{n_trials_line}:" in text


def test_unknown_top_level_field_and_pruner_with_two_objectives(write_study):
    with pytest.raises(FileError, match="unknown field"):
        load_study(write_study(n_trails=3))
    with pytest.raises(FileError, match="a pruner works for one objective only"):
        load_study(write_study(objectives=["val_loss", "n_params"], pruner={"type": "median"}))


def test_space_errors_point_into_the_space_file(write_study, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("parameters:\n  d_model: {type: int, low: 64, high: 128, step: 64}\n"
                     "  blocks.M.dstate: {type: int, low: 8, high: 16}\n")
    with pytest.raises(FileError) as info:
        load_study(write_study(space="space.yaml"))
    assert "space.yaml:3:" in str(info.value) and "has no field 'dstate'" in str(info.value)


def test_inline_space_and_base_errors_are_located(write_study):
    path = write_study(space={"parameters": {"blocks.Z.d_state": 8}},
                       base={"name": "b", "vocab_size": 64, "d_model": 64, "max_context": 64, "pattern": "Q",
                             "blocks": {"M": {"kind": "mamba2", "n_heads": 2}}})
    with pytest.raises(FileError) as info:
        load_study(path)
    assert "base.pattern" in str(info.value) and "symbol 'Q'" in str(info.value)


def test_unknown_device_and_bad_context(write_study):
    path = write_study(constraints={"budget": [{"device": "tpu9", "context": "lots"}]})
    with pytest.raises(FileError) as info:
        load_study(path)
    assert "unknown device 'tpu9'" in str(info.value) and "constraints.budget[0].context" in str(info.value)


def test_base_by_example_name_and_relative_path(write_study, tmp_path):
    from archsearch.spec import dump_spec, load_spec

    (tmp_path / "mybase.yaml").write_text(dump_spec(load_spec("nemotron-h-tiny")))
    space = {"parameters": {"blocks.M.d_state": {"type": "categorical", "choices": [8, 16]}}}
    for base in ("nemotron-h-tiny", "mybase.yaml"):
        study = load_study(write_study(base=base, space=space, constraints={}))
        assert study.base.name == "nemotron-h-tiny"
    with pytest.raises(FileError, match="no such file or example"):
        load_study(write_study(base="nope.yaml", space=space))
