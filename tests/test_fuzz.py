"""The libFuzzer target for the importer: every past crash (tests/fuzz/
regressions) replays cleanly, and a short fuzzing run from the seed corpus
finds nothing.  The long run is documented in docs/fuzzing.md."""
import glob
import os
import shutil
import subprocess

import pytest

from conftest import ROOT

FUZZER = os.path.join(ROOT, "build-fuzz", "bin", "fuzz_onnx_import")
pytestmark = pytest.mark.skipif(not os.path.exists(FUZZER), reason="fuzzer not built (make fuzz)")


def test_regressions_replay_cleanly():
    files = sorted(glob.glob(os.path.join(ROOT, "tests", "fuzz", "regressions", "*")))
    assert files
    p = subprocess.run([FUZZER, *files], capture_output=True, text=True, errors="replace", timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]


def test_tokenizer_short_fuzz_run(tmp_path):
    fuzzer = os.path.join(ROOT, "build-fuzz", "bin", "fuzz_tokenizer")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    lines = open(os.path.join(ROOT, "tests", "fixtures", "tokenizer", "corpus.txt"), "rb").read().split(b"\n")
    for i, l in enumerate(lines[-3000::30]):  # the hard cases sit at the end of the corpus
        (corpus / f"seed{i}").write_bytes(l)
    runs = int(os.environ.get("VCLIP_FUZZ_RUNS", "40000"))
    p = subprocess.run([fuzzer, f"-runs={runs}", "-max_len=512", "-seed=1", f"-artifact_prefix={tmp_path}/", str(corpus)],
                       capture_output=True, text=True, errors="replace", timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert f"Done {runs} runs" in p.stderr


def test_short_fuzz_run(tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(os.path.join(ROOT, "tests", "fuzz", "seeds"), corpus)
    for f in glob.glob(os.path.join(ROOT, "tests", "fuzz", "regressions", "*")):
        shutil.copy(f, corpus)
    runs = int(os.environ.get("VCLIP_FUZZ_RUNS", "40000"))
    p = subprocess.run([FUZZER, f"-runs={runs}", "-max_len=4096", "-rss_limit_mb=2048", "-seed=1",
                        f"-artifact_prefix={tmp_path}/", str(corpus)],
                       capture_output=True, text=True, errors="replace", timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert f"Done {runs} runs" in p.stderr
