"""Autotune results of kernels whose configs carry pre-hooks persist across processes (kernels/autotune_cache.py).

On the CPU the tuners are real Triton Autotuners around a real @triton.jit kernel; only the GPU backend's hash is
stood in, and a "process" is a fresh Autotuner of the same kernel (what a new process builds at import)."""

import os
import subprocess
import sys
import textwrap
import types

import pytest

triton = pytest.importorskip("triton")
import triton.language as tl  # noqa: E402

from archsearch.kernels import _optional, autotune_cache  # noqa: E402

if not hasattr(triton.runtime.autotuner.Autotuner, "check_disk_cache"):
    pytest.skip("Triton < 3.4 keeps no autotune results on disk", allow_module_level=True)


@triton.jit
def _kernel(X, n, BLOCK: tl.constexpr):
    pass


def _zero_accumulator(nargs):  # stands in for mamba-ssm's init_to_zero(...)
    pass


def _tuner(hooked=True):
    """A new process's view of the kernel: its own Autotuner and Config objects."""
    hook = _zero_accumulator if hooked else None
    configs = [triton.Config({"BLOCK": 16}, num_warps=4, num_stages=3, pre_hook=hook),
               triton.Config({"BLOCK": 32}, num_warps=8, num_stages=2, pre_hook=hook),
               triton.Config({"BLOCK": 64}, num_warps=4, num_stages=4, pre_hook=hook)]
    return triton.autotune(configs=configs, key=["n"])(_kernel)


class Bench:
    """The benchmark Autotuner.run hands over: times every config, the second fastest."""

    def __init__(self, tuner, key, configs=None):
        self.tuner, self.key, self.configs, self.calls = tuner, key, configs or tuner.configs, 0

    def __call__(self):
        self.calls += 1
        timings = {c: [float(c.kwargs["BLOCK"] != 32) + 1.0] for c in self.configs}
        self.tuner.configs_timings = timings
        self.tuner.cache[self.key] = min(timings, key=timings.get)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("TRITON_CACHE_AUTOTUNING", "1")
    monkeypatch.setattr(autotune_cache, "target_hash", lambda: "cpu-test-target")
    return tmp_path


def _check(tuner, key=(1024, "torch.bfloat16")):
    bench = Bench(tuner, key)
    from_disk = tuner.check_disk_cache(key, tuner.configs, bench)
    return from_disk, bench.calls, tuner.cache[key]


def test_tritons_own_cache_benchmarks_hooked_configs_in_every_process(cache_dir):
    # the premise (Triton gives up on them before reaching the disk): were Triton to store these, this module could go
    first, second = _tuner(), _tuner()
    assert _check(first)[:2] == (False, 1)
    assert _check(second)[:2] == (False, 1)


def test_hooked_configs_are_timed_once_across_processes(cache_dir):
    first = _tuner()
    assert autotune_cache.persist_hooked([first]) == 1
    assert first.cache_results
    from_disk, calls, best = _check(first)
    assert (from_disk, calls, best) == (False, 1, first.configs[1])

    second = _tuner()  # a new process: same kernel, its own configs
    autotune_cache.persist_hooked([second])
    from_disk, calls, best = _check(second)
    assert (from_disk, calls) == (True, 0)
    assert best is second.configs[1] and best.pre_hook is _zero_accumulator  # this process's config, hook included
    assert second.configs_timings[second.configs[1]] == [1.0]
    assert len(list(cache_dir.rglob("_kernel" + autotune_cache.FILE_SUFFIX))) == 1


def test_another_tuning_key_or_config_set_is_timed_again(cache_dir):
    tuner = _tuner()
    autotune_cache.persist_hooked([tuner])
    _check(tuner)
    other = _tuner()
    autotune_cache.persist_hooked([other])
    assert _check(other, key=(2048, "torch.bfloat16"))[:2] == (False, 1)  # another shape
    fewer = _tuner()
    autotune_cache.persist_hooked([fewer])
    bench = Bench(fewer, (1024, "torch.bfloat16"), fewer.configs[:2])
    assert fewer.check_disk_cache((1024, "torch.bfloat16"), fewer.configs[:2], bench) is False  # pruned otherwise
    assert bench.calls == 1


