"""Fixtures for the study tests (storage URLs come from tests/conftest.py): a toy evaluator that
trains a real (tiny, numpy) low-rank regression sized by the spec, and a study-file writer."""

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))  # for `import studies_helpers` under --import-mode=importlib

from studies_helpers import study_doc  # noqa: E402

@pytest.fixture
def write_study(tmp_path):
    def write(name="study.yaml", **overrides):
        path = tmp_path / name
        path.write_text(yaml.safe_dump(study_doc(**overrides), sort_keys=False))
        return path

    return write


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'results.db'}"
