#!/usr/bin/env python3
"""Video decoding + preprocessing throughput for evaluation (3 temporal views
x 1 centre crop, 8 frames, stride 16, 224 crops): vclip-run load against the
same sampling done by PyAV + torch (torchvision-style transforms) and by
decord + torch, with the same number of workers (threads for us, processes for
Python), on the four real clips repeated.  Writes bench/results/video/<cpu>.md
(the CPU named in it; other CPUs' tables stay).
Needs torch and decord (tools/install-deps.sh --fixtures; pip install decord).
Usage: python3 bench/bench_video.py [--workers 2] [--repeat 10]"""
import argparse
import datetime
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, HERE)
from ref import video_reference as R  # noqa: E402
from cpu_info import cpu_description, cpu_slug  # noqa: E402

VIDEOS = os.path.join(ROOT, "tests", "fixtures", "videos")
CLIPS = ["arm_wrestling.mp4", "cleaning_pool.mp4", "apply_eye_makeup.avi", "flipping_pancake.mkv"]


def torch_views(frames_by_view):
    import torch
    import torch.nn.functional as F
    mean = torch.tensor(R.MEAN).view(1, 3, 1, 1)
    std = torch.tensor(R.STD).view(1, 3, 1, 1)
    out = []
    for fr in frames_by_view:  # uint8 [T, H, W, 3]
        x = torch.from_numpy(np.ascontiguousarray(fr)).permute(0, 3, 1, 2).float() / 255.0
        h, w = x.shape[2:]
        oh, ow = R.resized_size(h, w, 224)
        x = F.interpolate(x, size=(oh, ow), mode="bilinear", align_corners=False)
        y, xo = R.uniform_crop_offsets(oh, ow, 224, 1)
        out.append(((x[:, :, y:y + 224, xo:xo + 224] - mean) / std).numpy())
    return np.stack(out)


def pyav_video(path):
    import torch
    torch.set_num_threads(1)
    n, fps = R.video_info(path)
    return torch_views([R.decode(path, i) for i in R.test_indices(n, fps)]).shape


def decord_video(path):
    import decord
    import torch
    torch.set_num_threads(1)
    vr = decord.VideoReader(path, num_threads=1)
    n, fps = len(vr), vr.get_avg_fps()
    return torch_views([vr.get_batch(i).asnumpy() for i in R.test_indices(n, fps)]).shape


def worker_rss(_):
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def python_bench(fn, paths, workers):
    with Pool(workers) as pool:
        pool.map(fn, paths[:workers])  # warm-up: imports
        t = time.perf_counter()
        pool.map(fn, paths, chunksize=1)
        sec = time.perf_counter() - t
        rss = max(pool.map(worker_rss, range(workers * 4)))
    return sec, rss


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=10)
    a = ap.parse_args()
    paths = [os.path.join(VIDEOS, c) for c in CLIPS] * a.repeat
    n_clips = 3 * len(paths)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        csv = os.path.join(tmp, "list.csv")
        with open(csv, "w") as f:
            f.write("\n".join(f"{c},{i}" for i, c in enumerate(CLIPS * a.repeat)) + "\n")
        p = subprocess.run([os.path.join(ROOT, "bin", "vclip-run"), "load", csv, "--root", VIDEOS, "--workers", str(a.workers),
                            "--json"], capture_output=True, text=True, check=True)
        ours = json.loads(p.stdout)
        rows.append(("vclip-run load (C, threads)", ours["seconds"], ours["peak_rss_mb"], "whole process"))
    for name, fn in (("PyAV + torch (processes)", pyav_video), ("decord + torch (processes)", decord_video)):
        sec, rss = python_bench(fn, paths, a.workers)
        rows.append((name, sec, rss, "per worker process"))
    lines = ["# Video decoding + preprocessing throughput", "",
             f"Measured {datetime.date.today()} by `bench/bench_video.py` on {cpu_description()}, {os.cpu_count()} cores: "
             f"{len(paths)} videos (the four real clips x {a.repeat}), each into 3 test views x 8 frames x 224^2 "
             f"({n_clips} clips), {a.workers} workers each. Ratio = the other's time / vclip-run's (above 1: vclip-run is "
             "faster). Memory: peak RSS of vclip-run's whole process, and of one Python worker process (imports included).", "",
             "| pipeline | seconds | clips/s | ratio vs vclip-run | peak RSS MB |", "| --- | ---: | ---: | ---: | ---: |"]
    for name, sec, rss, what in rows:
        lines.append(f"| {name} | {sec:.2f} | {n_clips / sec:.1f} | {sec / rows[0][1]:.2f} | {rss:.0f} ({what}) |")
    out = os.path.join(HERE, "results", "video")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, f"{cpu_slug(cpu_description())}.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
