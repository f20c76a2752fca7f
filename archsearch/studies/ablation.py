"""Ablations: the full grid of `--vary PATH=a,b,c` settings x seeds, trained, summarised per cell with a mean,
a 95% confidence interval (Student t) and the paired difference to the base setting (same seeds).

Every cell is built and validated before anything trains, so a bad value fails at once, naming the cell.
"""

from __future__ import annotations

import itertools
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..errors import UserError
from ..spec import ModelSpec, PatternError, SpecError, compress_pattern, expand_pattern, parse_spec
from .paths import check_path, copy_for_write, get_path, set_path
from .stats import mean_ci

# (spec, seed) -> TrainResult.to_dict(); a cell that varies task options is run as (spec, seed, task_options)
RunFn = Callable[..., dict[str, Any]]
TASK_PREFIX = "task."  # `--vary task.transforms=...`: an axis over the task's options, not the spec


@dataclass(frozen=True)
class Axis:
    path: str
    values: tuple[Any, ...]


def parse_vary(items: list[str], base: ModelSpec, task: dict[str, Any] | None = None) -> list[Axis]:
    """`["d_model=64,128", "blocks.M.d_state=16,32"]` -> axes; each value is read as YAML (ints, floats, null).
    `pattern=M-M*-,MM--` varies the whole layer pattern: each value is a pattern string, read as written.
    `task.OPTION=a,b` varies an option of `task` ({name, options}), e.g. task.transforms=lang_tag,hint (the
    task checks the values: archsearch.studies.ablate builds every cell's task before training)."""
    axes: list[Axis] = []
    base_doc = base.to_dict()
    for item in items:
        path, sep, raw = item.partition("=")
        path = path.strip()
        if not sep or not path or not raw.strip():
            raise UserError(f"--vary {item!r}: expected PATH=a,b,c (e.g. blocks.M.d_state=16,32)")
        if path in (a.path for a in axes):
            raise UserError(f"--vary {path}: given twice; list all its values in one --vary")
        if path == "pattern" or path.startswith("pattern."):
            axes.append(Axis(path, _pattern_values(path, raw, base)))
            continue
        if path.startswith(TASK_PREFIX):
            option = path[len(TASK_PREFIX):]
            if task is None or not option or "." in option:
                raise UserError(f"--vary {path}: a task axis is task.OPTION (one of the task's options, e.g. "
                                "task.transforms), given with the ablation's task")
            problem = None
        else:
            problem = check_path(path, base_doc)
        if problem:
            raise UserError(f"--vary {path}: {problem}")
        try:
            values = tuple(yaml.safe_load(v.strip()) for v in raw.split(","))
        except yaml.YAMLError as err:
            raise UserError(f"--vary {item!r}: unreadable value ({err})") from None
        if len(set(map(repr, values))) != len(values):
            raise UserError(f"--vary {path}: a value repeats in {list(values)}")
        axes.append(Axis(path, values))
    if not axes:
        raise UserError("give at least one --vary PATH=a,b,c")
    return axes


def _pattern_values(path: str, raw: str, base: ModelSpec) -> tuple[str, ...]:
    """The patterns of `--vary pattern=A,B`: each expanded now (a malformed one fails naming it), a value that
    expands to the base's layers written as the base writes it (so the base cell is recognised, not trained twice),
    and two values with the same layers refused."""
    if path != "pattern":
        # A space's generator draws patterns from a few numbers (n_layers, attention_count, placement,
        # local_global, mlp); an ablation varies one fixed spec, which has no such numbers to turn.
        field = path.split(".", 1)[1]
        written = base.to_dict()["pattern"]
        shown = written if isinstance(written, str) else compress_pattern(base.pattern_string)
        raise UserError(f"--vary {path}: an ablation varies a fixed spec, which has no pattern generator ({field!r} "
                        f"is a field of a study space's `pattern:`); list the whole patterns instead, e.g. "
                        f"--vary 'pattern={shown},...', or search {field} in a study space "
                        f"(pattern: {{{field}: ...}})")
    base_layers = tuple(base.pattern_string)
    values, seen = [], {}
    for text in (v.strip() for v in raw.split(",")):
        try:
            layers = expand_pattern(text)
        except PatternError as err:
            raise UserError(f"--vary pattern: {err}") from None
        if layers in seen:
            raise UserError(f"--vary pattern: {text!r} expands to the same layers as {seen[layers]!r}")
        seen[layers] = text
        values.append(get_path(base.to_dict(), "pattern") if layers == base_layers else text)
    return tuple(values)


@dataclass
class Cell:
    label: str
    setting: dict[str, Any]
    spec: ModelSpec
    is_base: bool
    task_options: dict[str, Any] = field(default_factory=dict)  # the task axes' values (task.OPTION -> OPTION)


def build_cells(base: ModelSpec, axes: list[Axis], task: dict[str, Any] | None = None) -> list[Cell]:
    """Every combination of the axes' values (and the base's own setting, if it is not among them)."""
    base_doc = base.to_dict()
    task_options = dict((task or {}).get("options") or {})
    base_setting = {a.path: task_options.get(a.path[len(TASK_PREFIX):]) if a.path.startswith(TASK_PREFIX)
                    else get_path(base_doc, a.path) for a in axes}
    settings = [dict(zip([a.path for a in axes], combo)) for combo in itertools.product(*[a.values for a in axes])]
    if base_setting not in settings:
        settings.insert(0, base_setting)
    cells, problems = [], []
    for setting in settings:
        label = ",".join(f"{p}={v}" for p, v in setting.items())
        spec_paths = [p for p in setting if not p.startswith(TASK_PREFIX)]
        doc = copy_for_write(base_doc, spec_paths)
        for path in spec_paths:
            set_path(doc, path, setting[path])
        doc["name"] = f"{base.name}[{label}]"[:200]
        on_task = {p[len(TASK_PREFIX):]: v for p, v in setting.items() if p.startswith(TASK_PREFIX)}
        try:
            cells.append(Cell(label, setting, parse_spec(doc), setting == base_setting, on_task))
        except SpecError as err:
            problems.append(f"  cell {label}: " + "; ".join(str(i) for i in err.issues))
    if problems:
        raise UserError("some ablation cells are invalid specs (nothing was trained):\n" + "\n".join(problems))
    return cells


