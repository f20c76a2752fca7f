"""Our SQL tables beside Optuna's, alembic migrations, and the reads and writes the runner and commands need.

`Database(url)` opens (and migrates) a SQLite file or a PostgreSQL database; `models` documents every table for
the dashboard; `records` writes and reads rows; `export` writes CSV/JSON/Parquet.
"""

from .database import Database, head_revision, worker_id
from .models import (ABLATION_RUN_STATUSES, TRIAL_STATUSES, AblationRecord, AblationRunRecord, Base, StudyRecord,
                     TrialRecord)
from .records import StudyMismatchError
from .urls import DEFAULT_URL, StorageError, redact

__all__ = [
    "ABLATION_RUN_STATUSES", "AblationRecord", "AblationRunRecord", "Base", "DEFAULT_URL", "Database",
    "StorageError", "StudyMismatchError", "StudyRecord", "TRIAL_STATUSES", "TrialRecord", "head_revision",
    "redact", "worker_id",
]
