#!/usr/bin/env bash
# Issue 15 on one GPU call, after `source bench/gpu/setup.sh`:
#   R=$OUT; OUT=/tmp/ts bash bench/gpu/trial_speed.sh; tar czf $R/ts.tgz -C /tmp ts
# parity: the GPU tests of the ten files that hold them (~110), newest first: the scan's opaque ops, the whole model's (a
#   fullgraph layer-by-layer step included), then the kernels', fp8's and the checks' (after a kernel change, before
#   any timing; on a cold Triton cache mamba-ssm's autotuning takes ~80 s a new shape: 470 s covered 100 of the 105
#   on an H100, 2026-12-07, the memory-measurement tests left)
# conv_parity (not in the default PHASES): after a change to our conv, gated norm or the fused Mamba mixer, their GPU
#   tests and the model's
# mixer_parity (not in the default PHASES): the GPU tests of the fused Mamba mixer (the default since 2026-12-08):
#   the model's GPU tests (fused training step against the reference model, prefill + decode, layers compiled)
#   with the fused mixer and our norm forced, the mixer's own, our gated norm's, then the conv's (cold mamba-ssm
#   autotuning and Triton compiles: 259 s covered 21 of the ~90 on an H100 from an empty cache, 2026-12-07)
# d768: the 100M trial's compiled step (bench/specs/trial-d768.yaml, 16 x 2048 tokens), each step read before the
#   next (synced) and read one behind (pipelined, as Trainer.run_to_end runs), with its kernel profile
# conv: our conv's tiles per kernel (the looped dpre kernel's l-blocks per program too, and the walk kernels' tiles)
#   at the trial's xBC layout (a 3584-wide slice of 5144-wide rows) and contiguous (CONV_QUICK=1: of the tiled
#   kernels, only today's tiles); ssd: mamba-ssm's scan per chunk size at the trial's shape
# d768_conv_tiled (not in the default PHASES): d768 with our conv's tiled kernels, the baseline of its walk kernels
# d768_fused, d768_fused_mamba_norm, d768_composite (not in the default PHASES): d768 with the fused Mamba mixer
#   (kernels/mamba_mixer_op.py) and our Triton gated norm forced (both the defaults since 2026-12-08), the same with
#   mamba-ssm's norm, and the mixer as three ops with mamba-ssm's norm (the default before). D768F_LOGS=output_code
#   writes inductor's code into d768_fused.log (which kernel copies zxbcdt on each side of the fused ops, 1.55 ms a
#   step each on the H100); d768_fused_flexible (neither): d768_fused with inductor free to hand the custom ops any
#   strides (torch's default for custom ops, needs_exact_strides, copies an input laid out otherwise;
#   D768F_LAYOUT=needs_fixed_stride_order: any strides in the traced order)
# graph_parity, d768_graph, d768_fused_graph, d512_graph (none in the default PHASES): recipe cuda_graph, the whole
#   step captured once and replayed (archsearch/training/step_graph.py): its GPU tests (graphed steps against plain
#   ones, a capture that fails falling back), then the step with it, on the default path, on the fused mixer (with
#   D768F_LAYOUT) and at d512 (where launch gaps weigh most); d512_fused_graph, d1024_fused_graph: d512 and d1024
#   with all three (the fused ops carry flexible_layout themselves), d1024 in bf16 and fp8
# ssd_parity, ssd_ours, d768_our_scan (none in the default PHASES): our Triton scan (kernels/triton_ssd.py, opt-in
#   until these pass): the scan's GPU tests (ours, mamba-ssm's and torch's against the sequential reference), ours
#   against mamba-ssm's at the trial's shape per tiling candidate, then the trial's step on the three-op mixer with
#   our scan (the fused mixer runs mamba-ssm's scan inside its ops)
# d768_model: the whole forward as one program (Recipe compile: model; the others compile layer by layer, the
#   default since 2026-12-06)
# d768_graphs, d512_graphs, d512_model_graphs (not in the default PHASES): inductor's CUDA graphs around the
#   compiled regions (per layer; the last around the whole forward and backward, the step's only compiled regions
#   since it has no graph break)
# d768_autotune (not in the default PHASES): inductor's max-autotune (Triton GEMM templates that can take the
#   relu^2 and casts as epilogues; minutes of autotuning)
# d768_ops (neither): the step with plain-torch conv (causal_conv1d=reference) and then gated norm (torch), which
#   inductor fuses with their neighbours, instead of our conv kernel and mamba-ssm's norm kernel (two runs)
# study_warmup, study (neither in the default PHASES): issue 15 point 3. A one-trial, five-step study from an
#   empty compile cache (the first trial's cold warm-up), then a 12-trial, 200-step study of the 100M class on the
#   cache it left, as a rerun or a second worker finds it (bench/bench_study_time.py; /tmp/study-bench holds both).
#   The 12-trial study took 272 s on the H100 (2026-12-07, sixth session, 89.9% in steps; 362 s before the ptxas
#   pin); cut short, it reports what finished.
#   study_first (neither): after study_warmup, the first trial alone again on the warm cache: what a new process's
#   first trial does before its first step. All three report every Triton autotune not served from disk (by
#   kernel), which ptxas the process's Triton keyed by, and, from stacks of the study process sampled every 2 s,
#   what its first trial's warm-up did (9.4 s warm on the H100 with a study's ptxas pin, compile_cache.py; 78 s
#   before it, 68 s of that mamba-ssm's scan re-tuned)
# nemotron1b (not in the default PHASES): point 2, nemotron-h-1b compiled bf16 (>= 77.7k tokens/s)
# d1024: bf16 and fp8, 10 timed steps, layer by layer as studies compile (the whole step, for precision: auto's
#   table: 1.005x on the H100, 2026-12-07; the H200's layer-by-layer point is missing); d512 (90 s did not cover a
#   cold machine's compile and mamba-ssm autotuning when it ran first, 2026-12-07)
# PHASES="d768 ssd" runs only those, in that order (default: the PHASES line below); an unknown name is an error
# before anything runs.
# save_cache (not in the default PHASES; put it last; needs CACHE_OUT): $TRITON_CACHE_DIR as this call left it
#   (compiled kernels and autotune results of the parity tests and profile_training; the study phases keep their
#   own cache under /tmp/study-bench) as 15 MiB parts $CACHE_OUT/triton-cache.tgz.partNN. CACHE_OUT must be the
#   call's own $OUT, not the folder tarred into ts.tgz (a returned file may be at most 16 MiB: parts inside ts.tgz
#   would lose it whole), and its autotune timings alone as $CACHE_OUT/autotune-seed.tgz, labelled with this card
#   (commit it over bench/gpu/autotune-seed.tgz from a call seeded by AUTOTUNE_SEED=auto or 0: one seeded from
#   another card's timings would label them as this card's). Replace .gpu/cache/ with the new set of parts
#   (old parts would join a corrupt archive)
#   and carry .gpu (64 MiB a call in all, wheels ~13 MiB: ~3 parts): the next call starts from them (mamba-ssm's
#   cold autotuning and compiling took most of a 280 s parity run). Call: R=$OUT; CACHE_OUT=$R OUT=/tmp/ts ...
set -u
OUT=${OUT:?set OUT to the folder whose files come back}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export TRITON_CACHE_AUTOTUNING=1 TRITON_CACHE_DIR=${TRITON_CACHE_DIR:-/tmp/triton-cache}
if compgen -G ".gpu/cache/triton-cache.tgz.part*" >/dev/null && [ ! -d "$TRITON_CACHE_DIR" ]; then
  mkdir -p "$TRITON_CACHE_DIR" && cat .gpu/cache/triton-cache.tgz.part* | tar xzf - -C "$TRITON_CACHE_DIR"
