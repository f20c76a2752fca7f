"""The hybrid-design study of issue 16 (studies/hybrid-a10g.yaml), prepared and read back for bench/gpu/hybrid_study.sh.

    python3 bench/hybrid_study_report.py derive studies/hybrid-a10g.yaml WORK [--smoke] [--flops F] [--data GLOB]
        WORK/halving.yaml (the study as shipped, its storage WORK/halving.db) and WORK/full.yaml (the same grid,
        name hybrid-a10g-full, no halving and no early stop: every candidate to the full budget, WORK/full.db),
        and WORK/warmup.yaml (the two candidates with the most block kinds, 3 steps: run first, it warms the
        compile and autotune caches so that neither timed study pays a cold machine's start).
        Both list the generator grid's distinct patterns as `choices` (in the grid's order), one grid point each:
        archsearch reuses only a *completed* trial's result for a repeated candidate, so under halving a repeat of
        a stopped candidate would train again (and be ranked twice at its rung); --no-expand keeps the generator.
        --smoke swaps the proxy for a tiny one (d_model 32, seq 64) that trains on a CPU; the target, the
        candidates, the objectives and the halving rule stay as shipped.
    python3 bench/hybrid_study_report.py fidelity-args WORK/full.yaml
        the `study fidelity` choice of candidates: the front plus random others up to 8; a front of more than 10
        is replaced by 8 random candidates, so the phase stays bounded.
    python3 bench/hybrid_study_report.py report WORK --out DIR
        DIR/hybrid_study.json and DIR/hybrid_study.md: the fronts, GPU time of halving against the full budget, the
        hypervolume of each front on full-budget values, the fidelity figures, and the findings (attention share
        of the best, pure Mamba-2 vs hybrid vs pure attention, recall vs attention count).

Hypervolume: objectives turned to minimisation (val_loss, -recall, -decode tokens/s), each scaled to [0, 1] by
its minimum and maximum over every candidate of the full-budget study, reference point 1.1 in each (a little
worse than the worst candidate, so the worst still adds volume). Optuna (5.1) has no public hypervolume function,
so `hypervolume` below is an exact sweep, tested in tests/studies/test_hybrid_study.py.
"""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import sys
from pathlib import Path
from typing import Any

import yaml

FULL_NAME_SUFFIX = "-full"
WARMUP_NAME_SUFFIX = "-warmup"
WARMUP_STEPS = 3  # a first step (compile, autotune), timed steps, an evaluation and the recall probe at the end
FIDELITY_CANDIDATES = 8  # issue 16: fidelity against 4x longer training for >= 8 candidates
FRONT_CAP = 10  # a larger front is sampled (8 random) instead, or the fidelity phase outgrows its time
REFERENCE = 1.1  # normalised reference point, each objective
MIXERS = ("M", "*", "L")
ATTENTION = ("*", "L")

# The smoke proxy: the shipped blocks' kinds and proportions at d_model 32, so every phase runs on a CPU in minutes.
SMOKE_BASE = {
    "name": "hybrid-a10g-smoke-proxy", "vocab_size": 257, "d_model": 32, "max_context": 64,
    "pattern": "M-L-M-*-",
    "blocks": {"M": {"kind": "mamba2", "n_heads": 2, "head_dim": 16, "d_state": 16, "n_groups": 1, "chunk_size": 16},
               "L": {"kind": "attention", "n_heads": 2, "n_kv_heads": 2, "head_dim": 16, "window": 16},
               "*": {"kind": "attention", "n_heads": 2, "n_kv_heads": 2, "head_dim": 16},
               "-": {"kind": "mlp", "ffn_ratio": 4, "activation": "relu2"}}}
# 12 steps of 4 x 64 for the largest smoke candidate ((M-)x12), up to 37 for the smallest (*x8)
SMOKE_RECIPE = {"flops": 3.3e9, "batch_size": 4, "seq_len": 64, "precision": "fp32", "eval_batches": 2}


