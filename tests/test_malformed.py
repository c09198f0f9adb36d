"""Bad input never crashes vclipc: the committed hostile corpus (with the
message each must produce), truncations of a real model at many offsets,
bad .npy inputs, inputs of the wrong type or shape, out-of-range indices at
run time, and a write that fails part-way (the output is never left
half-written).  Runs on every build variant, ASan+UBSan included."""
import json
import os
import subprocess

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import BUILDS, ROOT, Fixture, assert_clean_exit, run_tool

MALFORMED = os.path.join(ROOT, "tests", "malformed")
EXPECTED = json.load(open(os.path.join(MALFORMED, "expected.json")))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_is_refused_with_its_message(name, variant):
    path = os.path.join(MALFORMED, name)
    for cmd in (["inspect", path], ["compile", path, "-o", "/nonexistent/x.onnx"]):
        p = run_tool(variant, "vclipc", *cmd)
        assert_clean_exit(p)
        assert EXPECTED[name] in p.stderr, p.stderr
        assert path in p.stderr, "the message must name the file"


def test_truncations_at_many_offsets(variant, tmp_path):
    src = open(Fixture("openai_text_op14").model, "rb").read()
    offsets = sorted(set(int(x) for x in np.linspace(1, len(src) - 1, 40)))
    for cut in offsets:
        p = tmp_path / "cut.onnx"
        p.write_bytes(src[:cut])
        r = run_tool(variant, "vclipc", "inspect", p)
        assert_clean_exit(r)
        assert "not a valid ONNX model" in r.stderr, f"cut at {cut}: {r.stderr}"


def test_flipped_bytes_never_crash(variant, tmp_path):
    src = bytearray(open(Fixture("hf_visual_op17").model, "rb").read())
    rng = np.random.default_rng(11)
    for i in range(25):
        b = bytearray(src)
        for pos in rng.integers(0, min(len(b), 20000), size=8):
            b[pos] = int(rng.integers(0, 256))
        p = tmp_path / "flip.onnx"
        p.write_bytes(bytes(b))
        r = run_tool(variant, "vclipc", "inspect", p)
        assert r.returncode in (0, 1), f"mutation {i}: exit {r.returncode}\n{r.stderr}"
        assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr


def run_args(fx, **override):
    args = ["run", fx.model]
    for k, v in fx.inputs.items():
        args += ["--input", f"{k}={override.get(k, v)}"]
    return args


@pytest.mark.parametrize("case,message", [
    ("f64", "input 'image': expected dtype f32, got f64"),
    ("rank", "input 'image': expected rank 4, got 3"),
    ("dims", "input 'image': dim 1 must be 3, got 4"),
    ("missing_file", "No such file or directory"),
    ("not_npy", "not a .npy file"),
    ("truncated_npy", "truncated"),
])
def test_bad_inputs(case, message, variant, tmp_path):
    fx = Fixture("openai_visual_op17")
    img = np.load(fx.inputs["image"])
    p = tmp_path / "x.npy"
    if case == "f64":
        np.save(p, img.astype(np.float64))
    elif case == "rank":
        np.save(p, img[0])
    elif case == "dims":
        np.save(p, np.zeros((2, 4, 32, 32), np.float32))
    elif case == "not_npy":
        p.write_text("hello")
    elif case == "truncated_npy":
        np.save(p, img)
        p.write_bytes(p.read_bytes()[:200])
    r = run_tool(variant, "vclipc", *run_args(fx, image=p))
    assert_clean_exit(r)
    assert message in r.stderr, r.stderr


def test_usage_errors(variant, tmp_path):
    fx = Fixture("openai_visual_op17")
    cases = [
        (["run", fx.model], "missing --input image=FILE.npy (f32[batch,3,32,32])"),
        (["run", fx.model, "--input", f"nope={fx.inputs['image']}"], "the model has no input named 'nope'"),
        (["run", fx.model, "--input", "image"], "--input needs NAME=FILE.npy"),
        (["run", fx.model, "--repeat", "0"], "--repeat needs a positive integer"),
        (["compile", fx.model], "missing -o OUT.onnx"),
        (["compile", fx.model, "-o", tmp_path / "o.onnx", "--dump-after", "nosuchpass"], "unknown pass 'nosuchpass'"),
        (["inspect"], "expects exactly one model file"),
        (["frobnicate"], "unknown command 'frobnicate'"),
        (["inspect", tmp_path / "absent.onnx"], "No such file or directory"),
    ]
    for args, msg in cases:
        r = run_tool(variant, "vclipc", *args)
        assert_clean_exit(r)
        assert msg in r.stderr, f"{args}: {r.stderr}"


