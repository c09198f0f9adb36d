"""Zero-shot evaluation: the metric code against NumPy on random score
matrices (ties included), and `vclip-run eval` end to end on the four real
clips with a small CLIP (full vocabulary, 16-pixel images) against an
independent computation: the exact input tensors from `vclip-run frames`, the
VCLIP model exported as standard ops and run by ONNX Runtime, the logits in
NumPy."""
import csv
import json
import os
import subprocess

import numpy as np
import onnxruntime as ort
import pytest
from safetensors.numpy import load_file

from conftest import BUILDS, ROOT, Fixture, assert_clean_exit, mpi_command, mpi_env, run_tool

VIDEOS = os.path.join(ROOT, "tests", "fixtures", "videos")
CLIPS = ["arm_wrestling.mp4", "cleaning_pool.mp4", "apply_eye_makeup.avi", "flipping_pancake.mkv"]
NAMES = ["arm wrestling", "cleaning pool", "ApplyEyeMakeup", "flipping pancake", "juggling", "rowing"]
VISUAL = Fixture("openai_visual_fullvocab").model
TEXT = Fixture("openai_text_fullvocab").model


def numpy_metrics(scores, labels):
    order = np.argsort(-scores, axis=1, kind="stable")  # ties: the lower class index first
    rank = np.array([np.where(order[i] == labels[i])[0][0] for i in range(len(labels))])
    pred = order[:, 0]
    per_class = [np.mean(pred[labels == c] == c) for c in np.unique(labels)]
    return {"top1": np.mean(rank < 1), "top5": np.mean(rank < 5), "mean_class_accuracy": np.mean(per_class)}


@pytest.mark.parametrize("ties", [False, True])
def test_metrics_match_numpy(ties, tmp_path):
    rng = np.random.default_rng(11 + ties)
    for trial in range(5):
        n, C = int(rng.integers(1, 300)), int(rng.integers(2, 40))
        s = rng.integers(0, 4, (n, C)).astype(np.float32) if ties else rng.standard_normal((n, C)).astype(np.float32)
        y = rng.integers(0, C, n).astype(np.int64)
        np.save(tmp_path / "s.npy", s)
        np.save(tmp_path / "y.npy", y)
        got = json.loads(run_tool("opt", "vclip-run", "metrics", "--scores", tmp_path / "s.npy", "--labels", tmp_path / "y.npy",
                                  "--json", check=True).stdout)
        want = numpy_metrics(s, y)
        for k in want:
            assert abs(got[k] - want[k]) < 1e-6, (k, got[k], want[k])
        assert got["n_videos"] == n
        from sklearn.metrics import top_k_accuracy_score  # an independent top-k (tools/install-deps.sh installs it)
        if not ties and C > 5:
            # --json prints 6 decimals (this check had never run: it skipped without sklearn, with a 1e-9 tolerance)
            assert abs(got["top5"] - top_k_accuracy_score(y, s, k=5, labels=np.arange(C))) < 1e-6


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("eval")
    (d / "classes.txt").write_text("\n".join(NAMES) + "\n")
    run_tool("opt", "vclip-run", "encode-text", "--precision", "fp32", "--text-model", TEXT, "--classes", d / "classes.txt", "-o", d / "cls.safetensors",
             check=True)
    (d / "test.csv").write_text("".join(f"{c},{i}" + "\n" for i, c in enumerate(CLIPS)))
    return d


def oracle_scores(d, tmp_path):
    std = tmp_path / "vclip_std.onnx"
    run_tool("opt", "vclipc", "compile", VISUAL, "--frames", "8", "--export-standard-ops", "-o", std, check=True)
    sess = ort.InferenceSession(str(std), providers=["CPUExecutionProvider"])
    W = load_file(str(d / "cls.safetensors"))["class_features"].astype(np.float64)
    out = []
    for c in CLIPS:
        run_tool("opt", "vclip-run", "frames", os.path.join(VIDEOS, c), "--crop-size", "16", "-o", tmp_path / "x.npy", check=True)
        f = sess.run(None, {"video": np.load(tmp_path / "x.npy")})[0].astype(np.float64)  # [views, T, D]
        f /= np.linalg.norm(f, axis=-1, keepdims=True)
        out.append((100 * f @ W.T).mean(axis=1).sum(axis=0))
    return np.array(out)


