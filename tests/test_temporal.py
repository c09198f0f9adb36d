"""VCLIP's temporal-window attention (vclipc compile --frames) against an
independent PyTorch implementation written from DESIGN.md
(tests/ref/vclip_reference.py, outputs committed): T = 8, windows 1 and 2,
zero-filled and masked boundaries, on our runtime and, exported as standard
ops, on ONNX Runtime.  T = 1 and window 0 reproduce the image model exactly."""
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from conftest import ROOT, Fixture, assert_clean_exit, run_tool

REF = os.path.join(ROOT, "tests", "fixtures", "vclip_temporal")
IMAGE = Fixture("openai_visual_op17").model
VIDEO = os.path.join(REF, "video.npy")
TOL = 1e-4
CASES = [(w, b) for w in (1, 2) for b in ("zero", "mask")]


def compile_vclip(tmp_path, *args):
    out = tmp_path / "vclip.onnx"
    run_tool("opt", "vclipc", "compile", IMAGE, "-o", out, *args, check=True)
    return out


def run_video(variant, model, tmp_path, video=VIDEO):
    out = tmp_path / "fe.npy"
    run_tool(variant, "vclipc", "run", "--precision", "fp32", model, "--input", f"video={video}", "--output", f"frame_embeddings={out}", check=True)
    return np.load(out)


@pytest.mark.parametrize("window,boundary", CASES)
def test_matches_pytorch_reference(window, boundary, variant, tmp_path):
    m = compile_vclip(tmp_path, "--frames", "8", "--temporal-window", str(window), "--temporal-boundary", boundary)
    got = run_video(variant, m, tmp_path)
    want = np.load(os.path.join(REF, f"expected_w{window}_{boundary}.npy"))
    assert got.shape == want.shape == (2, 8, 32)
    assert np.abs(got - want).max() < TOL


@pytest.mark.parametrize("window,boundary", CASES)
def test_standard_ops_export_runs_in_ort(window, boundary, tmp_path):
    m = compile_vclip(tmp_path, "--frames", "8", "--temporal-window", str(window), "--temporal-boundary", boundary,
                      "--export-standard-ops")
    model = onnx.load(str(m))
    onnx.checker.check_model(model, full_check=True)
    assert not [n for n in model.graph.node if n.domain]
    assert [i.name for i in model.graph.input] == ["video"] and [o.name for o in model.graph.output] == ["frame_embeddings"]
    got = ort.InferenceSession(str(m), providers=["CPUExecutionProvider"]).run(None, {"video": np.load(VIDEO)})[0]
    assert np.abs(got - np.load(os.path.join(REF, f"expected_w{window}_{boundary}.npy"))).max() < TOL


def test_custom_domain_export_keeps_the_temporal_attributes(tmp_path):
    m = onnx.load(str(compile_vclip(tmp_path, "--frames", "8", "--temporal-window", "2", "--temporal-boundary", "mask")))
    att = [n for n in m.graph.node if n.op_type == "Attention" and n.domain == "ai.vclip"]
    assert len(att) == 2
    for n in att:
        a = {x.name: x.i for x in n.attribute if x.type == onnx.AttributeProto.INT}
        assert (a["frames"], a["window"], a["boundary"]) == (8, 2, 1)
    dims = m.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [8, 3, 32, 32]


def image_model_per_frame(tmp_path, video):
    frames = tmp_path / "frames.npy"
    np.save(frames, video.reshape(-1, *video.shape[2:]))
    out = tmp_path / "img.npy"
    run_tool("opt", "vclipc", "run", "--precision", "fp32", IMAGE, "--input", f"image={frames}", "--output", f"image_features={out}", check=True)
    return np.load(out).reshape(video.shape[0], video.shape[1], -1)


def test_one_frame_is_the_image_model(tmp_path):
    video = np.load(VIDEO)[:, :1]
    p = tmp_path / "v1.npy"
    np.save(p, video)
    got = run_video("opt", compile_vclip(tmp_path, "--frames", "1"), tmp_path, p)
    np.testing.assert_array_equal(got, image_model_per_frame(tmp_path, video))


def test_window_zero_is_the_image_model(tmp_path):
    got = run_video("opt", compile_vclip(tmp_path, "--frames", "8", "--temporal-window", "0"), tmp_path)
    np.testing.assert_array_equal(got, image_model_per_frame(tmp_path, np.load(VIDEO)))


def test_errors(tmp_path):
    text = Fixture("openai_text_op17").model
    cases = [
        (["compile", text, "-o", tmp_path / "x.onnx", "--frames", "8"], "--frames expects an image encoder"),
        (["compile", IMAGE, "-o", tmp_path / "x.onnx", "--frames", "8", "--no-fusion"], "--frames needs the fusion passes"),
        (["compile", IMAGE, "-o", tmp_path / "x.onnx", "--frames", "8", "--temporal-boundary", "wrap"], "--temporal-boundary is zero or mask"),
        (["compile", IMAGE, "-o", tmp_path / "x.onnx", "--frames", "0"], "--frames needs a positive integer"),
    ]
    for args, msg in cases:
        r = run_tool("opt", "vclipc", *args)
        assert_clean_exit(r)
        assert msg in r.stderr, r.stderr
    m = compile_vclip(tmp_path, "--frames", "8")
    bad = tmp_path / "bad.npy"
    np.save(bad, np.load(VIDEO)[:, :4])
    r = run_tool("opt", "vclipc", "run", "--precision", "fp32", m, "--input", f"video={bad}")
    assert_clean_exit(r)
    assert "input 'video': dim 1 must be 8, got 4" in r.stderr
