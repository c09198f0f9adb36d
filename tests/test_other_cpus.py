"""The C unit tests on CPUs this machine is not: QEMU's user-mode emulator
runs the kernel, model, autodiff and training-step tests as an AVX2 + FMA
CPU without AVX-512 (Haswell: the AVX2 GEMM, the `avx2` clones of the
vector loops, the portable attention) and as an AVX CPU without AVX2 or FMA
(Sandy Bridge: Linear and Gemm on BLAS, the `default` clones).  On the
AVX-512 machines CI runs on, none of those paths run otherwise, and a
kernel there that read past a row or dropped a tail would go unseen until a
user's older CPU met it.  `--precision auto` resolves to fp32 on both, and
the bf16 checks name themselves as not run.

OpenBLAS picks its kernels from CPUID itself and misreads QEMU's models (it
took its Haswell kernels on the Sandy Bridge model and died on an AVX2
instruction), so each run names the matching core to it
(OPENBLAS_CORETYPE)."""
import os
import shutil
import subprocess

import pytest

from conftest import ROOT

QEMU = shutil.which("qemu-x86_64")
if QEMU is None:  # install-deps installs it: its absence is a broken setup, not a reason to skip
    raise RuntimeError("qemu-x86_64 is missing: run tools/install-deps.sh (Debian's qemu-user)")

UNIT_TESTS = ["test_kernels", "test_model", "test_autodiff", "test_train_step"]

# per CPU model: lines test_kernels must print, which show the paths that model takes
CPUS = {
    "Haswell": ["gemm kernel avx512-f32: compiled, not run (this CPU lacks it)",
                "gemm kernel avx2-f32: agrees against the reference",
                "gemm kernel avx512-bf16: compiled, not run (this CPU lacks it)"],
    "SandyBridge": ["gemm kernel avx2-f32: compiled, not run (this CPU lacks it)",
                    "gemm: no kernel runs on this CPU; the BLAS path agrees against the reference"],
}


@pytest.mark.parametrize("cpu", sorted(CPUS))
@pytest.mark.parametrize("unit", UNIT_TESTS)
def test_unit_tests_pass_on_an_emulated_cpu(cpu, unit, tmp_path):
    binary = os.path.join(ROOT, "build", "tests", unit)
    assert os.access(binary, os.X_OK), f"{binary} is not built (make {os.path.relpath(binary, ROOT)})"
    env = dict(os.environ, OPENBLAS_CORETYPE=cpu, VCLIP_CACHE_DIR=str(tmp_path / "cache"))
    p = subprocess.run([QEMU, "-cpu", cpu, binary], capture_output=True, text=True, errors="replace", timeout=900, env=env)
    out = p.stdout + p.stderr
    assert p.returncode == 0, f"{unit} on QEMU's {cpu} failed ({p.returncode}):\n{out[-4000:]}"
    assert " passed, 0 failed" in p.stdout.splitlines()[-1], f"{unit} on QEMU's {cpu}: {p.stdout.splitlines()[-1]}"
    if unit == "test_kernels":
        for line in CPUS[cpu]:
            assert line in p.stdout, f"test_kernels on QEMU's {cpu} does not say '{line}':\n{p.stdout[-3000:]}"
