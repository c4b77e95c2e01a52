"""The `medvid` Jupyter kernel: ipykernel, with the CPU kernels pinned first when ``MEDVID_REPLAY=1``.

NumPy and OpenBLAS read their pins when NumPy loads, which in a notebook happens before a cell runs.
tools/setup_env.sh registers ``python -m medvid_core.kernel`` as the kernel's command, so the pins
(`medvid_core.pin_cpu_kernels`, only where unset) are in place before ipykernel imports NumPy. Without
``MEDVID_REPLAY=1`` this is plain ipykernel and every library picks its own kernels.
"""
import sys
from pathlib import Path

if __name__ == "__main__":
    from medvid_core import pin_cpu_kernels, replay_requested

    if replay_requested():
        pin_cpu_kernels()
    if sys.path and (sys.path[0] == "" or Path(sys.path[0]) == Path.cwd()):
        del sys.path[0]  # as ipykernel_launcher does: IPython puts the notebook's folder back
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()
