"""Compile time of a pattern search: the first step (forward + backward) of trial-d768 under each given pattern,
compiled as one program or layer by layer (archsearch.training.compile_session), in one process. The inductor
cache folder (TORCHINDUCTOR_CACHE_DIR) decides cold or warm.

    TORCHINDUCTOR_CACHE_DIR=/tmp/c python bench/compile_scope_time.py layers 'M-L-M-*-M-M-L-M-*-M-*-M-' ...
    (--device cuda --batch 16 --seq 2048 on a GPU; CPU default: batch 1 x 64 tokens)
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch

from archsearch.builder import build
from archsearch.spec import ModelSpec, load_spec
from archsearch.training import compile_session
from archsearch.training.recipe import COMPILE_SCOPES


def step(forward, ids, device) -> float:
    began = time.perf_counter()
    autocast = torch.autocast("cuda", torch.bfloat16) if device == "cuda" else contextlib.nullcontext()
    with autocast:
        loss = forward(ids).float().square().mean()
    loss.backward()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scope", choices=COMPILE_SCOPES)
    parser.add_argument("patterns", nargs="+")
    parser.add_argument("--spec", default="bench/specs/trial-d768.yaml")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seq", type=int, default=64)
    args = parser.parse_args()
    doc = load_spec(args.spec).to_dict()
    ids = torch.randint(0, doc["vocab_size"], (args.batch, args.seq), device=args.device)
    for pattern in args.patterns:
        doc["pattern"] = pattern
        spec = ModelSpec.model_validate(doc)
        model = build(spec, args.device)
        if args.scope == "model":
            forward, _ = compile_session.compile_model(model, pattern)
        else:
            keys = [compile_session.signature(layer=compile_session.layer_program(spec, layer.symbol))
                    for layer in spec.layers]
            forward, _ = compile_session.compile_layers(model, keys)
        first = step(forward, ids, args.device)
        print(f"{args.scope} {pattern}: first step {first:.1f} s, second {step(forward, ids, args.device):.2f} s",
              flush=True)


if __name__ == "__main__":
    main()
