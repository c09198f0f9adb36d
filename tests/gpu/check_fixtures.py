#!/usr/bin/env python3
"""Every fixture through `vclipc run --target cuda` against ONNX Runtime's
answers (the expected_*.npy each fixture carries, and ORT on the standard-ops
export for the VCLIP temporal models): fp32 within 1e-3, bf16 within 2e-2
(bf16 keeps 8 mantissa bits).  Run by tests/gpu/run.sh on a machine lent a
GPU; prints one line per check and exits non-zero on any failure."""
import glob
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VCLIPC = os.path.join(ROOT, "bin", "vclipc")
FIX = os.path.join(ROOT, "tests", "fixtures")
TOL = {"fp32": 1e-3, "bf16": 2e-2}


def rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-6))


def run(model, feeds, outputs, precision, tmp):
    args = [VCLIPC, "run", model, "--target", "cuda", "--precision", precision, "--repeat", "3"]
    for k, v in feeds.items():
        args += ["--input", f"{k}={v}"]
    got = {}
    for k in outputs:
        got[k] = os.path.join(tmp, f"{k}.npy")
        args += ["--output", f"{k}={got[k]}"]
    p = subprocess.run(args, capture_output=True, text=True)
    if p.returncode:
        return None, p.stderr.strip()
    return {k: np.load(v) for k, v in got.items()}, p.stdout.strip().splitlines()[-1]


def main():
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        cases = []
        for d in sorted(glob.glob(os.path.join(FIX, "*"))):
            model = os.path.join(d, "model.onnx")
            if not os.path.exists(model):
                continue
            feeds = {os.path.basename(f)[6:-4]: f for f in glob.glob(os.path.join(d, "input_*.npy"))}
            expected = {os.path.basename(f)[9:-4]: np.load(f) for f in glob.glob(os.path.join(d, "expected_*.npy"))}
            cases.append((os.path.basename(d), model, feeds, expected))
        # VCLIP: the temporal models against ORT on their standard-ops twin
        import onnxruntime as ort
        video = os.path.join(FIX, "vclip_temporal", "video.npy")
        for window, boundary in ((1, "zero"), (2, "mask")):
            m, std = os.path.join(tmp, f"v{window}.onnx"), os.path.join(tmp, f"v{window}_std.onnx")
            base = [VCLIPC, "compile", os.path.join(FIX, "openai_visual_op17", "model.onnx"), "--frames", "8",
                    "--temporal-window", str(window), "--temporal-boundary", boundary]
            subprocess.run(base + ["-o", m], check=True)
            subprocess.run(base + ["--export-standard-ops", "-o", std], check=True)
            want = ort.InferenceSession(std, providers=["CPUExecutionProvider"]).run(None, {"video": np.load(video)})[0]
            cases.append((f"vclip_w{window}_{boundary}", m, {"video": video}, {"frame_embeddings": want}))
        for name, model, feeds, expected in cases:
            for precision in ("fp32", "bf16"):
                got, note = run(model, feeds, list(expected), precision, tmp)
                if got is None:
                    print(f"FAIL {name} {precision}: {note}")
                    failures += 1
                    continue
                for k, want in expected.items():
                    e = rel(got[k], want)
                    ok = e < TOL[precision]
                    failures += not ok
                    print(f"{'ok  ' if ok else 'FAIL'} {name} {precision} {k}: rel err {e:.2e} (tolerance {TOL[precision]:g}); {note}")
    print(f"{failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
