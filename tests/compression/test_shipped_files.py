"""The compression study files shipped in studies/compression/ load, and their searches are not empty."""

from pathlib import Path

import pytest

import archsearch
from archsearch.compression.file import load_compression_file

SHIPPED = sorted((Path(archsearch.__file__).resolve().parent.parent / "studies" / "compression").glob("*.yaml"))


def test_there_is_a_shipped_compression_study():
    assert SHIPPED


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_a_shipped_compression_study_loads(path):
    study = load_compression_file(path)
    assert study.search.n_layers or study.search.d_model or study.search.blocks
    assert study.constraints.params is not None or study.constraints.budget
