"""Study files (studies/*.yaml): base spec, space, task and recipe, objectives, constraints, sampler, budget of
trials, storage, seed. Read into pydantic models; every problem is reported at file:line:col.

    name: quickstart
    base: nemotron-h-tiny          # an example name, a path (relative to this file), or an inline spec mapping
    target: nemotron-nano-9b-v2    # optional, as base: the model searched for; constraints and sizes judge it
    space: hybrid-tiny             # a shipped space name, a path, or an inline mapping
    task: mqar                     # archsearch.training TaskSpec (a name or a mapping)
    recipe: {steps: 60, ...}       # archsearch.training Recipe
    objectives: [val_loss, n_params]
    constraints:
      budget: [{device: a10g, context: 1M, batch: 1}]
      params: {min: 1.0e+5, max: 2.0e+6}
    sampler: {type: nsga2, population_size: 8}
    n_trials: 12
    storage: sqlite:///quickstart.db
    seed: 0
    reference:                     # optional: what the trials are compared against (shown by the dashboard)
      name: parent
      n_params: 1127388
      pattern: (M-)x4 *-
      metrics: {val_loss: 0.7639}
      source: runs/parent
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator

from ..spec import ModelSpec
from ..spec.errors import SpecIssue
from ..spec.kinds import KINDS
from ..spec.pattern import PatternError, expand_pattern
from ..storage.urls import redact
from .halving import HalvingConfig
from ..limits import MAX_SAMPLER_SEED, MAX_SERVED_BATCH, MAX_TIMEOUT_S, MAX_TRIALS
from .documents import FileError, Marks, issue, nested, parse_model, read_yaml, resolve_spec, under
from .objectives import Objective
from .space import SearchSpace, check_space, parameter_path_issues, parse_space, resolve_space_path


def _whole(low: int, high: int | None = None):
    """A whole number in [low, high]; YAML's `true` or "12" is refused, not read as 1 or 12."""
    return Annotated[int, Strict(), Field(ge=low, le=high)]


Seconds = Annotated[float, Strict(), Field(gt=0)]  # an int or a float, never a bool or a string


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class BudgetConstraint(_Frozen):
    """Serve `context` tokens x `batch` sequences on `device` within its memory budget (analytic check)."""

    device: str
    context: Union[_whole(1), str]  # 131072 or "128k"
    batch: _whole(1, MAX_SERVED_BATCH) = 1
    settings: dict[str, Any] = Field(default_factory=dict)  # archsearch.checks.CheckSettings fields

    @property
    def key(self) -> str:
        return f"budget:{self.device}@{self.context}x{self.batch}"


class ParamRange(_Frozen):
    min: Annotated[float, Field(ge=0)] | None = None
    max: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _check(self) -> "ParamRange":
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min:g}) must not exceed max ({self.max:g})")
        return self


class Constraints(_Frozen):
    budget: list[BudgetConstraint] = Field(default_factory=list)
    params: ParamRange | None = None


class SamplerConfig(BaseModel):
    """`type` picks the Optuna sampler; every other key is passed to its constructor."""

    model_config = ConfigDict(frozen=True, extra="allow")
    type: Literal["tpe", "nsga2", "gp", "random", "grid", "qmc", "cmaes"] = "tpe"


class PrunerConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")
    type: Literal["median", "percentile", "hyperband", "successive_halving", "threshold", "patient", "nop"]


class EarlyStopConfig(_Frozen):
    """Multi-objective early stop: a trial whose intermediate metric at an evaluation step is dominated by at
    least `min_dominators` completed trials at the same step (all other known objectives at least as good) for
    `patience` consecutive evaluations stops. `margin` (relative) guards against evaluation noise."""

    enabled: bool = True
    min_completed: _whole(1, MAX_TRIALS) = 3
    min_dominators: _whole(1, MAX_TRIALS) = 1
    patience: _whole(1, 1_000_000) = 2
    margin: Annotated[float, Strict(), Field(ge=0, lt=1)] = 0.02