# ------------------------------------------------------------------------------------------------ derive
def distinct_patterns(source: Path) -> list[str]:
    """The compact patterns of the study's grid, each distinct proxy model once, in the grid's product order."""
    import itertools

    from archsearch.studies import load_study
    from archsearch.studies.dedup import canonical_hash
    from archsearch.studies.params import PointSource

    study = load_study(source)
    grid = study.space.grid()
    seen, patterns = set(), []
    for combo in itertools.product(*grid.values()):
        proxy = study.space.sample(PointSource(dict(zip(grid, combo)))).spec(study.base.to_dict(), "candidate")
        key = canonical_hash(proxy)
        if key not in seen:
            seen.add(key)
            patterns.append(proxy.pattern)
    return patterns


def derive(source: Path, work: Path, *, smoke: bool = False, flops: float | None = None,
           data: str | None = None, expand: bool = True, rungs: str | None = None,
           eval_every: int | float | None = None) -> tuple[Path, Path, Path]:
    """Write WORK/halving.yaml, WORK/full.yaml and WORK/warmup.yaml from the shipped study file; returns their
    paths. The warm-up study trains the two candidates holding the most block kinds for a few steps, so that the
    compile and autotune caches are warm before either timed phase: without it the first phase alone paid a cold
    machine's ~110 s (2026-12-06) and the GPU-time comparison favoured the second."""
    study = yaml.safe_load(source.read_text(encoding="utf-8"))
    work.mkdir(parents=True, exist_ok=True)
    patterns = distinct_patterns(source)
    if expand:
        study["space"] = {"pattern": {"choices": patterns}}
        study["n_trials"] = len(patterns)
    if smoke:
        study["base"] = dict(SMOKE_BASE)
        study["recipe"] = {**study["recipe"], **SMOKE_RECIPE}
        study["name"] = study["name"] + "-smoke"
    if flops is not None:
        study["recipe"] = {**study["recipe"], "flops": float(flops)}
    if data is not None:
        study["task"] = {**study["task"], "options": {**study["task"].get("options", {}), "data_files": data}}
    if eval_every is not None:
        study["recipe"] = {**study["recipe"], "eval_every": eval_every}
    if "halving" not in study:
        raise SystemExit(f"{source}: no `halving:` section; this comparison needs one")
    if rungs is not None:  # fractions as the study file writes them ("1/9"), checked when the study loads
        study["halving"] = {**study["halving"], "rungs": [yaml.safe_load(r) for r in rungs.split(",")]}
    halving = {**study, "storage": f"sqlite:///{(work / 'halving.db').resolve()}"}
    full = {k: v for k, v in study.items() if k != "halving"}
    full.update(name=study["name"] + FULL_NAME_SUFFIX, storage=f"sqlite:///{(work / 'full.db').resolve()}",
                early_stop={"enabled": False},
                description=f"{study.get('description', '')} (every candidate to the full budget, no halving)")
    # the two patterns with the most block symbols (M, L, *, -): a space of one choice searches nothing
    warm = sorted(patterns, key=lambda p: len(set(p) & {"M", "L", "*", "-"}), reverse=True)[:2]
    # a step count, not a share of the FLOPs budget: 1% of 2e14 buys no step of a 12-layer 100M candidate
    recipe = {k: v for k, v in full["recipe"].items() if k not in ("steps", "tokens", "flops")}
    warmup = {**full, "name": study["name"] + WARMUP_NAME_SUFFIX, "n_trials": len(warm),
              "storage": f"sqlite:///{(work / 'warmup.db').resolve()}",
              "space": {"pattern": {"choices": warm}},
              "recipe": {**recipe, "steps": WARMUP_STEPS, "eval_every": WARMUP_STEPS, "warmup": 1},
              "description": "the two candidates with the most block kinds, briefly: compiles and autotunes first"}
    paths = work / "halving.yaml", work / "full.yaml", work / "warmup.yaml"
    for path, data_ in zip(paths, (halving, full, warmup)):
        path.write_text(yaml.safe_dump(data_, sort_keys=False), encoding="utf-8")
    return paths


