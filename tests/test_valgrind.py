"""Memcheck over the commands that decode video and compile models: reads of
memory nothing wrote, which ASan and UBSan do not see.  Valgrind found two
such bugs that every other test missed (swscale left the last width % 8
pixels of each RGB row unwritten, so 340- and 426-wide clips carried stale
right-edge columns into training crops; the attention fuser's probe cache
hashed uninitialised struct padding).  Valgrind's CPU has no AVX-512, so
these runs also take the AVX2 kernels and FFmpeg's AVX2 paths.  The clips are
decoded in both modes (test views with three crops, and a train-mode clip),
the models are the OpenAI-layout visual and text fixtures at opset 17, and
the outputs must equal the same commands' outputs outside valgrind."""
import os
import shutil
import subprocess

import numpy as np
import pytest

from conftest import BUILDS, FIXTURES, run_tool

VALGRIND = shutil.which("valgrind")
if VALGRIND is None:  # install-deps installs it: its absence is a broken setup, not a reason to skip
    raise RuntimeError("valgrind is missing: run tools/install-deps.sh (Debian's valgrind)")

CLIPS = [os.path.join(FIXTURES, "videos", n) for n in ("arm_wrestling.mp4", "cleaning_pool.mp4", "apply_eye_makeup.avi",
                                                       "flipping_pancake.mkv")]


def memcheck(tool, *args, tmp_path):
    """tool's run under memcheck, and memcheck's log (its reports; 97 is the exit status when there are any)."""
    env = dict(os.environ, VCLIP_CACHE_DIR=str(tmp_path / "cache"))
    cmd = [VALGRIND, "-q", "--error-exitcode=97", "--exit-on-first-error=no", "--errors-for-leak-kinds=none",
           f"--log-file={tmp_path / 'memcheck.log'}", os.path.join(BUILDS["opt"], tool), *map(str, args)]
    p = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=600, env=env)
    log = (tmp_path / "memcheck.log").read_text(errors="replace")
    return p, log


def assert_clean(p, log, what):
    assert p.returncode != 97, f"{what}: memcheck reported errors:\n{log[:6000]}"
    assert p.returncode == 0, f"{what} failed ({p.returncode}):\n{p.stderr[-3000:]}"


@pytest.mark.parametrize("mode", [["--mode", "test", "--crops", "3"], ["--mode", "train", "--seed", "3"]], ids=["test", "train"])
def test_decoding_reads_only_written_memory(mode, tmp_path):
    for clip in CLIPS:
        out, ref = tmp_path / "clips.npy", tmp_path / "ref.npy"
        p, log = memcheck("vclip-run", "frames", clip, "-o", out, *mode, tmp_path=tmp_path)
        assert_clean(p, log, f"vclip-run frames {os.path.basename(clip)} {' '.join(mode)}")
        run_tool("opt", "vclip-run", "frames", clip, "-o", ref, *mode, check=True)
        assert np.array_equal(np.load(out), np.load(ref)), f"{os.path.basename(clip)}: frames differ under valgrind"


@pytest.mark.parametrize("name,output", [("openai_visual_op17", "image_features"), ("openai_text_op17", "text_features")])
def test_compile_and_run_read_only_written_memory(name, output, tmp_path):
    d = os.path.join(FIXTURES, name)
    inp = next(f for f in os.listdir(d) if f.startswith("input_"))
    args = ["run", os.path.join(d, "model.onnx"), "--input", f"{inp[6:-4]}={os.path.join(d, inp)}", "--threads", "2",
            "--precision", "fp32"]
    out = tmp_path / "out.npy"
    p, log = memcheck("vclipc", *args, "--output", f"{output}={out}", tmp_path=tmp_path)
    assert_clean(p, log, f"vclipc run {name}")
    want = np.load(os.path.join(d, f"expected_{output}.npy"))
    assert np.allclose(np.load(out), want, rtol=1e-4, atol=1e-5), f"{name}: output under valgrind differs from ONNX Runtime's"
