"""One process of a data-parallel training, as torchrun starts it: `python -m archsearch.training.rank_main JOB`.

JOB is the folder archsearch.training.launch prepared: job.json (spec, task, recipe, out_dir, device...) and,
when the launcher has a callback, its socket. Rank 0 writes result.json there; a rank that fails writes
error-RANK.json (type, message, traceback), so the launcher can report the failure without parsing logs."""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

from archsearch.errors import UserError

from .checkpoint import write_json


def run_job(job_dir: Path) -> int:
    from archsearch.spec import loads_spec

    from .bridge import relay
    from .distributed import SINGLE, start_from_env, stop
    from .loop import train
    from .recipe import Recipe
    from .result import TrainingStopped
    from .tasks import TaskSpec

    job = json.loads((job_dir / "job.json").read_text(encoding="utf-8"))
    parallel = SINGLE
    rank = int(os.environ.get("RANK", "0"))
    try:
        parallel, device = start_from_env(job["device"])
        spec = loads_spec(job["spec"], "spec.yaml") if job["spec"] is not None else None
        task = TaskSpec.model_validate(job["task"]) if job["task"] is not None else None
        recipe = Recipe.model_validate(job["recipe"]) if job["recipe"] is not None else None
        callback = relay(parallel, job_dir / "callback.sock") if job["callback"] else None
        out_dir = Path(job["out_dir"]) if job["out_dir"] is not None else None
        try:
            result = train(spec, task, recipe, out_dir=out_dir, callback=callback,
                           progress=job["progress"] and parallel.writer, device=device, resume=job["resume"],
                           parallel=parallel)
        except TrainingStopped as err:  # recorded and checkpointed by train(); the launcher re-raises
            result = err.result
        if parallel.writer:
            write_json(job_dir / "result.json", result.to_dict())
        return 0
    except Exception as err:
        write_json(job_dir / f"error-{rank}.json", {"rank": rank, "type": type(err).__name__,
                                                    "user_error": isinstance(err, UserError), "message": str(err),
                                                    "traceback": traceback.format_exc()})
        print(f"rank {rank}: {type(err).__name__}: {err}", file=sys.stderr)
        return 2 if isinstance(err, UserError) else 1
    finally:
        stop()


if __name__ == "__main__":
    sys.exit(run_job(Path(sys.argv[1])))
