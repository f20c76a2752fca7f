#!/usr/bin/env bash
# One-GPU torchrun smoke (issue 8's single-GPU part): the same short run in-process and under torchrun with one
# process (DDP over NCCL, NVLink multicast off), then a 1-GPU study worker; losses should agree.
set -eux
out=${OUT:-/tmp/out}
archsearch train nemotron-h-tiny --task mqar --steps 30 --batch-size 16 --seq-len 128 --device cuda --seed 3 \
  --out /tmp/run-inproc --json > "$out/torchrun_inproc.json"
archsearch train nemotron-h-tiny --task mqar --steps 30 --batch-size 16 --seq-len 128 --device cuda --seed 3 \
  --nproc 1 --out /tmp/run-torchrun --json > "$out/torchrun_nproc1.json"
python3 - "$out/torchrun_inproc.json" "$out/torchrun_nproc1.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
for key in sorted(a["metrics"]):
    print(f"{key}: in-process {a['metrics'][key]}  torchrun nproc 1 {b['metrics'].get(key)}")
print("torchrun:", {k: b[k] for k in ("device", "precision", "tokens_per_s", "backends", "extra")})
PY
