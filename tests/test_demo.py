"""`vclip-run demo --quick` end to end (the demo world, its seeds and its
ablation): results.json and curve.svg are written with the documented keys,
the means, standard deviations and the paired difference follow from the
per-seed rows, and seed 0's numbers are reproduced by the general tools on
the demo's videos written as files: `vclip-run eval` (decoding through
FFmpeg) on the frame-averaged CLIP, and `vclip-run patch` + `eval` on the
plainly fine-tuned and the Open-VCLIP++ models."""
import json
import os
import xml.etree.ElementTree as ET

import pytest

import subprocess

import numpy as np

from conftest import BUILDS, mpi_command, mpi_env, run_tool


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    p = run_tool("opt", "vclip-run", "demo", "--quick", "--write-videos", "--out", out, timeout=600)
    assert p.returncode == 0, p.stderr
    return out, p


ROWS = ["clip_frame_avg", "finetune", "iwr", "swa", "patch", "captions", "open_vclip"]


def no_duplicate_keys(pairs):
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), f"results.json repeats a key: {keys}"
    return dict(pairs)


def test_results_and_curve(demo):
    import numpy as np
    out, p = demo
    r = json.load(open(out / "results.json"), object_pairs_hook=no_duplicate_keys)
    assert r["seeds"] == 3 and [s["seed"] for s in r["per_seed"]] == [0, 1, 2]
    for key in ROWS:
        for metric, std in (("zero_shot_top1", "zero_shot_std"), ("closed_set_top1", "closed_set_std")):
            per_seed = [s[key][metric] for s in r["per_seed"]]
            assert all(0 <= x <= 100 for x in per_seed), (key, metric)
            assert abs(r[key][metric] - np.mean(per_seed)) < 1e-3, (key, metric)
            assert abs(r[key][std] - np.std(per_seed, ddof=1)) < 1e-3, (key, std)
    assert [a["row"] for a in r["ablation"]] == ROWS[1:]
    d = [s["open_vclip"]["zero_shot_top1"] - s["finetune"]["zero_shot_top1"] for s in r["per_seed"]]
    pd = r["paired_difference"]["zero_shot"]
    half = 4.303 * np.std(d, ddof=1) / np.sqrt(3)  # Student's t, 2 degrees of freedom
    assert abs(pd["mean"] - np.mean(d)) < 1e-3 and abs(pd["ci95"][1] - pd["ci95"][0] - 2 * half) < 1e-3, (pd, d)
    assert [c["ratio"] for c in r["curve"]] == [i / 10 for i in range(11)]
    # r = 0.5 on the curve is the Open-VCLIP model (SWA patched at 0.5)
    mid = r["curve"][5]
    assert abs(mid["zero_shot_top1"] - r["open_vclip"]["zero_shot_top1"]) < 1e-9
    assert abs(mid["closed_set_top1"] - r["open_vclip"]["closed_set_top1"]) < 1e-9
    svg = ET.parse(out / "curve.svg").getroot()
    assert svg.tag.endswith("svg")
    assert "zero-shot top-1" in p.stdout and "Open-VCLIP" in p.stdout


def eval_top1(out, visual, split, window):
    args = ["eval", "--visual", visual, "--classes", out / "videos" / f"classes_{split}.safetensors", "--list",
            out / "videos" / f"{split}.csv", "--root", out / "videos", "--frames", "8", "--stride", "1", "--views", "1",
            "--temporal-window", str(window), "--no-cache", "--json"]
    rep = json.loads(run_tool("opt", "vclip-run", *args, check=True).stdout)
    assert rep["n_skipped"] == 0
    return 100 * rep["top1"]


@pytest.mark.parametrize("row", ["clip_frame_avg", "finetune", "open_vclip"])
def test_eval_on_written_videos_reproduces_the_table(demo, row, tmp_path):
    out, _ = demo
    r = json.load(open(out / "results.json"))["per_seed"][0][row]
    visual = out / "clip" / "visual.onnx"
    if row != "clip_frame_avg":  # the plain row is the last epoch's weights; Open-VCLIP++'s its patched SWA average
        weights = out / "seed-0" / ("plain/checkpoint.safetensors" if row == "finetune" else "open_vclip/weights.safetensors")
        visual = tmp_path / "model.onnx"
        run_tool("opt", "vclip-run", "patch", "--visual", out / "clip" / "visual.onnx", "--weights", weights, "--ratio", "0",
                 "-o", visual, check=True)
    window = 0 if row == "clip_frame_avg" else 1
    assert abs(eval_top1(out, visual, "unseen", window) - r["zero_shot_top1"]) < 1e-6
    assert abs(eval_top1(out, visual, "seen", window) - r["closed_set_top1"]) < 1e-6


