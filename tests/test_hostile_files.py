"""Hostile safetensors files (weights, class features, checkpoints) are
refused with a message that names the file and what is wrong, before
anything is allocated from their claims, by every command that reads them
(`average`, `patch`, `eval --classes`, `train --resume`): wrong sizes,
overlapping tensors, offsets past the end, negative or overflowing dims,
huge or lying headers.  The fuzz target tests/fuzz/fuzz_safetensors.c
explores the rest."""
import json
import struct

import numpy as np
import pytest

from conftest import Fixture, assert_clean_exit, run_tool

VISUAL = Fixture("openai_visual_fullvocab").model


def safetensors(path, header, data=b"", header_len=None):
    h = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(h) if header_len is None else header_len) + h + data)
    return path


GOOD = np.arange(6, dtype=np.float32).tobytes()
CASES = {
    "wrong_size": ({"a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}}, GOOD, None, "needs 24 bytes"),
    "overlap": ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                 "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}, GOOD, None, "overlap"),
    "past_the_end": ({"a": {"dtype": "F32", "shape": [16], "data_offsets": [0, 64]}}, GOOD, None, "past the end"),
    "negative_dim": ({"a": {"dtype": "F32", "shape": [-2, 3], "data_offsets": [0, 24]}}, GOOD, None, "bad dimension"),
    "huge_dims": ({"a": {"dtype": "F32", "shape": [2 ** 40, 2 ** 40], "data_offsets": [0, 24]}}, GOOD, None, "bad dimension"),
    "huge_header": ({"a": {"dtype": "F32", "shape": [6], "data_offsets": [0, 24]}}, GOOD, 2 ** 62, "bad header length"),
    "lying_header": ({"a": {"dtype": "F32", "shape": [6], "data_offsets": [0, 24]}}, GOOD, 10 ** 6, "bad header length"),
    "bad_dtype": ({"a": {"dtype": "F33", "shape": [6], "data_offsets": [0, 24]}}, GOOD, None, "bad dtype"),
    "metadata_not_object": ({"__metadata__": [1], "a": {"dtype": "F32", "shape": [6], "data_offsets": [0, 24]}}, GOOD, None,
                            "__metadata__"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_refused_by_every_reader(case, tmp_path, variant):
    header, data, hl, says = CASES[case]
    bad = safetensors(tmp_path / f"{case}.safetensors", header, data, hl)
    (tmp_path / "list.csv").write_text("x.mp4,0\n")
    commands = [["average", bad, bad, "-o", tmp_path / "avg.safetensors"],
                ["patch", "--visual", VISUAL, "--weights", bad, "--ratio", "0.5", "-o", tmp_path / "p.onnx"],
                ["eval", "--visual", VISUAL, "--classes", bad, "--list", tmp_path / "list.csv", "--no-cache"]]
    for args in commands:
        p = run_tool(variant, "vclip-run", *args)
        assert_clean_exit(p)
        assert p.returncode == 1 and str(bad) in p.stderr and says in p.stderr, (args[0], p.stderr)
    assert not (tmp_path / "avg.safetensors").exists() and not (tmp_path / "p.onnx").exists()


def test_a_good_file_still_loads(tmp_path):
    good = safetensors(tmp_path / "good.safetensors", {"a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
                                                       "e": {"dtype": "F32", "shape": [0, 3], "data_offsets": [24, 24]}}, GOOD)
    run_tool("opt", "vclip-run", "average", good, good, "-o", tmp_path / "avg.safetensors", check=True)
    from safetensors.numpy import load_file
    out = load_file(str(tmp_path / "avg.safetensors"))
    assert np.array_equal(out["a"], np.arange(6, dtype=np.float32).reshape(2, 3))
