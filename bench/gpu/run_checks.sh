#!/usr/bin/env bash
# One packed GPU call (lent H100): from the repo root, with carry [".gpu"]:
#   bash bench/gpu/run_checks.sh
# (a) mamba-ssm SSD bf16 GPU parity incl. gradients, given its compile time; (b) measured vs estimated peak
# memory, four families; (c) hybrid vs transformer throughput at 8k/16k. Logs go to $OUT; a short table last.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export TRITON_CACHE_DIR=/tmp/triton-cache PYTHONUNBUFFERED=1
source bench/gpu/setup.sh > "$OUT/setup.log" 2>&1 || { tail -20 "$OUT/setup.log"; exit 1; }
timeout 240 pytest -m gpu tests/kernels/test_ssd.py -q -p no:cacheprovider > "$OUT/ssd_parity.log" 2>&1
echo "ssd parity rc=$?" >> "$OUT/summary.txt"
timeout 150 python3 bench/bench_checks.py memory --out "$OUT/memory.json" > "$OUT/memory.log" 2>&1
echo "memory rc=$?" >> "$OUT/summary.txt"
timeout 120 python3 bench/bench_checks.py throughput --steps 5 --out "$OUT/throughput.json" > "$OUT/throughput.log" 2>&1
echo "throughput rc=$?" >> "$OUT/summary.txt"
tail -3 "$OUT/ssd_parity.log"; tail -20 "$OUT/memory.log"; tail -8 "$OUT/throughput.log"; cat "$OUT/summary.txt"
