#!/usr/bin/env python3
"""CPU inference: vclipc against ONNX Runtime, OpenVINO and PyTorch, same
machine, same thread count, measured in one run in alternating rounds.

Systems (bench/reference_runners.py runs the others, each in its own process):
  ORT fp32, OpenVINO f32 and OpenVINO's default (bf16 where the CPU has native
  bf16 dot products), PyTorch fp32 eager and bf16 autocast, vclipc
  --precision fp32 and vclipc's default (--precision auto).
Each row: the median of the round medians (per-iteration time excluding
load), the ratio ORT / system (> 1: faster than ORT), the max relative error
and the smallest row cosine of the system's output against ORT's, and the
process's peak RSS.  Also ViT-L/14 (external data; ORT and vclipc fp32) and
the VCLIP row (T = 8, window 1: our compiled model against ORT on its
--export-standard-ops twin).

Models come from bench/make_models.py.  Each CPU gets its own table,
bench/results/cpu_inference/<cpu>.md (the CPU named in it; other CPUs'
tables stay), unless --no-write.
Usage: python3 bench/bench_cpu.py [--threads 2] [--repeat 10] [--rounds 3]
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cpu_info import cpu_description, cpu_slug  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODELS = os.path.join(HERE, "models")
VCLIPC = os.path.join(ROOT, "bin", "vclipc")
RUNNERS = os.path.join(HERE, "reference_runners.py")
SYSTEMS = [("ort", "ONNX Runtime fp32"), ("ov-f32", "OpenVINO f32"), ("ov-default", "OpenVINO default"),
           ("torch-fp32", "PyTorch fp32 eager"), ("torch-bf16", "PyTorch bf16 autocast"),
           ("vclip-fp32", "vclipc fp32"), ("vclip-auto", "vclipc auto")]


def run_with_rss(cmd):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, ru = os.wait4(p.pid, 0)
    out, err = p.stdout.read(), p.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err}")
    return out, ru.ru_maxrss / 1024


def inputs_for(kind, batch, tmp):
    rng = np.random.default_rng(0)
    if kind == "video":
        path = os.path.join(tmp, f"video_{batch}.npy")
        np.save(path, rng.standard_normal((batch, 8, 3, 224, 224)).astype(np.float32))
        return {"video": path}
    if kind == "visual":
        x = rng.standard_normal((batch, 3, 224, 224)).astype(np.float32)
        name = "image"
    else:
        x = np.zeros((batch, 77), np.int64)
        for b in range(batch):
            n = int(rng.integers(5, 30))
            x[b, 0], x[b, 1:n + 1], x[b, n + 1] = 49406, rng.integers(1, 49000, n), 49407
        name = "text"
    path = os.path.join(tmp, f"{kind}_{batch}.npy")
    np.save(path, x)
    return {name: path}


def run_system(system, model, feeds, threads, repeat, out):
    """One process of one system: its timing JSON and peak RSS; out.npy gets its output."""
    if system.startswith("vclip-"):
        outname = {"image": "image_features", "text": "text_features", "video": "frame_embeddings"}[next(iter(feeds))]
        args = [VCLIPC, "run", model, "--threads", str(threads), "--repeat", str(repeat), "--json",
                "--precision", system.split("-", 1)[1], "--output", f"{outname}={out}"]
        for k, v in feeds.items():
            args += ["--input", f"{k}={v}"]
    else:
        args = [sys.executable, RUNNERS, system, model, str(threads), str(repeat), out, json.dumps(feeds)]
    o, rss = run_with_rss(args)
    r = json.loads(o)
    r["rss"] = rss
    return r


def compare(a, ref):
    a, ref = a.reshape(len(ref), -1).astype(np.float64), ref.reshape(len(ref), -1).astype(np.float64)
    cos = (a * ref).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(ref, axis=1))
    return float(np.abs(a - ref).max() / max(np.abs(ref).max(), 1e-6)), float(cos.min())


def bench(label, model, kind, batch, systems, threads, repeat, tmp, rounds, ort_model=None):
    """The systems alternate for `rounds` rounds (the order reversed every
    other round, so that a slow minute on a shared machine hits all); each
    system's time is the median of its round medians, RSS the largest."""
    feeds = inputs_for(kind, batch, tmp)
    runs = {s: [] for s in systems}
    outs = {s: os.path.join(tmp, f"out_{s}.npy") for s in systems}
    for r in range(rounds):
        for s in (systems if r % 2 == 0 else systems[::-1]):
            m = ort_model if ort_model and not s.startswith("vclip-") else model
            runs[s].append(run_system(s, m, feeds, threads, repeat, outs[s]))
    ref = np.load(outs["ort"])
    rows = []
    for s in systems:
        ms = float(np.median([x["median_ms"] for x in runs[s]]))
        err, cos = compare(np.load(outs[s]), ref)
        rows.append({"label": label, "batch": batch, "system": s, "ms": ms, "best_ms": min(x["min_ms"] for x in runs[s]),
                     "round_ms": [x["median_ms"] for x in runs[s]], "rel_err": err, "min_cos": cos,
                     "rss": max(x["rss"] for x in runs[s]), "load_ms": runs[s][0]["load_ms"]})
    ort_ms = rows[0]["ms"]
    for row in rows:
        row["ratio"] = ort_ms / row["ms"]
        print(json.dumps(row), flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per row (1 for ViT-L/14)")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--skip-large", action="store_true", help="skip ViT-L/14 and VCLIP")
    a = ap.parse_args()
    every = [s for s, _ in SYSTEMS]
    cases = [("ViT-B/32 visual", "vit_b32_visual.onnx", "visual", 1), ("ViT-B/32 visual", "vit_b32_visual.onnx", "visual", 8),
             ("ViT-B/32 text", "vit_b32_text.onnx", "text", 1), ("ViT-B/32 text", "vit_b32_text.onnx", "text", 8)]
    for _, f, _, _ in cases:
        if not os.path.exists(os.path.join(MODELS, f)):
            raise SystemExit(f"{os.path.join(MODELS, f)} missing: run python3 bench/make_models.py first")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, f, kind, batch in cases:
            rows += bench(label, os.path.join(MODELS, f), kind, batch, every, a.threads, a.repeat, tmp, a.rounds)
        if not a.skip_large:
            l14 = os.path.join(MODELS, "vit_l14_visual", "model.onnx")
            if os.path.exists(l14):
                rows += bench("ViT-L/14 visual (external data)", l14, "visual", 1, ["ort", "vclip-fp32", "vclip-auto"],
                              a.threads, 3, tmp, 1)
            # VCLIP: the ViT-B/32 visual encoder made temporal (T = 8, window 1); ORT runs the standard-ops twin
            vclip, vclip_std = os.path.join(tmp, "vclip.onnx"), os.path.join(tmp, "vclip_std.onnx")
            src = os.path.join(MODELS, "vit_b32_visual.onnx")
            subprocess.run([VCLIPC, "compile", src, "--frames", "8", "-o", vclip], check=True)
            subprocess.run([VCLIPC, "compile", src, "--frames", "8", "--export-standard-ops", "-o", vclip_std], check=True)
            rows += bench("VCLIP ViT-B/32 (T = 8, window 1)", vclip, "video", 1, ["ort", "vclip-fp32", "vclip-auto"],
                          a.threads, a.repeat, tmp, a.rounds, ort_model=vclip_std)
    # a fast wrong answer is no result: f32 systems must agree with ORT, bf16 ones within their rounding
    wrong = [f"{r['label']} (batch {r['batch']}) {r['system']}: max rel err {r['rel_err']:.1e}, cosine {r['min_cos']:.5f}"
             for r in rows if not (r["rel_err"] <= 1e-4 if r["system"] in ("ov-f32", "torch-fp32", "vclip-fp32")
                                   else r["min_cos"] >= 0.99)]
    if not a.no_write:
        write_table(a, rows)
    if wrong:
        raise SystemExit("bench_cpu: outputs disagree with ONNX Runtime:\n  " + "\n  ".join(wrong))


