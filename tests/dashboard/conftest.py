"""Fixtures for the dashboard tests: a real small study's database, and Debian's chromium via Playwright."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # for `import dashboard_helpers` under --import-mode=importlib

from dashboard_helpers import CHROMIUM, CHROMIUM_ARGS  # noqa: E402


def pytest_collection_modifyitems(config, items):
    if os.path.exists(CHROMIUM):
        return
    skip = pytest.mark.skip(reason=f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh page that records console errors and every request that left 127.0.0.1."""
    # Tall enough that every plot is in view: plots load plotly.js only when they scroll into view.
    context = browser.new_context(viewport={"width": 1400, "height": 6000})
    page = context.new_page()
    page.console_errors = []
    page.outside_requests = []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    page.on("pageerror", lambda e: page.console_errors.append(str(e)))
    page.on("request", lambda r: not r.url.startswith(("http://127.0.0.1", "data:", "blob:", "about:"))
            and page.outside_requests.append(r.url))
    yield page
    context.close()


# A real small study: tiny hybrids trained for a few steps on multi-query associative recall, with a budget
# constraint at a 2M-token context that rejects the larger candidates (so feasible and infeasible trials both
# appear). Run once per session through the real `archsearch study run` command.
SMALL_STUDY = """\
name: dashboard-small
base:
  name: toy-hybrid
  vocab_size: 64
  d_model: 64
  max_context: 2097152
  pattern: "M-*-"
  blocks:
    M: {kind: mamba2, n_heads: 2, head_dim: 32, d_state: 16, chunk_size: 32}
    "*": {kind: attention, n_heads: 4, n_kv_heads: 2, head_dim: 16, rope_theta: null}
    L: {kind: attention, n_heads: 4, n_kv_heads: 2, head_dim: 16, window: 32}
    "-": {kind: mlp, ffn_ratio: 2}
space: hybrid-tiny
task: {name: mqar, options: {vocab: 64, n_pairs: 4}}
recipe: {steps: 6, batch_size: 4, seq_len: 32, eval_every: 2, eval_batches: 1, warmup: 1}
objectives: [val_loss, n_params]
constraints:
  budget: [{device: a10g, context: 2M, batch: 16}]
sampler: {type: random}
n_trials: 10
seed: 0
"""


def run_small_study(directory: Path) -> str:
    import subprocess
    import sys

    directory.mkdir(parents=True, exist_ok=True)
    study_file = directory / "dashboard-small.yaml"
    study_file.write_text(SMALL_STUDY)
    url = f"sqlite:///{directory / 'results.db'}"
    done = subprocess.run([sys.executable, "-m", "archsearch.cli", "study", "run", str(study_file), "--storage", url,
                           "--no-progress"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"the study runner failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return url


@pytest.fixture(scope="session")
def study_url(tmp_path_factory) -> str:
    """URL of a SQLite file holding one real small study (see SMALL_STUDY)."""
    return run_small_study(tmp_path_factory.mktemp("dashboard-study"))


@pytest.fixture(scope="session")
def stored(study_url):
    """What the study stored, read straight through archsearch.storage, to check the pages against."""
    import sqlalchemy as sa
    from sqlalchemy.orm import Session

    from archsearch.storage import Database, StudyRecord, TrialRecord

    with Database(study_url) as db, Session(db.engine) as session:
        study = session.scalars(sa.select(StudyRecord)).one()
        trials = list(session.scalars(sa.select(TrialRecord).where(TrialRecord.study_id == study.id)
                                      .order_by(TrialRecord.number)))
        session.expunge_all()
    return study, trials


@pytest.fixture
def study_copy(study_url, tmp_path) -> str:
    """A private copy of the small study's database, for tests that add to it. SQLite's backup API copies what
    is committed, including what still sits in the write-ahead log."""
    import sqlite3

    target = tmp_path / "copy.db"
    source = sqlite3.connect(f"file:{study_url.removeprefix('sqlite:///')}?mode=ro", uri=True)
    destination = sqlite3.connect(target)
    with destination:
        source.backup(destination)
    source.close()
    destination.close()
    return f"sqlite:///{target}"


ABLATION_SPEC = """\
name: ablation-tiny
vocab_size: 64
d_model: 64
max_context: 256
pattern: "M-*-"
blocks:
  M: {kind: mamba2, n_heads: 2, head_dim: 32, d_state: 16, chunk_size: 32}
  "*": {kind: attention, n_heads: 4, n_kv_heads: 2, head_dim: 16, rope_theta: null}
  "-": {kind: mlp, ffn_ratio: 2}
"""
ABLATION_RECIPE = '{"steps": 4, "batch_size": 4, "seq_len": 32, "eval_every": 2, "eval_batches": 1, "warmup": 1}'


@pytest.fixture(scope="session")
def ablation_url(tmp_path_factory) -> str:
    """URL of a SQLite file holding one real ablation (2 settings x 2 seeds) run by `archsearch ablate`."""
    import subprocess
    import sys

    directory = tmp_path_factory.mktemp("dashboard-ablation")
    (directory / "spec.yaml").write_text(ABLATION_SPEC)
    url = f"sqlite:///{directory / 'ablation.db'}"
    done = subprocess.run([sys.executable, "-m", "archsearch.cli", "ablate", str(directory / "spec.yaml"),
                           "--vary", "blocks.M.d_state=8,16", "--seeds", "2",
                           "--task", "mqar", "-t", "vocab=64", "-t", "n_pairs=4", "--recipe", ABLATION_RECIPE,
                           "--storage", url], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"archsearch ablate failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return url