# ------------------------------------------------------------------------------------------------ fidelity choice
def fidelity_args(study_path: Path) -> list[str]:
    """`study fidelity` options: --front and --random K (K = 8 - front size), or --no-front --random 8 when the
    front has more than FRONT_CAP candidates. Uses archsearch's own choice of distinct completed candidates."""
    from archsearch.storage import Database, records
    from archsearch.studies import load_study
    from archsearch.studies.fidelity import choose

    study = load_study(study_path)
    with Database(study.file.storage) as db:
        record = records.study_by_name(db, study.name)
        if record is None:
            raise SystemExit(f"no stored study {study.name!r} in {study.file.storage}")
        rows = records.completed_summaries(db, record.id)
    front = choose(rows, list(study.file.objectives), front=True, random_k=0, seed=study.file.seed)
    if len(front) > FRONT_CAP:
        return ["--no-front", "--random", str(FIDELITY_CANDIDATES)]
    return ["--front", "--random", str(max(0, FIDELITY_CANDIDATES - len(front)))]


# ------------------------------------------------------------------------------------------------ hypervolume
def hypervolume_2d(points: list[tuple[float, float]], ref: tuple[float, float]) -> float:
    """Area dominated by `points` (minimisation) and bounded by `ref`."""
    area, best_y = 0.0, ref[1]
    for x, y in sorted(p for p in points if p[0] < ref[0] and p[1] < ref[1]):
        if y < best_y:
            area += (ref[0] - x) * (best_y - y)
            best_y = y
    return area


def hypervolume(points: list[tuple[float, float, float]], ref: tuple[float, float, float]) -> float:
    """Exact volume dominated by `points` (minimisation in all three) and bounded by `ref`: a sweep over the third
    coordinate, each slab's area the 2-D hypervolume of the points at or below it."""
    inside = sorted((p for p in points if all(v < r for v, r in zip(p, ref))), key=lambda p: p[2])
    volume = 0.0
    for i, point in enumerate(inside):
        top = inside[i + 1][2] if i + 1 < len(inside) else ref[2]
        if top > point[2]:
            volume += hypervolume_2d([(p[0], p[1]) for p in inside[:i + 1]], (ref[0], ref[1])) * (top - point[2])
    return volume


def dominates(a: list[float], b: list[float]) -> bool:
    """a dominates b, both in minimisation form."""
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def front_of(values: dict[str, list[float]]) -> list[str]:
    """Keys whose minimisation-form values no other dominates."""
    return [k for k, v in values.items() if not any(dominates(w, v) for j, w in values.items() if j != k)]


class Scale:
    """Objective values in minimisation form, scaled to [0, 1] over a reference set of candidates."""

    def __init__(self, directions: list[str], values: list[list[float]]):
        self.signs = [1.0 if d == "minimize" else -1.0 for d in directions]
        turned = [self.turn(v) for v in values]
        self.low = [min(col) for col in zip(*turned)]
        self.high = [max(col) for col in zip(*turned)]

    def turn(self, values: list[float]) -> list[float]:
        return [s * v for s, v in zip(self.signs, values)]

    def __call__(self, values: list[float]) -> tuple[float, ...]:
        # a constant objective (every candidate equal) adds the same factor to every volume: span 1, not 0
        return tuple((v - lo) / ((hi - lo) or 1.0) for v, lo, hi in zip(self.turn(values), self.low, self.high))


# ------------------------------------------------------------------------------------------------ reading the DBs
def _json(text: Any) -> Any:
    return json.loads(text) if isinstance(text, str) else text


