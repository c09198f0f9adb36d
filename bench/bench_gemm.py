#!/usr/bin/env python3
"""Our GEMM against OpenBLAS's sgemm on ViT-B/32's Linear shapes, in one
run, as ratios (issue 19: the GEMM is about 85% of an fp32 forward): each f32
kernel this CPU runs, and each bf16 one (on bf16 weight panels, as
--precision auto/bf16 runs them; its ratio is against OpenBLAS's f32).

Both run on the same threads over the same operands; our weights are packed
beforehand, as a compiled model holds them.  Tokens 50 is batch 1 of the
visual tower, 400 batch 8.  "warm" reuses cached operands; "cold" evicts the
caches before every call, as a model run meets each layer's weights (the
case that decides batch 1).  Writes bench/results/gemm/<cpu>.md (the CPU
named in it; other CPUs' tables stay).

Usage: python3 bench/bench_gemm.py [--threads 2] [--rounds 3] [--repeat 10]
Builds build/bench/gemm with make.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cpu_info import cpu_description, cpu_slug  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DRIVER = os.path.join(ROOT, "build", "bench", "gemm")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args()
    subprocess.run(["make", "-s", "-C", ROOT, "build/bench/gemm"], check=True)
    rows = []
    for tokens in (50, 400):
        for cache in ("warm", "cold"):
            out = subprocess.run([DRIVER, str(tokens), str(args.threads), str(args.rounds), str(args.repeat), cache],
                                 check=True, capture_output=True, text=True).stdout
            rows += [json.loads(line) for line in out.splitlines() if line.startswith("{")]
            print(f"tokens {tokens}, {cache}: done", flush=True)
    cpu = cpu_description()
    l2 = subprocess.run(["getconf", "LEVEL2_CACHE_SIZE"], capture_output=True, text=True).stdout.strip()
    l2 = f"{int(l2) // 1024} KB" if l2.isdigit() and int(l2) > 0 else "unknown"
    lines = [f"# GEMM (f32 and bf16 kernels) on {cpu}", "",
             f"Measured {datetime.date.today()} by `bench/bench_gemm.py`, {args.threads} threads for both, "
             f"L2 {l2} per core (it sets our row blocks).  Time: the median over {args.rounds} alternating rounds of each "
             f"round's median of {args.repeat} calls.  Ratio = OpenBLAS time / ours.  Cold: the caches are "
             "evicted before every call (512 MB written), as a model run meets its weights.  The bf16 kernels "
             "round A to bf16 and run on weights packed in bf16 (sums in f32): their ratio is against OpenBLAS's f32.", "",
             "| tokens | K | N | cache | OpenBLAS ms | OpenBLAS GFLOP/s | kernel | ours ms | ours GFLOP/s | ratio |",
             "| ---: | ---: | ---: | --- | ---: | ---: | --- | ---: | ---: | ---: |"]
    by = {}
    for r in rows:
        by.setdefault((r["M"], r["K"], r["N"], r["cache"]), {})[r["system"]] = r
    for (m, k, n, cache), systems in by.items():
        blas = systems["openblas"]
        for name, r in systems.items():
            if name == "openblas":
                continue
            lines.append(f"| {m} | {k} | {n} | {cache} | {blas['ms']:.3f} | {blas['gflops']:.0f} | {name} | "
                         f"{r['ms']:.3f} | {r['gflops']:.0f} | {blas['ms'] / r['ms']:.2f} |")
    d = os.path.join(HERE, "results", "gemm")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, f"{cpu_slug(cpu)}.md")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {os.path.relpath(path, ROOT)}")


if __name__ == "__main__":
    main()
