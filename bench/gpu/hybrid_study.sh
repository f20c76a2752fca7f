#!/usr/bin/env bash
# The hybrid-design study of issue 16 (studies/hybrid-a10g.yaml) in one GPU call, after `source bench/gpu/setup.sh`:
#   a0) two candidates briefly, to warm the compile and autotune caches (study hybrid-a10g-warmup, warmup.db),
#   a) the grid trained to the full budget without halving (study hybrid-a10g-full, full.db),
#   b) the same grid under successive halving (study hybrid-a10g, halving.db),
#   c) `study fidelity` of the full-budget study: 8 candidates (front + random) at 4x, and a second seed,
#   then bench/hybrid_study_report.py: hybrid_study.{json,md} (fronts, GPU time, hypervolume, fidelity, findings).
# Both studies are written by `hybrid_study_report.py derive` from the shipped file, its generator grid listed as its
# 24 distinct patterns, one trial each (the generator grid's 48 points repeat candidates: duplicates cost no
# training, but listing them keeps both studies at exactly 24 trials); the text is gathered to the path the study names.
# Each phase is bounded (the study's --timeout stops starting trials; `timeout -s INT` stops a phase that is still
# running at its limit, the running trial recorded as interrupted), and its log, database and the phase times
# (phases.json) are copied to $OUT as it ends, so a call cut short still brings back what finished.
#
#   source bench/gpu/setup.sh >$OUT/setup.log 2>&1; R=$OUT; OUT=/tmp/hs bash bench/gpu/hybrid_study.sh;
#   tar czf $R/hs.tgz -C /tmp hs     # a device call returns at most 8 files: bring one archive back
#   bash bench/gpu/hybrid_study.sh --smoke     # on a CPU: tiny proxy, tiny budget, every phase and the report
#
# Environment: HYBRID_TOTAL_S (seconds for everything after setup; 495 on a GPU, 570 with --smoke),
# HYBRID_FIDELITY_S (kept for phase c; 125 / 200), HYBRID_FLOPS (override the full budget of every candidate),
# HYBRID_RUNGS (override halving.rungs, e.g. 1/9,1/3,1), HYBRID_EVAL_EVERY (override recipe.eval_every, e.g.
# 100000 steps: an evaluation only at the end and at each rung),
# HYBRID_TEXT_MB (text gathered; 8 / 1), HYBRID_WORK (scratch folder; /tmp/hybrid-study), PYTHON (python3),
# HYBRID_SKIP_HALVING=1 (phase b not run: its database comes from an earlier call, put beside the others for the
# report; its 120 s go to phase a).
set -u
cd "$(dirname "$0")/../.."
smoke=0
[[ "${1:-}" == "--smoke" ]] && smoke=1
PY=${PYTHON:-python3}
WORK=${HYBRID_WORK:-/tmp/hybrid-study}
OUT=${OUT:-$WORK/out}
start=$(date +%s)
if (( smoke )); then
  total=${HYBRID_TOTAL_S:-570}; reserve=${HYBRID_FIDELITY_S:-200}; text_mb=${HYBRID_TEXT_MB:-1}
  data_dir=$WORK/pytext; derive_opts=(--smoke --data "$data_dir/*.jsonl")
else
  total=${HYBRID_TOTAL_S:-495}; reserve=${HYBRID_FIDELITY_S:-125}; text_mb=${HYBRID_TEXT_MB:-8}
  data_dir=/tmp/archsearch-pytext; derive_opts=()  # the path studies/hybrid-a10g.yaml names
fi
[[ -n "${HYBRID_FLOPS:-}" ]] && derive_opts+=(--flops "$HYBRID_FLOPS")
[[ -n "${HYBRID_RUNGS:-}" ]] && derive_opts+=(--rungs "$HYBRID_RUNGS")
[[ -n "${HYBRID_EVAL_EVERY:-}" ]] && derive_opts+=(--eval-every "$HYBRID_EVAL_EVERY")
deadline=$((start + total))
rm -rf "$WORK/full.db" "$WORK/halving.db" "$WORK/warmup.db" "$WORK/full.runs" "$WORK/halving.runs" "$WORK/phases.json"
mkdir -p "$WORK" "$OUT"
# One compile/autotune cache for every phase: the mamba-ssm kernels are autotuned once (in a0), not once per phase.
export ARCHSEARCH_COMPILE_CACHE=$WORK/compile-cache TRITON_CACHE_AUTOTUNING=1

left() { echo $((deadline - $(date +%s))); }