def read_study(db: Path) -> dict[str, Any] | None:
    """The one study in `db`: its name, objectives and trial rows (None when the file or study is missing)."""
    if not db.is_file():
        return None
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        study = con.execute("SELECT id, name, objectives FROM archsearch_studies ORDER BY id LIMIT 1").fetchone()
        if study is None:
            return None
        trials = [dict(r) for r in con.execute(
            "SELECT number, status, pattern_compact, n_params, objectives, metrics, target, train_time_s, "
            "wall_time_s, duplicate_of, rung FROM archsearch_trials WHERE study_id = ? ORDER BY number",
            (study["id"],))]
        rungs = [dict(r) for r in con.execute(
            "SELECT trial_number, rung, fraction, step, decision FROM archsearch_rungs WHERE study_id = ? "
            "ORDER BY rung, trial_number", (study["id"],))]
        fidelity = [dict(r) for r in con.execute(
            "SELECT factor, candidates, noise, stats FROM archsearch_fidelity WHERE study_id = ? ORDER BY id",
            (study["id"],))]
        # each trial's own record of where its train() time went (Optuna user attribute "timing"; one study a file)
        timings = [_json(r[0]) for r in con.execute(
            "SELECT value_json FROM trial_user_attributes WHERE key = 'timing'")]
    except sqlite3.OperationalError as err:  # a phase killed before the tables were made
        print(f"{db}: {err}", file=sys.stderr)
        return None
    finally:
        con.close()
    for row in trials:
        for key in ("objectives", "metrics", "target"):
            row[key] = _json(row[key])
    for row in fidelity:
        for key in ("candidates", "noise", "stats"):
            row[key] = _json(row[key])
    return {"name": study["name"], "objectives": _json(study["objectives"]), "trials": trials, "rungs": rungs,
            "fidelity": fidelity, "timings": [t for t in timings if isinstance(t, dict)]}


def attention_count(pattern: str) -> tuple[int, int]:
    """(attention layers, mixer layers) of a compact pattern."""
    from archsearch.spec import expand_pattern

    layers = list(expand_pattern(pattern))
    return sum(s in ATTENTION for s in layers), sum(s in MIXERS for s in layers)


def kind_of(pattern: str) -> str:
    attention, mixers = attention_count(pattern)
    return "pure Mamba-2" if attention == 0 else "pure attention" if attention == mixers else "hybrid"


def candidates(study: dict[str, Any], statuses=("completed",)) -> dict[str, dict[str, Any]]:
    """Distinct trained candidates by pattern (a duplicate trial adds nothing)."""
    out = {}
    for row in study["trials"]:
        if row["status"] in statuses and row["objectives"] and row["pattern_compact"] not in out:
            out[row["pattern_compact"]] = row
    return out


def time_of(study: dict[str, Any]) -> dict[str, Any]:
    """GPU time a study spent: the sum of its trials' time inside train() and of their whole wall time."""
    trained = [r for r in study["trials"] if r["status"] != "duplicate"]
    train_time = sum(r["train_time_s"] or 0.0 for r in trained)
    return {"trials": len(study["trials"]), "trained_trials": len(trained),
            "mean_train_time_s": train_time / len(trained) if trained else None,
            "train_time_s": train_time,
            "trial_wall_s": sum(r["wall_time_s"] or 0.0 for r in trained),
            "statuses": {s: sum(r["status"] == s for r in study["trials"]) for s in
                         sorted({r["status"] for r in study["trials"]})}}


def _row(row: dict[str, Any], metrics: list[str]) -> dict[str, Any]:
    attention, mixers = attention_count(row["pattern_compact"])
    target = row["target"] or {}
    out = {"trial": row["number"], "pattern": row["pattern_compact"], "kind": kind_of(row["pattern_compact"]),
           "attention_layers": attention, "mixers": mixers, "attention_share": attention / mixers if mixers else 0.0,
           "proxy_params": row["n_params"], "target_params": target.get("n_params"),
           "target_memory_gib": (target["memory_bytes"] / 2**30) if target.get("memory_bytes") else None}
    out.update(dict(zip(metrics, row["objectives"])))
    return out


