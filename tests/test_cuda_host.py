"""Mutation checks of the CUDA C kernels as they run on the host
(tests/unit/cuda_host.h): a kernel broken on purpose must make the CUDA tests
fail, with a message that points at it.  Each case replaces one piece of a
kernel's source (VCLIP_CUDA_MUTATE_FROM/TO; the device build by NVRTC is left
alone) and runs build/tests/test_cuda, which compares every kernel with the
reference kernels on the emulated device (or build/tests/test_cuda_exec, which
runs a whole training step's graph there against the CPU).  A mutation that
no kernel source contains fails the case too, so the list follows the
kernels' text."""
import os
import subprocess

import pytest

from conftest import CACHE_DIR, ROOT

# (what is broken, FROM, TO, a line the failure must print[, the test binary[:the part of test_cuda_exec to run]])
MUTATIONS = [
    ("missing __syncthreads after the partial sums are written",
     "if (lane == 0) red[warp] = v; __syncthreads();", "if (lane == 0) red[warp] = v;", "layernorm vs reference"),
    ("missing __syncthreads before shared memory is reused",
     "v = is_max ? warp_max(v) : warp_sum(v); __syncthreads();", "v = is_max ? warp_max(v) : warp_sum(v);",
     "layernorm vs reference"),
    ("wrong shuffle lane in the warp sum",
     "v += __shfl_xor_sync(0xffffffffu, v, o);", "v += __shfl_xor_sync(0xffffffffu, v, o >> 1);", "attention case 0 vs reference"),
    ("wrong index in softmax's read",
     "y[r * cols + c] = expf(xr[c] - m) * inv;", "y[r * cols + c] = expf(xr[cols - 1 - c] - m) * inv;", "softmax vs reference"),
    ("wrong thread index in the generated elementwise kernels",
     "const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;",
     "const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x / 2;", "device vs interpreter"),
    ("a barrier only some threads reach",
     "if (lane == 0) red[warp] = v; __syncthreads();", "if (lane == 0) { red[warp] = v; __syncthreads(); }",
     "deadlocks: thread 0 waits at __syncthreads"),
    ("the generated reduction's second warp sum on the wrong lane",
     "part[threadIdx.x] : 0.0f;\n    for (int off = 16; off > 0; off >>= 1) { const float o = __shfl_xor_sync(0xffffffffu, acc, off);",
     "part[threadIdx.x] : 0.0f;\n    for (int off = 16; off > 0; off >>= 1) { const float o = __shfl_xor_sync(0xffffffffu, acc, off - 1);",
     "fused reduction"),
    ("the attention gradient's dQ from values instead of keys",
     "for (int t = 0; t < 8; t++) dq[t] += ds * k[t];", "for (int t = 0; t < 8; t++) dq[t] += ds * v[t];",
     "attention gradient case 0, dq vs reference"),
    ("missing __syncthreads between the attention gradient's row statistics and the dK/dV phase that reads other warps' rows",
     "__syncthreads(); if (dQ)", "if (dQ)", "attention gradient case 0, dk vs reference"),
    ("the attention gradient leaving the channels outside the heads stale",
     "if (h == 0) {", "if (h == 1) {", "attention gradient case 5, dq vs reference"),
    ("dK and dV from query rows whose window does not hold the key",
     "reads |= src[s] == bk;", "reads |= 1;", "attention gradient case 3, dk vs reference"),
    ("softmax cross-entropy's gradient with half the one-hot",
     "(c == y ? 1.0f : 0.0f)", "(c == y ? 0.5f : 0.0f)", "training graph: emulated device vs CPU", "test_cuda_exec:training"),
    ("the indexed gather reading a row backwards",
     "x[(o * len + g) * inner + c]", "x[(o * len + g) * inner + inner - 1 - c]", "emulated device vs CPU", "test_cuda_exec:models"),
    ("AdamW on the device keeping the gradient instead of the first moment",
     "m[i] = mj;", "m[i] = gj;", "captured steps: parameters after 3 AdamW steps", "test_cuda_exec:training"),
    ("the gradient norm summing magnitudes instead of squares",
     "s += g[i] * g[i];", "s += fabsf(g[i]);", "captured steps: gradient norms", "test_cuda_exec:training"),
    ("the update ignoring the clip scale the device derived",
     "ctl[6] = scale;", "ctl[6] = 1.0 / ctl[4];", "captured steps: parameters after 3 AdamW steps", "test_cuda_exec:training"),
    ("AdamW updating on a step the device decided to skip",
     "if (i >= n || ctl[7] == 0.0) return;", "if (i >= n) return;", "a skipped step changed", "test_cuda_exec:training"),
    ("IWR's interpolation with the wrong weight",
     "const float a = alpha[0];", "const float a = alpha[0] * 0.5f;", "training graph: emulated device vs CPU", "test_cuda_exec:training"),
    ("the Kahan sum dropping what came before",
     "sum = t;", "sum = v;", "training graph: emulated device vs CPU", "test_cuda_exec:training"),
    ("ArgMax taking the first of equal values where select_last_index asks for the last",
     "(select_last ? v >= bv : v > bv)", "(select_last ? v > bv : v > bv)", "select_last_index 1: the device's bytes differ"),
    ("the integer kernels reading b with a's strides",
     "ib += c * p[2 * rank + d];", "ib += c * p[rank + d];", "Add of int64, broadcast: the device's bytes differ"),
    ("the end-of-text position one token late",
     "if (better) { bv = v; best = k; }", "if (better) { bv = v; best = k + 1; }", "emulated device vs CPU", "test_cuda_exec:models"),
    ("layernorm's scale gradient without xhat",
     "if (t) t[r * cols + c] = dr[c] * xh;", "if (t) t[r * cols + c] = dr[c];", "training graph: emulated device vs CPU",
     "test_cuda_exec:training"),
]


