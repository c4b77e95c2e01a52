"""Importing medvid_core changes nothing in its host; CPU pins are an opt-in (MEDVID_REPLAY=1)."""
import json
import os
import subprocess
import sys

import pytest

import medvid_core
from medvid_core import CPU_KERNEL_ENV, REPLAY_ENV, cpu_kernel_env, pin_cpu_kernels


@pytest.fixture
def x86(monkeypatch):
    monkeypatch.setattr(medvid_core.platform, "machine", lambda: "x86_64")


def _clean_env():
    return {k: v for k, v in os.environ.items() if k not in CPU_KERNEL_ENV and k != REPLAY_ENV}


def test_import_changes_no_environment_variable():
    """The issue's own check, in a fresh process."""
    code = "import os; b = dict(os.environ); import medvid_core; assert b == dict(os.environ)"
    subprocess.run([sys.executable, "-c", code], env=_clean_env(), check=True)


def test_importing_the_whole_kit_sets_nothing_of_its_own():
    """Every medvid_core module, imported after the third-party libraries it uses: MONAI, scikit-learn and
    OpenCV write variables of their own when imported (CUBLAS_WORKSPACE_CONFIG, KMP_*, LD_LIBRARY_PATH,
    TORCHINDUCTOR_CACHE_DIR), as they do for anyone who imports them; medvid_core adds none."""
    code = ("import os, monai, sklearn, cv2; b = dict(os.environ)\n"
            "import medvid_core.studies.ich, medvid_core.studies.video4mri, medvid_core.studies.viptt_net, "
            "medvid_core.studies.mura_zoom, medvid_core.studies.lecture5_3d_video, medvid_core.reference, "
            "medvid_core.batch, medvid_core.runner, medvid_core.cli, medvid_core.synth.checksums\n"
            "assert b == dict(os.environ), set(os.environ.items()) ^ set(b.items())")
    subprocess.run([sys.executable, "-c", code], env=_clean_env(), check=True)


def test_import_changes_no_torch_setting():
    settings = ("(torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(), torch.get_default_dtype(), "
                "torch.backends.cudnn.benchmark, torch.initial_seed())")
    code = (f"import torch; s = {settings}\n"
            "import medvid_core, medvid_core.train, medvid_core.studies.ich, medvid_core.studies.lecture5_3d_video\n"
            f"assert s == {settings}")
    subprocess.run([sys.executable, "-c", code], env=_clean_env(), check=True)


def test_pin_sets_what_is_unset_and_yours_win(x86):
    environ = {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}
    pinned = pin_cpu_kernels(environ)
    assert "ONEDNN_MAX_CPU_ISA" not in pinned and environ["ONEDNN_MAX_CPU_ISA"] == "AVX512_CORE"
    assert set(pinned) == set(CPU_KERNEL_ENV) - {"ONEDNN_MAX_CPU_ISA"}


def test_no_pins_off_x86(monkeypatch):
    monkeypatch.setattr(medvid_core.platform, "machine", lambda: "aarch64")
    assert cpu_kernel_env() == {} and pin_cpu_kernels({}) == {}


def _kernel_reports(env: dict) -> list:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    from jupyter_client.manager import start_new_kernel

    try:
        spec = KernelSpecManager().get_kernel_spec("medvid")
    except NoSuchKernel:
        pytest.skip("kernel 'medvid' not registered (tools/setup_env.sh registers it)")
    assert "medvid_core.kernel" in spec.argv, spec.argv
    km, kc = start_new_kernel(kernel_name="medvid", env=env)
    try:
        code = ("import os, numpy, json; from numpy._core._multiarray_umath import __cpu_features__ as f; "
                "print(json.dumps([os.environ.get(k) for k in ('ONEDNN_MAX_CPU_ISA', 'OPENBLAS_CORETYPE')]))")
        lines = []
        kc.execute_interactive(code, timeout=60, output_hook=lambda m: lines.append(m["content"].get("text", "")))
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return json.loads("".join(lines))


def test_medvid_kernel_is_plain_without_replay():
    assert _kernel_reports(_clean_env()) == [None, None]


@pytest.mark.skipif(not cpu_kernel_env(), reason="pinning applies on x86-64 only")
def test_medvid_kernel_pins_under_replay_and_keeps_yours():
    """Under MEDVID_REPLAY=1 NumPy loads in the kernel already pinned; a variable the caller set is kept."""
    env = {**_clean_env(), REPLAY_ENV: "1", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}
    assert _kernel_reports(env) == ["AVX512_CORE", "Haswell"]


@pytest.mark.skipif(not cpu_kernel_env(), reason="pinning applies on x86-64 only")
def test_pinned_torch_runs_avx2_kernels():
    """A process that pins before its first torch operation runs oneDNN and ATen at AVX2."""
    code = ("import torch, medvid_core\nmedvid_core.pin_cpu_kernels()\n"
            "torch.nn.functional.conv2d(torch.ones(2, 8, 16, 16), torch.ones(16, 8, 3, 3))\n"
            "print('aten', torch.backends.cpu.get_cpu_capability())\n")
    out = subprocess.run([sys.executable, "-c", code], env={**_clean_env(), "ONEDNN_VERBOSE": "1"},
                         capture_output=True, text=True, check=True).stdout
    assert "aten AVX2" in out
    isa = [line for line in out.splitlines() if ",isa:" in line]
    assert isa and isa[0].endswith("isa:Intel AVX2"), isa
