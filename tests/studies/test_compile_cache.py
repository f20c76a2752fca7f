"""A study's compile and autotune caches live beside its storage: the folder, the variables, their reaching every
worker `study run` starts (in the environment it spawns them with), and the trial attributes a run leaves."""

import os
from pathlib import Path

import pytest

from archsearch.studies import compile_cache
from archsearch.studies.compile_cache import CACHE_ENV, cache_folder, cache_variables, study_cache_env

VARIABLES = ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", "TORCHINDUCTOR_FX_GRAPH_CACHE",
             "TORCHINDUCTOR_AUTOGRAD_CACHE", "TRITON_CACHE_AUTOTUNING", "TRITON_PTXAS_PATH", CACHE_ENV)


@pytest.fixture
def clean_env(monkeypatch):
    """None of the cache variables set; whatever a test sets is undone after it."""
    for key in VARIABLES:
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


def test_the_folder_sits_beside_a_sqlite_file_and_under_the_user_cache_otherwise(tmp_path):
    assert cache_folder(f"sqlite:///{tmp_path}/runs/x.db", "s", {}) == tmp_path / "runs" / "x.compile-cache"
    assert cache_folder("sqlite:///x.db", "s", {}) == Path("x.compile-cache")  # relative, resolved when used
    home = Path("~/.cache/archsearch/compile").expanduser()
    assert cache_folder("postgresql://u:pw@db.example/studies", "hybrid/v2 run", {}) == home / "hybrid_v2_run"
    assert cache_folder("sqlite://", "s", {}) == home / "s"  # in memory: nothing to sit beside
    assert cache_folder("postgresql://h/db", "..", {}) == home / "study"  # never the parent folder
    assert cache_folder("postgresql://h/db", "s", {CACHE_ENV: str(tmp_path / "c")}) == tmp_path / "c"
    assert cache_folder("postgresql://h/db", "s", {CACHE_ENV: "OFF"}) is None
    assert study_cache_env("sqlite:///x.db", "s", {CACHE_ENV: "off"}) == {}


@pytest.mark.parametrize("triton, autotuning", [(None, False), ((3, 3, 1), False), ((3, 4, 0), True),
                                                 ((3, 6, 0), True)])