fi
# bench/gpu/autotune-seed.tgz (committed, ~20 KB): the autotune timings earlier calls left (mamba-ssm's kernels at the
# tests' and the trials' shapes, keyed by Triton, the kernel's source and ptxas as setup.sh pins it), so that a new
# session's kernels compile the config chosen then instead of benchmarking every config (~80 s a new shape). The
# choices are the seed's card's (its CARD file): AUTOTUNE_SEED=auto (default) seeds on that card only, 1 on any card
# (parity runs: any valid config gives the same numbers), 0 never. save_cache writes a new seed.
seed=bench/gpu/autotune-seed.tgz
if [ -f "$seed" ] && [ "${AUTOTUNE_SEED:-auto}" != 0 ]; then
  card=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
  if [ "${AUTOTUNE_SEED:-auto}" = 1 ] || [ "$(tar xzf "$seed" -O ./CARD)" = "$card" ]; then
    mkdir -p "$TRITON_CACHE_DIR" && tar xzf "$seed" -C "$TRITON_CACHE_DIR" --skip-old-files --exclude=./CARD &&
      echo "autotune seed: $(tar tzf "$seed" | grep -c autotune) timings of $(tar xzf "$seed" -O ./CARD)" >>"$OUT/phases.txt"
  fi
fi
TRIAL=(--batch 16 --seq 2048 --steps 20)  # 5 timed steps read 114 vs 105 ms for one step on the H100 (2026-12-07)
PHASES=${PHASES:-parity d768 conv ssd d768_model d1024 d512}  # which phases, run in this order
KNOWN="parity conv_parity mixer_parity d768 d768_composite d768_fused d768_fused_flexible d768_fused_mamba_norm d768_conv_tiled conv ssd d768_model d768_graphs d768_autotune d768_ops d1024 d512 d512_graphs d512_model_graphs"
KNOWN+=" study_warmup study_first study nemotron1b save_cache d768_graph d768_fused_graph d512_graph graph_parity"
KNOWN+=" d512_fused_graph d1024_fused_graph ssd_parity ssd_ours d768_our_scan"
for name in $PHASES; do
  [[ " $KNOWN " == *" $name "* ]] || { echo "PHASES: unknown phase '$name'; allowed: $KNOWN" >&2; exit 2; }
