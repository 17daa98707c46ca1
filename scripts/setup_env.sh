#!/usr/bin/env bash
# Idempotent, cached setup of .venv: torch + torchvision from PyPI, torchsort built against that
# torch (with its CUDA kernel when nvcc is on PATH), then the project with its dev and deploy extras
# (the tests validate the Celery and Kubernetes executor configurations with their packages).
# Re-runs are instant: a stamp keyed on pyproject.toml and this script says what is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
PYTHON=${PYTHON:-python3}
STAMP="$VENV/.siscore-setup"
WANT=$(cat pyproject.toml scripts/setup_env.sh | sha256sum | cut -c1-16)

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x "$VENV/bin/python" ]; then
  exit 0
fi

if [ -x "$VENV/bin/python" ]; then echo "== updating $VENV"; else echo "== creating $VENV (first run: downloads torch and builds torchsort, about 10 minutes)"; fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip)
"${PIP[@]}" install -q --upgrade pip setuptools wheel

if ! "$VENV/bin/python" -c "import torch, torchvision" 2>/dev/null; then
  # Plain PyPI builds of both, never the local '+cpu' torch wheel: mixing them breaks torchvision.
  "${PIP[@]}" install -q torch torchvision
fi

if ! "$VENV/bin/python" -c "import torchsort" 2>/dev/null; then
  # torchsort compiles against the installed torch, so no build isolation.  With nvcc on PATH
  # its setup.py also builds a CUDA kernel, which needs the toolkit root and target archs.
  if command -v nvcc >/dev/null 2>&1; then
    # The toolkit root: $CUDA_HOME, /usr/local/cuda, or beside the real nvcc binary (nvcc on
    # PATH may be a wrapper script).  Without one, build the CPU kernel only.
    root=""
    for cand in "${CUDA_HOME:-}" "${CUDA_PATH:-}" /usr/local/cuda \
        "$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")"; do
      if [ -n "$cand" ] && [ -f "$cand/include/cuda_runtime.h" ] && [ -x "$cand/bin/nvcc" ]; then
        root="$cand"; break
      fi
    done
    if [ -n "$root" ]; then
      export CUDA_HOME="$root"
      export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-8.0;9.0}"
      echo "== building torchsort with its CUDA kernel (CUDA_HOME=$CUDA_HOME, archs $TORCH_CUDA_ARCH_LIST)"
    else
      echo "== nvcc found but no CUDA toolkit root: building torchsort's CPU kernel only"
      nvcc_dir=$(dirname "$(command -v nvcc)")
      PATH=$(echo "$PATH" | tr ':' '\n' | grep -vxF "$nvcc_dir" | paste -sd: -)
      export PATH
    fi
  fi
  MAX_JOBS="${MAX_JOBS:-2}" "${PIP[@]}" install -q --no-build-isolation torchsort
fi

"${PIP[@]}" install -q -e ".[dev,deploy]"
"$VENV/bin/python" -c "import torch, torchvision, torchsort, dagster, duckdb, rasterio, geopandas" 
echo "$WANT" > "$STAMP"
echo "== $VENV ready"
