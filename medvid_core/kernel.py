"""The `medvid` Jupyter kernel: ipykernel, started after importing `medvid_core` pinned the CPU kernels.

NumPy and OpenBLAS read their pins when NumPy loads, which in a notebook happens before a cell could
import medvid_core. tools/setup_env.sh registers ``python -m medvid_core.kernel`` as the kernel's
command; Python imports the package, and so pins, before this module runs. The pins then apply in
notebooks exactly as in any other process that imports medvid_core: only where unset, and none with
``MEDVID_NATIVE_CPU=1``.
"""
import sys
from pathlib import Path

if __name__ == "__main__":
    if sys.path and (sys.path[0] == "" or Path(sys.path[0]) == Path.cwd()):
        del sys.path[0]  # as ipykernel_launcher does: IPython puts the notebook's folder back
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()