class HeartbeatConfig(_Frozen):
    """Optuna heartbeats: a trial whose worker has been silent for `grace_s` is failed and queued again (up to
    `max_retry` times) with the same parameters."""

    interval_s: _whole(1, 86_400) = 30
    grace_s: _whole(2, 864_000) = 120
    max_retry: _whole(0, 100) | None = 3


class ReferenceBlock(_Frozen):
    """One symbol of a reference's pattern: its block kind, and the attention window when local (what colours
    the dashboard's layer strip, as a trial's spec does)."""

    kind: str = Field(description="the block kind: " + ", ".join(KINDS))
    window: _whole(1) | None = Field(None, description="attention over a sliding window of this many tokens")

    @model_validator(mode="after")
    def _check(self) -> "ReferenceBlock":
        if self.kind not in KINDS:
            raise ValueError(f"kind {self.kind!r} is not a block kind; allowed: {', '.join(KINDS)}")
        return self


class Reference(_Frozen):
    """What the trials are compared against: a compression study's parent, a published model. Stored with the
    study and shown by the dashboard beside the best trials; never trained, searched or part of the study's
    identity (a rerun that measures it again joins the same study)."""

    name: Annotated[str, Field(min_length=1, max_length=200, description="the reference's name")]
    source: Annotated[str, Field(max_length=4096)] | None = Field(
        None, description="where it comes from: a run folder, a checkpoint, a paper")
    n_params: _whole(1, 10**15) | None = Field(None, description="its exact parameter count")
    pattern: Annotated[str, Field(min_length=1, max_length=4200)] | None = Field(
        None, description="its layer pattern, compact as a spec's: (M-)x4 *-")
    layers: Annotated[str, Field(min_length=1, max_length=4200)] | None = Field(
        None, description="the pattern expanded, one symbol per layer (filled from pattern when left out)")
    blocks: dict[Annotated[str, Field(min_length=1, max_length=1)], ReferenceBlock] = Field(
        default_factory=dict, description="symbol -> {kind, window}: colours the dashboard's layer strip")
    metrics: dict[Annotated[str, Field(min_length=1, max_length=100)], Annotated[float, Strict()]] = Field(
        default_factory=dict, description="metric name -> its value, measured as the trials' are (val_loss on "
                                          "the same validation batches); an objective listed here is shown beside "
                                          "the best trial's")

    @model_validator(mode="before")
    @classmethod
    def _fill_layers(cls, data: Any) -> Any:
        """`layers` from `pattern`; a pattern that does not parse is left for the check below to name."""
        if isinstance(data, dict) and isinstance(data.get("pattern"), str) and data.get("layers") is None:
            try:
                return {**data, "layers": "".join(expand_pattern(data["pattern"]))}
            except PatternError:
                return data
        return data

    @model_validator(mode="after")
    def _check(self) -> "Reference":
        if self.pattern is not None:
            try:
                expanded = "".join(expand_pattern(self.pattern))
            except PatternError as err:
                raise ValueError(f"pattern {self.pattern!r}: {err}") from None
            if self.layers != expanded:
                raise ValueError(f"layers {self.layers!r} is not pattern {self.pattern!r} expanded ({expanded!r}); "
                                 "give one of them")
        unknown = sorted(set(self.layers or "") - set(self.blocks))
        if self.blocks and unknown:
            raise ValueError(f"blocks has no entry for the symbols {unknown} of the pattern; allowed: one entry per "
                             f"symbol, or no blocks at all")
        return self


