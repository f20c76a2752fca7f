"""bench/stack_samples.py: a process's thread stacks sampled from a thread of its own, summed by activity and by
innermost frame inside a time window (the main thread, then the other threads where busy)."""

import importlib.util
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("stack_samples", ROOT / "bench" / "stack_samples.py")
stack_samples = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stack_samples)

TORCH = "/venv/lib/python3.12/site-packages/torch"
TRITON = "/venv/lib/python3.12/site-packages/triton"


def test_the_prelude_runs_the_module_with_its_arguments_and_samples_its_threads(tmp_path):
    (tmp_path / "busy_module.py").write_text(textwrap.dedent("""
        import sys, threading, time

        def spin_in_known_place(seconds):
            end = time.time() + seconds
            while time.time() < end:
                pass

        def helper_at_work(seconds):  # as autograd's device thread, while the main thread waits for it
            spin_in_known_place(seconds)

        def parked_helper():
            threading.Event().wait(5)  # waiting in threading: not busy

        threading.Thread(target=parked_helper, daemon=True).start()
        threading.Thread(target=helper_at_work, args=(float(sys.argv[1]),), name="at-work", daemon=True).start()
        spin_in_known_place(float(sys.argv[1]))
        print("args", sys.argv[1:])
    """))
    stacks = tmp_path / "out.stacks"
    done = subprocess.run([sys.executable, "-c", stack_samples.prelude(stacks, 0.05, "busy_module"), "1.0"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "args ['1.0']" in done.stdout
    samples = stack_samples.read_samples(stacks.read_text())
    assert len(samples) >= 5
    assert all(frames[-1][1] in ("<module>", "_run_module_as_main", "_run_code") for _, frames in samples[:3])
    assert not any(func in ("helper_at_work", "parked_helper") for _, frames in samples for _, func in frames)
    threads = stack_samples.read_threads(stacks.read_text())
    assert any(func == "parked_helper" for _, thread, frames in threads if thread != "main" for _, func in frames)
    assert not any(func == "_sample" for _, _, frames in threads for _, func in frames)  # never itself
    summary = "\n".join(stack_samples.summarize(stacks))
    main, others = summary.split("other threads, busy in ")
    assert "busy_module.py:spin_in_known_place" in main.split("innermost")[1]
    assert "busy_module.py:spin_in_known_place" in others.split("innermost")[1]
    assert others.split("\n")[0].split(": ")[1].startswith("at-work ")  # the busy thread, by name
    assert "parked_helper" not in summary and "threading.py" not in summary


def _write(path, samples):
    lines = []
    for at, frames in samples:
        lines.append(f"{stack_samples.SAMPLE}{at!r}")
        lines += [f"{file}\t1\t{func}" for file, func in frames]
    path.write_text("\n".join(lines) + "\n")


def test_samples_are_counted_by_activity_inside_the_window_only(tmp_path):
    autotune = [("/usr/lib/python3.12/threading.py", "wait"), (f"{TRITON}/runtime/autotuner.py", "_bench"),
                (f"{TRITON}/runtime/autotuner.py", "run"), (f"{TORCH}/_inductor/output_code.py", "__call__")]
    inductor = [(f"{TORCH}/_inductor/codecache.py", "load_fn"), (f"{TORCH}/_dynamo/eval_frame.py", "_fn")]
    loop = [("/repo/archsearch/training/loop.py", "step")]
    t = time.time()
    path = tmp_path / "s.stacks"
    _write(path, [(t + 1, autotune), (t + 2, autotune), (t + 3, autotune), (t + 4, inductor), (t + 50, loop)])
    lines = stack_samples.summarize(path, (t, t + 10))
    assert lines[0].startswith("main thread, 4 samples")
    assert "3   75%  Triton autotune" in lines[1]  # inside inductor's call, yet counted as autotuning
    assert "1   25%  inductor" in lines[2]
    assert not any("training loop" in line for line in lines)
    frames = lines[lines.index("  innermost frames outside the standard library:") + 1:]
    assert "runtime/autotuner.py:_bench" in frames[0]  # threading's wait skipped
    assert stack_samples.summarize(path, (t + 100, t + 200)) == [f"no stack sample in {path} inside the window"]
    assert stack_samples.activity([("/x/y.py", "f")]) == "other"


def test_a_library_thread_parked_in_a_read_is_not_busy(tmp_path):
    reader = [(f"{TORCH}/_inductor/compile_worker/subproc_pool.py", "_recv_msg"),
              (f"{TORCH}/_inductor/compile_worker/subproc_pool.py", "_read_thread")]
    backward = [(f"{TRITON}/runtime/autotuner.py", "_bench"), ("/repo/kernels/ssd_mamba_op.py", "_backward")]
    t = time.time()
    path = tmp_path / "s.stacks"
    lines = []
    for i in range(4):
        lines += [f"{stack_samples.SAMPLE}{t + i!r}", f"{TORCH}/autograd/graph.py\t1\t_engine_run_backward",
                  f"{stack_samples.THREAD}InductorSubproc", *(f"{f}\t1\t{g}" for f, g in reader)]
        if i < 2:
            lines += [f"{stack_samples.THREAD}140213", *(f"{f}\t1\t{g}" for f, g in backward)]
    path.write_text("\n".join(lines) + "\n")
    summary = stack_samples.summarize(path)
    assert summary[0].startswith("main thread, 4 samples")
    others = summary[summary.index("  innermost frames outside the standard library:") + 2:]
    assert others[0] == "other threads, busy in 2 thread-samples (of 4 samples): 140213 2"
    assert "2   50%  Triton autotune" in others[1]
