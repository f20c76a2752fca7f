"""Our tables, beside Optuna's own (`studies`, `trials`, ...) in the same database.

Every table is prefixed `archsearch_` so it can never collide with Optuna's names, and the alembic history is
kept in `archsearch_alembic_version` (Optuna keeps its own in `alembic_version`). The dashboard reads these
tables only; each column says in its comment what it holds. JSON columns hold plain JSON (dicts, lists,
numbers), so a row is readable without archsearch installed.

Trial status values (`archsearch_trials.status`):
- `running`     the trial is training (or was, when its worker died: Optuna's heartbeat then fails it and the row
                 becomes `failed` with reason `worker lost`)
- `completed`   trained; `metrics` and `objectives` hold the results
- `infeasible`  the analytic budget check (or the parameter range) rejected the spec; never trained; `budget`
                 and `constraints` hold the figures
- `invalid`     the sampled parameters make an invalid spec; `error` names the field
- `pruned`      stopped early by the single-objective pruner
- `stopped`     stopped early by the multi-objective dominance rule (`error` names the dominating trials)
- `diverged`    training produced NaN/inf loss
- `failed`      an exception (out of memory, a bug); `error` and `traceback` say which
- `interrupted` Ctrl-C; the same parameters are queued again and run first when the study resumes
- `duplicate`   the candidate expands to the same model (and target) as an earlier completed trial under the same
                 task, recipe and seed: not trained; `duplicate_of` names that trial, whose values it reports
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

TRIAL_STATUSES = ("running", "completed", "infeasible", "invalid", "pruned", "stopped", "diverged", "failed",
                  "interrupted", "duplicate")
ABLATION_RUN_STATUSES = ("running", "completed", "diverged", "failed")
VERSION_TABLE = "archsearch_alembic_version"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: sa.JSON, list[Any]: sa.JSON}


class StudyRecord(Base):
    __tablename__ = "archsearch_studies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(512), unique=True, comment="the study name (= Optuna's study_name)")
    optuna_study_id: Mapped[int | None] = mapped_column(comment="studies.study_id of Optuna's table")
    space_hash: Mapped[str] = mapped_column(sa.String(64), comment="hash of the search space + base spec; a rerun "
                                            "with another space is refused")
    study_file: Mapped[dict[str, Any]] = mapped_column(comment="the whole resolved study file (base spec inlined)")
    objectives: Mapped[list[Any]] = mapped_column(comment="[{metric, direction}] in Optuna's value order")
    n_trials_target: Mapped[int | None] = mapped_column(comment="trials the study aims at (latest run's target)")
    slots_taken: Mapped[int] = mapped_column(default=0, comment="new trials started so far (retries excluded); "
                                             "workers reserve a slot atomically before asking for a trial")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    archsearch_version: Mapped[str] = mapped_column(sa.String(64))
    identity: Mapped[dict[str, Any] | None] = mapped_column(
        sa.JSON, comment="the study's question: base, target, space, recipe, task, objectives, constraints "
        "(archsearch.studies.identity); a rerun must match")

    trials: Mapped[list["TrialRecord"]] = relationship(back_populates="study", cascade="all, delete-orphan")


class TrialRecord(Base):
    __tablename__ = "archsearch_trials"
    __table_args__ = (sa.UniqueConstraint("study_id", "optuna_trial_id", name="uq_archsearch_trials_optuna"),
                      sa.Index("ix_archsearch_trials_study_status", "study_id", "status"),
                      sa.Index("ix_archsearch_trials_spec_hash", "spec_hash"),
                      sa.Index("ix_archsearch_trials_candidate", "study_id", "candidate_key"))

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(sa.ForeignKey("archsearch_studies.id", ondelete="CASCADE"))
    optuna_trial_id: Mapped[int] = mapped_column(comment="trials.trial_id of Optuna's table")
    number: Mapped[int] = mapped_column(comment="Optuna's trial number within the study")
    retry_of: Mapped[int | None] = mapped_column(comment="number of the trial this one re-runs (worker lost, Ctrl-C)")
    status: Mapped[str] = mapped_column(sa.String(16), comment="one of " + ", ".join(TRIAL_STATUSES))
    params: Mapped[dict[str, Any]] = mapped_column(comment="the sampled values, by Optuna parameter name")
    spec: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, comment="the full resolved ModelSpec (null if "
                                                        "the sample made no valid spec)")
    spec_hash: Mapped[str | None] = mapped_column(sa.String(64), comment="ModelSpec.spec_hash()")
    pattern: Mapped[str | None] = mapped_column(sa.String(4200), comment="expanded pattern, one symbol per layer")
    pattern_compact: Mapped[str | None] = mapped_column(sa.String(4200), comment="compress_pattern() of it")
    n_params: Mapped[int | None] = mapped_column(sa.BigInteger, comment="exact parameter count")
    fits: Mapped[bool | None] = mapped_column(comment="constraint verdict: true feasible, false infeasible")
    budget: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, comment="BudgetReport.to_dict() (breakdown bytes, "
                                                          "budget_bytes, ...) per budget constraint")
    constraints: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, comment="Optuna constraint values by name "
                                                               "(<= 0 satisfied)")
    objectives: Mapped[list[Any] | None] = mapped_column(sa.JSON, comment="objective values, study order")
    metrics: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, comment="TrainResult metrics (val_loss, ...)")
    curve: Mapped[list[Any] | None] = mapped_column(sa.JSON, comment="[{step, val_loss, ...}] at each evaluation")
    backends: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, comment="kernel backend used per op")
    precision: Mapped[str | None] = mapped_column(sa.String(64))
    versions: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, comment="library versions of the run")
    tokens_per_s: Mapped[float | None] = mapped_column(sa.Float, comment="measured training throughput")
    mfu: Mapped[float | None] = mapped_column(sa.Float)
    peak_memory_bytes: Mapped[int | None] = mapped_column(sa.BigInteger, comment="measured peak memory")
    train_time_s: Mapped[float | None] = mapped_column(sa.Float, comment="time inside train()")
    overhead_s: Mapped[float | None] = mapped_column(sa.Float, comment="time outside train(): sample, validate, "
                                                     "budget, storage")
    wall_time_s: Mapped[float | None] = mapped_column(sa.Float, comment="whole trial")
    error: Mapped[str | None] = mapped_column(sa.Text, comment="why the trial did not complete")
    traceback: Mapped[str | None] = mapped_column(sa.Text)
    worker: Mapped[str | None] = mapped_column(sa.String(256), comment="host:pid of the worker")
    out_dir: Mapped[str | None] = mapped_column(sa.String(1024))
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column()
    target: Mapped[dict[str, Any] | None] = mapped_column(
        sa.JSON, comment="the target spec the constraints and size objectives were judged on: {name, spec_hash, "
        "canonical_hash, n_params, spec}; null without one")
    candidate_key: Mapped[str | None] = mapped_column(
        sa.String(64), comment="hash of the canonical proxy + target specs, task, recipe and seed")
    duplicate_of: Mapped[int | None] = mapped_column(
        comment="number of the trial whose stored result this one reuses")
    rung: Mapped[int | None] = mapped_column(
        comment="successive halving: index of the last rung the trial reached (null without halving)")

    study: Mapped[StudyRecord] = relationship(back_populates="trials")


class AblationRecord(Base):
    __tablename__ = "archsearch_ablations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(512), comment="base spec name + varied paths")
    base_spec: Mapped[dict[str, Any]] = mapped_column(comment="the resolved base ModelSpec")
    base_hash: Mapped[str] = mapped_column(sa.String(64))
    vary: Mapped[list[Any]] = mapped_column(comment="[{path, values}] in command-line order")
    seeds: Mapped[list[Any]] = mapped_column(comment="the seeds every cell ran with")
    task: Mapped[dict[str, Any]] = mapped_column(comment="TaskSpec")
    recipe: Mapped[dict[str, Any]] = mapped_column(comment="Recipe")
    metric: Mapped[str] = mapped_column(sa.String(64), comment="the summarised metric (e.g. val_loss)")
    summary: Mapped[list[Any] | None] = mapped_column(sa.JSON, comment="per cell: mean, ci95, paired diff to base")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    runs: Mapped[list["AblationRunRecord"]] = relationship(back_populates="ablation", cascade="all, delete-orphan")


class AblationRunRecord(Base):
    __tablename__ = "archsearch_ablation_runs"
    __table_args__ = (sa.UniqueConstraint("ablation_id", "cell", "seed", name="uq_archsearch_ablation_runs_cell"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ablation_id: Mapped[int] = mapped_column(sa.ForeignKey("archsearch_ablations.id", ondelete="CASCADE"))
    cell: Mapped[str] = mapped_column(sa.String(1024), comment="setting label, e.g. 'd_model=128,blocks.M.d_state=16'")
    setting: Mapped[dict[str, Any]] = mapped_column(comment="{path: value} of this cell")
    is_base: Mapped[bool] = mapped_column(comment="the base spec's own setting")
    seed: Mapped[int]
    status: Mapped[str] = mapped_column(sa.String(16), comment="one of " + ", ".join(ABLATION_RUN_STATUSES))
    spec: Mapped[dict[str, Any]] = mapped_column()
    spec_hash: Mapped[str] = mapped_column(sa.String(64))
    metrics: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    curve: Mapped[list[Any] | None] = mapped_column(sa.JSON)
    result: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, comment="the whole TrainResult.to_dict()")
    error: Mapped[str | None] = mapped_column(sa.Text)
    traceback: Mapped[str | None] = mapped_column(sa.Text)
    wall_time_s: Mapped[float | None] = mapped_column(sa.Float)
    finished_at: Mapped[dt.datetime | None] = mapped_column()

    ablation: Mapped[AblationRecord] = relationship(back_populates="runs")


class RungRecord(Base):
    """One trial's result at one successive-halving rung and the promotion decision, made once (the unique key)."""

    __tablename__ = "archsearch_rungs"
    __table_args__ = (sa.UniqueConstraint("study_id", "trial_number", "rung", name="uq_archsearch_rungs_trial"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(sa.ForeignKey("archsearch_studies.id", ondelete="CASCADE"))
    trial_number: Mapped[int] = mapped_column(comment="the trial's number (a retry's: the trial it re-runs)")
    rung: Mapped[int] = mapped_column(comment="rung index, 0 first")
    fraction: Mapped[float] = mapped_column(sa.Float, comment="the rung's fraction of the recipe's length")
    step: Mapped[int] = mapped_column(comment="the step of the evaluation that scored the rung")
    objectives: Mapped[list[Any]] = mapped_column(comment="objective values at the rung, study order")
    feasible: Mapped[bool] = mapped_column(comment="constraints satisfied")
    decision: Mapped[str] = mapped_column(sa.String(16), comment="promoted, stopped, or final (the last rung)")
    worker: Mapped[str | None] = mapped_column(sa.String(256), comment="host:pid that decided")
    decided_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class FidelityRecord(Base):
    """A proxy-fidelity measurement: chosen candidates retrained at `factor` x the budget, short vs long rankings."""

    __tablename__ = "archsearch_fidelity"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(sa.ForeignKey("archsearch_studies.id", ondelete="CASCADE"))
    factor: Mapped[float] = mapped_column(sa.Float, comment="long budget / short budget")
    candidates: Mapped[list[Any]] = mapped_column(comment="[{number, chosen_by, short: [...], long: [...]}]")
    noise: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, comment="one candidate at a second seed: "
                                                          "{number, seeds, values}, the noise floor")
    stats: Mapped[dict[str, Any]] = mapped_column(comment="per objective: n, tau, tau_ci95, pairwise_accuracy, "
                                                  "pairwise_accuracy_ci95")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    partial: Mapped[bool] = mapped_column(default=False, server_default=sa.false(),
                                          comment="a time limit ended it before every chosen candidate (or the "
                                                  "noise floor) was retrained; the statistics cover `candidates`")
    n_chosen: Mapped[int | None] = mapped_column(comment="candidates chosen (len(candidates) when not partial; null "
                                                 "before revision 0004)")


class FidelityRunRecord(Base):
    """One retraining of a fidelity measurement (a candidate at `factor` x the budget, or the noise floor's second
    seed at 1x), stored as soon as it finishes so that a stopped `study fidelity` keeps it and its rerun reuses it.
    The unique key (study, run_key) makes it once: run_key hashes what was trained (the proxy spec, task, recipe
    and seed), so the same candidate at the same length and seed is the same run whichever measurement asked."""

    __tablename__ = "archsearch_fidelity_runs"
    __table_args__ = (sa.UniqueConstraint("study_id", "run_key", name="uq_archsearch_fidelity_runs_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(sa.ForeignKey("archsearch_studies.id", ondelete="CASCADE"))
    run_key: Mapped[str] = mapped_column(sa.String(64), comment="hash of the proxy spec, task, recipe and seed "
                                         "trained (archsearch.studies.dedup.candidate_key)")
    trial_number: Mapped[int] = mapped_column(comment="the study trial whose candidate was retrained")
    factor: Mapped[float] = mapped_column(sa.Float, comment="length over the study recipe's (1: the noise floor run)")
    seed: Mapped[int]
    recipe: Mapped[dict[str, Any]] = mapped_column(comment="the recipe trained (the study's, scaled by factor)")
    status: Mapped[str] = mapped_column(sa.String(16), comment="completed, diverged or stopped (the training's)")
    objectives: Mapped[list[Any]] = mapped_column(comment="objective values, study order (analytic ones as stored "
                                                  "for the trial; trained ones null unless completed)")
    metrics: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, comment="the training result's metrics")
    wall_time_s: Mapped[float] = mapped_column(sa.Float, comment="seconds the training took (time limits use it)")
    finished_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
