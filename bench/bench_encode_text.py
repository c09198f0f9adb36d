#!/usr/bin/env python3
"""encode-text of Kinetics-600's 600 class names under the 28 templates (16,800
prompts) with the full-size ViT-B/32 text tower, against ONNX Runtime doing
the same work: every prompt at the whole context (77), batches of 64, the
features L2-normalized and averaged per class.  Measured in one run, in
alternating rounds:

  vclip  `vclip-run encode-text --precision fp32`: prompts sorted by length,
         each batch cut after its longest prompt's end-of-text token
  full   the same with --full-context (the given order, 77 positions)
  auto   the default precision (bf16 GEMMs where the CPU has native bf16)
  ort    ONNX Runtime over the same token ids (from `vclip-run tokenize`,
         checked against open_clip's in tests/test_tokenizer.py)

Times are the whole command for ours (load, compile, tokenize, encode, write)
and the runs only for ONNX Runtime (its load and our tokenization excluded).
Checks: vclip's class features equal --full-context's bit for bit, and both
are within 1e-5 of ONNX Runtime's; auto's smallest cosine to them is given.  Models come from bench/make_models.py;
class names from ../shared/data/labels/kinetics600.txt.  Appends a table to
bench/results/encode_text.md unless --no-write (tables of other CPUs stay).
Usage: python3 bench/bench_encode_text.py [--threads 2] [--rounds 2]
"""
import argparse
import datetime
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cpu_info import cpu_description  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODEL = os.path.join(HERE, "models", "vit_b32_text.onnx")
CLASSES = os.path.join(ROOT, "..", "shared", "data", "labels", "kinetics600.txt")
RUN = os.path.join(ROOT, "bin", "vclip-run")
PREFIXES = ["a photo of", "a video of", "a example of", "a demonstration of"]
FORMS = ["{}", "a person {}", "a person using {}", "a person doing {}", "a person during {}",
         "a person performing {}", "a person practicing {}"]
TEMPLATES = [f"{p} {f}." for p in PREFIXES for f in FORMS]


def read_features(path):
    from safetensors import safe_open
    with safe_open(path, "np") as s:
        return s.get_tensor("class_features")


def vclip(tmp, threads, kind):
    out = os.path.join(tmp, f"{kind}.safetensors")
    cmd = [RUN, "encode-text", "--text-model", MODEL, "--classes", CLASSES, "--no-normalize", "--threads", str(threads),
           "--batch", "64", "-o", out, "--precision", "auto" if kind == "auto" else "fp32"] + (["--full-context"] if kind == "full" else [])
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    ms = (time.perf_counter() - t0) * 1e3
    if p.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr}")
    if "note:" in p.stderr:
        raise SystemExit(f"the cut was turned off:\n{p.stderr}")
    share = p.stderr.rsplit("ms, ", 1)[1].split("%")[0] if "% of the token positions" in p.stderr else "?"
    return ms, read_features(out), share


def ort_features(ids, names, threads):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    s = ort.InferenceSession(MODEL, so, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    t0 = time.perf_counter()
    feats = np.concatenate([s.run(None, {name: ids[i:i + 64]})[0] for i in range(0, len(ids), 64)])
    ms = (time.perf_counter() - t0) * 1e3
    f = feats.astype(np.float64)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    c = f.reshape(len(names), len(TEMPLATES), -1).mean(1)
    return ms, (c / np.linalg.norm(c, axis=1, keepdims=True)).astype(np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    for f in (MODEL, CLASSES, RUN):
        if not os.path.exists(f):
            raise SystemExit(f"missing {f} (bench/make_models.py, ../shared/data, make)")
    names = open(CLASSES).read().split("\n")[:-1]
    prompts = [t.replace("{}", n) for n in names for t in TEMPLATES]
    with tempfile.TemporaryDirectory() as tmp:
        pf = os.path.join(tmp, "prompts.txt")
        open(pf, "w").write("\n".join(prompts) + "\n")
        tok = subprocess.run([RUN, "tokenize", "--file", pf], capture_output=True, text=True, check=True).stdout
        ids = np.array([list(map(int, l.split())) for l in tok.splitlines()], dtype=np.int64)
        lengths = (ids != 0).sum(1)
        times = {"vclip": [], "full": [], "auto": [], "ort": []}
        feats = {}
        for r in range(a.rounds):
            for kind in (list(times) if r % 2 == 0 else list(times)[::-1]):
                if kind == "ort":
                    ms, feats[kind] = ort_features(ids, names, a.threads)
                else:
                    ms, feats[kind], share = vclip(tmp, a.threads, kind)
                    if kind == "vclip":
                        cut_share = share
                times[kind].append(ms)
                print(f"round {r} {kind}: {ms:.0f} ms", file=sys.stderr)
    cut, full, ref = feats["vclip"], feats["full"], feats["ort"]
    identical = np.array_equal(cut.view(np.uint32), full.view(np.uint32))
    err = float(np.abs(cut - ref).max())
    auto_cos = float((feats["auto"].astype(np.float64) * ref).sum(1).min())
    best = {k: min(v) for k, v in times.items()}
    table = [
        f"## {cpu_description()}, {a.threads} threads, {datetime.date.today()}",
        "",
        f"{len(prompts)} prompts (Kinetics-600's {len(names)} classes x {len(TEMPLATES)} templates), "
        f"tokens per prompt {lengths.min()}-{lengths.max()} (mean {lengths.mean():.1f}) of 77; "
        f"best of {a.rounds} alternating rounds.",
        "",
        "| system | ms | prompts/s | ORT / system |",
        "| --- | --- | --- | --- |",
        f"| ONNX Runtime, whole context (runs only) | {best['ort']:.0f} | {len(prompts) / best['ort'] * 1e3:.0f} | 1.00 |",
        f"| vclip-run encode-text --precision fp32 --full-context (whole command) | {best['full']:.0f} | {len(prompts) / best['full'] * 1e3:.0f} | {best['ort'] / best['full']:.2f} |",
        f"| vclip-run encode-text --precision fp32 (sorted, cut; whole command) | {best['vclip']:.0f} | {len(prompts) / best['vclip'] * 1e3:.0f} | {best['ort'] / best['vclip']:.2f} |",
        f"| vclip-run encode-text (sorted, cut, --precision auto; whole command) | {best['auto']:.0f} | {len(prompts) / best['auto'] * 1e3:.0f} | {best['ort'] / best['auto']:.2f} |",
        "",
        f"Token positions computed by the cut run: {cut_share}% of the whole context's.  "
        f"Class features: cut == --full-context bit for bit: {'yes' if identical else 'NO'}; "
        f"max |vclip - ORT| = {err:.1e}; auto's smallest class-feature cosine to ORT's: {auto_cos:.5f}.",
        "",
    ]
    print("\n".join(table))
    if not identical or err > 1e-5:
        raise SystemExit("the features disagree")
    if not a.no_write:
        path = os.path.join(HERE, "results", "encode_text.md")
        head = "" if os.path.exists(path) else (
            "# encode-text: Kinetics-600 prompts, ViT-B/32 text tower\n\n"
            "Written by bench/bench_encode_text.py; one section per CPU and run.\n\n")
        with open(path, "a") as f:
            f.write(head + "\n".join(table) + "\n")


if __name__ == "__main__":
    main()
