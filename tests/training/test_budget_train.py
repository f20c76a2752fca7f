"""CPU runs with a tokens or a FLOPs budget: the run trains the steps its budget buys and records the steps,
tokens and FLOPs it trained, on its result, its result.json and every curve point; the CLI takes --tokens and
--flops instead of --steps."""

import json
import math

from archsearch.cli import main
from archsearch.spec import dump_spec, training_flops_per_token
from archsearch.training import Recipe, TaskSpec, TrainingStopped, train

SMALL_MQAR = TaskSpec(name="mqar", options={"vocab": 16, "n_pairs": 2})
SEQ, BATCH = 16, 4


def _check_record(result, spec, kind, steps):
    per_token = training_flops_per_token(spec, SEQ)
    assert result.status == "completed" and result.steps == steps
    assert result.tokens == steps * BATCH * SEQ
    assert result.flops == steps * BATCH * SEQ * per_token
    assert result.budget["kind"] == kind and result.budget["steps"] == steps
    for point in result.curve:
        assert point["tokens"] == point["step"] * BATCH * SEQ and point["flops"] == point["tokens"] * per_token
    assert result.curve[-1]["step"] == steps and "val_loss" in result.curve[-1]


def test_a_tokens_budget_trains_the_whole_steps_it_buys(spec, tmp_path):
    recipe = Recipe(tokens=1000, batch_size=BATCH, seq_len=SEQ, eval_every=0.5, warmup=0.25)
    result = train(spec, SMALL_MQAR, recipe, out_dir=tmp_path / "run", progress=False, device="cpu")
    steps = 1000 // (BATCH * SEQ)  # 15
    _check_record(result, spec, "tokens", steps)
    assert result.budget["eval_every"] == round(0.5 * steps) and result.budget["warmup"] == round(0.25 * steps)
    evals = [p["step"] for p in result.curve if "val_loss" in p]
    assert evals == [8, 15]  # eval_every 0.5 of the run, and the last step
    stored = json.loads((tmp_path / "run" / "result.json").read_text())
    assert (stored["steps"], stored["tokens"], stored["flops"], stored["budget"]["kind"]) == \
        (result.steps, result.tokens, result.flops, "tokens")


def test_a_flops_budget_trains_the_steps_its_compute_buys(spec):
    per_step = BATCH * SEQ * training_flops_per_token(spec, SEQ)
    recipe = Recipe(flops=6.5 * per_step, batch_size=BATCH, seq_len=SEQ, eval_every=3)
    result = train(spec, SMALL_MQAR, recipe, progress=False, device="cpu")
    _check_record(result, spec, "flops", math.floor(6.5))
    assert result.flops <= recipe.flops < result.flops + per_step
    assert result.budget["requested"] == recipe.flops


def test_a_stopped_flops_run_records_what_it_trained(spec):
    per_step = BATCH * SEQ * training_flops_per_token(spec, SEQ)
    recipe = Recipe(flops=20 * per_step, batch_size=BATCH, seq_len=SEQ, eval_every=4)

    def stop(step, metrics):
        if step >= 8:
            raise TrainingStopped("enough")

    try:
        train(spec, SMALL_MQAR, recipe, callback=stop, progress=False, device="cpu")
    except TrainingStopped as err:
        result = err.result
    assert result.status == "stopped" and result.steps == 8 and result.budget["steps"] == 20
    assert result.flops == 8 * per_step


def test_cli_tokens_and_flops(spec, tmp_path, capsys):
    path = tmp_path / "tiny.yaml"
    path.write_text(dump_spec(spec))
    small = [str(path), "--task", "mqar", "-t", "vocab=16", "-t", "n_pairs=2", "--seq-len", str(SEQ),
             "--batch-size", str(BATCH), "--device", "cpu", "--json"]
    assert main(["train", *small, "--tokens", "320"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["steps"], result["tokens"], result["budget"]["kind"]) == (5, 320, "tokens")
    flops = 3 * BATCH * SEQ * training_flops_per_token(spec, SEQ)
    assert main(["train", *small, "--flops", f"{flops:.17g}"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["steps"], result["flops"], result["budget"]["kind"]) == (3, flops, "flops")

    assert main(["train", *small, "--steps", "3", "--flops", "1P"]) == 2
    assert "--steps, --flops: give the run's length once" in capsys.readouterr().err
    assert main(["train", *small, "--flops", "10"]) == 2
    assert "recipe.flops: 10 FLOPs buy no step" in capsys.readouterr().err
    assert main(["train", *small, "--tokens", "lots"]) == 2
    assert "tokens: 'lots' is not a size" in capsys.readouterr().err
