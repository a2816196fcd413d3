#!/usr/bin/env bash
# Installs XLA's TPU and GPU compiler plugins for benchmarks/run.py --target tpu-v5e|h200,
# matching the installed jaxlib, outside the project ($JAXPOOL_AOT, default
# ~/.cache/aot). No TPU, GPU, driver or CUDA runtime is needed to compile.
set -euo pipefail
D="${JAXPOOL_AOT:-$HOME/.cache/aot}"
JAXLIB=$(python -c "import jaxlib; print(jaxlib.__version__)")
LIBTPU=$(python -c "import importlib.metadata as m; print(next(r.split(';')[0].replace(' ', '') for r in m.requires('jax') if r.startswith('libtpu')))")
pip install -q --no-deps --target "$D/tpu" "$LIBTPU"
pip install -q --no-deps --target "$D/cuda" "jax-cuda12-plugin==$JAXLIB" "jax-cuda12-pjrt==$JAXLIB"
echo "installed in $D: $LIBTPU, jax-cuda12-plugin==$JAXLIB"
