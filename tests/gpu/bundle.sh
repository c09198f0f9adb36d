#!/usr/bin/env bash
# tests/gpu/bundle.sh — builds, on this machine, what tests/gpu/run.sh runs on a
# device machine, whose image has CUDA and Python but not our build
# dependencies (protobuf-c, OpenBLAS, Jansson): the binaries, with the
# repository root they run in as their data directory, and the shared
# libraries they need beyond glibc, packed into gpu-bundle.tar.xz (ignored by
# git).  Name gpu-bundle.tar.xz in the device call's carry; run.sh unpacks it.
# Usage: tests/gpu/bundle.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
B=build-gpu
targets=($B/bin/vclipc $B/bin/vclip-run $B/tests/test_cuda $B/tests/test_cuda_exec $B/tests/test_codegen $B/bench/gpu_infer)
# the binaries find the bundled libraries beside them (bin/ and build/*/ on the device), nothing else does
rpath='-Wl,--disable-new-dtags,-rpath,\$$ORIGIN/../gpu-bundle/lib:\$$ORIGIN/../../gpu-bundle/lib'
make -j"$(nproc)" BUILD=$B BIN=$B/bin DATA_DIR=. OPT="-O2 $rpath" "${targets[@]}" > /dev/null
rm -rf gpu-bundle gpu-bundle.tar.xz
mkdir -p gpu-bundle/bin gpu-bundle/build/tests gpu-bundle/build/bench gpu-bundle/lib
cp $B/bin/vclipc $B/bin/vclip-run gpu-bundle/bin/
cp $B/tests/test_cuda $B/tests/test_cuda_exec $B/tests/test_codegen gpu-bundle/build/tests/
cp $B/bench/gpu_infer gpu-bundle/build/bench/
# every library outside glibc and GCC's runtime (which the device has, newer)
ldd "${targets[@]}" | awk '$3 ~ /^\// {print $3}' | sort -u |
    grep -v -E '/(libc|libm|libdl|libpthread|librt|libgcc_s|ld-linux[^/]*)\.so' | while read -r lib; do cp -L "$lib" gpu-bundle/lib/; done
strip --strip-debug gpu-bundle/lib/* gpu-bundle/bin/* gpu-bundle/build/*/* 2>/dev/null || true
tar -cJf gpu-bundle.tar.xz gpu-bundle
rm -rf gpu-bundle
echo "gpu-bundle.tar.xz: $(du -h gpu-bundle.tar.xz | cut -f1) (name it in the device call's carry)"
