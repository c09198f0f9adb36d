"""vclip from Python: a thin binding over the C library (include/vclip.h).

    import vclip
    model = vclip.compile("visual.onnx", frames=8)         # an image encoder made VCLIP's video encoder
    (features,) = model(vclip.load_video("clip.mp4", size=224))
    tokens = vclip.tokenize(["a video of a dog"])
    probs = vclip.classify(["clip.mp4"], ["dog", "cat"], visual="visual.onnx", text_model="text.onnx")

Arrays go in and come out as NumPy arrays (float32 and int64).  Errors are
raised as vclip.Error carrying the library's message (a bad argument's type
as TypeError).  The library runs without the GIL: other Python threads keep
running during a model run, a video's decoding or a classification.
"""
import ctypes
import os

import numpy as np

__all__ = ["Error", "Model", "Classifier", "compile", "tokenize", "load_video", "class_features", "classify", "version"]

_HERE = os.path.dirname(os.path.abspath(__file__))


def _load_library():
    path = os.environ.get("VCLIP_LIBRARY") or os.path.join(_HERE, "libvclip.so")
    try:
        return ctypes.CDLL(path)  # CDLL (not PyDLL): every call releases the GIL
    except OSError as e:
        raise ImportError(f"vclip: cannot load the C library {path}: {e}") from None


_lib = _load_library()


class Error(RuntimeError):
    """A failure the library reported, with its message."""


class _Tensor(ctypes.Structure):
    _fields_ = [("dtype", ctypes.c_int), ("rank", ctypes.c_int), ("dims", ctypes.c_int64 * 8), ("data", ctypes.c_void_p)]


class _Options(ctypes.Structure):
    _fields_ = [("target", ctypes.c_char_p), ("precision", ctypes.c_char_p), ("threads", ctypes.c_int),
                ("frames", ctypes.c_int), ("window", ctypes.c_int)]


_FLOAT32, _INT64 = 1, 7
_DTYPES = {_FLOAT32: np.float32, _INT64: np.int64}
_P, _I, _S, _T = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(_Tensor)
for name, res, args in [
    ("vclip_version", _S, []), ("vclip_last_error", _S, []), ("vclip_tensor_free", None, [_T]),
    ("vclip_model_load", _P, [_S, ctypes.POINTER(_Options)]), ("vclip_model_free", None, [_P]),
    ("vclip_model_num_inputs", _I, [_P]), ("vclip_model_num_outputs", _I, [_P]),
    ("vclip_model_input_name", _S, [_P, _I]), ("vclip_model_output_name", _S, [_P, _I]),
    ("vclip_model_run", _I, [_P, _T, _I, _T, _I]), ("vclip_load_video", _I, [_S, _I, _I, _I, _T]),
    ("vclip_tokenize", _I, [ctypes.POINTER(_S), _I, _T]),
    ("vclip_classifier_open", _P, [_S, _S, _S, ctypes.POINTER(_Options)]), ("vclip_classifier_free", None, [_P]),
    ("vclip_class_features", _I, [_P, ctypes.POINTER(_S), _I, _T]),
    ("vclip_classifier_set_classes", _I, [_P, ctypes.POINTER(_S), _I]),
    ("vclip_classify", _I, [_P, _S, ctypes.POINTER(ctypes.c_float)]),
]:
    fn = getattr(_lib, name)
    fn.restype, fn.argtypes = res, args


def version():
    return _lib.vclip_version().decode()


def _fail():
    raise Error(_lib.vclip_last_error().decode(errors="replace"))


def _path(p, what):
    if not isinstance(p, (str, bytes, os.PathLike)):
        raise TypeError(f"{what}: a path expected, not {type(p).__name__}")
    return os.fsencode(p)


def _options(target, precision, threads, frames, window):
    return _Options(target.encode() if target else None, precision.encode() if precision else None, int(threads), int(frames),
                    int(window))


def _strings(items, what):
    if isinstance(items, (str, bytes)):
        raise TypeError(f"{what}: a list of strings expected, not one string")
    items = list(items)
    for i, s in enumerate(items):
        if not isinstance(s, str):
            raise TypeError(f"{what}: item {i} is {type(s).__name__}, not str")
    arr = (_S * max(len(items), 1))(*[s.encode() for s in items])
    return arr, len(items)


def _take(t):
    """A library tensor as a NumPy array (copied), then freed."""
    try:
        dtype = _DTYPES[t.dtype]
        shape = tuple(t.dims[i] for i in range(t.rank))
        n = int(np.prod(shape, dtype=np.int64))
        if n == 0:
            return np.zeros(shape, dtype)
        buf = (ctypes.c_char * (n * np.dtype(dtype).itemsize)).from_address(t.data)
        return np.frombuffer(buf, dtype=dtype).reshape(shape).copy()
    finally:
        _lib.vclip_tensor_free(ctypes.byref(t))


