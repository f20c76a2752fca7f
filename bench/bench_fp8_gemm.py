"""Where fp8 starts to pay on this GPU: bf16 vs torchao float8 (tensorwise) forward + backward of Linear layers, as
a training step runs them (fp32 master weights under bf16 autocast, both compiled), for a spec's own Linear shapes
at a tokens-per-forward and for a sweep of square / 4x shapes. Prints each shape's times, its intensity (GEMM
FLOPs per cast element, archsearch.training.fp8_table) and speedup, the spec's layer-weighted figure, and
Fp8Point rows to paste into archsearch/training/fp8_table.py's MEASURED (record the run in bench/RESULTS.md).

    python bench/bench_fp8_gemm.py --spec bench/specs/trial-d768.yaml --tokens 32768
    python bench/bench_fp8_gemm.py --spec nemotron-h-1b --tokens 16384 --sweep 512,768,1024,1536,2048,4096
    python bench/bench_fp8_gemm.py --spec nemotron-h-tiny --min-dim 16 --tokens 256 --device cpu --iters 2  # smoke

On CPU it runs torchao's emulation (fp32 math with fp8 rounding), eagerly: a check that the script works, not a
timing.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import time
from collections import Counter

import torch
from torch import nn

from archsearch.spec import load_spec
from archsearch.training.fp8_table import FP8_ALIGN, GAIN, chip_of, linear_shapes


def intensity(m: int, k: int, n: int) -> float:
    return 2 * m * k * n / (m * k + k * n + m * n)


def make_layer(k: int, n: int, fp8: bool, device: torch.device, emulate: bool) -> nn.Module:
    layer = nn.Sequential(nn.Linear(k, n, bias=False)).to(device)  # fp32 master weight, as training keeps it
    if fp8:
        import dataclasses

        from torchao.float8 import Float8LinearConfig, convert_to_float8_training

        config = dataclasses.replace(Float8LinearConfig.from_recipe_name("tensorwise"), emulate=emulate)
        convert_to_float8_training(layer, config=config)
    return layer


def time_layer(layer: nn.Module, m: int, k: int, n: int, device: torch.device, iters: int, compiled: bool) -> float:
    """Median seconds of one forward + backward (input and weight gradients) over `iters` timed calls."""
    if compiled:  # each layer its own compile: past dynamo's recompile limit (8) the layer would run eagerly
        torch._dynamo.reset()
    run = torch.compile(layer) if compiled else layer
    x = torch.randn(m, k, device=device, requires_grad=True)
    grad = torch.randn(m, n, device=device, dtype=torch.bfloat16 if device.type == "cuda" else torch.float32)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def once():
        with autocast:
            y = run(x)
        y.backward(grad.to(y.dtype))

    for _ in range(3):  # compile, autotune, warm caches
        once()
    times = []
    for _ in range(iters):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            once()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            began = time.perf_counter()
            once()
            times.append(time.perf_counter() - began)
    return statistics.median(times)


def measure(shapes: Counter, m: int, device: torch.device, iters: int, compiled: bool) -> list[dict]:
    rows = []
    for (k, n), count in sorted(shapes.items()):
        emulate = device.type != "cuda"
        bf16 = time_layer(make_layer(k, n, False, device, emulate), m, k, n, device, iters, compiled)
        fp8 = time_layer(make_layer(k, n, True, device, emulate), m, k, n, device, iters, compiled)
        rows.append({"k": k, "n": n, "count": count, "intensity": intensity(m, k, n), "bf16_ms": bf16 * 1e3,
                     "fp8_ms": fp8 * 1e3, "speedup": bf16 / fp8})
        print(f"  Linear {k:>5} -> {n:<5} x{count:<3} intensity {rows[-1]['intensity']:7.0f}  bf16 "
              f"{rows[-1]['bf16_ms']:8.3f} ms  fp8 {rows[-1]['fp8_ms']:8.3f} ms  fp8/bf16 speed {rows[-1]['speedup']:.3f}x",
              flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", action="append", default=[], help="spec file or example name (repeatable)")
    parser.add_argument("--tokens", type=int, default=32768, help="tokens per forward (batch x seq_len of a rank)")
    parser.add_argument("--sweep", default="", help="comma-separated widths d: Linear d->d and d->4d at --tokens")
    parser.add_argument("--min-dim", type=int, default=512, help="the recipe's fp8_min_dim")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--eager", action="store_true", help="do not torch.compile the layers")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.tokens < 1 or args.iters < 1:
        parser.error(f"--tokens {args.tokens} and --iters {args.iters} must be >= 1")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (torchao emulation: not a timing)"
    chip = chip_of(name) if device.type == "cuda" else "cpu"
    versions = f"torch {torch.__version__}"
    try:
        from importlib.metadata import version

        versions += f", torchao {version('torchao')}"
    except Exception:  # noqa: BLE001 - reporting only
        pass
    today = datetime.date.today().isoformat()
    compiled = not args.eager and device.type == "cuda"  # inductor on CPU needs a C++ toolchain; timings are moot
    print(f"device {name}; {versions}; {'compiled' if compiled else 'eager'}; {args.tokens:,} tokens per forward")
    points = []
    for spec_name in args.spec:
        spec = load_spec(spec_name)
        shapes = Counter((k, n) for _, k, n in linear_shapes(spec, args.min_dim))
        if not shapes:
            print(f"{spec.name}: no Linear layer fp8 would convert at fp8_min_dim {args.min_dim}")
            continue
        print(f"{spec.name}: {sum(shapes.values())} layers fp8 would convert, {len(shapes)} shapes")
        rows = measure(shapes, args.tokens, device, args.iters, compiled)
        bf16 = sum(r["bf16_ms"] * r["count"] for r in rows)
        fp8 = sum(r["fp8_ms"] * r["count"] for r in rows)
        m = args.tokens
        total = sum(2 * m * r["k"] * r["n"] * r["count"] for r in rows) / sum(
            (m * r["k"] + r["k"] * r["n"] + m * r["n"]) * r["count"] for r in rows)
        print(f"  {spec.name} all converted layers: bf16 {bf16:.2f} ms, fp8 {fp8:.2f} ms a forward + backward: "
              f"{bf16 / fp8:.3f}x (intensity {total:.0f}; gain beyond noise from {GAIN}x)")
        points.append((f"{spec.name} Linear layers alone, {m:,} tokens/forward", total, bf16 / fp8, spec_name, m))
    widths = [int(w) for w in args.sweep.split(",") if w.strip()]
    if widths:
        bad = [w for w in widths if w < 1 or w % FP8_ALIGN]
        if bad:
            parser.error(f"--sweep {bad}: widths must be positive multiples of {FP8_ALIGN}")
        print(f"sweep at {args.tokens:,} tokens per forward:")
        sweep = Counter({(d, n): 1 for d in widths for n in (d, 4 * d)})
        for r in measure(sweep, args.tokens, device, args.iters, compiled):
            points.append((f"Linear {r['k']}->{r['n']}, {args.tokens:,} tokens/forward", r["intensity"], r["speedup"],
                           None, None))
    if points:
        print("\nrows for archsearch/training/fp8_table.py MEASURED (whole-layer times, not a whole step):")
        for what, value, speedup, spec_name, tokens in points:  # layers alone: never a gain (fp8_table.MEASURED)
            where = f'"{spec_name}", {tokens}, ' if spec_name else ""
            print(f'    Fp8Point("{chip}", "{what}", {value:.1f}, {speedup:.3f},\n'
                  f'             "bench/bench_fp8_gemm.py {today}, {name}, {versions}", {where}layers_only=True),')


if __name__ == "__main__":
    main()
