#!/usr/bin/env bash
# install-deps.sh — everything building and testing vclip needs, in one step
# (README and .ci/run both call it).  Debian packages go to the system; the
# Python packages the tests use go to a virtual environment in .venv (made
# here if missing), which the Makefile's test target runs from, so that no
# package installed by hand elsewhere can hide a missing line below.  With
# --fixtures, also the heavy tools that only regenerate test fixtures and
# benchmark models (torch, transformers, open_clip); CI never installs those.
set -euo pipefail

APT_PACKAGES=(
    make gcc clang libclang-rt-14-dev       # build; clang + its runtime for libFuzzer
    protobuf-c-compiler libprotobuf-c-dev   # ONNX parsing, schema compiled at build time
    libonnx-dev                             # ships onnx.proto (the schema we compile)
    libopenblas-dev                         # GEMM
    libpcre2-dev libutf8proc-dev            # tokenizer: Unicode classes, NFC and case mapping
    libjansson-dev zlib1g-dev               # JSON (vocab.json, class lists), gzip (BPE merges)
    libavformat-dev libavcodec-dev libswscale-dev libavutil-dev  # video decoding
    libpng-dev                              # contact sheets
    libjpeg-dev libcurl4-openssl-dev        # pseudo-captions: frames as JPEG, HTTP to model servers
    cmake g++                               # the caption tests' llama.cpp server, built below
    ffmpeg                                  # the tests make their own test videos with it
    valgrind                                # memcheck over decoding and compiling (tests/test_valgrind.py)
    qemu-user                               # the unit tests on CPUs without AVX-512 or AVX2 (tests/test_other_cpus.py)
    libopenmpi-dev openmpi-bin              # data-parallel training: mpicc builds the MPI plugin, mpirun launches
    python3 python3-venv                    # the tests' virtual environment (.venv)
)
PIP_PACKAGES=(numpy onnx onnxruntime pytest safetensors av pillow scikit-learn setuptools wheel gguf)  # setuptools, wheel: pip install ./python
FIXTURE_PACKAGES=(torch transformers open_clip_torch onnxscript)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

# The venv sits in the checkout; VCLIP_VENV moves it.  A broken or foreign
# one (a copied tree) is rebuilt rather than trusted.
VENV=${VCLIP_VENV:-"$(cd "$(dirname "$0")/.." && pwd)/.venv"}
if ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    rm -rf "$VENV"
    ${PYTHON:-python3} -m venv "$VENV"
fi
PY="$VENV/bin/python"
$PY -m pip install -q --disable-pip-version-check "${PIP_PACKAGES[@]}"
# NVRTC: every test run compiles the CUDA kernels to PTX (no GPU needed).
# The CUDA toolkit's library where there is one, else NVIDIA's wheel in the
# venv (the Makefile's test target points VCLIP_NVRTC at it).
if ! ls /usr/local/cuda*/lib64/libnvrtc.so* >/dev/null 2>&1 && ! ldconfig -p 2>/dev/null | grep -q 'libnvrtc\.so'; then
    $PY -m pip install -q --disable-pip-version-check nvidia-cuda-nvrtc
fi
# llama.cpp's server for the caption tests (a real OpenAI-protocol server with
# a tiny model the tests write).  No registry package ships its binary, so it
# is built from the llama.cpp that PyPI's llama-cpp-python sdist vendors
# (pinned), CPU only, once per venv (about 5 minutes on 2 cores).
LLAMA_PY_VERSION=0.3.36
LLAMA_DIR="$VENV/llama.cpp-$LLAMA_PY_VERSION"
if [ ! -x "$LLAMA_DIR/bin/llama-server" ]; then
    tmp=$(mktemp -d)
    $PY -m pip download -q --disable-pip-version-check --no-deps --no-binary=:all: "llama-cpp-python==$LLAMA_PY_VERSION" -d "$tmp"
    tar -xzf "$tmp"/llama_cpp_python-*.tar.gz -C "$tmp"
    src=$(echo "$tmp"/llama_cpp_python-*/vendor/llama.cpp)
    cmake -S "$src" -B "$tmp/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DGGML_NATIVE=OFF \
          -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DCMAKE_BUILD_RPATH='$ORIGIN' > "$tmp/cmake.log"
    cmake --build "$tmp/build" --target llama-server -j"$(nproc)" > "$tmp/build.log" ||
        { tail -20 "$tmp/build.log"; echo "install-deps: building llama-server failed"; exit 1; }
    mkdir -p "$LLAMA_DIR/bin"
    cp -P "$tmp"/build/bin/llama-server "$tmp"/build/bin/*.so* "$LLAMA_DIR/bin/"
    rm -rf "$tmp"
fi
if [ "${1:-}" = "--fixtures" ]; then
    $PY -m pip install -q --disable-pip-version-check "${FIXTURE_PACKAGES[@]}"
fi
echo "install-deps: done (Python packages in $VENV)"
