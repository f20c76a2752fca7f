"""A candidate of the compression search is distilled from the parent the search holds in memory, starting from
its sliced weights handed to train() directly. Shown here on a tiny parent: the result is the one the earlier path
gave (the child written as a step-0 run folder, resumed, the teacher read back from the parent's folder), bit for
bit; the parent's weights file is not read per candidate; no starting checkpoint is written; the run folder left
is a complete, resumable distillation run."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from archsearch.compression.importance import score_parent
from archsearch.compression.parent import load_parent
from archsearch.compression.prune import derive_child, slice_weights
from archsearch.compression.search import distil_child
from archsearch.spec import parse_spec
from archsearch.studies.evaluate import resolve_training
from archsearch.training import Recipe, TaskSpec, train

from compression_helpers import PARENT, TASK, train_parent

RUN_FILES = {"spec.yaml", "recipe.json", "task.json", "model.safetensors", "optimizer.pt", "rng.pt", "state.json",
             "result.json"}


@pytest.fixture(scope="module")
def parent_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("in-memory") / "parent"
    train_parent(out, eval_batches=1)
    score_parent(load_parent(out), batches=2, batch_size=4)
    return out


def child_and_recipe(parent, name="child"):
    from archsearch.compression.importance import Importance

    importance = Importance.load(parent.folder)
    spec = derive_child(parent.spec, importance, name=name, d_model=24, n_layers=4)
    _, recipe = resolve_training(parent.task, {
        "steps": 3, "batch_size": 4, "seq_len": 16, "warmup": 1, "eval_every": 1, "eval_batches": 1,
        "distill": {"teacher": str(parent.folder.resolve()), "temperature": 2.0, "alpha": 0.5}}, seed=0)
    return importance, spec, recipe


def distil_through_disk(parent, importance, spec, recipe, out):
    """The earlier path: the sliced child written as a run folder at step 0 (definition, weights, a fresh AdamW)
    and resumed, its teacher rebuilt from the parent's run folder."""
    from archsearch.training import checkpoint
    from archsearch.training.prepare import parameter_groups

    child = slice_weights(parent.model, importance, spec)
    checkpoint.write_definition(out, spec, recipe.to_dict(), parent.task)
    optimizer = torch.optim.AdamW(parameter_groups(child, recipe.weight_decay), lr=recipe.lr, betas=recipe.betas,
                                  eps=recipe.eps)
    checkpoint.save_checkpoint(out, child, optimizer, {"step": 0, "tokens": 0, "flops": 0, "curve": [],
                                                       "metrics": {}})
    return train(None, None, None, out_dir=out, progress=False, device="cpu", resume=True).to_dict()


def test_the_distilled_child_is_the_one_the_disk_round_trip_gave(parent_run, tmp_path):
    parent = load_parent(parent_run)
    importance, spec, recipe = child_and_recipe(parent)
    old = distil_through_disk(parent, importance, spec, recipe, tmp_path / "old")
    new = distil_child(parent, importance, spec, recipe, tmp_path / "new", device="cpu")
    assert new["status"] == old["status"] == "completed" and new["steps"] == 3
    assert {k: v for k, v in new["metrics"].items() if k != "zero_shot_loss"} == old["metrics"]
    assert new["metrics"]["zero_shot_loss"] > 0
    assert new["curve"] == old["curve"]  # every step's loss, ce, kl, grad norm and every evaluation, exactly
    old_weights, new_weights = load_file(tmp_path / "old" / "model.safetensors"), \
        load_file(tmp_path / "new" / "model.safetensors")
    assert old_weights.keys() == new_weights.keys()
    assert all(torch.equal(old_weights[k], new_weights[k]) for k in old_weights)
    # the same run folder: the same definition, a result naming the parent's folder as the teacher
    assert {p.name for p in (tmp_path / "new").iterdir()} == RUN_FILES == {p.name for p in (tmp_path / "old").iterdir()}
    for name in ("spec.yaml", "recipe.json", "task.json"):
        assert (tmp_path / "new" / name).read_text() == (tmp_path / "old" / name).read_text()
    recorded = json.loads((tmp_path / "new" / "result.json").read_text())
    assert recorded["extra"]["teacher"] == str(parent_run.resolve()) == old["extra"]["teacher"]
    assert recorded["metrics"]["zero_shot_loss"] == new["metrics"]["zero_shot_loss"]


def test_no_file_of_the_parent_is_read_per_candidate_and_no_start_checkpoint_written(parent_run, tmp_path):
    folder = tmp_path / "parent"
    shutil.copytree(parent_run, folder)
    parent = load_parent(folder)
    importance, spec, recipe = child_and_recipe(parent)
    # the parent's weights file is now unreadable: a teacher loaded from it would fail
    (folder / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(Exception, match="is not a readable safetensors file"):
        train(spec, TaskSpec.model_validate(parent.task), recipe, out_dir=tmp_path / "from-disk", progress=False,
              device="cpu")
    seen = []

    def callback(step, metrics):  # after each evaluation: which files the run folder holds then
        seen.append((step, {p.name for p in out.iterdir()}))

    out = tmp_path / "child"
    result = distil_child(parent, importance, spec, recipe, out, device="cpu", callback=callback)
    assert result["status"] == "completed" and result["metrics"]["kl_to_teacher"] >= 0
    assert [step for step, _ in seen] == [1, 2, 3]
    assert all("model.safetensors" not in files and "optimizer.pt" not in files for _, files in seen)
    assert {p.name for p in out.iterdir()} == RUN_FILES
    assert not parent.model.training and not any(p.requires_grad for p in parent.model.parameters())


def test_the_childs_run_folder_resumes_for_more_steps(parent_run, tmp_path):
    parent = load_parent(parent_run)
    importance, spec, recipe = child_and_recipe(parent)
    out = tmp_path / "child"
    distil_child(parent, importance, spec, recipe, out, device="cpu")
    more = train(None, None, recipe.model_copy(update={"steps": 5}), out_dir=out, progress=False, device="cpu",
                 resume=True)  # the teacher read from the folder the record names
    assert more.status == "completed" and more.steps == 5 and more.extra["teacher"] == str(parent_run.resolve())