def test_an_unreadable_record_is_benchmarked_again_and_rewritten(cache_dir):
    tuner = _tuner()
    autotune_cache.persist_hooked([tuner])
    _check(tuner)
    (record,) = cache_dir.rglob("*" + autotune_cache.FILE_SUFFIX)
    record.write_text('{"configs_timings": [["not a config we have", [1.0]]]}')
    again = _tuner()
    autotune_cache.persist_hooked([again])
    assert _check(again)[:2] == (False, 1)
    latest = _tuner()
    autotune_cache.persist_hooked([latest])
    assert _check(latest)[:2] == (True, 0)


def test_kernels_without_hooks_keep_tritons_path(cache_dir):
    plain = _tuner(hooked=False)
    assert autotune_cache.persist_hooked([plain, object(), "not a tuner"]) == 0
    assert "check_disk_cache" not in vars(plain)
    hooked = _tuner()
    assert autotune_cache.persist_hooked([hooked, hooked]) == 1
    assert autotune_cache.persist_hooked([hooked]) == 0  # once


def test_caching_follows_the_switch_as_it_is_when_patched(cache_dir, monkeypatch):
    monkeypatch.delenv("TRITON_CACHE_AUTOTUNING")
    off = _tuner()
    autotune_cache.persist_hooked([off])
    assert not off.cache_results  # Autotuner.run then never looks at the disk
    built_before = _tuner()  # mamba-ssm imported before the study set the variable
    monkeypatch.setenv("TRITON_CACHE_AUTOTUNING", "1")
    assert not built_before.cache_results
    autotune_cache.persist_hooked([built_before])
    assert built_before.cache_results


def test_a_triton_without_autotune_results_on_disk_is_left_alone(cache_dir, monkeypatch):
    monkeypatch.delattr(triton.runtime.autotuner.Autotuner, "check_disk_cache")  # as in Triton < 3.4
    tuner = _tuner()
    assert autotune_cache.persist_hooked([tuner]) == 0 and "check_disk_cache" not in vars(tuner)


class Launcher:
    """Stands in for launching the compiled kernel (Autotuner.fn.run); the JIT function stays behind it."""

    def __init__(self, jit):
        self.fn, self.launches = jit, []

    def run(self, *args, **kwargs):
        self.launches.append(kwargs["BLOCK"])


def _runnable(hooked_blocks):
    """A tuner whose run goes through Triton's own Autotuner.run, launching and timing stood in (BLOCK 32 wins)."""
    def zero_accumulator(nargs):
        hooked_blocks.append(nargs["BLOCK"])

    def do_bench(kernel_call, quantiles):
        kernel_call()
        return [{16: 3.0, 32: 1.0, 64: 2.0}[launcher.launches[-1]]] * len(quantiles)

    configs = [triton.Config({"BLOCK": b}, num_warps=4, pre_hook=zero_accumulator) for b in (16, 32, 64)]
    tuner = triton.autotune(configs=configs, key=["n"], do_bench=do_bench)(_kernel)
    launcher = tuner.fn = Launcher(tuner.fn)
    autotune_cache.persist_hooked([tuner])
    return tuner, launcher


def test_autotuners_run_benchmarks_once_and_a_second_process_launches_the_winner_with_its_hook(cache_dir,
                                                                                              monkeypatch, capsys):
    monkeypatch.setenv("TRITON_PRINT_AUTOTUNING", "1")
    hooks = []
    first, launched = _runnable(hooks)
    first.run(object(), 1024)
    assert launched.launches == [16, 32, 64, 32] and hooks == [16, 32, 64, 32]  # three timed, then the winner
    assert "Triton autotuning for function _kernel" in capsys.readouterr().out

    hooks = []
    second, launched = _runnable(hooks)
    second.run(object(), 1024)
    assert launched.launches == [32] and hooks == [32]  # nothing timed; the winner's accumulator still zeroed
    assert "Triton autotuning" not in capsys.readouterr().out


