"""The video pipeline against a PyAV + NumPy reference of the released
loader's sampling and preprocessing (tests/ref/video_reference.py): the four
real clips (H.264 MP4, XviD AVI, MKV) and videos made here with the ffmpeg
CLI (VP9/WebM, rotated, variable frame rate, 5 frames, 1080p, odd size).
Same frame indices; pixels after normalization differ only by the rounding
of the resized frames to uint8 (the loader's queues hold uint8): at most half
a level, 0.5/255/0.2613 = 0.0075, and 0.004 on average.  The resize itself is
PyTorch's bilinear re-implemented exactly.  Broken
files are refused cleanly, under ASan too.  The loader is deterministic
whatever its worker count and replaces or skips unreadable videos."""
import glob
import json
import os
import subprocess

import numpy as np
import pytest

from conftest import ROOT, assert_clean_exit, run_tool
from ref import video_reference as R

REAL = sorted(p for p in glob.glob(os.path.join(ROOT, "tests", "fixtures", "videos", "*")) if not p.endswith(".csv"))
MAE_BOUND = 0.004
MAX_BOUND = 0.5 / 255 / 0.26130258 + 1e-6

GENERATED = {  # name: ffmpeg arguments after the input options
    "vp9.webm": ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "4", "-c:v", "libvpx-vp9", "-b:v", "300k"],
    "vfr.mkv": ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-t", "3", "-vf", "setpts='PTS+0.02*sin(N)/TB'",
                "-fps_mode", "vfr", "-c:v", "libx264", "-pix_fmt", "yuv420p"],
    "short.mp4": ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-frames:v", "5", "-c:v", "libx264", "-pix_fmt", "yuv420p"],
    "hd.mp4": ["-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30", "-t", "2", "-c:v", "libx264", "-preset", "ultrafast",
               "-pix_fmt", "yuv420p"],
    "odd.mkv": ["-f", "lavfi", "-i", "testsrc2=size=333x177:rate=24", "-t", "2", "-c:v", "ffv1"],
    "base.mp4": ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-t", "3", "-c:v", "libx264", "-pix_fmt", "yuv420p"],
}


@pytest.fixture(scope="session")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    for name, args in GENERATED.items():
        subprocess.run(["ffmpeg", "-v", "error", "-y", *args, str(d / name)], check=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(d / "base.mp4"), "-c", "copy", "-metadata:s:v:0", "rotate=90",
                    str(d / "rot90.mp4")], check=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:duration=1", str(d / "audio_only.m4a")],
                   check=True)
    return d


def frames(variant, path, tmp_path, *extra):
    out = tmp_path / "clips.npy"
    p = run_tool(variant, "vclip-run", "frames", path, "-o", out, "--json", *extra, check=True)
    return json.loads(p.stdout), np.load(out)


def all_videos(videos):
    return REAL + [str(videos / n) for n in ("vp9.webm", "rot90.mp4", "vfr.mkv", "short.mp4", "hd.mp4", "odd.mkv")]


def test_test_views_match_reference(videos, tmp_path):
    for path in all_videos(videos):
        plan, ours = frames("opt", path, tmp_path)
        idx, ref = R.test_views(path)
        assert [c["indices"] for c in plan["clips"]] == idx, path
        assert ours.shape == ref.shape == (3, 8, 3, 224, 224)
        assert np.abs(ours - ref).mean() < MAE_BOUND and np.abs(ours - ref).max() <= MAX_BOUND, path
        span = 16 * 8 / 30 * plan["video"]["fps"]
        if plan["video"]["frames"] > span + 10:  # shorter videos: every view is the same clip, by design
            assert np.abs(ours[0] - ours[2]).mean() > 0.01, f"{path}: views must differ"


def test_rotation_and_short_videos(videos, tmp_path):
    plan, rot = frames("opt", str(videos / "rot90.mp4"), tmp_path)
    assert plan["video"]["rotation"] == 270  # degrees clockwise, as ffmpeg's autorotate computes it
    _, base = frames("opt", str(videos / "base.mp4"), tmp_path)
    assert np.abs(rot - base).mean() > 0.05  # upright portrait frames, not the landscape source
    plan, _ = frames("opt", str(videos / "short.mp4"), tmp_path)
    assert plan["video"]["frames"] == 5 and plan["clips"][0]["indices"] == [0, 4, 4, 4, 4, 4, 4, 4]


def test_three_crops(videos, tmp_path):
    path = REAL[0]
    plan, ours = frames("opt", path, tmp_path, "--crops", "3", "--views", "2")
    assert ours.shape == (6, 8, 3, 224, 224)
    for k, clip in enumerate(plan["clips"]):
        ref = R.preprocess(R.decode(path, clip["indices"]), 224, 224, spatial=k % 3)
        assert np.abs(ours[k] - ref).mean() < MAE_BOUND


def test_train_mode(videos, tmp_path):
    path = REAL[1]
    n, _ = R.video_info(path)
    flips, sides, seeked = set(), set(), False
    for seed in range(6):
        plan, ours = frames("opt", path, tmp_path, "--mode", "train", "--seed", str(seed))
        again = frames("opt", path, tmp_path, "--mode", "train", "--seed", str(seed))[1]
        np.testing.assert_array_equal(ours, again)  # deterministic for a seed
        c = plan["clips"][0]
        assert ours.shape == (1, 8, 3, 224, 224) and 224 <= c["short_side"] <= 256
        assert all(0 <= i < n for i in c["indices"]) and c["indices"] == sorted(c["indices"])
        flips.add(c["flip"])
        sides.add(c["short_side"])
        ref = R.preprocess(R.decode(path, c["indices"]), c["short_side"], 224, c["crop_y"], c["crop_x"], c["flip"])
        # the reference decodes sequentially; we seek when a clip starts past frame 24: same pixels either way
        assert np.abs(ours[0] - ref).mean() < MAE_BOUND and np.abs(ours[0] - ref).max() <= MAX_BOUND
        seeked = seeked or c["indices"][0] >= 24
    assert flips == {0, 1} and len(sides) > 1 and seeked


