#!/usr/bin/env python3
"""GPU inference: vclipc's CUDA backend against PyTorch on the same GPU and
precision, measured in one run (tests/gpu/run.sh calls this on a machine lent
a GPU).  ViT-B/32 and ViT-B/16 image towers (OpenAI architecture, random
weights: ours from models/clip_builder.c, PyTorch's its own initialization;
timing does not depend on the values) at batch 1 and 8, fp32 (TF32 off on
both sides) and bf16 (our bf16 tensor-core GEMMs; PyTorch under autocast).
Our side also reports its error against our CPU session on the same input.

Writes bench/results/gpu_inference.md (or --out FILE).  Usage:
  python3 bench/bench_gpu.py [--repeat 50] [--out FILE]
"""
import argparse
import datetime
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRIVER = os.path.join(ROOT, "build", "bench", "gpu_infer")


def ours(patch, batch, precision, repeat):
    p = subprocess.run([DRIVER, str(patch), str(batch), str(repeat), precision], capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"gpu_infer {patch} {batch} {precision}: {p.stderr.strip()}")
    return json.loads(p.stdout)


def torch_model(patch):
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, w, h):
            super().__init__()
            self.ln_1, self.ln_2 = nn.LayerNorm(w), nn.LayerNorm(w)
            self.attn = nn.MultiheadAttention(w, h)
            self.fc, self.proj = nn.Linear(w, 4 * w), nn.Linear(4 * w, w)

        def forward(self, x):
            y = self.ln_1(x)
            x = x + self.attn(y, y, y, need_weights=False)[0]
            y = self.fc(self.ln_2(x))
            return x + self.proj(y * torch.sigmoid(1.702 * y))

    class Visual(nn.Module):
        def __init__(self, patch, w=768, layers=12, heads=12, embed=512):
            super().__init__()
            self.conv1 = nn.Conv2d(3, w, patch, patch, bias=False)
            n = (224 // patch) ** 2 + 1
            self.cls = nn.Parameter(torch.randn(w) * 0.02)
            self.pos = nn.Parameter(torch.randn(n, w) * 0.01)
            self.ln_pre, self.ln_post = nn.LayerNorm(w), nn.LayerNorm(w)
            self.blocks = nn.ModuleList(Block(w, heads) for _ in range(layers))
            self.proj = nn.Parameter(torch.randn(w, embed) * w ** -0.5)

        def forward(self, x):
            x = self.conv1(x).flatten(2).transpose(1, 2)
            x = torch.cat([self.cls.expand(x.shape[0], 1, -1), x], 1) + self.pos
            x = self.ln_pre(x).transpose(0, 1)
            for b in self.blocks:
                x = b(x)
            return self.ln_post(x[0]) @ self.proj

    return Visual(patch)


def pytorch(patch, batch, precision, repeat):
    import torch
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    m = torch_model(patch).cuda().eval()
    x = torch.randn(batch, 3, 224, 224, device="cuda")
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16"):
        for i in range(repeat + 5):
            start.record()
            m(x)
            end.record()
            torch.cuda.synchronize()
            if i >= 5:
                times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2], torch.__version__, torch.cuda.get_device_name()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "gpu_inference.md"))
    a = ap.parse_args()
    try:
        import torch
        have_torch = torch.cuda.is_available()
        why = "" if have_torch else "PyTorch sees no CUDA device"
    except ImportError:
        have_torch, why = False, "PyTorch is not installed on this machine"
    rows, device, tv = [], "?", "-"
    for patch in (32, 16):
        for batch in (1, 8):
            for precision in ("fp32", "bf16"):
                r = ours(patch, batch, precision, a.repeat)
                if have_torch:
                    r["torch_ms"], tv, device = pytorch(patch, batch, precision, a.repeat)
                print(json.dumps(r), flush=True)
                rows.append(r)
    lines = [
        "# GPU inference: vclipc --target cuda vs PyTorch",
        "",
        f"Measured {datetime.date.today()} by `bench/bench_gpu.py` (via tests/gpu/run.sh) on {device}, PyTorch {tv}. "
        "ViT-B image towers (OpenAI architecture), random weights, median of "
        f"{a.repeat} runs after warm-up (ours: a replayed CUDA graph). fp32: TF32 off on both sides; bf16: our "
        "tensor-core GEMMs with f32 sums (the rest f32), PyTorch autocast. Ratio = PyTorch time / vclipc time (above 1: "
        "vclipc is faster). Error: max |CUDA - CPU| / max |CPU| of our own session on the same input."
        + (f" No PyTorch column: {why}." if not have_torch else ""),
        "",
        "| model | batch | precision | vclipc ms | PyTorch ms | ratio | error vs CPU | device nodes / host nodes | arena MB |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for r in rows:
        t = r.get("torch_ms")
        lines.append(f"| ViT-B/{r['patch']} | {r['batch']} | {r['precision']} | {r['median_ms']:.2f} | "
                     f"{t:.2f} | {t / r['median_ms']:.2f} | " if t else
                     f"| ViT-B/{r['patch']} | {r['batch']} | {r['precision']} | {r['median_ms']:.2f} | - | - | ")
        lines[-1] += f"{r['max_rel_err_vs_cpu']:.1e} | {r['device_nodes']} / {r['host_nodes']} | {r['arena_mb']:.1f} |"
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    sys.exit(main())
