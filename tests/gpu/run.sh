#!/usr/bin/env bash
# tests/gpu/run.sh — the one script a session lent a GPU runs: builds, reports
# the device, runs the CUDA tests (kernels against the interpreter and the
# reference kernels, cuBLASLt, whole exports through the CUDA session), every
# fixture through `vclipc run --target cuda` against ONNX Runtime's answers,
# and the GPU benchmark against PyTorch.  Results go under $OUT.
# Usage (on the device machine): OUT=/some/dir tests/gpu/run.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export VCLIP_CACHE_DIR="$OUT/cache"
{ nvidia-smi || echo "nvidia-smi unavailable"; } > "$OUT/nvidia-smi.txt" 2>&1
make -j"$(nproc)" all build/tests/test_cuda build/tests/test_cuda_exec build/tests/test_codegen build/bench/gpu_infer \
    > "$OUT/build.log" 2>&1 || { echo "build failed, see $OUT/build.log"; exit 1; }
status=0
./build/tests/test_cuda > "$OUT/test_cuda.txt" 2>&1 || status=1
./build/tests/test_cuda_exec > "$OUT/test_cuda_exec.txt" 2>&1 || status=1
./build/tests/test_codegen > "$OUT/test_codegen.txt" 2>&1 || status=1
python3 tests/gpu/check_fixtures.py > "$OUT/fixtures.txt" 2>&1 || status=1
timeout 300 python3 bench/bench_gpu.py --out "$OUT/gpu_inference.md" > "$OUT/bench_gpu.txt" 2>&1 || status=1
tail -n 3 "$OUT"/test_cuda.txt "$OUT"/test_cuda_exec.txt "$OUT"/test_codegen.txt "$OUT"/fixtures.txt "$OUT"/bench_gpu.txt
exit $status