def test_contact_sheet(tmp_path):
    from PIL import Image
    sheet = tmp_path / "s.png"
    run_tool("opt", "vclip-run", "frames", REAL[0], "-o", tmp_path / "x.npy", "--png", sheet, "--crop-size", "64", check=True)
    img = np.asarray(Image.open(sheet))
    assert img.shape == (3 * 64 + 4 * 2, 8 * 64 + 9 * 2, 3) and img.std() > 20


def broken_files(videos, d):
    src = open(REAL[1], "rb").read()
    files = {"random.mp4": np.random.default_rng(3).integers(0, 256, 20000, dtype=np.uint8).tobytes(),
             "empty.mp4": b"", "header_only.mp4": open(str(videos / "base.mp4"), "rb").read()[:1024]}
    for cut in (100, 5000, len(src) // 3):
        files[f"truncated_{cut}.avi"] = src[:cut]
    for name, data in files.items():
        (d / name).write_bytes(data)
    return [str(d / n) for n in files] + [str(videos / "audio_only.m4a"), str(d / "missing.mp4"), str(d)]


def test_broken_files_are_refused(variant, videos, tmp_path):
    d = tmp_path / "broken"
    d.mkdir()
    for path in broken_files(videos, d):
        r = run_tool(variant, "vclip-run", "frames", path, "-o", tmp_path / "x.npy")
        if r.returncode == 0:  # a truncated AVI may still hold whole frames: then the output must be sound
            assert np.isfinite(np.load(tmp_path / "x.npy")).all(), path
            continue
        assert_clean_exit(r)
        assert path in r.stderr, r.stderr


def test_probe(videos, tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    for p in REAL:
        os.symlink(p, d / os.path.basename(p))
    (d / "bad.mp4").write_bytes(b"\x00" * 100)
    lines = ["path,label"] + [f"{os.path.basename(p)},{i}" for i, p in enumerate(REAL)] + ["bad.mp4,9", "gone.avi,3"]
    (tmp_path / "list.csv").write_text("\n".join(lines) + "\n")
    r = run_tool("opt", "vclip-run", "probe", tmp_path / "list.csv", "--root", d)
    assert r.returncode == 1
    assert f"{len(REAL)} of {len(REAL) + 2} videos readable" in r.stdout
    assert "bad.mp4" in r.stderr and "gone.avi" in r.stderr and r.stderr.count("unreadable") == 2
    (tmp_path / "good.csv").write_text("\n".join(lines[:-2]) + "\n")
    r = run_tool("opt", "vclip-run", "probe", tmp_path / "good.csv", "--root", d, check=True)
    assert "all good" in r.stdout


def dataset(tmp_path, extra=()):
    lines = [f"{os.path.basename(p)},{i}" for i, p in enumerate(REAL)] + list(extra)
    (tmp_path / "list.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "list.csv", os.path.dirname(REAL[0])


def load(variant, csv, root, *args):
    p = run_tool(variant, "vclip-run", "load", csv, "--root", root, "--json", "--digest", "--batch", "2", *args, check=True)
    return json.loads(p.stdout), p.stderr


@pytest.mark.parametrize("mode", ["test", "train"])
def test_loader_is_deterministic_across_workers(mode, tmp_path):
    csv, root = dataset(tmp_path)
    runs = [load("opt", csv, root, "--mode", mode, "--workers", str(w), "--seed", "5", "--crop-size", "96")[0] for w in (1, 2, 3)]
    assert len({r["digest"] for r in runs}) == 1
    assert runs[0]["videos"] == len(REAL) and runs[0]["skipped"] == 0
    other = load("opt", csv, root, "--mode", mode, "--workers", "2", "--seed", "6", "--crop-size", "96")[0]
    assert (other["digest"] != runs[0]["digest"]) == (mode == "train")  # the seed matters only to training


def test_loader_handles_unreadable_videos(variant, tmp_path):
    (tmp_path / "junk.mp4").write_bytes(b"\x00" * 5000)
    os.symlink(tmp_path / "junk.mp4", os.path.join(tmp_path, "link.mp4"))
    csv, root = dataset(tmp_path, ["../../../../../../../../../../" + str(tmp_path / "junk.mp4").lstrip("/") + ",7", "missing.mp4,8"])
    rep, err = load(variant, csv, root, "--workers", "2", "--crop-size", "64", "--frames", "4")
    assert rep["videos"] == len(REAL) + 2 and rep["replaced"] == 2 and rep["skipped"] == 0
    assert err.count("vclip: warning: replacing an unreadable video") == 2 and "missing.mp4" in err
    rep, err = load(variant, csv, root, "--workers", "2", "--crop-size", "64", "--frames", "4", "--skip-broken")
    assert rep["videos"] == len(REAL) and rep["skipped"] == 2
    assert "Sanitizer" not in err and "runtime error" not in err


def test_loader_rejects_bad_lists(tmp_path):
    (tmp_path / "bad.csv").write_text("a.mp4,0\nb.mp4,notanumber\n")
    r = run_tool("opt", "vclip-run", "load", tmp_path / "bad.csv")
    assert_clean_exit(r)
    assert "bad.csv:2: expected 'relative/path,label_index'" in r.stderr
