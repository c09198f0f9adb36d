#!/usr/bin/env python3
"""CPU training step: vclip against PyTorch doing the same computation, in one
run, as ratios (issues 7 and 19), in fp32 and in bf16 (ours: GEMM operands
rounded to bf16 with f32 sums, fp32 master weights and AdamW; PyTorch's:
torch.autocast("cpu", torch.bfloat16) around the forwards).

The step: VCLIP ViT-B/32 (T = 8, temporal window 1, zero-filled boundary),
batch 2 videos, frame-averaged logits against 400 fixed class features,
cross-entropy, IWR on (a second forward at θ~ = αθ_CLIP + (1-α)θ, the
released gradient convention), gradient clipping and AdamW.  PyTorch runs
tests/ref/vclip_reference.py's VCLIP forward on the open_clip model the ONNX
file was exported from (bench/make_models.py), fp32, the same thread count.
Peak memory is each process's max RSS (PyTorch's includes ~300 MB of
framework).  The two alternate for --rounds rounds per precision.  Appends
a section naming the CPU and the commit to bench/results/training.md
(tables of other CPUs stay).

Usage: python3 bench/bench_train.py [--steps 3] [--rounds 3] [--threads 2] [--precision fp32 bf16]
Needs bench/models/vit_b32_visual.onnx and torch + open_clip (tools/install-deps.sh --fixtures).
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import textwrap

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cpu_info import cpu_description  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODEL = os.path.join(HERE, "models", "vit_b32_visual.onnx")

TORCH_STEP = textwrap.dedent("""
    import json, resource, sys, time
    import torch, torch.nn.functional as F
    sys.path.insert(0, {ref!r})
    import open_clip
    from train_step_reference import vclip_with
    torch.set_num_threads({threads})
    torch.manual_seed(0)
    visual = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None).visual.float()
    B, T, C = {batch}, {frames}, 400
    text = F.normalize(torch.randn(C, visual.proj.shape[1]), dim=-1)
    video = torch.randn(B, T, 3, 224, 224)
    labels = torch.arange(B) % C
    names = [n for n, _ in visual.named_parameters()]
    theta = dict(visual.named_parameters())
    theta0 = {{n: p.detach().clone() for n, p in theta.items()}}
    logit_scale = torch.nn.Parameter(torch.tensor(4.6052))
    opt = torch.optim.AdamW(list(theta.values()) + [logit_scale], lr=1e-5)

    def loss_at(params, scale):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled={bf16}):
            fe = vclip_with(visual, params, visual, video).float()
        f = fe / fe.norm(dim=-1, keepdim=True)
        return F.cross_entropy(scale.exp() * (f @ text.T).mean(1), labels)

    times = []
    for step in range({steps} + 1):
        t0 = time.perf_counter()
        alpha = 0.3
        tilde = {{n: (alpha * theta0[n] + (1 - alpha) * theta[n].detach()).requires_grad_() for n in names}}
        scale_t = (alpha * 4.6052 + (1 - alpha) * logit_scale.detach()).requires_grad_()
        l1 = loss_at(theta, logit_scale)
        l2 = loss_at(tilde, scale_t)
        g1 = torch.autograd.grad(l1, [theta[n] for n in names] + [logit_scale])
        g2 = torch.autograd.grad(l2, [tilde[n] for n in names] + [scale_t])
        for p, a, b in zip([theta[n] for n in names] + [logit_scale], g1, g2):
            p.grad = a + 0.5 * b
        torch.nn.utils.clip_grad_norm_(list(theta.values()) + [logit_scale], 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step:
            times.append((time.perf_counter() - t0) * 1e3)
    print(json.dumps({{"ms_per_step": sum(times) / len(times), "best_ms": min(times),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "loss": float(l1)}}))
""")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds of vclip and PyTorch per precision")
    a = ap.parse_args()
    if not os.path.exists(MODEL):
        sys.exit(f"{MODEL} is missing: run python3 bench/make_models.py --only b32")
    subprocess.run(["make", "-s", "build/bench/train_step"], cwd=ROOT, check=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OPENBLAS_NUM_THREADS=str(a.threads))
    rows = []
    for prec in a.precision:
        # the systems alternate for --rounds rounds (the order reversed every
        # other round, so that a slow minute on a shared machine hits both);
        # each one's time is the median of its round means
        ours_runs, torch_runs = [], []
        for r in range(a.rounds):
            for system in (("ours", "torch") if r % 2 == 0 else ("torch", "ours")):
                if system == "ours":
                    ours_runs.append(json.loads(subprocess.run(
                        [os.path.join(ROOT, "build", "bench", "train_step"), MODEL, str(a.batch), str(a.frames), str(a.steps),
                         str(a.threads), "400", prec], capture_output=True, text=True, check=True, env=env).stdout))
                else:
                    code = TORCH_STEP.format(ref=os.path.join(ROOT, "tests", "ref"), threads=a.threads, batch=a.batch,
                                             frames=a.frames, steps=a.steps, bf16=prec == "bf16")
                    torch_runs.append(json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                                                check=True, env=env).stdout.strip().splitlines()[-1]))
                print(prec, system, json.dumps((ours_runs if system == "ours" else torch_runs)[-1]), flush=True)
        rows.append((prec, summary(ours_runs), summary(torch_runs)))
    lines = [f"## {cpu_description()}, {a.threads} threads, {datetime.date.today()}, at {commit()}", "",
             f"VCLIP ViT-B/32 (random weights), T = {a.frames}, temporal window 1, batch {a.batch} videos, 400 classes, "
             f"IWR on (two forwards), clipping + AdamW; {a.rounds} alternating rounds, each the mean of {a.steps} steps after a "
             f"warm-up step, and each system's time the median of its rounds; PyTorch {torch_version()}. "
             "Speed = PyTorch's time / vclip's (above 1: vclip is faster); memory = vclip's peak RSS / PyTorch's.", "",
             "| precision | vclip ms/step | PyTorch ms/step | speed | each round, ms (vclip / PyTorch) | best steps (vclip / PyTorch) "
             "| vclip peak RSS | PyTorch peak RSS | memory |",
             "| --- | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: |"]
    for prec, ours, torch_r in rows:
        what = "fp32" if prec == "fp32" else "bf16 (vclip: --precision bf16; PyTorch: autocast)"
        lines.append(f"| {what} | {ours['ms_per_step']:.0f} | {torch_r['ms_per_step']:.0f} | "
                     f"{torch_r['ms_per_step'] / ours['ms_per_step']:.2f} | {', '.join(f'{x:.0f}' for x in ours['rounds'])} / "
                     f"{', '.join(f'{x:.0f}' for x in torch_r['rounds'])} | {ours['best_ms']:.0f} / {torch_r['best_ms']:.0f} | "
                     f"{ours['peak_rss_mb']:.0f} MB | {torch_r['peak_rss_mb']:.0f} MB | {ours['peak_rss_mb'] / torch_r['peak_rss_mb']:.2f} |")
    lines += ["", f"vclip's graph: {rows[0][1]['nodes']} nodes, {rows[0][1]['params']} parameters (including logit_scale), "
              f"built in {rows[0][1]['build_ms']:.0f} ms.", ""]
    out = os.path.join(HERE, "results", "training.md")
    with open(out, "a") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def summary(runs):
    """One system's rounds: the median of their step means, the best step, the largest peak RSS."""
    means = [r["ms_per_step"] for r in runs]
    out = dict(runs[0], ms_per_step=sorted(means)[len(means) // 2], best_ms=min(r["best_ms"] for r in runs),
               peak_rss_mb=max(r["peak_rss_mb"] for r in runs))
    out["rounds"] = means
    return out


def commit():
    """The checkout's commit, marked when the tree has changes (a table names the code it measured)."""
    run = lambda *c: subprocess.run(["git", *c], cwd=ROOT, capture_output=True, text=True).stdout.strip()  # noqa: E731
    head = run("rev-parse", "--short", "HEAD") or "an unknown commit"
    return head + (" with uncommitted changes" if run("status", "--porcelain", "--untracked-files=no") else "")


def torch_version():
    import torch
    return torch.__version__.split("+")[0]


if __name__ == "__main__":
    main()