# ------------------------------------------------------------------------------------------------ report
def build_report(work: Path) -> dict[str, Any]:
    full, halving = read_study(work / "full.db"), read_study(work / "halving.db")
    phases = _json((work / "phases.json").read_text()) if (work / "phases.json").is_file() else {}
    report: dict[str, Any] = {"phases": phases, "reference_point": REFERENCE,
                              "hypervolume_note": "objectives as minimisation (val_loss, -recall, -decode tok/s), "
                                                  "each scaled to [0, 1] over the full-budget study's candidates; "
                                                  f"reference point {REFERENCE} in each"}
    if full is None:
        report["error"] = "no full-budget study (phase a did not store one)"
        return report
    metrics = [o["metric"] for o in full["objectives"]]
    directions = [o["direction"] for o in full["objectives"]]
    done = candidates(full)
    scale = Scale(directions, [r["objectives"] for r in done.values()])
    turned = {p: scale.turn(r["objectives"]) for p, r in done.items()}
    full_front = front_of(turned)
    report["full"] = {"study": full["name"], "time": time_of(full), "distinct_completed": len(done),
                      "time_parts": time_parts(full, phases.get("full", {}).get("wall_s")),
                      "front": [_row(done[p], metrics) for p in full_front],
                      "hypervolume": hypervolume([scale(done[p]["objectives"]) for p in full_front], (REFERENCE,) * 3)}
    report["candidates"] = sorted((_row(r, metrics) for r in done.values()), key=lambda r: r["trial"])
    if halving is not None:
        finished = candidates(halving)
        own = {p: scale.turn(r["objectives"]) for p, r in finished.items()}
        half_front = front_of(own) if own else []
        on_full = [p for p in half_front if p in done]
        report["halving"] = {
            "study": halving["name"], "time": time_of(halving), "distinct_completed": len(finished),
            "time_parts": time_parts(halving, phases.get("halving", {}).get("wall_s")),
            "stopped_at_rung": {f"rung {k + 1}": sum(1 for r in halving["trials"] if r["status"] == "stopped"
                                                     and r["rung"] == k)
                                for k in sorted({r["rung"] for r in halving["trials"] if r["rung"] is not None})},
            "front": [_row(finished[p], metrics) for p in half_front],
            "hypervolume_full_values": hypervolume([scale(done[p]["objectives"]) for p in on_full], (REFERENCE,) * 3),
            "hypervolume_own_values": hypervolume([scale(finished[p]["objectives"]) for p in half_front],
                                                  (REFERENCE,) * 3),
            "front_members_missing_from_full": [p for p in half_front if p not in done]}
        h, f = report["halving"], report["full"]
        report["comparison"] = {
            "train_time_ratio": _ratio(h["time"]["train_time_s"], f["time"]["train_time_s"]),
            "trial_wall_ratio": _ratio(h["time"]["trial_wall_s"], f["time"]["trial_wall_s"]),
            "phase_wall_ratio": _ratio(phases.get("halving", {}).get("wall_s"), phases.get("full", {}).get("wall_s")),
            "hypervolume_ratio": _ratio(h["hypervolume_full_values"], f["hypervolume"]),
            "goal": "<= 1/3 of the GPU time within 5% hypervolume"}
    if full["fidelity"]:
        last = full["fidelity"][-1]
        report["fidelity"] = {"factor": last["factor"], "n_candidates": len(last["candidates"]),
                              "stats": last["stats"], "noise": last["noise"], "candidates": last["candidates"]}
    report["findings"] = findings(report["candidates"], metrics)
    return report


TIME_PARTS = ("setup_s", "first_step_s", "steps_s", "eval_s", "score_s", "checkpoint_s")


