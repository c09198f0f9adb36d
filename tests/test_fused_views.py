"""Injective ops read through inside generated kernels (ir/loads.h): small ONNX
graphs whose Transpose / Slice / Reshape / Squeeze / Unsqueeze / Flatten /
Gather / Expand / Concat feed an elementwise chain.  Each must compile into a
FusedElementwise that reads through views (the view ops gone from the graph),
and give ONNX Runtime's answer with the compiled kernel, with the reference
interpreter (--reference) and after lowering back to standard ops."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import run_tool

F = TensorProto.FLOAT


def i64(name, vals):
    return numpy_helper.from_array(np.array(vals, np.int64), name)


def model(nodes, inputs, output_shape, inits=(), opset=17):
    ins = [helper.make_tensor_value_info(n, F, s) for n, s in inputs]
    out = helper.make_tensor_value_info("y", F, output_shape)
    g = helper.make_graph(nodes, "views", ins, [out], list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def clip_embedding(measured):
    """The CLIP patch-embedding assembly: Reshape -> Transpose, a class token
    Expanded to the batch size read off `measured`, Concat, + positions."""
    embed = [helper.make_node("Reshape", ["x", "flat"], ["xr"]), helper.make_node("Transpose", ["xr"], ["xt"], perm=[0, 2, 1])]
    batch = [helper.make_node("Shape", [measured], ["sx"]),
             helper.make_node("Gather", ["sx", "zero"], ["b"], axis=0),
             helper.make_node("Unsqueeze", ["b", "ax0"], ["b1"]),
             helper.make_node("Concat", ["b1", "one", "width"], ["cls_shape"], axis=0),
             helper.make_node("Expand", ["cls", "cls_shape"], ["cls_b"])]
    return ((embed + batch if measured == "xt" else batch + embed) +
            [helper.make_node("Concat", ["cls_b", "xt"], ["tok"], axis=1), helper.make_node("Add", ["tok", "pos"], ["y"])],
            [("x", ["batch", 6, 3, 5])], {"x": (3, 6, 3, 5)}, ["batch", 16, 6],
            [numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(1, 1, 6), "cls"),
             numpy_helper.from_array(np.random.default_rng(0).standard_normal((16, 6)).astype(np.float32), "pos"),
             i64("zero", 0), i64("ax0", [0]), i64("one", [1]), i64("width", [6]), i64("flat", [0, 6, -1])],
            # the shape vector's Concat stays; a measured Reshape (a free view) stays too
            {"Transpose", "Expand"} | ({"Reshape"} if measured == "x" else set()))


# name -> (nodes, inputs [(name, symbolic shape)], concrete shapes, output shape, initializers, view ops that must vanish)
CASES = {
    "clip_embedding": clip_embedding("x"),
    # OpenAI's export reads the batch size off the transposed tensor (shape-before-transpose)
    "clip_embedding_openai": clip_embedding("xt"),
    # steps, negative starts and a reversed axis
    "slice": (
        [helper.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["s"]),
         helper.make_node("Mul", ["s", "s"], ["m"]),
         helper.make_node("Sub", ["m", "c"], ["y"])],
        [("x", [7, 9, 5])], {"x": (7, 9, 5)}, [3, 4, 5],
        [i64("st", [1, -1]), i64("en", [6, -9]), i64("ax", [0, 1]), i64("sp", [2, -2]),
         numpy_helper.from_array(np.float32(0.5), "c")],
        {"Slice"}),
    # a Squeeze, an Unsqueeze and a Gather of one (negative) index on a transposed view
    "squeeze_gather": (
        [helper.make_node("Transpose", ["x"], ["t"], perm=[2, 0, 1, 3]),
         helper.make_node("Gather", ["t", "k"], ["g"], axis=-1),
         helper.make_node("Squeeze", ["g", "ax0"], ["q"]),
         helper.make_node("Unsqueeze", ["q", "ax1"], ["u"]),
         helper.make_node("Sigmoid", ["u"], ["sg"]),
         helper.make_node("Mul", ["sg", "z"], ["y"])],
        [("x", [3, 5, 1, 4]), ("z", [3, 1, 5])], {"x": (3, 5, 1, 4), "z": (3, 1, 5)}, [3, 1, 5],
        [i64("k", -2), i64("ax0", [0]), i64("ax1", [1])],
        {"Transpose", "Gather", "Squeeze", "Unsqueeze"}),
    # a Reshape after a Transpose needs the transposed tensor: only the Reshape folds in
    "reshape_after_transpose": (
        [helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0, 2]),
         helper.make_node("Relu", ["t"], ["r"]),
         helper.make_node("Transpose", ["r"], ["t2"], perm=[1, 0, 2]),
         helper.make_node("Reshape", ["t2", "shp"], ["rs"]),
         helper.make_node("Add", ["rs", "b"], ["y"])],
        [("x", [4, 3, 5]), ("b", [15])], {"x": (4, 3, 5), "b": (15,)}, [4, 15],
        [i64("shp", [4, 15])],
        {"Reshape"}),
    # three pieces: a Flatten'ed input, a Slice, a plain input
    "concat3": (
        [helper.make_node("Flatten", ["a"], ["fa"], axis=1),
         helper.make_node("Slice", ["b", "st", "en", "ax"], ["sb"]),
         helper.make_node("Concat", ["fa", "sb", "c"], ["cat"], axis=-1),
         helper.make_node("Tanh", ["cat"], ["th"]),
         helper.make_node("Add", ["th", "b2"], ["y"])],
        [("a", [2, 2, 3]), ("b", [2, 9]), ("c", [2, 1]), ("b2", [1, 16])],
        {"a": (2, 2, 3), "b": (2, 9), "c": (2, 1), "b2": (1, 16)}, [2, 16],
        [i64("st", [0]), i64("en", [9]), i64("ax", [1])],
        {"Flatten", "Concat", "Slice"}),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request, tmp_path_factory):
    name = request.param
    nodes, inputs, shapes, out_shape, inits, gone = CASES[name]
    d = tmp_path_factory.mktemp(name)
    m = model(nodes, inputs, out_shape, inits)
    onnx.checker.check_model(m)
    onnx.save(m, d / "m.onnx")
    rng = np.random.default_rng(7)
    feeds = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    for k, v in feeds.items():
        np.save(d / f"{k}.npy", v)
    want = ort.InferenceSession(str(d / "m.onnx"), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    return name, d, feeds, want, gone


def test_compiles_to_a_kernel_that_reads_through_views(case, tmp_path):
    name, d, _, _, gone = case
    run_tool("opt", "vclipc", "compile", d / "m.onnx", "-o", tmp_path / "c.onnx", check=True)
    ops = [n.op_type for n in onnx.load(str(tmp_path / "c.onnx")).graph.node]
    fused = [n for n in onnx.load(str(tmp_path / "c.onnx")).graph.node if n.op_type == "FusedElementwise"]
    assert fused and any(a.name == "loads" for a in fused[-1].attribute), ops
    assert not gone & set(ops), ops
    assert ops.count("Concat") == (1 if name.startswith("clip_embedding") else 0), ops


@pytest.mark.parametrize("mode", ["kernel", "reference"])
def test_matches_ort(case, tmp_path, variant, mode):
    _, d, feeds, want, _ = case
    args = ["run", d / "m.onnx", "--output", f"y={tmp_path / 'y.npy'}"]
    args += [x for k in feeds for x in ("--input", f"{k}={d / (k + '.npy')}")]
    if mode == "reference":
        args.append("--reference")
    run_tool(variant, "vclipc", *args, check=True)
    got = np.load(tmp_path / "y.npy")
    assert got.shape == want.shape and np.abs(got - want).max() < 1e-5, np.abs(got - want).max()


def test_standard_ops_export_matches_ort(case, tmp_path):
    _, d, feeds, want, _ = case
    run_tool("opt", "vclipc", "compile", d / "m.onnx", "-o", tmp_path / "s.onnx", "--export-standard-ops", check=True)
    got = ort.InferenceSession(str(tmp_path / "s.onnx"), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    assert np.abs(got - want).max() < 1e-5


def test_compiled_model_reloads_and_runs(case, tmp_path):
    """The compiled model (ai.vclip ops, views in their "loads" attribute)
    written as ONNX, read back and run, still gives ORT's answer."""
    _, d, feeds, want, _ = case
    run_tool("opt", "vclipc", "compile", d / "m.onnx", "-o", tmp_path / "c.onnx", check=True)
    args = ["run", tmp_path / "c.onnx", "--output", f"y={tmp_path / 'y.npy'}"]
    args += [x for k in feeds for x in ("--input", f"{k}={d / (k + '.npy')}")]
    run_tool("opt", "vclipc", *args, check=True)
    got = np.load(tmp_path / "y.npy")
    assert got.shape == want.shape and np.abs(got - want).max() < 1e-5


def test_debug_listing_says_the_kernel_reads_through_views(case, tmp_path):
    _, d, feeds, _, _ = case
    args = ["run", d / "m.onnx"] + [x for k in feeds for x in ("--input", f"{k}={d / (k + '.npy')}")]
    p = run_tool("opt", "vclipc", *args, env_extra={"VCLIP_DEBUG": "1"}, check=True)
    assert "FusedElementwise" in p.stderr and "read through views" in p.stderr, p.stderr
