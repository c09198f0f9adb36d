#!/usr/bin/env python3
"""Converts the released Open-VCLIP checkpoints and captions to vclip's formats.

Weights: a PySlowFast checkpoint (.pyth: {"model_state": ...}, OpenAI CLIP's
names under the wrapper's "model." prefix), the user's ONNX export of the
matching OpenAI CLIP image encoder, and that CLIP's own state dict.  The
exporter renamed some weights ("onnx::MatMul_251") and transposed or
reshaped them, so each ONNX weight is matched to its CLIP tensor by value
(as is, transposed or reshaped; by name first where the name survived).
Anything that does not match, or matches twice, is refused with its name:
the export and the state dict must be the same CLIP.  The checkpoint's
tensors then take the matched places.  Output: safetensors named as the ONNX
initializers (for `vclip-run classify --weights`, `patch`, `train --init`)
and/or the ONNX export with the new weights written in.

Captions: the released K400 captions (a torch-saved dict, video id -> caption
or list of captions) become our captions JSONL ({"video": ID, "caption": ...}).

Reads torch's zip format with NumPy (tools/torch_zip.py: no torch needed,
and no code from the files runs).  CLIP state dicts may also be .safetensors
or .npz.

usage: convert_released.py --checkpoint CKPT.pyth --onnx VISUAL.onnx --clip-state CLIP.pt
                           [-o WEIGHTS.safetensors] [--onnx-out PATCHED.onnx]
       convert_released.py --captions CAPTIONS.pt -o captions.jsonl
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_zip  # noqa: E402

PREFIXES = ("module.", "model.")


class ConversionError(Exception):
    pass


def strip(key):
    for p in PREFIXES:
        while key.startswith(p):
            key = key[len(p):]
    return key


def state_dict(obj, path, what):
    """The tensors of a checkpoint or state dict, with the wrapper's prefixes removed."""
    if isinstance(obj, dict) and "model_state" in obj:
        obj = obj["model_state"]
    elif isinstance(obj, dict) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ConversionError(f"{path}: no state dict in this {what} (found {type(obj).__name__})")
    out = {}
    for k, v in obj.items():
        if isinstance(v, np.ndarray):
            out[strip(str(k))] = v
    if not out:
        raise ConversionError(f"{path}: the {what} holds no tensors")
    return out


def load_tensors(path, what):
    if not os.path.exists(path):
        raise ConversionError(f"{path}: no such file")
    if path.endswith(".safetensors"):
        from safetensors.numpy import load_file
        return state_dict(load_file(path), path, what)
    if path.endswith(".npz"):
        return state_dict(dict(np.load(path)), path, what)
    try:
        return state_dict(torch_zip.load(path), path, what)
    except ValueError as e:
        raise ConversionError(str(e)) from None


def same(a, b):
    return a.shape == b.shape and a.dtype.kind == "f" and np.array_equal(a.astype(np.float32), b.astype(np.float32))


def how_equal(onnx_value, clip_value):
    """'as is', 'transposed', 'reshaped', or None."""
    if same(onnx_value, clip_value):
        return "as is"
    if clip_value.ndim == 2 and same(onnx_value, clip_value.T):
        return "transposed"
    if onnx_value.size == clip_value.size and same(onnx_value, clip_value.reshape(onnx_value.shape)):
        return "reshaped"
    return None


def match(onnx_weights, clip):
    """ONNX initializer name -> (CLIP key, how), refusing what does not match once."""
    found, taken = {}, set()
    for name, value in onnx_weights.items():  # names the exporter kept
        if name in clip:
            how = how_equal(value, clip[name])
            if how is None:
                raise ConversionError(f"ONNX weight '{name}' {value.shape} differs from the CLIP state dict's '{name}' "
                                      f"{clip[name].shape}: the export is not of this CLIP")
            found[name] = (name, how)
            taken.add(name)
    for name, value in onnx_weights.items():  # renamed ones: by value
        if name in found:
            continue
        cands = [(k, how_equal(value, v)) for k, v in clip.items() if k not in taken and v.size == value.size]
        cands = [(k, h) for k, h in cands if h]
        if not cands:
            raise ConversionError(f"ONNX weight '{name}' {value.shape}: no tensor of the CLIP state dict equals it (as is, "
                                  "transposed or reshaped): the export is not of this CLIP")
        if len(cands) > 1:
            raise ConversionError(f"ONNX weight '{name}' {value.shape} equals several CLIP tensors "
                                  f"({', '.join(k for k, _ in cands[:5])}): cannot tell which it is")
        found[name] = cands[0]
        taken.add(cands[0][0])
    return found


