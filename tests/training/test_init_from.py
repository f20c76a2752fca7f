"""Finetuning from a run (recipe.init_from, `train --init-from`): the run's weights are where training starts, a
spec with other tensor shapes is refused naming them, and the run records where it started."""

import json

import pytest
import torch
from safetensors.torch import load_file

from archsearch.cli import main
from archsearch.errors import UserError
from archsearch.training import Recipe, TaskSpec, train

TABLE = TaskSpec(name="memorization", options={"n_keys": 16, "map_seed": 1})


def recipe(steps, **extra):
    fields = dict(steps=steps, batch_size=16, seq_len=16, lr=1e-2, min_lr=1e-3, warmup=3, eval_every=steps)
    return Recipe(**{**fields, **extra})


@pytest.fixture(scope="module")
def trained(tmp_path_factory, make_spec):
    out = tmp_path_factory.mktemp("pre") / "run"
    result = train(make_spec(64), TABLE, recipe(30), out_dir=out, progress=False, device="cpu")
    assert result.metrics["accuracy"] > 0.9
    return out


def test_finetuning_starts_from_the_runs_weights(make_spec, trained, tmp_path):
    # one step at a tiny learning rate: a finetuned model keeps the table it was given, a fresh one knows nothing
    tiny = dict(lr=1e-6, min_lr=1e-7)
    tuned = train(make_spec(64), TABLE, recipe(1, init_from=str(trained), **tiny), out_dir=tmp_path / "ft",
                  progress=False, device="cpu")
    fresh = train(make_spec(64), TABLE, recipe(1, **tiny), progress=False, device="cpu")
    assert tuned.metrics["accuracy"] > 0.9 > 0.3 > fresh.metrics["accuracy"]
    assert tuned.recipe["init_from"] == str(trained)  # recorded in the run's result
    saved = json.loads((tmp_path / "ft" / "result.json").read_text())
    assert saved["recipe"]["init_from"] == str(trained)
    before, after = load_file(trained / "model.safetensors"), load_file(tmp_path / "ft" / "model.safetensors")
    assert all(torch.allclose(before[k], after[k], atol=1e-3) for k in before)


def test_a_compatible_spec_is_accepted_and_an_incompatible_one_names_the_tensors(make_spec, trained):
    longer = make_spec(64).model_copy(update={"max_context": 512, "name": "longer"})  # same tensors
    train(longer, TABLE, recipe(1, init_from=str(trained)), progress=False, device="cpu")
    with pytest.raises(UserError, match=r"init_from.*embedding.weight \(run \(64, 64\), model \(80, 64\)\)"):
        train(make_spec(80), TABLE, recipe(1, init_from=str(trained)), progress=False, device="cpu")


def test_a_folder_without_weights_is_a_clear_error(make_spec, tmp_path):
    with pytest.raises(UserError, match="init_from.*not a run folder with model.safetensors"):
        train(make_spec(64), TABLE, recipe(1, init_from=str(tmp_path)), progress=False, device="cpu")


def test_cli_init_from_uses_the_runs_spec(trained, tmp_path, capsys):
    out = tmp_path / "ft"
    code = main(["train", "--task", "memorization", "-t", "n_keys=16", "-t", "map_seed=1",
                                      "--init-from", str(trained), "--steps", "1", "--seq-len", "16",
                                      "--device", "cpu", "-o", str(out), "--json"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert json.loads(printed)["recipe"]["init_from"] == str(trained)
    assert (out / "spec.yaml").read_text() == (trained / "spec.yaml").read_text()
    assert main(["train", "--task", "mqar", "--init-from", str(tmp_path / "nowhere")]) == 2
    assert "no spec.yaml there" in capsys.readouterr().err


def test_studies_and_ablations_take_init_from_as_a_recipe_field(trained):
    from archsearch.studies.evaluate import resolve_training

    _, parsed = resolve_training({"name": "memorization"}, {"init_from": str(trained)})
    assert parsed.init_from == str(trained)
    with pytest.raises(UserError, match="recipe.init_from"):
        resolve_training({"name": "memorization"}, {"init_from": ""})


def test_a_tied_run_does_not_fit_an_untied_spec(make_spec, trained):
    untied = make_spec(64).model_copy(update={"tie_embeddings": False})
    with pytest.raises(UserError, match=r"lm_head.weight \(missing from the run\)"):
        train(untied, TABLE, recipe(1, init_from=str(trained)), progress=False, device="cpu")
