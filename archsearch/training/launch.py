"""`train(..., nproc=N)`: the same training data-parallel in N processes, launched as
`python -m torch.distributed.run --standalone --nproc-per-node N -m archsearch.training.rank_main JOB` (DDP over
NCCL on GPUs, gloo on CPUs). Inputs are checked here first, so most mistakes are one clear error before any
process starts; rank 0's result comes back as the TrainResult, and a callback stop is re-raised as train() does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from archsearch.errors import UserError
from archsearch.spec import ModelSpec, dump_spec

from . import checkpoint
from .distributed import LAUNCH_ENV, check_divisible
from .recipe import Recipe
from .result import TrainingStopped, TrainResult
from .tasks import TaskSpec


def check_launch(nproc: int, device: str | None, batch_size: int, n_gpus: int, visible: str | None = None) -> str:
    """The device type the N processes use ("cuda" or "cpu"), or a UserError naming what is wrong."""
    if not isinstance(nproc, int) or isinstance(nproc, bool) or nproc < 1:
        raise UserError(f"--nproc {nproc!r}: needs a whole number of processes >= 1")
    if device is None:
        kind = "cuda" if n_gpus > 0 else "cpu"
    elif device in ("cpu", "cuda"):
        kind = device
    else:
        raise UserError(f"device {device!r} with nproc {nproc}: name the device type only (cpu or cuda); process i "
                        "uses the i-th visible GPU (choose them with CUDA_VISIBLE_DEVICES)")
    if kind == "cuda":
        if n_gpus == 0:
            raise UserError(f"device 'cuda' with nproc {nproc}: CUDA is not available here; allowed: cpu")
        if nproc > n_gpus:
            shown = f" (CUDA_VISIBLE_DEVICES={visible})" if visible is not None else ""
            raise UserError(f"--nproc {nproc}: more processes than GPUs; {n_gpus} visible{shown}, one process per "
                            f"GPU: use --nproc <= {n_gpus}, or --device cpu for gloo processes on CPU")
    check_divisible(batch_size, nproc)
    return kind


def launch_env(nproc: int) -> dict[str, str]:
    env = os.environ.copy()
    env.update(LAUNCH_ENV)
    env["PYTHONSAFEPATH"] = "1"  # the working directory (a checkout's root) must not shadow installed packages
    # torchrun would set 1 thread per process; on CPU that leaves cores idle
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    return env


def command(nproc: int, job_dir: Path) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", f"--nproc-per-node={nproc}",
            "--module", "archsearch.training.rank_main", str(job_dir)]


def _recipe_for_checks(recipe: Recipe | None, out: Path | None, resume: bool) -> Recipe:
    if recipe is not None:
        return recipe
    if not resume or out is None:
        raise UserError("train needs a spec, a task and a recipe (or resume=True with a run folder)")
    _, saved, _ = checkpoint.read_definition(out)
    return Recipe.model_validate(saved)


def train_parallel(spec: ModelSpec | None, task: TaskSpec | str | None, recipe: Recipe | None, *, nproc: int,
                   out_dir: Path | None, callback, progress: bool, device: str | None, resume: bool) -> TrainResult:
    import torch

    out = Path(out_dir).expanduser().resolve() if out_dir is not None else None
    if resume and out is None:
        raise UserError("resume needs out_dir (the run folder to continue)")
    if not resume and (spec is None or task is None or recipe is None):
        raise UserError("train needs a spec, a task and a recipe (or resume=True with a run folder)")
    if not resume and out is not None and checkpoint.has_checkpoint(out):
        raise UserError(f"out_dir {str(out)!r} already holds a run (or part of one); resume it or choose "
                            "another folder")
    checked = _recipe_for_checks(recipe, out, resume)
    kind = check_launch(nproc, device, checked.batch_size, torch.cuda.device_count(),
                        os.environ.get("CUDA_VISIBLE_DEVICES"))
    task_spec = TaskSpec.coerce(task) if task is not None else None
    job_dir = Path(tempfile.mkdtemp(prefix="archsearch-ddp-"))
    try:
        job = {"spec": dump_spec(spec) if spec is not None else None,
               "task": task_spec.to_dict() if task_spec is not None else None,
               "recipe": recipe.to_dict() if recipe is not None else None,
               "out_dir": str(out) if out is not None else None, "device": kind, "resume": resume,
               "progress": progress, "callback": callback is not None}
        checkpoint.write_json(job_dir / "job.json", job)
        return _run(nproc, job_dir, callback)
    finally:
        shutil.rmtree(job_dir, ignore_errors=True)


def _run(nproc: int, job_dir: Path, callback) -> TrainResult:
    server = None
    if callback is not None:
        from .bridge import CallbackServer

        server = CallbackServer(callback, job_dir / "callback.sock")
    proc = subprocess.Popen(command(nproc, job_dir), env=launch_env(nproc))
    try:
        code = server.serve(proc) if server is not None else proc.wait()
    except BaseException:  # Ctrl-C reached torchrun too; let it stop its ranks before going on
        proc.wait()
        raise
    result_file = job_dir / "result.json"
    result = TrainResult.from_dict(json.loads(result_file.read_text())) if result_file.exists() else None
    errors = sorted(job_dir.glob("error-*.json"), key=lambda p: int(p.stem.split("-")[1]))
    if errors:
        error = json.loads(errors[0].read_text())
        if error["user_error"]:
            raise UserError(error["message"])
        raise RuntimeError(f"training in {nproc} processes failed on rank {error['rank']}: {error['type']}: "
                           f"{error['message']}")
    if result is None:
        raise RuntimeError(f"torchrun exited with code {code} and rank 0 left no result (its output is above)")
    if result.status == "stopped":
        raised = server.raised if server is not None else None
        if raised is None or isinstance(raised, TrainingStopped):  # as train() in one process: the record with it
            raise (raised or TrainingStopped(result.reason)).with_result(result)
        raise raised  # another exception of the callback: as raised (the record is in the run folder)
    return result
