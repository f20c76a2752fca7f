"""One convention per idea across commands (issue 18.3): -o/--output is an output path wherever it exists, task
options are -t/--task-option for train and ablate alike, sizes read the same in a spec as on a command line,
databases default to sqlite:///archsearch.db, `--version`, and help that states defaults."""

import inspect
from pathlib import Path
from typing import Optional
import re

import pytest
import typer

from archsearch.cli import app, main

DEFAULT_DB = "sqlite:///archsearch.db"


def _params(command: str) -> dict[str, typer.models.ParameterInfo]:
    """The typer options of a top-level command or `group command`, by parameter name."""
    cmd = typer.main.get_command(app)
    for part in command.split():
        cmd = cmd.commands[part]
    return {p.name: p for p in cmd.params if p.param_type_name == "option"}


def _commands() -> list[str]:
    root = typer.main.get_command(app)
    names = []
    for name, cmd in root.commands.items():
        names += [f"{name} {sub}" for sub in cmd.commands] if hasattr(cmd, "commands") else [name]
    return names


@pytest.mark.parametrize("command", _commands())
def test_o_and_output_name_an_output_path_and_only_that(command):
    for param in _params(command).values():
        names = set(param.opts) | set(param.secondary_opts)
        if names & {"-o", "--output"}:
            assert {"-o", "--output"} <= names, (command, param.opts)  # both spellings, never one alone
            assert param.type_descriptor.annotation in (Path, Optional[Path]), (command, param.name)
        assert "--out" not in names, (command, param.opts)  # one name for output paths


def test_every_output_option_is_found():  # the check above must see the commands that write files
    writers = {c for c in _commands() if any("-o" in p.opts for p in _params(c).values())}
    assert writers == {"schema", "import-hf", "export-hf", "train", "results export", "compress"}


@pytest.mark.parametrize("command", ["train", "ablate"])
def test_train_and_ablate_take_the_task_the_same_way(command):
    params = _params(command)
    assert params["task"].opts == ["--task"] and not params["task"].multiple
    assert sorted(params["task_option"].opts) == ["--task-option", "-t"] and params["task_option"].multiple


@pytest.mark.parametrize("command", ["dashboard", "study list", "results export"])
def test_storage_defaults_to_the_same_database(command):
    assert _params(command)["storage"].default == DEFAULT_DB


def test_version_flag_prints_the_versions(capsys):
    from importlib.metadata import version

    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert f"archsearch {version('archsearch')}" in out.splitlines() and "torch " in out


def test_train_help_states_the_recipe_defaults_and_every_tasks_options(capsys):
    from archsearch.training import TASKS, Recipe
    from archsearch.training.recipe import DEFAULT_STEPS

    assert main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.replace("│", " ").split())
    defaults = Recipe()
    for flag, value in (("--steps", DEFAULT_STEPS), ("--batch-size", defaults.batch_size), ("--lr", defaults.lr),
                        ("--eval-every", defaults.eval_every), ("--seed", defaults.seed)):
        assert re.search(rf"{flag} .*?default: {value}\b", text), flag
    assert f"warmup {defaults.warmup} steps" in text
    for name, cls in TASKS.items():
        assert f"{name} " in text and " ".join(cls.description.split()) in text
        for key, field in cls.Options.model_fields.items():
            assert f"-t {key}=" in text, (name, key)
            assert field.description and " ".join(field.description.split()) in text, (name, key)
            if field.default is not None:
                assert f"(default: {field.default})" in text


def test_task_help_names_exactly_the_tasks():
    from archsearch.cli.train_cmd import TASK_HELP
    from archsearch.training import TASKS

    assert TASK_HELP == "task name: " + ", ".join(TASKS)


def test_train_refuses_a_task_option_given_as_o(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "qwen3-tiny", "--task", "mqar", "-o", "n_pairs=4", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "-o/--output is the run folder" in err and "-t/--task-option KEY=VALUE" in err
    assert not (tmp_path / "n_pairs=4").exists()


def test_ablate_passes_task_options_like_train(monkeypatch, capsys):
    """`ablate --task mqar -t n_pairs=4` hands the grid {name, options} exactly as train builds its TaskSpec."""
    import archsearch.studies.ablate as ablate_module

    seen = {}

    def fake(base, vary, **kwargs):
        seen.update(kwargs)
        raise typer.Exit(0)

    monkeypatch.setattr(ablate_module, "ablate", fake)
    assert main(["ablate", "nemotron-h-tiny", "--vary", "d_model=64", "--task", "selective_copy", "-t", "n_copy=4",
                 "-t", "vocab=8"]) == 0
    assert seen["task"] == {"name": "selective_copy", "options": {"n_copy": 4, "vocab": 8}}


def test_ablate_refuses_an_unknown_task_option_before_training(capsys):
    assert main(["ablate", "nemotron-h-tiny", "--vary", "d_model=64", "--task", "mqar", "-t", "pairs=3"]) == 2
    assert "unknown option 'pairs'" in capsys.readouterr().err


@pytest.mark.parametrize("written, tokens", [("128k", 131072), ("131072", 131072), ("1M", 1 << 20), ("1.5k", 1536),
                                             ("4096", 4096)])
def test_max_context_in_a_spec_reads_sizes_as_context_does(written, tokens):
    from archsearch.spec import loads_spec, parse_size

    text = inspect.cleandoc(f"""
        name: t
        vocab_size: 64
        d_model: 32
        max_context: {written}
        pattern: M
        blocks:
          M: {{kind: mlp, ffn_ratio: 2}}
        """)
    assert loads_spec(text, "t.yaml").max_context == tokens == parse_size(written, "--context")


@pytest.mark.parametrize("written, why", [("12x", "not a token count"), ("1.0001k", "not a token count"),
                                          ("99M", "out of range"), ("0", "greater than or equal to 1")])
def test_max_context_refuses_bad_sizes_with_file_line_and_what_is_allowed(written, why):
    from archsearch.spec import SpecError, loads_spec

    text = (f"name: t\nvocab_size: 64\nd_model: 32\nmax_context: {written}\npattern: M\n"
            "blocks:\n  M: {kind: mlp, ffn_ratio: 2}\n")
    with pytest.raises(SpecError) as err:
        loads_spec(text, "t.yaml")
    message = str(err.value)
    assert "t.yaml:4:" in message and "max_context" in message and why in message
