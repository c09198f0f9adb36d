"""vclip-run encode-text against an independent computation: token ids from
open_clip (the committed corpus covers every UCF/HMDB class under the 28
templates), the text encoder run by ONNX Runtime, the ensemble averaged in
NumPy.  Plus class-name normalization against the released class lists,
captions, custom templates and clean errors."""
import gzip
import json
import os

import numpy as np
import onnxruntime as ort
import pytest
from safetensors import safe_open

from conftest import ROOT, Fixture, assert_clean_exit, run_tool

LABELS = os.path.join(ROOT, "tests", "fixtures", "labels")  # copies of ../shared/data's UCF/HMDB lists
MODEL = Fixture("openai_text_fullvocab").model
PREFIXES = ["a photo of", "a video of", "a example of", "a demonstration of"]
FORMS = ["{}", "a person {}", "a person using {}", "a person doing {}", "a person during {}",
         "a person performing {}", "a person practicing {}"]
TEMPLATES = [f"{p} {f}." for p in PREFIXES for f in FORMS]
TOL = 1e-5

@pytest.fixture(scope="module")
def open_clip_ids():
    """text -> open_clip's 77 ids, from the committed corpus."""
    tok = os.path.join(ROOT, "tests", "fixtures", "tokenizer")
    texts = open(os.path.join(tok, "corpus.txt"), encoding="utf-8", newline="").read().split("\n")[:-1]
    with gzip.open(os.path.join(tok, "expected.txt.gz"), "rt") as f:
        rows = [list(map(int, l.split())) for l in f.read().splitlines()]
    return dict(zip(texts, rows))


def ort_features(texts, ids):
    sess = ort.InferenceSession(MODEL, providers=["CPUExecutionProvider"])
    x = np.array([ids[t] for t in texts], dtype=np.int64)
    f = sess.run(None, {"text": x})[0].astype(np.float64)
    return f / np.linalg.norm(f, axis=1, keepdims=True)


def read(path):
    with safe_open(str(path), "np") as s:
        return {k: s.get_tensor(k) for k in s.keys()}, s.metadata()


def released_names():
    ucf = json.load(open(os.path.join(LABELS, "ucf101-index2cls.json")))
    hmdb = json.load(open(os.path.join(LABELS, "hmdb-index2cls.json")))
    camel = open(os.path.join(LABELS, "ucf101_camelcase.txt")).read().split()
    under = open(os.path.join(LABELS, "hmdb51.txt")).read().split()
    return camel, [ucf[str(i)] for i in range(101)], under, [hmdb[str(i)] for i in range(51)]


def test_class_features_match_ort(tmp_path, open_clip_ids):
    camel, ucf, under, hmdb = released_names()
    pick = [i for i in range(0, 101, 9) if camel[i] != "YoYo"]
    raw = [camel[i] for i in pick] + under[:5]
    names = [ucf[i] for i in pick] + hmdb[:5]
    (tmp_path / "classes.txt").write_text("\n".join(raw) + "\n")
    out = tmp_path / "c.safetensors"
    run_tool("opt", "vclip-run", "encode-text", "--text-model", MODEL, "--classes", tmp_path / "classes.txt",
             "-o", out, "--batch", "50", "--precision", "fp32", check=True)
    got, meta = read(out)
    assert json.loads(meta["classes"]) == names
    assert json.loads(meta["templates"]) == TEMPLATES
    want = []
    for n in names:
        f = ort_features([t.format(n) for t in TEMPLATES], open_clip_ids).mean(axis=0)
        want.append(f / np.linalg.norm(f))
    want = np.array(want)
    assert got["class_features"].shape == want.shape and got["class_features"].dtype == np.float32
    assert np.abs(got["class_features"] - want).max() < TOL


def test_index_to_class_json_and_normalization(tmp_path):
    camel, ucf, under, hmdb = released_names()
    for src, want in ((os.path.join(LABELS, "hmdb-index2cls.json"), hmdb),
                      (os.path.join(LABELS, "ucf101_camelcase.txt"), ucf),
                      (os.path.join(LABELS, "hmdb51.txt"), hmdb)):
        out = tmp_path / "x.safetensors"
        run_tool("opt", "vclip-run", "encode-text", "--text-model", MODEL, "--classes", src, "-o", out,
                 "--batch", "256", check=True)
        got = json.loads(read(out)[1]["classes"])
        diff = [(g, w) for g, w in zip(got, want) if g != w]
        # the released UCF list spells YoYo "Yoyo": no splitting rule gives that
        assert diff in ([], [("Yo Yo", "Yoyo")]), diff[:5]
        assert len(got) == len(want)


