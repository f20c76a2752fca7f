"""train(): learning, the run folder, exact resume, divergence, callbacks, and errors before training."""

import json

import pytest
import torch
from safetensors.torch import load_file

from archsearch.errors import UserError
from archsearch.spec import loads_spec
from archsearch.training import Recipe, TaskSpec, TrainingStopped, train
from archsearch.training.schedule import lr_at

SMALL_MQAR = TaskSpec(name="mqar", options={"vocab": 16, "n_pairs": 2})


def test_tiny_hybrid_learns_mqar_far_above_chance(spec):
    """Values are 8 ids (chance 1/8); picking any of the 3 values in context without recall gives 1/3. Learning
    MQAR comes as a sudden jump after a plateau near 0.45; seeds 0-4 jumped within 175-350 steps, so the run is
    stopped once it reaches 0.9 (the callback), with 500 steps as the bound."""

    def stop_when_learnt(step, metrics):
        if metrics["accuracy"] >= 0.9:
            raise TrainingStopped("learnt")

    task = TaskSpec(name="mqar", options={"vocab": 16, "n_pairs": 3})
    recipe = Recipe(steps=500, batch_size=32, seq_len=24, lr=3e-3, min_lr=3e-4, warmup=10, weight_decay=0.0,
                    schedule="constant", eval_every=25, eval_batches=4)
    with pytest.raises(TrainingStopped) as stopped:
        train(spec, task, recipe, callback=stop_when_learnt, progress=False, device="cpu")
    result = stopped.value.result
    assert result.status == "stopped" and result.steps <= 500
    assert result.metrics["accuracy"] >= 0.9


def test_run_record_and_folder(spec, tmp_path):
    out = tmp_path / "run"
    recipe = Recipe(steps=4, batch_size=4, seq_len=16, eval_every=2, log_every=1)
    result = train(spec, SMALL_MQAR, recipe, out_dir=out, progress=True, device="cpu")
    for name in ("spec.yaml", "recipe.json", "task.json", "model.safetensors", "optimizer.pt", "rng.pt", "state.json",
                 "result.json"):
        assert (out / name).is_file(), name
    assert loads_spec((out / "spec.yaml").read_text()) == spec
    assert Recipe.model_validate_json((out / "recipe.json").read_text()) == recipe
    assert json.loads((out / "task.json").read_text()) == SMALL_MQAR.to_dict()
    assert json.loads((out / "state.json").read_text())["step"] == 4
    assert json.loads((out / "result.json").read_text())["metrics"] == result.metrics
    weights = load_file(out / "model.safetensors")
    assert weights["embedding.weight"].shape == (64, 64)
    assert [p["step"] for p in result.curve if "loss" in p] == [1, 2, 3, 4]
    assert [p["step"] for p in result.curve if "val_loss" in p] == [2, 4]
    assert result.tokens == 4 * 4 * 16
    assert result.extra["timed_steps"] == 3  # all but the first (compiling, warming) step
    assert result.tokens_per_s == pytest.approx(3 * 4 * 16 / result.extra["train_time_s"])
    assert result.n_params == sum(w.numel() for w in weights.values())
    assert result.backends and result.versions["torch"] == torch.__version__
    assert result.precision == "fp32" and result.mfu is None and result.peak_memory_bytes > 0
    assert set(result.to_dict()) >= {"status", "reason", "metrics", "curve", "tokens_per_s", "mfu",
                                     "peak_memory_bytes", "backends", "precision", "versions", "wall_time_s",
                                     "n_params", "out_dir"}


def test_same_seed_same_run_other_seed_other_run(spec):
    recipe = Recipe(steps=3, batch_size=4, seq_len=16, eval_every=3)
    a, b = (train(spec, SMALL_MQAR, recipe, progress=False, device="cpu") for _ in range(2))
    c = train(spec, SMALL_MQAR, recipe.model_copy(update={"seed": 1}), progress=False, device="cpu")
    assert a.curve == b.curve
    assert a.curve != c.curve


class StopAt(Exception):
    pass