def time_parts(study: dict[str, Any], phase_wall_s: float | None) -> dict[str, Any]:
    """Where a study's time went (issue 15 point 3): its trials' train() parts summed (setup, the first steps with
    their compile and autotune, the timed steps, evaluation, final metrics such as recall, checkpoint writes), the
    rest of the trials' wall time outside train(), and the share of the phase's wall time in training steps. A
    data-parallel halving trial (nproc) trains rung by rung in several train() calls and records only the last
    one's timing; one that pauses in memory (one GPU) records the whole run."""
    parts = {k: sum(t.get(k) or 0.0 for t in study["timings"]) for k in TIME_PARTS}
    in_train = sum(t.get("wall_s") or 0.0 for t in study["timings"])
    trials_wall = sum(r["wall_time_s"] or 0.0 for r in study["trials"] if r["status"] != "duplicate")
    out = {**{k: round(v, 2) for k, v in parts.items()}, "trials_timed": len(study["timings"]),
           "outside_train_s": round(trials_wall - in_train, 2), "phase_wall_s": phase_wall_s}
    if phase_wall_s:
        # as bench/bench_study_time.py counts it: each trial's first step as one ordinary step (its compile and
        # autotune are warm-up, not training); with the first steps whole, as the 2026-12-06 figure (51.6%) was
        ordinary = sum(t["steps_s"] / t["timed_steps"] for t in study["timings"] if t.get("timed_steps"))
        out["steps_share"] = (parts["steps_s"] + ordinary) / phase_wall_s
        out["steps_share_with_first_steps"] = (parts["steps_s"] + parts["first_step_s"]) / phase_wall_s
        out["trials_per_gpu_hour"] = len(study["timings"]) * 3600 / phase_wall_s
    return out


