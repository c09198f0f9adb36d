#!/usr/bin/env bash
# tests/gpu/run.sh — the one script a session lent a GPU runs (see DEVELOPERS.md):
# builds, reports the device, runs the CUDA execution tests and compiles every
# generated kernel for the device's architecture.  Results go under $OUT.
# Usage (on the device machine): OUT=/some/dir tests/gpu/run.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export VCLIP_CACHE_DIR="$OUT/cache"
{ nvidia-smi || echo "nvidia-smi unavailable"; } > "$OUT/nvidia-smi.txt" 2>&1
make -j"$(nproc)" all build/tests/test_cuda build/tests/test_codegen > "$OUT/build.log" 2>&1 || { echo "build failed, see $OUT/build.log"; exit 1; }
status=0
./build/tests/test_cuda > "$OUT/test_cuda.txt" 2>&1 || status=1
./build/tests/test_codegen > "$OUT/test_codegen.txt" 2>&1 || status=1
tail -n 3 "$OUT"/test_cuda.txt "$OUT"/test_codegen.txt
exit $status
