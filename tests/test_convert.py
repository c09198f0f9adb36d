"""tools/convert_released.py on a checkpoint the test writes in the released layout (PySlowFast's dict with
"model_state", OpenAI CLIP names under the wrapper's "model." prefix), from a random-weight CLIP: the fixture's
ONNX export is "the user's export", its CLIP state dict is rebuilt under OpenAI's names (the exporter renamed five
of them; EXPORTER_RENAMED says which, read off the export's graph), and the "fine-tuned" weights are those
perturbed.  The conversion must equal the same weights exported directly (initializers bit for bit, eval's scores
within 1e-6), refuse exports and state dicts that do not match, and turn a torch-saved caption dict into JSONL that
encode-text reads."""
import collections
import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from safetensors.numpy import load_file

from conftest import ROOT, Fixture, assert_clean_exit, run_tool

sys.path.insert(0, os.path.join(ROOT, "tools"))
import torch_zip  # noqa: E402

CONVERT = os.path.join(ROOT, "tools", "convert_released.py")
VISUAL = Fixture("openai_visual_fullvocab").model
TEXT = Fixture("openai_text_fullvocab").model
VIDEOS = os.path.join(ROOT, "tests", "fixtures", "videos")
CLIPS = ["arm_wrestling.mp4", "cleaning_pool.mp4", "apply_eye_makeup.avi", "flipping_pancake.mkv"]
# The export's renamed weights and the OpenAI names they came from (the graph shows their use: the class token's
# Expand, the positional Add, the attention's QKV MatMul, the MLP's two MatMuls), and how the exporter changed them.
EXPORTER_RENAMED = {
    "onnx::Expand_247": ("visual.class_embedding", lambda x: x.reshape(-1)),
    "onnx::Add_250": ("visual.positional_embedding", lambda x: x),
    "onnx::MatMul_251": ("visual.transformer.resblocks.0.attn.in_proj_weight", lambda x: x.T),
    "onnx::MatMul_259": ("visual.transformer.resblocks.0.mlp.c_fc.weight", lambda x: x.T),
    "onnx::MatMul_260": ("visual.transformer.resblocks.0.mlp.c_proj.weight", lambda x: x.T),
}


def export_values():
    return {i.name: numpy_helper.to_array(i) for i in onnx.load(VISUAL).graph.initializer}


def clip_state_from_export():
    """OpenAI-layout names -> values (as the CLIP the fixture was exported from held them), plus a text tower."""
    sd = collections.OrderedDict()
    for name, x in export_values().items():
        if name in EXPORTER_RENAMED:
            key, undo = EXPORTER_RENAMED[name]
            sd[key] = np.ascontiguousarray(undo(x))
        elif x.dtype == np.float32 and x.size > 1:
            sd[name] = x
    rng = np.random.default_rng(0)
    sd["token_embedding.weight"] = rng.standard_normal((64, 16)).astype(np.float32)
    sd["ln_final.weight"] = np.ones(16, np.float32)
    sd["text_projection"] = rng.standard_normal((16, 16)).astype(np.float32)
    sd["logit_scale"] = np.array(np.log(100), np.float32)
    return sd


def finetuned(sd, seed=1):
    rng = np.random.default_rng(seed)
    return collections.OrderedDict((k, np.asarray(v + 0.02 * rng.standard_normal(v.shape), np.float32)) for k, v in sd.items())


def exported_directly(ft, path):
    """The export with ft's values where the exporter put them: what exporting the fine-tuned CLIP gives."""
    m = onnx.load(VISUAL)
    for init in m.graph.initializer:
        if init.name in EXPORTER_RENAMED:
            key, undo = EXPORTER_RENAMED[init.name]
            x = undo(ft[key])  # the transforms are their own inverses up to the reshape
            value = np.ascontiguousarray(x).reshape(numpy_helper.to_array(init).shape)
        elif init.name in ft:
            value = ft[init.name]
        else:
            continue
        init.CopyFrom(numpy_helper.from_array(value.astype(np.float32), init.name))
    onnx.save(m, path)


