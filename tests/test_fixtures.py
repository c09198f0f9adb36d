"""Every fixture (real exports: TorchScript opsets 14/17, dynamo, Hugging Face)
runs through vclipc and matches ONNX Runtime within 1e-4 of the output's scale:
against the committed ORT outputs, and against live ORT at another batch size
(so the symbolic batch dim is exercised)."""
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from conftest import Fixture, fixture_names, rel_err, run_tool

TOL = 1e-4


def ort_run(model, feeds):
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return {o.name: v for o, v in zip(sess.get_outputs(), sess.run(None, feeds))}


def vclipc_run(variant, model, feeds, tmp_path, outputs, extra=()):
    args = ["run", "--precision", "fp32", model]
    for name, arr in feeds.items():
        p = tmp_path / f"in_{name}.npy"
        np.save(p, arr)
        args += ["--input", f"{name}={p}"]
    for name in outputs:
        args += ["--output", f"{name}={tmp_path / f'out_{name}.npy'}"]
    run_tool(variant, "vclipc", *args, *extra, check=True)
    return {name: np.load(tmp_path / f"out_{name}.npy") for name in outputs}


def new_inputs(fx, batch, seed):
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, path in fx.inputs.items():
        ref = np.load(path)
        if ref.dtype == np.int64:  # CLIP token rows: SOT, words, EOT = largest id, zeros
            vocab = int(ref.max()) + 1
            t = np.zeros((batch,) + ref.shape[1:], dtype=np.int64)
            for b in range(batch):
                n = int(rng.integers(1, ref.shape[1] - 2))
                t[b, 0] = vocab - 2
                t[b, 1:n + 1] = rng.integers(1, vocab - 2, size=n)
                t[b, n + 1] = vocab - 1
            feeds[name] = t
        else:
            feeds[name] = rng.standard_normal((batch,) + ref.shape[1:]).astype(ref.dtype)
    return feeds


@pytest.mark.parametrize("name", fixture_names())
def test_matches_committed_ort_outputs(name, variant, tmp_path):
    fx = Fixture(name)
    feeds = {k: np.load(v) for k, v in fx.inputs.items()}
    got = vclipc_run(variant, fx.model, feeds, tmp_path, fx.expected)
    for out, path in fx.expected.items():
        want = np.load(path)
        assert got[out].shape == want.shape
        assert rel_err(got[out], want) < TOL, f"{name}/{out}: {rel_err(got[out], want):.2e}"


@pytest.mark.parametrize("name", fixture_names())
def test_matches_live_ort_at_batch_3(name, tmp_path):
    fx = Fixture(name)
    feeds = new_inputs(fx, 3, seed=7)
    want = ort_run(fx.model, feeds)
    got = vclipc_run("opt", fx.model, feeds, tmp_path, want)
    for out in want:
        assert rel_err(got[out], want[out]) < TOL, f"{name}/{out}: {rel_err(got[out], want[out]):.2e}"


@pytest.mark.parametrize("name", ["openai_visual_op14", "openai_text_op17", "hf_text_op14"])
def test_reference_kernels_agree(name, tmp_path):
    """The oracle path (reference kernels only, no views) gives the same answer."""
    fx = Fixture(name)
    feeds = {k: np.load(v) for k, v in fx.inputs.items()}
    got = vclipc_run("opt", fx.model, feeds, tmp_path, fx.expected, extra=["--reference"])
    for out, path in fx.expected.items():
        assert rel_err(got[out], np.load(path)) < TOL


@pytest.mark.parametrize("name", fixture_names())
def test_compiled_model_runs_in_ort(name, tmp_path):
    """Every pass, fusions included, keeps ORT's outputs: the compiled graph,
    with our fused ops expanded back to standard ops, passes the checker and
    ORT runs it to the unfused model's outputs."""
    fx = Fixture(name)
    out = tmp_path / "compiled.onnx"
    run_tool("opt", "vclipc", "compile", fx.model, "-o", out, "--export-standard-ops", check=True)
    onnx.checker.check_model(str(out), full_check=True)
    before, after = onnx.load(fx.model), onnx.load(str(out))
    assert len(after.graph.node) < len(before.graph.node), "folding removed nothing"
    feeds = new_inputs(fx, 2, seed=3)
    want, got = ort_run(fx.model, feeds), ort_run(str(out), feeds)
    for k in want:
        assert rel_err(got[k], want[k]) < 1e-4
    # the symbolic batch survives the round trip
    dims = after.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param, "batch dim lost its name"


