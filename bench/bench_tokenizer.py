#!/usr/bin/env python3
"""Tokenization throughput: vclip-run tokenize against open_clip's Python
tokenizer and Hugging Face's Rust tokenizers (CLIPTokenizerFast, built from
the same merges), on the same texts in one run, also checking that all three
agree.  Writes bench/results/tokenizer.md.  Needs open_clip and transformers
(tools/install-deps.sh --fixtures).  Usage: python3 bench/bench_tokenizer.py
"""
import datetime
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CORPUS = os.path.join(ROOT, "tests", "fixtures", "tokenizer", "corpus.txt")
BPE = os.path.join(ROOT, "models", "tokenizer", "bpe_simple_vocab_16e6.txt.gz")


def hf_tokenizer(tmp):
    from transformers import CLIPTokenizerFast
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from ref.hf_vocab import write_hf_vocab
    return CLIPTokenizerFast(*write_hf_vocab(BPE, tmp))


def best_of(n, fn):
    times = []
    out = None
    for _ in range(n):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main():
    import open_clip
    texts = open(CORPUS, encoding="utf-8", newline="").read().split("\n")[:-1]
    n = len(texts)
    rows = []
    vclip = os.path.join(ROOT, "bin", "vclip-run")
    with tempfile.TemporaryDirectory() as tmp:
        empty = os.path.join(tmp, "empty.txt")
        open(empty, "w").close()
        load, _ = best_of(3, lambda: subprocess.run([vclip, "tokenize", "--file", empty], check=True, capture_output=True))
        t_ours, p = best_of(3, lambda: subprocess.run([vclip, "tokenize", "--file", CORPUS], check=True, capture_output=True, text=True))
        ours = [list(map(int, l.split())) for l in p.stdout.splitlines()]
        rows.append(("vclip-run tokenize (C, 1 thread)", t_ours, t_ours - load))

        oc = open_clip.get_tokenizer("ViT-B-32")
        t_oc, oc_ids = best_of(1, lambda: oc(texts).tolist())
        rows.append(("open_clip SimpleTokenizer (Python)", t_oc, None))

        hf = hf_tokenizer(tmp)
        os.environ["TOKENIZERS_PARALLELISM"] = "true"
        t_hf, hf_ids = best_of(3, lambda: hf(texts, padding="max_length", truncation=True, max_length=77)["input_ids"])
        rows.append(("HF tokenizers CLIPTokenizerFast (Rust, batch)", t_hf, None))
    def upto_eot(row):  # HF pads with <|endoftext|>, open_clip and we with 0
        return row[:row.index(49407) + 1] if 49407 in row else row
    agree_oc = sum(a == b for a, b in zip(ours, oc_ids))
    agree_hf = sum(upto_eot(a) == upto_eot(b) for a, b in zip(ours, hf_ids))
    lines = [
        "# Tokenization throughput",
        "",
        f"Measured {datetime.date.today()} by `bench/bench_tokenizer.py` on this project's machine ({os.cpu_count()} cores): "
        f"the {n} texts of `tests/fixtures/tokenizer/corpus.txt` (class prompts and hard cases), into 77-id rows. "
        "vclip-run is timed as a whole process (best of 3), so its time includes loading the vocabulary "
        f"({load * 1e3:.0f} ms, shown separately). Ratio = the other's time / vclip-run's (above 1: vclip-run is faster).",
        "",
        "| tokenizer | seconds | texts/s | ratio vs vclip-run |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, t, net in rows:
        extra = f" ({n / net:,.0f}/s without vocabulary load)" if net else ""
        lines.append(f"| {name} | {t:.3f} | {n / t:,.0f}{extra} | {t / t_ours:.2f} |")
    lines += ["", f"Agreement with vclip-run: open_clip {agree_oc}/{n} rows identical; HF tokenizers {agree_hf}/{n} "
              "(HF's CLIP pre-tokenizer cleans text differently from open_clip's ftfy-based cleanup)."]
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "tokenizer.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
