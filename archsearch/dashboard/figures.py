"""Plotly figures, built on the server from plain data and drawn in the page by plotly.js (served locally).

Every function returns a plain dict (`{"data": [...], "layout": {...}}`) ready for JSON and `Plotly.react`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import plotly.colors
import plotly.graph_objects as go
from plotly.subplots import make_subplots

# Categories of a point on the Pareto plot, in drawing order (the front last, on top).
CATEGORIES = ("failed", "infeasible", "feasible", "front")
_STYLE = {
    "failed": dict(name="failed", marker=dict(symbol="x", color="#c0392b", size=8)),
    "infeasible": dict(name="infeasible (constraint violated)", marker=dict(symbol="triangle-up-open", color="#e67e22", size=8)),
    "feasible": dict(name="feasible, dominated", marker=dict(symbol="circle", color="#95a5a6", size=7)),
    "front": dict(name="Pareto front", marker=dict(symbol="circle", color="#2e86de", size=10),
                  line=dict(color="#2e86de", shape="hv")),
}
# Curves: plotly's 24 dark qualitative colours x 3 dash styles, so no two of the (at most 60) curves drawn at once
# look alike.
CURVE_COLOURS = tuple(plotly.colors.qualitative.Dark24)
CURVE_DASHES = ("solid", "dash", "dot")
_LAYOUT = dict(margin=dict(l=60, r=20, t=40, b=50), template="plotly_white", height=380)


@dataclass(frozen=True)
class PlotPoint:
    trial_id: int
    number: int
    x: float
    y: float
    category: str  # one of CATEGORIES


def _plain(fig: go.Figure) -> dict:
    return fig.to_plotly_json()


def pareto_figure(points: Sequence[PlotPoint], x_label: str, y_label: str, note: str = "") -> dict:
    """One trace per category so the legend tells feasible, infeasible, failed and the front apart.

    The traces are written as plain plotly JSON: validating 10,000 points through `graph_objects` costs the
    server a quarter of a second for nothing (the values are plain floats and ints).
    """
    hover = "%{text}<br>" + f"{x_label}=%{{x}}<br>{y_label}=%{{y}}<extra></extra>"
    data = []
    for category in CATEGORIES:
        chosen = [p for p in points if p.category == category]
        if category == "front":
            chosen.sort(key=lambda p: (p.x, p.y))
        # SVG, not WebGL (scattergl): headless and remote browsers often have no WebGL, and the plot must show.
        data.append({"type": "scatter", "mode": "lines+markers" if category == "front" else "markers",
                     "x": [p.x for p in chosen], "y": [p.y for p in chosen],
                     "customdata": [p.trial_id for p in chosen], "text": [f"trial {p.number}" for p in chosen],
                     "hovertemplate": hover, "meta": category, **_STYLE[category]})
    layout = go.Layout(xaxis_title=x_label, yaxis_title=y_label, title=dict(text=note, font=dict(size=12)),
                       legend=dict(orientation="h", y=-0.2), **_LAYOUT)
    return {"data": data, "layout": layout.to_plotly_json()}


def _byte_unit(largest: float) -> tuple[str, float]:
    for unit, scale in (("GiB", 1024.0 ** 3), ("MiB", 1024.0 ** 2), ("KiB", 1024.0)):
        if largest >= scale:
            return unit, scale
    return "bytes", 1.0


def memory_figure(labels: Sequence[str], breakdowns: Sequence[Mapping[str, float]],
                  budgets: Sequence[float | None] = ()) -> dict:
    """Stacked bars: one bar per trial, one colour per component of the memory budget (given in bytes; the
    axis, in KiB, MiB or GiB as the table writes them, fits the largest bar or budget), and a dashed line at
    each distinct budget."""
    components: dict[str, None] = {}
    for breakdown in breakdowns:
        components.update(dict.fromkeys(breakdown))
    limits = sorted({float(b) for b in budgets if b})
    unit, scale = _byte_unit(max([sum(b.values()) for b in breakdowns] + limits, default=0.0))
    fig = go.Figure()
    for component in components:
        fig.add_trace(go.Bar(x=list(labels), y=[b.get(component, 0.0) / scale for b in breakdowns], name=component,
                             hovertemplate=f"%{{x}} {component}: %{{y:.3g}} {unit}<extra></extra>"))
    for limit in limits:
        fig.add_hline(y=limit / scale, line=dict(color="#c0392b", dash="dash", width=2),
                      annotation=dict(text=f"budget {limit / scale:.3g} {unit}", font=dict(color="#c0392b")),
                      annotation_position="top left")
    fig.update_layout(barmode="stack", yaxis_title=f"memory ({unit})", xaxis=dict(type="category"), **_LAYOUT)
    return _plain(fig)


def curve_style(index: int) -> dict:
    """The line of the index-th curve: the colour cycles first, then the dash."""
    return dict(color=CURVE_COLOURS[index % len(CURVE_COLOURS)],
                dash=CURVE_DASHES[(index // len(CURVE_COLOURS)) % len(CURVE_DASHES)])


def curves_figure(curves: Mapping[str, Sequence[tuple[float, float]]], y_label: str = "loss") -> dict:
    """All curves overlaid on one pair of axes."""
    fig = go.Figure()
    for index, (label, points) in enumerate(curves.items()):
        fig.add_trace(go.Scatter(x=[s for s, _ in points], y=[v for _, v in points], mode="lines", name=label,
                                 line=curve_style(index)))
    fig.update_layout(xaxis_title="step", yaxis_title=y_label, **_LAYOUT)
    return _plain(fig)


def side_by_side_curves(curves: Mapping[str, Sequence[tuple[float, float]]], y_label: str = "loss") -> dict:
    """One panel per curve with shared axes, for comparing a few trials."""
    labels = list(curves) or ["(no curves)"]
    titles = [label if curves.get(label) else f"{label} (no curve stored)" for label in labels]
    fig = make_subplots(rows=1, cols=len(labels), shared_yaxes=True, shared_xaxes=True,
                        subplot_titles=titles, horizontal_spacing=0.03)
    for col, label in enumerate(labels, start=1):
        points = curves.get(label, ())
        fig.add_trace(go.Scatter(x=[s for s, _ in points], y=[v for _, v in points], mode="lines",
                                 name=label, showlegend=False), row=1, col=col)
        fig.update_xaxes(title_text="step", row=1, col=col)
    fig.update_yaxes(title_text=y_label, row=1, col=1)
    fig.update_layout(**_LAYOUT)
    return _plain(fig)


def importance_figure(importances: Mapping[str, float], objective: str) -> dict:
    """Horizontal bars, most important parameter on top."""
    ordered = sorted(importances.items(), key=lambda kv: kv[1])
    fig = go.Figure(go.Bar(x=[v for _, v in ordered], y=[k for k, _ in ordered], orientation="h",
                           marker_color="#2e86de"))
    fig.update_layout(xaxis_title=f"importance for {objective} (PED-ANOVA)", **_LAYOUT)
    fig.update_layout(margin=dict(l=160, r=20, t=30, b=50))
    return _plain(fig)


def ablation_figure(rows: Sequence[Mapping], metric: str) -> dict | None:
    """Each cell's effect: the paired difference of `metric` to the base cell, with its 95% interval as error
    bars (none where one seed gives no interval); the base is the zero line. None without any cell to show."""
    cells = [r for r in rows if not r.get("is_base") and isinstance(r.get("diff"), Mapping)
             and isinstance(r["diff"].get("mean"), (int, float))]
    if not cells:
        return None
    labels = [str(r.get("cell") or r.get("setting")) for r in cells]
    means = [float(r["diff"]["mean"]) for r in cells]
    errors = [float(r["diff"]["ci95"]) if isinstance(r["diff"].get("ci95"), (int, float)) else 0.0 for r in cells]
    colours = ["#c0392b" if r.get("significant") else "#2e86de" for r in cells]
    fig = go.Figure(go.Scatter(
        x=means, y=labels, mode="markers", marker=dict(size=10, color=colours),
        error_x=dict(type="data", array=errors, visible=True, thickness=1.5),
        customdata=[r.get("n") for r in cells],
        hovertemplate="%{y}: %{x:.4g} ± %{error_x.array:.3g} (n=%{customdata})<extra></extra>"))
    fig.add_vline(x=0, line=dict(color="#6b7b8c", dash="dash"), annotation=dict(text="base"),
                  annotation_position="top")
    fig.update_layout(xaxis_title=f"{metric} minus the base's (paired, 95% CI)", yaxis=dict(type="category",
                      autorange="reversed"), **dict(_LAYOUT, height=max(220, 60 + 40 * len(cells))))
    fig.update_layout(margin=dict(l=200, r=20, t=40, b=50))
    return _plain(fig)
