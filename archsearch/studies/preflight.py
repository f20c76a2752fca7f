"""A study file checked completely before its first trial: everything `parse_study` checks (fields, base spec,
space, constraints) plus what only the training side knows (task, recipe, device, which metrics a training
reports) and what the sampler and pruner accept (option types, a grid too large to hold). Every problem is reported at once, each at its file:line:col; nothing is opened or written before.

This is the run-time check (`study run`, `study worker`): it imports archsearch.training (torch), which
`load_study` itself never does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import UserError, first_line
from ..spec.errors import SpecIssue
from .documents import FileError, Marks, issue, nested, read_yaml, under, validation_issues
from .space import SearchSpace
from .study_file import PrunerConfig, SamplerConfig, Study, parse_study


def preflight(path: str | Path) -> Study:
    """Load the study file at `path` and check everything a trial will need; FileError lists every problem."""
    data, marks, source = read_yaml(path, "study file")
    return check_study_document(data, marks, source, Path(path).resolve().parent)


def check_study_document(data: Any, marks: Marks, source: str | None, directory: Path) -> Study:
    issues: list[SpecIssue] = []
    study = None
    try:
        study = parse_study(data, marks, source, directory)
    except FileError as err:
        issues.extend(err.issues)
    if isinstance(data, dict):
        reported = {i.path[:1] for i in issues}

        def fresh(key: str) -> bool:  # a section already found wrong is not checked again (one message each)
            return key in data and (key,) not in reported

        issues += _training_issues(data, marks, source, fresh)
        issues += _sampler_issues(data, marks, source, fresh, study)
    if issues:
        raise FileError("study file", issues, source)
    return study


def _sub_issues(err: ValidationError, marks: Marks, source: str | None, key: str) -> list[SpecIssue]:
    """A section's own validation errors, located inside the study file."""
    return nested(key, validation_issues(err, under(marks, key), source))


def _training_issues(data: dict, marks: Marks, source: str | None, fresh) -> list[SpecIssue]:
    from ..training import Recipe, TaskSpec
    from ..training.prepare import training_device
    from .objectives import produced_metrics

    issues: list[SpecIssue] = []
    task_spec, task_name = None, None
    if fresh("task") and isinstance(data["task"], (str, dict)):
        raw = {"name": data["task"]} if isinstance(data["task"], str) else data["task"]
        try:
            task_spec = TaskSpec.model_validate(raw)
            task_name = task_spec.name
        except UserError as err:
            issues.append(issue(marks, source, ("task",), str(err)))
        except ValidationError as err:
            issues += _sub_issues(err, marks, source, "task")
    distill = False
    recipe, valid_recipe = data.get("recipe", {}), None
    if fresh("recipe") and isinstance(recipe, dict):
        try:
            valid_recipe = Recipe.model_validate(recipe)
            distill = valid_recipe.distill is not None
        except ValidationError as err:
            issues += [SpecIssue(i.path, i.message, i.value, i.allowed or "fields: " + ", ".join(Recipe.model_fields),
                                 i.location) if i.message == "unknown field" else i
                       for i in _sub_issues(err, marks, source, "recipe")]
    lengths = valid_recipe or _lengths_only(recipe)  # a wrong recipe field elsewhere hides nothing here
    if task_spec is not None and lengths is not None and ("task",) not in {i.path[:1] for i in issues}:
        issues += _synthetic_task_issues(task_spec, lengths, marks, source)
    if fresh("device") and isinstance(data["device"], str):
        try:
            training_device(data["device"])
        except UserError as err:
            issues.append(issue(marks, source, ("device",), str(err)))
    if fresh("objectives") and isinstance(data["objectives"], list):
        # An unknown task reports nothing we know of: check against what any training reports.
        allowed = produced_metrics(task_name, distill) if task_name else produced_metrics(None, True)
        for index, objective in enumerate(data["objectives"]):
            metric = objective if isinstance(objective, str) else (objective or {}).get("metric") \
                if isinstance(objective, dict) else None
            if isinstance(metric, str) and metric not in allowed:
                issues.append(issue(marks, source, ("objectives", index), f"training on task {task_name or '(any)'!r} reports "
                                    f"no metric {metric!r}, so every trial would fail", allowed=", ".join(allowed)))
    return issues


def _lengths_only(recipe: Any):
    """A Recipe of only the study recipe's seq_len and seed (defaults elsewhere), when those two are valid."""
    from ..training import Recipe

    if not isinstance(recipe, dict):
        return None
    try:
        return Recipe.model_validate({k: recipe[k] for k in ("seq_len", "seed") if k in recipe})
    except ValidationError:
        return None


def _synthetic_task_issues(spec, recipe, marks: Marks, source: str | None) -> list[SpecIssue]:
    """A synthetic task built once at the recipe's seq_len: what its constructor refuses (e.g. MQAR's pairs and
    queries not fitting the length) would fail every trial. Built in memory, cheaply; tasks that read text files
    or tokenizers are left to the first trial."""
    from ..training.tasks import make_task, task_class
    from ..training.tasks.base import SyntheticTask

    if not issubclass(task_class(spec.name), SyntheticTask):
        return []
    try:
        make_task(spec, recipe.seq_len, recipe.seed)
    except UserError as err:
        return [issue(marks, source, ("task",), f"{err}, so every trial would fail")]
    return []


def _sampler_issues(data: dict, marks: Marks, source: str | None, fresh, study: Study | None) -> list[SpecIssue]:
    from .samplers import _classes, build_pruner, build_sampler, option_problems

    samplers, pruners = _classes()
    issues: list[SpecIssue] = []
    n_objectives = len(study.file.objectives) if study else 1
    for key, model, classes in (("sampler", SamplerConfig, samplers), ("pruner", PrunerConfig, pruners)):
        if not fresh(key) or not isinstance(data[key], dict):
            continue
        try:
            config = model.model_validate(data[key])
        except ValidationError:
            continue  # parse_study has reported it
        options = dict(config.model_extra or {})
        if key == "pruner" and config.type == "patient":
            options.pop("wrapped_pruner", None)  # a nested pruner section, built (and checked) below
        problems = option_problems(classes[config.type], options)
        issues += [issue(marks, source, (key, name), message) for name, message in problems]
        if problems or (key == "sampler" and config.type == "grid" and study is None):
            continue
        try:
            if key == "sampler":
                build_sampler(config, study.space if study else SearchSpace(), 0, n_objectives)
            else:
                build_pruner(config)
        except FileError as err:  # the grid: too large, or a float range without a step
            issues += [issue(marks, source, (key,), f"type grid: {i.message}" + (f" (at space {'.'.join(map(str, i.path))})"
                                                                            if i.path else "")) for i in err.issues]
        except (UserError, ValidationError) as err:
            issues.append(issue(marks, source, (key,), first_line(err, 300)))
    return issues
