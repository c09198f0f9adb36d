"""Reading and writing PyTorch's checkpoint format (torch.save since 1.6: a
zip of data.pkl and one raw file per storage) with NumPy alone.

The reader unpickles with an allow-list: dicts, lists, OrderedDicts, tensors
(_rebuild_tensor_v2 over typed storages) and parameters; any other class
becomes an inert stand-in and no code from the file ever runs, so a
checkpoint from anywhere can be read without torch and without trusting it.
The writer produces what torch.save writes for the same data (used by the
tests to make checkpoints in the released layout; torch.load reads them).
"""
import collections
import io
import pickle
import zipfile

import numpy as np

_STORAGES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16, "BFloat16Storage": "bfloat16",
             "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8,
             "ByteStorage": np.uint8, "BoolStorage": np.bool_}


class _Opaque:
    """Whatever the file pickled that we do not read (optimizer internals, config objects)."""

    def __init__(self, *args, **kwargs):
        self.args = args

    def __setstate__(self, state):
        self.state = state


class _StorageType:
    def __init__(self, name):
        self.name = name


def _rebuild_tensor(storage, offset, size, stride, *_):
    arr, itemsize = storage
    if not size:
        return np.array(arr[offset])
    view = np.lib.stride_tricks.as_strided(arr[offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride))
    return np.array(view)


def _rebuild_parameter(data, *_):
    return data


class _Unpickler(pickle.Unpickler):
    def __init__(self, data, zf, prefix):
        super().__init__(io.BytesIO(data))
        self.zf, self.prefix, self.storages = zf, prefix, {}

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGES:
            return _StorageType(name)
        if (module, name) == ("_codecs", "encode"):
            return lambda s, enc="latin1": s.encode(enc)
        return type(name, (_Opaque,), {})

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        kind, key = pid[1], pid[2]
        if key not in self.storages:
            name = kind.name if isinstance(kind, _StorageType) else "FloatStorage"
            raw = self.zf.read(f"{self.prefix}data/{key}")
            dtype = _STORAGES.get(name)
            if dtype is None:
                raise pickle.UnpicklingError(f"storage type {name} is not supported")
            if dtype == "bfloat16":  # no NumPy bfloat16: widen to float32 exactly
                arr = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
            else:
                arr = np.frombuffer(raw, dtype)
            self.storages[key] = (arr, arr.itemsize)
        return self.storages[key]


def load(path):
    """The object a torch.save file holds, tensors as NumPy arrays."""
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise ValueError(f"{path}: not a zip checkpoint (torch.save's format since PyTorch 1.6); an older one needs torch "
                         "to read it: torch.save(torch.load(OLD), NEW) converts it") from None
    with zf:
        pkl = [n for n in zf.namelist() if n.endswith("data.pkl")]
        if len(pkl) != 1:
            raise ValueError(f"{path}: a zip file, but not a PyTorch checkpoint (no single data.pkl)")
        prefix = pkl[0][: -len("data.pkl")]
        return _Unpickler(zf.read(pkl[0]), zf, prefix).load()


# ---- writing (what torch.save produces) ----

class _Global:
    """Pickles as a reference to module.name without importing it."""

    def __init__(self, module, name):
        self.module, self.name = module, name


class _Tensor:
    def __init__(self, arr):
        self.arr = np.array(arr, order="C")  # (ascontiguousarray would make a 0-d array 1-d)


class _Pickler(pickle._Pickler):  # the pure-Python pickler: it lets us write GLOBAL opcodes for names we never import
    def __init__(self, f, storages):
        super().__init__(f, protocol=2)
        self.storages = storages

    def persistent_id(self, obj):
        if isinstance(obj, tuple) and len(obj) == 2 and obj[0] == "__storage__":
            key, arr = obj[1]
            name = {np.dtype(v): k for k, v in _STORAGES.items() if v != "bfloat16"}[arr.dtype]
            return ("storage", _Global("torch", name), str(key), "cpu", arr.size)
        return None

    def save(self, obj, save_persistent_id=True):
        if isinstance(obj, _Global):
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
            return
        if isinstance(obj, _Tensor):
            key = len(self.storages)
            self.storages.append(obj.arr)
            stride, n = [], 1
            for d in reversed(obj.arr.shape):
                stride.insert(0, n)
                n *= d
            self.save_reduce(_Global("torch._utils", "_rebuild_tensor_v2"),
                             (("__storage__", (key, obj.arr)), 0, tuple(obj.arr.shape), tuple(stride), False,
                              collections.OrderedDict()), obj=obj)
            return
        super().save(obj, save_persistent_id)

    def save_reduce(self, func, args, state=None, listitems=None, dictitems=None, state_setter=None, *, obj=None):
        if isinstance(func, _Global):  # func, args, REDUCE (the stock version insists on a callable)
            self.save(func)
            self.save(args)
            self.write(pickle.REDUCE)
            if obj is not None:
                self.memoize(obj)
            return
        super().save_reduce(func, args, state, listitems, dictitems, state_setter, obj=obj)


def _wrap(obj):
    if isinstance(obj, np.ndarray):
        return _Tensor(obj)
    if isinstance(obj, collections.OrderedDict):
        return collections.OrderedDict((k, _wrap(v)) for k, v in obj.items())
    if isinstance(obj, dict):
        return {k: _wrap(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_wrap(v) for v in obj)
    return obj


def save(obj, path, archive="archive"):
    """obj (dicts, lists, numbers, strings, NumPy arrays as tensors) as torch.save would write it."""
    storages, buf = [], io.BytesIO()
    _Pickler(buf, storages).dump(_wrap(obj))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{archive}/data.pkl", buf.getvalue())
        zf.writestr(f"{archive}/byteorder", "little")
        for i, arr in enumerate(storages):
            zf.writestr(f"{archive}/data/{i}", arr.astype(arr.dtype.newbyteorder("<")).tobytes())
        zf.writestr(f"{archive}/version", "3\n")