def test_compile_with_external_data(tmp_path):
    fx = Fixture("openai_visual_op17")
    out = tmp_path / "ext.onnx"
    run_tool("opt", "vclipc", "compile", fx.model, "-o", out, "--external-data", "--export-standard-ops", check=True)
    assert (tmp_path / "ext.onnx.data").stat().st_size > 100_000
    assert out.stat().st_size < 100_000
    feeds = {k: np.load(v) for k, v in fx.inputs.items()}
    got = ort_run(str(out), feeds)
    for k, p in fx.expected.items():
        assert rel_err(got[k], np.load(p)) < TOL
    # and we load our own external-data export back
    got2 = vclipc_run("opt", str(out), feeds, tmp_path, fx.expected)
    for k, p in fx.expected.items():
        assert rel_err(got2[k], np.load(p)) < TOL


def test_repeat_json_report(tmp_path):
    fx = Fixture("openai_visual_op17")
    args = ["run", "--precision", "fp32", fx.model] + [a for k, v in fx.inputs.items() for a in ("--input", f"{k}={v}")]
    p = run_tool("opt", "vclipc", *args, "--repeat", "5", "--json", "--threads", "1", check=True)
    rep = json.loads(p.stdout)
    assert rep["repeat"] == 5 and 0 < rep["min_ms"] <= rep["median_ms"]
    assert rep["outputs"]["image_features"]["shape"] == [2, 32]
    assert rep["peak_activation_bytes"] > 0


FUSED = {  # what each export family must fuse into (2 transformer layers each, 1 for fullvocab)
    "openai_visual_op14": {"LayerNormalization": 6, "QuickGelu": 2, "Linear": 4, "Attention": 2},
    "openai_visual_op17": {"LayerNormalization": 6, "QuickGelu": 2, "Linear": 4, "Attention": 2},
    "openai_visual_dynamo": {"QuickGelu": 2, "Attention": 2},
    "openai_text_op14": {"LayerNormalization": 5, "QuickGelu": 2, "Linear": 4, "Attention": 2},
    "openai_text_op17": {"QuickGelu": 2, "Linear": 4, "Attention": 2},
    "openai_text_dynamo": {"QuickGelu": 2, "Attention": 2},
    "openai_text_fullvocab": {"QuickGelu": 1, "Attention": 1},
    "hf_text_op14": {"LayerNormalization": 5, "Gelu": 2, "Linear": 10, "Attention": 2},
    "hf_text_op17": {"Gelu": 2, "Linear": 10, "Attention": 2},
    "hf_visual_op14": {"LayerNormalization": 6, "QuickGelu": 2, "Linear": 10, "Attention": 2},
    "hf_visual_op17": {"QuickGelu": 2, "Linear": 10, "Attention": 2},
}


@pytest.mark.parametrize("name", sorted(FUSED))
def test_fused_ops_in_our_domain(name, tmp_path):
    """Default compile keeps fused ops in the ai.vclip domain (with its opset
    import); --no-fusion leaves none; vclipc itself runs the fused file."""
    fx = Fixture(name)
    out, plain = tmp_path / "fused.onnx", tmp_path / "plain.onnx"
    run_tool("opt", "vclipc", "compile", fx.model, "-o", out, check=True)
    run_tool("opt", "vclipc", "compile", fx.model, "-o", plain, "--no-fusion", check=True)
    m = onnx.load(str(out))
    ops = {}
    for n in m.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
        # an activation fused into its Linear's GEMM epilogue still counts as fused
        act = [a.s.decode() for a in n.attribute if a.name == "activation"]
        if act:
            name_of = {"quick_gelu": "QuickGelu", "gelu": "Gelu"}[act[0]]
            ops[name_of] = ops.get(name_of, 0) + 1
        if n.op_type in ("QuickGelu", "Gelu", "Linear", "Attention"):
            assert n.domain == "ai.vclip"
    assert not [n for n in m.graph.node if n.op_type == "Softmax"], "an attention was left unfused"
    for op, count in FUSED[name].items():
        assert ops.get(op, 0) >= count, f"{op}: {ops}"
    assert any(o.domain == "ai.vclip" for o in m.opset_import)
    assert not [n for n in onnx.load(str(plain)).graph.node if n.domain == "ai.vclip"]
    feeds = {k: np.load(v) for k, v in fx.inputs.items()}
    got = vclipc_run("opt", str(out), feeds, tmp_path, fx.expected)
    for k, p in fx.expected.items():
        assert rel_err(got[k], np.load(p)) < TOL


BF16_TOL = 2e-2  # bf16 keeps 8 bits of mantissa: weights and GEMM inputs rounded, sums in f32


