"""Read-only queries over archsearch.storage's tables, mapped to the plain records of `views`.

A study's light columns (no spec, curve or traceback) are loaded once per change of the study and kept:
sorting, filtering and paging 10,000 rows in Python is a few milliseconds and works the same on every backend.
A change is seen through a cheap "stamp" (trial count and newest id per status).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from ..errors import first_line
from ..storage.halving_reads import (fidelity_measurements, halving_fractions, halving_stamp, has_rungs, rung_counts,
                                     trial_rungs)
from ..storage.models import StudyRecord, TrialRecord
from ..storage.tally import session_tally
from .progress import partials
from .views import (ANALYTIC_METRICS, UNTRAINED_STATUSES, Best, Comparison, Halving, LayerCell, MemoryContext,
                    Objective, Reference, StudyView, TrialDetail, TrialRow)


MAX_ID = 2**63 - 1  # the largest id SQL integer columns hold; a larger one is no stored row, never an error


class NotFound(LookupError):
    """A study or trial id that the database does not hold."""


def valid_id(value: int) -> bool:
    return 0 < value <= MAX_ID


@dataclass
class _StudyData:
    stamp: str
    view: StudyView
    rows: list[TrialRow]


def _memory_context(session: Session, study_id: int) -> MemoryContext | None:
    stmt = (sa.select(TrialRecord.budget).where(TrialRecord.study_id == study_id)
            .order_by(TrialRecord.id).execution_options(yield_per=200))
    for (budget,) in session.execute(stmt):
        for name, report in (budget or {}).items():
            if isinstance(report, dict) and "total_bytes" in report:
                return MemoryContext(name, report.get("device"), report.get("context"), report.get("batch"))
    return None


def _status(record: StudyRecord, counts: dict[str, int]) -> str:
    if counts.get("running"):
        return "running"
    if record.n_trials_target is None or record.slots_taken >= record.n_trials_target:
        return "finished"
    return "incomplete"


def _best(objectives: list[Objective], rows: list[TrialRow]) -> list[Best | None]:
    best: list[Best | None] = []
    for i, objective in enumerate(objectives):
        candidates = [r for r in rows if r.status == "completed" and r.fits is not False
                      and i < len(r.values) and r.values[i] is not None and math.isfinite(r.values[i])]
        if not candidates:
            best.append(None)
            continue
        pick = (min if objective.direction == "minimize" else max)(candidates, key=lambda r: r.values[i])
        best.append(Best(objective, pick.values[i], pick.id, pick.number))
    return best


def _floats(values: Any) -> list[float | None]:
    return [float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None for v in (values or [])]


def _number_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def layer_cells(pattern: str | None, spec: dict[str, Any] | None) -> list[LayerCell]:
    """One cell per layer; each symbol's kind comes from the stored spec's blocks table."""
    blocks = (spec or {}).get("blocks") or {}
    cells = {symbol: LayerCell(symbol, (block or {}).get("kind", "unknown"),
                               (block or {}).get("window") is not None) for symbol, block in blocks.items()}
    return [cells.get(symbol, LayerCell(symbol, "unknown")) for symbol in (pattern or "")]


def reference_of(study_file: Any, objectives: list[Objective], best: list[Best | None]) -> Reference | None:
    """The stored study file's `reference:` (archsearch.studies.study_file.Reference, validated when the study
    was stored), read without trusting its shape: a study stored before references, or by another tool, shows
    none, and a field of the wrong type is left out rather than failing the page."""
    raw = study_file.get("reference") if isinstance(study_file, dict) else None
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        return None
    metrics = {str(k): float(v) for k, v in (raw.get("metrics") or {}).items()
               if _number_or_none(v) is not None and math.isfinite(v)} if isinstance(raw.get("metrics"), dict) else {}
    n_params = raw.get("n_params") if isinstance(raw.get("n_params"), int) and not isinstance(raw.get("n_params"),
                                                                                             bool) else None
    text = {k: raw.get(k) if isinstance(raw.get(k), str) else None for k in ("source", "pattern", "layers")}
    blocks = raw.get("blocks") if isinstance(raw.get("blocks"), dict) else {}
    values = {"n_params": float(n_params)} if n_params is not None else {}
    values.update(metrics)  # a measured n_params in metrics wins over the field
    comparisons = [Comparison(o, values[o.metric], b) for o, b in zip(objectives, best) if o.metric in values]
    return Reference(name=raw["name"], source=text["source"], n_params=n_params, pattern=text["pattern"],
                     strip=layer_cells(text["layers"], {"blocks": blocks}), metrics=metrics, comparisons=comparisons)


def shown_values(status: str, objectives: list[Objective], values: list[float | None]) -> list[float | None]:
    """The values a trial shows: a trial never trained keeps only its analytic ones (parameters, memory); what it
    reported for a trained metric is a placeholder for the sampler (the loss of a uniform guess), not a result."""
    if status not in UNTRAINED_STATUSES:
        return values
    return [v if i < len(objectives) and objectives[i].metric in ANALYTIC_METRICS else None
            for i, v in enumerate(values)]


def _halving(session: Session, study_id: int, rows: list[TrialRow]) -> Halving | None:
    """The study's rungs when it used successive halving (its study file says so, or rungs are recorded)."""
    fractions = halving_fractions(session, study_id)
    if fractions is None and not has_rungs(session, study_id) and all(r.rung is None for r in rows):
        return None
    return Halving(fractions or [], rung_counts(session, study_id, fractions))


