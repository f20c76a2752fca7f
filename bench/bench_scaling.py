"""Data-parallel throughput scaling: training tokens/s of a ~1B hybrid on 1, 2, 4, 8 GPUs of one host, and the
scaling efficiency against one GPU.

Usage (multi-GPU machine, after `source bench/gpu/setup.sh`):
  python3 bench/bench_scaling.py --out DIR [--spec nemotron-h-1b --gpus 1,2,4,8 --seq 4096 --batch-per-gpu 2
                                            --steps 20 --compile]
Toy check of the script on a CPU (gloo processes, a tiny spec; never to report):
  sed "s/^vocab_size: 256/vocab_size: 512/" archsearch/examples/nemotron-h-tiny.yaml > /tmp/tiny512.yaml
  python3 bench/bench_scaling.py --out DIR --device cpu --spec /tmp/tiny512.yaml --gpus 1,2 --seq 128 --steps 3

Each row is one `train(spec, task, recipe, nproc=N)`: N processes under torchrun, DDP over NCCL (NCCL_NVLS_ENABLE=0,
TORCH_SYMM_MEM_DISABLE_MULTICAST=1 in every process), bf16 autocast with fp32 master weights, fused AdamW. Weak
scaling: every GPU keeps `--batch-per-gpu` sequences, so the global batch is N times that (the recipe's batch_size
is the global batch). tokens/s is the sum of the ranks' own rates over all steps but the first (compile, warm-up);
efficiency(N) = tokens/s(N) / (N x tokens/s(1)). The 1-GPU row runs through the same launcher (torchrun, 1 process,
no DDP wrapper), so launch and data costs are alike in every row. Data: Python's standard-library sources as bytes
(the `text` task, as bench/bench_training.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from archsearch.spec import load_spec
from archsearch.training import Recipe, TaskSpec, train

sys.path.insert(0, str(Path(__file__).parent))
from bench_training import corpus  # noqa: E402  (bench/ is not a package)


def run_row(spec, task, args, n: int) -> dict:
    recipe = Recipe(steps=args.steps, batch_size=args.batch_per_gpu * n, seq_len=args.seq, lr=3e-4, min_lr=3e-5,
                    warmup=max(1, args.steps // 10), precision="bf16" if args.device == "cuda" else "fp32",
                    compile=args.compile, eval_every=args.steps, eval_batches=1, log_every=1, seed=0)
    began = time.perf_counter()
    result = train(spec, task, recipe, nproc=n, device=args.device, progress=False)
    ranks = result.extra.get("ranks") or [{"rank": 0, "tokens_per_s": result.tokens_per_s,
                                           "peak_memory_bytes": result.peak_memory_bytes}]
    return dict(gpus=n, status=result.status, reason=result.reason, n_params=result.n_params,
                global_batch=recipe.batch_size,
                tokens_per_step=recipe.tokens_per_step, timed_steps=result.extra.get("timed_steps"),
                tokens_per_s=result.tokens_per_s, mfu=result.mfu,
                peak_memory_gib=(result.peak_memory_bytes or 0) / 2**30, ranks=ranks, device=result.device,
                precision=result.precision, backends=result.backends, wall_s=time.perf_counter() - began,
                final_loss=next((p["loss"] for p in reversed(result.curve) if "loss" in p), None))


def table(rows: list[dict]) -> str:
    base = next((r["tokens_per_s"] for r in rows if r["gpus"] == 1 and r.get("tokens_per_s")), None)
    lines = ["| GPUs | global batch | tokens/step | tokens/s | tokens/s per GPU | efficiency vs 1 GPU | MFU | "
             "peak GiB (max rank) |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        if r.get("tokens_per_s") is None:
            lines.append(f"| {r['gpus']} | | | not run: {r.get('reason')} | | | | |")
            continue
        eff = f"{r['tokens_per_s'] / (r['gpus'] * base):.1%}" if base else "-"
        mfu = f"{r['mfu']:.1%}" if r.get("mfu") is not None else "-"
        lines.append(f"| {r['gpus']} | {r['global_batch']} | {r['tokens_per_step']:,} | {r['tokens_per_s']:,.0f} | "
                     f"{r['tokens_per_s'] / r['gpus']:,.0f} | {eff} | {mfu} | {r['peak_memory_gib']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--spec", default="nemotron-h-1b")
    parser.add_argument("--gpus", default="1,2,4,8", help="process counts to measure (comma-separated)")
    parser.add_argument("--seq", type=int, default=4096)
    parser.add_argument("--batch-per-gpu", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile in every rank (Recipe compile: true, layer by layer)")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    available = torch.cuda.device_count() if args.device == "cuda" else max(int(g) for g in args.gpus.split(","))
    spec = load_spec(args.spec)
    task = TaskSpec(name="text", options={"data_files": str(corpus())})
    report = dict(spec=spec.name, seq=args.seq, batch_per_gpu=args.batch_per_gpu, steps=args.steps,
                  compile=args.compile, device=args.device, gpus_visible=available,
                  torch=torch.__version__, rows=[])
    for n in (int(g) for g in args.gpus.split(",")):
        if n > available:
            report["rows"].append(dict(gpus=n, tokens_per_s=None, reason=f"only {available} GPU(s) visible"))
        else:
            try:
                report["rows"].append(run_row(spec, task, args, n))
            except Exception as err:  # one failed row (out of memory, a NCCL error) must not lose the others
                report["rows"].append(dict(gpus=n, tokens_per_s=None, reason=f"failed: {type(err).__name__}: {err}"))
            print(json.dumps({k: v for k, v in report["rows"][-1].items() if k not in ("backends", "ranks")}),
                  flush=True)
        (args.out / "scaling.json").write_text(json.dumps(report, indent=1, default=str))
    text = table(report["rows"])
    (args.out / "scaling.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
