"""Full training step (forward, backward, fused AdamW) in bf16: archsearch's model beside transformers' NemotronH
built from the same config, in the same script on the same GPU. Also: the SSD op through our registry against
calling mamba-ssm's kernel directly.

Usage (GPU machine, after `source bench/gpu/setup.sh`):
  python3 bench/bench_model.py --all [--out DIR]                 # every row below, one subprocess each
  python3 bench/bench_model.py --model nemotron-h-188m --impl ours --batch 4 [--compile layers]
  python3 bench/bench_model.py --ssd-overhead
Timing: warm-up steps first (Triton autotuning, torch.compile), then N steps between synchronisations,
wall clock. MFU counts 6 x (parameters - embedding) FLOPs per token (the LM head is a matmul and counts) against
686 TFLOP/s, as ../shared/GPU-NOTES.md does. Peak memory: torch.cuda.max_memory_allocated over the timed steps.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

PEAK_TFLOPS = 686.0
ROWS = [  # (model, impl, batch, compile); the comparisons first, the variants after
    ("nemotron-h-188m", "ours", 4, "none"),
    ("nemotron-h-188m", "hf", 4, "none"),
    ("nemotron-h-1b", "ours", 4, "none"),
    ("nemotron-h-1b", "hf", 4, "none"),
    ("nemotron-h-188m", "ours", 4, "layers"),
    ("nemotron-h-1b", "ours", 4, "layers"),
    ("nemotron-h-188m", "ours", 4, "graphs"),
    ("nemotron-h-1b", "ours", 4, "graphs"),
]


def _spec(name: str):
    from archsearch.spec import load_spec

    return load_spec(name)


def _ours(spec, compile_mode: str, sample_ids):
    """compile_mode: none (eager); layers (torch.compile of each residual layer and the final norm); graphs
    (forward and backward captured as CUDA graphs by make_graphed_callables: no host launch cost, static shapes)."""
    import archsearch

    model = archsearch.build(spec, device="cuda", dtype=torch.bfloat16, seed=0)
    if compile_mode == "layers":
        # static shapes: a second model of other sizes in the same process must not turn on dynamic shapes,
        # which mamba-ssm's Triton launchers do not survive under dynamo
        for layer in model.layers:
            layer.compile(dynamic=False)
        model.final_norm.compile(dynamic=False)
    if compile_mode == "graphs":
        graphed = torch.cuda.make_graphed_callables(model, (sample_ids,), num_warmup_iters=3)
        return model, lambda ids: graphed(ids)
    return model, lambda ids: model(ids)


def _hf(spec):
    import archsearch.kernels as K

    # Probe mamba-ssm BEFORE transformers imports its NemotronH module: that import resolves mamba-ssm's kernels
    # once, at decoration time, and mamba-ssm imports only once the placeholder for its missing CUDA extension
    # is in sys.modules (which the probe puts there). The other order silently runs transformers' PyTorch scan.
    K.describe()
    import transformers
    from transformers import NemotronHConfig, NemotronHForCausalLM
    from transformers.models.nemotron_h import modeling_nemotron_h as hf_module

    from archsearch.hf import export_hf_config
    # the wrapped scan's closure holds what the decorator resolved: mamba-ssm's function or the PyTorch one
    # In training mode transformers calls mamba-ssm's fused split-conv1d-scan path, which needs the causal-conv1d
    # package (not installable there: it did not finish compiling in 500 s) and fails with "'NoneType' object is
    # not callable". Its PyTorch stand-in returns None, which sends the mixer down the unfused path: PyTorch conv1d
    # + mamba-ssm's Triton chunk scan, the configuration ../shared/GPU-NOTES.md measured.
    hf_module.mamba2_split_conv1d_scan_combined = lambda *args, **kwargs: None
    resolved = {getattr(c.cell_contents, "__module__", "") for c in (hf_module.mamba2_chunk_scan.__closure__ or ())
                if callable(c.cell_contents)}
    print("transformers NemotronH scan resolved to:", sorted(resolved), file=sys.stderr)
    config = NemotronHConfig.from_dict(export_hf_config(spec, "nemotron_h"))
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = NemotronHForCausalLM(config)
    model = model.to(torch.bfloat16).train()
    return model, lambda ids: model(input_ids=ids, use_cache=False).logits, transformers.__version__


def train_step_row(model_name: str, impl: str, batch: int, seq: int, steps: int, warmup: int,
                   compile_mode: str) -> dict:
    from archsearch.kernels import backends_used, reset_backends_used
    from archsearch.spec import count_parameters

    spec = _spec(model_name)
    row = dict(model=model_name, impl=impl, batch=batch, seq=seq, compile=compile_mode, steps=steps)
    gen = torch.Generator(device="cuda").manual_seed(0)
    ids = torch.randint(0, spec.vocab_size, (batch, seq), device="cuda", generator=gen)
    targets = torch.randint(0, spec.vocab_size, (batch, seq), device="cuda", generator=gen)
    reset_backends_used()
    if impl == "ours":
        model, forward = _ours(spec, compile_mode, ids)
    else:
        model, forward, row["transformers"] = _hf(spec)
    n_params = sum(p.numel() for p in model.parameters())
    counted = count_parameters(spec)
    row["params"] = n_params
    row["params_spec"] = counted.total
    row["params_mfu"] = counted.total - counted.embedding
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)

    def step():
        logits = forward(ids)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    t0 = time.perf_counter()
    for _ in range(warmup):
        loss = step()
    torch.cuda.synchronize()
    row["warmup_s"] = round(time.perf_counter() - t0, 1)
    row["loss_after_warmup"] = round(loss.item(), 4)
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    tokens_per_s = batch * seq * steps / elapsed
    row["step_ms"] = round(1000 * elapsed / steps, 1)
    row["tokens_per_s"] = round(tokens_per_s)
    row["mfu_pct"] = round(100 * 6 * row["params_mfu"] * tokens_per_s / (PEAK_TFLOPS * 1e12), 1)
    row["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 1)
    if impl == "ours":
        row["backends"] = backends_used()
    return row


def ssd_overhead_rows() -> list[dict]:
    """fwd+bwd of the SSD scan at the benchmark models' Mamba shapes: our registry entry vs mamba-ssm direct."""
    import triton

    import archsearch.kernels as K
    from archsearch.kernels import _optional

    module, reason = _optional.import_mamba("mamba_ssm.ops.triton.ssd_combined")
    if module is None:
        return [dict(ssd="unavailable", reason=reason)]
    rows = []
    for heads, groups in ((32, 8), (64, 8)):
        b, l, p, n, chunk = 4, 4096, 64, 128, 128
        g = torch.Generator(device="cuda").manual_seed(0)
        mk = lambda *s, **kw: torch.randn(*s, device="cuda", dtype=torch.bfloat16, generator=g, **kw)
        x, dt = mk(b, l, heads, p).requires_grad_(), mk(b, l, heads).requires_grad_()
        B, C = mk(b, l, groups, n).requires_grad_(), mk(b, l, groups, n).requires_grad_()
        A = -torch.rand(heads, device="cuda", generator=g).add(0.5).requires_grad_()
        D = torch.ones(heads, device="cuda").requires_grad_()
        dt_bias = torch.rand(heads, device="cuda", generator=g).sub(4).requires_grad_()
        dy = mk(b, l, heads, p)
        leaves = [x, dt, A, B, C, D, dt_bias]

        def ours():
            K.ssd_chunk_scan(x, dt, A, B, C, chunk, D=D, dt_bias=dt_bias, dt_softplus=True).backward(dy)

        def direct():
            module.mamba_chunk_scan_combined(x, dt, A, B, C, chunk, D=D, dt_bias=dt_bias,
                                             dt_softplus=True).backward(dy)

        times = {"direct": [], "ours": []}
        for _ in range(6):  # interleaved rounds: the op is host-bound here and single timings drift by 10-30%
            for name, fn in (("direct", direct), ("ours", ours)):
                times[name].append(triton.testing.do_bench(fn, warmup=10, rep=150, grad_to_none=leaves,
                                                           return_mode="median"))
        med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
        # what the dispatch itself costs on the host: argument checks + registry lookup, no kernel launched
        for _ in range(100):
            K.ssd._validate(x, dt, A, B, C, chunk, D, None, dt_bias, (0.0, float("inf")), None)
            K.registry.select("ssd_scan", **K.ssd.call_info(x, B))
        t0, n_calls = time.perf_counter(), 5000
        for _ in range(n_calls):
            K.ssd._validate(x, dt, A, B, C, chunk, D, None, dt_bias, (0.0, float("inf")), None)
            K.registry.select("ssd_scan", **K.ssd.call_info(x, B))
        dispatch_us = (time.perf_counter() - t0) / n_calls * 1e6
        rows.append(dict(ssd=f"b{b} L{l} h{heads} p{p} n{n} g{groups} chunk{chunk} fwd+bwd bf16",
                         direct_ms=round(med["direct"], 3), ours_ms=round(med["ours"], 3),
                         direct_rounds=[round(t, 3) for t in times["direct"]],
                         ours_rounds=[round(t, 3) for t in times["ours"]],
                         overhead_pct=round(100 * (med["ours"] / med["direct"] - 1), 1),
                         dispatch_host_us=round(dispatch_us, 1),
                         backend=K.backends_used().get("ssd_scan")))
    return rows


