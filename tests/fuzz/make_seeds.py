#!/usr/bin/env python3
"""Write the fuzzer's seed corpus: small valid models, one per op family,
with every input an initializer so constant folding runs the kernels.
Usage: python3 tests/fuzz/make_seeds.py"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")


def model(name, nodes, inits, out="y"):
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()]
    g = helper.make_graph(nodes, name, [], [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
                          initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(m, os.path.join(HERE, name + ".onnx"))


def main():
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