def run_eval(variant, d, tmp_path, *extra):
    p = run_tool(variant, "vclip-run", "eval", "--precision", "fp32", "--visual", VISUAL, "--classes", d / "cls.safetensors", "--list", d / "test.csv",
                 "--root", VIDEOS, "--json", "--scores", tmp_path / "scores.npy", "--predictions", tmp_path / "pred.csv",
                 "--confusion", tmp_path / "conf.csv", *extra, check=True)
    return json.loads(p.stdout), np.load(tmp_path / "scores.npy")


def test_eval_matches_independent_computation(setup, variant, tmp_path):
    rep, scores = run_eval(variant, setup, tmp_path)
    want = oracle_scores(setup, tmp_path)
    assert scores.shape == (4, len(NAMES)) and np.abs(scores - want).max() < 1e-3
    labels = np.arange(4)
    m = numpy_metrics(want, labels)
    for k in m:
        assert abs(rep[k] - m[k]) < 1e-6
    assert rep["n_videos"] == 4 and rep["n_skipped"] == 0 and rep["input_size"] == 16 and rep["views"] == 3
    rows = list(csv.DictReader(open(tmp_path / "pred.csv")))
    assert [int(r["prediction"]) for r in rows] == list(np.argmax(want, axis=1))
    conf = np.loadtxt(tmp_path / "conf.csv", delimiter=",")
    assert conf.shape == (len(NAMES), len(NAMES)) and conf.sum() == 4 and np.trace(conf) == round(rep["top1"] * 4)


def test_eval_is_deterministic_and_text_model_path_agrees(setup, tmp_path):
    _, a = run_eval("opt", setup, tmp_path)
    _, b = run_eval("opt", setup, tmp_path, "--workers", "1", "--batch", "3")
    np.testing.assert_array_equal(a, b)
    p = run_tool("opt", "vclip-run", "eval", "--precision", "fp32", "--visual", VISUAL, "--classes", setup / "classes.txt", "--text-model", TEXT,
                 "--list", setup / "test.csv", "--root", VIDEOS, "--scores", tmp_path / "s2.npy", "--json", check=True)
    assert np.abs(np.load(tmp_path / "s2.npy") - a).max() < 1e-4


def test_eval_counts_unreadable_videos(setup, tmp_path):
    (tmp_path / "list.csv").write_text((setup / "test.csv").read_text() + "missing.mp4,4\n")
    p = run_tool("opt", "vclip-run", "eval", "--precision", "fp32", "--visual", VISUAL, "--classes", setup / "cls.safetensors", "--list",
                 tmp_path / "list.csv", "--root", VIDEOS, "--json", check=True)
    rep = json.loads(p.stdout)
    assert rep["n_videos"] == 4 and rep["n_skipped"] == 1 and "missing.mp4" in p.stderr


def test_eval_errors(setup, tmp_path):
    (tmp_path / "bad.csv").write_text("arm_wrestling.mp4,9\n")
    cases = [
        (["--visual", Fixture("openai_visual_op17").model, "--classes", setup / "cls.safetensors", "--list", setup / "test.csv"],
         "the video features have 32 dims but the class features 16"),
        (["--visual", VISUAL, "--classes", setup / "cls.safetensors", "--list", tmp_path / "bad.csv", "--root", VIDEOS],
         "label 9 but only 6 classes"),
        (["--visual", VISUAL, "--classes", setup / "classes.txt", "--list", setup / "test.csv"], "give --text-model"),
        (["--visual", VISUAL, "--list", setup / "test.csv"], "missing --classes"),
    ]
    for args, msg in cases:
        r = run_tool("opt", "vclip-run", "eval", "--precision", "fp32", *args)
        assert_clean_exit(r)
        assert msg in r.stderr, r.stderr


