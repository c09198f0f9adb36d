#!/usr/bin/env python3
"""Generate full-size random-weight CLIP exports for benchmarks (never committed).

  bench/models/vit_b32_visual.onnx   OpenAI layout (open_clip ViT-B-32-quickgelu), opset 17
  bench/models/vit_b32_text.onnx     its text encoder, opset 17
  bench/models/vit_l14_visual/model.onnx (+ model.onnx.data)   ViT-L/14 visual, external data

Needs tools/install-deps.sh --fixtures.  Usage: python3 bench/make_models.py [--only NAME]
"""
import argparse
import os
import warnings

import numpy as np
import onnx
import torch

warnings.filterwarnings("ignore")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")


class Visual(torch.nn.Module):
    def __init__(self, clip):
        super().__init__()
        self.visual = clip.visual

    def forward(self, image):
        return self.visual(image)


class Text(torch.nn.Module):
    def __init__(self, clip):
        super().__init__()
        self.clip = clip

    def forward(self, text):
        return self.clip.encode_text(text)


def export(module, example, name, in_name, out_name, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.onnx.export(module, (example,), path, dynamo=False, opset_version=17, input_names=[in_name],
                      output_names=[out_name], dynamic_axes={in_name: {0: "batch"}, out_name: {0: "batch"}})
    print(f"{name}: {os.path.getsize(path) / 1e6:.1f} MB")


def main():
    import open_clip
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default=None)
    a = ap.parse_args()
    torch.manual_seed(0)
    if a.only in (None, "b32"):
        clip = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None).eval()
        export(Visual(clip), torch.randn(1, 3, 224, 224), "vit_b32_visual", "image", "image_features",
               os.path.join(OUT, "vit_b32_visual.onnx"))
        text = torch.zeros(1, 77, dtype=torch.long)
        text[0, :5] = torch.tensor([49406, 320, 1125, 539, 49407])
        export(Text(clip), text, "vit_b32_text", "text", "text_features", os.path.join(OUT, "vit_b32_text.onnx"))
    if a.only in (None, "l14"):
        clip = open_clip.create_model("ViT-L-14-quickgelu", pretrained=None).eval()
        d = os.path.join(OUT, "vit_l14_visual")
        tmp = os.path.join(d, "inline.onnx")
        export(Visual(clip), torch.randn(1, 3, 224, 224), "vit_l14_visual (inline)", "image", "image_features", tmp)
        m = onnx.load(tmp)
        onnx.save_model(m, os.path.join(d, "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                        location="model.onnx.data", size_threshold=1024)
        os.unlink(tmp)
        print("vit_l14_visual: external data",
              f"{os.path.getsize(os.path.join(d, 'model.onnx.data')) / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