def time_table(studies: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Markdown: where each study's time went, seconds summed over its trials."""
    if not studies:
        return []
    names = [n for n, _ in studies]
    lines = ["## Where the time went (seconds summed over trials)", "", "| | " + " | ".join(names) + " |",
             "| --- |" + " --- |" * len(names)]
    rows = [("setup (build, data, optimizer)", "setup_s"), ("first steps (compile, autotune)", "first_step_s"),
            ("timed steps", "steps_s"), ("evaluation", "eval_s"), ("final metrics (recall)", "score_s"),
            ("checkpoint writes", "checkpoint_s"), ("trials' time outside train()", "outside_train_s"),
            ("phase wall time", "phase_wall_s")]
    for label, key in rows:
        lines.append(f"| {label} | " + " | ".join(_f(p.get(key), '.1f') for _, p in studies) + " |")
    lines.append("| share of the phase in training steps | " +
                 " | ".join(_f(p.get("steps_share"), '.1%') for _, p in studies) + " |")
    lines.append("| the same, first steps counted whole | " +
                 " | ".join(_f(p.get("steps_share_with_first_steps"), '.1%') for _, p in studies) + " |")
    lines.append("| trials per GPU-hour | " + " | ".join(_f(p.get("trials_per_gpu_hour"), '.0f')
                                                     for _, p in studies) + " |")
    return lines + [""]


def _ratio(a, b):
    return a / b if a is not None and b else None


def findings(rows: list[dict[str, Any]], metrics: list[str]) -> dict[str, Any]:
    """Attention share of the best, the three kinds side by side, recall by attention count."""
    out: dict[str, Any] = {}
    if "val_loss" in metrics and rows:
        best = min(rows, key=lambda r: r["val_loss"])
        out["best_val_loss"] = {k: best[k] for k in ("pattern", "attention_share", "val_loss")}
    if "recall" in metrics and rows:
        best = max(rows, key=lambda r: (r["recall"], -r.get("val_loss", 0)))
        out["best_recall"] = {k: best[k] for k in ("pattern", "attention_share", "recall")}
    kinds = {}
    for kind in ("pure Mamba-2", "hybrid", "pure attention"):
        group = [r for r in rows if r["kind"] == kind]
        if group:
            kinds[kind] = {"n": len(group), **_summary(group, metrics)}
    out["by_kind"] = kinds
    by_count = {}
    for count in sorted({r["attention_layers"] for r in rows}):
        group = [r for r in rows if r["attention_layers"] == count]
        by_count[str(count)] = {"n": len(group), "shares": sorted({round(r["attention_share"], 3) for r in group}),
                                **_summary(group, metrics)}
    out["by_attention_count"] = by_count
    return out


def _summary(group: list[dict[str, Any]], metrics: list[str]) -> dict[str, Any]:
    out = {}
    for m in ("val_loss", "recall"):
        if m in metrics:
            values = [r[m] for r in group]
            pick = min if m == "val_loss" else max
            out[f"{m}_mean"] = sum(values) / len(values)
            out[f"{m}_best"] = pick(values)
            out[f"{m}_best_pattern"] = pick(group, key=lambda r: r[m])["pattern"]
    return out


def _f(value, spec=".4f") -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def markdown(report: dict[str, Any]) -> str:
    lines = ["# Hybrid study (studies/hybrid-a10g.yaml): halving vs full budget, fidelity, findings", ""]
    phases = report.get("phases") or {}
    if phases:
        lines += ["| phase | wall s | exit |", "| --- | --- | --- |"]
        lines += [f"| {name} | {_f(p.get('wall_s'), '.1f')} | {p.get('rc')} |" for name, p in phases.items()]
        lines.append("")
    if "error" in report:
        return "\n".join(lines + [report["error"], ""])
    header = ("| trial | pattern | kind | attn | proxy params | target memory 128k GiB | val_loss | recall | "
              "decode tok/s |")
    rule = "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"

    def table(rows):
        return [header, rule] + [
            f"| {r['trial']} | `{r['pattern']}` | {r['kind']} | {r['attention_layers']}/{r['mixers']} | "
            f"{_count(r['proxy_params'])} | {_f(r['target_memory_gib'], '.2f')} | {_f(r.get('val_loss'))} | "
            f"{_f(r.get('recall'), '.3f')} | {_f(r.get('decode_tokens_per_s'), '.1f')} |" for r in rows]

    full = report["full"]
    lines += [f"## Full budget ({full['study']}): {full['distinct_completed']} distinct candidates, front of "
              f"{len(full['front'])}", ""]
    lines += table(full["front"]) + [""]
    halving = report.get("halving")
    if halving:
        lines += [f"## Successive halving ({halving['study']}): {halving['distinct_completed']} candidates trained "
                  f"to the full budget, front of {len(halving['front'])}; trials stopped: "
                  f"{', '.join(f'{k} {n}' for k, n in halving['stopped_at_rung'].items()) or 'none'}", ""]
        lines += table(halving["front"]) + [""]
        c = report["comparison"]
        lines += ["## GPU time and hypervolume (halving / full)", "",
                  "| | halving | full | ratio |", "| --- | --- | --- | --- |",
                  f"| sum of trials' train() time, s | {halving['time']['train_time_s']:.1f} | "
                  f"{full['time']['train_time_s']:.1f} | {_f(c['train_time_ratio'], '.3f')} |",
                  f"| sum of trials' wall time, s | {halving['time']['trial_wall_s']:.1f} | "
                  f"{full['time']['trial_wall_s']:.1f} | {_f(c['trial_wall_ratio'], '.3f')} |",
                  f"| phase wall time, s | {_f(phases.get('halving', {}).get('wall_s'), '.1f')} | "
                  f"{_f(phases.get('full', {}).get('wall_s'), '.1f')} | {_f(c['phase_wall_ratio'], '.3f')} |",
                  f"| front hypervolume (full-budget values) | {halving['hypervolume_full_values']:.4f} | "
                  f"{full['hypervolume']:.4f} | {_f(c['hypervolume_ratio'], '.3f')} |", "",
                  f"Goal: {c['goal']}. {report['hypervolume_note']}.", ""]
    lines += time_table([(name, report[key]["time_parts"]) for key, name in (("full", "full budget"),
                                                                          ("halving", "halving"))
                         if key in report and "time_parts" in report[key]])
    fidelity = report.get("fidelity")
    if fidelity:
        lines += [f"## Proxy fidelity: {fidelity['n_candidates']} candidates at {fidelity['factor']:g}x the budget", "",
                  "| objective | n | Kendall tau [95% CI] | pairwise accuracy [95% CI] |", "| --- | --- | --- | --- |"]
        for metric, s in fidelity["stats"].items():
            lines.append(f"| {metric} | {s['n']} | {_f(s['tau'], '.3f')} {_ci(s['tau_ci95'])} | "
                         f"{_f(s['pairwise_accuracy'], '.3f')} {_ci(s['pairwise_accuracy_ci95'])} |")
        noise = fidelity.get("noise")
        if noise:
            lines += ["", f"Noise floor: trial #{noise['number']} at seeds {noise['seeds']}: |difference| " +
                      ", ".join(f"{m} {d:.4g}" for m, d in noise["abs_diff"].items())]
        lines.append("")
    f = report["findings"]
    lines += ["## Findings at this scale", ""]
    for key in ("best_val_loss", "best_recall"):
        if key in f:
            b = f[key]
            lines.append(f"- {key.replace('_', ' ')}: `{b['pattern']}`, attention share {b['attention_share']:.3f}")
    lines += ["", "| kind | n | val_loss mean | val_loss best (pattern) | recall mean | recall best (pattern) |",
              "| --- | --- | --- | --- | --- | --- |"]
    for kind, s in f["by_kind"].items():
        lines.append(f"| {kind} | {s['n']} | {_f(s.get('val_loss_mean'))} | {_f(s.get('val_loss_best'))} "
                     f"(`{s.get('val_loss_best_pattern')}`) | {_f(s.get('recall_mean'), '.3f')} | "
                     f"{_f(s.get('recall_best'), '.3f')} (`{s.get('recall_best_pattern')}`) |")
    lines += ["", "| attention layers | shares | n | recall mean | recall best | val_loss mean |",
              "| --- | --- | --- | --- | --- | --- |"]
    for count, s in f["by_attention_count"].items():
        lines.append(f"| {count} | {', '.join(f'{x:.3f}' for x in s['shares'])} | {s['n']} | "
                     f"{_f(s.get('recall_mean'), '.3f')} | {_f(s.get('recall_best'), '.3f')} | "
                     f"{_f(s.get('val_loss_mean'))} |")
    return "\n".join(lines + [""])


def _count(n) -> str:
    return "n/a" if n is None else f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}k"


