"""Where a process's Python time goes, from its threads' stacks sampled every few seconds by a thread of its own
(sys._current_frames: safe under the GIL, unlike faulthandler's watchdog, which crashed a study process while it
imported): used by bench_study_time.py --stacks to say what the first trial's warm-up does. The other threads
count because autograd runs a GPU backward on a device thread of its own: while that thread tunes and compiles the
backward's kernels, the main thread only waits in `_engine_run_backward`.

`prelude(path, interval, module)` is Python source for `python -c` that starts the sampling into `path` and then
runs `module` as `python -m module` would; `summarize(path, window)` reads the samples taken inside a time window
and counts them by activity (the first rule in ACTIVITIES that one of the sample's frames matches) and by
innermost frame, for the main thread and for the other threads where they were busy.

    python bench/stack_samples.py FILE     # summarize a whole file
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

SAMPLE = "# sample at "  # then the epoch time; then one "file<TAB>line<TAB>function" line a frame, innermost first
THREAD = "# thread "  # then a thread's name; its frames follow (the main thread's come first, unlabelled)

# (activity, path fragment of a frame, function names or None for any): the first rule any frame matches wins,
# so the specific ones (autotuning, compiling) come before the packages they run inside
ACTIVITIES = [
    ("Triton autotune: benchmarking a kernel's configs (mamba-ssm's, ours)", "triton/runtime/autotuner.py",
     {"_bench", "benchmark"}),
    ("inductor autotune: benchmarking a compiled kernel's configs", "torch/_inductor/runtime/triton_heuristics.py",
     {"benchmark_all_configs", "autotune_to_one_config", "bench", "coordinate_descent_tuning"}),
    ("Triton compile (or loading a compiled kernel)", "triton/compiler/", None),
    ("inductor (compiling, or loading cached code)", "torch/_inductor/", None),
    ("AOTAutograd", "torch/_functorch/", None),
    ("dynamo tracing", "torch/_dynamo/", None),
    ("mamba-ssm, outside autotuning", "mamba_ssm/", None),
    ("importing modules", "importlib._bootstrap", None),
    ("archsearch's training loop", "archsearch/training/", None),
]


def prelude(path: str | Path, interval: float, module: str) -> str:
    """Source for `python -c`: sample every thread's stack into `path` every `interval` s from a daemon thread,
    then run `module` as `python -m module` would, with the rest of argv."""
    return (
        "import runpy, sys, threading, time\n"
        "def _lines(frame):\n"  # the frames themselves, not traceback's (no linecache: inductor clears it)
        "    lines = []\n"
        "    while frame is not None:\n"
        "        code = frame.f_code\n"
        "        lines.append(f'{code.co_filename}\\t{frame.f_lineno}\\t{code.co_name}\\n')\n"
        "        frame = frame.f_back\n"
        "    return lines\n"
        "def _sample(path, interval, main):\n"
        "    me = threading.get_ident()\n"
        "    with open(path, 'w') as out:\n"
        "        while True:\n"
        "            time.sleep(interval)\n"
        "            frames = sys._current_frames()\n"
        "            if main not in frames:\n"
        "                return\n"
        "            try:\n"  # one bad sample must not end the sampling
        "                names = {t.ident: t.name for t in threading.enumerate()}\n"
        f"                text = [{SAMPLE!r} + repr(time.time()) + '\\n', *_lines(frames.pop(main))]\n"
        "                for ident, frame in frames.items():\n"
        "                    if ident != me:\n"
        f"                        text += [{THREAD!r} + names.get(ident, str(ident)) + '\\n', *_lines(frame)]\n"
        "            except Exception:\n"
        "                continue\n"
        "            out.writelines(text)\n"
        "            out.flush()\n"
        f"threading.Thread(target=_sample, args=({str(path)!r}, {float(interval)!r}, threading.get_ident()),\n"
        "                 name='stack-sampler', daemon=True).start()\n"
        f"sys.argv[0] = {module!r}\n"
        f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)\n"
    )


Frames = list[tuple[str, str]]  # innermost first, as (file, function)


def read_threads(text: str) -> list[tuple[float, str, Frames]]:
    """(time, thread, frames) for each thread of each sample; the main thread is "main"."""
    stacks: list[tuple[float, str, Frames]] = []
    for line in text.splitlines():
        if line.startswith(SAMPLE):
            stacks.append((float(line[len(SAMPLE):]), "main", []))
        elif line.startswith(THREAD) and stacks:
            stacks.append((stacks[-1][0], line[len(THREAD):], []))
        elif stacks and line.count("\t") >= 2:
            file, _, func = line.rsplit("\t", 2)
            stacks[-1][2].append((file, func))
    return stacks


def read_samples(text: str) -> list[tuple[float, Frames]]:
    """(time, the main thread's frames) for each sample."""
    return [(at, frames) for at, thread, frames in read_threads(text) if thread == "main"]


def activity(frames: list[tuple[str, str]]) -> str:
    for name, fragment, functions in ACTIVITIES:
        if any(fragment in file and (functions is None or func in functions) for file, func in frames):
            return name
    return "other"


def _stdlib(file: str) -> bool:
    return file.startswith("<frozen") or ("/lib/python3" in file and "-packages/" not in file)


def _innermost(frames: list[tuple[str, str]]) -> str:
    """The innermost frame outside the standard library (a wait in threading says less than who waits)."""
    own = [frame for frame in frames if not _stdlib(frame[0])] or frames
    if not own:
        return "(no Python frame)"
    file, func = own[0]
    return f"{'/'.join(Path(file).parts[-2:])}:{func}"


# Library threads that spend their lives blocked in a read: innermost (path fragment, function). A thread blocked
# in C looks like its innermost Python frame, so these would read as busy all along.
PARKED = [("compile_worker/subproc_pool.py", "_recv_msg")]  # inductor's compile-pool reader ("InductorSubproc")


def _busy(frames: Frames) -> bool:
    """Running Python of its own or inside a library (a thread parked in threading's or queue's wait, or in one of
    PARKED, is not; a thread blocked in some other C call, a GPU sync say, counts as busy)."""
    if not frames or _stdlib(frames[0][0]):
        return False
    file, func = frames[0]
    return not any(fragment in file and func == name for fragment, name in PARKED)


def _counts(picked: list[Frames], n: int) -> list[str]:
    by_activity = collections.Counter(activity(frames) for frames in picked)
    by_frame = collections.Counter(_innermost(frames) for frames in picked)
    lines = [f"  {count:5d}  {count / n:4.0%}  {name}" for name, count in by_activity.most_common()]
    lines.append("  innermost frames outside the standard library:")
    lines += [f"  {count:5d}  {count / n:4.0%}  {name}" for name, count in by_frame.most_common(12)]
    return lines


def summarize(path: str | Path, window: tuple[float, float] | None = None) -> list[str]:
    """Lines saying what the main thread, and the other threads where busy, were doing in the samples taken
    inside `window` (epoch seconds)."""
    stacks = read_threads(Path(path).read_text(errors="replace"))
    inside = [(thread, frames) for at, thread, frames in stacks if window is None or window[0] <= at <= window[1]]
    picked = [frames for thread, frames in inside if thread == "main"]
    if not picked:
        return [f"no stack sample in {path} inside the window"]
    times = [at for at, thread, _ in stacks if thread == "main"]
    apart = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else float("nan")
    n = len(picked)
    lines = [f"main thread, {n} samples ({apart:.1f} s apart on average):", *_counts(picked, n)]
    busy = [(thread, frames) for thread, frames in inside if thread != "main" and _busy(frames)]
    if busy:  # counted against the main thread's samples: 50% = busy half the time (one thread's worth)
        # threads started in C++ (autograd's device threads) have no Python name: they show as their id
        names = collections.Counter(thread for thread, _ in busy)
        lines.append(f"other threads, busy in {len(busy)} thread-samples (of {n} samples): "
                     + ", ".join(f"{name} {count}" for name, count in names.most_common(6)))
        lines += _counts([frames for _, frames in busy], n)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file")
    args = parser.parse_args()
    print("\n".join(summarize(args.file)))


if __name__ == "__main__":
    main()
