"""Benchmarks of the budget checks; figures go in bench/RESULTS.md (section "Budget checks").

  python bench/bench_checks.py screen              # analytic screenings per second (CPU, no torch)
  python bench/bench_checks.py memory --out F      # GPU: measured vs estimated peak memory per family
  python bench/bench_checks.py throughput --out F  # GPU: hybrid vs transformer at 8k in / 16k out

The GPU families are ~1-2B specs built from shipped examples and public configs (max_context raised to what
the measurement needs; attention without position encoding or with RoPE serves any length the cache holds).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time

from archsearch.checks import CheckSettings, MemoryModel, check_budget, load_catalog
from archsearch.checks.sizes import format_bytes
from archsearch.spec import load_spec, parse_spec

MAX_CONTEXT = 1 << 15


def _widen(name: str, **changes):
    return parse_spec({**load_spec(name).to_dict(), **changes})


def family_specs() -> dict[str, object]:
    """One ~1-2B spec per family."""
    qwen3_1_7b = {  # Qwen/Qwen3-1.7B config.json
        "name": "qwen3-1.7b", "vocab_size": 151936, "d_model": 2048, "max_context": MAX_CONTEXT,
        "pattern": "(*-)x28", "tie_embeddings": True, "param_dtype": "bfloat16", "norm": {"eps": 1e-6},
        "blocks": {"*": {"kind": "attention", "n_heads": 16, "n_kv_heads": 8, "head_dim": 128, "qk_norm": True,
                         "rope_theta": 1000000.0},
                   "-": {"kind": "mlp", "ffn_dim": 6144, "activation": "silu", "gated": True}}}
    mamba2_1_3b = {  # state-spaces/mamba2-1.3b: 48 Mamba-2 layers, d_model 2048, expand 2, no MLP
        "name": "mamba2-1.3b", "vocab_size": 50288, "d_model": 2048, "max_context": MAX_CONTEXT,
        "pattern": "Mx48", "tie_embeddings": True, "param_dtype": "bfloat16",
        "blocks": {"M": {"kind": "mamba2", "expand": 2, "head_dim": 64, "d_state": 128, "n_groups": 1,
                         "conv_kernel": 4, "chunk_size": 256}}}
    local_global = {  # Gemma-2-like 5 local : 1 global (without soft-caps, which no fused SDPA path serves)
        "name": "local-global-1.5b", "vocab_size": 32000, "d_model": 2048, "max_context": MAX_CONTEXT,
        "pattern": "(L-L-L-L-L-*-)x3", "tie_embeddings": False, "param_dtype": "bfloat16",
        "blocks": {"L": {"kind": "attention", "n_heads": 16, "n_kv_heads": 8, "head_dim": 128, "window": 1024,
                         "rope_theta": 10000.0},
                   "*": {"kind": "attention", "n_heads": 16, "n_kv_heads": 8, "head_dim": 128, "rope_theta": 10000.0},
                   "-": {"kind": "mlp", "ffn_dim": 8192, "activation": "gelu_tanh", "gated": True}}}
    return {
        "hybrid": _widen("nemotron-h-1b", max_context=MAX_CONTEXT),
        "local/global": parse_spec(local_global),
        "pure Mamba-2": parse_spec(mamba2_1_3b),
        "transformer": parse_spec(qwen3_1_7b),
    }


# ---------------------------------------------------------------------------------------------- screen
def _variants(n: int, seed: int = 0):
    """Random hybrids around Nemotron-Nano-9B-v2 (widths, depth, attention count, windows), as a study samples."""
    base = load_spec("nemotron-nano-9b-v2").to_dict()
    rng = random.Random(seed)
    out = []
    for i in range(n):
        d = rng.choice([2048, 3072, 4096, 4480, 5120])
        n_attn, n_mamba = rng.randint(0, 8), rng.randint(8, 32)
        window = rng.choice([None, 4096, 16384])
        layers = ["M-"] * n_mamba + ["*-"] * n_attn
        rng.shuffle(layers)
        spec = {**base, "name": f"variant-{i}", "d_model": d, "pattern": "".join(layers) or "M-",
                "blocks": {"M": {**base["blocks"]["M"], "n_heads": rng.choice([64, 96, 128])},
                           "*": {**base["blocks"]["*"], "window": window},
                           "-": {"kind": "mlp", "ffn_dim": rng.choice([3, 4]) * d, "activation": "relu2"}}}
        out.append(parse_spec(spec))
    return out


def screen(args) -> dict:
    specs = _variants(args.n)
    device = load_catalog().get("a10g")
    settings = CheckSettings()
    start = time.perf_counter()
    fits = sum(check_budget(s, device, 131072, 1, settings).fits for s in specs)
    check_s = time.perf_counter() - start
    # a fixed spec screened at many points reuses its compiled model
    model = MemoryModel(specs[0], settings)
    start = time.perf_counter()
    for i in range(args.n):
        check_budget(specs[0], device, 1024 + i, 1 + i % 8, settings, model=model)
    reuse_s = time.perf_counter() - start
    texts = [json.dumps(s.to_dict()) for s in specs[: args.n // 4]]
    start = time.perf_counter()
    for text in texts:
        check_budget(parse_spec(json.loads(text)), device, 131072, 1, settings)
    parse_s = time.perf_counter() - start
    return {"n": args.n, "fits": fits, "checks_per_s": args.n / check_s, "reuse_checks_per_s": args.n / reuse_s,
            "parse_and_check_per_s": len(texts) / parse_s, "python": platform.python_version(),
            "machine": platform.processor() or platform.machine()}


# ---------------------------------------------------------------------------------------------- GPU
POINTS = [(4096, 8), (16384, 4), (32768, 2)]


def memory(args, rows: list, save) -> list[dict]:
    """Appends one row per (family, point) to rows and saves after each, so a run cut short keeps them."""
    from archsearch.checks.measure import measure_memory

    for family, spec in family_specs().items():
        if args.families and family not in args.families.split(","):
            continue
        for context, batch in POINTS:
            try:
                m = measure_memory(spec, context, batch, CheckSettings(prefill_chunk=args.chunk), decode_steps=8,
                                   per_layer=True)
                row = {"family": family, **m.to_dict()}
                row.pop("estimated")
                row["estimated_components"] = m.estimated["components"]
                print(f"{family:14s} {spec.name:18s} ctx {context:6d} b {batch}: measured "
                      f"{format_bytes(m.peak_bytes)} estimated {format_bytes(m.estimated_bytes)} "
                      f"({m.error:+.1%}) {m.backends}", flush=True)
                for name, peak in m.layer_peaks.items():
                    print(f"    {name:8s} transient measured {format_bytes(peak['measured'])} "
                          f"estimated workspace {format_bytes(peak['estimated'])}", flush=True)
            except Exception as err:  # record and go on: one family's failure must not hide the others
                row = {"family": family, "spec": spec.name, "context": context, "batch": batch,
                       "failed": f"{type(err).__name__}: {err}"[:500]}
                print(row, flush=True)
            rows.append(row)
            save()
    return rows


def _sdpa_backends(names: str | None):
    """Restrict torch's SDPA to the named backends (cuDNN's fails at large batch x heads on torch 2.11)."""
    import contextlib

    if not names:
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([getattr(SDPBackend, n.upper()) for n in names.split(",")])


def throughput(args) -> list[dict]:
    import torch

    from archsearch.checks.throughput import measure_throughput

    device = load_catalog().get(args.device)
    specs = family_specs()
    rows = []
    settings = CheckSettings(prefill_chunk=args.chunk)
    for family in ("hybrid", "transformer"):
        spec = specs[family]
        report = check_budget(spec, device, args.input + args.output, 1, settings)
        batch = min(report.largest_batch, args.max_batch)
        while batch >= 1:
            try:
                with _sdpa_backends(args.sdpa):
                    m = measure_throughput(spec, args.input, args.output, batch, settings, points=3,
                                           steps_per_point=args.steps)
                break
            except torch.cuda.OutOfMemoryError as err:
                print(f"{spec.name} batch {batch}: out of memory ({str(err)[:120]}); trying {batch * 4 // 5}")
                torch.cuda.empty_cache()
                batch = batch * 4 // 5
        row = {"family": family, "spec": spec.name, "analytic_largest_batch": report.largest_batch,
               "prefill_chunk": args.chunk, "sdpa_backends": args.sdpa,
               "budget_bytes": report.budget_bytes, **m.to_dict()}
        print(json.dumps(row), flush=True)
        rows.append(row)
    ratio = rows[0]["output_tokens_per_s"] / rows[1]["output_tokens_per_s"]
    rows.append({"ratio_output_tokens_per_s": ratio, "paper": "up to 6x (Nemotron-Nano-9B-v2 vs Qwen3-8B, 8k/16k)"})
    print(f"hybrid / transformer output tokens/s: {ratio:.2f}x", flush=True)
    return rows


def environment() -> dict:
    env = {"python": platform.python_version(), "date": time.strftime("%Y-%m-%d")}
    try:
        import torch

        env["torch"] = torch.__version__
        if torch.cuda.is_available():
            env["gpu"] = torch.cuda.get_device_name()
            env["gpu_total_bytes"] = torch.cuda.get_device_properties(0).total_memory
        import triton

        env["triton"] = triton.__version__
    except ImportError:
        pass
    return env


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["screen", "memory", "throughput", "gpu"])
    parser.add_argument("--n", type=int, default=2000, help="specs to screen")
    parser.add_argument("--chunk", type=int, default=2048, help="prefill chunk")
    parser.add_argument("--input", type=int, default=8192)
    parser.add_argument("--output", type=int, default=16384)
    parser.add_argument("--device", default="h100-80gb", help="catalog device whose budget sets the batch")
    parser.add_argument("--max-batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20, help="decode steps timed per position")
    parser.add_argument("--sdpa", help="SDPA backends to allow, e.g. flash_attention,efficient_attention,math")
    parser.add_argument("--families", help="memory: only these families, comma-separated (e.g. hybrid,transformer)")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)
    result = {"environment": environment()}

    def save():  # after each section, so a run cut short keeps what it measured
        if args.out:
            with open(args.out, "w") as f:
                json.dump(result, f, indent=2)

    if args.what == "screen":
        result["screen"] = screen(args)
        print(json.dumps(result["screen"], indent=2))
    if args.what in ("memory", "gpu"):
        result["memory"] = []
        memory(args, result["memory"], save)
    if args.what in ("throughput", "gpu"):
        result["throughput"] = throughput(args)
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
