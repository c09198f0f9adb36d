#!/usr/bin/env python3
"""Write the fuzzers' seed corpora, one folder per target under seeds/:
small valid models for the importer (one per op family, every input an
initializer so constant folding runs the kernels); safetensors files
(features with metadata, a training checkpoint's layout); .npy files of each
dtype and version; class lists, templates, captions JSONL and dataset CSVs.
Usage: python3 tests/fuzz/make_seeds.py"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SEEDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")
HERE = os.path.join(SEEDS, "fuzz_onnx_import")


def model(name, nodes, inits, out="y"):
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()]
    g = helper.make_graph(nodes, name, [], [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
                          initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(m, os.path.join(HERE, name + ".onnx"))


def file_seeds():
    import json

    from safetensors.numpy import save_file
    r = np.random.default_rng(1)
    d = os.path.join(SEEDS, "fuzz_safetensors")
    os.makedirs(d, exist_ok=True)
    save_file({"class_features": r.standard_normal((3, 4)).astype(np.float32)}, os.path.join(d, "features.safetensors"),
              metadata={"classes": json.dumps(["a", "b", "c"])})
    w, b = r.standard_normal((3, 4)).astype(np.float32), r.standard_normal(4).astype(np.float32)
    ck = {"w": w, "b": b, "adamw.m/w": w * 0.1, "adamw.v/w": w * w, "adamw.m/b": b * 0.1, "adamw.v/b": b * b, "swa/w": w, "swa/b": b}
    state = {"step": 3, "epoch": 1, "step_in_epoch": 1, "swa_count": 1, "skipped": 0, "rng": "12345", "adamw_step": 3}
    save_file(ck, os.path.join(d, "checkpoint.safetensors"), metadata={"format": "vclip-checkpoint-1", "state": json.dumps(state)})
    save_file({"x": np.arange(6, dtype=np.int64).reshape(2, 3), "h": np.ones(5, np.float16), "e": np.zeros((0, 4), np.float32)},
              os.path.join(d, "dtypes.safetensors"))
    d = os.path.join(SEEDS, "fuzz_npy")
    os.makedirs(d, exist_ok=True)
    for name, a in [("f32", r.standard_normal((2, 3)).astype(np.float32)), ("i64", np.arange(4, dtype=np.int64)),
                    ("f16", np.ones((1, 2, 2), np.float16)), ("bool", np.array([True, False])), ("u8", np.zeros((0,), np.uint8)),
                    ("scalar", np.float64(2.5))]:
        np.save(os.path.join(d, name + ".npy"), a)
    with open(os.path.join(d, "v2.npy"), "wb") as f:
        np.lib.format.write_array(f, np.ones((2, 2), np.int32), version=(2, 0))
    d = os.path.join(SEEDS, "fuzz_lists")
    os.makedirs(d, exist_ok=True)
    seeds = {"classes.json": '{"0": "Apply Eye Makeup", "1": "ApplyLipstick", "2": "brush_hair"}\n',
             "classes_array.json": '["arm wrestling", "cleaning pool"]\n',
             "classes.txt": "arm wrestling\ncleaning pool\n",
             "templates.txt": "a photo of {}.\na video of a person {}.\n",
             "captions.jsonl": '{"video": "a.mp4", "caption": "two men arm wrestle"}\n{"video": 7, "captions": ["x", "y"]}\n',
             "train.csv": "path,label\nvideos/a.mp4,0\nb.avi,12\n"}
    for name, text in seeds.items():
        with open(os.path.join(d, name), "w") as f:
            f.write(text)


def main():
    file_seeds()
    os.makedirs(HERE, exist_ok=True)
    r = np.random.default_rng(0)
    f = lambda *s: r.standard_normal(s).astype(np.float32)
    i64 = lambda *v: np.array(v, np.int64)
    N = helper.make_node
    model("matmul_add", [N("MatMul", ["a", "b"], ["t"]), N("Add", ["t", "c"], ["y"])], {"a": f(2, 3, 4), "b": f(4, 5), "c": f(5)})
    model("gemm", [N("Gemm", ["a", "b", "c"], ["y"], transB=1, alpha=0.5)], {"a": f(3, 4), "b": f(5, 4), "c": f(1, 5)})
    model("conv", [N("Conv", ["x", "w", "b"], ["y"], strides=[2, 2], pads=[1, 1, 1, 1], group=1)],
          {"x": f(1, 2, 7, 7), "w": f(3, 2, 3, 3), "b": f(3)})
    model("shape_chain", [N("Shape", ["x"], ["s"]), N("Gather", ["s", "i"], ["g"], axis=0),
                          N("Unsqueeze", ["g", "ax"], ["u"]), N("Concat", ["u", "m1"], ["c"], axis=0),
                          N("Reshape", ["x", "c"], ["y"])], {"x": f(2, 3, 4), "i": np.array(0, np.int64), "ax": i64(0), "m1": i64(-1)})
    model("softmax_ln", [N("Softmax", ["x"], ["s"], axis=-1), N("LayerNormalization", ["s", "g", "b"], ["y"], axis=-1, epsilon=1e-5)],
          {"x": f(2, 6), "g": f(6), "b": f(6)})
    model("slice_transpose", [N("Slice", ["x", "st", "en", "ax", "sp"], ["s"]), N("Transpose", ["s"], ["y"], perm=[1, 0, 2])],
          {"x": f(4, 5, 6), "st": i64(1, -1), "en": i64(4, 0), "ax": i64(0, 2), "sp": i64(1, -2)})
    model("where_equal", [N("Equal", ["a", "b"], ["e"]), N("Where", ["e", "x", "z"], ["y"])],
          {"a": i64(1, 2, 3), "b": i64(1, 0, 3), "x": f(3), "z": f(2, 3)})
    model("range_cos", [N("Range", ["s", "l", "d"], ["r"]), N("ConstantOfShape", ["r"], ["c"], value=numpy_helper.from_array(np.array([1.5], np.float32))),
                        N("ReduceMean", ["c"], ["y"], keepdims=0)], {"s": np.array(1, np.int64), "l": np.array(4, np.int64), "d": np.array(1, np.int64)})
    model("expand_trilu", [N("Expand", ["x", "sh"], ["e"]), N("Trilu", ["e"], ["y"], upper=1)], {"x": f(1, 4), "sh": i64(3, 4)})
    model("gather_nd_cumsum", [N("GatherND", ["x", "i"], ["g"]), N("CumSum", ["g", "a"], ["y"])],
          {"x": f(3, 4), "i": np.array([[0], [2]], np.int64), "a": np.array(1, np.int64)})
    model("split_argmax", [N("Split", ["x", "sp"], ["p", "q"], axis=1), N("ArgMax", ["p"], ["am"], axis=1), N("Cast", ["am"], ["y"], to=1)],
          {"x": f(2, 6), "sp": i64(2, 4)})
    model("unary_chain", [N("Erf", ["x"], ["a"]), N("Sigmoid", ["a"], ["b"]), N("Sqrt", ["b"], ["c"]), N("Pow", ["c", "p"], ["y"])],
          {"x": f(7), "p": np.array(2.0, np.float32)})
    print("seeds:", len(os.listdir(HERE)))


if __name__ == "__main__":
    main()
