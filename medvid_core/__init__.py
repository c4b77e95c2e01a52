"""medvid_core: the thin core behind the medvid study notebooks.

Importing it changes nothing in the host process: no environment variable, no torch setting.
"""
import os
import platform

__version__ = "0.1.0"

#: Opt-in (``MEDVID_REPLAY=1``): replay the committed notebooks' outputs exactly, by running the
#: floating-point kernels they were executed with (AVX2 on x86-64). A training run's numbers change
#: with the kernels underneath: on an AVX-512 machine, NumPy's AVX-512 loops changed synthetic images'
#: bytes, OpenBLAS's AVX-512 kernels others, oneDNN's AVX-512 convolutions every training run. Pinned,
#: 2D networks reproduce references executed on an AVX2 machine digit for digit; a 3D ResNet does not
#: (oneDNN kernels that block by cache size, which no variable pins). The price: ResNet-18 training
#: steps about 1.5x slower on AVX-512 (benchmarks/cpu_pins.py). Without the opt-in every library picks
#: its own kernels, and trained results are checked within a tolerance (medvid_core.reference).
REPLAY_ENV = "MEDVID_REPLAY"
CPU_KERNEL_ENV = {
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # torch's convolutions (oneDNN)
    "ATEN_CPU_CAPABILITY": "avx2",  # torch's own vectorised kernels (elementwise, reductions, softmax)
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",  # torch's matrix products on x86 (MKL)
    "OPENBLAS_CORETYPE": "Haswell",  # NumPy/SciPy's OpenBLAS (AMD Zen runs these same kernels)
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",  # NumPy's AVX-512 loops (sums, exp, ...)
}


def replay_requested(environ=None) -> bool:
    """True when ``MEDVID_REPLAY=1`` is set: the medvid kernel then pins the CPU kernels."""
    return (os.environ if environ is None else environ).get(REPLAY_ENV) == "1"


def cpu_kernel_env() -> dict[str, str]:
    """`CPU_KERNEL_ENV` on x86-64, nothing elsewhere (ARM and others have one kernel family: no pin)."""
    return dict(CPU_KERNEL_ENV) if platform.machine().lower() in ("x86_64", "amd64") else {}


def pin_cpu_kernels(environ=None) -> dict[str, str]:
    """Set the variables of `cpu_kernel_env` that `environ` (default ``os.environ``) lacks, and return
    them (a variable you set wins). Never called on import: the `medvid` kernel calls it under
    ``MEDVID_REPLAY=1``, before NumPy loads (NumPy and OpenBLAS read theirs then; torch reads its three
    at its first operation). A script that wants the same calls it before importing NumPy."""
    environ = os.environ if environ is None else environ
    pinned = {k: v for k, v in cpu_kernel_env().items() if k not in environ}
    environ.update(pinned)
    return pinned
