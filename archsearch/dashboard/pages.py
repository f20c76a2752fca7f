"""HTML pages: rendered on the server from the repository's records; the study page then draws from `api`."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse

from ..storage.models import TRIAL_STATUSES
from .ablations import ablation, list_ablations
from .api import trials_payload
from .curves import curve_metrics, curve_series, partial_series
from .figures import ablation_figure, memory_figure, side_by_side_curves
from .queries import NotFound, valid_id
from .specdiff import spec_diff

MAX_COMPARED = 8


def render(request: Request, template: str, status_code: int = 200, **context) -> HTMLResponse:
    html = request.app.state.templates.get_template(template).render(request=request, **context)
    return HTMLResponse(html, status_code=status_code)


def index(request: Request) -> HTMLResponse:
    repo = request.app.state.repo
    return render(request, "studies.html", studies=repo.studies(),
                  ablations=list_ablations(repo.engine))


def study(request: Request) -> HTMLResponse:
    repo = request.app.state.repo
    study_id = request.path_params["study_id"]
    view = repo.study(study_id)
    # The first page of the table travels inside the HTML, so the table is usable without another round trip.
    return render(request, "study.html", study=view, stamp=repo.stamp(study_id),
                  first_page=trials_payload(repo, study_id, {}), statuses=TRIAL_STATUSES)


def compare(request: Request) -> HTMLResponse:
    repo = request.app.state.repo
    study_id = request.path_params["study_id"]
    view = repo.study(study_id)
    try:
        ids = [int(t) for t in request.query_params.getlist("t")]
    except ValueError:
        raise HTTPException(400, "compare: every t= must be a trial id (a whole number)") from None
    bad = [i for i in ids if not valid_id(i)]
    if bad:
        raise NotFound(f"trial {bad[0]} in study {study_id}")
    if not ids:
        raise HTTPException(400, "compare: choose trials with t=ID (one or more; two or more to compare)")
    if len(ids) > MAX_COMPARED:
        raise HTTPException(400, f"compare: at most {MAX_COMPARED} trials at once, got {len(ids)}")
    details = repo.details(study_id, ids)
    labels = [f"#{d.row.number}" for d in details]
    metrics = curve_metrics({d.row.id: d.curve for d in details})
    metrics += [m for m in dict.fromkeys(d.partial.metric for d in details if d.partial) if m not in metrics]
    metric = metrics[0] if metrics else "val_loss"
    curves = side_by_side_curves({label: curve_series(d.curve, metric) or partial_series(d.partial, metric)
                                  for label, d in zip(labels, details)}, metric)
    memory = memory_figure(labels, [d.memory_breakdown for d in details],
                           [d.memory_budget for d in details])
    # One trial: its whole spec beside the study's base (what the sample changed); several: each other.
    against_base = len(details) == 1 and details[0].base is not None and details[0].spec is not None
    diff_labels = ["base"] + labels if against_base else labels
    diff = spec_diff([details[0].base, details[0].spec] if against_base else [d.spec or {} for d in details])
    param_names = list(dict.fromkeys(name for d in details for name in sorted(d.row.params)))
    return render(request, "compare.html", study=view, details=details, labels=labels, diff=diff,
                  diff_labels=diff_labels, against_base=against_base, param_names=param_names,
                  n_differ=sum(r.differs for r in diff), curves=curves, memory=memory, metric=metric)


def ablation_page(request: Request) -> HTMLResponse:
    if not valid_id(request.path_params["ablation_id"]):
        raise NotFound(f"ablation {request.path_params['ablation_id']}")
    view = ablation(request.app.state.repo.engine, request.path_params["ablation_id"])
    if view is None:
        raise NotFound(f"ablation {request.path_params['ablation_id']}")
    return render(request, "ablation.html", ablation=view, figure=ablation_figure(view.rows, view.metric))