class StudyFile(_Frozen):
    name: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")]
    description: str | None = None
    base: Union[str, dict[str, Any]]
    target: Union[str, dict[str, Any], None] = None  # archsearch.studies.target
    space: Union[str, dict[str, Any]]
    task: Union[str, dict[str, Any]]
    recipe: dict[str, Any] = Field(default_factory=dict)
    objectives: Annotated[list[Objective], Field(min_length=1)]
    constraints: Constraints = Constraints()
    sampler: SamplerConfig = SamplerConfig()
    pruner: PrunerConfig | None = None
    early_stop: EarlyStopConfig = EarlyStopConfig()
    halving: HalvingConfig | None = None  # successive halving (archsearch.studies.halving); replaces early_stop
    n_trials: _whole(1, MAX_TRIALS) | None = None
    timeout_s: Annotated[Seconds, Field(le=MAX_TIMEOUT_S)] | None = None
    storage: str = "sqlite:///archsearch.db"
    seed: _whole(0, MAX_SAMPLER_SEED) = 0
    heartbeat: HeartbeatConfig = HeartbeatConfig()
    device: str | None = None  # training device (None: train's default)
    gpus_per_trial: _whole(1, 64) = 1  # > 1: each trial trains data-parallel under torchrun
    keep_checkpoints: Literal["none", "best", "all"] = "none"  # trial run folders beside the storage (kept_runs)
    reference: Reference | None = None  # what the trials are compared against (the dashboard shows it)

    @model_validator(mode="after")
    def _check(self) -> "StudyFile":
        metrics = [o.metric for o in self.objectives]
        if len(set(metrics)) != len(metrics):
            raise ValueError(f"an objective is listed twice: {metrics}")
        if self.pruner is not None and len(self.objectives) > 1:
            raise ValueError("a pruner works for one objective only (Optuna cannot prune multi-objective trials); "
                             "multi-objective studies stop dominated trials early with `early_stop:`")
        if self.pruner is not None and self.halving is not None:
            raise ValueError("give pruner or halving, not both: successive halving decides which trials stop")
        if self.gpus_per_trial > 1 and self.device not in (None, "cpu", "cuda"):
            raise ValueError(f"gpus_per_trial {self.gpus_per_trial} runs one process per GPU: device must be cpu, "
                             f"cuda or unset, not {self.device!r} (choose GPUs with CUDA_VISIBLE_DEVICES)")
        if self.n_trials is None and self.timeout_s is None:
            raise ValueError("give n_trials or timeout_s (or both), so the study knows when to stop")
        for metric in ("memory_bytes", "decode_tokens_per_s"):
            if metric in metrics and not self.constraints.budget:
                raise ValueError(f"objective {metric} is judged at the first budget constraint (its device, context "
                                 "and batch); add constraints.budget")
        return self


@dataclass(frozen=True)
class Study:
    """A study file resolved: its base spec and space loaded and checked against each other."""

    file: StudyFile
    base: ModelSpec
    space: SearchSpace
    source: str | None
    directory: Path
    target: ModelSpec | None = None  # judged by the screen instead of the base (archsearch.studies.target)

    @property
    def name(self) -> str:
        return self.file.name

    def space_hash(self) -> str:
        """What must match for a rerun to join a stored study: the space and the base spec."""
        return f"{self.space.fingerprint()}-{self.base.spec_hash()}"

    def resolved(self) -> dict[str, Any]:
        """The study file with the base spec and space inlined, for storage."""
        data = self.file.model_dump(mode="json")
        data["storage"] = redact(data["storage"])  # a password in the URL is never stored
        data["base"] = self.base.to_dict()
        data["space"] = self.space.model_dump(mode="json")
        data["target"] = self.target.to_dict() if self.target is not None else None
        return data