done
declare -A COMMANDS
phase() {  # NAME [timeout OPTIONS] CAP_S CMD...: defines a phase, run in PHASES' order (output: $OUT/NAME.log)
  local name=$1; shift
  COMMANDS[$name]=$(printf '%q ' timeout "$@")
}
# SIGINT at the cap (-k: KILL 30 s later): pytest then still prints its summary, failures, skip reasons and slowest
# tests. The scan's file is named by test: a whole file after one of its tests would run that test in file order.
phase parity -s INT -k 30 ${PARITY_S:-520} $PY -m pytest -q -rfEs -m gpu -p no:cacheprovider --durations=30 \
  tests/training/test_step_graph.py \
  tests/kernels/test_ssd.py::test_gpu_ops_match_mamba_ssms_own_function tests/blocks/test_gpu_parity.py \
  tests/kernels/test_ssd.py::test_gpu_backends_match_reference_bf16 tests/kernels/test_attention.py \
  tests/kernels/test_autotune_cache.py tests/kernels/test_gated_norm.py tests/kernels/test_decode.py \
  tests/kernels/test_conv1d.py tests/kernels/test_mamba_mixer.py tests/training/test_fp8.py \
  tests/checks/test_measure.py
phase conv_parity -s INT -k 30 ${CONVP_S:-240} $PY -m pytest -q -rfEs -m gpu -p no:cacheprovider --durations=10 \
  tests/kernels/test_mamba_mixer.py tests/kernels/test_gated_norm.py tests/blocks/test_gpu_parity.py \
  tests/kernels/test_conv1d.py
phase mixer_parity -s INT -k 30 ${MIXP_S:-300} env ARCHSEARCH_BACKEND_MAMBA_MIXER=fused \
  ARCHSEARCH_BACKEND_GATED_RMSNORM=triton $PY -m pytest -q -rfEs -m gpu -p no:cacheprovider --durations=10 \
  tests/blocks/test_gpu_parity.py tests/kernels/test_mamba_mixer.py tests/kernels/test_gated_norm.py \
  tests/kernels/test_conv1d.py
phase d768 ${D768_S:-200} env TORCH_LOGS=${D768_LOGS:-graph_breaks} $PY bench/profile_training.py --out "$OUT" --spec bench/specs/trial-d768.yaml "${TRIAL[@]}" \
  --precisions bf16