def test_captions_and_custom_templates(tmp_path, open_clip_ids):
    texts = ["a video of a person Archery.", "a photo of brush hair.", "a demonstration of a person practicing Biking.",
             "a example of a person using Bowling."]
    lines = [{"video": "v1.avi", "caption": texts[0]}, {"video": 7, "captions": texts[1:3]}, {"video": "v3", "caption": texts[3]}]
    (tmp_path / "caps.jsonl").write_text("\n".join(json.dumps(l) for l in lines) + "\n\n")
    (tmp_path / "t.txt").write_text("a video of {}.\n\n  a photo of {}.  \n")
    (tmp_path / "c.txt").write_text("Archery\nbrush_hair\n")
    out = tmp_path / "o.safetensors"
    run_tool("opt", "vclip-run", "encode-text", "--text-model", MODEL, "--captions", tmp_path / "caps.jsonl",
             "--classes", tmp_path / "c.txt", "--templates", tmp_path / "t.txt", "-o", out, "--precision", "fp32", check=True)
    got, meta = read(out)
    assert json.loads(meta["caption_videos"]) == ["v1.avi", "7", "7", "v3"]
    assert np.abs(got["caption_features"] - ort_features(texts, open_clip_ids)).max() < TOL
    want = []
    for n in ("Archery", "brush hair"):
        f = ort_features([t.format(n) for t in ("a video of {}.", "a photo of {}.")], open_clip_ids).mean(axis=0)
        want.append(f / np.linalg.norm(f))
    assert np.abs(got["class_features"] - np.array(want)).max() < TOL


@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_sorted_and_cut_equals_full_context(tmp_path, precision):
    """The default (texts sorted by length, each batch cut after its longest
    end-of-text token) writes the very bytes of --full-context.  This
    fixture's attention has head dim 8, which runs the BLAS kernel: where a
    shorter context changes its sums (fp32 here), the check on the first cut
    batch sees it, says so, and the features are the whole context's; where
    it does not, the cut stays on.  Either way the bytes are the same.  (The
    cut on the AVX-512 attention kernel is tested in C: test_cut_sequence.c.)"""
    (tmp_path / "c.txt").write_text("\n".join(open(os.path.join(LABELS, "hmdb51.txt")).read().split()[:20]) + "\n")
    outs = {}
    for mode in ("cut", "full"):
        outs[mode] = tmp_path / f"{mode}.safetensors"
        p = run_tool("opt", "vclip-run", "encode-text", "--text-model", MODEL, "--classes", tmp_path / "c.txt",
                     "--batch", "16", "--precision", precision, "-o", outs[mode], *(["--full-context"] if mode == "full" else []))
        assert p.returncode == 0, p.stderr
        share = float(p.stderr.rsplit(" ms, ", 1)[1].split("%")[0])
        fell_back = "differ from the whole context's; encoding texts at the whole context (77 positions)" in p.stderr
        if mode == "full" or fell_back:
            assert share == 100.0, p.stderr
        else:
            assert share < 30.0, p.stderr
        if mode == "full":
            assert not fell_back, p.stderr
    assert outs["cut"].read_bytes() == outs["full"].read_bytes()


def test_errors(tmp_path):
    (tmp_path / "dup.json").write_text('{"0": "a", "0": "b"}')
    (tmp_path / "gap.json").write_text('{"0": "a", "2": "b"}')
    (tmp_path / "bad.json").write_text('{"0": "a",')
    (tmp_path / "tmpl.txt").write_text("a photo of {}.\nno placeholder\n")
    (tmp_path / "caps.jsonl").write_text('{"video": "a", "caption": "x"}\n{"caption": "y"}\n')
    (tmp_path / "ok.txt").write_text("Archery\n")
    vis = Fixture("openai_visual_op17").model
    base = ["encode-text", "--text-model", MODEL, "-o", tmp_path / "o.safetensors"]
    cases = [
        (base + ["--classes", tmp_path / "gap.json"], "key \"2\" is not an index in 0..1"),
        (base + ["--classes", tmp_path / "dup.json"], "duplicate object key"),
        (base + ["--classes", tmp_path / "bad.json"], "bad.json:1:"),
        (base + ["--classes", tmp_path / "ok.txt", "--templates", tmp_path / "tmpl.txt"], "tmpl.txt:2: a template needs exactly one {}"),
        (base + ["--captions", tmp_path / "caps.jsonl"], "caps.jsonl:2: missing \"video\""),
        (base + ["--classes", tmp_path / "missing.txt"], "missing.txt: No such file"),
        (["encode-text", "--text-model", vis, "--classes", tmp_path / "ok.txt", "-o", tmp_path / "o.safetensors"],
         "expected a text encoder with one input of token ids"),
        (["encode-text", "--classes", tmp_path / "ok.txt", "-o", tmp_path / "o"], "missing --text-model"),
        (["encode-text", "--text-model", MODEL, "-o", tmp_path / "o"], "give --classes and/or --captions"),
    ]
    for args, msg in cases:
        r = run_tool("opt", "vclip-run", *args)
        assert_clean_exit(r)
        assert msg in r.stderr, f"{args}: {r.stderr}"
    assert not (tmp_path / "o.safetensors").exists()
