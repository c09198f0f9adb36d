"""Generated kernels through the command line: a model whose elementwise chain
fuses runs (JIT-compiled C) to NumPy's result, `vclipc compile --emit-kernels
--target cuda` writes the C, CUDA C and PTX of its kernel, the standard-ops
export still runs in ONNX Runtime, and `--target cuda` without a GPU fails
cleanly.  Kernel-by-kernel checks are in tests/unit/test_codegen.c."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from conftest import assert_clean_exit, run_tool


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    d = tmp_path_factory.mktemp("chain")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 7])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 7])
    nodes = [helper.make_node("Mul", ["x", "w"], ["a"]), helper.make_node("Sigmoid", ["a"], ["s"]),
             helper.make_node("Mul", ["x", "s"], ["g"]), helper.make_node("Add", ["g", "b"], ["y"])]
    rng = np.random.default_rng(3)
    w, b = rng.standard_normal(7).astype(np.float32), rng.standard_normal((1, 7)).astype(np.float32)
    g = helper.make_graph(nodes, "chain", [x], [y], [onnx.numpy_helper.from_array(w, "w"), onnx.numpy_helper.from_array(b, "b")])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), d / "chain.onnx")
    return d, w, b


def test_fused_chain_runs_to_numpy(chain, tmp_path):
    d, w, b = chain
    x = np.random.default_rng(4).standard_normal((5, 7)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    p = run_tool("opt", "vclipc", "run", "--precision", "fp32", d / "chain.onnx", "--input", f"x={tmp_path / 'x.npy'}", "--output", f"y={tmp_path / 'y.npy'}",
                 check=True)
    want = x * (1 / (1 + np.exp(-x * w))) + b
    assert np.abs(np.load(tmp_path / "y.npy") - want).max() < 1e-5, p.stderr


def test_emit_kernels_and_ptx(chain, tmp_path):
    d, _, _ = chain
    k = tmp_path / "k"
    p = run_tool("opt", "vclipc", "compile", d / "chain.onnx", "-o", tmp_path / "o.onnx", "--emit-kernels", k, "--target", "cuda")
    assert p.returncode == 0, p.stderr  # NVRTC is part of the test setup (tools/install-deps.sh): no skip
    names = sorted(f.name for f in k.iterdir())
    assert any(n.endswith(".c") for n in names) and any(n.endswith(".cu") for n in names), names
    ptx = [f for f in k.iterdir() if f.suffix == ".ptx"]
    assert len(ptx) == 2 and all(".entry vclip_fused" in f.read_text() for f in ptx), names
    assert "void vclip_fused" in next(f for f in k.iterdir() if f.suffix == ".c").read_text()
    m = onnx.load(str(tmp_path / "o.onnx"))
    assert [n.op_type for n in m.graph.node] == ["FusedElementwise"]
    # lowered back to standard ops, ONNX Runtime agrees with the original model
    run_tool("opt", "vclipc", "compile", d / "chain.onnx", "-o", tmp_path / "std.onnx", "--export-standard-ops", check=True)
    x = np.random.default_rng(5).standard_normal((3, 7)).astype(np.float32)
    a = ort.InferenceSession(str(tmp_path / "std.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    b = ort.InferenceSession(str(d / "chain.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert np.abs(a - b).max() < 1e-6


def test_target_cuda_without_a_device_fails_cleanly(chain, tmp_path, variant):
    d, _, _ = chain
    x = np.zeros((2, 7), np.float32)
    np.save(tmp_path / "x.npy", x)
    p = run_tool(variant, "vclipc", "run", "--precision", "fp32", d / "chain.onnx", "--input", f"x={tmp_path / 'x.npy'}", "--target", "cuda")
    assert_clean_exit(p)
    assert "--target cuda" in p.stderr and "no CUDA" in p.stderr, p.stderr
    p = run_tool(variant, "vclipc", "run", "--precision", "fp32", d / "chain.onnx", "--input", f"x={tmp_path / 'x.npy'}", "--target", "tpu")
    assert p.returncode == 2 and "--target is cpu or cuda" in p.stderr


def test_debug_levels_say_what_runs(chain, tmp_path):
    """VCLIP_DEBUG=1 lists the generated kernels and the GEMMs with packed
    weights or a fused epilogue; 2 adds the kernels' sources; 3 the per-op
    times."""
    from conftest import Fixture
    d, _, _ = chain
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((2, 7), np.float32))
    p = run_tool("opt", "vclipc", "run", "--precision", "fp32", d / "chain.onnx", "--input", f"x={x}", env_extra={"VCLIP_DEBUG": "2"}, check=True)
    assert "vclip: 1 generated kernels" in p.stderr and "void vclip_fused" in p.stderr, p.stderr
    fx = Fixture("openai_visual_op17")
    args = ["run", "--precision", "fp32", fx.model] + [a for k, v in fx.inputs.items() for a in ("--input", f"{k}={v}")]
    p = run_tool("opt", "vclipc", *args, env_extra={"VCLIP_DEBUG": "1"}, check=True)
    assert "packed weights, bias, quick_gelu" in p.stderr and "+ residual" in p.stderr, p.stderr
    p = run_tool("opt", "vclipc", *args, "--repeat", "2", env_extra={"VCLIP_DEBUG": "3"}, check=True)
    assert "per-op time" in p.stderr and "Linear" in p.stderr and "Attention" in p.stderr, p.stderr