@dataclass
class Run:
    cell: Cell
    seed: int
    status: str
    value: float | None
    result: dict[str, Any] | None = None
    error: str | None = None
    traceback: str | None = None
    wall_time_s: float = 0.0


@dataclass
class Ablation:
    base: ModelSpec
    axes: list[Axis]
    seeds: list[int]
    metric: str
    cells: list[Cell]
    runs: list[Run] = field(default_factory=list)

    def summary(self) -> list[dict[str, Any]]:
        """Per cell: mean and 95% CI of the metric over seeds, and the paired difference to the base cell."""
        base_values = {r.seed: r.value for r in self.runs if r.cell.is_base and r.value is not None}
        rows = []
        for cell in self.cells:
            runs = [r for r in self.runs if r.cell is cell]
            values = [r.value for r in runs if r.value is not None]
            stats = mean_ci(values)
            row = {"cell": cell.label, "setting": cell.setting, "is_base": cell.is_base,
                   "failed": sum(r.value is None for r in runs), **stats.to_dict()}
            if not cell.is_base:
                diffs = [r.value - base_values[r.seed] for r in runs
                         if r.value is not None and r.seed in base_values]
                paired = mean_ci(diffs)
                row["diff"] = paired.to_dict()
                row["significant"] = (paired.half_width is not None and abs(paired.mean) > paired.half_width)
            rows.append(row)
        return rows


def run_ablation(base: ModelSpec, axes: list[Axis], seeds: list[int], run: RunFn, metric: str = "val_loss",
                 on_run: Callable[[Run], None] | None = None, task: dict[str, Any] | None = None) -> Ablation:
    """Train every cell x seed (failures are recorded, not raised) and return the ablation. `task`: the base task,
    whose options the task.OPTION axes vary."""
    ablation = Ablation(base, axes, seeds, metric, build_cells(base, axes, task))
    for cell in ablation.cells:
        for seed in seeds:
            started = time.perf_counter()
            try:
                result = run(cell.spec, seed, cell.task_options) if cell.task_options else run(cell.spec, seed)
            except KeyboardInterrupt:
                raise
            except Exception as err:  # one failed run must not lose the grid
                record = Run(cell, seed, "failed", None, error=f"{type(err).__name__}: {err}",
                             traceback=traceback.format_exc())
            else:
                value = (result.get("metrics") or {}).get(metric, result.get(metric))
                status = result.get("status", "completed")
                if status != "completed" or not isinstance(value, (int, float)):
                    record = Run(cell, seed, status if status != "completed" else "failed", None, result,
                                 error=result.get("reason") or f"no {metric} in the result")
                else:
                    record = Run(cell, seed, "completed", float(value), result)
            record.wall_time_s = time.perf_counter() - started
            ablation.runs.append(record)
            if on_run is not None:
                on_run(record)
    return ablation


def format_summary(ablation: Ablation) -> str:
    def ci(stats: dict) -> str:
        if stats["n"] == 0:
            return "-"
        half = f" ± {stats['ci95']:.4g}" if stats["ci95"] is not None else " (n=1, no CI)"
        return f"{stats['mean']:.4g}{half}"

    rows = ablation.summary()
    width = max(len(r["cell"]) for r in rows) + 2
    lines = [f"{ablation.metric} over seeds {ablation.seeds} (mean ± 95% CI, Student t); diff = paired difference "
             f"to the base setting",
             f"{'cell':<{width}} {'n':>3}  {'mean ± CI':<24} {'diff vs base ± CI':<26}"]
    for r in rows:
        diff = "(base)" if r["is_base"] else ci(r["diff"]) + (" *" if r.get("significant") else "")
        failed = f"  ({r['failed']} failed)" if r["failed"] else ""
        lines.append(f"{r['cell']:<{width}} {r['n']:>3}  {ci(r):<24} {diff:<26}{failed}")
    lines.append("* the 95% CI of the paired difference excludes 0")
    return "\n".join(lines)


def store_ablation(db, ablation: Ablation, task: dict, recipe: dict) -> int:
    from ..storage.models import AblationRecord, AblationRunRecord, utcnow

    with db.session() as session:
        record = AblationRecord(
            name=f"{ablation.base.name}: " + " x ".join(a.path for a in ablation.axes), base_spec=ablation.base.to_dict(),
            base_hash=ablation.base.spec_hash(), vary=[{"path": a.path, "values": list(a.values)} for a in ablation.axes],
            seeds=list(ablation.seeds), task=task, recipe=recipe, metric=ablation.metric, summary=ablation.summary())
        session.add(record)
        session.flush()
        for run in ablation.runs:
            session.add(AblationRunRecord(
                ablation_id=record.id, cell=run.cell.label, setting=run.cell.setting, is_base=run.cell.is_base,
                seed=run.seed, status=run.status, spec=run.cell.spec.to_dict(), spec_hash=run.cell.spec.spec_hash(),
                metrics=(run.result or {}).get("metrics"), curve=(run.result or {}).get("curve"), result=run.result,
                error=run.error, traceback=run.traceback, wall_time_s=run.wall_time_s, finished_at=utcnow()))
        return record.id
