"""Training benchmarks: FP8 vs bf16 on a ~1B hybrid at a fixed token budget, and the MQAR recall probes.

Usage (GPU machine, after `source bench/gpu/setup.sh`):
  python3 bench/bench_training.py fp8 --out DIR [--spec nemotron-h-1b --steps 40 --batch 4 --seq 2048]
  python3 bench/bench_training.py probes --out DIR [--pairs 8,32,64 --steps 800]
Both parts also run on a CPU at toy scale (--device cpu, a tiny spec) to check the script, never to report.

fp8: the same model, seed, data (Python's standard-library sources, bytes) and recipe, trained once in bf16
autocast and once with torchao float8 (tensorwise) linears, both under torch.compile (the whole model); tokens/s
excludes the first (compiling) step. probes: MQAR accuracy of a pure Mamba-2 stack, a hybrid with one attention
layer in four, and a pure attention stack, as the number of key-value pairs grows.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import sysconfig
import tempfile
import time
from pathlib import Path

import torch

from archsearch.spec import load_spec, loads_spec
from archsearch.training import Recipe, TaskSpec, TrainingStopped, train


def corpus(max_bytes: int = 20_000_000) -> Path:
    """Python's standard-library sources (recursively, UTF-8 files only), copied into one temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix="stdlib-"))
    total = 0
    for i, source in enumerate(sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py"))):
        try:
            source.read_bytes().decode("utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        shutil.copy(source, folder / f"{i:05d}_{source.name}")
        total += source.stat().st_size
        if total > max_bytes:
            break
    return folder


def release() -> None:
    gc.collect()
    torch._dynamo.reset()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def summary(result) -> dict:
    losses = [p["loss"] for p in result.curve if "loss" in p]
    return dict(status=result.status, reason=result.reason, precision=result.precision,
                precision_reason=result.precision_reason, fp8_layers=len(result.fp8_layers),
                tokens=result.tokens, tokens_per_s=result.tokens_per_s, mfu=result.mfu,
                peak_memory_gib=(result.peak_memory_bytes or 0) / 2**30, wall_time_s=result.wall_time_s,
                final_train_loss=losses[-1] if losses else None, metrics=result.metrics, backends=result.backends,
                n_params=result.n_params, curve=[p for p in result.curve if "loss" in p])


def fp8_part(args) -> dict:
    spec = load_spec(args.spec)
    data = corpus()
    task = TaskSpec(name="text", options={"data_files": str(data)})
    runs = {}
    for precision in ("bf16", "fp8"):
        recipe = Recipe(steps=args.steps, batch_size=args.batch, seq_len=args.seq, lr=args.lr, min_lr=args.lr / 10,
                        warmup=max(args.steps // 10, 1), precision=precision, require_fp8=args.device != "cpu"
                        and precision == "fp8", fp8_recipe=args.fp8_recipe, fp8_emulate=args.device == "cpu",
                        compile=False if args.eager else "model",  # as the recorded figures ran
                        eval_every=args.steps, eval_batches=4, log_every=1, seed=0)
        started = time.perf_counter()
        runs[precision] = summary(train(spec, task, recipe, progress=False, device=args.device))
        runs[precision]["bench_wall_s"] = time.perf_counter() - started
        print(precision, {k: v for k, v in runs[precision].items() if k not in ("curve", "backends")}, flush=True)
        release()
    bf16, fp8 = runs["bf16"], runs["fp8"]
    ratio = fp8["tokens_per_s"] / bf16["tokens_per_s"] if fp8["tokens_per_s"] and bf16["tokens_per_s"] else None
    val_gap = fp8["metrics"]["val_loss"] / bf16["metrics"]["val_loss"] - 1
    return dict(spec=spec.name, steps=args.steps, batch=args.batch, seq=args.seq,
                compile=False if args.eager else "model", fp8_recipe=args.fp8_recipe, speedup=ratio,
                val_loss_rel_diff=val_gap, runs=runs)


PROBE_SPEC = """
name: probe-{name}
vocab_size: {vocab}
d_model: {d}
max_context: {seq}
pattern: "{pattern}"
blocks:
  M: {{kind: mamba2, n_heads: {mamba_heads}, head_dim: {mamba_head_dim}, d_state: {d_state}, n_groups: 1,
       conv_kernel: 4, chunk_size: 64}}
  "*": {{kind: attention, n_heads: 4, n_kv_heads: 4, head_dim: {attn_head}, rope_theta: {rope}}}
  "-": {{kind: mlp, ffn_ratio: 2, activation: relu2}}
"""
PATTERNS = "mamba2=M-M-M-M-,hybrid=M-*-M-M-,attention=*-*-*-*-"


def probe_part(args, save) -> dict:
    rows = []
    patterns = dict(item.split("=") for item in args.patterns.split(","))
    for n_pairs in [int(p) for p in args.pairs.split(",")]:
        for name, pattern in patterns.items():
            spec = loads_spec(PROBE_SPEC.format(name=name, vocab=max(args.vocab, 64), d=args.d_model, seq=args.seq,
                                                pattern=pattern, mamba_heads=2 * args.d_model // args.mamba_head_dim,
                                                mamba_head_dim=args.mamba_head_dim, d_state=args.d_state,
                                                attn_head=args.d_model // 4, rope=args.rope))
            task = TaskSpec(name="mqar", options={"vocab": args.vocab, "n_pairs": n_pairs})
            recipe = Recipe(steps=args.steps, batch_size=args.batch, seq_len=args.seq, lr=args.lr,
                            min_lr=args.lr / 10, warmup=min(50, args.steps // 10), weight_decay=args.weight_decay,
                            schedule=args.schedule, eval_every=args.eval_every, eval_batches=4,
                            precision="bf16" if args.device != "cpu" else "fp32", seed=0)

            def stop(step, metrics):
                if metrics["accuracy"] >= args.solved:
                    raise TrainingStopped("solved")

            try:
                result = train(spec, task, recipe, callback=stop, progress=False, device=args.device)
            except TrainingStopped as err:
                result = err.result
            curve = [(p["step"], round(p["accuracy"], 4)) for p in result.curve if "accuracy" in p]
            row = dict(model=name, pattern=pattern, n_pairs=n_pairs, accuracy=result.metrics["accuracy"],
                       best_accuracy=max(a for _, a in curve), steps=result.steps, n_params=result.n_params,
                       wall_time_s=result.wall_time_s, curve=curve, backends=result.backends)
            rows.append(row)
            print({k: v for k, v in row.items() if k not in ("curve", "backends")}, flush=True)
            report = dict(vocab=args.vocab, seq=args.seq, d_model=args.d_model, d_state=args.d_state,
                          steps=args.steps, batch=args.batch, lr=args.lr, schedule=args.schedule,
                          mamba_head_dim=args.mamba_head_dim, rope=args.rope, weight_decay=args.weight_decay,
                          solved=args.solved, rows=rows)
            save(report)  # a run cut short by its time limit keeps the rows it finished
            release()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("fp8", "probes"))
    parser.add_argument("--out", default=".")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--spec", default="nemotron-h-1b")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--seq", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--fp8-recipe", default="tensorwise", choices=("tensorwise", "rowwise"))
    parser.add_argument("--eager", action="store_true", help="no torch.compile")
    parser.add_argument("--pairs", default="8,32,64")
    parser.add_argument("--vocab", type=int, default=512)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--d-state", type=int, default=16)
    parser.add_argument("--mamba-head-dim", type=int, default=64)
    parser.add_argument("--rope", default="10000.0", help="attention rope_theta, or null (no position encoding)")
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--patterns", default=PATTERNS, help="name=pattern,... of the compared models")
    parser.add_argument("--schedule", default="cosine", choices=("cosine", "wsd", "constant"))
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--solved", type=float, default=0.99, help="probes: stop a run at this accuracy")
    args = parser.parse_args()
    fp8 = args.part == "fp8"
    defaults = dict(steps=40 if fp8 else 800, batch=4 if fp8 else 64, seq=2048 if fp8 else 256,
                    lr=3e-4 if fp8 else 3e-3)
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    started = time.perf_counter()
    device = torch.cuda.get_device_name() if args.device != "cpu" else "cpu"
    out = Path(args.out) / f"training_{args.part}.json"

    def save(report: dict) -> None:
        report.update(part=args.part, device=device, torch=torch.__version__, wall_s=time.perf_counter() - started)
        out.write_text(json.dumps(report, indent=1, default=str))

    report = fp8_part(args) if fp8 else probe_part(args, save)
    save(report)
    print(json.dumps({k: v for k, v in report.items() if k not in ("runs", "rows")}, default=str))


if __name__ == "__main__":
    main()
