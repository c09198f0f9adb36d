"""The libFuzzer targets (tests/fuzz/fuzz_*.c), one per parser we wrote: the
ONNX importer, the tokenizer, safetensors (weights and checkpoints), .npy,
and the text lists (class lists, templates, captions JSONL, dataset CSV).
Every past crash (tests/fuzz/regressions/TARGET/) replays cleanly, and a
short run of each target from its seeds finds nothing.  The long campaigns
are logged in docs/fuzzing.md.  The fuzzers are part of `make test`: a
missing one fails here rather than being skipped."""
import glob
import os
import shutil
import subprocess

import pytest

from conftest import ROOT

FUZZ = os.path.join(ROOT, "tests", "fuzz")
BIN = os.path.join(ROOT, "build-fuzz", "bin")
TARGETS = sorted(os.path.basename(p)[:-2] for p in glob.glob(os.path.join(FUZZ, "fuzz_*.c")))
RUNS = int(os.environ.get("VCLIP_FUZZ_RUNS", "40000"))
# per target: extra libFuzzer flags
FLAGS = {"fuzz_onnx_import": ["-max_len=4096", "-rss_limit_mb=2048"], "fuzz_tokenizer": ["-max_len=512"]}


def fuzzer(target):
    path = os.path.join(BIN, target)
    assert os.path.exists(path), f"{path} is not built: run make fuzz (make test does)"
    return path


def seed_corpus(target, dest):
    dest.mkdir()
    if target == "fuzz_tokenizer":  # the hard cases sit at the end of the tokenizer corpus
        lines = open(os.path.join(ROOT, "tests", "fixtures", "tokenizer", "corpus.txt"), "rb").read().split(b"\n")
        for i, line in enumerate(lines[-3000::30]):
            (dest / f"seed{i}").write_bytes(line)
    for d in ("seeds", "regressions"):
        for f in glob.glob(os.path.join(FUZZ, d, target, "*")):
            shutil.copy(f, dest)
    return dest


def test_every_parser_has_a_target():
    assert set(TARGETS) >= {"fuzz_onnx_import", "fuzz_tokenizer", "fuzz_safetensors", "fuzz_npy", "fuzz_lists"}, TARGETS


@pytest.mark.parametrize("target", [t for t in TARGETS if glob.glob(os.path.join(FUZZ, "regressions", t, "*"))])
def test_regressions_replay_cleanly(target):
    files = sorted(glob.glob(os.path.join(FUZZ, "regressions", target, "*")))
    p = subprocess.run([fuzzer(target), *files], capture_output=True, text=True, errors="replace", timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]


@pytest.mark.parametrize("target", TARGETS)
def test_short_fuzz_run(target, tmp_path):
    corpus = seed_corpus(target, tmp_path / "corpus")
    assert any(corpus.iterdir()), f"{target} has no seeds (tests/fuzz/make_seeds.py)"
    p = subprocess.run([fuzzer(target), f"-runs={RUNS}", "-seed=1", f"-artifact_prefix={tmp_path}/", *FLAGS.get(target, []),
                        str(corpus)], capture_output=True, text=True, errors="replace", timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert f"Done {RUNS} runs" in p.stderr
