"""`vclip-run train` end to end on the four real clips with a small CLIP
(full vocabulary, 16-pixel images): resuming after a SIGKILL at a random step
reproduces the uninterrupted run exactly (losses and final weights, CPU
backend), non-finite losses stop the run with the last checkpoint intact,
the final weights follow the SWA + patch definitions, and bad input gets a
clear error.  The training step's numerics are checked against PyTorch in
tests/unit/test_train_step.c."""
import json
import os
import random
import signal
import subprocess
import time

import numpy as np
import pytest
from safetensors.numpy import load_file

from conftest import BUILDS, CACHE_DIR, ROOT, Fixture, assert_clean_exit, run_tool

VIDEOS = os.path.join(ROOT, "tests", "fixtures", "videos")
VISUAL = Fixture("openai_visual_fullvocab").model
TEXT = Fixture("openai_text_fullvocab").model


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("train")
    (d / "train.csv").write_text("arm_wrestling.mp4,0\ncleaning_pool.mp4,1\napply_eye_makeup.avi,2\nflipping_pancake.mkv,3\n")
    (d / "classes.txt").write_text("arm wrestling\ncleaning pool\napply eye makeup\nflipping pancake\n")
    caps = [("arm_wrestling", "two men arm wrestling"), ("cleaning_pool.mp4", "a man cleans a pool"),
            ("apply_eye_makeup", "a woman applies eye makeup"), ("flipping_pancake", "someone flips a pancake")]
    (d / "caps.jsonl").write_text("".join(json.dumps({"video": v, "caption": c}) + "\n" for v, c in caps))
    return d


def train_args(d, out, *extra):
    return ["train", "--visual", VISUAL, "--text-model", TEXT, "--classes", d / "classes.txt", "--captions", d / "caps.jsonl",
            "--train-list", d / "train.csv", "--root", VIDEOS, "--batch", "2", "--epochs", "5", "--lr", "1e-3",
            "--warmup-epochs", "1", "--swa-start", "2", "--save-every", "1", "--seed", "3", "--out", out, "--quiet", *extra]


def losses(out):
    by_step = {}
    for line in open(os.path.join(out, "metrics.jsonl")):
        m = json.loads(line)
        by_step[m["step"]] = (m["loss"], m["alpha"], m["grad_norm"])  # null where not finite
    return by_step