class Model:
    """A compiled model (vclip.compile).  Call it with arrays by position or by input name."""

    def __init__(self, handle):
        self._h = handle
        self.inputs = [_lib.vclip_model_input_name(handle, i).decode() for i in range(_lib.vclip_model_num_inputs(handle))]
        self.outputs = [_lib.vclip_model_output_name(handle, i).decode() for i in range(_lib.vclip_model_num_outputs(handle))]

    def __call__(self, *arrays, **named):
        if self._h is None:
            raise Error("the model was closed")
        if arrays and named:
            raise TypeError("give the inputs by position or by name, not both")
        if named:
            unknown = set(named) - set(self.inputs)
            if unknown:
                raise TypeError(f"no input named {sorted(unknown)[0]!r}; the inputs are {self.inputs}")
            missing = [n for n in self.inputs if n not in named]
            if missing:
                raise TypeError(f"input {missing[0]!r} is missing")
            arrays = [named[n] for n in self.inputs]
        if len(arrays) != len(self.inputs):
            raise TypeError(f"the model takes {len(self.inputs)} inputs ({', '.join(self.inputs)}), {len(arrays)} given")
        keep, ins = [], (_Tensor * max(len(arrays), 1))()
        for i, a in enumerate(arrays):
            if not isinstance(a, np.ndarray):
                raise TypeError(f"input {self.inputs[i]!r}: a NumPy array expected, not {type(a).__name__}")
            if a.dtype not in (np.float32, np.int64):
                raise TypeError(f"input {self.inputs[i]!r}: {a.dtype} array; vclip takes float32 or int64 "
                                "(convert it with .astype(np.float32) or .astype(np.int64))")
            if a.ndim > 8:
                raise TypeError(f"input {self.inputs[i]!r}: rank {a.ndim}, at most 8")
            a = np.ascontiguousarray(a)
            keep.append(a)
            ins[i].dtype = _FLOAT32 if a.dtype == np.float32 else _INT64
            ins[i].rank = a.ndim
            for d, n in enumerate(a.shape):
                ins[i].dims[d] = n
            ins[i].data = a.ctypes.data
        outs = (_Tensor * max(len(self.outputs), 1))()
        if _lib.vclip_model_run(self._h, ins, len(arrays), outs, len(self.outputs)):
            _fail()
        return [_take(outs[i]) for i in range(len(self.outputs))]

    def close(self):
        if self._h is not None:
            _lib.vclip_model_free(self._h)
            self._h = None

    def __del__(self):
        self.close()


def compile(path, *, target="cpu", precision="auto", threads=0, frames=0, window=1):
    """Compile an ONNX model (a CLIP export or a model vclipc wrote).  frames > 0 makes an image encoder VCLIP's
    video encoder over that many frames, attending over frames t-window..t+window.  precision "auto" (the default)
    is bf16 where the CPU multiplies bf16 natively (AVX512-BF16, AMX) and fp32 elsewhere; "fp32" for exact work."""
    h = _lib.vclip_model_load(_path(path, "path"), ctypes.byref(_options(target, precision, threads, frames, window)))
    if not h:
        _fail()
    return Model(h)


def tokenize(texts):
    """CLIP's BPE tokens of each text: int64 [len(texts), 77]."""
    arr, n = _strings(texts, "texts")
    if n == 0:
        raise Error("no texts")
    t = _Tensor()
    if _lib.vclip_tokenize(arr, n, ctypes.byref(t)):
        _fail()
    return _take(t)


def load_video(path, *, frames=8, size=224, views=3):
    """A video's test views as a model sees them: float32 [views, frames, 3, size, size]."""
    t = _Tensor()
    if _lib.vclip_load_video(_path(path, "path"), int(frames), int(size), int(views), ctypes.byref(t)):
        _fail()
    return _take(t)


class Classifier:
    """Zero-shot video classification: a video encoder (an image encoder made temporal, a VCLIP encoder, or an image
    encoder with trained weights) and a text encoder."""

    def __init__(self, visual, text_model, *, weights=None, frames=8, window=1, target="cpu", precision="auto", threads=0):
        w = _path(weights, "weights") if weights is not None else None
        self._h = _lib.vclip_classifier_open(_path(visual, "visual"), w, _path(text_model, "text_model"),
                                             ctypes.byref(_options(target, precision, threads, frames, window)))
        if not self._h:
            _fail()
        self._classes = None

    def class_features(self, names):
        """float32 [len(names), D], unit rows, from the 28-template prompt ensemble."""
        arr, n = _strings(names, "names")
        t = _Tensor()
        if _lib.vclip_class_features(self._h, arr, n, ctypes.byref(t)):
            _fail()
        return _take(t)

    def classify(self, video, classes):
        """The video's probabilities over classes (float32 [len(classes)]): 3 test views, logits averaged over frames
        and views, softmax."""
        classes = list(classes) if not isinstance(classes, (str, bytes)) else classes
        if classes != self._classes:
            arr, n = _strings(classes, "classes")
            if _lib.vclip_classifier_set_classes(self._h, arr, n):
                _fail()
            self._classes = classes
        probs = np.zeros(len(classes), np.float32)
        if _lib.vclip_classify(self._h, _path(video, "video"), probs.ctypes.data_as(ctypes.POINTER(ctypes.c_float))):
            _fail()
        return probs

    def close(self):
        if getattr(self, "_h", None):
            _lib.vclip_classifier_free(self._h)
            self._h = None

    def __del__(self):
        self.close()


def class_features(names, *, visual, text_model, **options):
    """Class features of names with this visual/text pair (see Classifier)."""
    return Classifier(visual, text_model, **options).class_features(names)


def classify(videos, classes, *, visual, text_model, weights=None, **options):
    """Probabilities over classes for each video: float32 [len(videos), len(classes)].  A video that cannot be read
    raises vclip.Error naming it."""
    c = Classifier(visual, text_model, weights=weights, **options)
    if isinstance(videos, (str, bytes, os.PathLike)):
        videos = [videos]
    return np.stack([c.classify(v, classes) for v in videos]) if videos else np.zeros((0, len(classes)), np.float32)
