#!/usr/bin/env python3
"""Writes a tiny random-weight Llama model as GGUF (the `gguf` package), for running llama.cpp's server in the
caption tests: 2 layers, width 64, a byte-level BPE vocabulary of the 256 bytes plus a few merges and the
special tokens, and a ChatML chat template.  Its answers are noise; the protocol around them is real.

usage: make_tiny_gguf.py OUT.gguf
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "ref"))
from hf_vocab import byte_characters  # noqa: E402




def main(path):
    import gguf
    rng = np.random.default_rng(0)
    tokens = byte_characters()
    merges = ["Ġ t", "Ġ a", "h e", "i n", "r e", "o n"]
    tokens += [a + b for a, b in (m.split() for m in merges)]
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tokens += specials
    types = [gguf.TokenType.NORMAL] * (len(tokens) - len(specials)) + [gguf.TokenType.CONTROL] * len(specials)
    n_vocab, d, ff, layers, heads = len(tokens), 64, 128, 2, 4
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("vclip-test-tiny")
    w.add_context_length(512)
    w.add_embedding_length(d)
    w.add_block_count(layers)
    w.add_feed_forward_length(ff)
    w.add_head_count(heads)
    w.add_head_count_kv(heads)
    w.add_rope_dimension_count(d // heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(tokens.index("<|endoftext|>"))
    w.add_eos_token_id(tokens.index("<|im_end|>"))
    w.add_add_bos_token(False)
    w.add_chat_template("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

    def t(name, *shape):
        w.add_tensor(name, (0.02 * rng.standard_normal(shape)).astype(np.float32))

    t("token_embd.weight", n_vocab, d)
    for i in range(layers):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(d, np.float32))
        for k in ("q", "k", "v", "output"):
            t(f"blk.{i}.attn_{k}.weight", d, d)
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(d, np.float32))
        t(f"blk.{i}.ffn_gate.weight", ff, d)
        t(f"blk.{i}.ffn_up.weight", ff, d)
        t(f"blk.{i}.ffn_down.weight", d, ff)
    w.add_tensor("output_norm.weight", np.ones(d, np.float32))
    t("output.weight", n_vocab, d)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main(sys.argv[1])
