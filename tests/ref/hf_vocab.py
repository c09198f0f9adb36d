"""Hugging Face's CLIP vocab.json + merges.txt, derived from open_clip's
bpe_simple_vocab_16e6.txt.gz the way HF's files were made (same ids; special
tokens named <|startoftext|> and <|endoftext|>)."""
import gzip
import json
import os


def byte_characters():
    """GPT-2's byte-level alphabet: a printable character per byte, in the order BPE vocabularies list them."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def write_hf_vocab(bpe_gz, folder):
    merges = gzip.open(bpe_gz).read().decode("utf-8").split("\n")[1:49152 - 256 - 2 + 1]
    vocab = byte_characters()
    vocab += [v + "</w>" for v in vocab] + ["".join(m.split()) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    vj, mt = os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt")
    with open(vj, "w", encoding="utf-8") as f:
        json.dump({v: i for i, v in enumerate(vocab)}, f)
    with open(mt, "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    return vj, mt
