#!/usr/bin/env bash
# Create the project environment in .venv from environment.yml (the one dependency list).
# conda/mamba when on PATH; otherwise python3 -m venv + pip over the yml's `pip:` section.
# Registers the Jupyter kernel "medvid" inside the environment so papermill and nbval use it.
set -euo pipefail
cd "$(dirname "$0")/.."
ENV=.venv
if [ -x "$ENV/bin/python" ] && [ -f "$ENV/.medvid-installed" ] && [ "$ENV/.medvid-installed" -nt environment.yml ] && [ "$ENV/.medvid-installed" -nt tools/setup_env.sh ]; then
  echo "environment $ENV is up to date"; exit 0
fi
if command -v mamba >/dev/null 2>&1 || command -v conda >/dev/null 2>&1; then
  CONDA=$(command -v mamba || command -v conda)
  echo "creating $ENV with $CONDA"
  "$CONDA" env create --yes -p "$ENV" -f environment.yml || "$CONDA" env update -p "$ENV" -f environment.yml
else
  echo "no conda/mamba on PATH: creating $ENV with python3 -m venv + pip (pip: section of environment.yml)"
  [ -x "$ENV/bin/python" ] || python3 -m venv "$ENV"
  python3 tools/pip_requirements.py environment.yml > "$ENV/requirements.txt"
  "$ENV/bin/python" -m pip install --quiet -r "$ENV/requirements.txt"
fi
"$ENV/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e .
# The kernel's spec pins the CPU kernels (medvid_core.CPU_KERNEL_ENV): NumPy reads its pins before any cell runs.
"$ENV/bin/python" - <<'PY'
import subprocess, sys
import medvid_core
pins = [a for k, v in medvid_core.cpu_kernel_env().items() for a in ("--env", k, v)]
subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", "medvid",
                "--display-name", "Python (medvid)", *pins], check=True, stdout=subprocess.DEVNULL)
PY
touch "$ENV/.medvid-installed"
echo "environment ready: $ENV (kernel: medvid)"
