#!/usr/bin/env python3
"""Zero-shot evaluation throughput, EP2 style (every video, 3 views x 8
frames, VCLIP ViT-B/32 with window 1): `vclip-run eval` (fp32 and the default
auto) against the same protocol in PyTorch, decoding with PyAV (as the
released loader) or decord, the model run by tests/ref/vclip_reference.py's
VCLIP forward on the same weights in fp32 or under bf16 autocast, on the four
real clips repeated, 2 threads each, in one run: the pipelines alternate
for --rounds rounds (the order rotating each round), and each one's time is
the median of its rounds, so that a slow minute of a shared machine falls
on every pipeline alike.  Also checks that each predicts the same classes
as ours in fp32.  Writes bench/results/eval/<cpu>.md (the CPU named in it;
other CPUs' tables stay).  Needs bench/make_models.py's models, torch +
open_clip and decord.
Usage: python3 bench/bench_eval.py [--repeat 5] [--rounds 3]"""
import argparse
import datetime
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
from ref import video_reference as R  # noqa: E402
from ref.vclip_reference import vclip_visual  # noqa: E402
sys.path.insert(0, HERE)
from cpu_info import cpu_description, cpu_slug  # noqa: E402

VIDEOS = os.path.join(ROOT, "tests", "fixtures", "videos")
CLIPS = ["arm_wrestling.mp4", "cleaning_pool.mp4", "apply_eye_makeup.avi", "flipping_pancake.mkv"]
NAMES = ["arm wrestling", "cleaning pool", "apply eye makeup", "flipping pancake"]
RUN = os.path.join(ROOT, "bin", "vclip-run")


def decode_decord(path, idx):
    import decord
    return decord.VideoReader(path, num_threads=1).get_batch(list(idx)).asnumpy()