def test_resume_after_kill_matches_uninterrupted(data, tmp_path):
    run_tool("opt", "vclip-run", *train_args(data, tmp_path / "full"), check=True)
    full = losses(tmp_path / "full")
    assert sorted(full) == list(range(1, 11))
    rng = random.Random(int(time.time()))
    out = tmp_path / "killed"
    for attempt in range(5):  # a run may finish before the kill lands; then try an earlier step
        kill_at = rng.randint(2, 8)  # the first checkpoint follows step 1
        p = subprocess.Popen([os.path.join(BUILDS["opt"], "vclip-run"), *map(str, train_args(data, out))],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ, VCLIP_CACHE_DIR=CACHE_DIR))
        metrics = out / "metrics.jsonl"
        while p.poll() is None:
            if metrics.exists() and sum(1 for _ in open(metrics)) >= kill_at:
                p.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
        p.wait()
        if p.returncode == -signal.SIGKILL:
            break
    assert p.returncode == -signal.SIGKILL, "the training run always finished before it could be killed"
    r = run_tool("opt", "vclip-run", *train_args(data, out, "--resume"), check=True)
    resumed = losses(out)
    assert resumed == full, f"killed after step {kill_at}: losses differ after resuming"
    a, b = load_file(str(tmp_path / "full" / "weights.safetensors")), load_file(str(out / "weights.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    assert "Sanitizer" not in r.stderr


def test_swa_patch_average_and_patch_tool(data, tmp_path):
    """SWA is the mean of the per-epoch weights from the second epoch by default; weights.safetensors is
    r * θ_CLIP + (1 - r) * SWA; `average` reproduces SWA offline and `patch` writes the
    same patched weights into an ONNX encoder."""
    import onnx
    import onnx.numpy_helper
    out = tmp_path / "run"
    args = train_args(data, out, "--epochs", "3", "--patch-ratio", "0.25", "--keep-epochs")
    i = args.index("--swa-start")
    del args[i:i + 2]  # the default: from the second epoch (counted from 1), as the released code averages 2..22
    run_tool("opt", "vclip-run", *args, check=True)
    e2, e3 = load_file(str(out / "epoch-2.safetensors")), load_file(str(out / "epoch-3.safetensors"))
    state, final = load_file(str(out / "checkpoint.safetensors")), load_file(str(out / "weights.safetensors"))
    clip = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(VISUAL).graph.initializer}
    trained = [k for k in final if k in clip]
    assert len(trained) > 10 and "logit_scale" in final
    for k in final:
        swa = (e2[k].astype(np.float64) + e3[k]) / 2
        assert np.allclose(state["swa/" + k], swa, atol=1e-6), k
        if k in clip:
            assert np.allclose(final[k], 0.25 * clip[k] + 0.75 * swa, atol=1e-6), k
    assert any(not np.allclose(e2[k], e3[k]) for k in trained), "the epochs did not change the weights"
    run_tool("opt", "vclip-run", "average", out / "epoch-2.safetensors", out / "epoch-3.safetensors", "-o", tmp_path / "avg.safetensors",
             check=True)
    avg = load_file(str(tmp_path / "avg.safetensors"))
    assert avg.keys() == final.keys()
    for k in avg:
        assert np.allclose(avg[k], state["swa/" + k], atol=1e-6), k
    run_tool("opt", "vclip-run", "patch", "--visual", VISUAL, "--weights", tmp_path / "avg.safetensors", "--ratio", "0.25",
             "-o", tmp_path / "patched.onnx", check=True)
    patched = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(tmp_path / "patched.onnx")).graph.initializer}
    for k in trained:
        assert np.allclose(patched[k], final[k], atol=1e-6), k
    # the patch-ratio curve straight from the trained weights equals the one from an exported encoder
    run_tool("opt", "vclip-run", "patch", "--visual", VISUAL, "--weights", out / "swa.safetensors", "--ratio", "0",
             "-o", tmp_path / "swa.onnx", check=True)
    curves = []
    for source in (["--weights", out / "swa.safetensors"], ["--finetuned", tmp_path / "swa.onnx"]):
        p = run_tool("opt", "vclip-run", "sweep", "--clip", VISUAL, *source, "--ratios", "0:1:0.5", "--text-model", TEXT,
                     "--zero-shot-list", data / "train.csv", "--zero-shot-classes", data / "classes.txt", "--close-list",
                     data / "train.csv", "--close-classes", data / "classes.txt", "--root", VIDEOS, "--json", check=True)
        curves.append(json.loads(p.stdout))
    assert curves[0] == curves[1] and len(curves[0]["ratios"]) == 3


def test_non_finite_losses_stop_with_checkpoint_intact(data, tmp_path):
    out = tmp_path / "nan"
    p = run_tool("opt", "vclip-run", *train_args(data, out, "--lr", "1e30", "--clip-norm", "0", "--warmup-epochs", "0"))
    assert_clean_exit(p)
    assert "not finite" in p.stderr and "checkpoint.safetensors" in p.stderr, p.stderr
    steps = losses(out)
    skipped = [s for s, (l, _, g) in steps.items() if l is None or g is None]
    assert len(skipped) == 5, steps
    ck = load_file(str(out / "checkpoint.safetensors"))
    assert all(np.isfinite(v).all() for k, v in ck.items() if not k.startswith("adamw")), "the checkpoint holds non-finite weights"


