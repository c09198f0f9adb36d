"""Shared helpers for the integration tests: where the binaries are, how to run
them, and which fixtures exist.  VCLIPC_VARIANTS selects the builds tested
(default: the optimized build and the ASan+UBSan build when present)."""
import glob
import os
import shutil
import subprocess

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
BUILDS = {"opt": os.path.join(ROOT, "bin"), "asan": os.path.join(ROOT, "build-asan", "bin")}


def variants():
    names = os.environ.get("VCLIPC_VARIANTS", "opt,asan").split(",")
    return [n for n in names if os.path.exists(os.path.join(BUILDS[n], "vclipc"))]


def fixture_names():
    return sorted(os.path.basename(os.path.dirname(p)) for p in glob.glob(os.path.join(FIXTURES, "*", "model.onnx")))


class Fixture:
    def __init__(self, name):
        self.name = name
        self.dir = os.path.join(FIXTURES, name)
        self.model = os.path.join(self.dir, "model.onnx")
        self.inputs = {os.path.basename(p)[6:-4]: p for p in glob.glob(os.path.join(self.dir, "input_*.npy"))}
        self.expected = {os.path.basename(p)[9:-4]: p for p in glob.glob(os.path.join(self.dir, "expected_*.npy"))}


CACHE_DIR = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"vclip-test-cache-{os.getpid()}")  # never the user's cache


def run_tool(variant, tool, *args, check=False, timeout=300, env_extra=None):
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0", UBSAN_OPTIONS="print_stacktrace=1",
               VCLIP_CACHE_DIR=CACHE_DIR)
    env.update(env_extra or {})
    p = subprocess.run([os.path.join(BUILDS[variant], tool), *map(str, args)], capture_output=True, text=True,
                       errors="replace", timeout=timeout, env=env)
    if check and p.returncode != 0:
        raise AssertionError(f"{tool} {' '.join(map(str, args))} failed ({p.returncode}):\n{p.stderr}")
    return p


MPIRUN = shutil.which("mpirun")
if MPIRUN is None:  # install-deps installs openmpi-bin: its absence is a broken setup, not a reason to skip
    raise RuntimeError("mpirun is missing: run tools/install-deps.sh (Debian's openmpi-bin and libopenmpi-dev)")


def mpi_env(extra=None):
    """The environment for `mpirun -np N --oversubscribe`: our cache, and Open MPI allowed to run as root (CI)."""
    e = dict(os.environ, VCLIP_CACHE_DIR=CACHE_DIR, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    e.update(extra or {})
    return e


def mpi_command(ranks, exe, args):
    cmd = [exe, *map(str, args)]
    return [MPIRUN, "-np", str(ranks), "--oversubscribe", *cmd] if ranks > 1 else cmd


def assert_clean_exit(p):
    """A process that refused bad input: exit 1 or 2 with a message, no signal, no sanitizer report."""
    assert p.returncode in (1, 2), f"exit {p.returncode}\nstderr:\n{p.stderr}"
    assert "Sanitizer" not in p.stderr and "runtime error" not in p.stderr, p.stderr
    assert p.stderr.strip(), "no error message"


def rel_err(got, want):
    scale = max(float(np.abs(want).max()), 1e-6)
    return float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max()) / scale


@pytest.fixture(params=variants())
def variant(request):
    return request.param