def parse_study(data: Any, marks: Marks | None = None, source: str | None = None,
                directory: Path | None = None) -> Study:
    """The study file checked as a whole: the file's fields, its base spec, its space (and the space against the
    base), its constraints; one FileError lists every problem found, each at its file:line:col."""
    marks = marks or {}
    directory = directory or Path.cwd()
    issues: list[SpecIssue] = []
    file = _collect(issues, lambda: parse_model(StudyFile, data, marks, source, "study file"))
    if not isinstance(data, dict):
        raise FileError("study file", issues, source)
    raw_base, raw_space = (file.base, file.space) if file else (data.get("base"), data.get("space"))
    base = space = None
    space_marks, space_source, prefix = {}, None, ()
    if isinstance(raw_base, (str, dict)):
        base = _collect(issues, lambda: resolve_spec("base", raw_base, marks, source, directory))
    space_data = None
    if isinstance(raw_space, str):
        read = _collect(issues, lambda: read_yaml(resolve_space_path(raw_space, directory), "search space"))
        if read:
            space_data, space_marks, space_source = read
            space = _collect(issues, lambda: parse_space(space_data, space_marks, space_source))
    elif isinstance(raw_space, dict):
        space_data = raw_space
        space = _collect(issues, lambda: _inline_space(raw_space, marks, source))
        space_marks, space_source, prefix = marks, source, ("space",)
    if space is None and base is not None and space_data is not None:  # still name every parameter path
        issues.extend(parameter_path_issues(space_data, base, space_marks, space_source, prefix))
    if space is not None and not space.names():
        issues.append(issue(marks, source, ("space",), "the space searches nothing (empty, or every value fixed): "
                            "every trial would train the same model", allowed="at least one parameter with a type "
                            "(int, float, categorical), or a pattern generator with a searched field"))
    elif base is not None and space is not None:
        _collect(issues, lambda: check_space(space, base, space_marks, space_source, prefix))
    target = _collect(issues, lambda: _target(file, data, space, marks, source, directory, space_marks, space_source,
                                              prefix))
    constraints = file.constraints if file else _valid_or_none(Constraints, data.get("constraints", {}))
    if constraints is not None:
        _collect(issues, lambda: _check_constraints(constraints, marks, source))
    if issues:
        raise FileError("study file", issues, source)
    return Study(file, base, space, source, directory, target)


def _target(file, data: dict, space, marks: Marks, source: str | None, directory: Path, space_marks, space_source,
            prefix: tuple) -> ModelSpec | None:
    """The resolved `target:` (None without one), checked against the space."""
    from .target import check_target

    raw = file.target if file else data.get("target")
    if not isinstance(raw, (str, dict)):
        return None
    target = resolve_spec("target", raw, marks, source, directory)
    if space is not None and space.names():
        check_target(space, target, marks, source, space_marks or {}, space_source, prefix)
    return target


def _inline_space(raw: dict, marks: Marks, source: str | None) -> SearchSpace:
    """A `space:` mapping, its problems named from the study file's root (space.pattern.n_layers)."""
    try:
        return parse_space(raw, under(marks, "space"), source)
    except FileError as err:
        raise FileError("study file", nested("space", err.issues), source) from None


def _collect(issues: list[SpecIssue], step):
    """Run one checking step; its FileError's issues join `issues` (and None is returned) so the next step runs."""
    try:
        return step()
    except FileError as err:
        issues.extend(err.issues)
        return None


def _valid_or_none(model, value):
    """The section as its model, or None when it is invalid (the file's own validation reports it)."""
    try:
        return model.model_validate(value)
    except ValueError:  # pydantic's ValidationError is a ValueError
        return None


def load_study(path: str | Path) -> Study:
    data, marks, source = read_yaml(path, "study file")
    return parse_study(data, marks, source, Path(path).resolve().parent)


def _check_constraints(constraints: Constraints, marks: Marks, source: str | None) -> None:
    """Devices must exist and contexts must parse, before any trial runs."""
    from ..checks import CheckSettings, load_catalog, parse_count
    from ..errors import UserError

    issues = []
    for index, constraint in enumerate(constraints.budget):
        path = ("constraints", "budget", index)
        try:
            load_catalog().get(constraint.device)
        except UserError as err:
            issues.append(issue(marks, source, path + ("device",), str(err)))
        try:
            parse_count(constraint.context, "context")
        except UserError as err:
            issues.append(issue(marks, source, path + ("context",), str(err)))
        try:
            CheckSettings(**constraint.settings)
        except (UserError, TypeError) as err:
            issues.append(issue(marks, source, path + ("settings",), str(err)))
    if issues:
        raise FileError("study file", issues, source)
