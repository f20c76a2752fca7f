"""The data and training steps of bench/gpu/compress_finetune.sh (issues 19 and 20) that the CLI has no command for.

    python3 bench/gpu/compress_finetune_steps.py text OUT.jsonl --max-mb 24     # this machine's Python sources
    python3 bench/gpu/compress_finetune_steps.py spec IN.yaml OUT.yaml --vocab 258
    python3 bench/gpu/compress_finetune_steps.py pairs OUT.jsonl --languages de,fr,es,pt_BR   # here, once
    python3 bench/gpu/compress_finetune_steps.py scratch COMPRESS_DIR --data TEXT.jsonl --multiple 10 -o DIR

`text`: the .py files of the running interpreter's standard library and site-packages as a JSONL corpus for the
`text` task (one row per file, in a fixed hash order so the held-out tail mixes packages). `spec`: a spec file with
another vocabulary (seq2seq needs 258 ids: bytes, separator, end; the byte-vocabulary trial spec has 256). `pairs`:
a small gettext parallel corpus (archsearch.training.tasks.gettext_source) sampled by English message, so every
language of a message stays in that message's split. `scratch`: the best child of a finished `archsearch compress`
trained from random weights on a multiple of its distillation tokens, stopped early once its validation loss
matches the distilled child's (or at a wall-clock deadline); prints the run's record as JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import sysconfig
import time
from collections import defaultdict
from pathlib import Path


def _order(key: str) -> bytes:
    return hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()


# ------------------------------------------------------------------------------------------ text
def python_roots() -> list[Path]:
    """The standard library and every site-packages folder on sys.path (setup.sh installs into /tmp/site)."""
    roots = {Path(sysconfig.get_paths()[k]) for k in ("stdlib", "purelib", "platlib")}
    roots |= {Path(p) for p in sys.path if p and ("site-packages" in p or p.startswith("/tmp/site"))}
    return sorted(r.resolve() for r in roots if r.is_dir())


def gather_text(out: Path, max_mb: float, max_file_kb: int = 256) -> dict:
    """Write up to `max_mb` MB of Python sources as {"text": ...} rows; files over `max_file_kb` (generated tables)
    and files that are not UTF-8 are left out."""
    files: dict[str, Path] = {}
    for root in python_roots():
        for path in root.rglob("*.py"):
            if path.is_file() and not path.is_symlink():
                files.setdefault(str(path.resolve()), path)
    budget, written, n_files = int(max_mb * 1e6), 0, 0
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for name in sorted(files, key=_order):
            try:
                if files[name].stat().st_size > max_file_kb * 1024:
                    continue
                text = files[name].read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            if not text.strip():
                continue
            f.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
            written += len(text.encode("utf-8"))
            n_files += 1
            if written >= budget:
                break
    tmp.replace(out)
    return {"files": n_files, "bytes": written, "candidates": len(files), "roots": [str(r) for r in python_roots()]}


# ------------------------------------------------------------------------------------------ spec
def respec(src: Path, out: Path, vocab: int, name: str | None) -> dict:
    from archsearch.spec import load_spec, parse_spec
    from archsearch.spec.accounting import count_parameters
    import yaml

    data = load_spec(str(src)).to_dict()
    data["vocab_size"] = vocab
    data["name"] = name or f"{data['name']}-v{vocab}"
    spec = parse_spec(data)
    out.write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False), encoding="utf-8")
    return {"spec": str(out), "name": spec.name, "n_params": count_parameters(spec).total}


# ------------------------------------------------------------------------------------------ pairs
def sample_pairs(out: Path, languages: list[str], max_chars: int, per_split: dict[str, int], root: str) -> dict:
    """The catalogs' pairs of `languages`, keeping the English messages of each split up to `per_split[split]`
    (a fixed hash order); every language's translation of a kept message is kept."""
    from archsearch.training.tasks.gettext_source import read_catalogs

    by_message: dict[str, list] = defaultdict(list)
    for pair in read_catalogs(root, languages, max_chars):
        by_message[pair.source].append(pair)
    kept: list = []
    counts: dict[str, dict[str, int]] = {}
    for split, limit in per_split.items():
        messages = sorted((m for m, ps in by_message.items() if ps[0].split == split), key=_order)[:limit]
        pairs = [p for m in messages for p in by_message[m]]
        counts[split] = {"messages": len(messages), "pairs": len(pairs)}
        kept += pairs
    random.Random(0).shuffle(kept)
    with open(out, "w", encoding="utf-8") as f:
        for pair in kept:
            f.write(json.dumps(pair.to_dict(), ensure_ascii=False) + "\n")
    return {"file": str(out), "languages": languages, "max_chars": max_chars, "splits": counts,
            "bytes": out.stat().st_size}