def released_checkpoint(ft, path):
    torch_zip.save({"epoch": 22, "model_state": collections.OrderedDict(("model." + k, v) for k, v in ft.items()),
                    "optimizer_state": {"state": {}, "param_groups": [{"lr": 3.33e-6}]}, "cfg": "TRAIN:\n  BATCH_SIZE: 64\n"}, path)


def convert(*args):
    return subprocess.run([sys.executable, CONVERT, *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("convert")
    sd = clip_state_from_export()
    ft = finetuned(sd)
    torch_zip.save(sd, d / "clip.pt")
    released_checkpoint(ft, d / "ckpt.pyth")
    exported_directly(ft, d / "direct.onnx")
    return d, sd, ft


def scores(model, d, name):
    (d / "list.csv").write_text("".join(f"{c},{i}\n" for i, c in enumerate(CLIPS)))
    (d / "classes.txt").write_text("arm wrestling\ncleaning pool\napply eye makeup\nflipping pancake\n")
    run_tool("opt", "vclip-run", "eval", "--visual", model, "--text-model", TEXT, "--classes", d / "classes.txt", "--list", d / "list.csv",
             "--root", VIDEOS, "--no-cache", "--scores", d / f"{name}.npy", check=True)
    return np.load(d / f"{name}.npy")


def test_round_trip_equals_the_direct_export(files):
    d, sd, ft = files
    p = convert("--checkpoint", d / "ckpt.pyth", "--onnx", VISUAL, "--clip-state", d / "clip.pt", "-o", d / "w.safetensors",
                "--onnx-out", d / "patched.onnx")
    assert p.returncode == 0, p.stderr
    assert "5 renamed by the exporter" in p.stdout
    direct = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(d / "direct.onnx")).graph.initializer}
    patched = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(d / "patched.onnx")).graph.initializer}
    assert direct.keys() == patched.keys()
    for k in direct:
        assert np.array_equal(direct[k], patched[k]), k
    w = load_file(str(d / "w.safetensors"))
    assert float(w["logit_scale"]) == float(ft["logit_scale"])
    a, b = scores(d / "direct.onnx", d, "direct"), scores(d / "patched.onnx", d, "patched")
    assert np.abs(a - b).max() <= 1e-6 * max(1.0, np.abs(a).max())
    assert np.abs(a - scores(VISUAL, d, "clip")).max() > 1e-3, "the fine-tuned weights changed nothing"
    # the safetensors output goes straight into the tools: the encoder + --weights classifies as the direct export
    cls = ["arm wrestling", "cleaning pool", "apply eye makeup", "flipping pancake"]
    probs = []
    for extra in (["--visual", VISUAL, "--weights", d / "w.safetensors"], ["--visual", d / "direct.onnx"]):
        out = run_tool("opt", "vclip-run", "classify", os.path.join(VIDEOS, CLIPS[0]), *extra, "--text-model", TEXT, "--classes",
                       ",".join(cls), "--top-k", "4", "--json", check=True).stdout
        probs.append({t["class"]: t["probability"] for t in json.loads(out)["top"]})
    assert all(abs(probs[0][c] - probs[1][c]) <= 1e-6 for c in cls)


def test_reader_reads_what_torch_writes(tmp_path):
    torch = pytest.importorskip("torch", reason="torch is not installed (only tools/install-deps.sh --fixtures brings it): "
                                                "the cross-check with torch.save/torch.load runs where it is")
    sd = collections.OrderedDict([("model.a", torch.randn(3, 4)), ("model.b", torch.randn(5).to(torch.bfloat16)),
                                  ("model.c", torch.arange(6).reshape(2, 3).t())])
    torch.save({"model_state": sd, "epoch": 3}, tmp_path / "t.pyth")
    got = torch_zip.load(tmp_path / "t.pyth")
    for k, v in sd.items():
        assert np.array_equal(got["model_state"][k], v.float().numpy() if v.dtype == torch.bfloat16 else v.numpy()), k
    torch_zip.save({"model_state": {k: v.float().numpy() for k, v in sd.items()}}, tmp_path / "ours.pyth")
    back = torch.load(tmp_path / "ours.pyth", weights_only=True)
    for k, v in sd.items():
        assert torch.equal(back["model_state"][k], v.float()), k


