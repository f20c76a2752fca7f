"""The study runner: sample -> spec -> validate -> analytic budget -> train -> store, one Optuna trial at a time.

Trial counting works across any number of workers on one database: a worker reserves a slot (one atomic UPDATE)
before it asks Optuna for a new trial, so a study runs exactly `n_trials` new trials however many workers share
it. Retries (a dead worker's trial, a Ctrl-C'd trial) re-run an existing slot: Optuna hands the queued (WAITING)
trial to the next `ask()`, and a worker stays while other workers' trials run, so a dead worker's trial is
retried once its heartbeat goes stale.

A trial that is never trained (invalid spec, infeasible budget or parameter count) *completes*, with the values
an untrained model has and its constraint values set through `Trial.set_constraint` (Optuna 5); Optuna's
samplers only learn from constraints of completed trials.
"""

from __future__ import annotations

import logging
import math
import re
import time
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from .. import __version__ as archsearch_version
from ..spec import SpecError, compress_pattern
from ..storage import Database, StudyMismatchError, redact, worker_id
from ..storage import records
from ..storage.tally import PENDING, study_tally
from ..training.result import TrainingStopped  # torch-free: archsearch.training imports torch lazily
from .dedup import candidate_key, training_identity
from .early_stop import DominanceStop, reference_from_row
from .fronts import best_trials, describe_best  # noqa: F401 (launch and tests import them from here)
from .evaluate import Evaluator, compute_key, plan_of, record_trained
from .bounds import sampler_seed
from .identity import check_identity, study_identity
from .interrupts import InterruptGuard
from .silent_trials import adopt_silent_trials
from .progress import Display
from .kept_runs import keep_best, run_folder
from .promotion import train_in_rungs
from .optuna_attrs import CurveReporter, set_candidate, set_constraints, set_outcome
from .samplers import build_pruner, build_sampler
from .screening import Screen, Verdict
from .study_file import Study
from .target import expand, proxy_params, target_fields

RETRY_KEY = "failed_trial"  # the system attribute Optuna's RetryHeartbeatStaleTrialCallback sets; we reuse it


class TrialFailed(Exception):
    """A trial that ran and failed (exception, divergence); recorded, and the study goes on."""


class _NoSlot(Exception):
    """The study reached its trial count while this worker was asking for a trial."""


class _Stop(TrainingStopped):  # train() treats its own TrainingStopped as "stop and record"; our stops are of that kind
    """Raised from the training callback: `kind` is "pruned" (single-objective pruner) or "stopped" (dominated)."""

    def __init__(self, kind: str, message: str):
        self.kind = kind
        super().__init__(message)


@dataclass
class RunSummary:
    study: str
    storage: str
    counts: dict[str, int]
    best: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False
    target: int | None = None  # n_trials (None: until the timeout)

    @property
    def done(self) -> int:
        """Candidates that count toward n_trials (see archsearch.storage.tally)."""
        return sum(n for status, n in self.counts.items() if status not in PENDING)


class _TrialFailureLog(logging.Filter):
    """Drops Optuna's "Trial N failed ..." records (a traceback each): the runner records every trial and prints
    one line for it, the cause included."""

    _FAILED = re.compile(r"Trial \d+ failed")

    def filter(self, record: logging.LogRecord) -> bool:
        return not self._FAILED.match(str(record.msg))


_FAILURE_FILTER = _TrialFailureLog()


def _is_oom(err: BaseException) -> bool:
    text = f"{type(err).__name__}: {err}".lower()
    return "out of memory" in text or isinstance(err, MemoryError)