@pytest.mark.parametrize("name", ["openai_visual_op17", "hf_text_op17"])
def test_bf16_precision(name, tmp_path):
    """--precision bf16 stays within BF16_TOL of ONNX Runtime's f32 answer and
    is not the f32 answer (the bf16 kernels really ran); a CPU without
    AVX512-BF16 gets a clear refusal instead."""
    fx = Fixture(name)
    feeds = {k: np.load(v) for k, v in fx.inputs.items()}
    args = ["run", "--precision", "fp32", fx.model] + [a for k, v in fx.inputs.items() for a in ("--input", f"{k}={v}")]
    args += [a for k in fx.expected for a in ("--output", f"{k}={tmp_path / (k + '.npy')}")]
    p = run_tool("opt", "vclipc", *args, "--precision", "bf16")
    if p.returncode:
        assert "AVX512-BF16" in p.stderr, p.stderr
        pytest.skip("this CPU has no AVX512-BF16")
    (tmp_path / "f32").mkdir()
    f32 = vclipc_run("opt", fx.model, feeds, tmp_path / "f32", fx.expected)
    for k, ref in fx.expected.items():
        got, want = np.load(tmp_path / (k + ".npy")), np.load(ref)
        assert rel_err(got, want) < BF16_TOL, (k, rel_err(got, want))
        assert rel_err(got, want) > 10 * rel_err(f32[k], want), "bf16 output as exact as f32: the bf16 path did not run"


def cpu_has_native_bf16():
    flags = next((l for l in open("/proc/cpuinfo") if l.startswith("flags")), "").split()
    return "avx512_bf16" in flags


@pytest.mark.parametrize("name", ["openai_visual_op17", "hf_text_op17"])
def test_auto_precision_is_the_default(name, tmp_path):
    """No --precision means auto: bf16 where the CPU has AVX512-BF16, fp32
    elsewhere; the report says which, and the output is that precision's,
    bit for bit.  With --reference, auto is fp32 (no refusal)."""
    fx = Fixture(name)
    inputs = [a for k, v in fx.inputs.items() for a in ("--input", f"{k}={v}")]
    k = next(iter(fx.expected))
    want = "bf16" if cpu_has_native_bf16() else "fp32"
    outs = {}
    for prec in (None, want):
        out = tmp_path / f"{prec}.npy"
        p = run_tool("opt", "vclipc", "run", fx.model, *inputs, "--output", f"{k}={out}", "--json",
                     *(["--precision", prec] if prec else []), check=True)
        assert json.loads(p.stdout)["precision"] == want
        outs[prec] = np.load(out)
    assert np.array_equal(outs[None], outs[want])
    p = run_tool("opt", "vclipc", "run", fx.model, *inputs, "--precision", "auto", "--reference", "--json", check=True)
    assert json.loads(p.stdout)["precision"] == "fp32"


def test_gemm_kernel_pinned_by_environment(tmp_path):
    """VCLIP_GEMM pins one GEMM micro-kernel (benchmarks compare them): the
    AVX2 one (every x86-64 CI machine runs it) gives ONNX Runtime's answer
    end to end; a name this CPU does not run is refused with the list."""
    fx = Fixture("openai_visual_op17")
    k, ref = next(iter(fx.expected.items()))
    args = ["run", "--precision", "fp32", fx.model] + [a for n, v in fx.inputs.items() for a in ("--input", f"{n}={v}")]
    out = tmp_path / "y.npy"
    run_tool("opt", "vclipc", *args, "--output", f"{k}={out}", check=True, env_extra={"VCLIP_GEMM": "avx2-f32"})
    assert rel_err(np.load(out), np.load(ref)) < 1e-4
    p = run_tool("opt", "vclipc", *args, env_extra={"VCLIP_GEMM": "sse-f64"})
    assert p.returncode == 1 and "VCLIP_GEMM=sse-f64: not a GEMM kernel this CPU runs (it runs: " in p.stderr, p.stderr


def test_bf16_precision_bad_usage(tmp_path):
    fx = Fixture("openai_visual_op17")
    args = ["run", "--precision", "fp32", fx.model] + [a for k, v in fx.inputs.items() for a in ("--input", f"{k}={v}")]
    p = run_tool("opt", "vclipc", *args, "--precision", "fp8")
    assert p.returncode == 2 and "--precision is auto, fp32, bf16 or fp16" in p.stderr, p.stderr
    p = run_tool("opt", "vclipc", *args, "--precision", "fp16")
    assert p.returncode == 2 and "is for --target cuda" in p.stderr, p.stderr
    p = run_tool("opt", "vclipc", *args, "--precision", "bf16", "--reference")
    assert p.returncode == 2 and "drop --no-fusion and --reference" in p.stderr, p.stderr
