#!/usr/bin/env python3
"""Regenerate the malformed/hostile ONNX corpus and expected.json.

Each entry is a model file that vclipc must refuse with a clear message (and
never crash on); expected.json maps the file to a substring of that message.
Needs only numpy and onnx.  Usage: python3 tests/malformed/make_malformed.py
"""
import json
import os
import shutil

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "..", "fixtures", "openai_visual_op17", "model.onnx")


def small_model(node, inits=(), inputs=None, opset=17):
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    g = helper.make_graph([node], "g", inputs, [out], initializer=list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def raw_tensor(name, dims, raw=b""):
    """A TensorProto built by hand, so that it may lie about its size."""
    t = TensorProto()
    t.name, t.data_type = name, TensorProto.FLOAT
    t.dims.extend(dims)
    t.raw_data = raw
    return t


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(num, payload):
    return varint((num << 3) | 2) + varint(len(payload)) + payload


def deep_nesting(levels):
    """graph{node{attribute{g{node{attribute{g{...}}}}}}} nested `levels` times."""
    inner = b""
    for _ in range(levels):
        attr = field(1, b"a") + field(6, inner)    # AttributeProto.name, .g
        node = field(5, attr)                      # NodeProto.attribute
        inner = field(1, node)                     # GraphProto.node
    return field(7, inner)                         # ModelProto.graph


def main():
    out = {}

    def save(name, model_or_bytes, expect):
        path = os.path.join(HERE, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        data = model_or_bytes if isinstance(model_or_bytes, bytes) else model_or_bytes.SerializeToString()
        with open(path, "wb") as f:
            f.write(data)
        out[name] = expect

    for f in os.listdir(HERE):
        if f.startswith("truncated_at_"):
            os.unlink(os.path.join(HERE, f))
    for d in ("ext_absolute", "ext_dotdot", "ext_missing", "ext_short", "ext_symlink"):
        shutil.rmtree(os.path.join(HERE, d), ignore_errors=True)

    src = open(SOURCE, "rb").read()
    for cut in (1, 16, 200):  # test_malformed.py cuts at many more offsets at run time
        save(f"truncated_at_{cut}.onnx", src[:cut], "not a valid ONNX model")
    save("random_bytes.onnx", np.random.default_rng(5).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
         "not a valid ONNX model")
    save("empty.onnx", b"", "empty file")
    save("deep_nesting.onnx", deep_nesting(200), "nested deeper than")

    save("unsupported_op.onnx", small_model(helper.make_node("FancyOp", ["x"], ["y"], name="fancy_1", domain="com.example")),
         "unsupported op 'FancyOp' (node 'fancy_1', domain 'com.example', opset 0)")
    save("unsupported_default_op.onnx", small_model(helper.make_node("Hardmax", ["x"], ["y"], name="hm")),
         "unsupported op 'Hardmax' (node 'hm', domain 'ai.onnx', opset 17)")

    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    w.raw_data = w.raw_data[:-4]
    save("raw_data_too_short.onnx", small_model(helper.make_node("MatMul", ["x", "w"], ["y"], name="mm"), [w]),
         "tensor 'w': raw_data holds 60 bytes, dims need 64")

    w = raw_tensor("w", [4, 4], raw=b"\0" * 8192)  # large enough to take the split-payload path
    save("large_raw_data_mismatch.onnx", small_model(helper.make_node("MatMul", ["x", "w"], ["y"], name="mm"), [w]),
         "tensor 'w': raw_data holds 8192 bytes, dims need 64")

    w = raw_tensor("w", [1 << 40, 1 << 40])
    save("dims_overflow.onnx", small_model(helper.make_node("MatMul", ["x", "w"], ["y"], name="mm"), [w]),
         "tensor 'w': invalid or overflowing dims")

    w = raw_tensor("w", [4, -2])
    save("negative_dims.onnx", small_model(helper.make_node("MatMul", ["x", "w"], ["y"], name="mm"), [w]),
         "tensor 'w': invalid or overflowing dims")

    save("undefined_input.onnx", small_model(helper.make_node("Add", ["x", "ghost"], ["y"], name="add")),
         "node 'add' (Add): input 'ghost' is not defined before use")

    m = small_model(helper.make_node("Relu", ["x"], ["x"], name="relu"))
    save("redefined_value.onnx", m, "value 'x' is defined twice")

    save("opset_too_old.onnx", small_model(helper.make_node("Relu", ["x"], ["y"], name="r"), opset=3),
         "opset 3 is outside the supported range")

    bad = small_model(helper.make_node("Relu", ["x"], ["y"], name="r"),
                      inputs=[helper.make_tensor_value_info("x", TensorProto.STRING, [4])])
    save("string_input.onnx", bad, "value 'x': unsupported element type 8")

    shape = numpy_helper.from_array(np.array([3, 5], np.int64), "shape")
    save("reshape_mismatch.onnx",
         small_model(helper.make_node("Reshape", ["x", "shape"], ["y"], name="rs"), [shape],
                     inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])]),
         "node 'rs' (Reshape): cannot reshape 8 elements into 15")

    def external(dirname, location, length=None, make_file=None):
        t = raw_tensor("w", [4, 4])
        t.ClearField("raw_data")
        t.data_location = TensorProto.EXTERNAL
        for k, v in (("location", location), ("offset", "0"), ("length", str(length) if length else None)):
            if v is not None:
                e = t.external_data.add()
                e.key, e.value = k, v
        os.makedirs(os.path.join(HERE, dirname), exist_ok=True)
        if make_file:
            make_file(os.path.join(HERE, dirname))
        return small_model(helper.make_node("MatMul", ["x", "w"], ["y"], name="mm"), [t])

    save("ext_absolute/model.onnx", external("ext_absolute", "/etc/hostname"), "is absolute")
    save("ext_dotdot/model.onnx", external("ext_dotdot", "../fixtures/openai_visual_op17/model.onnx"),
         "leaves the model's folder ('..')")
    save("ext_missing/model.onnx", external("ext_missing", "weights.bin"), "No such file or directory")
    save("ext_short/model.onnx",
         external("ext_short", "weights.bin", 64, lambda d: open(os.path.join(d, "weights.bin"), "wb").write(b"\0" * 40)),
         "tensor 'w': external data needs 64 bytes at offset 0 of 'weights.bin' (40 bytes")
    save("ext_symlink/model.onnx",
         external("ext_symlink", "weights.bin", None, lambda d: os.symlink("/etc/hostname", os.path.join(d, "weights.bin"))),
         "resolves outside the model's folder")

    with open(os.path.join(HERE, "expected.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
    print(f"wrote {len(out)} malformed models")


if __name__ == "__main__":
    main()
