"""Helpers for the dashboard tests (imported by name: tests/dashboard is put on sys.path by its conftest)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(storage_url: str):
    """The dashboard over `storage_url` on a free loopback port, for as long as the block runs."""
    import uvicorn

    from archsearch.dashboard import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(storage_url), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the dashboard did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def screenshot(page, name: str) -> Path:
    """Keep a full-page screenshot under test-artifacts/ (git-ignored) for a person to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def store_rows(url: str, name: str, trials, n_trials_target: int | None = None) -> int:
    """A study stored row by row with no training, its id: each trial is (number, retry_of, status, objectives),
    objectives None for a trial that has none; status "running" leaves the row started."""
    from archsearch.storage import Database, records

    with Database(url) as db:
        study = records.ensure_study(db, name=name, space_hash="h", study_file={},
                                     objectives=[{"metric": "val_loss", "direction": "minimize"}],
                                     n_trials_target=n_trials_target, archsearch_version="test")
        for number, retry_of, status, objectives in trials:
            row = records.start_trial(db, study_id=study.id, optuna_trial_id=number, number=number,
                                      params={"d_model": 64 * (number + 1)}, retry_of=retry_of, worker="w")
            if status != "running":
                records.update_trial(db, row, status=status, objectives=objectives, fits=True)
        return study.id