# ------------------------------------------------------------------------------------------ scratch
def scratch(compress_dir: Path, data: str, multiple: float, out: Path, *, match: bool, deadline_s: float | None,
            eval_every: int | None, lr: float, device: str | None) -> dict:
    """The distilled best child's architecture trained from scratch on `multiple` x its distillation tokens (same
    batch, sequence length and validation batches), on the parent's text corpus `data`."""
    from archsearch.spec import load_spec
    from archsearch.training import Recipe, TaskSpec, TrainingStopped, train

    summary = json.loads((compress_dir / "compression.json").read_text(encoding="utf-8"))
    final = summary.get("final")
    if not final or final.get("status") != "completed":
        raise SystemExit(f"error: {compress_dir}/compression.json has no completed final distillation")
    best = Path(final["out_dir"])
    spec = load_spec(str(best / "spec.yaml"))
    task = json.loads((best / "task.json").read_text(encoding="utf-8"))
    task = {**task, "options": {**task.get("options", {}), "data_files": data}}
    child_recipe = json.loads((best / "recipe.json").read_text(encoding="utf-8"))
    steps = max(1, round(final["steps"] * multiple))
    target = (final.get("metrics") or {}).get("val_loss")
    recipe = Recipe.model_validate({
        "steps": steps, "batch_size": child_recipe["batch_size"], "seq_len": child_recipe["seq_len"],
        "eval_batches": child_recipe["eval_batches"], "precision": child_recipe.get("precision"), "lr": lr,
        "min_lr": lr / 10, "warmup": min(20, max(1, steps // 10)), "seed": 0,
        "eval_every": eval_every or max(1, steps // 20)})
    started = time.monotonic()
    stop_reason = None

    def callback(step: int, metrics: dict) -> None:
        nonlocal stop_reason
        if match and target is not None and metrics.get("val_loss", float("inf")) <= target:
            stop_reason = f"matched the distilled child's val_loss {target:.4f} at step {step}"
            raise TrainingStopped(stop_reason)
        if deadline_s is not None and time.monotonic() - started > deadline_s:
            stop_reason = f"wall-clock deadline {deadline_s:.0f} s at step {step}"
            raise TrainingStopped(stop_reason)

    try:
        record = train(spec, TaskSpec.model_validate(task), recipe, out_dir=out, callback=callback, progress=False,
                       device=device).to_dict()
    except TrainingStopped as stopped:
        record = stopped.result.to_dict() if stopped.result is not None else {"status": "stopped"}
    record["scratch"] = {"multiple": multiple, "planned_steps": steps, "distilled_val_loss": target,
                         "distilled_tokens": final.get("tokens"), "stop_reason": stop_reason,
                         "matched": bool(stop_reason and stop_reason.startswith("matched"))}
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("text")
    p.add_argument("out", type=Path)
    p.add_argument("--max-mb", type=float, default=24.0)
    p = sub.add_parser("spec")
    p.add_argument("src", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--vocab", type=int, required=True)
    p.add_argument("--name", default=None)
    p = sub.add_parser("pairs")
    p.add_argument("out", type=Path)
    p.add_argument("--languages", default="de,fr,es,pt_BR")
    p.add_argument("--max-chars", type=int, default=32)
    p.add_argument("--train-messages", type=int, default=1500)
    p.add_argument("--held-out-messages", type=int, default=150, help="in each of validation and test")
    p.add_argument("--root", default="/usr/share/locale")
    p = sub.add_parser("scratch")
    p.add_argument("compress_dir", type=Path)
    p.add_argument("--data", required=True, help="the parent's text corpus (JSONL)")
    p.add_argument("--multiple", type=float, default=1.0, help="x the final distillation's tokens")
    p.add_argument("--match", action="store_true", help="stop once val_loss <= the distilled child's")
    p.add_argument("--deadline-s", type=float, default=None)
    p.add_argument("--eval-every", type=int, default=None)
    p.add_argument("--lr", type=float, default=1.5e-3)
    p.add_argument("--device", default=None)
    p.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "text":
        result = gather_text(args.out, args.max_mb)
    elif args.command == "spec":
        result = respec(args.src, args.out, args.vocab, args.name)
    elif args.command == "pairs":
        result = sample_pairs(args.out, [s for s in args.languages.split(",") if s], args.max_chars,
                              {"train": args.train_messages, "validation": args.held_out_messages,
                               "test": args.held_out_messages}, args.root)
    else:
        result = scratch(args.compress_dir, args.data, args.multiple, args.output, match=args.match,
                         deadline_s=args.deadline_s, eval_every=args.eval_every, lr=args.lr, device=args.device)
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
