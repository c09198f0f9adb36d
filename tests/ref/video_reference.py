"""A reference implementation of the released loader's test-time sampling and
preprocessing in PyAV + NumPy, written from DESIGN.md §2 and SlowFast's
decoder/transform code (not from our C): torch.linspace and
F.interpolate(bilinear, align_corners=False) are re-implemented in NumPy so
that CI needs no torch.

    frame count  container's nb_frames if stated, else counted by decoding
    span         stride * frames * fps / target_fps
    start        delta * view / views, delta = max(count - span, 0)
    indices      linspace(start, start + span - 1, frames) in float32,
                 clamped to [0, count - 1], truncated
    frames       decoded in presentation order (past the end: the last one),
                 RGB24, turned upright by the display matrix
    spatial      short side to `short_side` (floor of the other), bilinear
                 without antialiasing, then crop (uniform_crop for tests),
                 optional flip, /255, CLIP mean/std
"""
import math

import av
import numpy as np

MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)


def video_info(path):
    with av.open(path) as c:
        s = c.streams.video[0]
        fps = float(s.average_rate or s.guessed_rate or 0)
        n = s.frames
        if n <= 0:
            n = sum(1 for _ in c.decode(video=0))
    return n, fps


def torch_linspace_f32(start, end, steps):
    start, end = np.float32(start), np.float32(end)
    if steps == 1:
        return np.array([start], np.float32)
    step = np.float32((end - start) / np.float32(steps - 1))
    half = steps // 2
    return np.array([start + step * np.float32(i) if i < half else end - step * np.float32(steps - i - 1)
                     for i in range(steps)], np.float32)


def test_indices(n, fps, frames=8, stride=16, target_fps=30, views=3):
    span = stride * frames / target_fps * fps if target_fps and fps else stride * frames
    delta = max(n - span, 0)
    out = []
    for v in range(views):
        start = delta * v / views
        x = torch_linspace_f32(start, start + span - 1, frames)
        out.append(np.clip(x, 0, n - 1).astype(np.int64).tolist())
    return out


def decode(path, indices):
    want = sorted(set(indices))
    got, last = {}, None
    with av.open(path) as c:
        for i, f in enumerate(c.decode(video=0)):
            img = f.to_ndarray(format="rgb24")
            if f.rotation:  # PyAV: degrees counter-clockwise to display upright
                img = np.rot90(img, f.rotation // 90)
            last = img
            if i in want:
                got[i] = img
            if i >= want[-1]:
                break
    out, prev = [], None
    for i in indices:
        prev = got.get(i, prev if prev is not None else last)
        out.append(prev)
    return np.stack(out)


def resized_size(h, w, size):
    if w < h:
        return int(math.floor(h / w * size)), size
    return size, int(math.floor(w / h * size))


def interpolate_bilinear(x, oh, ow):
    """torch.nn.functional.interpolate(x, (oh, ow), mode='bilinear', align_corners=False) on [T, H, W, C]."""
    T, H, W, C = x.shape

    def axis(n_in, n_out):
        scale = np.float32(n_in) / np.float32(n_out)
        src = scale * (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5)
        src = np.maximum(src, 0)
        i0 = src.astype(np.int64)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, (src - i0).astype(np.float32)

    y0, y1, ly = axis(H, oh)
    x0, x1, lx = axis(W, ow)
    top = x[:, y0][:, :, x0] * (1 - lx)[None, None, :, None] + x[:, y0][:, :, x1] * lx[None, None, :, None]
    bot = x[:, y1][:, :, x0] * (1 - lx)[None, None, :, None] + x[:, y1][:, :, x1] * lx[None, None, :, None]
    return top * (1 - ly)[None, :, None, None] + bot * ly[None, :, None, None]


def uniform_crop_offsets(h, w, size, spatial):
    y = int(math.ceil((h - size) / 2))
    x = int(math.ceil((w - size) / 2))
    if h > w:
        y = 0 if spatial == 0 else (h - size if spatial == 2 else y)
    else:
        x = 0 if spatial == 0 else (w - size if spatial == 2 else x)
    return y, x


def preprocess(frames, short_side, crop, y=None, x=None, flip=False, spatial=1):
    """frames uint8 [T, H, W, 3] -> [T, 3, crop, crop] float32."""
    h, w = frames.shape[1:3]
    oh, ow = resized_size(h, w, short_side)
    r = interpolate_bilinear(frames.astype(np.float32), oh, ow)
    if y is None:
        y, x = uniform_crop_offsets(oh, ow, crop, spatial)
    r = r[:, y:y + crop, x:x + crop]
    if flip:
        r = r[:, :, ::-1]
    r = (r / np.float32(255) - MEAN) / STD
    return np.ascontiguousarray(r.transpose(0, 3, 1, 2)).astype(np.float32)


def test_views(path, frames=8, stride=16, views=3, crop=224):
    n, fps = video_info(path)
    idx = test_indices(n, fps, frames, stride, 30, views)
    return idx, np.stack([preprocess(decode(path, i), crop, crop) for i in idx])