phase d768_composite ${D768C_S:-200} $PY bench/profile_training.py --out "$OUT" --spec bench/specs/trial-d768.yaml \
  "${TRIAL[@]}" --precisions bf16 --backend mamba_mixer=composite --backend gated_rmsnorm=mamba_ssm
phase d768_fused ${D768F_S:-150} env TORCH_LOGS=${D768F_LOGS:-graph_breaks} $PY bench/profile_training.py \
  --out "$OUT" --spec bench/specs/trial-d768.yaml "${TRIAL[@]}" --precisions bf16 --backend mamba_mixer=fused \
  --backend gated_rmsnorm=triton
phase d768_fused_flexible ${D768F_S:-150} $PY bench/profile_training.py --out "$OUT" --spec bench/specs/trial-d768.yaml \
  "${TRIAL[@]}" --precisions bf16 --backend mamba_mixer=fused --backend gated_rmsnorm=triton \
  --custom-op-layout ${D768F_LAYOUT:-flexible_layout}
phase d768_fused_mamba_norm ${D768F_S:-150} $PY bench/profile_training.py --out "$OUT" \
  --spec bench/specs/trial-d768.yaml "${TRIAL[@]}" --precisions bf16 --backend mamba_mixer=fused \
  --backend gated_rmsnorm=mamba_ssm
phase d768_graph ${D768_S:-200} $PY bench/profile_training.py --out "$OUT" --spec bench/specs/trial-d768.yaml \
  "${TRIAL[@]}" --precisions bf16 --cuda-graph
phase d768_fused_graph ${D768F_S:-150} $PY bench/profile_training.py --out "$OUT" --spec bench/specs/trial-d768.yaml \
  "${TRIAL[@]}" --precisions bf16 --backend mamba_mixer=fused --backend gated_rmsnorm=triton \
  --custom-op-layout ${D768F_LAYOUT:-flexible_layout} --cuda-graph
phase d512_fused_graph ${D512_S:-150} $PY bench/profile_training.py --out "$OUT" --spec bench/specs/trial-d512.yaml \
  "${TRIAL[@]}" --precisions bf16 --backend mamba_mixer=fused --backend gated_rmsnorm=triton --cuda-graph
phase d1024_fused_graph ${D1024_S:-170} $PY bench/profile_training.py --out "$OUT" --spec bench/specs/trial-d1024.yaml \
  "${TRIAL[@]}" --precisions bf16,fp8 --steps 10 --backend mamba_mixer=fused --backend gated_rmsnorm=triton --cuda-graph
phase ssd_parity -s INT -k 30 ${SSDP_S:-150} $PY -m pytest -q -rfEs -m gpu -p no:cacheprovider --durations=10 \
  tests/kernels/test_ssd.py
phase ssd_ours ${SSDO_S:-240} $PY bench/bench_kernels.py --out "$OUT/ssd_ours" --only ssd_ours
phase d768_our_scan ${D768_S:-200} $PY bench/profile_training.py --out "$OUT" --spec bench/specs/trial-d768.yaml \
  "${TRIAL[@]}" --precisions bf16 --backend mamba_mixer=composite --backend ssd_scan=triton --cuda-graph
phase graph_parity -s INT -k 30 ${GRAPHP_S:-120} $PY -m pytest -q -rfEs -m gpu -p no:cacheprovider \
  tests/training/test_step_graph.py
phase d768_conv_tiled ${D768_S:-200} $PY bench/profile_training.py --out "$OUT" --spec bench/specs/trial-d768.yaml \
  "${TRIAL[@]}" --precisions bf16 --conv-kernels tiled
phase conv ${CONV_S:-180} $PY bench/bench_kernels.py --out "$OUT/conv" --only conv1d_tiles ${CONV_QUICK:+--quick} \
  --conv-shape 16,3584,2048 --conv-row 5144
phase ssd ${SSD_S:-120} $PY bench/bench_kernels.py --out "$OUT/ssd" --only ssd_chunks
phase d768_model ${D768M_S:-150} $PY bench/profile_training.py --out "$OUT" --spec bench/specs/trial-d768.yaml \
  "${TRIAL[@]}" --precisions bf16 --compile-scope model
