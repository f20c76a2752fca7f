"""Where a process's Python time goes, from its main thread's stack sampled every few seconds by a thread of its
own (sys._current_frames: safe under the GIL, unlike faulthandler's watchdog, which crashed a study process while
it imported): used by bench_study_time.py --stacks to say what the first trial's warm-up does.

`prelude(path, interval, module)` is Python source for `python -c` that starts the sampling into `path` and then
runs `module` as `python -m module` would; `summarize(path, window)` reads the samples taken inside a time window
and counts them by activity (the first rule in ACTIVITIES that one of the sample's frames matches) and by
innermost frame.

    python bench/stack_samples.py FILE     # summarize a whole file
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

SAMPLE = "# sample at "  # then the epoch time; then one "file<TAB>line<TAB>function" line a frame, innermost first

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
    """Source for `python -c`: sample the main thread's stack into `path` every `interval` s from a daemon thread,
    then run `module` as `python -m module` would, with the rest of argv."""
    return (
        "import runpy, sys, threading, time, traceback\n"
        "def _sample(path, interval, main):\n"
        "    with open(path, 'w') as out:\n"
        "        while True:\n"
        "            time.sleep(interval)\n"
        "            frame = sys._current_frames().get(main)\n"
        "            if frame is None:\n"
        "                return\n"
        "            frames = traceback.StackSummary.extract(traceback.walk_stack(frame), lookup_lines=False)\n"
        f"            out.write({SAMPLE!r} + repr(time.time()) + '\\n')\n"
        "            out.writelines(f'{f.filename}\\t{f.lineno}\\t{f.name}\\n' for f in frames)\n"
        "            out.flush()\n"
        f"threading.Thread(target=_sample, args=({str(path)!r}, {float(interval)!r}, threading.get_ident()),\n"
        "                 name='stack-sampler', daemon=True).start()\n"
        f"sys.argv[0] = {module!r}\n"
        f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)\n"
    )


def read_samples(text: str) -> list[tuple[float, list[tuple[str, str]]]]:
    """(time, frames innermost first as (file, function)) for each sample."""
    samples = []
    for line in text.splitlines():
        if line.startswith(SAMPLE):
            samples.append((float(line[len(SAMPLE):]), []))
        elif samples and line.count("\t") >= 2:
            file, _, func = line.rsplit("\t", 2)
            samples[-1][1].append((file, func))
    return samples


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


def summarize(path: str | Path, window: tuple[float, float] | None = None) -> list[str]:
    """Lines saying what the main thread was doing in the samples taken inside `window` (epoch seconds)."""
    samples = read_samples(Path(path).read_text(errors="replace"))
    picked = [frames for at, frames in samples if window is None or window[0] <= at <= window[1]]
    if not picked:
        return [f"no stack sample in {path} inside the window"]
    times = [at for at, _ in samples]
    apart = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else float("nan")
    by_activity = collections.Counter(activity(frames) for frames in picked)
    by_frame = collections.Counter(_innermost(frames) for frames in picked)
    n = len(picked)
    lines = [f"main thread, {n} samples ({apart:.1f} s apart on average):"]
    lines += [f"  {count:5d}  {count / n:4.0%}  {name}" for name, count in by_activity.most_common()]
    lines.append("  innermost frames outside the standard library:")
    lines += [f"  {count:5d}  {count / n:4.0%}  {name}" for name, count in by_frame.most_common(12)]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file")
    args = parser.parse_args()
    print("\n".join(summarize(args.file)))


if __name__ == "__main__":
    main()
