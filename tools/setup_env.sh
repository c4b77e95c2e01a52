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
"$ENV/bin/python" -m ipykernel install --sys-prefix --name medvid --display-name "Python (medvid)" >/dev/null
# The kernel starts through medvid_core.kernel, which pins the CPU kernels before NumPy loads.
"$ENV/bin/python" - <<'PY'
import json, sys
from pathlib import Path
spec = Path(sys.prefix, "share", "jupyter", "kernels", "medvid", "kernel.json")
kernel = json.loads(spec.read_text())
kernel["argv"] = ["medvid_core.kernel" if a == "ipykernel_launcher" else a for a in kernel["argv"]]
spec.write_text(json.dumps(kernel, indent=1))
PY
touch "$ENV/.medvid-installed"
echo "environment ready: $ENV (kernel: medvid)"
