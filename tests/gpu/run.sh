#!/usr/bin/env bash
# tests/gpu/run.sh — the one script a session lent a GPU runs: reports the
# device, runs the CUDA tests (kernels against the interpreter and the
# reference kernels, cuBLASLt, whole exports through the CUDA session), every
# fixture through `vclipc run --target cuda` against ONNX Runtime's answers,
# the demo's smoke run trained and evaluated on the device, a short training
# whose gradients go through NCCL with one rank, one in fp16 with loss
# scaling and --recompute, and the GPU benchmark
# against PyTorch.  Results go under $OUT.
# The device image lacks our build dependencies: run tests/gpu/bundle.sh here
# first and carry gpu-bundle.tar.xz; without it this script builds in place.
# Usage (on the device machine): OUT=/some/dir tests/gpu/run.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export VCLIP_CACHE_DIR="$OUT/cache"
# CUDA's libraries (we dlopen them by name): the driver's, the toolkit's, or
# the ones the image's Python wheels carry
extra=$(python3 - <<'PY' 2>/dev/null
import glob, os
try:
    import nvidia
    roots = [p for p in nvidia.__path__]
except Exception:
    roots = []
print(":".join(d for r in roots for d in sorted(glob.glob(os.path.join(r, "*", "lib")))))
PY
)
for d in /usr/local/nvidia/lib64 /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
    [ -d "$d" ] && extra="$extra:$d"
done
export LD_LIBRARY_PATH="${extra#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
{ nvidia-smi || echo "nvidia-smi unavailable"; echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"; } > "$OUT/nvidia-smi.txt" 2>&1
if [ -f gpu-bundle.tar.xz ]; then
    tar -xJf gpu-bundle.tar.xz && mkdir -p bin build/tests build/bench &&
        cp gpu-bundle/bin/* bin/ && cp gpu-bundle/build/tests/* build/tests/ && cp gpu-bundle/build/bench/* build/bench/ ||
        { echo "could not unpack gpu-bundle.tar.xz"; exit 1; }
    echo "binaries from gpu-bundle.tar.xz (tests/gpu/bundle.sh)" > "$OUT/build.log"
else
    make -j"$(nproc)" all build/tests/test_cuda build/tests/test_cuda_exec build/tests/test_codegen build/bench/gpu_infer \
        > "$OUT/build.log" 2>&1 || { echo "build failed, see $OUT/build.log"; tail -5 "$OUT/build.log"; exit 1; }
fi
status=0
./build/tests/test_cuda > "$OUT/test_cuda.txt" 2>&1 || status=1
./build/tests/test_cuda_exec > "$OUT/test_cuda_exec.txt" 2>&1 || status=1
./build/tests/test_codegen > "$OUT/test_codegen.txt" 2>&1 || status=1
python3 tests/gpu/check_fixtures.py > "$OUT/fixtures.txt" 2>&1 || status=1
# training and eval on the device end to end: the demo's smoke run (a few steps of everything)
timeout 240 ./bin/vclip-run demo --quick --seeds 1 --target cuda --out "$OUT/demo" > "$OUT/demo_cuda.txt" 2>&1 || status=1
rm -rf "$OUT/demo/clip" "$OUT/demo/seed-"*
# NCCL with one rank: the gradients go through the same all-reduce as on eight GPUs (issue 16)
printf 'arm_wrestling.mp4,0\ncleaning_pool.mp4,1\napply_eye_makeup.avi,2\nflipping_pancake.mkv,3\n' > "$OUT/train.csv"
printf 'arm wrestling\ncleaning pool\napply eye makeup\nflipping pancake\n' > "$OUT/classes.txt"
timeout 120 ./bin/vclip-run train --target cuda --visual tests/fixtures/openai_visual_fullvocab/model.onnx \
    --text-model tests/fixtures/openai_text_fullvocab/model.onnx --classes "$OUT/classes.txt" --train-list "$OUT/train.csv" \
    --root tests/fixtures/videos --batch 2 --epochs 2 --out "$OUT/train-nccl" > "$OUT/train_nccl.log" 2>&1 &&
    grep -q "averaged on the device by NCCL over 1 rank" "$OUT/train_nccl.log" || status=1
{ echo "== training with NCCL over one rank"; cat "$OUT/train_nccl.log"; } >> "$OUT/demo_cuda.txt" # few files come back from $OUT
# fp16 GEMMs with dynamic loss scaling, and the blocks' activations recomputed
timeout 120 ./bin/vclip-run train --target cuda --precision fp16 --recompute --visual tests/fixtures/openai_visual_fullvocab/model.onnx \
    --text-model tests/fixtures/openai_text_fullvocab/model.onnx --classes "$OUT/classes.txt" --train-list "$OUT/train.csv" \
    --root tests/fixtures/videos --batch 2 --epochs 2 --out "$OUT/train-fp16" > "$OUT/train_fp16.log" 2>&1 &&
    grep -q "blocks keep only their input" "$OUT/train_fp16.log" && grep -q '"loss_scale"' "$OUT/train-fp16/metrics.jsonl" || status=1
{ echo "== fp16 with loss scaling and --recompute"; cat "$OUT/train_fp16.log" "$OUT/train-fp16/metrics.jsonl"; } >> "$OUT/demo_cuda.txt"
rm -rf "$OUT/train-nccl" "$OUT/train_nccl.log" "$OUT/train-fp16" "$OUT/train_fp16.log" "$OUT/train.csv" "$OUT/classes.txt"
timeout 300 python3 bench/bench_gpu.py --out "$OUT/gpu_inference.md" > "$OUT/bench_gpu.txt" 2>&1 || status=1
rm -rf "$OUT/cache" # only 8 files come back from $OUT
tail -n 3 "$OUT"/test_cuda.txt "$OUT"/test_cuda_exec.txt "$OUT"/test_codegen.txt "$OUT"/fixtures.txt "$OUT"/demo_cuda.txt "$OUT"/bench_gpu.txt
exit $status