class Repository:
    """Everything the dashboard reads, through one read-only engine."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._cache: dict[int, _StudyData] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ stamps and cached study data
    def stamp(self, study_id: int) -> str:
        if not valid_id(study_id):
            raise NotFound(f"study {study_id}")
        with Session(self.engine) as session:
            if session.get(StudyRecord, study_id) is None:
                raise NotFound(f"study {study_id}")
            # Only indexed columns: a finished time would make SQLite walk every row's JSON. A trial that
            # ends changes the counts (running -> another status), a new one the newest id.
            rows = session.execute(
                sa.select(TrialRecord.status, sa.func.count(), sa.func.max(TrialRecord.id),
                          sa.func.sum(TrialRecord.rung))
                .where(TrialRecord.study_id == study_id).group_by(TrialRecord.status).order_by(TrialRecord.status))
            # A rung decision changes a trial's rung while its status stays running; fidelity rows change no trial.
            # Rungs only rise, so their sum changes when a running trial passes one.
            return ";".join([*(f"{s}:{n}:{i}" + (f":{r}" if r is not None else "") for s, n, i, r in rows),
                             halving_stamp(session, study_id)])

    def _data(self, study_id: int) -> _StudyData:
        stamp = self.stamp(study_id)
        with self._lock:
            cached = self._cache.get(study_id)
            if cached is None or cached.stamp != stamp:
                cached = self._cache[study_id] = self._load(study_id, stamp)
            return cached

    def _load(self, study_id: int, stamp: str) -> _StudyData:
        if not valid_id(study_id):
            raise NotFound(f"study {study_id}")
        with Session(self.engine) as session:
            record = session.get(StudyRecord, study_id)
            if record is None:
                raise NotFound(f"study {study_id}")
            memory = _memory_context(session, study_id)
            memory_col = (TrialRecord.budget[memory.constraint]["total_bytes"].as_float() if memory
                          else sa.null())
            t = TrialRecord
            stmt = (sa.select(t.id, t.number, t.status, t.fits, t.objectives, t.params, t.n_params, memory_col,
                              t.tokens_per_s, t.precision, t.backends, t.error, t.wall_time_s, t.pattern_compact,
                              t.rung)
                    .where(t.study_id == study_id).order_by(t.number, t.id))
            objectives = [Objective(str(o.get("metric")), str(o.get("direction", "minimize")))
                          for o in (record.objectives or []) if isinstance(o, dict)]
            rows = [TrialRow(id=i, number=n, status=s, fits=f, values=shown_values(s, objectives, _floats(obj)),
                             params=p or {}, n_params=np_, memory_bytes=mem, tokens_per_s=tps, precision=prec,
                             backends=be or {}, error=first_line(err, 200) if err else None, wall_time_s=wall,
                             pattern=pat, trained=s not in UNTRAINED_STATUSES, rung=rung)
                    for i, n, s, f, obj, p, np_, mem, tps, prec, be, err, wall, pat, rung in session.execute(stmt)]
            counts = session_tally(session, study_id).by_status  # retries once, as n_trials and `study list`
            params: dict[str, None] = {}
            for row in rows:
                params.update(dict.fromkeys(row.params))
            best = _best(objectives, rows)
            view = StudyView(id=record.id, name=record.name, status=_status(record, counts),
                             created_at=record.created_at, n_trials_target=record.n_trials_target,
                             objectives=objectives, counts=counts, best=best, memory=memory,
                             param_names=sorted(params), halving=_halving(session, study_id, rows),
                             fidelity=fidelity_measurements(session, study_id),
                             reference=reference_of(record.study_file, objectives, best))
            return _StudyData(stamp, view, rows)

    # ------------------------------------------------------------------ what the pages ask for
    def study_ids(self) -> list[int]:
        with Session(self.engine) as session:
            return list(session.scalars(sa.select(StudyRecord.id).order_by(StudyRecord.id)))

    def studies(self) -> list[StudyView]:
        return [self._data(study_id).view for study_id in self.study_ids()]

    def study(self, study_id: int) -> StudyView:
        return self._data(study_id).view

    def rows(self, study_id: int) -> list[TrialRow]:
        return self._data(study_id).rows

    def patterns(self, study_id: int, trial_ids: Iterable[int]) -> dict[int, list[LayerCell]]:
        ids = [i for i in trial_ids if valid_id(i)]
        if not ids:
            return {}
        with Session(self.engine) as session:
            stmt = (sa.select(TrialRecord.id, TrialRecord.pattern, TrialRecord.spec["blocks"])
                    .where(TrialRecord.study_id == study_id, TrialRecord.id.in_(ids)))
            return {i: layer_cells(pattern, {"blocks": blocks}) for i, pattern, blocks in session.execute(stmt)}

    def details(self, study_id: int, trial_ids: Iterable[int]) -> list[TrialDetail]:
        """Full records of the given trials, in the order asked; an id not in this study raises NotFound."""
        ids = list(dict.fromkeys(trial_ids))
        by_id = {row.id: row for row in self.rows(study_id)}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise NotFound(f"trial {missing[0]} in study {study_id}")
        memory = self.study(study_id).memory
        with Session(self.engine) as session:
            records = {r.id: r for r in session.scalars(sa.select(TrialRecord).where(TrialRecord.id.in_(ids)))}
            study_file = session.scalar(sa.select(StudyRecord.study_file).where(StudyRecord.id == study_id))
            # a retry's rungs are stored under the number of the trial it re-runs (archsearch.studies.promotion)
            origins = {i: r.retry_of if r.retry_of is not None else r.number for i, r in records.items()}
            rungs = trial_rungs(session, study_id, sorted(set(origins.values())))
        base = (study_file or {}).get("base") if isinstance(study_file, dict) else None
        running = partials(self.engine, study_id, [i for i in ids if by_id[i].status == "running"])
        details = []
        for i in ids:
            r = records[i]
            report = (r.budget or {}).get(memory.constraint) if memory else None
            breakdown = (report or {}).get("breakdown") or {}
            details.append(TrialDetail(
                row=by_id[i], spec=r.spec, pattern=layer_cells(r.pattern, r.spec),
                curve=[p for p in (r.curve or []) if isinstance(p, dict)],
                memory_breakdown={k: float(v) for k, v in breakdown.items() if isinstance(v, (int, float))},
                metrics=r.metrics or {}, versions=r.versions or {}, traceback=r.traceback, target=r.target,
                duplicate_of=r.duplicate_of, base=base if isinstance(base, dict) else None,
                partial=running.get(i), memory_budget=_number_or_none((report or {}).get("budget_bytes")),
                rungs=rungs.get(origins[i], [])))
        return details

    def memory_breakdowns(self, study_id: int, trial_ids: Iterable[int]) -> dict[int, dict[str, float]]:
        return {i: breakdown for i, (breakdown, _) in self.memory_reports(study_id, trial_ids).items()}

    def memory_reports(self, study_id: int, trial_ids: Iterable[int]
                       ) -> dict[int, tuple[dict[str, float], float | None]]:
        """Trial id -> (its memory breakdown in bytes, the budget in bytes) at the study's memory constraint."""
        memory = self.study(study_id).memory
        ids = [i for i in trial_ids if valid_id(i)]
        if memory is None or not ids:
            return {}
        report = TrialRecord.budget[memory.constraint]
        with Session(self.engine) as session:
            stmt = (sa.select(TrialRecord.id, report["breakdown"], report["budget_bytes"].as_float())
                    .where(TrialRecord.study_id == study_id, TrialRecord.id.in_(ids)))
            return {i: ({k: float(v) for k, v in (b or {}).items() if isinstance(v, (int, float))}, budget)
                    for i, b, budget in session.execute(stmt)}

    def partials(self, study_id: int, trial_ids: Iterable[int]):
        """Running trials' curves so far (archsearch.dashboard.progress), by our trial id."""
        ids = [i for i in trial_ids if valid_id(i)]
        return partials(self.engine, study_id, ids) if ids else {}

    def curves(self, study_id: int, trial_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
        ids = [i for i in trial_ids if valid_id(i)]
        if not ids:
            return {}
        with Session(self.engine) as session:
            stmt = (sa.select(TrialRecord.id, TrialRecord.curve)
                    .where(TrialRecord.study_id == study_id, TrialRecord.id.in_(ids)))
            return {i: [p for p in (c or []) if isinstance(p, dict)] for i, c in session.execute(stmt)}

    def completed_optuna_ids(self, study_id: int) -> list[int]:
        with Session(self.engine) as session:
            return list(session.scalars(sa.select(TrialRecord.optuna_trial_id).where(
                TrialRecord.study_id == study_id, TrialRecord.status == "completed")))