phase d768_graphs ${D768G_S:-150} $PY bench/profile_training.py --out "$OUT" --spec bench/specs/trial-d768.yaml \
  "${TRIAL[@]}" --precisions bf16 --inductor triton.cudagraphs=True
phase d768_autotune ${D768A_S:-400} $PY bench/profile_training.py --out "$OUT" --spec bench/specs/trial-d768.yaml \
  "${TRIAL[@]}" --precisions bf16 --inductor max_autotune=True
phase d768_ops ${D768O_S:-240} bash -c 'for backend in causal_conv1d=reference gated_rmsnorm=torch; do
    "$0" bench/profile_training.py --out "$1" --spec bench/specs/trial-d768.yaml --batch 16 --seq 2048 --steps 20 \
      --precisions bf16 --backend "$backend" || exit; done' "$PY" "$OUT"
phase d1024 ${D1024_S:-170} $PY bench/profile_training.py --out "$OUT" --spec bench/specs/trial-d1024.yaml \
  "${TRIAL[@]}" --precisions bf16,fp8 --steps 10
phase d512 ${D512_S:-150} $PY bench/profile_training.py --out "$OUT" --spec bench/specs/trial-d512.yaml "${TRIAL[@]}" \
  --precisions bf16
phase d512_graph ${D512_S:-150} $PY bench/profile_training.py --out "$OUT" --spec bench/specs/trial-d512.yaml \
  "${TRIAL[@]}" --precisions bf16 --cuda-graph
phase d512_graphs ${D512G_S:-150} $PY bench/profile_training.py --out "$OUT" --spec bench/specs/trial-d512.yaml \
  "${TRIAL[@]}" --precisions bf16 --inductor triton.cudagraphs=True
phase d512_model_graphs ${D512MG_S:-150} $PY bench/profile_training.py --out "$OUT" --spec bench/specs/trial-d512.yaml \
  "${TRIAL[@]}" --precisions bf16 --compile-scope model --inductor triton.cudagraphs=True
phase study_warmup ${STUDYW_S:-200} $PY bench/bench_study_time.py --trials 1 --steps 5 --runs 1 --cold-cache \
  --keep /tmp/study-bench --json "$OUT/study_warmup.json" --stacks 2
phase study_first ${STUDYF_S:-200} $PY bench/bench_study_time.py --trials 1 --steps 5 --runs 1 --keep /tmp/study-bench \
  --json "$OUT/study_first.json" --stacks 2
phase study ${STUDY_S:-450} $PY bench/bench_study_time.py --trials 12 --steps 200 --runs 1 --keep /tmp/study-bench \
  --json "$OUT/study.json" --stacks 2
phase nemotron1b ${NEMO_S:-240} $PY bench/profile_training.py --out "$OUT" --spec nemotron-h-1b --precisions bf16
if [[ " $PHASES " == *" save_cache "* ]] && [ -z "${CACHE_OUT:-}" ]; then
  echo "PHASES: save_cache needs CACHE_OUT, the call's own \$OUT (not a folder tarred into one archive)" >&2; exit 2
fi
phase save_cache ${SAVE_S:-120} bash -c 'set -o pipefail; mkdir -p "$1" && du -sh "$0" && tar czf - -C "$0" . |
    split -b 15m -d - "$1/triton-cache.tgz.part" && ls -l "$1"/triton-cache.tgz.part* &&
    nvidia-smi --query-gpu=name --format=csv,noheader | head -1 >"$0/CARD" &&
    (cd "$0" && find . -name "*.autotune.json" -o -name "*.autotune-hooked.json" | sort) >/tmp/seed-list &&
    tar czf "$1/autotune-seed.tgz" --owner=0 --group=0 -C "$0" ./CARD -T /tmp/seed-list &&
    tar tzf "$1/autotune-seed.tgz" | grep -c autotune' "$TRITON_CACHE_DIR" "${CACHE_OUT:-}"
for name in $PHASES; do
  began=$(date +%s)
  eval "${COMMANDS[$name]}" >"$OUT/$name.log" 2>&1
  echo "$name rc=$? $(( $(date +%s) - began )) s" >>"$OUT/phases.txt"
done