def environment() -> dict:
    import triton

    return dict(date=time.strftime("%Y-%m-%d"), device=torch.cuda.get_device_name(), torch=torch.__version__,
                triton=triton.__version__, cuda=torch.version.cuda)


def run_all(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = dict(environment=environment(), rows=[])
    print(json.dumps(results["environment"]), flush=True)
    for model, impl, batch, compile_mode in ROWS:
        if (args.only and model not in args.only) or compile_mode not in args.variants:
            continue
        if args.in_process:  # one process: Triton's autotuning is paid once per shape, not once per row
            try:
                row = train_step_row(model, impl, batch, args.seq, args.steps, args.warmup, compile_mode)
            except Exception as err:  # an OOM in one row must not hide the others
                row = dict(model=model, impl=impl, batch=batch, compile=compile_mode,
                           error=f"{type(err).__name__}: {err}"[:1500])
            gc.collect()
            torch.cuda.empty_cache()
        else:
            cmd = [sys.executable, __file__, "--model", model, "--impl", impl, "--batch", str(batch), "--seq",
                   str(args.seq), "--steps", str(args.steps), "--warmup", str(args.warmup), "--compile",
                   compile_mode]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.row_timeout)
            line = next((x for x in reversed(proc.stdout.splitlines()) if x.startswith("{")), None)
            row = json.loads(line) if line else dict(model=model, impl=impl, batch=batch, compile=compile_mode,
                                                     error=(proc.stderr or proc.stdout)[-1500:])
        results["rows"].append(row)
        print(json.dumps(row), flush=True)
        (out / "bench_model.json").write_text(json.dumps(results, indent=1))
    if args.no_ssd:
        return
    results["ssd_overhead"] = ssd_overhead_rows()
    print(json.dumps(results["ssd_overhead"]), flush=True)
    (out / "bench_model.json").write_text(json.dumps(results, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--all", action="store_true")
    parser.add_argument("--ssd-overhead", action="store_true")
    parser.add_argument("--model", default="nemotron-h-188m")
    parser.add_argument("--impl", choices=("ours", "hf"), default="ours")
    parser.add_argument("--compile", choices=("none", "layers", "graphs"), default="none")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--in-process", action="store_true", help="with --all: every row in this process")
    parser.add_argument("--variants", nargs="*", default=["none", "layers", "graphs"],
                        help="with --all: compile modes to run")
    parser.add_argument("--only", nargs="*", help="with --all: only these models")
    parser.add_argument("--no-ssd", action="store_true", help="with --all: skip the SSD overhead rows")
    parser.add_argument("--row-timeout", type=int, default=240)
    parser.add_argument("--out", default=os.environ.get("OUT", "bench-out"))
    args = parser.parse_args()
    if args.all:
        run_all(args)
    elif args.ssd_overhead:
        print(json.dumps(ssd_overhead_rows()))
    else:
        print(json.dumps(train_step_row(args.model, args.impl, args.batch, args.seq, args.steps, args.warmup,
                                        args.compile)), flush=True)


if __name__ == "__main__":
    main()
