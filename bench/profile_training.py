"""Where a training step's GPU time goes: kernel time per category (GEMMs, FP8 GEMMs and their scaling, SSD scan,
conv, norms, attention, fused element-wise, optimizer ...) for bf16 and FP8 runs of the same model and recipe.

Usage (GPU machine, after `source bench/gpu/setup.sh`):
  python3 bench/profile_training.py --out DIR [--spec nemotron-h-1b --batch 4 --seq 4096 --precisions bf16,fp8]
It runs archsearch.training's own step (prepare + Trainer.queue_step: autocast, FP8 conversion, torch.compile,
loss, clipping, fused AdamW), warms up, times steps read one at a time and read one behind (as a run does),
then records a few steps with torch.profiler. Output: a table per
precision on stdout and profile_<spec>_<precision>.json (categories and the top kernels) in DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from archsearch.kernels import registry
from archsearch.spec import load_spec
from archsearch.training import Recipe, TaskSpec
from archsearch.training import compile_session
from archsearch.training.loop import Trainer
from archsearch.training.step_graph import WARMUP_STEPS
from archsearch.training.recipe import COMPILE_SCOPES, DEFAULT_COMPILE_SCOPE
from archsearch.training.prepare import prepare

from step_gaps import idle_gaps, is_kernel, print_gaps  # bench/, beside this script

# first match wins; kernel names as CUDA reports them
CATEGORIES = [
    ("fp8 gemm", r"e4m3|f8f8|fp8|_scaled_mm|float8"),
    ("gemm", r"gemm|nvjet|cutlass|xmma|sm90_.*tensorop|splitK|cublas"),
    ("attention", r"fmha|flash|cudnn|sdpa|attention|flex"),
    ("ssd scan (mamba-ssm)", r"_chunk_|_bmm_chunk|_state_passing|chunk_cumsum|_chunk_scan|ddAcs"),
    ("ssd scan (ours)", r"_ssd_fwd_kernel|_ssd_bwd_kernel"),
    ("gated norm (mamba-ssm)", r"_layer_norm|_rms_norm|layernorm"),
    ("gated norm (ours)", r"_gated_rms_\w*kernel"),
    ("conv1d (ours)", r"_conv_fwd_\w*kernel|_conv_bwd_\w*kernel"),
    ("optimizer", r"adam|multi_tensor|foreach|_amp_"),
    ("inductor fused", r"^triton_"),
    ("cross entropy", r"log_softmax|softmax|nll_loss|cross_entropy"),
    ("reductions", r"reduce_kernel|Reduce"),
    ("copies / casts", r"copy|Memcpy|cast|convert|CatArray|cat_|memset|Memset|fill"),
    ("element-wise (aten)", r"elementwise|vectorized|unrolled"),
]


def category(name: str) -> str:
    for label, pattern in CATEGORIES:
        if re.search(pattern, name, flags=re.IGNORECASE):
            return label
    return "other"


def kernel_times(prof) -> dict[str, float]:
    """Total device microseconds per kernel name (events on the GPU only)."""
    totals: dict[str, float] = defaultdict(float)
    for event in prof.events():
        if is_kernel(event):
            totals[event.name] += event.device_time_total if hasattr(event, "device_time_total") else event.cuda_time
    return totals


def profile_precision(spec, task, args, precision: str) -> dict:
    recipe = Recipe(steps=args.warmup + args.steps + 1, batch_size=args.batch, seq_len=args.seq, lr=3e-4,
                    min_lr=3e-5, warmup=2, precision=precision, require_fp8=precision == "fp8" and args.device != "cpu",
                    fp8_emulate=precision == "fp8" and args.device == "cpu",
                    fp8_recipe=args.fp8_recipe, compile=args.compile, eval_every=10_000, seed=0,
                    cuda_graph=args.cuda_graph)
    run = prepare(spec, task, recipe, out_dir=None, device=args.device, resume=False)
    trainer = Trainer(run, callback=None, progress=False)
    started = time.perf_counter()
    for _ in range(args.warmup):
        trainer.train_step()
    synchronize()
    warm_s = time.perf_counter() - started
    breaks = compile_breaks()
    timed = time.perf_counter()
    for _ in range(args.steps):  # unprofiled timing first: the profiler adds host overhead
        trainer.train_step()  # each step's loss read before the next is queued (as runs did before 2026-12-06)
    synchronize()
    synced_ms = (time.perf_counter() - timed) / args.steps * 1e3
    step_ms, host_ms = pipelined_steps_ms(trainer, args.steps)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        pipelined_steps_ms(trainer, args.steps)
    per_kernel = {name: us / args.steps / 1e3 for name, us in kernel_times(prof).items()}  # ms per step
    gaps = idle_gaps(prof.events(), args.steps, category)
    per_category: dict[str, float] = defaultdict(float)
    for name, ms in per_kernel.items():
        per_category[category(name)] += ms
    top = sorted(per_kernel.items(), key=lambda kv: -kv[1])[:args.top]
    tokens = args.batch * args.seq
    report = dict(precision=run.precision.label, fp8_layers=len(run.fp8_layers), step_ms=step_ms,
                  backends=registry.backends_used(),
                  synced_step_ms=synced_ms, host_queue_ms=host_ms,
                  tokens_per_s=tokens / step_ms * 1e3, kernel_ms=sum(per_kernel.values()),
                  warmup_s=warm_s, graph_breaks=breaks, idle=gaps, peak_gib=torch.cuda.max_memory_allocated() / 2**30,
                  categories=dict(sorted(per_category.items(), key=lambda kv: -kv[1])),
                  top=[dict(name=n[:160], ms=ms, category=category(n)) for n, ms in top],
                  step_graph=trainer.step_graph.describe() if trainer.step_graph is not None else None)
    print(f"\n== {precision}: {report['precision']}, {len(run.fp8_layers)} fp8 layers; step {step_ms:.1f} ms "
          f"(read one step behind, as run_to_end does; {synced_ms:.1f} ms reading each step before the next) "
          f"({report['tokens_per_s']:,.0f} tokens/s), kernels {report['kernel_ms']:.1f} ms/step, the host queueing "
          f"it {host_ms:.1f} ms, warm-up {warm_s:.0f} s")
    print(f"  compiled graphs {breaks['graphs']}, graph breaks {breaks['total']}; backends "
          f"{', '.join(f'{op}={name}' for op, name in sorted(report['backends'].items()))}")
    for reason, count in breaks["reasons"].items():
        print(f"    {count:4d} x {reason}")
    for label, ms in report["categories"].items():
        print(f"  {label:28s} {ms:8.2f} ms  {100 * ms / step_ms:5.1f}%")
    print("  top kernels:")
    for row in report["top"]:
        print(f"    {row['ms']:7.2f} ms  [{row['category']}] {row['name'][:110]}")
    print_gaps(gaps)
    del trainer, run
    compile_session.forget()  # dynamo's reset and the process's record of compiled signatures, together
    torch._dynamo.utils.counters.clear()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    return report


def compile_breaks() -> dict:
    """Dynamo's graph count and graph breaks so far (since the last torch._dynamo.reset()): each break is a
    return to eager between compiled regions, i.e. host launches the step pays for."""
    from torch._dynamo.utils import counters

    reasons = {str(reason)[:200]: count for reason, count in counters["graph_break"].most_common(20)}
    return dict(graphs=counters["stats"].get("unique_graphs", 0), total=sum(counters["graph_break"].values()),
                reasons=reasons)


def pipelined_steps_ms(trainer: Trainer, steps: int) -> tuple[float, float]:
    """(ms a step when each step's loss is read after the next is queued, as Trainer.run_to_end does; ms a step
    the host spends queueing it). Queueing as long as the step means the host, not the GPU, sets the pace."""
    began = time.perf_counter()
    queueing = 0.0
    waiting = None
    for _ in range(steps):
        queue_began = time.perf_counter()
        queued = trainer.queue_step()
        queueing += time.perf_counter() - queue_began
        if waiting is not None:
            waiting.read()
        waiting = queued
    waiting.read()
    synchronize()
    return (time.perf_counter() - began) / steps * 1e3, queueing / steps * 1e3


def set_inductor(parser: argparse.ArgumentParser, setting: str) -> None:
    import ast

    import torch._inductor.config as inductor_config

    key, sep, text = setting.partition("=")
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = None
    *path, name = key.split(".")
    owner = inductor_config
    for part in path:
        owner = getattr(owner, part, None)
    if not sep or value is None or owner is None or not hasattr(owner, name):
        parser.error(f"--inductor {setting!r}: allowed: KEY=VALUE with KEY an attribute of torch._inductor.config "
                     f"(dots for its sections) and VALUE a Python literal")
    setattr(owner, name, value)


def force_backend(parser: argparse.ArgumentParser, setting: str) -> None:
    """Force a kernel op's backend for the whole run through its override variable (read by every compiled region
    too, whose backend choice is baked in when it is traced)."""
    op, sep, name = setting.partition("=")
    if not sep or op not in registry.ops():
        parser.error(f"--backend {setting!r}: allowed: OP=NAME with OP one of {', '.join(registry.ops())}")
    known = [row["name"] for row in registry.describe()[op]["backends"]]
    if name not in known:
        parser.error(f"--backend {setting!r}: op {op} has backends {', '.join(known)}")
    os.environ[registry.env_var(op)] = name


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=".")
    parser.add_argument("--spec", default="nemotron-h-1b", help="one spec, or several separated by commas")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=4096)
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5, help="timed and profiled steps (>= 1)")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--precisions", default="bf16,fp8")
    parser.add_argument("--fp8-recipe", default="tensorwise", choices=("tensorwise", "rowwise"))
    parser.add_argument("--eager", action="store_true")
    parser.add_argument("--compile-scope", default=DEFAULT_COMPILE_SCOPE, choices=COMPILE_SCOPES,
                        help="Recipe.compile: the whole forward as one program, or each residual layer on its own")
    parser.add_argument("--inductor", action="append", default=[], metavar="KEY=VALUE",
                        help="set torch._inductor.config.KEY (a Python literal), e.g. triton.cudagraphs=True (CUDA "
                             "graphs, what mode='reduce-overhead' turns on) or max_autotune=True (Triton GEMM "
                             "templates with fused epilogues); repeatable, named in the output file")
    parser.add_argument("--backend", action="append", default=[], metavar="OP=NAME",
                        help="force a kernel op's backend, e.g. causal_conv1d=reference (plain torch: inductor fuses "
                             "it under compile); repeatable, named in the output file")
    parser.add_argument("--conv-kernels", default="walk", choices=("walk", "tiled"),
                        help="tiled: our Triton conv's tiled kernels even where its walk kernels apply (channel-last "
                             "x, k <= 4): the baseline they are read against; named in the output file")
    parser.add_argument("--custom-op-layout", default=None,
                        choices=("needs_exact_strides", "needs_fixed_stride_order", "flexible_layout"),
                        help="torch._functorch.config.custom_op_default_layout_constraint: the strides inductor must "
                             "hand our custom ops (the scan's, the fused Mamba mixer's); torch's default "
                             "needs_exact_strides copies an input laid out otherwise; named in the output file")
    parser.add_argument("--cuda-graph", action="store_true",
                        help="recipe cuda_graph: the whole step captured once and replayed (training/step_graph.py; "
                             "captured at the third step, so keep --warmup >= 3); named in the output file")
    parser.add_argument("--device", default="cuda", help="cpu: a smoke test of the script (no kernel times)")
    args = parser.parse_args()
    if args.steps < 1:
        parser.error(f"--steps {args.steps}: allowed: an integer >= 1")
    if args.cuda_graph and args.warmup <= WARMUP_STEPS:
        parser.error(f"--warmup {args.warmup} with --cuda-graph: allowed: > {WARMUP_STEPS} (the step after the "
                     f"{WARMUP_STEPS} plain ones is captured; timed steps must come after it)")
    args.compile = False if args.eager else args.compile_scope  # Recipe.compile
    if args.inductor and args.eager:
        parser.error("--inductor needs a compiled step: drop --eager")
    for setting in args.inductor:
        set_inductor(parser, setting)
    for setting in args.backend:
        force_backend(parser, setting)
    if args.custom_op_layout:
        import torch._functorch.config as functorch_config

        functorch_config.custom_op_default_layout_constraint = args.custom_op_layout
    if args.conv_kernels == "tiled":
        from archsearch.kernels import triton_conv1d

        triton_conv1d._walk = lambda kernel, d, l: None
    for spec_name in args.spec.split(","):
        spec = load_spec(spec_name)
        # random tokens: the step's cost does not depend on the text
        task = TaskSpec(name="mqar", options={"vocab": spec.vocab_size // 2, "n_pairs": 8})
        steps = {}
        Path(args.out).mkdir(parents=True, exist_ok=True)
        for precision in args.precisions.split(","):
            report = profile_precision(spec, task, args, precision)
            report.update(spec=spec.name, batch=args.batch, seq=args.seq, torch=torch.__version__,
                          device=torch.cuda.get_device_name() if args.device != "cpu" else "cpu",
                          compile=args.compile, inductor=args.inductor, forced_backends=args.backend,
                          conv_kernels=args.conv_kernels, custom_op_layout=args.custom_op_layout,
                          cuda_graph=args.cuda_graph)
            scope = ("" if args.compile in (False, DEFAULT_COMPILE_SCOPE) else f"_{args.compile}") + \
                "".join("_" + re.sub(r"[^A-Za-z0-9.]+", "-", setting) for setting in args.inductor + args.backend) + \
                ("_conv-tiled" if args.conv_kernels == "tiled" else "") + \
                (f"_{args.custom_op_layout}" if args.custom_op_layout else "") + ("_graph" if args.cuda_graph else "")
            (Path(args.out) / f"profile_{spec.name}_{precision}{scope}.json").write_text(json.dumps(report, indent=1))
            steps[precision] = report["step_ms"]
        if "bf16" in steps and "fp8" in steps:
            print(f"\n{spec.name}: fp8 / bf16 tokens/s = {steps['bf16'] / steps['fp8']:.3f}", flush=True)


if __name__ == "__main__":
    main()
