"""vclipc inspect, dump and compile --dump-after, and vclip-run, checked
against independent computations: parameter counts from the onnx package,
FLOPs from the tensor shapes ONNX Runtime produces at the same batch."""
import json
import os
import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from conftest import Fixture, fixture_names, run_tool


def ort_flops(fx, batch, tmp_path):
    """2*M*N*K for MatMul/Gemm and 2*out*Cin/g*k for Conv, from the tensor
    shapes ONNX Runtime actually produces at this batch size."""
    m = onnx.load(fx.model)
    nodes = [n for n in m.graph.node if n.op_type in ("MatMul", "Gemm", "Conv")]
    inits = {t.name: list(t.dims) for t in m.graph.initializer}
    wanted = {x for n in nodes for x in (n.input[0], n.output[0], n.input[1]) if x not in inits}
    have = {o.name for o in m.graph.output}
    for name in sorted(wanted - have):
        m.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    path = tmp_path / "probe.onnx"
    onnx.save(m, str(path))
    feeds = {}
    for k, v in fx.inputs.items():
        x = np.load(v)
        feeds[k] = np.concatenate([x] * (batch // x.shape[0] + 1))[:batch]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    shapes = {o.name: list(v.shape) for o, v in zip(sess.get_outputs(), sess.run(None, feeds))}
    shapes.update(inits)
    total = 0
    for n in nodes:
        out, a, w = shapes[n.output[0]], shapes[n.input[0]], shapes[n.input[1]]
        if n.op_type == "MatMul":
            total += 2 * int(np.prod(out)) * a[-1]
        elif n.op_type == "Gemm":
            ta = next((x.i for x in n.attribute if x.name == "transA"), 0)
            total += 2 * int(np.prod(out)) * (a[0] if ta else a[1])
        else:
            total += 2 * int(np.prod(out)) * int(np.prod(w[1:]))
    return total


@pytest.mark.parametrize("name", ["openai_visual_op17", "openai_text_op14", "hf_visual_op17", "hf_text_op17"])
def test_inspect_matches_onnx(name, tmp_path):
    fx = Fixture(name)
    p = run_tool("opt", "vclipc", "inspect", fx.model, "--batch", "4", "--json", check=True)
    rep = json.loads(p.stdout)
    m = onnx.load(fx.model)
    params = sum(int(np.prod(t.dims)) for t in m.graph.initializer)
    assert rep["parameters"] == params
    assert rep["parameter_bytes"] == sum(numpy_helper.to_array(t).nbytes for t in m.graph.initializer)
    assert rep["nodes"] == len(m.graph.node)
    assert sum(rep["ops"].values()) == len(m.graph.node)
    assert rep["opsets"]["ai.onnx"] == m.opset_import[0].version
    inp = rep["inputs"][0]
    assert inp["name"] == m.graph.input[0].name and inp["shape"].startswith("[batch,")
    assert not rep["flops_partial"]
    assert rep["gemm_flops"] == ort_flops(fx, 4, tmp_path)


def test_inspect_text_report():
    fx = Fixture("openai_visual_op17")
    out = run_tool("opt", "vclipc", "inspect", fx.model, check=True).stdout
    assert re.search(r"image\s+f32\[batch,3,32,32\]", out)
    assert re.search(r"image_features\s+f32\[batch,32\]", out)
    assert re.search(r"MatMul\s+\d+", out) and "FLOPs" in out and "parameters" in out


def pipeline_passes():
    """The pass names, in order, as `vclipc compile --help` lists them."""
    h = run_tool("opt", "vclipc", "compile", "--help", check=True).stdout
    return [l.split()[0] for l in h.split("passes, in order:")[1].splitlines() if l.strip()]


@pytest.mark.parametrize("fmt,ext", [("text", "txt"), ("dot", "dot"), ("onnx", "onnx")])
def test_dump_after_all(fmt, ext, tmp_path):
    fx = Fixture("hf_text_op17")
    d = tmp_path / "dumps"
    run_tool("opt", "vclipc", "compile", fx.model, "-o", tmp_path / "o.onnx", "--dump-after", "all",
             "--dump-dir", d, "--dump-format", fmt, check=True)
    names = sorted(os.listdir(d))
    passes = ["import"] + pipeline_passes()
    assert names == [f"{i:02d}-{p}.{ext}" for i, p in enumerate(passes)]
    last = d / names[-1]
    if fmt == "text":
        lines = last.read_text().splitlines()
        node_lines = [l for l in lines if " = " in l]
        assert len(node_lines) == len(onnx.load(str(tmp_path / "o.onnx")).graph.node)
        # one line per node: outputs with shapes, op, inputs with shapes, attributes, node name
        # (the weight is packed into 32-column panels by the last pass)
        assert any(re.match(r"\s+%\S+: f32\[batch,\d+,64\] = ai\.vclip\.Linear\(%\S+: f32\[batch,\d+,64\], "
                            r"\$%\S+: f32\[2,64,32\], \$%\S+: f32\[64\]\) \{packed_n=64\}  # \S+", l)
                   for l in node_lines), "\n".join(node_lines[:20])
    elif fmt == "dot":
        txt = last.read_text()
        assert txt.startswith("digraph") and txt.rstrip().endswith("}") and "->" in txt
    else:
        for f in names:
            onnx.checker.check_model(str(d / f))
        feeds = {k: np.load(v) for k, v in fx.inputs.items()}
        want = ort.InferenceSession(fx.model).run(None, feeds)[0]
        got = ort.InferenceSession(str(d / names[1])).run(None, feeds)[0]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_pass_stats(tmp_path):
    fx = Fixture("openai_text_op14")
    p = run_tool("opt", "vclipc", "compile", fx.model, "-o", tmp_path / "o.onnx", "--pass-stats", check=True)
    rows = {l.split()[0]: l.split() for l in p.stderr.splitlines() if l and not l.startswith("pass")}
    assert int(rows["import"][1]) == len(onnx.load(fx.model).graph.node)
    assert int(rows["fold-constants"][1]) < int(rows["import"][1])
    last = [l.split() for l in p.stderr.splitlines() if l][-1]
    assert int(last[1]) == len(onnx.load(str(tmp_path / "o.onnx")).graph.node)


def test_dump_command():
    fx = Fixture("openai_visual_dynamo")
    out = run_tool("opt", "vclipc", "dump", fx.model, check=True).stdout
    assert out.startswith("graph ") and "input  %image: f32[batch,3,32,32]" in out


def test_help_and_version():
    for tool in ("vclipc", "vclip-run"):
        h = run_tool("opt", tool, "--help", check=True).stdout
        assert h.startswith(f"usage: {tool}")
        v = run_tool("opt", tool, "--version", check=True).stdout
        assert re.match(rf"{tool} \d+\.\d+\.\d+", v)
    h = run_tool("opt", "vclipc", "--help").stdout
    for cmd in ("inspect", "run", "compile", "dump"):
        assert f"  {cmd} " in h
    r = run_tool("opt", "vclip-run", "fly")
    assert r.returncode == 2 and "unknown command 'fly'" in r.stderr
    r = run_tool("opt", "vclip-run", "train")
    assert r.returncode == 2 and "are required" in r.stderr


@pytest.mark.parametrize("name", fixture_names())
def test_every_shape_is_inferred(name):
    """Symbolic inference sees through the exporters' shape arithmetic: no
    value of any fixture is left with an unknown dim or rank."""
    out = run_tool("opt", "vclipc", "dump", Fixture(name).model, check=True).stdout
    unknown = [l for l in out.splitlines() if "?" in l]
    assert not unknown, "\n".join(unknown[:5])
