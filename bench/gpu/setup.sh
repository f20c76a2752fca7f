#!/usr/bin/env bash
# On the offline GPU machine, from the repo root: `source bench/gpu/setup.sh`.
# Installs the wheelhouse made here by `/work/shared/gpu/wheelhouse.sh .gpu/wheels` (carried as .gpu) into
# /tmp/site, mamba-ssm's Triton part included, and makes `archsearch` importable from this checkout.
site=${SITE:-/tmp/site}
bash .gpu/wheels/install.sh .gpu/wheels "$site" || return 1 2>/dev/null || exit 1
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
# Editable install maps kernels/ -> archsearch.kernels (pyproject's package-dir); fall back to a symlink tree.
if ! python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . >/tmp/pip-e.log 2>&1 \
   || ! (cd /tmp && python3 -c "import archsearch.kernels" 2>/dev/null); then
  echo "editable install failed (see /tmp/pip-e.log): using a symlink tree"
  tree=/tmp/archsearch-tree; rm -rf "$tree"; mkdir -p "$tree/archsearch"
  for f in "$PWD"/archsearch/*; do ln -s "$f" "$tree/archsearch/"; done
  ln -s "$PWD/kernels" "$tree/archsearch/kernels"; ln -s "$PWD/blocks" "$tree/archsearch/blocks"
  export PYTHONPATH="$tree:$PYTHONPATH"
fi
export TRITON_CACHE_DIR=${TRITON_CACHE_DIR:-/tmp/triton-cache}  # shared by the tests and the benchmark
# One ptxas for every process (torch's, as a study runs it; archsearch/studies/compile_cache.py says why), so that
# a cache one process filled is one the next can read.
ptxas=$(python3 -c 'from archsearch.studies.compile_cache import torch_ptxas; print(torch_ptxas() or "")')
[ -n "$ptxas" ] && export TRITON_PTXAS_PATH=${TRITON_PTXAS_PATH:-$ptxas}
python3 - <<'PY'
import torch, triton, sys
import archsearch.kernels as K
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, triton {triton.__version__}, "
      f"device {torch.cuda.get_device_name()}")
print(K.format_report())
PY