def test_resume_after_a_stop_reproduces_the_uninterrupted_run(spec, tmp_path):
    recipe = Recipe(steps=12, batch_size=8, seq_len=16, eval_every=4, warmup=3, log_every=1)
    straight = train(spec, SMALL_MQAR, recipe, out_dir=tmp_path / "straight", progress=False, device="cpu")

    def stop_at_8(step, metrics):
        if step == 8:
            raise TrainingStopped("pruned at 8")

    with pytest.raises(TrainingStopped) as stopped:
        train(spec, SMALL_MQAR, recipe, out_dir=tmp_path / "split", callback=stop_at_8, progress=False,
              device="cpu")
    assert stopped.value.result.status == "stopped" and stopped.value.result.steps == 8
    resumed = train(None, None, None, out_dir=tmp_path / "split", resume=True, progress=False, device="cpu")
    assert resumed.status == "completed" and resumed.steps == 12
    assert resumed.curve == straight.curve
    a, b = load_file(tmp_path / "straight" / "model.safetensors"), load_file(tmp_path / "split" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_can_extend_a_finished_constant_schedule_run(spec, tmp_path):
    recipe = Recipe(steps=10, batch_size=4, seq_len=16, eval_every=5, warmup=0, schedule="constant")
    straight = train(spec, SMALL_MQAR, recipe, progress=False, device="cpu")
    train(spec, SMALL_MQAR, recipe.model_copy(update={"steps": 5}), out_dir=tmp_path / "r", progress=False,
          device="cpu")
    extended = train(spec, SMALL_MQAR, recipe, out_dir=tmp_path / "r", resume=True, progress=False, device="cpu")
    assert extended.metrics == straight.metrics
    assert json.loads((tmp_path / "r" / "recipe.json").read_text())["steps"] == 10


def test_any_callback_exception_stops_the_run_and_propagates_as_raised(spec, tmp_path):
    """Another exception than TrainingStopped stops the run too (recorded, resumable) and propagates unchanged:
    train() sets no attribute on exceptions that are not its own; the record is in the run folder."""
    seen = []

    def callback(step, metrics):
        seen.append((step, set(metrics)))
        raise StopAt("enough")

    with pytest.raises(StopAt) as err:
        train(spec, SMALL_MQAR, Recipe(steps=6, batch_size=4, seq_len=16, eval_every=2), out_dir=tmp_path / "r",
              callback=callback, progress=False, device="cpu")
    assert seen == [(2, {"val_loss", "accuracy"})]
    assert type(err.value) is StopAt and not hasattr(err.value, "result")
    record = json.loads((tmp_path / "r" / "result.json").read_text())
    assert record["status"] == "stopped" and "enough" in record["reason"] and record["steps"] == 2
    assert json.loads((tmp_path / "r" / "state.json").read_text())["step"] == 2  # resumable


def test_non_finite_loss_stops_with_status_diverged(spec):
    recipe = Recipe(steps=30, batch_size=4, seq_len=16, lr=1e6, min_lr=0, warmup=0, grad_clip=0, weight_decay=0,
                    schedule="constant")
    result = train(spec, SMALL_MQAR, recipe, progress=False, device="cpu")
    assert result.status == "diverged" and result.steps < 30
    assert result.reason.startswith("non-finite")


def test_pipelined_steps_record_what_one_synchronous_step_at_a_time_gives(spec, tmp_path):
    """run_to_end reads step k's loss after queueing step k+1; the curve, the evaluations and the checkpoint must
    still be those of a loop that reads every step before the next (Trainer.train_step)."""
    from archsearch.training.loop import Trainer
    from archsearch.training.prepare import prepare

    recipe = Recipe(steps=7, batch_size=4, seq_len=16, eval_every=3, log_every=1, checkpoint_every=5)
    seen_by_callback = {}
    result = train(spec, SMALL_MQAR, recipe, out_dir=tmp_path / "piped", progress=False, device="cpu",
                   callback=lambda step, metrics: seen_by_callback.setdefault(step, metrics["val_loss"]))
    run = prepare(spec, SMALL_MQAR, recipe, out_dir=None, device="cpu", resume=False)
    trainer = Trainer(run, callback=None, progress=False)
    losses, val_losses = [], {}
    for step in range(1, 8):
        losses.append(trainer.train_step()["loss"])
        if step in (3, 6, 7):
            val_losses[step] = trainer.evaluate()["val_loss"]
        if step == 5:
            weights_at_5 = {k: v.clone() for k, v in run.model.state_dict().items()}
    assert [p["loss"] for p in result.curve if "loss" in p] == losses
    assert [p["step"] for p in result.curve if "loss" in p] == list(range(1, 8))
    assert seen_by_callback == val_losses
    # the checkpoint written at step 5 (then overwritten at the end: resume from a copy made by a stop at 5)
    stopped = tmp_path / "stopped"

    def stop_at_5(step, metrics):
        if step == 5:
            raise TrainingStopped("at 5")

    with pytest.raises(TrainingStopped):
        train(spec, SMALL_MQAR, recipe.model_copy(update={"eval_every": 5}), out_dir=stopped, progress=False,
              device="cpu", callback=stop_at_5)
    saved = load_file(stopped / "model.safetensors")
    assert json.loads((stopped / "state.json").read_text())["step"] == 5
    for name, tensor in saved.items():
        assert torch.equal(tensor, weights_at_5[name]), name


def test_divergence_is_recorded_at_the_step_whose_loss_was_not_finite(spec, monkeypatch):
    from archsearch.training import loop

    recipe = Recipe(steps=10, batch_size=4, seq_len=16, eval_every=10)
    real_queue = loop.Trainer.queue_step

    def nan_at_4(self):
        queued = real_queue(self)
        if queued.step == 4:
            queued.values[0] = float("nan")  # the loss
        return queued

    monkeypatch.setattr(loop.Trainer, "queue_step", nan_at_4)
    result = train(spec, SMALL_MQAR, recipe, progress=False, device="cpu")
    assert result.status == "diverged" and result.steps == 4
    assert result.reason == "non-finite loss (nan) at step 4"

    # the step after it breaks while being queued (e.g. out of memory): the unread step's divergence is the record
    def nan_at_4_then_broken(self):
        if self.step == 4:
            raise RuntimeError("CUDA out of memory (simulated)")
        return nan_at_4(self)

    monkeypatch.setattr(loop.Trainer, "queue_step", nan_at_4_then_broken)
    result = train(spec, SMALL_MQAR, recipe, progress=False, device="cpu")
    assert (result.status, result.steps, result.reason) == ("diverged", 4, "non-finite loss (nan) at step 4")


def test_a_step_that_breaks_while_queued_keeps_the_step_before_it_in_the_curve(spec, tmp_path, monkeypatch):
    from archsearch.training import loop

    real_queue = loop.Trainer.queue_step

    def broken_at_6(self):
        if self.step == 5:
            raise RuntimeError("CUDA out of memory (simulated)")
        return real_queue(self)

    monkeypatch.setattr(loop.Trainer, "queue_step", broken_at_6)
    with pytest.raises(RuntimeError, match="simulated"):
        train(spec, SMALL_MQAR, Recipe(steps=10, batch_size=4, seq_len=16, eval_every=10, log_every=1),
              out_dir=tmp_path / "r", progress=False, device="cpu")
    record = json.loads((tmp_path / "r" / "result.json").read_text())
    assert record["status"] == "failed" and "simulated" in record["reason"]
    assert [p["step"] for p in record["curve"] if "loss" in p] == [1, 2, 3, 4, 5]


def test_a_checkpoint_between_evaluations_holds_the_weights_of_its_step(spec, tmp_path, monkeypatch):
    """checkpoint_every alone makes a step a boundary: what is saved there is that step's model, not the next's."""
    from archsearch.training import checkpoint
    from archsearch.training.loop import Trainer
    from archsearch.training.prepare import prepare

    recipe = Recipe(steps=6, batch_size=4, seq_len=16, eval_every=6, checkpoint_every=4)
    saved = {}
    real_save = checkpoint.save_checkpoint

    def capture(out_dir, model, optimizer, state):
        saved[state["step"]] = {k: v.clone() for k, v in model.state_dict().items()}
        return real_save(out_dir, model, optimizer, state)

    monkeypatch.setattr(checkpoint, "save_checkpoint", capture)
    train(spec, SMALL_MQAR, recipe, out_dir=tmp_path / "r", progress=False, device="cpu")
    run = prepare(spec, SMALL_MQAR, recipe, out_dir=None, device="cpu", resume=False)
    trainer = Trainer(run, callback=None, progress=False)
    for _ in range(4):
        trainer.train_step()
    assert sorted(saved) == [4, 6]
    for name, tensor in run.model.state_dict().items():
        assert torch.equal(saved[4][name], tensor), name


@pytest.mark.parametrize("task, recipe, message", [
    (SMALL_MQAR, {"seq_len": 512}, "seq_len 512 is above the spec's max_context 256"),
    (TaskSpec(name="mqar", options={"seq_len": 300}), {}, "seq_len 300 is above the spec's max_context 256"),
    ("mqar", {"seq_len": 32}, "task 'mqar' needs 256 token ids but the spec's vocab_size is 64"),
    ("mqr", {}, "unknown task 'mqr'; tasks: mqar"),
    (SMALL_MQAR, {"distill": {"teacher": "/nonexistent/run"}}, "is not a run folder with spec.yaml"),
])
def test_bad_input_fails_before_training(spec, tmp_path, task, recipe, message):
    with pytest.raises(UserError, match=message):
        train(spec, task, Recipe(**{"steps": 2, "seq_len": 16, **recipe}), out_dir=tmp_path / "r", progress=False,
              device="cpu")
    assert not (tmp_path / "r").exists()


def test_bad_device_is_a_clear_error(spec):
    with pytest.raises(UserError, match="device 'tpu'"):
        train(spec, SMALL_MQAR, Recipe(steps=1, seq_len=16), progress=False, device="tpu")


def test_a_used_run_folder_is_not_overwritten_and_resume_checks_the_definition(spec, tmp_path):
    out = tmp_path / "r"
    recipe = Recipe(steps=2, batch_size=4, seq_len=16)
    train(spec, SMALL_MQAR, recipe, out_dir=out, progress=False, device="cpu")
    with pytest.raises(UserError, match="already holds a run"):
        train(spec, SMALL_MQAR, recipe, out_dir=out, progress=False, device="cpu")
    with pytest.raises(UserError, match="recipe field\\(s\\) lr differ"):
        train(spec, SMALL_MQAR, recipe.model_copy(update={"lr": 1e-4}), out_dir=out, resume=True, progress=False)
    with pytest.raises(UserError, match="the task"):
        train(spec, TaskSpec(name="mqar"), recipe, out_dir=out, resume=True, progress=False)
    with pytest.raises(UserError, match="holds no checkpoint"):
        train(spec, SMALL_MQAR, recipe, out_dir=tmp_path / "empty", resume=True, progress=False)


@pytest.mark.parametrize("schedule", ["cosine", "wsd"])
def test_a_longer_resumed_run_keeps_the_schedule_it_started_with(spec, tmp_path, capsys, schedule):
    """`train --resume DIR --steps 10` after 6: the rate never jumps back up; steps 6..9 hold the schedule's final
    rate (min_lr), the first 6 steps had exactly the rates of a 6-step run, and the run says so."""
    recipe = Recipe(steps=6, batch_size=4, seq_len=16, eval_every=3, warmup=2, lr=1e-2, min_lr=1e-3,
                    schedule=schedule, log_every=1)
    first = train(spec, SMALL_MQAR, recipe, out_dir=tmp_path / "r", progress=False, device="cpu")
    assert [p["lr"] for p in first.curve if "lr" in p] == pytest.approx([lr_at(recipe, s, 6) for s in range(6)])
    assert json.loads((tmp_path / "r" / "state.json").read_text())["schedule_steps"] == 6
    capsys.readouterr()
    longer = train(spec, SMALL_MQAR, recipe.model_copy(update={"steps": 10}), out_dir=tmp_path / "r", resume=True,
                   progress=False, device="cpu")
    rates = [p["lr"] for p in longer.curve if "lr" in p]
    assert rates[:6] == [p["lr"] for p in first.curve if "lr" in p]
    assert rates[6:] == pytest.approx([1e-3] * 4)  # min_lr: never back up towards lr
    assert all(later <= earlier for earlier, later in zip(rates[2:], rates[3:]))
    assert longer.extra["schedule_steps"] == 6 and "keeps the 6 steps" in longer.extra["schedule_note"]
    assert "its learning-rate schedule keeps the 6 steps it started with" in capsys.readouterr().err
    # a second resume still keeps it (the checkpoint carries schedule_steps forward)
    assert json.loads((tmp_path / "r" / "state.json").read_text())["schedule_steps"] == 6


def test_a_damaged_schedule_steps_is_named(spec, tmp_path):
    out = tmp_path / "r"
    train(spec, SMALL_MQAR, Recipe(steps=2, batch_size=4, seq_len=16), out_dir=out, progress=False, device="cpu")
    state = json.loads((out / "state.json").read_text())
    (out / "state.json").write_text(json.dumps({**state, "schedule_steps": "60"}))
    with pytest.raises(UserError, match="state.json.*invalid 'schedule_steps'"):
        train(None, None, None, out_dir=out, resume=True, progress=False, device="cpu")
