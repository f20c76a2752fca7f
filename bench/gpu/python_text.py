"""Real text that is on every machine, offline: the Python sources of this interpreter's own installation (its
standard library and every site-packages folder on sys.path), gathered into JSON-lines files the `text` task reads
(archsearch/training/tasks/text.py: one {"text": ...} row per source file, so each file is one document ending in
the end-of-document id).

    python3 bench/gpu/python_text.py /tmp/archsearch-pytext --max-mb 8

Deterministic for a given installation: files are taken in the order of the SHA-256 of their path relative to the
folder they were found in (a fixed shuffle, so the validation tail, the task's last 5% of bytes, is a sample of the
same mix as the training part rather than one package), up to --max-mb of UTF-8 text. Files that are not UTF-8,
empty, or larger than --max-file-kb (generated tables) are skipped. A manifest (manifest.json) lists each file taken
with its size and content hash, so a run can say exactly what it trained on.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import site
import sys
import sysconfig
from pathlib import Path


def source_roots() -> list[Path]:
    """The standard library and the site-packages folders of this interpreter (and of sys.path), each once; a
    root inside another is dropped so no file is found twice."""
    candidates = [sysconfig.get_paths()[key] for key in ("stdlib", "purelib", "platlib")]
    candidates += list(getattr(site, "getsitepackages", lambda: [])())
    candidates += [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    roots: list[Path] = []
    for text in candidates:
        path = Path(text).resolve()
        if path.is_dir() and path not in roots:
            roots.append(path)
    return [r for r in roots if not any(other != r and other in r.parents for other in roots)]


def gather(roots: list[Path], max_bytes: int, max_file_bytes: int) -> list[tuple[str, str]]:
    """(label, text) of the chosen files, in the fixed hashed order, until max_bytes of UTF-8."""
    found: list[tuple[str, Path]] = []
    for root in roots:
        for path in root.rglob("*.py"):
            if path.is_file():
                found.append((f"{root.name}/{path.relative_to(root).as_posix()}", path))
    found.sort(key=lambda item: (hashlib.sha256(item[0].encode()).hexdigest(), item[0]))
    chosen, total = [], 0
    for label, path in found:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if not data.strip() or len(data) > max_file_bytes:
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        chosen.append((label, text))
        total += len(data)
        if total >= max_bytes:
            break
    return chosen


def write(out: Path, chosen: list[tuple[str, str]], shard_mb: float) -> dict:
    """JSON-lines shards of about shard_mb each (train-00000.jsonl, ...) and manifest.json; returns the manifest."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("train-*.jsonl"):
        old.unlink()  # a rerun with a smaller --max-mb must not leave shards of the earlier one
    shards, handle, size, index = [], None, 0, 0
    files = []
    for label, text in chosen:
        if handle is None or size >= shard_mb * 2**20:
            if handle is not None:
                handle.close()
            name = f"train-{index:05d}.jsonl"
            shards.append(name)
            handle = (out / name).open("w", encoding="utf-8")
            size, index = 0, index + 1
        line = json.dumps({"text": text}, ensure_ascii=False) + "\n"
        handle.write(line)
        size += len(line.encode("utf-8"))
        encoded = text.encode("utf-8")
        files.append({"file": label, "bytes": len(encoded), "sha256": hashlib.sha256(encoded).hexdigest()[:16]})
    if handle is not None:
        handle.close()
    manifest = {"python": sys.version.split()[0], "executable": sys.executable, "shards": shards,
                "n_files": len(files), "bytes": sum(f["bytes"] for f in files), "files": files}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for train-*.jsonl and manifest.json")
    parser.add_argument("--max-mb", type=float, default=8.0, help="UTF-8 text to gather, MiB (default 8)")
    parser.add_argument("--max-file-kb", type=float, default=512.0, help="skip larger source files (default 512)")
    parser.add_argument("--shard-mb", type=float, default=64.0, help="bytes per JSON-lines file, MiB (default 64)")
    args = parser.parse_args(argv)
    if not args.max_mb > 0 or not args.max_file_kb > 0 or not args.shard_mb > 0:
        parser.error("--max-mb, --max-file-kb and --shard-mb must be > 0")
    roots = source_roots()
    chosen = gather(roots, int(args.max_mb * 2**20), int(args.max_file_kb * 1024))
    if not chosen:
        print(f"no Python source found under {', '.join(map(str, roots)) or 'nothing'}", file=sys.stderr)
        return 1
    manifest = write(args.out, chosen, args.shard_mb)
    print(f"{manifest['n_files']} source files, {manifest['bytes'] / 2**20:.2f} MiB from "
          f"{', '.join(map(str, roots))} -> {args.out}/{{{','.join(manifest['shards'])}}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
