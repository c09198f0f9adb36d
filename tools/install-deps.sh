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
    ffmpeg                                  # the tests make their own test videos with it
    libopenmpi-dev openmpi-bin              # data-parallel training: mpicc builds the MPI plugin, mpirun launches
    python3 python3-venv                    # the tests' virtual environment (.venv)
)
PIP_PACKAGES=(numpy onnx onnxruntime pytest safetensors av pillow scikit-learn setuptools wheel)  # setuptools, wheel: pip install ./python
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
if [ "${1:-}" = "--fixtures" ]; then
    $PY -m pip install -q --disable-pip-version-check "${FIXTURE_PACKAGES[@]}"
fi
echo "install-deps: done (Python packages in $VENV)"