def test_importing_mamba_ssm_gives_its_hooked_kernels_the_cache(tmp_path, cache_dir, monkeypatch):
    # a stand-in mamba_ssm whose module defines a hooked and a plain autotuned kernel, imported as the backends do
    package = tmp_path / "pkgs" / "mamba_ssm" / "ops" / "triton"
    package.mkdir(parents=True)
    for folder in (package.parents[1], package.parent, package):
        (folder / "__init__.py").write_text("")
    (package / "ssd_fake.py").write_text(textwrap.dedent("""
        import triton, triton.language as tl

        def init_to_zero(nargs):
            pass

        @triton.jit
        def _body(X, n, BLOCK: tl.constexpr):
            pass

        hooked = triton.autotune(configs=[triton.Config({"BLOCK": 16}, pre_hook=init_to_zero),
                                          triton.Config({"BLOCK": 32}, pre_hook=init_to_zero)], key=["n"])(_body)
        plain = triton.autotune(configs=[triton.Config({"BLOCK": 16}), triton.Config({"BLOCK": 32})],
                                key=["n"])(_body)
    """))
    for loaded in [m for m in sys.modules if m == "mamba_ssm" or m.startswith("mamba_ssm.")]:
        monkeypatch.delitem(sys.modules, loaded)  # a real mamba-ssm imported earlier comes back afterwards
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    monkeypatch.setitem(sys.modules, "selective_scan_cuda", types.ModuleType("selective_scan_cuda"))
    monkeypatch.setattr(_optional, "triton_status", lambda: (True, "triton (taken as usable)"))
    monkeypatch.setattr(_optional, "_MAMBA_MODULES", {})
    try:
        module, reason = _optional.import_mamba("mamba_ssm.ops.triton.ssd_fake")
        assert module is not None, reason
        assert "check_disk_cache" in vars(module.hooked) and module.hooked.cache_results
        assert "check_disk_cache" not in vars(module.plain)
    finally:
        for loaded in [m for m in sys.modules if m == "mamba_ssm" or m.startswith("mamba_ssm.")]:
            del sys.modules[loaded]


SECOND_PROCESS = """
import torch
from archsearch.kernels import _optional
module, reason = _optional.import_mamba("mamba_ssm.ops.triton.ssd_combined")
assert module is not None, reason
x = torch.randn(2, 256, 8, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True)
dt = torch.rand(2, 256, 8, device="cuda", requires_grad=True)
A = -torch.rand(8, device="cuda")
B, C = (torch.randn(2, 256, 2, 64, device="cuda", dtype=torch.bfloat16) for _ in range(2))
module.mamba_chunk_scan_combined(x, dt, A, B, C, chunk_size=64, dt_softplus=True).sum().backward()
torch.cuda.synchronize()
"""


@pytest.mark.gpu
def test_gpu_a_second_process_autotunes_nothing_of_mamba_ssms_scan(tmp_path):
    """Two processes on one cache folder: the second runs mamba-ssm's forward and backward without benchmarking
    a single config (TRITON_PRINT_AUTOTUNING reports every autotune not served from disk)."""
    ok, why = _optional.import_mamba("mamba_ssm.ops.triton.ssd_combined")[0] is not None, "mamba-ssm unavailable"
    if not ok:
        pytest.skip(why)
    env = {**os.environ, "TRITON_CACHE_DIR": str(tmp_path), "TRITON_CACHE_AUTOTUNING": "1",
           "TRITON_PRINT_AUTOTUNING": "1"}
    runs = [subprocess.run([sys.executable, "-c", SECOND_PROCESS], env=env, capture_output=True, text=True,
                           timeout=600) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr[-2000:]
    tuned = [run.stdout.count("Triton autotuning for function") for run in runs]
    assert tuned[0] > 0 and tuned[1] == 0, tuned
