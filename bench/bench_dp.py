#!/usr/bin/env python3
"""Data-parallel training on the CPU (issue 16): the demo's fine-tuning data
and CLIP through `vclip-run train`, at one global batch, as

  - 1 process of 1 thread (the base),
  - 1 process of 2 threads (threads share the step),
  - 2 MPI ranks of 1 thread each (`mpirun -np 2`; the ranks share the batch),

alternating in rounds in one run.  The scaling efficiency of a way of using
two cores is base time / (2 x its time).  For the 2-rank run the step splits
into the loader's wait (data_s), the wait after the backward pass for the
gradient all-reduce and the slower rank (comm_wait_s), and the rest
(compute); the run's summary says how much of the gradient bytes started
their all-reduce during the backward pass.  Writes (or updates the section
for this CPU in) bench/results/distributed.md.

Usage: python3 bench/bench_dp.py [--rounds 3] [--epochs 4] [--batch 8]
"""
import argparse
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RUN = os.path.join(ROOT, "bin", "vclip-run")
sys.path.insert(0, HERE)
from bench_versions import cpu_name  # noqa: E402

ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")


def demo_data(tmp):
    out = os.path.join(tmp, "demo")
    subprocess.run([RUN, "demo", "--quick", "--seeds", "1", "--write-videos", "--out", out], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    return out


def train(demo, out, ranks, threads, a):
    v = os.path.join(demo, "videos")
    args = [RUN, "train", "--visual", os.path.join(demo, "clip", "visual.onnx"), "--classes", os.path.join(v, "classes_seen.safetensors"),
            "--train-list", os.path.join(v, "seen.csv"), "--root", v, "--frames", "8", "--stride", "1", "--batch", str(a.batch),
            "--epochs", str(a.epochs), "--lr", "3e-4", "--warmup-epochs", "1", "--threads", str(threads), "--workers", "1",
            "--bucket-mb", str(a.bucket_mb), "--out", out]
    cmd = ["mpirun", "-np", str(ranks), "--oversubscribe", "--bind-to", "none", *args] if ranks > 1 else args
    p = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    if p.returncode:
        raise SystemExit(f"bench_dp: {' '.join(cmd)} failed:\n{p.stderr}")
    steps = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))][1:]  # the first step compiles and plans
    m = re.search(r"([\d.]+) MB of gradients per step in (\d+) buckets?; (\d+)% of the bytes started their all-reduce during "
                  r"the backward pass, on average ([\d.]+) ms before its end", p.stdout)
    return {"step_s": statistics.median(s["step_s"] for s in steps),
            "data_s": statistics.median(s["data_s"] for s in steps),
            "comm_s": statistics.median(s.get("comm_wait_s", 0.0) for s in steps),
            "grad_mb": float(m.group(1)) if m else None, "buckets": int(m.group(2)) if m else None,
            "overlap": int(m.group(3)) if m else None, "lead_ms": float(m.group(4)) if m else None, "steps": len(steps) + 1}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8, help="the global batch")
    ap.add_argument("--bucket-mb", type=float, default=0.05,
                    help="gradient buckets (the demo's CLIP has 0.44 MB of gradients: the default makes about 9, as 25 MB "
                         "buckets do for ViT-B/16's 344 MB)")
    a = ap.parse_args()
    configs = [("1 process x 1 thread", 1, 1), ("1 process x 2 threads", 1, 2), ("2 ranks x 1 thread (MPI)", 2, 1)]
    with tempfile.TemporaryDirectory() as tmp:
        demo = demo_data(tmp)
        runs = {c[0]: [] for c in configs}
        for r in range(a.rounds):
            for label, ranks, threads in configs:
                runs[label].append(train(demo, os.path.join(tmp, f"{r}-{ranks}-{threads}"), ranks, threads, a))
                print(f"round {r + 1}: {label}: {runs[label][-1]}", file=sys.stderr)
    med = {k: {f: statistics.median(x[f] for x in v) if v[0][f] is not None else None for f in v[0]} for k, v in runs.items()}
    base = med[configs[0][0]]["step_s"]
    lines = [f"## {cpu_name()}", "",
             f"Measured {datetime.date.today()} by `bench/bench_dp.py` ({os.cpu_count()} cores): the demo's CLIP and its seen-class "
             f"videos (`vclip-run demo --quick --write-videos`) fine-tuned by `vclip-run train`, global batch {a.batch}, T = 8, "
             f"IWR on, {a.epochs} epochs ({med[configs[0][0]]['steps']} steps), {a.rounds} alternating rounds; "
             "medians of the per-step times (`step_s` in metrics.jsonl, first step left out) and of their rounds. "
             "Efficiency = (1 x 1 time) / (2 x time): 1.0 would be perfect use of the second core.", "",
             "| run | step ms | efficiency | loader wait ms | all-reduce + peer wait ms | compute ms | gradients (buckets) | bytes started during backward | their lead over its end |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for label, _, _ in configs:
        m = med[label]
        ov = f"{m['overlap']:.0f}%" if m["overlap"] is not None else "-"
        grads = f"{m['grad_mb']:.2f} MB ({m['buckets']:.0f})" if m["grad_mb"] is not None else "-"
        lead = f"{m['lead_ms']:.1f} ms" if m["lead_ms"] is not None else "-"
        eff = "-" if label == configs[0][0] else "%.2f" % (base / (2 * m["step_s"]))
        lines.append(f"| {label} | {1e3 * m['step_s']:.1f} | {eff} | "
                     f"{1e3 * m['data_s']:.1f} | {1e3 * m['comm_s']:.1f} | {1e3 * (m['step_s'] - m['data_s'] - m['comm_s']):.1f} | {grads} | {ov} | {lead} |")
    dp, th = med[configs[2][0]]["step_s"], med[configs[1][0]]["step_s"]
    lines += ["", f"2 ranks x 1 thread against 1 process x 2 threads: {th / dp:.2f}x the speed at the same global batch.", ""]
    path = os.path.join(HERE, "results", "distributed.md")
    text = open(path).read() if os.path.exists(path) else "# Data-parallel training on the CPU\n\nOne section per CPU; a new run replaces its CPU's section.\n\n"
    head = lines[0]
    parts = re.split(r"(?m)^(?=## )", text)
    kept = [p for p in parts if not p.startswith(head + "\n")]
    with open(path, "w") as f:
        f.write("".join(kept).rstrip("\n") + "\n\n" + "\n".join(lines))
    print("\n".join(lines))
    print("wrote bench/results/distributed.md")


if __name__ == "__main__":
    main()