@pytest.mark.parametrize("case", ["no_checkpoint", "bad_label", "missing_caption", "too_few", "width"])
def test_bad_input_is_refused_clearly(data, tmp_path, case, variant):
    args = train_args(data, tmp_path / "o")
    if case == "no_checkpoint":
        args += ["--resume"]
        want = "checkpoint.safetensors"
    elif case == "bad_label":
        (tmp_path / "l.csv").write_text("arm_wrestling.mp4,0\ncleaning_pool.mp4,9\n")
        args[args.index("--train-list") + 1] = tmp_path / "l.csv"
        want = "label 9"
    elif case == "missing_caption":
        (tmp_path / "c.jsonl").write_text(json.dumps({"video": "arm_wrestling", "caption": "x"}) + "\n")
        args[args.index("--captions") + 1] = tmp_path / "c.jsonl"
        want = "no caption for"
    elif case == "too_few":
        args[args.index("--batch") + 1] = "8"
        want = "fewer than one batch"
    else:
        args[args.index("--visual") + 1] = Fixture("openai_visual_op17").model
        want = "does not match"
    p = run_tool(variant, "vclip-run", *args)
    assert_clean_exit(p)
    assert want in p.stderr, p.stderr


def test_visual_checkpoint_continues_from_its_weights(data, tmp_path):
    """--visual CKPT.safetensors starts from the file's weights, on the encoder its config records."""
    first = tmp_path / "first"
    run_tool("opt", "vclip-run", *train_args(data, first, "--epochs", "2"), check=True)
    args = train_args(data, tmp_path / "second", "--epochs", "1", "--plain", "--lr", "1e-12")
    args[args.index("--visual") + 1] = first / "weights.safetensors"
    run_tool("opt", "vclip-run", *args, check=True)
    a, b = load_file(str(first / "weights.safetensors")), load_file(str(tmp_path / "second" / "weights.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert np.allclose(a[k], b[k], atol=1e-6), k


def test_failed_checkpoint_write_keeps_the_last_one(data, tmp_path):
    """A checkpoint that cannot be written (file-size limit, as on a full disk) stops the run
    with a clear message; the previous checkpoint is untouched and no temporary file is left."""
    out = tmp_path / "run"
    run_tool("opt", "vclip-run", *train_args(data, out, "--epochs", "2"), check=True)
    ck = out / "checkpoint.safetensors"
    before = ck.read_bytes()
    limit_kb = len(before) // 1024 // 2
    args = " ".join(f"'{a}'" for a in map(str, train_args(data, out, "--epochs", "3", "--resume")))
    r = subprocess.run(["bash", "-c", f"ulimit -f {limit_kb}; exec {os.path.join(BUILDS['opt'], 'vclip-run')} {args}"],
                       capture_output=True, text=True, env=dict(os.environ, VCLIP_CACHE_DIR=CACHE_DIR))
    assert r.returncode == 1, r.stderr
    assert "File too large" in r.stderr and "checkpoint" in r.stderr, r.stderr
    assert ck.read_bytes() == before, "the last checkpoint must survive a failed write"
    assert not [p.name for p in out.iterdir() if "tmp" in p.name], "temporary files must be removed"


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) % 2 ** 64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % 2 ** 64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % 2 ** 64
    return state, z ^ (z >> 31)


def test_logged_lr_and_alpha_follow_their_definitions(data, tmp_path):
    """metrics.jsonl's lr is DESIGN.md's schedule (linear warm-up from lr/100
    over the warm-up epochs, then cosine to lr/100), and its alpha is the
    IWR sampler: U(LO, HI) from splitmix64 seeded with seed ^ 0x5EED, 53 bits
    per draw.  Both recomputed here independently of the C code."""
    import math
    out = tmp_path / "run"
    run_tool("opt", "vclip-run", *train_args(data, out, "--alpha", "0.1:0.5", "--seed", "11"), check=True)
    rows = [json.loads(line) for line in open(out / "metrics.jsonl")]
    steps_per_epoch, epochs, lr = 2, 5, 1e-3  # 4 videos, batch 2; train_args' --epochs 5 --lr 1e-3 --warmup-epochs 1
    total, warm, lo = steps_per_epoch * epochs, steps_per_epoch * 1, lr / 100
    state = 11 ^ 0x5EED
    assert [r["step"] for r in rows] == list(range(1, total + 1))
    for r in rows:
        s = r["step"] - 1
        if s < warm:
            want = lo + (lr - lo) * s / warm
        else:
            t = min(1.0, (s - warm) / (total - warm))
            want = lo + 0.5 * (lr - lo) * (1 + math.cos(math.pi * t))
        assert r["lr"] == pytest.approx(want, rel=1e-8), r
        state, z = splitmix64(state)
        assert r["alpha"] == pytest.approx(0.1 + 0.4 * (z >> 11) / 2 ** 53, rel=1e-8), r


@pytest.mark.parametrize("case", ["overlap", "huge_header", "wrong_size"])
def test_hostile_checkpoint_is_refused_on_resume(data, tmp_path, case):
    """A checkpoint whose header lies (tensors sharing bytes, a header longer
    than the file, a shape its bytes cannot hold) stops --resume with a
    message naming the file, before anything is read from it; the run's
    other files are left as they were."""
    import struct
    out = tmp_path / "run"
    run_tool("opt", "vclip-run", *train_args(data, out, "--epochs", "1"), check=True)
    ck = out / "checkpoint.safetensors"
    raw = ck.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    names = [k for k in header if k != "__metadata__"]
    if case == "overlap":  # the second tensor starts inside the first
        a, b = header[names[0]], header[names[1]]
        size = b["data_offsets"][1] - b["data_offsets"][0]
        b["data_offsets"] = [a["data_offsets"][0], a["data_offsets"][0] + size]
    elif case == "wrong_size":
        header[names[0]]["shape"] = [s * 2 for s in header[names[0]]["shape"]] or [2]
    h = json.dumps(header).encode()
    hl = 2 ** 40 if case == "huge_header" else len(h)
    ck.write_bytes(struct.pack("<Q", hl) + h + raw[8 + n:])
    metrics = (out / "metrics.jsonl").read_bytes()
    p = run_tool("opt", "vclip-run", *train_args(data, out, "--epochs", "2", "--resume"))
    assert_clean_exit(p)
    assert str(ck) in p.stderr, p.stderr
    assert (out / "metrics.jsonl").read_bytes() == metrics


def test_bf16_training_on_the_cpu(data, tmp_path):
    """--precision bf16 on the CPU: the step's GEMMs (forward Linear on the
    weights being trained, the backward pass's Gemms) round their operands to
    bf16 and sum in f32; master weights, AdamW, norms and losses stay f32.
    The first step (the same weights) stays within bf16's rounding of the
    fp32 run's loss and gradient norm; later steps follow their own path at
    lr 1e-3 (this tiny model's losses jump between 0.3 and 27), so they are
    only required finite, with the same alpha draws, and not all equal to
    fp32's (the bf16 kernels ran).  The step's numerics against the reference
    kernels and PyTorch are in tests/unit/test_train_step.c.  A CPU without
    AVX512-BF16 refuses it clearly instead."""
    run_tool("opt", "vclip-run", *train_args(data, tmp_path / "f32"), check=True)
    p = run_tool("opt", "vclip-run", *train_args(data, tmp_path / "bf16", "--precision", "bf16"))
    flags = next((l for l in open("/proc/cpuinfo") if l.startswith("flags")), "").split()
    if "avx512_bf16" not in flags:
        assert p.returncode == 1 and "AVX512-BF16" in p.stderr, p.stderr
        pytest.skip("this CPU has no AVX512-BF16: bf16 training is refused, as checked")
    assert p.returncode == 0, p.stderr
    f32, bf16 = losses(tmp_path / "f32"), losses(tmp_path / "bf16")
    assert f32.keys() == bf16.keys() and len(f32) == 10
    for s in f32:
        (l32, a32, g32), (l16, a16, g16) = f32[s], bf16[s]
        assert a32 == a16, "the same alpha draws"
        assert l16 is not None and g16 is not None, (s, l16, g16)
    (l32, _, g32), (l16, _, g16) = f32[1], bf16[1]
    assert abs(l16 - l32) <= 3e-2 * abs(l32) and abs(g16 - g32) <= 3e-2 * abs(g32), (l32, l16, g32, g16)
    assert any(f32[s][0] != bf16[s][0] for s in f32), "bf16 losses equal fp32's: the bf16 path did not run"


def test_recompute_trains_the_same_run_in_less_memory(tmp_path, data):
    """--recompute: the backward pass runs each block's forward again from
    the block's input instead of keeping its activations.  The run is the
    same run (every logged loss and gradient norm within 1e-5 of the plain
    one's: the same kernels on the same values, a GEMM epilogue fused where
    the copies allow it), the first step's report says how many blocks were
    recomputed, and the activations' peak is below the plain run's.  The
    numerics against PyTorch are in tests/unit/test_train_step.c; the
    savings on ViT-B/32 and ViT-L/14 in docs/training.md."""
    args = lambda out, *x: [a for a in train_args(data, out, *x) if a != "--quiet"] + ["--epochs", "2"]
    plain = run_tool("opt", "vclip-run", *args(tmp_path / "plain"), check=True)
    rec = run_tool("opt", "vclip-run", *args(tmp_path / "rec", "--recompute"), check=True)
    peak = lambda p: float(p.stderr.split("the step's activations take ")[1].split(" MB")[0])
    assert "--recompute: 2 blocks keep only their input" in rec.stderr, rec.stderr
    assert "--recompute" not in plain.stderr, plain.stderr
    assert peak(rec) < peak(plain), (peak(rec), peak(plain))
    a, b = losses(tmp_path / "plain"), losses(tmp_path / "rec")
    assert a.keys() == b.keys() and len(a) == 4
    for s in a:
        (la, aa, ga), (lb, ab, gb) = a[s], b[s]
        assert aa == ab and abs(la - lb) <= 1e-5 * abs(la) and abs(ga - gb) <= 1e-5 * abs(ga), (s, a[s], b[s])


def test_loss_scaling_by_a_power_of_two_changes_nothing_in_fp32(tmp_path, data):
    """--loss-scale S takes the gradients of S x loss and divides them by S in
    the update (fp16's dynamic loss scaling, on by default there; the scale's
    halving on overflow and doubling after good steps are checked on the
    emulated device in tests/unit/test_cuda_exec.c).  In fp32 on the CPU
    nothing overflows and a power of two scales exactly, so the run must be
    the plain run bit for bit: every logged loss and gradient norm, and the
    final weights; the metrics log the scale."""
    run_tool("opt", "vclip-run", *train_args(data, tmp_path / "plain", "--epochs", "2"), check=True)
    run_tool("opt", "vclip-run", *train_args(data, tmp_path / "scaled", "--epochs", "2", "--loss-scale", "65536"), check=True)
    assert losses(tmp_path / "plain") == losses(tmp_path / "scaled")
    scales = [json.loads(l)["loss_scale"] for l in open(tmp_path / "scaled" / "metrics.jsonl")]
    assert scales == [65536] * 4, scales
    a, b = load_file(str(tmp_path / "plain" / "weights.safetensors")), load_file(str(tmp_path / "scaled" / "weights.safetensors"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    p = run_tool("opt", "vclip-run", *train_args(data, tmp_path / "bad", "--loss-scale", "0.5"))
    assert p.returncode == 2 and "--loss-scale needs 1..1e30" in p.stderr, p.stderr