def torch_eval(paths, W, decode=R.decode, bf16=False):
    import open_clip
    torch.manual_seed(0)  # bench/make_models.py's weights
    visual = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None).eval().visual
    mean = torch.tensor(R.MEAN).view(1, 1, 3, 1, 1)
    std = torch.tensor(R.STD).view(1, 1, 3, 1, 1)
    scores = []
    t = time.perf_counter()
    for p in paths:
        n, fps = R.video_info(p)
        clips = []
        for idx in R.test_indices(n, fps):
            x = torch.from_numpy(np.ascontiguousarray(decode(p, idx))).permute(0, 3, 1, 2).float() / 255.0
            oh, ow = R.resized_size(x.shape[2], x.shape[3], 224)
            x = torch.nn.functional.interpolate(x, size=(oh, ow), mode="bilinear", align_corners=False)
            y, xo = R.uniform_crop_offsets(oh, ow, 224, 1)
            clips.append(x[:, :, y:y + 224, xo:xo + 224])
        video = (torch.stack(clips) - mean) / std  # [views, T, 3, 224, 224]
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            f = vclip_visual(visual, video, 1, "zero").float()
        f = f / f.norm(dim=-1, keepdim=True)
        scores.append((100 * f @ torch.from_numpy(W).T).mean(dim=1).sum(dim=0).numpy())
    return time.perf_counter() - t, np.array(scores)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5, help="times each of the four clips is listed (default 5: 20 videos)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; each pipeline's time is its median (default 3)")
    a = ap.parse_args()
    if a.repeat < 1 or a.rounds < 1:
        ap.error("--repeat and --rounds must be at least 1")
    torch.set_num_threads(2)
    visual, text = os.path.join(HERE, "models", "vit_b32_visual.onnx"), os.path.join(HERE, "models", "vit_b32_text.onnx")
    n = len(CLIPS) * a.repeat
    paths = [os.path.join(VIDEOS, c) for _ in range(a.repeat) for c in CLIPS]
    with tempfile.TemporaryDirectory() as tmp:
        (open(os.path.join(tmp, "classes.txt"), "w")).write("\n".join(NAMES) + "\n")
        cls = os.path.join(tmp, "classes.safetensors")
        subprocess.run([RUN, "encode-text", "--text-model", text, "--classes", os.path.join(tmp, "classes.txt"), "-o", cls],
                       check=True, capture_output=True)
        with open(os.path.join(tmp, "list.csv"), "w") as f:
            f.write("".join(f"{c},{i}\n" for _ in range(a.repeat) for i, c in enumerate(CLIPS)))
        from safetensors.numpy import load_file
        W = load_file(cls)["class_features"]

        def ours(prec):
            def run():
                t = time.perf_counter()
                subprocess.run([RUN, "eval", "--visual", visual, "--classes", cls, "--list", os.path.join(tmp, "list.csv"), "--root",
                                VIDEOS, "--no-cache", "--threads", "2", "--workers", "1", "--json", "--precision", prec, "--scores",
                                os.path.join(tmp, "s.npy")], check=True, capture_output=True, text=True)
                return time.perf_counter() - t, np.load(os.path.join(tmp, "s.npy"))
            return run
        pipelines = {"vclip-run eval --precision fp32": ours("fp32"), "vclip-run eval --precision auto": ours("auto"),
                     "PyTorch fp32 + PyAV": lambda: torch_eval(paths, W),
                     "PyTorch fp32 + decord": lambda: torch_eval(paths, W, decode_decord),
                     "PyTorch bf16 autocast + decord": lambda: torch_eval(paths, W, decode_decord, bf16=True)}
        names = list(pipelines)
        times, scores = {k: [] for k in names}, {}
        for r in range(a.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                sec, scores[name] = pipelines[name]()
                times[name].append(sec)
                print(f"round {r + 1}/{a.rounds}: {name} {sec:.2f} s", file=sys.stderr, flush=True)
    runs = {k: (float(np.median(times[k])), scores[k]) for k in names}
    ours_s, ours_scores = runs["vclip-run eval --precision fp32"]
    decord_s = runs["PyTorch fp32 + decord"][0]
    lines = ["# Zero-shot evaluation throughput (EP2 style)", "",
             f"Measured {datetime.date.today()} by `bench/bench_eval.py` on {cpu_description()}, {os.cpu_count()} cores: "
             f"{n} videos (the four real clips x {a.repeat}), 3 test views x 8 frames x 224^2 each, VCLIP ViT-B/32 "
             "(random weights from `bench/make_models.py`, window 1), 4 classes, 2 threads each; the pipelines alternate for "
             f"{a.rounds} rounds (the order rotating) and seconds is each one's median round; ours includes "
             "process start, model load and compile. Speed = PyTorch fp32 + decord's time / the pipeline's (above 1: faster). "
             "Agreement and score difference are against `vclip-run eval --precision fp32`.", "",
             "| pipeline | seconds | videos/s | speed against PyTorch fp32 + decord | rounds (s) | same class | max abs score difference |",
             "| --- | ---: | ---: | ---: | --- | ---: | ---: |"]
    for name, (sec, sc) in runs.items():
        lines.append(f"| {name} | {sec:.2f} | {n / sec:.2f} | {decord_s / sec:.2f} | {', '.join(f'{t:.1f}' for t in times[name])} | "
                     f"{100 * np.mean(sc.argmax(1) == ours_scores.argmax(1)):.0f}% | {np.abs(sc - ours_scores).max():.2e} |")
    auto_s = runs["vclip-run eval --precision auto"][0]
    lines += ["", f"Against issue 19's bar (1.5x PyTorch + decord doing the same work): fp32 {decord_s / ours_s:.2f}x; "
              f"auto {runs['PyTorch bf16 autocast + decord'][0] / auto_s:.2f}x PyTorch's bf16 autocast + decord, "
              f"{decord_s / auto_s:.2f}x its fp32. Scores are at logit scale 100."]
    out = os.path.join(HERE, "results", "eval")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, f"{cpu_slug(cpu_description())}.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