def fake_protocols(root):
    """A protocol tree in the released layout, over the four real clips."""
    root.mkdir(parents=True, exist_ok=True)
    clips = dict(zip(NAMES[:4], CLIPS))
    names = list(clips)
    (root / "ucf101-index2cls.json").write_text(json.dumps({str(i): n for i, n in enumerate(names)}))
    def split(d, classes, json_name=None):
        d.mkdir(parents=True, exist_ok=True)
        (d / "test.csv").write_text("".join(f"{clips[c]},{i}" + "\n" for i, c in enumerate(classes)))
        if json_name:
            (d / json_name).write_text(json.dumps({str(i): c for i, c in enumerate(classes)}))
    for k in range(10):  # halves: 2 of the 4 classes
        half = [names[k % 4], names[(k + 1 + k // 4) % 4]]
        split(root / "ucf101_half_test" / str(k), half, "ucf101-index2cls.json")
    split(root / "ucf101_full", names)
    for k in (1, 2, 3):
        split(root / f"ucf101_split{k}", names)
    return names


def test_protocol_runs_every_split_and_caches(tmp_path, setup):
    prot = tmp_path / "protocols"
    fake_protocols(prot)
    cache = {"VCLIP_CACHE_DIR": str(tmp_path / "cache")}
    args = ["eval", "--visual", VISUAL, "--text-model", TEXT, "--protocol", "ep1", "--dataset", "ucf101", "--protocols", prot,
            "--root", VIDEOS, "--json"]
    first = json.loads(run_tool("opt", "vclip-run", *args, check=True, env_extra=cache).stdout)
    assert len(first["splits"]) == 10 and first["decoded"] == 4  # 20 list entries, 4 distinct videos: each decoded once
    for k, sp in enumerate(first["splits"]):  # each split equals a plain single-list run
        p = run_tool("opt", "vclip-run", "eval", "--precision", "fp32", "--visual", VISUAL, "--text-model", TEXT, "--classes",
                     prot / "ucf101_half_test" / str(k) / "ucf101-index2cls.json", "--list", prot / "ucf101_half_test" / str(k) / "test.csv",
                     "--root", VIDEOS, "--json", "--no-cache", check=True)
        single = json.loads(p.stdout)
        assert abs(single["top1"] - sp["top1"]) < 1e-9 and single["n_videos"] == sp["n_videos"] == 2
    t1 = np.array([sp["top1"] for sp in first["splits"]])
    assert abs(first["top1"] - t1.mean()) < 1e-6 and abs(first["top1_std"] - t1.std()) < 1e-6
    again = json.loads(run_tool("opt", "vclip-run", *args, check=True, env_extra=cache).stdout)
    assert again["decoded"] == 0 and again["splits"] == first["splits"]  # all from the cache, same numbers
    for proto, n in (("ep2", 1), ("ep3", 3)):
        r = json.loads(run_tool("opt", "vclip-run", *(a if a != "ep1" else proto for a in args), check=True, env_extra=cache).stdout)
        assert len(r["splits"]) == n and r["decoded"] == 0 and r["n_videos"] == 4 * n
    text = run_tool("opt", "vclip-run", *args[:-1], check=True, env_extra=cache).stdout
    assert "UCF-101 EP1: top-1" in text and "±" in text


def test_protocol_errors(tmp_path):
    r = run_tool("opt", "vclip-run", "eval", "--precision", "fp32", "--visual", VISUAL, "--text-model", TEXT, "--protocol", "k600", "--dataset", "ucf101",
                 "--root", VIDEOS)
    assert_clean_exit(r)
    assert "--protocol k600 with --dataset k600" in r.stderr
    r = run_tool("opt", "vclip-run", "eval", "--precision", "fp32", "--visual", VISUAL, "--protocol", "ep2", "--dataset", "ucf101")
    assert_clean_exit(r)
    assert "--protocol needs --dataset and --text-model" in r.stderr


def numpy_retrieval(sim, owner):
    nc, nv = sim.shape
    t2v = np.array([1 + np.sum((sim[i] > sim[i, owner[i]]) | ((sim[i] == sim[i, owner[i]]) & (np.arange(nv) < owner[i])))
                    for i in range(nc)])
    best = {}
    for i in range(nc):
        col, s = sim[:, owner[i]], sim[i, owner[i]]
        r = 1 + np.sum((col > s) | ((col == s) & (np.arange(nc) < i)))
        best[owner[i]] = min(best.get(owner[i], r), r)
    v2t = np.array(list(best.values()))
    def summ(r):
        return {"r1": np.mean(r <= 1), "r5": np.mean(r <= 5), "r10": np.mean(r <= 10), "median_rank": np.median(r),
                "mean_rank": np.mean(r)}
    return summ(t2v), summ(v2t)


@pytest.mark.parametrize("ties", [False, True])
def test_retrieval_metrics_match_numpy(ties, tmp_path):
    rng = np.random.default_rng(21 + ties)
    for trial in range(4):
        nv = int(rng.integers(1, 60))
        owner = rng.integers(0, nv, int(rng.integers(1, 150)))
        sim = (rng.integers(0, 3, (len(owner), nv)) if ties else rng.standard_normal((len(owner), nv))).astype(np.float32)
        np.save(tmp_path / "s.npy", sim)
        np.save(tmp_path / "o.npy", owner)
        got = json.loads(run_tool("opt", "vclip-run", "retrieval", "--precision", "fp32", "--similarity", tmp_path / "s.npy", "--owners", tmp_path / "o.npy",
                                  "--json", check=True).stdout)
        for key, want in zip(("text_to_video", "video_to_text"), numpy_retrieval(sim, owner)):
            for k, w in want.items():
                assert abs(got[key][k] - w) < 1e-4, (key, k, got[key][k], w)


def test_retrieval_end_to_end(setup, tmp_path):
    caps = [{"video": "arm_wrestling.mp4", "captions": ["two people arm wrestling at a table", "a strength contest"]},
            {"video": "cleaning_pool.mp4", "caption": "a man cleans a swimming pool"},
            {"video": "apply_eye_makeup.avi", "caption": "a woman applies eye makeup"},
            {"video": "flipping_pancake.mkv", "caption": "someone flips a pancake in a pan"},
            {"video": "missing.mp4", "caption": "this video does not exist"}]
    (tmp_path / "caps.jsonl").write_text("\n".join(json.dumps(c) for c in caps) + "\n")
    p = run_tool("opt", "vclip-run", "retrieval", "--precision", "fp32", "--visual", VISUAL, "--text-model", TEXT, "--captions", tmp_path / "caps.jsonl",
                 "--root", VIDEOS, "--json", "--save-similarity", tmp_path / "sim.npy", check=True)
    rep = json.loads(p.stdout)
    assert rep["n_captions"] == 5 and rep["n_videos"] == 4 and rep["n_skipped"] == 1
    # independent: ORT on the standard-ops VCLIP export, the exact `frames` tensors, encode-text's caption features
    std = tmp_path / "v.onnx"
    run_tool("opt", "vclipc", "compile", VISUAL, "--frames", "8", "--export-standard-ops", "-o", std, check=True)
    sess = ort.InferenceSession(str(std), providers=["CPUExecutionProvider"])
    vids = []
    for c in CLIPS:
        run_tool("opt", "vclip-run", "frames", os.path.join(VIDEOS, c), "--crop-size", "16", "-o", tmp_path / "x.npy", check=True)
        f = sess.run(None, {"video": np.load(tmp_path / "x.npy")})[0].astype(np.float64)
        f = (f / np.linalg.norm(f, axis=-1, keepdims=True)).mean(axis=(0, 1))
        vids.append(f / np.linalg.norm(f))
    run_tool("opt", "vclip-run", "encode-text", "--precision", "fp32", "--text-model", TEXT, "--captions", tmp_path / "caps.jsonl", "-o",
             tmp_path / "c.safetensors", check=True)
    T = load_file(str(tmp_path / "c.safetensors"))["caption_features"][:5]  # the 5 captions of readable videos
    want = T @ np.array(vids).T
    assert np.abs(np.load(tmp_path / "sim.npy") - want).max() < 1e-4
    t2v, v2t = numpy_retrieval(want.astype(np.float32), np.array([0, 0, 1, 2, 3]))
    for k in t2v:
        assert abs(rep["text_to_video"][k] - t2v[k]) < 1e-6 and abs(rep["video_to_text"][k] - v2t[k]) < 1e-6
    # shared among two ranks (mpirun): each encodes half of the videos (one share holds the missing one); rank 0 reports the same
    two = subprocess.run(mpi_command(2, os.path.join(BUILDS["opt"], "vclip-run"),
                                     ["retrieval", "--precision", "fp32", "--visual", VISUAL, "--text-model", TEXT, "--captions",
                                      tmp_path / "caps.jsonl", "--root", VIDEOS, "--json", "--threads", "1", "--save-similarity",
                                      tmp_path / "sim2.npy"]),
                         capture_output=True, text=True, timeout=300, env=mpi_env())
    assert two.returncode == 0, two.stderr
    assert json.loads(two.stdout) == rep
    assert np.array_equal(np.load(tmp_path / "sim2.npy"), np.load(tmp_path / "sim.npy"))


def test_sweep_interpolates_weights(setup, tmp_path):
    import onnx
    from onnx import numpy_helper
    a = onnx.load(VISUAL)
    rng = np.random.default_rng(5)
    b, mid = onnx.load(VISUAL), onnx.load(VISUAL)
    for tb, tm, ta in zip(b.graph.initializer, mid.graph.initializer, a.graph.initializer):
        x = numpy_helper.to_array(ta)
        if x.dtype != np.float32:
            continue
        y = (x + rng.standard_normal(x.shape).astype(np.float32) * 0.5 * (np.abs(x).mean() + 1e-3)).astype(np.float32)
        tb.CopyFrom(numpy_helper.from_array(y, ta.name))
        tm.CopyFrom(numpy_helper.from_array((np.float32(0.5) * x + np.float32(0.5) * y).astype(np.float32), ta.name))
    onnx.save(b, str(tmp_path / "ft.onnx"))
    onnx.save(mid, str(tmp_path / "mid.onnx"))
    lists = ["--zero-shot-list", setup / "test.csv", "--zero-shot-classes", setup / "cls.safetensors",
             "--close-list", setup / "test.csv", "--close-classes", setup / "classes.txt", "--text-model", TEXT, "--root", VIDEOS]
    p = run_tool("opt", "vclip-run", "sweep", "--precision", "fp32", "--clip", VISUAL, "--finetuned", tmp_path / "ft.onnx", "--ratios", "0:1:0.5",
                 "--plot", tmp_path / "curve.svg", "--json", *lists, check=True)
    curve = json.loads(p.stdout)
    assert curve["ratios"] == [0.0, 0.5, 1.0]

    def top1(model, classes):
        q = run_tool("opt", "vclip-run", "eval", "--precision", "fp32", "--visual", model, "--classes", classes, "--text-model", TEXT, "--list",
                     setup / "test.csv", "--root", VIDEOS, "--json", "--no-cache", check=True)
        return json.loads(q.stdout)["top1"]
    for i, model in enumerate((tmp_path / "ft.onnx", tmp_path / "mid.onnx", VISUAL)):
        assert abs(curve["zero_shot_top1"][i] - top1(model, setup / "cls.safetensors")) < 1e-9
        assert abs(curve["close_set_top1"][i] - top1(model, setup / "classes.txt")) < 1e-9
    import xml.etree.ElementTree as ET
    svg = ET.parse(tmp_path / "curve.svg").getroot()
    assert len([e for e in svg.iter() if e.tag.endswith("circle")]) == 3


def test_sweep_refuses_mismatched_models(setup, tmp_path):
    r = run_tool("opt", "vclip-run", "sweep", "--precision", "fp32", "--clip", VISUAL, "--finetuned", Fixture("openai_visual_op17").model,
                 "--zero-shot-list", setup / "test.csv", "--zero-shot-classes", setup / "cls.safetensors",
                 "--close-list", setup / "test.csv", "--close-classes", setup / "cls.safetensors", "--root", VIDEOS)
    assert_clean_exit(r)
    assert "differs in type or shape" in r.stderr or "is not in the fine-tuned model" in r.stderr
