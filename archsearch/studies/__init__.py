"""Search spaces, study files, the Optuna runner, ablations.

`load_study(path)` reads and checks a study file; `StudyRunner(study, evaluator).run()` runs it against its
storage; `load_space` / `check_space` handle search spaces on their own.

Names load on first use, so that importing a light module of this package (`archsearch.studies.bounds`, the
study file's model) does not load Optuna and SQLAlchemy.
"""

from importlib import import_module

_WHERE = {
    "FileError": "documents", "DominanceStop": "early_stop", "Reference": "early_stop", "Objective": "objectives",
    "PointSource": "params", "RandomSource": "params", "RunSummary": "runner", "StudyRunner": "runner",
    "TrialFailed": "runner", "SearchSpace": "space", "check_space": "space", "load_space": "space",
    "parse_space": "space", "Study": "study_file", "StudyFile": "study_file", "load_study": "study_file",
    "parse_study": "study_file",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value