def test_out_of_range_gather_index_names_the_node(variant, tmp_path):
    data = numpy_helper.from_array(np.arange(10, dtype=np.float32).reshape(5, 2), "table")
    node = helper.make_node("Gather", ["table", "ids"], ["y"], name="lookup")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("ids", TensorProto.INT64, ["n"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=[data])
    m = tmp_path / "gather.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), m)
    ids = tmp_path / "ids.npy"
    np.save(ids, np.array([1, 4, -5], np.int64))
    ok = run_tool(variant, "vclipc", "run", "--precision", "fp32", m, "--input", f"ids={ids}", "--output", f"y={tmp_path / 'y.npy'}", check=True)
    assert ok.returncode == 0
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), np.arange(10, dtype=np.float32).reshape(5, 2)[[1, 4, -5]])
    np.save(ids, np.array([1, 5], np.int64))
    r = run_tool(variant, "vclipc", "run", "--precision", "fp32", m, "--input", f"ids={ids}")
    assert_clean_exit(r)
    assert "node 'lookup' (Gather): index 5 out of range [0, 5)" in r.stderr, r.stderr


def test_failed_write_leaves_no_partial_output(tmp_path):
    """A write that hits the file-size limit fails cleanly and leaves nothing behind."""
    fx = Fixture("openai_visual_op17")
    out = tmp_path / "out.onnx"
    out.write_bytes(b"previous contents")
    cmd = f"ulimit -f 64; exec {os.path.join(BUILDS['opt'], 'vclipc')} compile {fx.model} -o {out}"
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True)
    assert r.returncode == 1, r.stderr
    assert "File too large" in r.stderr, r.stderr
    assert out.read_bytes() == b"previous contents", "the old file must survive a failed write"
    assert [p.name for p in tmp_path.iterdir()] == ["out.onnx"], "temporary files must be removed"


def vclip_model(node, inits, x_shape, y_shape, path):
    """A one-node model in our own domain (as `vclipc compile` writes them)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)
    g = helper.make_graph([node], "g", [x], [y], [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.vclip", 1)])
    onnx.save(m, path)


HOSTILE_VCLIP_OPS = {
    # packed weight [panels, K, 32] that cannot hold packed_n columns
    "packed_too_small": (helper.make_node("Linear", ["x", "w"], ["y"], name="lin", domain="ai.vclip", packed_n=100),
                         {"w": np.zeros((2, 8, 32), np.float32)}, [3, 8], [3, 100], "packed_n"),
    "unknown_activation": (helper.make_node("Linear", ["x", "w"], ["y"], name="lin", domain="ai.vclip", activation="swish"),
                           {"w": np.zeros((8, 4), np.float32)}, [3, 8], [3, 4], "unknown activation 'swish'"),
    "residual_wrong_shape": (helper.make_node("Linear", ["x", "w", "", "r"], ["y"], name="lin", domain="ai.vclip"),
                             {"w": np.zeros((8, 4), np.float32), "r": np.zeros((3, 5), np.float32)}, [3, 8], [3, 4],
                             "residual"),
    "reduce_register_out_of_range": (helper.make_node("FusedReduce", ["x"], ["y"], name="red", domain="ai.vclip", reduce="sum",
                                                      program=[0, 0, 9]), {}, [3, 8], [3, 1], "malformed"),
    "reduce_unknown_kind": (helper.make_node("FusedReduce", ["x"], ["y"], name="red", domain="ai.vclip", reduce="median"),
                            {}, [3, 8], [3, 1], "reduce must be sum, mean or max"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_VCLIP_OPS))
def test_hostile_vclip_ops_are_refused(case, variant, tmp_path):
    """Our own fused forms read from a file get the same checks as standard
    ops: a clean error naming the node, never a crash or a wrong answer."""
    node, inits, xs, ys, message = HOSTILE_VCLIP_OPS[case]
    model, x = tmp_path / "m.onnx", tmp_path / "x.npy"
    vclip_model(node, inits, xs, ys, model)
    np.save(x, np.ones(xs, np.float32))
    p = run_tool(variant, "vclipc", "run", "--precision", "fp32", model, "--input", f"x={x}")
    assert_clean_exit(p)
    assert p.returncode == 1 and message in p.stderr and node.name in p.stderr, p.stderr
