"""Search spaces, study files, the Optuna runner, ablations.

`load_study(path)` reads and checks a study file; `StudyRunner(study, evaluator).run()` runs it against its
storage; `load_space` / `check_space` handle search spaces on their own.
"""

from .documents import FileError
from .early_stop import DominanceStop, Reference
from .objectives import Objective
from .params import PointSource, RandomSource
from .runner import RunSummary, StudyRunner, TrialFailed
from .space import SearchSpace, check_space, load_space, parse_space
from .study_file import Study, StudyFile, load_study, parse_study

__all__ = ["DominanceStop", "FileError", "Objective", "PointSource", "RandomSource", "Reference", "RunSummary",
           "SearchSpace", "Study", "StudyFile", "StudyRunner", "TrialFailed", "check_space", "load_space",
           "load_study", "parse_space", "parse_study"]
