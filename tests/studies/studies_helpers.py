"""Helpers for the study tests (imported by name: tests/studies is put on sys.path by its conftest).

ToyEvaluator trains a real, tiny numpy low-rank regression sized by the spec, so runner tests exercise real
curves, real failures and real divergence without torch.
"""

import math

import numpy as np


class ToyEvaluator:
    """Fits a 16x16 target with a rank-r product U @ V by gradient descent, r = d_model // 16, for `steps` steps.
    Bigger models reach lower loss, as training would; `callback(step, metrics)` after each evaluation."""

    def __init__(self, steps: int = 8, eval_every: int = 2, fail_when=None, diverge_when=None, sleep_s: float = 0.0):
        self.steps, self.eval_every = steps, eval_every
        self.fail_when, self.diverge_when, self.sleep_s = fail_when, diverge_when, sleep_s
        self.calls = 0
        self.final_step = steps

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
            with np.errstate(all="ignore"):  # divergence is one of the things this evaluator demonstrates
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
        "name": "toy", "base": BASE_SPEC, "space": "hybrid-tiny", "task": "mqar",
        "objectives": ["val_loss"],
        "constraints": {"budget": [{"device": "a10g", "context": "2M", "batch": 16}]},
        "sampler": {"type": "random"}, "n_trials": 6, "seed": 0,
        "heartbeat": {"interval_s": 1, "grace_s": 3},
    }
    doc.update(overrides)
    return doc




def run_study(study, url, evaluator=None, **kwargs):
    """Open, run and close a StudyRunner over `study` (a study file's path, or a loaded Study) on `url`; the
    summary. `evaluator` defaults to a ToyEvaluator; kwargs go to StudyRunner (n_trials=...)."""
    from archsearch.studies import StudyRunner, load_study

    study = load_study(study) if not hasattr(study, "space") else study
    runner = StudyRunner(study, evaluator or ToyEvaluator(), storage=url, live=False, **kwargs)
    runner.open()
    try:
        return runner.run()
    finally:
        runner.close()


class ResumableToy(ToyEvaluator):
    """ToyEvaluator with a run folder: it stops when its callback raises, saving (step, U, V, curve) to
    out_dir/state.json, and `resume=True` continues from there: successive halving without torch."""

    def __call__(self, spec, callback, *, out_dir=None, resume=False):
        import json
        import time
        from pathlib import Path

        self.calls += 1
        rng = np.random.default_rng(0)
        target = rng.standard_normal((16, 16)) / 4
        rank = max(1, min(16, spec.d_model // 16))
        u, v = rng.standard_normal((16, rank)) * 0.1, rng.standard_normal((rank, 16)) * 0.1
        start, curve = 0, []
        state_file = Path(out_dir) / "state.json" if out_dir is not None else None
        if resume:
            saved = json.loads(state_file.read_text())
            start, curve, u, v = saved["step"], saved["curve"], np.array(saved["u"]), np.array(saved["v"])
        loss = float("nan")
        for step in range(start + 1, self.steps + 1):
            for _ in range(10):
                residual = u @ v - target
                u, v = u - 0.5 * residual @ v.T, v - 0.5 * u.T @ residual
            loss = float(np.mean((u @ v - target) ** 2)) + 0.01 * spec.n_layers
            if step % self.eval_every == 0:
                metrics = {"val_loss": loss}
                curve.append({"step": step, **metrics})
                if self.sleep_s:
                    time.sleep(self.sleep_s)
                try:
                    callback(step, metrics)
                except Exception:
                    if state_file is not None:
                        state_file.parent.mkdir(parents=True, exist_ok=True)
                        state_file.write_text(json.dumps({"step": step, "curve": curve, "u": u.tolist(),
                                                          "v": v.tolist()}))
                    raise
        return {"status": "completed", "reason": None, "metrics": {"val_loss": loss}, "curve": curve,
                "steps": self.steps}
