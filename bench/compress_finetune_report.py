"""Tables for bench/RESULTS.md from the files bench/gpu/compress_finetune.sh leaves in $OUT (issues 19 and 20).

    .venv/bin/python bench/compress_finetune_report.py FILES_AT [--json OUT.json] [--markdown OUT.md]

Reads phases.jsonl (each phase's wall seconds), parent-result.json, compression.json (the compression study's
summary), 4-scratch-a.out / 5-scratch-b.out (the child from scratch) and ablate.db (the finetuning ablation as
`archsearch ablate --storage` wrote it). Prints the markdown; every number comes from those files. A missing phase
is reported as missing, not guessed.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sqlite3
import sys
from pathlib import Path
from typing import Any


def read_json(path: Path) -> dict | None:
    """A JSON object from a file; the last line that parses, for logs that hold one object per run."""
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8", errors="replace").strip()
    try:
        return json.loads(text)
    except ValueError:
        for line in reversed(text.splitlines()):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict):
                return data
    return None


def phases(folder: Path) -> dict[str, dict]:
    path = folder / "phases.jsonl"
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {r["phase"]: r for r in rows}


def crossing(curve: list[dict], target: float) -> float | None:
    """Tokens at which a validation curve first reaches `target` (linear between evaluations), None if never."""
    points = [(p["tokens"], p["val_loss"]) for p in curve if p.get("val_loss") is not None]
    for (t0, v0), (t1, v1) in zip([(0, math.inf)] + points, points):
        if v1 <= target:
            if not math.isfinite(v0) or v0 == v1:
                return float(t1)
            return t0 + (t1 - t0) * (v0 - target) / (v0 - v1)
    return None


# ------------------------------------------------------------------------------------------ issue 19
def compression_report(folder: Path) -> dict[str, Any]:
    steps = phases(folder)
    parent = read_json(folder / "parent-result.json")
    summary = read_json(folder / "compression.json")
    out: dict[str, Any] = {"phases": steps, "device": _device(folder)}
    if parent is None:
        out["missing"] = "parent-result.json (the parent did not finish)"
        return out
    out["parent"] = _model_row("parent", parent, steps.get("1-parent"))
    recipe = parent.get("recipe") or {}
    out["eval_set"] = {k: recipe.get(k) for k in ("eval_batches", "batch_size", "seq_len")}
    if summary is None:
        out["missing"] = "compression.json (the compression study did not finish)"
        return out
    counts = summary.get("counts") or {}
    ranked = summary.get("ranked") or []
    recipe = (read_json(folder / "best-child-result.json") or {}).get("recipe") or {}
    if any(recipe.get(k) != v for k, v in out["eval_set"].items()):  # the rows would not compare
        out["eval_set_differs"] = {k: recipe.get(k) for k in out["eval_set"]}
    short = _short_recipe(folder)
    screened = sum(counts.values())
    distilled = [r for r in ranked if r.get("val_loss") is not None]
    search_tokens = len(distilled) * short.get("tokens_per_candidate", 0)
    out["search"] = {"screened": screened, "passed": screened - counts.get("infeasible", 0),
                     "over_the_bound": counts.get("infeasible", 0), "counts": counts,
                     "kendall_tau": summary.get("kendall_tau"), "candidate_tokens": search_tokens,
                     "ranked": ranked, "best": summary.get("best"), "seconds": _secs(steps, "2-compress")}
    final = summary.get("final") or {}
    metrics = final.get("metrics") or {}
    distil_tokens = final.get("tokens")
    rows = [out["parent"],
            {"model": "best child, sliced (no training)", "n_params": final.get("n_params"), "tokens": 0,
             "val_loss": metrics.get("zero_shot_loss")},
            {"model": "best child, distilled", "n_params": final.get("n_params"), "tokens": distil_tokens,
             "val_loss": metrics.get("val_loss"), "bits_per_byte": metrics.get("bits_per_byte"),
             "kl_to_teacher": metrics.get("kl_to_teacher"),
             "share_of_parent_tokens": _ratio(distil_tokens, parent.get("tokens")),
             "wall_s": (read_json(folder / "best-child-result.json") or {}).get("wall_time_s")}]
    for name, label in (("4-scratch-a", "child from scratch, same tokens"),
                        ("5-scratch-b", "child from scratch, up to 10x tokens")):
        record = read_json(folder / f"{name}.out")
        if record is None or "tokens" not in record:
            rows.append({"model": label, "missing": f"{name}.out", "seconds": _secs(steps, name)})
            continue
        row = _model_row(label, record, steps.get(name))
        row["status"] = record.get("status")
        row["stop_reason"] = (record.get("scratch") or {}).get("stop_reason")
        rows.append(row)
    out["models"] = rows
    target = metrics.get("val_loss")
    scratch_b = read_json(folder / "5-scratch-b.out") or {}
    if target is not None and scratch_b.get("curve") and distil_tokens:
        matched_at = crossing(scratch_b["curve"], target)
        out["saving"] = {"distilled_val_loss": target, "distil_tokens": distil_tokens,
                         "scratch_tokens_to_match": matched_at,
                         "scratch_tokens_trained": scratch_b.get("tokens"),
                         "x_fewer_tokens": _ratio(matched_at, distil_tokens),
                         "x_fewer_with_search": _ratio(matched_at, distil_tokens + search_tokens),
                         "at_least_x_fewer": None if matched_at is not None
                         else _ratio(scratch_b.get("tokens"), distil_tokens)}
    out["recipe_final"] = {k: recipe.get(k) for k in ("steps", "batch_size", "seq_len", "lr", "distill")}
    return out


def _short_recipe(folder: Path) -> dict[str, Any]:
    """The candidates' short distillation (steps x batch x seq_len), from the study's stored recipe."""
    db = folder / "compress.db"
    if not db.is_file():
        return {}
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "archsearch_studies" not in tables:
            return {}
        row = con.execute("SELECT study_file FROM archsearch_studies ORDER BY id DESC LIMIT 1").fetchone()
    recipe = (json.loads(row[0]) if row and row[0] else {}).get("recipe") or {}
    steps, batch, seq = recipe.get("steps"), recipe.get("batch_size"), recipe.get("seq_len")
    return {"recipe": recipe, "tokens_per_candidate": steps * batch * seq if steps and batch and seq else 0}


def _model_row(label: str, record: dict, phase: dict | None) -> dict[str, Any]:
    metrics = record.get("metrics") or {}
    return {"model": label, "n_params": record.get("n_params"), "steps": record.get("steps"),
            "tokens": record.get("tokens"), "val_loss": metrics.get("val_loss"),
            "bits_per_byte": metrics.get("bits_per_byte"), "tokens_per_s": record.get("tokens_per_s"),
            "wall_s": record.get("wall_time_s"), "phase_s": (phase or {}).get("seconds")}


# ------------------------------------------------------------------------------------------ issue 20
def ablation_report(folder: Path) -> dict[str, Any]:
    from archsearch.studies.stats import mean_ci

    db = folder / "ablate.db"
    out: dict[str, Any] = {"seconds": _secs(phases(folder), "3-ablate")}
    probe = read_json(folder / "3-finetune-probe.out")
    if probe is not None:
        metrics = probe.get("metrics") or {}
        out["probe"] = {"status": probe.get("status"), "steps": probe.get("steps"), "wall_s": probe.get("wall_time_s"),
                        "chrf_pp": metrics.get("chrf_pp"), "exact_match": metrics.get("exact_match"),
                        "init_from": (probe.get("recipe") or {}).get("init_from")}
    if not db.is_file():
        out["missing"] = "ablate.db (the ablation did not finish)"
        partial = partial_ablation(folder / "3-ablate.out")
        if partial:
            out["partial"] = partial
        return out
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        head = con.execute("SELECT id, summary, task, recipe, metric, seeds FROM archsearch_ablations "
                           "ORDER BY id DESC LIMIT 1").fetchone()
        if head is None:
            out["missing"] = "no ablation stored in ablate.db"
            return out
        runs = con.execute("SELECT cell, is_base, seed, status, metrics, result, wall_time_s FROM "
                           "archsearch_ablation_runs WHERE ablation_id = ? ORDER BY id", (head[0],)).fetchall()
    summary, task, recipe = (json.loads(x) for x in head[1:4])
    out.update(metric=head[4], seeds=json.loads(head[5]), task=task, recipe=recipe)
    by_cell: dict[str, list] = {}
    for cell, is_base, seed, status, metrics, result, wall in runs:
        by_cell.setdefault(cell, []).append({"seed": seed, "status": status, "is_base": bool(is_base),
                                             "metrics": json.loads(metrics) if metrics else {},
                                             "tokens": (json.loads(result) if result else {}).get("tokens"),
                                             "wall_s": wall})
    base_runs = next((rs for rs in by_cell.values() if rs[0]["is_base"]), [])
    base_exact = {r["seed"]: r["metrics"].get("exact_match") for r in base_runs}
    rows = []
    for row in summary:
        cell_runs = by_cell.get(row["cell"], [])
        done = [r for r in cell_runs if r["status"] == "completed"]
        exact = [r["metrics"]["exact_match"] for r in done if r["metrics"].get("exact_match") is not None]
        exact_diff = [r["metrics"]["exact_match"] - base_exact[r["seed"]] for r in done
                      if r["metrics"].get("exact_match") is not None and base_exact.get(r["seed"]) is not None]
        loss = [r["metrics"]["val_loss"] for r in done if r["metrics"].get("val_loss") is not None]
        rows.append({"recipe": _recipe_name(row["cell"]), "is_base": row["is_base"], "chrf_pp": _ci(row),
                     "chrf_pp_diff": _ci(row.get("diff")) if not row["is_base"] else None,
                     "significant": row.get("significant"), "exact_match": mean_ci(exact).to_dict(),
                     "exact_match_diff": mean_ci(exact_diff).to_dict() if not row["is_base"] else None,
                     "val_loss": mean_ci(loss).to_dict(), "failed": row.get("failed", 0),
                     "seconds": sum(r["wall_s"] or 0.0 for r in cell_runs),
                     "tokens": sum(r["tokens"] or 0 for r in cell_runs)})
    out["recipes"] = rows
    return out


RUN_LINE = re.compile(r"^\s+(?P<cell>\S.*) seed (?P<seed>\d+): (?P<metric>\w+)=(?P<value>\S+) \((?P<secs>[\d.]+) s\)$")


def partial_ablation(log: Path) -> list[dict[str, Any]]:
    """The runs `archsearch ablate` printed before it was stopped (one line each): per cell the metric's mean and
    interval, and the difference to the base cell paired by seed. The first cell printed is the base."""
    from archsearch.studies.stats import mean_ci

    if not log.is_file():
        return []
    cells: dict[str, dict[int, float]] = {}
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        m = RUN_LINE.match(line)
        if m:
            try:
                cells.setdefault(m["cell"], {})[int(m["seed"])] = float(m["value"])
            except ValueError:
                continue
    if not cells:
        return []
    base = next(iter(cells.values()))
    return [{"recipe": _recipe_name(cell), "values": values, "mean": mean_ci(list(values.values())).to_dict(),
             "diff": mean_ci([v - base[s] for s, v in values.items() if s in base]).to_dict()}
            for cell, values in cells.items()]


def _recipe_name(cell: str) -> str:
    value = cell.split("=", 1)[1] if cell.startswith("task.transforms=") else cell
    return "baseline (no transform)" if value in ("None", "none", "", "[]") else value


def _ci(stats: dict | None) -> dict | None:
    return None if stats is None else {k: stats.get(k) for k in ("n", "mean", "sd", "ci95")}


# ------------------------------------------------------------------------------------------ markdown
def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return "-"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) >= 1000):
        return f"{int(value):,}"
    return f"{value:.{digits}g}"


def _pm(stats: dict | None, digits: int = 3, scale: float = 1.0) -> str:
    if not stats or stats.get("mean") is None or not math.isfinite(stats["mean"]):
        return "-"
    mean = stats["mean"] * scale
    half = stats.get("ci95")
    return f"{mean:.{digits}g}" if half is None else f"{mean:.{digits}g} ± {half * scale:.{digits}g}"


def markdown(comp: dict[str, Any], abl: dict[str, Any]) -> str:
    lines = [f"Device: {comp.get('device') or '-'}", ""]
    if "missing" in comp and "parent" not in comp:
        return "\n".join(lines + [f"Issue 19: missing {comp['missing']}"])
    ev = comp.get("eval_set") or {}
    same = ("the same" if "eval_set_differs" not in comp else
            f"NOT the same (the distilled child: {comp['eval_set_differs']})")
    lines += [f"**Issue 19: compression of the parent** (validation loss on {same} {ev.get('eval_batches')} x "
              f"{ev.get('batch_size')} held-out sequences of {_num(ev.get('seq_len'))} tokens for every row)", "",
              "| model | params | tokens | val loss | bits/byte | wall s |", "| --- | --- | --- | --- | --- | --- |"]
    for r in comp.get("models", [comp["parent"]]):
        if "missing" in r:
            lines.append(f"| {r['model']} | missing ({r['missing']}) | | | | {_num(r.get('seconds'))} |")
            continue
        note = f" ({r['stop_reason']})" if r.get("stop_reason") else ""
        lines.append(f"| {r['model']}{note} | {_num(r.get('n_params'))} | {_num(r.get('tokens'))} | "
                     f"{_num(r.get('val_loss'))} | {_num(r.get('bits_per_byte'))} | {_num(r.get('wall_s'), 3)} |")
    if comp.get("missing"):
        lines += ["", f"Missing: {comp['missing']}."]
    search = comp.get("search")
    if search:
        lines += ["", f"Candidates screened: {search['screened']}; over the parameter bound: "
                      f"{search['over_the_bound']}; distilled and ranked: {len(search['ranked'])} "
                      f"({_num(search['candidate_tokens'])} tokens in all); Kendall tau of the distilled vs "
                      f"zero-shot ranking: {_num(search['kendall_tau'], 3)}; compression phase "
                      f"{_num(search['seconds'], 3)} s."]
    saving = comp.get("saving")
    if saving:
        if saving["scratch_tokens_to_match"] is not None:
            lines.append(f"Tokens saved: from scratch the child needs {_num(saving['scratch_tokens_to_match'])} "
                         f"tokens to reach the distilled child's val loss {_num(saving['distilled_val_loss'])}: "
                         f"{_num(saving['x_fewer_tokens'], 3)}x the distillation's {_num(saving['distil_tokens'])} "
                         f"({_num(saving['x_fewer_with_search'], 3)}x counting the candidates' distillation too).")
        else:
            lines.append(f"Tokens saved: from scratch the child did not reach the distilled child's val loss "
                         f"{_num(saving['distilled_val_loss'])} in {_num(saving['scratch_tokens_trained'])} tokens: "
                         f"at least {_num(saving['at_least_x_fewer'], 3)}x the distillation's tokens.")
    step_rows = comp.get("phases") or {}
    if step_rows:
        lines += ["", "| phase | rc | wall s |", "| --- | --- | --- |"]
        lines += [f"| {name} | {r.get('rc')} | {_num(r.get('seconds'), 4)} |" for name, r in step_rows.items()]
    lines += ["", "**Issue 20: finetuning the parent on gettext pairs (into English), reformulations vs baseline**",
              ""]
    probe = abl.get("probe")
    if probe:
        lines += [f"`train --init-from` probe ({probe.get('status')}): {_num(probe.get('steps'))} steps, chrF++ "
                  f"{_num(probe.get('chrf_pp'), 3)}, exact match {_num(probe.get('exact_match'), 3)}, "
                  f"{_num(probe.get('wall_s'), 3)} s (Triton autotuning at the seq2seq shapes included).", ""]
    if "missing" in abl:
        lines.append(f"missing: {abl['missing']}")
        if abl.get("partial"):
            lines += ["Runs finished before the stop (chrF++ from the log; Δ paired by seed with the first cell):", "",
                      "| recipe | runs | chrF++ | Δ vs baseline |", "| --- | --- | --- | --- |"]
            lines += [f"| {r['recipe']} | {r['mean']['n']} | {_pm(r['mean'])} | {_pm(r['diff'])} |"
                      for r in abl["partial"]]
        return "\n".join(lines)
    options = abl["task"].get("options", {})
    lines += [f"Task {abl['task']['name']} {json.dumps(options)}; recipe {json.dumps(abl['recipe'])}; seeds "
              f"{abl['seeds']}; chrF++ and exact match on the first {options.get('generate_examples')} test pairs, "
              "greedy decoding; ± is the 95% interval (Student t), differences paired by seed.", "",
              "| recipe | chrF++ | Δ chrF++ vs baseline | exact match % | Δ exact % | val loss | failed | wall s | "
              "tokens |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in abl["recipes"]:
        diff = "(baseline)" if r["is_base"] else _pm(r["chrf_pp_diff"]) + (" *" if r.get("significant") else "")
        exact_diff = "" if r["is_base"] else _pm(r["exact_match_diff"], scale=100)
        lines.append(f"| {r['recipe']} | {_pm(r['chrf_pp'])} | {diff} | {_pm(r['exact_match'], scale=100)} | "
                     f"{exact_diff} | {_pm(r['val_loss'])} | {r['failed']} | {_num(r['seconds'], 3)} | "
                     f"{_num(r['tokens'])} |")
    lines.append("")
    lines.append("(* the 95% interval of the paired difference excludes 0)")
    return "\n".join(lines)


def _device(folder: Path) -> str | None:
    path = folder / "device.txt"
    return path.read_text().strip() if path.is_file() else None


def _secs(steps: dict, name: str) -> float | None:
    return (steps.get(name) or {}).get("seconds")


def _ratio(a: Any, b: Any) -> float | None:
    return a / b if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Tables for bench/RESULTS.md from compress_finetune.sh's files.")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--json", type=Path, default=None, help="also write everything as one JSON object")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the markdown to this file")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        raise SystemExit(f"error: {args.folder} is not a folder")
    comp, abl = compression_report(args.folder), ablation_report(args.folder)
    text = markdown(comp, abl)
    if args.json is not None:
        args.json.write_text(json.dumps({"compression": comp, "ablation": abl}, indent=1, default=str))
    if args.markdown is not None:
        args.markdown.write_text(text + "\n", encoding="utf-8")
    sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