@pytest.mark.parametrize("tower", ["visual", "text"])
def test_pretrained_towers_match_onnx_runtime(demo, tower, tmp_path):
    """The demo's CLIP (built as graphs by models/clip_builder.c, exported by us)
    lowered to standard ops runs in ONNX Runtime to the same features as vclipc."""
    import numpy as np
    import onnxruntime as ort
    out, _ = demo
    model = out / "clip" / f"{tower}.onnx"
    std = tmp_path / "std.onnx"
    run_tool("opt", "vclipc", "compile", model, "-o", std, "--export-standard-ops", check=True)
    rng = np.random.default_rng(5)
    if tower == "visual":
        x, name = rng.standard_normal((3, 3, 32, 32)).astype(np.float32), "image"
    else:  # token ids with the EOT (the largest id) at different places
        x, name = np.zeros((3, 16), np.int64), "text"
        for i, n in enumerate((4, 9, 16)):
            x[i, 0], x[i, 1:n - 1], x[i, n - 1] = 49406, rng.integers(300, 40000, n - 2), 49407
    np.save(tmp_path / "x.npy", x)
    outname = f"{'image' if tower == 'visual' else 'text'}_features"
    run_tool("opt", "vclipc", "run", "--precision", "fp32", model, "--input", f"{name}={tmp_path / 'x.npy'}", "--output", f"{outname}={tmp_path / 'y.npy'}",
             check=True)
    got = np.load(tmp_path / "y.npy")
    want = ort.InferenceSession(str(std), providers=["CPUExecutionProvider"]).run(None, {name: x})[0]
    assert np.abs(got - want).max() <= 1e-4 * max(1.0, np.abs(want).max())


def test_eval_shared_among_two_ranks_equals_one_process(demo, tmp_path):
    """`mpirun -np 2 vclip-run eval`: each rank scores its share of the videos (an odd count: shares of 26 and 27,
    plus an unreadable video in the second share); rank 0 gathers and writes.  The metrics, the per-video scores
    and the predictions equal the single process's."""
    out, _ = demo
    rows = (out / "videos" / "unseen.csv").read_text().splitlines()[:52]
    listed = tmp_path / "odd.csv"
    listed.write_text("\n".join(rows[:40] + ["unseen/missing.nut,0"] + rows[40:]) + "\n")
    results = []
    for ranks in (1, 2):
        d = tmp_path / f"ranks-{ranks}"
        d.mkdir()
        args = ["eval", "--visual", out / "clip" / "visual.onnx", "--classes", out / "videos" / "classes_unseen.safetensors",
                "--list", listed, "--root", out / "videos", "--frames", "8", "--stride", "1", "--views", "1",
                "--temporal-window", "1", "--no-cache", "--json", "--threads", "1", "--scores", d / "scores.npy",
                "--predictions", d / "pred.csv"]
        p = subprocess.run(mpi_command(ranks, str(BUILDS["opt"] + "/vclip-run"), args), capture_output=True, text=True,
                           timeout=300, env=mpi_env())
        assert p.returncode == 0, p.stderr
        assert len(p.stdout.strip().splitlines()) == 1, f"{ranks} ranks printed more than rank 0's line:\n{p.stdout}"
        rep = json.loads(p.stdout)
        results.append((rep, np.load(d / "scores.npy"), (d / "pred.csv").read_text()))
    (one, s1, p1), (two, s2, p2) = results
    for k in ("top1", "top5", "mean_class_accuracy", "n_videos", "n_skipped", "decoded"):
        assert one[k] == two[k], (k, one[k], two[k])
    assert one["n_videos"] == 52 and one["n_skipped"] == 1
    assert s1.shape == s2.shape and np.abs(s1 - s2).max() <= 1e-6 * np.abs(s1).max()
    assert p1 == p2


def test_feature_cache_with_several_writers(demo, tmp_path):
    """Two 2-rank eval jobs at once write one feature cache (four writers, each video written by one rank of
    each job); a third run then decodes nothing and scores exactly as a run without the cache."""
    out, _ = demo
    cache = tmp_path / "cache"
    base = ["eval", "--visual", out / "clip" / "visual.onnx", "--classes", out / "videos" / "classes_seen.safetensors",
            "--list", out / "videos" / "seen.csv", "--root", out / "videos", "--frames", "8", "--stride", "1", "--views", "1",
            "--temporal-window", "1", "--json", "--threads", "1"]
    exe = os.path.join(BUILDS["opt"], "vclip-run")
    jobs = [subprocess.Popen(mpi_command(2, exe, base), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=mpi_env({"VCLIP_CACHE_DIR": str(cache)})) for _ in range(2)]
    reps = []
    for j in jobs:
        so, se = j.communicate(timeout=300)
        assert j.returncode == 0, se
        reps.append(json.loads(so))
    again = subprocess.run(mpi_command(1, exe, base), capture_output=True, text=True, timeout=300,
                           env=mpi_env({"VCLIP_CACHE_DIR": str(cache)}))
    fresh = subprocess.run(mpi_command(1, exe, [*base, "--no-cache"]), capture_output=True, text=True, timeout=300, env=mpi_env())
    assert again.returncode == 0 and fresh.returncode == 0, again.stderr + fresh.stderr
    cached, want = json.loads(again.stdout), json.loads(fresh.stdout)
    assert cached["decoded"] == 0, "the cache written by the two jobs was not read back"
    for k in ("top1", "top5", "mean_class_accuracy", "n_videos"):
        assert cached[k] == want[k] == reps[0][k] == reps[1][k], k
    assert not [p for p in cache.rglob("*.tmp.*")], "temporary files left in the cache"
