"""medvid_core: the thin core behind the medvid study notebooks."""
import os
import platform

__version__ = "0.1.0"

#: CPU kernels pinned to AVX2 on x86-64, so that one seed gives the same numbers on x86-64 CPUs with and
#: without AVX-512. Without the pins, a 2-core AVX-512 machine (AMD EPYC, Zen 4) re-ran the committed
#: notebooks, executed on an AVX2 machine, to other numbers in 10 result cells: NumPy's AVX-512 loops
#: changed synthetic images' bytes, OpenBLAS's AVX-512 kernels others, oneDNN's AVX-512 convolutions
#: every training run. With them, 2D networks reproduce those references digit for digit; a 3D-ResNet
#: does not (its 3D convolutions run oneDNN kernels, such as its own gemm, that may block by cache
#: size, which no variable pins). The README's Reproducibility section has the details.
CPU_KERNEL_ENV = {
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # torch's convolutions (oneDNN)
    "ATEN_CPU_CAPABILITY": "avx2",  # torch's own vectorised kernels (elementwise, reductions, softmax)
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",  # torch's matrix products on x86 (MKL)
    "OPENBLAS_CORETYPE": "Haswell",  # NumPy/SciPy's OpenBLAS (AMD Zen runs these same kernels)
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",  # NumPy's AVX-512 loops (sums, exp, ...)
}


def cpu_kernel_env() -> dict[str, str]:
    """`CPU_KERNEL_ENV` on x86-64; nothing elsewhere or with ``MEDVID_NATIVE_CPU=1`` in the
    environment (each library's own choice: faster on AVX-512, other numbers)."""
    if os.environ.get("MEDVID_NATIVE_CPU") == "1" or platform.machine().lower() not in ("x86_64", "amd64"):
        return {}
    return dict(CPU_KERNEL_ENV)


def pin_cpu_kernels(environ=None) -> dict[str, str]:
    """Set the variables of `cpu_kernel_env` that `environ` (default ``os.environ``) lacks, and return
    them (a variable you set wins). Runs when medvid_core is imported: torch reads its three at its
    first operation, so importing torch first is fine; NumPy and OpenBLAS read theirs when NumPy loads,
    hence the `medvid` kernel starts through `medvid_core.kernel`."""
    environ = os.environ if environ is None else environ
    pinned = {k: v for k, v in cpu_kernel_env().items() if k not in environ}
    environ.update(pinned)
    return pinned


pin_cpu_kernels()
