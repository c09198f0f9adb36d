#!/usr/bin/env python3
"""The llm.c-style reference state for one Open-VCLIP training setup, computed
by PyTorch: a tiny VCLIP (the OpenAI-layout CLIP of
tests/fixtures/openai_visual_op17, T = 8, temporal window 1, zero-filled
boundary), the frame-averaged cross-entropy against fixed class features, the
caption loss (lambda 4), and IWR at a fixed alpha (beta 0.5).

The step starts away from CLIP: θ = θ_CLIP + noise (param0.* in the file),
while IWR interpolates towards θ_CLIP, the exported weights.  At θ = θ_CLIP
the interpolated weights would equal θ and every gradient would be a fixed
multiple of ∇L(θ), so code that only scaled ∇L(θ) would pass both
conventions; here the second forward sees other weights.  A second set of
gradients (grad_w2_mask.*) uses temporal window 2 with the masked boundary,
so the wider windows and the masked attention's backward are checked against
PyTorch too.  A fourth (grad_dup.*) gives both videos the same caption: then
neither is the other's negative in the caption loss, which is written here
by taking them out of the softmax (masked_fill), not by our additive mask.

Written from DESIGN.md §2, not from our C code:
  L(θ)   = CE(exp(s) · mean_t(f_t · W_textᵀ), y) + λ · ½(CE(S, i) + CE(Sᵀ, i)),
           f_t = normalize(frame embedding t), S = exp(s) · normalize(Σ_t f_t) · Cᵀ
  total  = L(θ) + β · L(θ~),  θ~ = α θ_CLIP + (1 - α) θ
  grad   = ∇θ L(θ) + β ∇θ~ L(θ~)           (released code; default)
  grad'  = ∇θ total                        (exact chain rule)
then three steps of global-norm clipping (1.0) and AdamW (lr 1e-3,
β 0.9/0.999, eps 1e-8, decay 0.01 except biases and vectors) on one batch.

Tensors are stored under the ONNX initializer names, found by matching values
(the exporter transposes some weights and renames others).  Writes
tests/fixtures/train_step/reference.safetensors.
Usage: python3 tests/ref/train_step_reference.py  (needs torch, open_clip)
"""
import json
import math
import os
import sys

import numpy as np
import onnx
import onnx.numpy_helper
import torch
import torch.nn.functional as F
from safetensors.numpy import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from vclip_reference import openai_layout_model, vclip_visual_forward  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
from make_fixtures import VisualEncoder, export  # noqa: E402

MODEL = os.path.join(ROOT, "tests", "fixtures", "train_step", "visual.onnx")
OUT = os.path.join(ROOT, "tests", "fixtures", "train_step", "reference.safetensors")
B, T, CLASSES, ALPHA, BETA, LAMBDA, LR, LOGIT_SCALE, STEPS = 2, 8, 5, 0.3, 0.5, 4.0, 1e-3, math.log(1 / 0.07), 3


def onnx_mapping(visual):
    """ONNX f32 initializer name -> (torch parameter name, 'same' | 'T' | 'reshape')."""
    params = {n: p.detach().numpy() for n, p in visual.named_parameters()}
    mapping = {}
    for init in onnx.load(MODEL).graph.initializer:
        a = onnx.numpy_helper.to_array(init)
        if a.dtype != np.float32:
            continue
        for n, p in params.items():
            if p.shape == a.shape and np.array_equal(p, a):
                mapping[init.name] = ("visual." + n, "same")
            elif p.ndim == 2 and p.T.shape == a.shape and np.array_equal(p.T, a):
                mapping[init.name] = ("visual." + n, "T")
            elif p.size == a.size and p.shape != a.shape and np.array_equal(p.reshape(a.shape), a):
                mapping[init.name] = ("visual." + n, "reshape")
            else:
                continue
            break
        else:
            raise SystemExit(f"initializer {init.name} matches no parameter")
    if sorted(n for n, _ in mapping.values()) != sorted("visual." + n for n in params):
        raise SystemExit("not every parameter has an initializer")
    return mapping


