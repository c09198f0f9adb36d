"""Constant folding evaluates whole graphs with the reference kernels: the
fuzz seeds (one per op family, all inputs constant) fold to a single
constant that must equal ONNX Runtime's output."""
import glob
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from conftest import ROOT, run_tool

SEEDS = sorted(glob.glob(os.path.join(ROOT, "tests", "fuzz", "seeds", "fuzz_onnx_import", "*.onnx")))


def test_there_are_seeds():  # an empty list would turn the test below into a quiet skip
    assert len(SEEDS) >= 10, SEEDS


@pytest.mark.parametrize("seed", SEEDS, ids=[os.path.basename(s)[:-5] for s in SEEDS])
def test_folded_seed_equals_ort(seed, tmp_path):
    out = tmp_path / "folded.onnx"
    run_tool("opt", "vclipc", "compile", seed, "-o", out, check=True)
    folded = onnx.load(str(out))
    assert len(folded.graph.node) == 0, "an all-constant graph should fold completely"
    want = ort.InferenceSession(seed, providers=["CPUExecutionProvider"]).run(None, {})[0]
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {})[0]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
