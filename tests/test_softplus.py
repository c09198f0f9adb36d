"""Softplus, the op added to show what adding a fusable op costs
(docs/architecture.md): ONNX Runtime is the oracle.  A chain with Softplus
fuses into one generated kernel and agrees with ORT, as do the reference
kernels alone, the standard-ops export and the sanitizer build, on inputs
from -100 to 100 where a naive log(1 + exp(x)) overflows.  Its gradient rule
is checked by finite differences in tests/unit/test_autodiff.c, its
generated C and CUDA C against the interpreter in tests/unit/test_codegen.c."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from conftest import run_tool


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("softplus")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 9])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 9])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 9])
    nodes = [helper.make_node("Mul", ["x", "w"], ["a"]), helper.make_node("Softplus", ["a"], ["s"]),
             helper.make_node("Add", ["s", "b"], ["y"]), helper.make_node("Softplus", ["x"], ["z"])]
    rng = np.random.default_rng(7)
    w = rng.uniform(0.5, 2.0, 9).astype(np.float32)
    b = rng.standard_normal((1, 9)).astype(np.float32)
    g = helper.make_graph(nodes, "softplus", [x], [y, z],
                          [onnx.numpy_helper.from_array(w, "w"), onnx.numpy_helper.from_array(b, "b")])
    path = d / "softplus.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def inputs():
    x = np.random.default_rng(8).standard_normal((6, 9)).astype(np.float32) * 4
    x[0] = [-100, -30, -10, -1e-3, 0, 1e-3, 10, 30, 100]
    return x


def ort_outputs(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})


@pytest.mark.parametrize("mode", [[], ["--reference", "--no-fusion"]], ids=["fused", "reference"])
def test_matches_onnx_runtime(model, tmp_path, variant, mode):
    x = inputs()
    np.save(tmp_path / "x.npy", x)
    run_tool(variant, "vclipc", "run", "--precision", "fp32", model, "--input", f"x={tmp_path / 'x.npy'}", "--output", f"y={tmp_path / 'y.npy'}",
             "--output", f"z={tmp_path / 'z.npy'}", *mode, check=True)
    want_y, want_z = ort_outputs(model, x)
    for name, want in (("y", want_y), ("z", want_z)):
        got = np.load(tmp_path / f"{name}.npy")
        assert np.isfinite(got).all(), name
        assert np.abs(got - want).max() <= 1e-5 * np.maximum(1, np.abs(want)).max(), (name, got[0], want[0])


def test_fuses_and_lowers_back(model, tmp_path):
    run_tool("opt", "vclipc", "compile", model, "-o", tmp_path / "fused.onnx", check=True)
    graph = onnx.load(str(tmp_path / "fused.onnx")).graph
    ops = {out: n.op_type for n in graph.node for out in n.output}
    assert ops["y"] == "FusedElementwise", ops  # Mul -> Softplus -> Add: one kernel
    assert ops["z"] == "Softplus", ops           # alone: a plain node (a fast path of its own, no kernel to fuse)
    run_tool("opt", "vclipc", "compile", model, "-o", tmp_path / "std.onnx", "--export-standard-ops", check=True)
    std = onnx.load(str(tmp_path / "std.onnx"))
    assert "Softplus" in [n.op_type for n in std.graph.node]
    x = inputs()
    for got, want in zip(ort_outputs(tmp_path / "std.onnx", x), ort_outputs(model, x)):
        assert np.abs(got - want).max() < 1e-6