def _ci(ci) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "[n/a]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("derive", help="write WORK/halving.yaml, WORK/full.yaml and WORK/warmup.yaml")
    d.add_argument("source", type=Path)
    d.add_argument("work", type=Path)
    d.add_argument("--smoke", action="store_true", help="tiny CPU proxy instead of the 100M one")
    d.add_argument("--flops", type=float, help="override recipe.flops (the full budget of every candidate)")
    d.add_argument("--data", help="override the text task's data_files")
    d.add_argument("--rungs", help="override halving.rungs, e.g. 1/9,1/3,1 (ASHA's geometric ladder, eta 3)")
    d.add_argument("--eval-every", type=yaml.safe_load,
                   help="override recipe.eval_every: steps (an integer) or a fraction < 1; rungs evaluate at their "
                        "own step anyway, so a large integer (100000) evaluates only at the end and the rungs")
    d.add_argument("--no-expand", dest="expand", action="store_false",
                   help="keep the pattern generator (repeats of stopped candidates then train again)")
    f = sub.add_parser("fidelity-args", help="print the candidate options for `study fidelity`")
    f.add_argument("study", type=Path)
    r = sub.add_parser("report", help="read WORK/{full,halving}.db and WORK/phases.json")
    r.add_argument("work", type=Path)
    r.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "derive":
        for path in derive(args.source, args.work, smoke=args.smoke, flops=args.flops, data=args.data,
                           expand=args.expand, rungs=args.rungs, eval_every=args.eval_every):
            print(path)
    elif args.command == "fidelity-args":
        print(" ".join(fidelity_args(args.study)))
    else:
        report = build_report(args.work)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "hybrid_study.json").write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
        text = markdown(report)
        (args.out / "hybrid_study.md").write_text(text, encoding="utf-8")
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