def run_test(binary, env_extra, timeout=900):
    path = os.path.join(ROOT, binary)
    assert os.path.exists(path), f"{path} is not built: run make (make test does)"
    env = dict(os.environ, VCLIP_CACHE_DIR=CACHE_DIR, ASAN_OPTIONS="detect_leaks=0:abort_on_error=0", **env_extra)
    return subprocess.run([path], capture_output=True, text=True, errors="replace", timeout=timeout, env=env)


def test_unmutated_kernels_pass():
    p = run_test("build/tests/test_cuda", {})
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "every kernel runs as the host build of its CUDA C" in p.stdout or "device:" in p.stdout, p.stdout[-2000:]


@pytest.mark.parametrize("mutation", MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_mutation_is_caught(mutation):
    what, src, dst, expect = mutation[:4]
    binary, _, only = (mutation[4] if len(mutation) > 4 else "test_cuda").partition(":")
    p = run_test(f"build/tests/{binary}", {"VCLIP_CUDA_MUTATE_FROM": src, "VCLIP_CUDA_MUTATE_TO": dst, "VCLIP_CUDA_EXEC_ONLY": only})
    out = p.stdout + p.stderr
    assert "mutation applied" in p.stderr, f"no kernel source contains {src!r}: update the mutation to the kernels' text"
    assert p.returncode != 0, f"{what}: the CUDA tests still pass\n{out[-3000:]}"
    assert expect in out, f"{what}: expected a failure mentioning {expect!r}\n{out[-3000:]}"


def test_out_of_bounds_write_is_stopped_by_the_sanitizer():
    """In the ASan build the kernels are instrumented too: a write one past the row is a heap-buffer-overflow in the kernel."""
    p = run_test("build-asan/tests/test_cuda", {"VCLIP_CUDA_MUTATE_FROM": "y[r * cols + c] = expf(xr[c] - m) * inv;",
                                                 "VCLIP_CUDA_MUTATE_TO": "y[r * cols + c + 1] = expf(xr[c] - m) * inv;"})
    assert p.returncode != 0 and "heap-buffer-overflow" in p.stderr and "vclip_softmax" in p.stderr, p.stderr[-3000:]