def to_onnx_layout(t, how, shape):
    """A copy: a parameter's numpy view would follow the optimizer's later in-place updates."""
    a = t.detach().numpy()
    return np.array(a.T if how == "T" else a.reshape(shape), order="C", copy=True)


class Model(torch.nn.Module):
    def __init__(self, visual):
        super().__init__()
        self.visual = visual
        self.logit_scale = torch.nn.Parameter(torch.tensor(LOGIT_SCALE, dtype=torch.float32))


def vclip_with(module, params, visual, video, window=1, boundary="zero"):
    """VCLIP frame embeddings with `params` (dotted names under `module`) swapped in
    for the module's own parameters: the forward is a free function over the module."""
    saved = {}
    for k, v in params.items():
        mod, name = module, k
        while "." in name:
            head, name = name.split(".", 1)
            mod = getattr(mod, head)
        if name in mod._parameters:
            saved[k] = (mod, name, mod._parameters[name])
            mod._parameters[name] = v
    try:
        return vclip_visual_forward(visual, video, window, boundary)
    finally:
        for mod, name, p in saved.values():
            mod._parameters[name] = p


def loss_fn(model, params, video, labels, text, captions, window=1, boundary="zero"):
    fe = vclip_with(model, params, model.visual, video, window, boundary)
    scale = params["logit_scale"].exp()
    f = fe / fe.norm(dim=-1, keepdim=True)
    logits = scale * (f @ text.T).mean(dim=1)
    ce = F.cross_entropy(logits, labels)
    v = f.sum(dim=1)
    v = v / v.norm(dim=-1, keepdim=True)
    sim = scale * v @ captions.T
    diag = torch.arange(B)
    same = (captions[:, None, :] == captions[None, :, :]).all(-1) & ~torch.eye(B, dtype=torch.bool)
    sim = sim.masked_fill(same, float("-inf"))  # another video with the same caption is no negative
    cap = 0.5 * (F.cross_entropy(sim, diag) + F.cross_entropy(sim.T, diag))
    return ce + LAMBDA * cap, ce


