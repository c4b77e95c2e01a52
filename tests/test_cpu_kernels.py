"""medvid_core pins the CPU kernels to AVX2 on x86-64 (medvid_core/__init__.py)."""
import json
import subprocess
import sys

import pytest

import medvid_core
from medvid_core import CPU_KERNEL_ENV, cpu_kernel_env, pin_cpu_kernels


@pytest.fixture
def x86(monkeypatch):
    monkeypatch.setattr(medvid_core.platform, "machine", lambda: "x86_64")
    monkeypatch.delenv("MEDVID_NATIVE_CPU", raising=False)


def test_sets_what_is_unset_and_yours_win(x86):
    environ = {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}
    pinned = pin_cpu_kernels(environ)
    assert "ONEDNN_MAX_CPU_ISA" not in pinned and environ["ONEDNN_MAX_CPU_ISA"] == "AVX512_CORE"
    assert {k: environ[k] for k in CPU_KERNEL_ENV if k != "ONEDNN_MAX_CPU_ISA"} == pinned
    assert set(pinned) == set(CPU_KERNEL_ENV) - {"ONEDNN_MAX_CPU_ISA"}


def test_native_opt_out_and_other_machines(x86, monkeypatch):
    assert cpu_kernel_env() == CPU_KERNEL_ENV
    monkeypatch.setenv("MEDVID_NATIVE_CPU", "1")
    assert cpu_kernel_env() == {} and pin_cpu_kernels({}) == {}
    monkeypatch.delenv("MEDVID_NATIVE_CPU")
    monkeypatch.setattr(medvid_core.platform, "machine", lambda: "aarch64")
    assert cpu_kernel_env() == {}


@pytest.mark.skipif(not cpu_kernel_env(), reason="pinning applies on x86-64 only")
def test_torch_runs_avx2_kernels_even_when_imported_first():
    """A fresh process that imports torch *before* medvid_core: oneDNN and ATen still pick AVX2."""
    code = (
        "import torch\n"
        "import medvid_core\n"
        "torch.nn.functional.conv2d(torch.ones(2, 8, 16, 16), torch.ones(16, 8, 3, 3))\n"
        "print('aten', torch.backends.cpu.get_cpu_capability())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env={**_clean_env(), "ONEDNN_VERBOSE": "1"},
                         capture_output=True, text=True, check=True).stdout
    assert "aten AVX2" in out
    isa = [line for line in out.splitlines() if ",isa:" in line]
    assert isa and isa[0].endswith("isa:Intel AVX2"), isa


@pytest.mark.skipif(not cpu_kernel_env(), reason="pinning applies on x86-64 only")
def test_medvid_kernel_pins_numpy_and_keeps_yours():
    """nbval and papermill start the `medvid` kernel: NumPy loads in it already pinned, and a variable
    set by whoever starts the kernel is kept."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    from jupyter_client.manager import start_new_kernel

    try:
        spec = KernelSpecManager().get_kernel_spec("medvid")
    except NoSuchKernel:
        pytest.skip("kernel 'medvid' not registered (tools/setup_env.sh registers it)")
    assert "medvid_core.kernel" in spec.argv, spec.argv
    km, kc = start_new_kernel(kernel_name="medvid", env={**_clean_env(), "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"})
    try:
        code = ("import os, numpy, json; from numpy._core._multiarray_umath import __cpu_features__ as f; "
                "print(json.dumps([os.environ.get(k) for k in ('ONEDNN_MAX_CPU_ISA', 'OPENBLAS_CORETYPE')] + [f['AVX512_ICL']]))")
        lines = []
        kc.execute_interactive(code, timeout=60, output_hook=lambda m: lines.append(m["content"].get("text", "")))
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert json.loads("".join(lines)) == ["AVX512_CORE", "Haswell", False]


def _clean_env():
    import os

    return {k: v for k, v in os.environ.items() if k not in CPU_KERNEL_ENV and k != "MEDVID_NATIVE_CPU"}
