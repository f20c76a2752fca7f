"""Fixtures for the study tests: storage URLs (SQLite file, fresh PostgreSQL database), a toy evaluator that
trains a real (tiny, numpy) low-rank regression sized by the spec, and a study-file writer."""

import uuid

import pytest

PG_ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


def _admin_engine():
    import sqlalchemy as sa

    return sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})


@pytest.fixture
def pg_url():
    import sqlalchemy as sa

    try:
        engine = _admin_engine()
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as err:  # noqa: BLE001 - any failure to reach the server means "skip"
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 unreachable: {err}")
    name = f"archsearch_test_{uuid.uuid4().hex[:12]}"
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def storage_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'results.db'}"
    return request.getfixturevalue("pg_url")


# ---------------------------------------------------------------------------------------------- toy training
import math  # noqa: E402
import textwrap  # noqa: E402

import numpy as np  # noqa: E402
import yaml  # noqa: E402


class ToyEvaluator:
    """Fits a 16x16 target with a rank-r product U @ V by gradient descent, r = d_model // 16, for `steps` steps.
    Bigger models reach lower loss, as training would; `callback(step, metrics)` after each evaluation."""

    def __init__(self, steps: int = 8, eval_every: int = 2, fail_when=None, diverge_when=None, sleep_s: float = 0.0):
        self.steps, self.eval_every = steps, eval_every
        self.fail_when, self.diverge_when, self.sleep_s = fail_when, diverge_when, sleep_s
        self.calls = 0

    def __call__(self, spec, callback, *, out_dir=None):
        import time

        self.calls += 1
        if self.fail_when is not None and self.fail_when(spec):
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        rng = np.random.default_rng(0)
        target = rng.standard_normal((16, 16)) / 4
        rank = max(1, min(16, spec.d_model // 16))
        u = rng.standard_normal((16, rank)) * 0.1
        v = rng.standard_normal((rank, 16)) * 0.1
        curve = []
        lr = 0.5 if not (self.diverge_when and self.diverge_when(spec)) else 400.0
        loss = float("nan")
        for step in range(1, self.steps + 1):
            for _ in range(10):
                residual = u @ v - target
                u, v = u - lr * residual @ v.T, v - lr * u.T @ residual
            loss = float(np.mean((u @ v - target) ** 2)) + 0.01 * spec.n_layers
            if step % self.eval_every == 0:
                metrics = {"val_loss": loss, "accuracy": 1.0 / (1.0 + loss)}
                curve.append({"step": step, **metrics})
                if self.sleep_s:
                    time.sleep(self.sleep_s)
                callback(step, metrics)
            if not math.isfinite(loss):
                return {"status": "diverged", "reason": f"non-finite loss at step {step}", "metrics": {},
                        "curve": curve}
        return {"status": "completed", "reason": None, "metrics": {"val_loss": loss, "accuracy": 1 / (1 + loss)},
                "curve": curve, "tokens_per_s": 1000.0 * 64 / spec.d_model, "mfu": 0.01, "peak_memory_bytes": 1 << 20,
                "backends": {"ssd_scan": "naive"}, "precision": "float32", "versions": {"numpy": np.__version__},
                "wall_time_s": 0.0, "n_params": None, "out_dir": None}


BASE_SPEC = {
    "name": "toy-hybrid", "vocab_size": 64, "d_model": 64, "max_context": 2097152, "pattern": "M-*-",
    "blocks": {
        "M": {"kind": "mamba2", "n_heads": 2, "head_dim": 32, "d_state": 16, "chunk_size": 32},
        "*": {"kind": "attention", "n_heads": 4, "n_kv_heads": 2, "head_dim": 16, "rope_theta": None},
        "L": {"kind": "attention", "n_heads": 4, "n_kv_heads": 2, "head_dim": 16, "window": 32},
        "-": {"kind": "mlp", "ffn_ratio": 2},
    },
}


def study_doc(**overrides):
    doc = {
        "name": "toy", "base": BASE_SPEC, "space": "hybrid-tiny", "task": "assoc-recall",
        "objectives": ["val_loss"],
        "constraints": {"budget": [{"device": "a10g", "context": "2M", "batch": 4}]},
        "sampler": {"type": "random"}, "n_trials": 6, "seed": 0,
        "heartbeat": {"interval_s": 1, "grace_s": 3},
    }
    doc.update(overrides)
    return doc


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