def versions():
    import importlib.metadata as md
    out = []
    for pkg, name in (("onnxruntime", "ONNX Runtime"), ("openvino", "OpenVINO"), ("torch", "PyTorch"), ("open_clip_torch", "open_clip")):
        try:
            out.append(f"{name} {md.version(pkg)}")
        except md.PackageNotFoundError:
            out.append(f"{name} (not installed)")
    return ", ".join(out)


def write_table(a, rows):
    cpu = cpu_description()
    names = dict(SYSTEMS)
    lines = [
        f"# CPU inference on {cpu}",
        "",
        f"Measured {datetime.date.today()} by `bench/bench_cpu.py`, {os.cpu_count()} cores, {a.threads} threads for "
        f"every system; {versions()}; random-weight exports from `bench/make_models.py` (open_clip OpenAI layout, "
        f"TorchScript exporter, opset 17).  Time: the median of {a.repeat} runs after a warm-up (3 for ViT-L/14), "
        f"excluding load; the systems alternate for {a.rounds} rounds (one for ViT-L/14) and each one's time is the "
        "median of its round medians.  Ratio = ORT time / system time (above 1: faster than ORT).  Error and cosine "
        "are against ORT's fp32 output (max |x - ORT| / max |ORT|, the smallest cosine of a row).  vclipc auto is "
        "the default `--precision auto`: bf16 Linear weights and inputs, sums in f32, where the CPU has native bf16 "
        "dot products; fp32 elsewhere.  Peak RSS of each whole process (Python's include the interpreter).",
        "",
        "| model | batch | system | ms | ratio (ORT / system) | each round, ms | max rel err | min cosine | peak RSS MB | load ms |",
        "| --- | ---: | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        rr = ", ".join(f"{x:.0f}" for x in r["round_ms"])
        lines.append(f"| {r['label']} | {r['batch']} | {names[r['system']]} | {r['ms']:.1f} | {r['ratio']:.2f} | {rr} | "
                     f"{r['rel_err']:.1e} | {r['min_cos']:.6f} | {r['rss']:.0f} | {r['load_ms']:.0f} |")
    lines += ["", "Against the bars of issue 19 (this run):", ""]
    by = {(r["label"], r["batch"], r["system"]): r for r in rows}
    for label in ("ViT-B/32 visual", "ViT-B/32 text"):
        for b in (1, 8):
            f32, ov = by[(label, b, "vclip-fp32")], by[(label, b, "ov-f32")]
            lines.append(f"- {label}, batch {b}, fp32: {f32['ratio']:.2f}x ORT (bar 1.05), "
                         f"{ov['ms'] / f32['ms']:.2f}x OpenVINO f32 (bar 1.0)")
        auto, ovd = by[(label, 8, "vclip-auto")], by[(label, 8, "ov-default")]
        lines.append(f"- {label}, batch 8, auto: {ovd['ms'] / auto['ms']:.2f}x OpenVINO's default (bar 1.0), "
                     f"cosine to fp32 ORT {auto['min_cos']:.5f} (bar 0.999)")
    d = os.path.join(HERE, "results", "cpu_inference")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, f"{cpu_slug(cpu)}.md")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {os.path.relpath(path, ROOT)}")


if __name__ == "__main__":
    main()