def onnx_weights(model):
    from onnx import numpy_helper
    out = {}
    for init in model.graph.initializer:
        x = numpy_helper.to_array(init)
        if x.dtype == np.float32 and x.size > 1:  # scalars are the exporter's constants, not weights
            out[init.name] = x
    return out


def convert_weights(ckpt_path, onnx_path, clip_path, out, onnx_out, log=print):
    import onnx
    from onnx import numpy_helper
    if not os.path.exists(onnx_path):
        raise ConversionError(f"{onnx_path}: no such file")
    model = onnx.load(onnx_path)
    weights = onnx_weights(model)
    if not weights:
        raise ConversionError(f"{onnx_path}: no float weights in this model")
    clip = load_tensors(clip_path, "CLIP state dict")
    ckpt = load_tensors(ckpt_path, "checkpoint")
    mapping = match(weights, clip)
    new = {}
    for name, (key, how) in mapping.items():
        if key not in ckpt:
            raise ConversionError(f"{ckpt_path}: no '{key}' (under the wrapper's prefix: 'model.{key}'), which ONNX weight "
                                  f"'{name}' needs: a checkpoint of another model")
        v = ckpt[key].astype(np.float32)
        v = v.T if how == "transposed" else v
        if v.size != weights[name].size:
            raise ConversionError(f"{ckpt_path}: '{key}' has shape {ckpt[key].shape}, the export's '{name}' {weights[name].shape}")
        new[name] = np.ascontiguousarray(v.reshape(weights[name].shape))
    if "logit_scale" in ckpt:  # trained too; our trainer keeps it under this name
        new["logit_scale"] = np.asarray(ckpt["logit_scale"], np.float32).reshape(())
    renamed = sum(1 for n, (k, _) in mapping.items() if n != k)
    log(f"matched {len(mapping)} weights of {onnx_path} ({renamed} renamed by the exporter) to the CLIP state dict")
    if out:
        from safetensors.numpy import save_file
        save_file(new, out, metadata={"source": os.path.basename(ckpt_path)})
        log(f"wrote {out}")
    if onnx_out:
        for init in model.graph.initializer:
            if init.name in new:
                init.CopyFrom(numpy_helper.from_array(new[init.name], init.name))
        onnx.save(model, onnx_out)
        log(f"wrote {onnx_out}")
    return new


def convert_captions(path, out, log=print):
    if not os.path.exists(path):
        raise ConversionError(f"{path}: no such file")
    try:
        obj = torch_zip.load(path)
    except ValueError as e:
        raise ConversionError(str(e)) from None
    if not isinstance(obj, dict) or not obj:
        raise ConversionError(f"{path}: expected a dict of video id -> caption, found {type(obj).__name__}")
    n = 0
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        for video, caps in obj.items():
            if isinstance(caps, str):
                line = {"video": str(video), "caption": caps}
            elif isinstance(caps, (list, tuple)) and caps and all(isinstance(c, str) for c in caps):
                line = {"video": str(video), "captions": list(caps)}
            else:
                raise ConversionError(f"{path}: the caption of '{video}' is not text ({type(caps).__name__})")
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
            n += 1
    os.replace(tmp, out)
    log(f"wrote {n} videos' captions to {out}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__.split("usage:")[0].split("\n", 2)[2])
    ap.add_argument("--checkpoint", help="the released PySlowFast checkpoint (.pyth)")
    ap.add_argument("--onnx", help="your ONNX export of the matching OpenAI CLIP image encoder")
    ap.add_argument("--clip-state", help="that CLIP's state dict (torch.save'd .pt, .safetensors or .npz)")
    ap.add_argument("--onnx-out", help="also write the export with the checkpoint's weights in it")
    ap.add_argument("--captions", help="the released captions (a torch-saved dict)")
    ap.add_argument("-o", "--out", help="WEIGHTS.safetensors, or with --captions the JSONL")
    a = ap.parse_args(argv)
    try:
        if a.captions:
            if not a.out:
                ap.error("--captions needs -o OUT.jsonl")
            convert_captions(a.captions, a.out)
        else:
            if not (a.checkpoint and a.onnx and a.clip_state) or not (a.out or a.onnx_out):
                ap.error("needs --checkpoint, --onnx, --clip-state and -o and/or --onnx-out (or --captions)")
            convert_weights(a.checkpoint, a.onnx, a.clip_state, a.out, a.onnx_out)
    except ConversionError as e:
        print(f"convert_released: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
