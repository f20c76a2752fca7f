"""JSON endpoints the study page polls and draws from. Every one is GET and reads only."""

from __future__ import annotations

from dataclasses import asdict

from starlette.requests import Request
from starlette.responses import JSONResponse as _StarletteJSONResponse

from ..errors import UserError
from .curves import curve_metrics, curve_series, partial_series
from .progress import progress_stamp
from .figures import curves_figure, importance_figure, memory_figure, pareto_figure
from .optuna_plots import PLOTS, optuna_figure
from .pareto_plot import axes, pareto_data
from .table import columns, numeric_keys, query
from .queries import MAX_ID
from .templating import finite
from .views import StudyView, TrialRow

MAX_PLOTTED_TRIALS = 60  # memory bars and loss curves follow the trials on the current table page


class JSONResponse(_StarletteJSONResponse):
    """Strict JSON: a non-finite float anywhere in the content (an infeasible trial's +inf objective) is null."""

    def render(self, content) -> bytes:
        return super().render(finite(content))


def _int(params, name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise UserError(f"query parameter {name}={raw!r} is not a whole number") from None


def _ids(request: Request) -> list[int]:
    raw = request.query_params.get("ids", "")
    try:
        ids = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"query parameter ids={raw!r}: expected trial ids separated by commas") from None
    bad = [i for i in ids if not 0 < i <= MAX_ID]
    if bad:
        raise UserError(f"query parameter ids: {bad[0]} is not a trial id (ids are whole numbers from 1 to {MAX_ID})")
    return ids[:MAX_PLOTTED_TRIALS]


def summary_json(study: StudyView, stamp: str, progress: str = "") -> dict:
    """`stamp` changes when trials start or end, `progress` when a running trial reports an evaluation."""
    return {"id": study.id, "name": study.name, "status": study.status, "stamp": stamp, "progress": progress,
            "total": study.total,
            "counts": study.counts, "n_trials_target": study.n_trials_target,
            "best": [None if b is None else {"metric": b.objective.metric, "value": b.value, "trial": b.number,
                                             "trial_id": b.trial_id} for b in study.best],
            **({} if study.halving is None else {"rungs": [asdict(c) for c in study.halving.counts]}),
            **({"fidelity": [asdict(f) for f in study.fidelity]} if study.fidelity else {})}


def _row_json(row: TrialRow, study: StudyView) -> dict:
    # successive halving only: the last rung reached (counted from 1) and where that left the trial, in words
    rung = ({} if study.halving is None else {"rung": None if row.rung is None else row.rung + 1,
                                              "rung_label": study.halving.label(row.status, row.rung)})
    return rung | {"id": row.id, "number": row.number, "status": row.status, "verdict": row.verdict,
            "values": row.values, "n_params": row.n_params, "memory": row.memory_bytes,
            "tokens_per_s": row.tokens_per_s, "precision": row.precision, "backends": row.backends_text,
            "params": {name: row.params.get(name) for name in study.param_names}, "error": row.error,
            "pattern": row.pattern, "trained": row.trained}


def _latest_json(partial) -> dict | None:
    """A running trial's latest evaluation: {metric, step, value}."""
    if partial is None:
        return None
    step, value = partial.latest
    return {"metric": partial.metric, "step": step, "value": value}


def study_summary(request: Request) -> JSONResponse:
    repo = request.app.state.repo
    study_id = request.path_params["study_id"]
    return JSONResponse(summary_json(repo.study(study_id), repo.stamp(study_id),
                                     progress_stamp(repo.engine, study_id)))


def trials_payload(repo, study_id: int, params) -> dict:
    """One page of the trials table as JSON; `params` are the query parameters (sort, desc, f.KEY, offset, limit)."""
    study, rows = repo.study(study_id), repo.rows(study_id)
    filters = {key[2:]: value for key, value in params.items() if key.startswith("f.")}
    page = query(study, rows, sort=params.get("sort", "number"), descending=params.get("desc", "0") == "1",
                 filters=filters, offset=_int(params, "offset", 0), limit=_int(params, "limit", 50))
    strips = repo.patterns(study_id, [r.id for r in page.rows])
    running = repo.partials(study_id, [r.id for r in page.rows if r.status == "running"])
    numeric = numeric_keys(study, rows)
    return {
        "total": page.total, "matching": page.matching, "offset": page.offset,
        "columns": [{"key": c.key, "label": c.label, "numeric": c.key in numeric} for c in columns(study)],
        "rows": [dict(_row_json(r, study), strip=[[c.symbol, c.kind, c.look] for c in strips.get(r.id, [])],
                      latest=_latest_json(running.get(r.id)))
                 for r in page.rows]}


