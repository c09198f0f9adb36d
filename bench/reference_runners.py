#!/usr/bin/env python3
"""The systems bench_cpu.py measures vclipc against, each run in its own
process so that each gets a clean heap and its own peak RSS:

  ort          ONNX Runtime, CPU provider, fp32 (the export as given)
  ov-f32       OpenVINO with INFERENCE_PRECISION_HINT f32
  ov-default   OpenVINO as it comes (bf16 on CPUs with native bf16 dot products)
  torch-fp32   PyTorch eager, open_clip's model
  torch-bf16   PyTorch eager under torch.autocast("cpu", torch.bfloat16)

Usage: reference_runners.py SYSTEM MODEL.onnx THREADS REPEAT OUT.npy FEEDS_JSON
Prints {"min_ms", "median_ms", "load_ms", "rss_mb"} as JSON; OUT.npy gets the
first output.  For PyTorch, MODEL names an export of bench/make_models.py,
whose weights it rebuilds the same way (seed 0, open_clip's ViT-B-32-quickgelu);
bench_cpu.py checks its f32 outputs against ONNX Runtime's, so a model that is
not the same fails there rather than passing as faster.
"""
import json
import os
import resource
import sys
import time

import numpy as np


def ort_session(model, threads):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    return lambda feeds: s.run(None, feeds)[0]


def openvino_session(model, threads, f32):
    import openvino as ov
    cfg = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
    if f32:
        cfg["INFERENCE_PRECISION_HINT"] = "f32"
    c = ov.Core().compile_model(model, "CPU", cfg)
    req = c.create_infer_request()
    return lambda feeds: req.infer(feeds)[c.outputs[0]].copy()


def torch_session(model, threads, bf16):
    import warnings
    import torch
    import open_clip
    warnings.filterwarnings("ignore")
    torch.set_num_threads(threads)
    name = os.path.basename(model)
    if not name.startswith("vit_b32_"):
        raise SystemExit(f"torch runner: no PyTorch twin for {model}")
    torch.manual_seed(0)  # bench/make_models.py's construction, so the same weights
    clip = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None).eval()
    fn = clip.visual if "visual" in name else clip.encode_text

    def run(feeds):
        x = torch.from_numpy(next(iter(feeds.values())))
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return fn(x).float().numpy()
    return run


def main():
    system, model, threads, repeat, out, feeds = sys.argv[1:7]
    threads, repeat = int(threads), int(repeat)
    feeds = {k: np.load(v) for k, v in json.loads(feeds).items()}
    t0 = time.perf_counter()
    if system == "ort":
        run = ort_session(model, threads)
    elif system in ("ov-f32", "ov-default"):
        run = openvino_session(model, threads, system == "ov-f32")
    elif system in ("torch-fp32", "torch-bf16"):
        run = torch_session(model, threads, system == "torch-bf16")
    else:
        raise SystemExit(f"unknown system {system}")
    load = (time.perf_counter() - t0) * 1e3
    res = run(feeds)
    times = []
    for _ in range(repeat):
        a = time.perf_counter()
        run(feeds)
        times.append((time.perf_counter() - a) * 1e3)
    np.save(out, np.asarray(res, dtype=np.float32))
    print(json.dumps({"min_ms": min(times), "median_ms": float(np.median(times)), "load_ms": load,
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
