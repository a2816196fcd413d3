#!/usr/bin/env bash
# Every timed suite on the GPU JAX runs on (torch on CUDA beside it), each
# under its own time limit, appended to one file as it finishes:
#   bash benchmarks/run_gpu.sh OUT_DIR [REPEATS] [SECONDS_PER_SUITE]
# (SUITES="region heads" picks suites; default: every timed suite but training).
# Then `python benchmarks/split_gpu.py OUT_DIR/gpu-results.md` writes each
# suite's section to benchmarks/results-<suite>-gpu.md.
set -u
out=${1:?output folder}
repeats=${2:-20}
limit=${3:-60}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
work=$(mktemp -d)
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONPATH="$here/..:${PYTHONPATH:-}"
python3 -c "import jax, flax, torch; print('jax', jax.__version__, 'flax', flax.__version__, 'torch', torch.__version__, jax.devices())"
for suite in ${SUITES:-heads second_order region classic antialias pyramid weighted lifting dynamic stochastic}; do
  start=$(date +%s)
  if timeout "$limit" python3 "$here/run.py" --target gpu --suite "$suite" --repeats "$repeats" \
      --out "$work/$suite.md" >"$work/$suite.log" 2>&1; then
    { echo "<!-- suite: $suite -->"; cat "$work/$suite.md"; echo; } >>"$out/gpu-results.md"
    echo "$suite: done in $(($(date +%s) - start)) s"
  else
    echo "$suite: failed or past ${limit} s ($(($(date +%s) - start)) s):"; tail -5 "$work/$suite.log"
  fi
  grep -h "compile failed" "$work/$suite.log" | cut -c1-300
  cat "$work/$suite.log" >>"$out/gpu.log"
done