def trials(request: Request) -> JSONResponse:
    return JSONResponse(trials_payload(request.app.state.repo, request.path_params["study_id"],
                                       request.query_params))


def pareto(request: Request) -> JSONResponse:
    repo = request.app.state.repo
    study_id = request.path_params["study_id"]
    study = repo.study(study_id)
    choices = axes(study)
    default_y = choices[1].key if len(choices) > 1 else choices[0].key
    data = pareto_data(study, repo.rows(study_id), request.query_params.get("x", choices[0].key),
                       request.query_params.get("y", default_y))
    counts = {}
    for p in data.points:
        counts[p.category] = counts.get(p.category, 0) + 1
    return JSONResponse({"axes": [{"key": a.key, "label": a.label} for a in choices], "x": data.x.key,
                         "y": data.y.key, "counts": counts,
                         "figure": pareto_figure(data.points, data.x.label, data.y.label, data.note)})


def memory(request: Request) -> JSONResponse:
    repo = request.app.state.repo
    study_id = request.path_params["study_id"]
    ids = _ids(request)
    numbers = {r.id: r.number for r in repo.rows(study_id)}
    reports = repo.memory_reports(study_id, ids)
    shown = [i for i in ids if reports.get(i, ({}, None))[0]]
    figure = memory_figure([f"#{numbers.get(i, i)}" for i in shown], [reports[i][0] for i in shown],
                           [reports[i][1] for i in shown])
    return JSONResponse({"trials": len(shown), "figure": figure})


def curves(request: Request) -> JSONResponse:
    repo = request.app.state.repo
    study_id = request.path_params["study_id"]
    ids = _ids(request)
    numbers = {r.id: r.number for r in repo.rows(study_id)}
    stored = repo.curves(study_id, ids)
    running = repo.partials(study_id, [i for i in ids if not stored.get(i)])
    metrics = curve_metrics(stored)
    metrics += [m for m in dict.fromkeys(p.metric for p in running.values()) if m not in metrics]
    metric = request.query_params.get("metric") or (metrics[0] if metrics else "val_loss")
    series = {f"#{numbers.get(i, i)}": (curve_series(stored.get(i, []), metric)
                                        or partial_series(running.get(i), metric)) for i in ids}
    series = {label: points for label, points in series.items() if points}
    return JSONResponse({"metrics": metrics, "metric": metric, "trials": len(series),
                         "figure": curves_figure(series, metric)})


def importance(request: Request) -> JSONResponse:
    repo = request.app.state.repo
    study_id = request.path_params["study_id"]
    study = repo.study(study_id)
    index = _int(request.query_params, "objective", 0)
    if not 0 <= index < len(study.objectives):
        return JSONResponse({"reason": "this study has no objective to explain", "figure": None})
    result = request.app.state.importance(study_id, index)
    figure = importance_figure(result.values, study.objectives[index].metric) if result.values else None
    return JSONResponse({"objectives": [o.metric for o in study.objectives], "objective": index,
                         "reason": result.reason, "figure": figure})


def optuna_plot(request: Request) -> JSONResponse:
    """One of Optuna's own plots (optuna_plots.PLOTS) of the completed trials, for one objective."""
    repo = request.app.state.repo
    study_id = request.path_params["study_id"]
    study = repo.study(study_id)
    plot = request.query_params.get("plot", "history")
    index = _int(request.query_params, "objective", 0)
    answer = {"plots": [{"key": k, "label": label} for k, (label, _) in PLOTS.items()], "plot": plot,
              "objectives": [o.metric for o in study.objectives], "objective": index, "reason": "", "figure": None}
    if plot not in PLOTS:
        raise UserError(f"query parameter plot={plot!r}: allowed: {', '.join(PLOTS)}")
    if not 0 <= index < len(study.objectives):
        return JSONResponse(dict(answer, reason=f"objective {index}: this study has {len(study.objectives)}"))
    completed = repo.completed_optuna_ids(study_id)
    if not completed:
        return JSONResponse(dict(answer, reason="no completed trial yet"))
    try:
        copy = request.app.state.optuna_source.completed_copy(study.name, completed)
    except (KeyError, ValueError) as err:
        return JSONResponse(dict(answer, reason=f"Optuna's record of this study could not be read ({err})"))
    return JSONResponse(dict(answer, figure=optuna_figure(copy, plot, index, study.objectives[index].metric)))