class StudyRunner:
    def __init__(self, study: Study, evaluator: Evaluator, *, storage: str | None = None,
                 n_trials: int | None = None, timeout_s: float | None = None, sampler=None,
                 display: Display | None = None, live: bool | None = None, worker_prefix: str = "",
                 seed_offset: int = 0, announce_interrupt: bool = True):
        self.study = study
        self.evaluator = evaluator
        self.url = storage or study.file.storage
        self.n_trials = n_trials if n_trials is not None else study.file.n_trials
        self.timeout_s = timeout_s if timeout_s is not None else study.file.timeout_s
        self.objectives = list(study.file.objectives)
        self.directions = {o.metric: o.direction for o in self.objectives}
        self.screen = Screen(study.file.constraints)
        self.base_doc = study.base.to_dict()
        self.target_doc = study.target.to_dict() if study.target is not None else None  # judged when given
        self.training = training_identity(study.file.task, study.file.recipe, study.file.seed)  # for dedup keys
        self.base_symbols = set(study.base.pattern_string)
        self.worker = worker_id()
        self._sampler = sampler
        # Workers sharing a study must not share a sampler seed, or they would draw the same candidates.
        self.seed_offset = seed_offset
        self.announce_interrupt = announce_interrupt
        self.sampler_seed = sampler_seed(study.file.seed, seed_offset, 0)
        self._guard = InterruptGuard()
        self._display = display
        self._live = live
        self._prefix = worker_prefix
        self._lost_checked = -math.inf
        self._current: tuple[int, int] | None = None  # (optuna trial number, our row id) while one runs
        self.db: Database | None = None
        self.optuna_study: optuna.Study | None = None
        self.record = None

    # -------------------------------------------------------------------------------------------- opening
    def open(self) -> "StudyRunner":
        """Reach the database, refuse a mismatching stored study (before writing anything), load or create."""
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        optimize_log = logging.getLogger("optuna.study._optimize")
        if _FAILURE_FILTER not in optimize_log.filters:
            optimize_log.addFilter(_FAILURE_FILTER)
        self.db = Database(self.url)
        try:
            existing = records.study_by_name(self.db, self.study.name)
            objectives = [o.to_dict() for o in self.objectives]
            identity = study_identity(self.study)
            space_hash = self.study.space_hash()
            if existing is not None:
                check_identity(existing.identity, identity, self.study.name, self.url)  # names each changed field
                if existing.identity is not None:  # the identity compared canonical specs: the same question
                    space_hash = existing.space_hash
                records.check_study_matches(existing, space_hash, objectives)
            heartbeat = self.study.file.heartbeat
            storage = self.db.optuna_storage(heartbeat_interval=heartbeat.interval_s, grace_period=heartbeat.grace_s,
                                             max_retry=heartbeat.max_retry)
            self._check_optuna_directions(storage)
            # A resumed study must not replay its first draws: the seed moves on with the trials already stored.
            self.sampler_seed = sampler_seed(self.study.file.seed, self.seed_offset, self._stored_trial_count(storage))
            sampler = self._sampler or build_sampler(self.study.file.sampler, self.study.space, self.sampler_seed,
                                                     len(self.objectives))
            pruner = build_pruner(self.study.file.pruner)
            self.record = records.ensure_study(
                self.db, name=self.study.name, space_hash=space_hash, study_file=self.study.resolved(),
                objectives=objectives, n_trials_target=self.n_trials, archsearch_version=archsearch_version)
            self.optuna_study = optuna.create_study(
                storage=storage, sampler=sampler, pruner=pruner, study_name=self.study.name, load_if_exists=True,
                directions=[o.direction for o in self.objectives])
            records.set_identity(self.db, self.record.id, identity)  # once: new, or stored before identities
            if self.record.optuna_study_id is None:
                records.set_optuna_study_id(self.db, self.record.id, self.optuna_study._study_id)
        except BaseException:
            self.db.close()
            raise
        return self

    def _stored_trial_count(self, storage) -> int:
        try:
            study_id = storage.get_study_id_from_name(self.study.name)
        except KeyError:
            return 0
        return len(storage.get_all_trials(study_id, deepcopy=False))

    def _check_optuna_directions(self, storage) -> None:
        try:
            study_id = storage.get_study_id_from_name(self.study.name)
        except KeyError:
            return
        stored = [d.name.lower() for d in storage.get_study_directions(study_id)]
        wanted = [o.direction for o in self.objectives]
        if stored != wanted:
            raise StudyMismatchError(f"Optuna study {self.study.name!r} in {redact(self.url)} already exists with "
                                     f"directions {stored}; this file has {wanted}")

    def close(self) -> None:
        if self.db is not None:
            self.db.close()

    # -------------------------------------------------------------------------------------------- the loop
    def run(self) -> RunSummary:
        if self.optuna_study is None:
            self.open()
        display = self._display or Display(self.study.name, list(self.directions), self.n_trials, live=self._live,
                                           prefix=self._prefix)
        self._display = display
        started = time.monotonic()
        interrupted = False
        with display:
            try:
                while self.timeout_s is None or time.monotonic() - started < self.timeout_s:
                    self._record_lost_trials()
                    # From taking a slot until the new trial's row is written (_objective releases), a Ctrl-C waits.
                    self._guard.hold()
                    try:
                        if self._states(TrialState.WAITING):
                            self._run_one(slot_taken=False)
                            continue
                        if self.n_trials is None or records.take_slot(self.db, self.record.id, self.n_trials):
                            self._run_one(slot_taken=self.n_trials is not None)
                            continue
                    finally:
                        self._guard.release()
                    if self._others_running():
                        time.sleep(min(2.0, self.study.file.heartbeat.interval_s))
                    elif not self._states(TrialState.WAITING):
                        break
                    # else: a stale trial was just failed and queued again; the next round runs its retry
                self._record_lost_trials(force=True)
            except KeyboardInterrupt:
                interrupted = True
                with self._guard.holding(deliver=False):  # a second Ctrl-C must not cut the bookkeeping short
                    queued = self._requeue_interrupted()
                    done = study_tally(self.db, self.record.id).done
                    target = f" of {self.n_trials}" if self.n_trials is not None else ""
                    again = f"; trial {queued} is queued to run again" if queued is not None else ""
                    if self.announce_interrupt:  # a worker of `study run --workers N`: its parent says it once
                        display.message(f"interrupted (Ctrl-C): {done}{target} trials stored{again}; run the "
                                        "same command to resume")
        return RunSummary(self.study.name, redact(self.url), self.counts(), self.best_trials(), interrupted,
                          self.n_trials)

    def _states(self, *states: TrialState) -> list:
        return self.optuna_study.get_trials(deepcopy=False, states=states)

    def _others_running(self) -> bool:
        if self._heartbeat_on():
            adopt_silent_trials(self.optuna_study, self.db, self.study.file.heartbeat.grace_s)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(self.optuna_study)
        return bool(self._states(TrialState.RUNNING))

    def _heartbeat_on(self) -> bool:
        return self.optuna_study._storage.get_heartbeat_interval() is not None if hasattr(
            self.optuna_study._storage, "get_heartbeat_interval") else False

    def _record_lost_trials(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._lost_checked < self.study.file.heartbeat.interval_s:
            return  # a lost worker is only noticed after its grace period anyway
        self._lost_checked = now
        failed = {t._trial_id for t in self._states(TrialState.FAIL)}
        records.mark_lost_trials(self.db, self.record.id, failed)

    def _run_one(self, slot_taken: bool) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self._slot_taken = slot_taken
            self.optuna_study.optimize(self._objective, n_trials=1, catch=(TrialFailed, _NoSlot))

    def _requeue_interrupted(self) -> int | None:
        """Ctrl-C: Optuna has failed the running trial; queue its parameters again and mark our row. Returns the
        interrupted trial's number (None when no trial was running: nothing to queue)."""
        if self._current is None:
            return None
        number, row_id = self._current
        self._current = None
        records.update_trial(self.db, row_id, status="interrupted", error="interrupted (Ctrl-C); queued again")
        frozen = next((t for t in self.optuna_study.get_trials(deepcopy=False) if t.number == number), None)
        if frozen is None or frozen.state != TrialState.FAIL:
            return None
        original = frozen.system_attrs.get(RETRY_KEY, frozen.number)
        history = list(frozen.system_attrs.get("retry_history", [])) + [frozen.number]
        self.optuna_study.add_trial(optuna.trial.create_trial(
            state=TrialState.WAITING, params=frozen.params, distributions=frozen.distributions,
            system_attrs={RETRY_KEY: original, "retry_history": history}))
        return number

    # -------------------------------------------------------------------------------------------- one trial
    def _objective(self, trial: optuna.Trial) -> list[float]:
        started = time.perf_counter()
        retry_of = self.optuna_study._storage.get_trial_system_attrs(trial._trial_id).get(RETRY_KEY)
        if retry_of is not None and self._slot_taken:
            records.release_slot(self.db, self.record.id)  # a retry re-runs a slot that is already counted
        elif retry_of is None and not self._slot_taken and self.n_trials is not None:
            if not records.take_slot(self.db, self.record.id, self.n_trials):
                raise _NoSlot("the study reached n_trials while this worker asked for a trial")
        sample = self.study.space.sample(trial, self.base_symbols)
        row = records.start_trial(self.db, study_id=self.record.id, optuna_trial_id=trial._trial_id,
                                  number=trial.number, params=sample.values, retry_of=retry_of, worker=self.worker)
        self._current = (trial.number, row)  # cleared when the trial's row is finished; kept through Ctrl-C
        self._guard.release()  # the trial is recorded: a Ctrl-C from here on queues it again
        try:
            return self._evaluate(trial, sample, row, started)
        finally:
            keep_best(self)  # keep_checkpoints: best: the folders of trials off the best set go

    def _evaluate(self, trial: optuna.Trial, sample, row: int, started: float) -> list[float]:
        name = f"{self.study.name}-t{trial.number}"
        try:
            candidate = expand(sample, self.base_doc, self.target_doc, name)
        except SpecError as err:
            verdict = self.screen.invalid(str(err))
            set_constraints(trial, verdict.constraints)
            return self._untrained(trial, row, "invalid", verdict, None, started)
        spec = candidate.proxy
        verdict = self.screen(candidate.judged)  # the target's sizes and budgets, when the study names one
        set_constraints(trial, verdict.constraints)
        self._display.trial_started(trial.number, compress_pattern(spec.pattern_string),
                                    int(verdict.analytic["n_params"]))
        spec_fields = dict(spec=spec.to_dict(), spec_hash=spec.spec_hash(), pattern=spec.pattern_string,
                           pattern_compact=compress_pattern(spec.pattern_string),
                           n_params=proxy_params(candidate, verdict.analytic), fits=verdict.fits,
                           budget=verdict.budget, constraints=verdict.constraints,
                           target=target_fields(candidate, verdict.analytic), candidate_key=candidate_key(
                               spec, candidate.target, self.training))
        set_candidate(trial, spec_fields, verdict.analytic)  # pattern and sizes for plain Optuna tools
        if not verdict.fits:
            return self._untrained(trial, row, "infeasible", verdict, spec_fields, started)
        original = records.first_decided_with_key(self.db, self.record.id, spec_fields["candidate_key"])
        if original is not None:
            return self._duplicate(trial, row, original, spec_fields, started)
        records.update_trial(self.db, row, finished=False, **spec_fields)

        curve: list[dict[str, Any]] = []
        stops: list[_Stop] = []  # what the callback raised, however train() passes it on
        callback = self._callback(trial, curve, verdict, stops, plan_of(self.evaluator, spec))
        train_started = time.perf_counter()
        try:
            if self.study.file.halving is not None:  # rung by rung, resuming from each rung's checkpoint
                result = train_in_rungs(self, trial, spec, callback, verdict, stops)
            else:
                result = self.evaluator(spec, callback, **run_folder(self, trial))  # keep_checkpoints: a folder
            record_trained(trial, result)  # steps, tokens, FLOPs trained; the budget kind
        except KeyboardInterrupt:
            raise
        except Exception as err:
            if stops:
                stop = stops[-1]
                partial = err.result if isinstance(err, TrainingStopped) else None  # the record a stop carries
                record_trained(trial, partial.to_dict() if hasattr(partial, "to_dict") else {})
                extra = self._result_fields(partial.to_dict() if hasattr(partial, "to_dict") else {}, curve)
                self._finish(trial, row, stop.kind, started, train_started, error=str(stop), **extra)
                raise optuna.TrialPruned(str(stop)) from None
            reason = "out of memory" if _is_oom(err) else f"{type(err).__name__}: {err}"
            self._finish(trial, row, "failed", started, train_started, curve=curve, error=reason,
                         traceback=traceback.format_exc())
            raise TrialFailed(reason) from err
        if stops:  # a trainer that records the stop and returns instead of re-raising
            self._finish(trial, row, stops[-1].kind, started, train_started, error=str(stops[-1]),
                         **self._result_fields(result, curve))
            raise optuna.TrialPruned(str(stops[-1]))
        return self._store_result(trial, row, result, verdict, curve, started, train_started)

    def _callback(self, trial: optuna.Trial, curve: list, verdict: Verdict, stops: list, plan):
        single = len(self.objectives) == 1
        tracked = self.objectives[0].metric
        stopper = None
        if not single and self.study.file.early_stop.enabled and self.study.file.halving is None:
            stopper = self._dominance_stop(verdict.analytic, plan)
        # The last evaluation comes after the last step: the trial has finished, and keeps its objectives.
        final_step = plan.final_step
        report = CurveReporter(trial, [o.metric for o in self.objectives])  # the curve as intermediate values
        key = compute_key(plan)
        if plan.axis != "step":
            trial.set_user_attr("curve_step_unit", f"permille of the {plan.axis} budget")

        def callback(step: int, metrics: dict[str, float]) -> None:
            point = {"step": int(step), **{k: float(v) for k, v in metrics.items()
                                           if isinstance(v, (int, float)) and not isinstance(v, bool)}}
            curve.append(point)
            self._display.trial_step(step, metrics)
            report(key(int(step)), point)
            if final_step is not None and step >= final_step:
                return
            if single and self.study.file.pruner is not None and tracked in point:
                if trial.should_prune():  # `report` gave Optuna this step's value
                    stops.append(_Stop("pruned", f"pruned at step {step} ({tracked}={point[tracked]:.4g})"))
                    raise stops[-1]
            if stopper is not None:
                dominators = stopper.update(int(step), {**point, **verdict.analytic})
                if dominators:
                    stops.append(_Stop("stopped", f"dominated at step {step} by completed trial(s) "
                                                  f"{', '.join(map(str, dominators))}"))
                    raise stops[-1]

        return callback

    def _dominance_stop(self, known_now: dict[str, float], plan) -> DominanceStop:
        config = self.study.file.early_stop
        known_metrics = [m for m in self.directions if m in known_now]
        references = []
        for row in records.trials_of(self.db, self.record.id, ("completed",)):
            known = {m: v for m, v in zip(self.directions, row.objectives or []) if m in known_metrics}
            references.append(reference_from_row(row.number, row.curve, known))
        return DominanceStop(self.directions, references, {m: known_now[m] for m in known_metrics},
                             min_completed=config.min_completed, min_dominators=config.min_dominators,
                             patience=config.patience, margin=config.margin, axis=plan.axis, per_step=plan.per_step)

    def _duplicate(self, trial, row: int, original, spec_fields: dict, started: float) -> list[float]:
        """The same candidate was trained before (archsearch.studies.dedup): its stored outcome, no training. A
        repeat of a candidate the dominance stop stopped is stopped the same way for Optuna
        (records.first_decided_with_key says which earlier trials are reused)."""
        trial.set_user_attr("duplicate_of", original.number)
        if original.status != "completed":
            rung = f" at rung {original.rung}" if original.rung is not None else ""
            reason = f"duplicate of trial {original.number} ({original.status}{rung})"
            self._finish(trial, row, "duplicate", started, None, duplicate_of=original.number, rung=original.rung,
                         metrics=original.metrics, curve=original.curve, error=reason, **spec_fields)
            raise optuna.TrialPruned(reason)
        values = list(original.objectives)
        self._finish(trial, row, "duplicate", started, None, values=values, duplicate_of=original.number,
                     metrics=original.metrics, error=f"duplicate of trial {original.number}", **spec_fields)
        return values

    def _untrained(self, trial, row: int, status: str, verdict: Verdict, spec_fields: dict | None,
                   started: float) -> list[float]:
        values = [o.untrained_value(self.study.base.vocab_size, verdict.analytic) for o in self.objectives]
        fields = dict(spec_fields or {}, constraints=verdict.constraints, fits=False)
        self._finish(trial, row, status, started, None, values=values, error=verdict.reason, **fields)
        return values

    def _store_result(self, trial, row: int, result: dict, verdict: Verdict, curve: list, started: float,
                      train_started: float) -> list[float]:
        common = self._result_fields(result, curve)
        if result.get("status") == "diverged":
            reason = f"diverged: {result.get('reason') or 'non-finite loss'}"
            self._finish(trial, row, "diverged", started, train_started, error=reason, **common)
            raise TrialFailed(reason)
        values = [o.value_from(result, verdict.analytic) for o in self.objectives]
        missing = [o.metric for o, v in zip(self.objectives, values) if v is None or math.isnan(v)]
        if missing:
            reason = f"the training result has no value for objective(s) {', '.join(missing)}"
            self._finish(trial, row, "failed", started, train_started, error=reason, **common)
            raise TrialFailed(reason)
        self._finish(trial, row, "completed", started, train_started, values=values, **common)
        return values

    @staticmethod
    def _result_fields(result: dict, curve: list) -> dict[str, Any]:
        return dict(curve=result.get("curve") or curve, metrics=result.get("metrics"), backends=result.get("backends"),
                    precision=result.get("precision"), versions=result.get("versions"),
                    tokens_per_s=result.get("tokens_per_s"), mfu=result.get("mfu"),
                    peak_memory_bytes=result.get("peak_memory_bytes"), out_dir=result.get("out_dir"))

    def _finish(self, trial, row: int, status: str, started: float, train_started: float | None, *,
                values: list[float] | None = None, **fields: Any) -> None:
        now = time.perf_counter()
        train_time = (now - train_started) if train_started is not None else 0.0
        set_outcome(trial, status, fields.get("metrics"))
        with self._guard.holding():  # the row's final status and forgetting it as current go together
            records.update_trial(self.db, row, status=status, objectives=values, wall_time_s=now - started,
                                 train_time_s=train_time, overhead_s=(now - started) - train_time, **fields)
            self._current = None
        live = self._display.live  # the one-line display needs no counts or ranking: skip two queries
        self._display.trial_finished(trial.number, status, values, fields.get("error"),
                                     self.counts() if live else {}, self._best_line() if live else "")

    # -------------------------------------------------------------------------------------------- results
    def counts(self) -> dict[str, int]:
        """Candidates by the status of their latest attempt: retries count once (archsearch.storage.tally)."""
        return study_tally(self.db, self.record.id).by_status

    def best_trials(self, limit: int = 5) -> list[dict[str, Any]]:
        """The best feasible trials: the best one (single objective) or the Pareto front (several)."""
        return best_trials(self.db, self.record.id, self.objectives, limit)

    def _best_line(self) -> str:
        best = self.best_trials(limit=1)
        if not best:
            return "-"
        b = best[0]
        values = ", ".join(f"{m}={v:.4g}" for m, v in zip(self.directions, b["objectives"]))
        return f"#{b['number']} {b['pattern_compact']} {values}"