def test_autotune_results_are_cached_where_triton_can(tmp_path, triton, autotuning):
    env = cache_variables(tmp_path / "c", triton)
    assert env["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "c" / "inductor")
    assert env["TRITON_CACHE_DIR"] == str(tmp_path / "c" / "triton")
    assert env["TORCHINDUCTOR_FX_GRAPH_CACHE"] == env["TORCHINDUCTOR_AUTOGRAD_CACHE"] == "1"
    assert ("TRITON_CACHE_AUTOTUNING" in env) is autotuning and env.get("TRITON_CACHE_AUTOTUNING", "1") == "1"


def test_a_folder_set_by_the_user_is_kept_and_a_disabled_cache_is_turned_on(tmp_path):
    mine = str(tmp_path / "my-triton")
    env = study_cache_env(f"sqlite:///{tmp_path}/x.db", "s", {"TRITON_CACHE_DIR": mine,
                                                            "TORCHINDUCTOR_FX_GRAPH_CACHE": "0"})
    assert "TRITON_CACHE_DIR" not in env and env["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "x.compile-cache/inductor")
    assert env["TORCHINDUCTOR_FX_GRAPH_CACHE"] == "1"


def _torch_package(monkeypatch, root: Path, ptxas: bool, executable: bool = True, place: str = "bin") -> None:
    """Make `torch` a package at `root` (found by spec, never imported), with or without PLACE/ptxas."""
    if ptxas:
        tool = root / place / "ptxas"
        tool.parent.mkdir(parents=True)
        tool.write_text("#!/bin/sh\n")
        tool.chmod(0o755 if executable else 0o644)
    real = compile_cache.importlib.util.find_spec
    spec = type("Spec", (), {"submodule_search_locations": [str(root)]})()
    monkeypatch.setattr(compile_cache.importlib.util, "find_spec",
                        lambda name, package=None: spec if name == "torch" else real(name, package))


@pytest.mark.parametrize("place", ["bin", "_inductor/bin"])  # torch 2.11's place, and newer torch's
def test_every_process_of_a_study_runs_torchs_ptxas_so_triton_keys_agree(clean_env, tmp_path, place):
    # Inductor switches Triton to torch's ptxas only when it compiles; a warm process would key by another.
    _torch_package(clean_env, tmp_path / "torch", ptxas=True, place=place)
    env = study_cache_env(f"sqlite:///{tmp_path}/x.db", "s", {})
    assert env["TRITON_PTXAS_PATH"] == str(tmp_path / "torch" / place / "ptxas")
    mine = study_cache_env(f"sqlite:///{tmp_path}/x.db", "s", {"TRITON_PTXAS_PATH": "/opt/cuda/bin/ptxas"})
    assert "TRITON_PTXAS_PATH" not in mine  # the user's own ptxas is kept


@pytest.mark.parametrize("ptxas, executable", [(False, True), (True, False)])
def test_without_a_runnable_ptxas_in_torch_triton_keeps_its_own(clean_env, tmp_path, ptxas, executable):
    _torch_package(clean_env, tmp_path / "torch", ptxas=ptxas, executable=executable)
    assert "TRITON_PTXAS_PATH" not in cache_variables(tmp_path / "c", (3, 6, 0))


def test_an_unwritable_cache_folder_is_one_clear_error(clean_env, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    clean_env.setenv(CACHE_ENV, str(blocker))
    with pytest.raises(Exception) as err:
        compile_cache.use_study_cache("sqlite://", "s")
    assert type(err.value).__name__ == "UserError" and CACHE_ENV in str(err.value) and str(blocker) in str(err.value)


def test_workers_are_spawned_with_the_cache_beside_the_storage(clean_env, write_study, tmp_path):
    from archsearch.studies import launch

    seen = []

    class FakePopen:
        def __init__(self, args, env=None, **kwargs):
            seen.append(env)
            self.returncode = 0

        def wait(self):
            return 0

        def poll(self):
            return 0

    clean_env.setattr(launch.subprocess, "Popen", FakePopen)
    (tmp_path / "store").mkdir()
    url = f"sqlite:///{tmp_path}/store/results.db"
    launch.run_study(str(write_study(n_trials=2)), storage=url, n_trials=2, timeout_s=None, workers=2, live=False)
    folder = tmp_path / "store" / "results.compile-cache"
    assert len(seen) == 2
    for env in seen:
        assert env["TORCHINDUCTOR_CACHE_DIR"] == str(folder / "inductor")
        assert env["TRITON_CACHE_DIR"] == str(folder / "triton")
        assert env["TORCHINDUCTOR_FX_GRAPH_CACHE"] == env["TORCHINDUCTOR_AUTOGRAD_CACHE"] == "1"
        assert env[launch.STORAGE_ENV] == url
    assert (folder / "inductor").is_dir() and (folder / "triton").is_dir()
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(folder / "inductor")  # this process compiles there too


def test_a_trial_records_its_precision_and_timing(tmp_path):
    """record_trained stores what a real CPU run returned: the precision with its reason, and the timing."""
    from archsearch.spec import load_spec
    from archsearch.studies.evaluate import TrainEvaluator, record_trained

    class Trial:
        def __init__(self):
            self.attrs = {}

        def set_user_attr(self, key, value):
            self.attrs[key] = value

    evaluator = TrainEvaluator({"name": "mqar", "options": {"vocab": 32}},
                               {"steps": 2, "batch_size": 2, "seq_len": 32, "eval_every": 2, "eval_batches": 1},
                               device="cpu")
    assert evaluator.recipe.precision == "auto"  # the study defaults
    assert evaluator.recipe.compile == "auto"  # compiled layer by layer on a GPU, eager here on the CPU
    assert evaluator.recipe.cuda_graph == "auto"  # the step replayed as one CUDA graph on a GPU, plain here
    result = evaluator(load_spec("nemotron-h-tiny"), lambda step, metrics: None)
    trial = Trial()
    record_trained(trial, result)
    assert trial.attrs["precision"] == {"name": "fp32", "reason": "auto: fp32 on CPU", "auto": None}
    timing = trial.attrs["timing"]
    assert timing["timed_steps"] == 1 and timing["steps_s"] > 0 and timing["to_first_step_s"] > 0
    assert timing["compile"] is None and trial.attrs["trained"]["steps"] == 2
    assert result["extra"]["compile"] is False  # what ran: "auto" resolved to eager on the CPU
    assert "needs a CUDA device" in result["extra"]["cuda_graph"]
    assert trial.attrs["cuda_graph"] == result["extra"]["cuda_graph"]  # stored with the trial, beside its timing


def test_kernel_sources_and_mamba_version_tag_every_cache_key(tmp_path, monkeypatch):
    """AOTAutograd's cache is let take graphs with custom autograd.Functions (our conv, mamba-ssm's norm) only
    because a fingerprint of their code is in every key: editing a kernel must change it."""
    import types

    (tmp_path / "conv.py").write_text("TILE = 16\n")
    monkeypatch.setattr(compile_cache.importlib.util, "find_spec",
                        lambda name: types.SimpleNamespace(submodule_search_locations=[str(tmp_path)]))
    before = compile_cache.kernels_fingerprint()
    env = cache_variables(tmp_path / "c", None)
    assert env[compile_cache.CACHE_KEY_TAG] == f"archsearch-kernels-{before}"
    assert env[compile_cache.ALLOW_CUSTOM_AUTOGRAD] == "1"
    (tmp_path / "conv.py").write_text("TILE = 32\n")
    assert compile_cache.kernels_fingerprint() != before
    mine = study_cache_env(f"sqlite:///{tmp_path}/x.db", "s", {compile_cache.CACHE_KEY_TAG: "my-tag"})
    assert mine[compile_cache.CACHE_KEY_TAG] == f"my-tag+archsearch-kernels-{compile_cache.kernels_fingerprint()}"
    again = study_cache_env(f"sqlite:///{tmp_path}/x.db", "s", mine)  # a worker inherits it: not appended twice
    assert again[compile_cache.CACHE_KEY_TAG] == mine[compile_cache.CACHE_KEY_TAG]


_CUSTOM_FUNCTION_PROGRAM = """
import torch
from torch._dynamo.utils import counters

class Square(torch.autograd.Function):  # stands in for our Triton conv and mamba-ssm's gated norm
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return 2 * x * grad

x = torch.randn(8, requires_grad=True)
torch.compile(lambda t: Square.apply(t).sin().sum(), dynamic=False)(x).backward()
print(sorted(k for k in counters["aot_autograd"] if k.startswith("autograd_cache")))
"""


def test_a_rerun_loads_graphs_with_custom_autograd_functions_from_the_cache(tmp_path):
    """Two processes with the study's variables: the second finds the first's AOTAutograd entry (without the
    variables torch bypasses that cache for such graphs: the trace is redone in every process)."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in VARIABLES and k != compile_cache.CACHE_KEY_TAG}
    env.update(cache_variables(tmp_path / "cache", None))
    runs = [subprocess.run([sys.executable, "-c", _CUSTOM_FUNCTION_PROGRAM], env=env, capture_output=True, text=True,
                           timeout=300, cwd=tmp_path) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr[-2000:]
    first, second = (run.stdout.strip().splitlines()[-1] for run in runs)
    assert "autograd_cache_saved" in first, first
    assert "autograd_cache_hit" in second, second
