"""What is alive at the prefill peak (GPU): the caching allocator's history over one prefill chunk, replayed to
the moment of the largest allocation, with the live blocks summed by the source line that allocated them.

Finds the terms a memory estimate misses (bench/RESULTS.md, "Measured vs estimated peak memory"):

  python3 bench/probe_peak.py mamba2-tiny --d-model 1024 --vocab 32000 --context 16384 --batch 16 --chunk 2048

The chunk recorded is the second (it starts after the first, so states are carried in as when serving).
"""

from __future__ import annotations

import argparse
import collections
import sys

import torch

import archsearch
from archsearch.checks import CheckSettings, MemoryModel
from archsearch.spec import load_spec, parse_spec

OURS = ("archsearch", "/blocks/", "/kernels/", "mamba_ssm", "torch/nn/functional")


def source_of(frames: list[dict]) -> str:
    """The innermost frame in our code or mamba-ssm (else the innermost frame at all)."""
    for frame in frames:
        if any(part in frame["filename"] for part in OURS):
            return f"{frame['filename'].split('/')[-1]}:{frame['line']} {frame['name']}"
    return f"{frames[0]['filename'].split('/')[-1]}:{frames[0]['line']}" if frames else "?"


def live_at_peak(events: list[dict]) -> tuple[int, dict[int, dict]]:
    """Replay alloc/free events; the highest total allocated meanwhile and the blocks live at that moment."""
    live: dict[int, dict] = {}
    total = peak = 0
    at_peak: dict[int, dict] = {}
    for event in events:
        action = event["action"]
        if action == "alloc":
            live[event["addr"]] = event
            total += event["size"]
            if total > peak:
                peak, at_peak = total, dict(live)
        elif action == "free_completed" and event["addr"] in live:
            total -= live.pop(event["addr"])["size"]
    return peak, at_peak


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec")
    parser.add_argument("--d-model", type=int)
    parser.add_argument("--vocab", type=int)
    parser.add_argument("--context", type=int, default=16384)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--chunk", type=int, default=2048)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args(argv)
    changes = {"max_context": max(args.context, load_spec(args.spec).max_context)}
    if args.d_model:
        changes["d_model"] = args.d_model
    if args.vocab:
        changes["vocab_size"] = args.vocab
    spec = parse_spec({**load_spec(args.spec).to_dict(), **changes})
    settings = CheckSettings(prefill_chunk=args.chunk)
    device = torch.device("cuda")
    model = archsearch.build(spec, device=device, dtype=torch.bfloat16, seed=0).eval()
    cache = model.allocate_cache(args.batch, args.context, dtype=torch.bfloat16)
    ids = torch.randint(0, spec.vocab_size, (args.batch, 2 * args.chunk), device=device)
    model.prefill(ids[:, :args.chunk], cache)  # compiles, autotunes, and fills the first chunk
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    baseline = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    torch.cuda.memory._record_memory_history(max_entries=1_000_000, stacks="python")
    model.prefill(ids[:, args.chunk:], cache)
    torch.cuda.synchronize()
    snapshot = torch.cuda.memory._snapshot()
    torch.cuda.memory._record_memory_history(enabled=None)
    measured = torch.cuda.max_memory_allocated() - baseline
    events = [e for trace in snapshot["device_traces"] for e in trace]
    peak, live = live_at_peak(events)
    by_source: dict[str, list[int]] = collections.defaultdict(list)
    for event in live.values():
        by_source[source_of(event.get("frames", []))].append(event["size"])
    estimate = MemoryModel(spec, settings.with_(kernels="fused")).workspace_by_symbol(args.context)
    print(f"{spec.name} d_model {spec.d_model} batch {args.batch} chunk {args.chunk} context {args.context}")
    print(f"allocator transient peak above the start of the chunk: {measured / 2**20:.1f} MiB "
          f"(replayed: {peak / 2**20:.1f} MiB, {len(events)} events)")
    print("estimated workspace per symbol (fused):",
          {k: f"{v * args.batch / 2**20:.1f} MiB" for k, v in estimate.items()})
    tokens = args.batch * args.chunk
    rows = sorted(by_source.items(), key=lambda kv: -sum(kv[1]))
    for source, sizes in rows[:args.top]:
        total = sum(sizes)
        print(f"  {total / 2**20:9.1f} MiB  {total / tokens:8.0f} B/token  x{len(sizes):<3d} {source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