def main():
    clip = openai_layout_model()
    torch.manual_seed(7)
    with torch.no_grad():
        for n, p in clip.visual.named_parameters():
            if n.endswith("bias"):
                p.uniform_(-0.1, 0.1)
    export(VisualEncoder(clip).eval(), torch.zeros(2, 3, 32, 32), "image", "image_features", MODEL, 17, False)
    visual = clip.visual.float()
    model = Model(visual)
    mapping = onnx_mapping(visual)
    rng = np.random.default_rng(11)
    video = rng.standard_normal((B, T, 3, 32, 32)).astype(np.float32)
    labels = np.array([3, 1], dtype=np.int64)
    text = rng.standard_normal((CLASSES, 32)).astype(np.float32)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    captions = rng.standard_normal((B, 32)).astype(np.float32)
    captions /= np.linalg.norm(captions, axis=1, keepdims=True)
    tv, tl, tt, tc = (torch.from_numpy(x) for x in (video, labels, text, captions))

    names = [n for n, _ in model.named_parameters()]
    theta = {n: p for n, p in model.named_parameters()}
    theta0 = {n: p.detach().clone() for n, p in theta.items()}  # θ_CLIP: the exported weights
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():  # start away from CLIP, as after some training
        for n, p in theta.items():
            p.add_(0.2 * (p.std() if p.numel() > 1 else 1.0) * torch.randn(p.shape, generator=gen))

    def grads(exact, window=1, boundary="zero", caps=None):
        caps = tc if caps is None else caps
        loss1, ce = loss_fn(model, theta, tv, tl, tt, caps, window, boundary)
        if exact:
            tilde = {n: ALPHA * theta0[n] + (1 - ALPHA) * theta[n] for n in names}
            loss2, _ = loss_fn(model, tilde, tv, tl, tt, caps, window, boundary)
            g = torch.autograd.grad(loss1 + BETA * loss2, [theta[n] for n in names])
        else:
            tilde = {n: (ALPHA * theta0[n] + (1 - ALPHA) * theta[n].detach()).requires_grad_() for n in names}
            loss2, _ = loss_fn(model, tilde, tv, tl, tt, caps, window, boundary)
            g1 = torch.autograd.grad(loss1, [theta[n] for n in names])
            g2 = torch.autograd.grad(loss2, [tilde[n] for n in names])
            g = [a + BETA * b for a, b in zip(g1, g2)]
        return (loss1 + BETA * loss2).item(), ce.item(), dict(zip(names, g))

    out = {"video": video, "labels": labels, "class_features": text, "caption_features": captions}
    shapes = {i.name: tuple(i.dims) for i in onnx.load(MODEL).graph.initializer}
    for onnx_name, (n, how) in mapping.items():
        out["param0." + onnx_name] = to_onnx_layout(theta[n], how, shapes[onnx_name])
    out["param0.logit_scale"] = theta["logit_scale"].detach().numpy().astype(np.float32)  # astype copies
    _, _, g_exact = grads(True)
    total_w2, _, g_w2 = grads(False, 2, "mask")
    out["loss_w2_mask"] = np.array(total_w2, dtype=np.float32)
    for onnx_name, (n, how) in mapping.items():
        out["grad_w2_mask." + onnx_name] = to_onnx_layout(g_w2[n], how, shapes[onnx_name])
    out["grad_w2_mask.logit_scale"] = g_w2["logit_scale"].numpy().astype(np.float32)
    dup = tc.clone()
    dup[1] = dup[0]
    total_dup, _, g_dup = grads(False, caps=dup)
    out["loss_dup_captions"] = np.array(total_dup, dtype=np.float32)
    for onnx_name, (n, how) in mapping.items():
        out["grad_dup." + onnx_name] = to_onnx_layout(g_dup[n], how, shapes[onnx_name])
    out["grad_dup.logit_scale"] = g_dup["logit_scale"].numpy().astype(np.float32)
    decay = [p for n, p in theta.items() if p.ndim >= 2 and not n.endswith("bias")]
    no_decay = [p for n, p in theta.items() if not (p.ndim >= 2 and not n.endswith("bias"))]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=LR, betas=(0.9, 0.999), eps=1e-8, foreach=False)
    losses = []
    for step in range(STEPS):
        total, ce, g = grads(False)
        losses.append(total)
        if step == 0:
            out["loss_ce"] = np.array(ce, dtype=np.float32)
            for onnx_name, (n, how) in mapping.items():
                out["grad." + onnx_name] = to_onnx_layout(g[n], how, shapes[onnx_name])
                out["grad_exact." + onnx_name] = to_onnx_layout(g_exact[n], how, shapes[onnx_name])
            out["grad.logit_scale"] = g["logit_scale"].numpy().astype(np.float32)
            out["grad_exact.logit_scale"] = g_exact["logit_scale"].numpy().astype(np.float32)
        for n in names:
            theta[n].grad = g[n].clone()
        norm = torch.nn.utils.clip_grad_norm_([theta[n] for n in names], 1.0)
        print(f"step {step}: loss {total:.6f} grad norm {norm.item():.4f}")
        opt.step()
    out["loss"] = np.array(losses, dtype=np.float32)
    for onnx_name, (n, how) in mapping.items():
        out[f"param{STEPS}." + onnx_name] = to_onnx_layout(theta[n], how, shapes[onnx_name])
    out[f"param{STEPS}.logit_scale"] = theta["logit_scale"].detach().numpy().astype(np.float32)
    meta = {"alpha": str(ALPHA), "beta": str(BETA), "lambda": str(LAMBDA), "lr": str(LR), "logit_scale": repr(LOGIT_SCALE),
            "steps": str(STEPS), "frames": str(T), "window": "1", "boundary": "zero"}
    save_file({k: np.ascontiguousarray(v) for k, v in out.items()}, OUT, metadata={"config": json.dumps(meta)})
    print(f"wrote {OUT}: {len(out)} tensors")


if __name__ == "__main__":
    main()