# phase NAME LIMIT_S COMMAND...: run bounded, log to $OUT/NAME.log, record its wall time and exit code
# ($EPOCHREALTIME: bash >= 5, no bc needed).
phase() {
  local name=$1 limit=$2; shift 2
  if (( limit < 10 )); then
    echo "[$name] skipped: ${limit}s left for it"; record "$name" "$EPOCHREALTIME" skipped >/dev/null; return
  fi
  echo "[$name] up to ${limit}s: $*"
  local t0 rc wall
  t0=$EPOCHREALTIME
  timeout -s INT -k 30 "$limit" "$@" >"$OUT/$name.log" 2>&1
  rc=$?
  wall=$(record "$name" "$t0" "$rc")
  for db in full.db halving.db; do [[ -f "$WORK/$db" ]] && copy_db "$WORK/$db" "$OUT/$db"; done
  cp "$WORK/phases.json" "$OUT/"
  tail -n 3 "$OUT/$name.log" | sed "s/^/[$name] /"
  echo "[$name] done in $wall s, exit $rc; $(left) s left"
}

# copy_db FROM TO: SQLite's backup, so a database still in WAL mode (a phase cut short) comes back whole.
copy_db() {
  "$PY" -c 'import sqlite3, sys
src, dst = sqlite3.connect(sys.argv[1]), sqlite3.connect(sys.argv[2])
src.backup(dst); dst.close(); src.close()' "$1" "$2.tmp" && mv "$2.tmp" "$2"
}

# record NAME START_EPOCH RC: phases.json gets the phase's wall time (printed) and exit code.
record() {
  "$PY" - "$WORK/phases.json" "$1" "$2" "$3" <<'PY'
import json, sys, time
from pathlib import Path
path, name, began, rc = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4]
wall = round(time.time() - began, 2)
phases = json.loads(path.read_text()) if path.is_file() else {}
phases[name] = {"wall_s": wall, "rc": rc}
path.write_text(json.dumps(phases, indent=1))
print(wall)
PY
}

study=(-m archsearch.cli study)
phase text 60 "$PY" bench/gpu/python_text.py "$data_dir" --max-mb "$text_mb"
cp "$data_dir/manifest.json" "$OUT/text-manifest.json" 2>/dev/null
phase derive 60 "$PY" bench/hybrid_study_report.py derive studies/hybrid-a10g.yaml "$WORK" "${derive_opts[@]}"
cp "$WORK/full.yaml" "$WORK/halving.yaml" "$WORK/warmup.yaml" "$OUT/"

# a0) the two candidates with the most block kinds, briefly: the caches warm before the timed phases (a cold machine's
# mamba-ssm autotuning, ~110 s on the H100, fell on the first timed phase's first trial, 2026-12-06)
# (at most a third of what is left: the timed phases keep their share on a short HYBRID_TOTAL_S)
warm_s=$(( $(left) / 3 < 200 ? $(left) / 3 : 200 ))
phase warmup "$warm_s" "$PY" "${study[@]}" run "$WORK/warmup.yaml" --no-progress
grep -q "completed" "$OUT/warmup.log" || echo "[warmup] no trial completed: the timed phases start cold (see warmup.log)"
# a) every candidate to the full budget. Stop starting trials so that b) and c) keep their share of the time
# (a trial here is seconds).
halving_s=120; [[ "${HYBRID_SKIP_HALVING:-0}" == 1 ]] && halving_s=0
hard=$(( $(left) - reserve - halving_s ))
phase full "$hard" "$PY" "${study[@]}" run "$WORK/full.yaml" --no-progress --timeout $((hard > 50 ? hard - 25 : 25))
# b) successive halving on the same grid (same sampler seed: the same candidates in the same order)
hard=$(( halving_s ? $(left) - reserve : 0 ))
phase halving "$hard" "$PY" "${study[@]}" run "$WORK/halving.yaml" --no-progress --timeout $((hard > 30 ? hard - 15 : 15))
du -sh "$WORK/halving.runs" 2>/dev/null | sed 's/^/[halving] rung checkpoints: /'
rm -rf "$WORK/halving.runs"  # ~12 bytes a parameter per trial (weights + AdamW state): GBs on the GPU machine
# c) proxy fidelity of the full-budget study: front + random up to 8 candidates at 4x, and a second seed
choice=$("$PY" bench/hybrid_study_report.py fidelity-args "$WORK/full.yaml" 2>>"$OUT/fidelity.log") \
  || choice="--no-front --random 8"
echo "[fidelity] candidates: $choice"
# --timeout: stop starting long runs in time to measure over those finished (stored as partial); each long run is
# stored as it ends, so a rerun of this phase (another call, with the databases carried) trains only the rest
fid_limit=$(( $(left) - 15 ))
phase fidelity "$fid_limit" "$PY" "${study[@]}" fidelity "$WORK/full.yaml" --factor 4 --seeds 2 $choice --json \
  --timeout $(( fid_limit > 60 ? fid_limit - 30 : 30 ))
"$PY" bench/hybrid_study_report.py report "$WORK" --out "$OUT" >"$OUT/report.log" 2>&1 \
  && cat "$OUT/hybrid_study.md" || { echo "report failed:"; tail -n 20 "$OUT/report.log"; }
echo "total $(( $(date +%s) - start )) s after setup"