@pytest.mark.parametrize("case", ["other_clip", "ambiguous", "named_differs", "missing_in_checkpoint", "not_a_checkpoint", "missing_file"])
def test_mismatches_are_refused_by_name(files, tmp_path, case):
    d, sd, ft = files
    sd, ckpt = collections.OrderedDict(sd), d / "ckpt.pyth"
    want = None
    if case == "other_clip":
        sd["visual.transformer.resblocks.0.mlp.c_fc.weight"] = sd["visual.transformer.resblocks.0.mlp.c_fc.weight"] + 1
        want = "ONNX weight 'onnx::MatMul_259' (16, 64): no tensor of the CLIP state dict equals it"
    elif case == "ambiguous":
        sd["visual.spare_copy"] = sd["visual.positional_embedding"].copy()
        want = "ONNX weight 'onnx::Add_250' (5, 16) equals several CLIP tensors"
    elif case == "named_differs":
        sd["visual.proj"] = sd["visual.proj"] * 2
        want = "ONNX weight 'visual.proj' (16, 16) differs from the CLIP state dict's 'visual.proj'"
    elif case == "missing_in_checkpoint":
        ft2 = collections.OrderedDict((k, v) for k, v in ft.items() if k != "visual.transformer.resblocks.0.attn.in_proj_weight")
        ckpt = tmp_path / "partial.pyth"
        released_checkpoint(ft2, ckpt)
        want = "no 'visual.transformer.resblocks.0.attn.in_proj_weight' (under the wrapper's prefix: 'model.visual"
    elif case == "not_a_checkpoint":
        ckpt = tmp_path / "bad.pyth"
        ckpt.write_bytes(b"\x80\x02}q\x00.")  # a bare pickle: torch's pre-1.6 format
        want = "not a zip checkpoint"
    elif case == "missing_file":
        ckpt, want = tmp_path / "nope.pyth", "nope.pyth: no such file"
    torch_zip.save(sd, tmp_path / "clip.pt")
    p = convert("--checkpoint", ckpt, "--onnx", VISUAL, "--clip-state", tmp_path / "clip.pt", "-o", tmp_path / "w.safetensors")
    assert_clean_exit(p)
    assert want in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
    assert not (tmp_path / "w.safetensors").exists()


def test_captions_dict_to_jsonl(tmp_path):
    caps = {"arm_wrestling": "two men arm wrestling at a table", "cleaning_pool": ["a man cleans a pool", "pool cleaning"]}
    torch_zip.save(caps, tmp_path / "caps.pt")
    p = convert("--captions", tmp_path / "caps.pt", "-o", tmp_path / "caps.jsonl")
    assert p.returncode == 0, p.stderr
    lines = [json.loads(l) for l in (tmp_path / "caps.jsonl").read_text().splitlines()]
    assert lines == [{"video": "arm_wrestling", "caption": caps["arm_wrestling"]}, {"video": "cleaning_pool", "captions": caps["cleaning_pool"]}]
    run_tool("opt", "vclip-run", "encode-text", "--text-model", TEXT, "--captions", tmp_path / "caps.jsonl", "-o", tmp_path / "c.safetensors",
             check=True)
    assert load_file(str(tmp_path / "c.safetensors"))["caption_features"].shape[0] == 3
    torch_zip.save({"a": 3}, tmp_path / "bad.pt")
    bad = convert("--captions", tmp_path / "bad.pt", "-o", tmp_path / "x.jsonl")
    assert_clean_exit(bad)
    assert "the caption of 'a' is not text" in bad.stderr and not (tmp_path / "x.jsonl").exists()
