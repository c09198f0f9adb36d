#!/usr/bin/env python3
"""An independent PyTorch implementation of VCLIP's visual encoder, written
from DESIGN.md §2 (not from our C code), and the fixtures it produces.

The video [B, T, 3, H, W] runs through the image ViT as B*T frames.  In every
self-attention layer the queries of frame t attend over the keys and values of
frames t+1 .. t+w, t-1 .. t-w and t (in that order), concatenated along the
token axis, class token included.  A neighbour outside the clip is zeros
after the key/value projections ("zero", the released code's behaviour: a zero
key still gets logit 0 and a share of the softmax) or is left out ("mask").
Each frame's class token -> ln_post -> proj gives its embedding.

Writes tests/fixtures/vclip_temporal/: video.npy and expected_w{W}_{zero|mask}.npy
for the tiny OpenAI-layout CLIP of tests/fixtures/openai_visual_op17 (same
weights), after checking that window 0 reproduces that ONNX model under ORT.
Needs torch and open_clip (tools/install-deps.sh --fixtures).
Usage: python3 tests/ref/vclip_reference.py
"""
import os
import sys

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
from make_fixtures import openai_layout_model  # noqa: E402  (the same weights as the fixture)

OUT = os.path.join(ROOT, "tests", "fixtures", "vclip_temporal")
IMAGE_MODEL = os.path.join(ROOT, "tests", "fixtures", "openai_visual_op17", "model.onnx")


def shifted(x, o):
    """x [B, T, ...]: frame t receives frame t+o; zeros where t+o is outside; and which t are valid."""
    T = x.shape[1]
    out = torch.zeros_like(x)
    if o > 0:
        out[:, :T - o] = x[:, o:]
    elif o < 0:
        out[:, -o:] = x[:, :T + o]
    else:
        out = x
    valid = torch.tensor([0 <= t + o < T for t in range(T)])
    return out, valid


def temporal_self_attention(attn, x, B, T, window, boundary):
    """attn: the block's nn.MultiheadAttention; x [B*T, N, C] (batch first)."""
    BT, N, C = x.shape
    H = attn.num_heads
    d = C // H
    q, k, v = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    q, k, v = (t.reshape(B, T, N, H, d) for t in (q, k, v))
    offsets = list(range(1, window + 1)) + [-o for o in range(1, window + 1)] + [0]
    ks, vs, bias = [], [], []
    for o in offsets:
        ko, valid = shifted(k, o)
        vo, _ = shifted(v, o)
        ks.append(ko)
        vs.append(vo)
        b = torch.zeros(T, N)
        if boundary == "mask":
            b[~valid] = float("-inf")
        bias.append(b)
    K, V = torch.cat(ks, dim=2), torch.cat(vs, dim=2)          # [B, T, S*N, H, d]
    logits = torch.einsum("btnhd,btmhd->bthnm", q, K) / d ** 0.5
    logits = logits + torch.cat(bias, dim=1)[None, :, None, None, :]
    p = logits.softmax(dim=-1)
    o = torch.einsum("bthnm,btmhd->btnhd", p, V).reshape(BT, N, C)
    return F.linear(o, attn.out_proj.weight, attn.out_proj.bias)


def vclip_visual_forward(visual, video, window, boundary):
    """The VCLIP forward with autograd (tests/ref/train_step_reference.py differentiates it)."""
    B, T = video.shape[:2]
    x = visual.conv1(video.reshape(B * T, *video.shape[2:]))
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
    cls = visual.class_embedding.reshape(1, 1, -1).expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], dim=1) + visual.positional_embedding
    x = visual.ln_pre(x)
    for blk in visual.transformer.resblocks:
        x = x + temporal_self_attention(blk.attn, blk.ln_1(x), B, T, window, boundary)
        x = x + blk.mlp(blk.ln_2(x))
    x = visual.ln_post(x[:, 0]) @ visual.proj
    return x.reshape(B, T, -1)


vclip_visual = torch.no_grad()(vclip_visual_forward)


def main():
    visual = openai_layout_model().visual.eval()
    rng = np.random.default_rng(2024)
    video = rng.standard_normal((2, 8, 3, 32, 32)).astype(np.float32)
    os.makedirs(OUT, exist_ok=True)
    np.save(os.path.join(OUT, "video.npy"), video)
    # window 0 is the image model, frame by frame: check the weights are the fixture's
    per_frame = vclip_visual(visual, torch.from_numpy(video), 0, "zero").numpy()
    sess = ort.InferenceSession(IMAGE_MODEL, providers=["CPUExecutionProvider"])
    image = sess.run(None, {"image": video.reshape(16, 3, 32, 32)})[0].reshape(2, 8, -1)
    err = float(np.abs(per_frame - image).max())
    if err > 1e-5:
        raise SystemExit(f"reference with window 0 differs from the image model by {err}")
    for window in (1, 2):
        for boundary in ("zero", "mask"):
            y = vclip_visual(visual, torch.from_numpy(video), window, boundary).numpy()
            np.save(os.path.join(OUT, f"expected_w{window}_{boundary}.npy"), y)
            print(f"window {window} {boundary}: |y - per-frame| max {np.abs(y - per_frame).max():.3f}")
    print(f"window 0 vs image model: {err:.1e}")


if __name__ == "__main__":
    main()
