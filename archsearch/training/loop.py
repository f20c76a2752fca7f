"""`train(spec, task, recipe)`: the optimisation loop, periodic evaluation, checkpoints and the run's record."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from archsearch.spec import ModelSpec

from . import checkpoint
from .budget import resolve_budget
from .compile_session import cache_counters
from .distributed import SINGLE, Parallel
from .losses import correct_count, kl_sum, masked_ce_sum
from .prepare import Prepared, prepare
from .progress import ProgressBar
from .recipe import Recipe
from .result import TrainResult, TrainingStopped
from .runinfo import device_peak_flops, peak_memory, versions
from .schedule import lr_at, schedule_note
from .step_graph import StepGraph, plain_step, unsupported
from .tasks import Batch, TaskSpec

Callback = Callable[[int, dict[str, float]], None]
# Scores the trained model in memory at the end of a run (or where a callback stopped it): e.g. a study's recall
# probe, which would otherwise need the run saved to disk and rebuilt from there.
FinalMetrics = Callable[[torch.nn.Module], dict[str, float]]


@dataclass(frozen=True)
class Pauses:
    """Points where a run stops for a decision without leaving memory (successive halving's rungs). At each of
    `steps` the run evaluates (whatever its eval_every), `final_metrics` are scored too and, after the callback,
    `decide(record)` sees the run's record so far (a TrainResult dict, status "paused"). To end the run there it
    raises a TrainingStopped (with `save_checkpoint = False` none is written); returning lets the run go on,
    its checkpoint saved first so that a crash resumes from this point. Before, a rung meant stop, save, decide,
    rebuild and load: two disk round trips and a second warm-up for every trial at every rung.
    `save_at_end=False`: no checkpoint when the run completes (a study that removes the folder of a finished trial
    would write ~12 bytes a parameter only to delete them; result.json is still written). `checkpoint_min_s`: the
    checkpoint after a promotion is saved only when the run has trained longer than this (timed steps) since its
    last save or start, which is what a crash would lose; 0 saves at every promotion."""
    steps: tuple[int, ...]
    decide: Callable[[dict[str, Any]], None]
    save_at_end: bool = True
    checkpoint_min_s: float = 0.0


class Diverged(Exception):
    """A non-finite loss or gradient: the run stops and records why."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step


@dataclass
class QueuedStep:
    """A step whose kernels may still be running: its loss, gradient norm and loss parts are read by read()."""
    step: int  # the step count once this step is done
    lr: float
    values: torch.Tensor  # loss, gradient norm, then the parts (float32); on the host once `ready` has passed
    part_names: tuple[str, ...]
    ready: torch.cuda.Event | None = None  # recorded after the copy to the host; None: the values are there

    @classmethod
    def queue(cls, step: int, lr: float, loss: torch.Tensor, grad_norm: torch.Tensor,
              parts: dict[str, torch.Tensor]) -> "QueuedStep":
        """Copies the step's numbers to pinned host memory behind its kernels. read() then waits for this step
        only: a plain read of a device tensor would queue its copy behind the next step, which run_to_end has
        queued by then, and the device would drain before the step after it could be queued. It also frees a
        CUDA graph's static outputs for the next replay."""
        values = torch.stack([t.detach().float() for t in (loss, grad_norm, *parts.values())])
        if not values.is_cuda:
            return cls(step, lr, values, tuple(parts))
        host = torch.empty(values.shape, dtype=values.dtype, pin_memory=True)
        host.copy_(values, non_blocking=True)
        ready = torch.cuda.Event()
        ready.record()
        return cls(step, lr, host, tuple(parts), ready)

    def read(self) -> dict[str, float]:
        if self.ready is not None:
            self.ready.synchronize()  # waits for this step's kernels
        loss_value, norm_value, *part_values = self.values.tolist()
        if not math.isfinite(loss_value):
            raise Diverged(f"non-finite loss ({loss_value}) at step {self.step}", self.step)
        if not math.isfinite(norm_value):
            raise Diverged(f"non-finite gradient norm ({norm_value}) at step {self.step}", self.step)
        return {"loss": loss_value, "lr": self.lr, "grad_norm": norm_value, **dict(zip(self.part_names, part_values))}


class Trainer:
    def __init__(self, run: Prepared, callback: Callback | None, progress: bool,
                 final_metrics: FinalMetrics | None = None, pauses: Pauses | None = None):
        self.run = run
        self.callback = callback
        self.final_metrics = final_metrics
        self.decide = pauses.decide if pauses is not None else None
        self.save_at_end = pauses.save_at_end if pauses is not None else True
        self.checkpoint_min_s = pauses.checkpoint_min_s if pauses is not None else 0.0
        self.pause_steps = sorted(s for s in pauses.steps if s > run.state.get("step", 0)) if pauses else []
        self.scored_step: int | None = None  # the step final_metrics last scored: a stop there does not score again
        self.saved_step: int | None = None  # the step last saved: asked again at that step, the save is skipped
        self.saved_train_time = 0.0  # train_time at the last save (at_risk_s)
        self.backends: Mapping[str, str] | None = None  # train()'s kernels.recording(); None: process-wide record
        self.recipe = run.recipe
        self.step = int(run.state.get("step", 0))
        self.curve: list[dict[str, float]] = list(run.state.get("curve", []))
        self.metrics: dict[str, float] = dict(run.state.get("metrics", {}))
        # this spec's steps for the recipe's length (prepare() resolved it before building the model)
        self.budget = run.budget or resolve_budget(self.recipe, run.spec, run.task.seq_len)
        self.total_steps = self.budget.steps
        # the schedule keeps the length the run started with (schedule.py): a longer resumed run holds its final rate
        self.schedule_steps = int(run.state.get("schedule_steps", self.total_steps))
        self.schedule_note = schedule_note(self.recipe, self.schedule_steps, self.total_steps)
        if self.schedule_note is not None and run.parallel.writer:
            print(self.schedule_note, file=sys.stderr, flush=True)
        self.tokens_per_step = self.budget.tokens_per_step
        run.task.set_horizon(self.total_steps * self.recipe.grad_accum)  # e.g. a hint's schedule over the run
        self.stopped_by_callback = False
        self.train_time = 0.0
        self.timed_steps = 0
        self.warmed_up = False  # the first step of a process compiles and autotunes: not timed
        self.started = time.perf_counter()
        self.first_step_s: float | None = None  # this run's first step: compile, autotune and one step
        self.to_first_step_s: float | None = None  # from prepare()'s start to the end of the first step
        self.capture_step_s: float | None = None  # the step captured as a CUDA graph (recipe cuda_graph): not timed
        self.eval_s = self.save_s = self.score_s = 0.0
        self.bar = ProgressBar(progress, self.total_steps, self.step, f"{run.spec.name} on {run.task.name}")
        # recipe cuda_graph: the step as one CUDA graph where it applies (step_graph.py), else why not
        self.step_graph: StepGraph | None = None
        self.step_graph_off = "off: not asked (recipe cuda_graph: false)"
        if self.recipe.cuda_graph:  # true or "auto"
            why_not = unsupported(run.device, run.parallel.active, run.precision.fp8_backend, run.teacher is not None)
            if why_not is None:
                self.step_graph = StepGraph(run.optimizer, run.device)
            else:
                self.step_graph_off = f"off: {why_not}"
        if run.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(run.device)

    # ------------------------------------------------------------------------------------------ steps
    def objective(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        run = self.run
        with run.autocast(), run.fp8_context():
            logits_BTV = run.forward(batch.input_ids_BT)
        ce_sum, n = masked_ce_sum(logits_BTV, batch.targets_BT)
        n = run.parallel.normalizer(n)  # clamped to >= 1; the global count per rank under DDP
        ce = ce_sum / n
        if run.teacher is None:
            return ce, {}
        with torch.no_grad(), run.autocast():
            teacher_BTV = run.teacher.model(batch.input_ids_BT)
        kl = kl_sum(logits_BTV, teacher_BTV, batch.targets_BT, run.teacher.temperature) / n
        alpha = run.teacher.alpha
        return alpha * kl + (1 - alpha) * ce, {"ce": ce.detach(), "kl": kl.detach()}

    def train_step(self) -> dict[str, float]:
        """One optimizer step, its loss and gradient norm read back (the host waits for the device)."""
        return self.queue_step().read()

    def queue_step(self) -> QueuedStep:
        """One optimizer step, queued on the device: nothing here waits for it (read() does)."""
        run, recipe = self.run, self.recipe
        lr = lr_at(recipe, self.step, self.schedule_steps)
        first = self.step * recipe.grad_accum
        batches = [run.parallel.shard(run.task.train_batch(first + micro, recipe.batch_size))
                   for micro in range(recipe.grad_accum)]
        if self.step_graph is not None:
            total, grad_norm, parts = self.step_graph.step(self.step_body, batches, lr, self.step)
        else:
            total, grad_norm, parts = plain_step(run.optimizer, run.device, self.step_body, batches, lr)
        self.step += 1
        return QueuedStep.queue(self.step, lr, total, grad_norm, parts)

    def step_body(self, batches: list[Batch]) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Forward and backward of each micro-batch (on the device), clipping and the optimizer's step: (loss,
        gradient norm, loss parts), all on the device. What a CUDA graph captures (step_graph.py)."""
        run, recipe = self.run, self.recipe
        total = torch.zeros((), device=run.device)
        parts: dict[str, torch.Tensor] = {}
        for micro, batch in enumerate(batches):
            with run.parallel.sync(run.forward, last_micro_batch=micro == len(batches) - 1):
                loss, pieces = self.objective(batch)
                (loss / recipe.grad_accum).backward()
            total += loss.detach() / recipe.grad_accum
            for k, v in pieces.items():
                parts[k] = parts.get(k, 0) + v / recipe.grad_accum
        total, parts = run.parallel.average(total, parts)
        clip = recipe.grad_clip if recipe.grad_clip > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(run.model.parameters(), clip)
        run.optimizer.step()
        return total, grad_norm, parts

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        run, recipe = self.run, self.recipe
        run.forward.eval()
        loss_sum = kl_total = 0.0
        count = correct = 0
        for index in range(recipe.eval_batches):
            batch = run.parallel.shard(run.task.val_batch(index, recipe.batch_size)).to(run.device)
            with run.autocast(), run.fp8_context():
                logits_BTV = run.forward(batch.input_ids_BT)
            ce_sum, n = masked_ce_sum(logits_BTV, batch.targets_BT)
            loss_sum += float(ce_sum)
            count += int(n)
            correct += int(correct_count(logits_BTV, batch.targets_BT))
            if run.teacher is not None:
                with run.autocast():
                    teacher_BTV = run.teacher.model(batch.input_ids_BT)
                kl_total += float(kl_sum(logits_BTV, teacher_BTV, batch.targets_BT, 1.0))
        run.forward.train()
        loss_sum, count, correct, kl_total = run.parallel.sum_floats(loss_sum, count, correct, kl_total)
        metrics = run.task.summarize(loss_sum / max(count, 1), correct / max(count, 1))
        metrics.update(run.task.generation_metrics(run.model, run.device, run.autocast))  # seq2seq: chrF++ ...
        if run.teacher is not None:
            metrics["kl_to_teacher"] = kl_total / max(count, 1)  # at temperature 1, per target position
        return metrics

    # ------------------------------------------------------------------------------------------ the run
    def run_to_end(self) -> TrainResult:
        """Steps are pipelined: step k's loss is read once step k+1 is queued, so the host prepares the next step
        while the device runs this one (the read waits for step k only: QueuedStep.queue; until 2026-12-07 it
        waited for step k+1 too, and pipelining gained 0.4-0.9% of a 100M trial's step on the H100, RESULTS.md).
        Where something must see the weights of step k (evaluation, a pause, a checkpoint, the end), step k is read
        before step k+1 is queued."""
        recipe, total = self.recipe, self.total_steps
        waiting: QueuedStep | None = None  # queued, not yet read
        try:
            while self.step < total:
                began = time.perf_counter()
                queued = self.queue_step()
                if waiting is not None:
                    previous, waiting = waiting, None
                    self.complete(previous)
                at_boundary = not self.warmed_up or self.boundary_due()
                if at_boundary:
                    self.complete(queued)
                else:
                    waiting = queued
                elapsed = time.perf_counter() - began
                # the step captured as a CUDA graph runs it on the host first and instantiates the graph: its own
                # record, as the first step's compile
                captured = self.step_graph is not None and self.step_graph.tried_at == self.step
                if captured:
                    self.capture_step_s = elapsed
                if (self.warmed_up and not captured) or self.step == total:  # a one-step run times its only step
                    self.train_time += elapsed
                    self.timed_steps += 1
                if not self.warmed_up:
                    self.first_step_s = elapsed
                    self.to_first_step_s = self.run.setup_s + time.perf_counter() - self.started
                self.warmed_up = True
                if not at_boundary:
                    continue
                if self.evaluation_due():
                    self.evaluate_and_report()
                if self.checkpoint_due():
                    self.save()
            if not self.metrics or self.curve[-1].get("step") != self.step:
                self.evaluate_and_report()  # a resumed run that had nothing left to train
        except Diverged as err:
            return self.diverged(err)
        except Exception as err:  # a callback stopped the run (or something broke): record, then re-raise
            if waiting is not None:  # the step before the one that broke: its curve point, or its divergence
                try:
                    self.complete(waiting)
                except Diverged as diverged:
                    return self.diverged(diverged)
            stopped = self.stopped_by_callback or isinstance(err, TrainingStopped)
            if stopped:  # between steps: weights and optimizer are consistent, so the run can resume
                if getattr(err, "save_checkpoint", True):
                    self.save()
                self.score_final()
            result = self.finish("stopped" if stopped else "failed", f"{type(err).__name__}: {err}")
            if isinstance(err, TrainingStopped):  # its declared field; other exceptions are not ours to change
                err.with_result(result)
            raise
        finally:
            self.bar.close()
        if self.save_at_end:
            self.save()
        self.score_final()
        return self.finish("completed", None)

    @torch.no_grad()
    def score_final(self) -> None:
        """`final_metrics` of the trained weights join the run's metrics: the model itself (left as it was), or, when
        Linear layers were converted to fp8, a float32 copy built as a reader of the saved run would build it.
        The run's steps are over: a CUDA graph of the step gives its memory back first."""
        if self.step_graph is not None:
            self.step_graph.release()
        if self.final_metrics is None or self.scored_step == self.step:
            return
        began = time.perf_counter()
        model = self.run.model
        if self.run.fp8_layers:
            from archsearch.builder import build

            model = build(self.run.spec, self.run.device, torch.float32)
            model.load_state_dict(self.run.model.state_dict())
        was_training = model.training
        try:
            self.metrics = {**self.metrics, **self.final_metrics(model)}
        finally:
            model.train(was_training)
        self.scored_step = self.step
        self.score_s += time.perf_counter() - began

    def complete(self, queued: QueuedStep) -> None:
        """Read a queued step back: the progress bar and, every log_every steps, a point of the curve."""
        point = queued.read()
        self.bar.update(queued.step, point["loss"], self.tokens_per_s())
        if queued.step % self.recipe.log_every == 0 or queued.step in (1, self.total_steps):
            self.curve.append({**self.seen(queued.step), **point})

    def diverged(self, err: Diverged) -> TrainResult:
        # a step queued after it ran too (its weights are not rolled back: nothing is saved or scored)
        self.step = err.step
        return self.finish("diverged", str(err))

    def boundary_due(self) -> bool:
        """Whether something at this step must see its weights: evaluation (a pause and the end evaluate too) or a
        checkpoint."""
        return self.evaluation_due() or self.checkpoint_due()

    def evaluation_due(self) -> bool:
        return self.step % self.budget.eval_every == 0 or self.step == self.total_steps or self.pause_due()

    def checkpoint_due(self) -> bool:
        every = self.recipe.checkpoint_every
        return bool(every) and self.step % every == 0 and (self.step < self.total_steps or self.save_at_end)

    def pause_due(self) -> bool:
        return bool(self.pause_steps) and self.step >= self.pause_steps[0]

    def evaluate_and_report(self) -> None:
        began = time.perf_counter()
        self.metrics = self.evaluate()
        self.eval_s += time.perf_counter() - began
        pause = self.pause_due()
        if pause:
            self.score_final()  # the decision sees every metric the run's end would have
        self.curve.append({**self.seen(), **self.metrics})
        try:
            if self.callback is not None:
                self.callback(self.step, dict(self.metrics))
            if pause:
                self.pause_steps = [s for s in self.pause_steps if s > self.step]
                self.decide(self.record("paused", None).to_dict())
        except Exception:
            self.stopped_by_callback = True
            raise
        if pause and (self.checkpoint_min_s == 0 or self.at_risk_s() > self.checkpoint_min_s):
            self.save()  # going on: a crash from here resumes at this point

    def at_risk_s(self) -> float:
        """Training time a crash now would lose: the timed steps since the last save (or this run's start, which
        is a save when it resumed)."""
        return self.train_time - self.saved_train_time

    def seen(self, step: int | None = None) -> dict[str, float]:
        """Where the run is (or was at `step`): steps, tokens and training FLOPs so far (curves carry them, so
        trials of different sizes can be compared at equal compute)."""
        step = self.step if step is None else step
        return {"step": step, "tokens": self.budget.tokens_at(step), "flops": self.budget.flops_at(step)}

    def tokens_per_s(self) -> float | None:
        return self.timed_steps * self.tokens_per_step / self.train_time if self.train_time > 0 else None

    def save(self) -> None:
        if self.run.out_dir is None or not self.run.parallel.writer or self.saved_step == self.step:
            return  # (a rung's pause and checkpoint_every may both ask at one step)
        began = time.perf_counter()
        checkpoint.save_checkpoint(self.run.out_dir, self.run.model, self.run.optimizer,
                                   {**self.seen(), "schedule_steps": self.schedule_steps, "curve": self.curve,
                                    "metrics": self.metrics})
        self.saved_step = self.step
        self.saved_train_time = self.train_time
        self.save_s += time.perf_counter() - began

    def timing(self, wall: float) -> dict[str, Any]:
        """Where this run's time went, in seconds (a study adds up steps_s and the rest to find its share of time in
        training steps), and what the compile caches did.
        steps_s: the timed steps (all but the first: it compiles); first_step_s: the first step, compile and
        autotune included; to_first_step_s: from prepare()'s start (build, conversion) to the first step's end;
        compile_caches: the process's cache hits and misses so far, earlier trials of a worker included
        (compile_session.cache_counters); capture_step_s: the step captured as a CUDA graph, not among the timed
        ones (recipe cuda_graph; None without a capture)."""
        return {"setup_s": self.run.setup_s, "first_step_s": self.first_step_s, "to_first_step_s": self.to_first_step_s,
                "steps_s": self.train_time, "timed_steps": self.timed_steps, "eval_s": self.eval_s,
                "checkpoint_s": self.save_s, "score_s": self.score_s, "capture_step_s": self.capture_step_s,
                "wall_s": self.run.setup_s + wall,
                "compile_caches": cache_counters()}

    def finish(self, status: str, reason: str | None) -> TrainResult:
        """The run's record, also written to result.json in its folder."""
        result = self.record(status, reason)
        if self.run.out_dir is not None and self.run.parallel.writer:
            checkpoint.write_json(self.run.out_dir / "result.json", result.to_dict())
        return result

    def record(self, status: str, reason: str | None) -> TrainResult:
        from archsearch.kernels import backends_used

        run = self.run
        backends = dict(self.backends) if self.backends is not None else backends_used()
        speed = self.tokens_per_s()
        peak, peak_source = device_peak_flops(run.device)
        memory, memory_kind = peak_memory(run.device)
        # sums (max for memory) over ranks; a failure may be one rank's alone, so it reduces nothing
        speed, peak, memory, ranks = run.parallel.reduce_measures(speed, peak, memory, together=status != "failed")
        wall = time.perf_counter() - self.started
        mfu = None
        if speed is not None and peak:
            mfu = speed * self.budget.flops_per_token / peak
        result = TrainResult(
            status=status, reason=reason, metrics=dict(self.metrics), curve=list(self.curve), steps=self.step,
            tokens=self.budget.tokens_at(self.step), flops=self.budget.flops_at(self.step),
            budget=self.budget.to_dict(), tokens_per_s=speed, mfu=mfu, peak_flops=peak,
            peak_flops_source=peak_source, peak_memory_bytes=memory, peak_memory_kind=memory_kind,
            backends=backends, precision=run.precision.name, precision_reason=run.precision.reason,
            fp8_layers=list(run.fp8_layers), versions=versions(), wall_time_s=wall,
            n_params=sum(p.numel() for p in run.model.parameters()), seq_len=run.task.seq_len,
            device=torch.cuda.get_device_name(run.device) if run.device.type == "cuda" else "cpu",
            task=run.task.describe(), recipe=run.recipe.to_dict(),
            out_dir=str(run.out_dir) if run.out_dir is not None else None,
            extra={"fp8_backend": run.precision.fp8_backend,
                   "compile": run.recipe.compile_scope(run.device.type) or False,  # what ran ("auto" resolved)
                   "timed_steps": self.timed_steps, "train_time_s": self.train_time,
                   "teacher": run.teacher.path if run.teacher is not None else None,
                   "timing": self.timing(wall), "compile_info": run.compile_info,
                   "schedule_steps": self.schedule_steps, "schedule_note": self.schedule_note,
                   "precision_auto": run.precision.auto,
                   "cuda_graph": self.step_graph.describe() if self.step_graph is not None else self.step_graph_off,
                   **({"cpu_threads": torch.get_num_threads()} if run.device.type == "cpu" else {}),
                   **({"world_size": run.parallel.world_size, "ranks": ranks} if ranks else {})})
        return result


def train(spec: ModelSpec | None, task: TaskSpec | str | None, recipe: Recipe | None, *, out_dir: Path | None = None,
          callback: Callback | None = None, progress: bool = True, device: str | None = None,
          resume: bool = False, nproc: int | None = None, parallel: Parallel = SINGLE,
          final_metrics: FinalMetrics | None = None, teacher: torch.nn.Module | None = None,
          init_weights: Mapping[str, torch.Tensor] | None = None, pauses: Pauses | None = None) -> TrainResult:
    """Train `spec` on `task` with `recipe`; returns the run's record (also result.json in `out_dir`).

    `callback(step, metrics)` runs after each evaluation; anything it raises stops the run: the run is recorded
    (result.json in `out_dir`) and checkpointed (resumable; not for a TrainingStopped whose `save_checkpoint` is
    False), and the exception propagates; a `TrainingStopped` carries the record as `.result`. A non-finite loss
    returns
    status "diverged". `resume=True` continues the checkpoint in `out_dir` (spec/task/recipe may then be None:
    the saved ones are used). `nproc=N` runs the same training data-parallel in N processes under torchrun
    (archsearch.training.launch; `recipe.batch_size` stays the global batch); `parallel` is set by those processes.
    `final_metrics(model)` scores the trained model in memory at the end (and at a callback's stop); its values join
    the record's metrics. Not with `nproc` (the model lives in other processes).
    `teacher`: the model of `recipe.distill.teacher` already in memory on the training device (a compression search
    holds its parent), used frozen instead of reading that run folder again; the record still names the folder.
    `init_weights`: a state dict of the spec's model to start from instead of the seeded initialisation (a pruned
    child's sliced weights). Neither with `nproc`.
    `pauses`: decisions taken in memory at given steps (class Pauses); not with `nproc`.
    """
    if nproc is not None:
        if final_metrics is not None or pauses is not None:
            raise ValueError("final_metrics and pauses need the model in this process: not with nproc")
        if teacher is not None or init_weights is not None:
            raise ValueError("teacher and init_weights are models in this process: not with nproc")
        from .launch import train_parallel

        return train_parallel(spec, task, recipe, nproc=nproc, out_dir=out_dir, callback=callback, progress=progress,
                              device=device, resume=resume)
    from archsearch.kernels import recording

    with recording() as used:  # this run's kernel backends only, not an earlier run's in the same process
        run = prepare(spec, task, recipe, out_dir=out_dir, device=device, resume=resume, parallel=parallel,
                      teacher_model=teacher, init_weights=init_weights)
        trainer = Trainer(run, callback, progress, final_metrics, pauses)
        trainer.backends = used
        return trainer.run_to_end()
