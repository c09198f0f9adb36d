#!/usr/bin/env python3
"""Two builds of vclipc on the same models, alternating rounds in one run:
did a change (a refactor, a new pass order) make CPU inference slower?  The
ratio is the base build's time / this build's (> 1: this build is faster).
ONNX Runtime runs in the same rounds, so each build's ratio to it is given
too, comparable with bench/results/cpu_inference/.  Models come from
bench/make_models.py.

  python3 bench/bench_versions.py BASE_VCLIPC [--rounds 5] [--repeat 10] [--out FILE.md]

Build the base in a worktree: git worktree add /tmp/base REV && make -C /tmp/base all.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_cpu import MODELS, ORT_RUNNER, VCLIPC, inputs_for, run_with_rss  # noqa: E402

ROWS = [("ViT-B/32 visual", "vit_b32_visual.onnx", "visual", 8, "image_features"),
        ("ViT-B/32 text", "vit_b32_text.onnx", "text", 8, "text_features"),
        ("ViT-B/32 visual", "vit_b32_visual.onnx", "visual", 1, "image_features")]


def cpu_name():
    """The model name, and the vector features that decide our GEMM (a
    virtual machine's name can be as bare as "Intel(R) Xeon(R) Processor")."""
    name, flags = platform.processor() or "unknown CPU", set()
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
    feats = [f for f, k in (("AVX-512", "avx512f"), ("AVX512-BF16", "avx512_bf16"), ("AMX-BF16", "amx_bf16")) if k in flags]
    return f"{name}; {', '.join(feats) or 'no AVX-512'}"


def vclipc(binary, model, feeds, out, threads, repeat):
    args = [binary, "run", model, "--threads", str(threads), "--repeat", str(repeat), "--json", "--output", out]
    for k, v in feeds.items():
        args += ["--input", f"{k}={v}"]
    return json.loads(run_with_rss(args)[0])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("base", help="the other build's vclipc")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", help="write the table here (markdown)")
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, file, kind, batch, outname in ROWS:
            model = os.path.join(MODELS, file)
            feeds = inputs_for(kind, batch, tmp)
            t = {"base": [], "this": [], "ort": []}
            outs = {}
            for _ in range(a.rounds):
                for side, binary in (("base", a.base), ("this", VCLIPC)):
                    outs[side] = os.path.join(tmp, f"{side}.npy")
                    t[side].append(vclipc(binary, model, feeds, f"{outname}={outs[side]}", a.threads, a.repeat))
                o, _ = run_with_rss([sys.executable, "-c", ORT_RUNNER, model, str(a.threads), str(a.repeat),
                                     os.path.join(tmp, "ort.npy"), json.dumps(feeds)])
                t["ort"].append(json.loads(o))
            med = {k: float(np.median([r["median_ms"] for r in v])) for k, v in t.items()}
            best = {k: min(r["min_ms"] for r in v) for k, v in t.items()}
            same = float(np.abs(np.load(outs["base"]) - np.load(outs["this"])).max())
            row = {"label": label, "batch": batch, **{f"{k}_ms": v for k, v in med.items()},
                   "ratio": med["base"] / med["this"], "best_ratio": best["base"] / best["this"],
                   "round_ratios": [b["median_ms"] / n["median_ms"] for b, n in zip(t["base"], t["this"])],
                   "ort_ratio_base": med["ort"] / med["base"], "ort_ratio_this": med["ort"] / med["this"],
                   "max_abs_diff": same}
            print(json.dumps(row), flush=True)
            rows.append(row)
    lines = [f"# This build against another, CPU inference ({cpu_name()})", "",
             f"Measured {datetime.date.today()} by `bench/bench_versions.py` ({os.cpu_count()} cores, {a.threads} threads, "
             f"{a.rounds} alternating rounds of {a.repeat} runs each; ORT in the same rounds).  Ratio = base / this "
             "(median of round medians; best-run: each side's fastest run).", "",
             "| model | batch | base ms | this ms | ratio | best-run ratio | rounds | ORT/base | ORT/this | max |diff| |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['label']} | {r['batch']} | {r['base_ms']:.1f} | {r['this_ms']:.1f} | {r['ratio']:.2f} | "
                     f"{r['best_ratio']:.2f} | {', '.join(f'{x:.2f}' for x in r['round_ratios'])} | "
                     f"{r['ort_ratio_base']:.2f} | {r['ort_ratio_this']:.2f} | {r['max_abs_diff']:.1e} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
