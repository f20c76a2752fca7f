"""Two gloo processes on CPU: the same loss curve as one process over the same global batch, metrics reduced
over ranks, rank 0 alone writing, the callback's stop reaching every rank, a rank's error coming back."""

import json

import pytest

from archsearch.errors import UserError
from archsearch.training import Recipe, TaskSpec, TrainingStopped, train
from archsearch.training.distributed import Parallel
from archsearch.training.launch import check_launch

RUN_FILES = {"spec.yaml", "recipe.json", "task.json", "model.safetensors", "optimizer.pt", "rng.pt", "state.json",
             "result.json"}


def test_two_processes_follow_one_process_and_reduce_their_metrics(spec, tmp_path):
    """Noisy recall scores a different number of positions per row, so each rank's half batch holds its own
    count: a loss normalised by the rank's count instead of the global one, or a sum instead of a mean over
    ranks, moves the curve far past the tolerance. grad_accum 2 exercises DDP's no_sync on the first micro-batch."""
    task = TaskSpec(name="noisy_recall")
    recipe = Recipe(steps=4, batch_size=4, grad_accum=2, seq_len=24, lr=1e-2, warmup=0, schedule="constant",
                    eval_every=2, eval_batches=2, log_every=1, seed=3)
    from archsearch.training.tasks import make_task

    counts_B = (make_task(task, 24, 3).train_batch(0, 4).targets_BT != -100).sum(1)
    assert counts_B[:2].sum() != counts_B[2:].sum()  # the ranks' halves differ
    one = train(spec, task, recipe, progress=False, device="cpu")
    out = tmp_path / "run"
    two = train(spec, task, recipe, progress=False, device="cpu", nproc=2, out_dir=out)

    assert two.status == "completed" and two.steps == 4 and two.tokens == one.tokens
    assert [sorted(p) for p in two.curve] == [sorted(p) for p in one.curve]
    for a, b in zip(one.curve, two.curve):
        for key in ("loss", "grad_norm", "val_loss", "accuracy"):
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=2e-5, abs=1e-6), (a["step"], key)
    assert one.curve[-2]["loss"] < one.curve[0]["loss"] - 0.05  # the curve moved: the comparison means something

    ranks = two.extra["ranks"]
    assert two.extra["world_size"] == 2 and [r["rank"] for r in ranks] == [0, 1]
    assert two.tokens_per_s == pytest.approx(sum(r["tokens_per_s"] for r in ranks))
    assert two.peak_memory_bytes == max(r["peak_memory_bytes"] for r in ranks)
    assert all(r["tokens_per_s"] > 0 and r["peak_memory_bytes"] > 0 for r in ranks)

    assert {p.name for p in out.iterdir()} == RUN_FILES  # no temporary or per-rank leftovers
    assert json.loads((out / "result.json").read_text())["metrics"] == two.metrics
    assert json.loads((out / "state.json").read_text())["step"] == 4
    resumed = train(None, None, None, out_dir=out, resume=True, progress=False, device="cpu")
    assert resumed.steps == 4 and resumed.metrics["val_loss"] == pytest.approx(two.metrics["val_loss"], rel=1e-5)


def test_a_rank_other_than_zero_writes_nothing(spec, task, tmp_path):
    out = tmp_path / "run"
    recipe = Recipe(steps=2, batch_size=2, seq_len=16, eval_every=1, eval_batches=1)
    result = train(spec, task, recipe, out_dir=out, progress=False, device="cpu", parallel=Parallel(rank=1))
    assert result.status == "completed" and result.steps == 2
    assert not out.exists()


def test_a_callback_stop_stops_every_rank_with_a_resumable_checkpoint(spec, task, tmp_path):
    seen = []

    def stop_at_two(step, metrics):
        seen.append((step, metrics["val_loss"]))
        if step == 2:
            raise TrainingStopped("enough")

    out = tmp_path / "run"
    recipe = Recipe(steps=6, batch_size=4, seq_len=16, eval_every=1, eval_batches=1)
    with pytest.raises(TrainingStopped, match="enough") as stopped:
        train(spec, task, recipe, out_dir=out, callback=stop_at_two, progress=False, device="cpu", nproc=2)
    result = stopped.value.result
    assert result.status == "stopped" and result.steps == 2 and [s for s, _ in seen] == [1, 2]
    assert seen[-1][1] == pytest.approx(result.metrics["val_loss"])
    assert json.loads((out / "state.json").read_text())["step"] == 2


def test_an_error_in_the_processes_comes_back_as_the_same_user_error(spec, tmp_path):
    short = TaskSpec(name="mqar", options={"vocab": 16, "n_pairs": 4})  # 4 pairs need seq_len >= 16
    recipe = Recipe(steps=2, batch_size=2, seq_len=8)
    with pytest.raises(UserError, match="seq_len 8 is too short for 4 pairs"):
        train(spec, short, recipe, progress=False, device="cpu", nproc=2)


@pytest.mark.parametrize("nproc, device, batch, gpus, message", [
    (0, None, 4, 0, "--nproc 0: needs a whole number of processes >= 1"),
    (3, "cpu", 4, 0, "batch_size 4 is not divisible by nproc 3"),
    (2, "cuda", 4, 1, "--nproc 2: more processes than GPUs; 1 visible (CUDA_VISIBLE_DEVICES=3)"),
    (2, "cuda", 4, 0, "CUDA is not available here"),
    (2, "cuda:1", 4, 4, "name the device type only (cpu or cuda)"),
])
def test_bad_launches_are_clear_errors(nproc, device, batch, gpus, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_launch(nproc, device, batch, gpus, "3")


def test_launch_picks_the_device_type():
    assert check_launch(2, None, 4, 0) == "cpu"
    assert check_launch(2, None, 4, 2) == "cuda"
    assert check_launch(4, "cpu", 8, 2) == "cpu"  # gloo processes on CPU whatever the GPUs


def test_each_rank_takes_its_own_rows_of_the_global_batch(task):
    from archsearch.training.tasks import make_task

    batch = make_task(task, 16, seed=5).train_batch(7, 6)
    shards = [Parallel(rank=r, world_size=3).shard(batch) for r in range(3)]
    assert [s.input_ids_BT.shape[0] for s in shards] == [2, 2, 2]
    assert all((s.input_ids_BT == batch.input_ids_BT[2 * r:2 * r + 2]).all() for r, s in enumerate(shards))
    assert all((s.targets_BT == batch.targets_BT[2 * r:2 * r + 2]).all() for r, s in enumerate(shards))
    with pytest.raises(UserError, match="batch_size 6 is not divisible by nproc 4"):
        Parallel(rank=0, world_size=4).shard(batch)
