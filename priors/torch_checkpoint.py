"""Read PyTorch checkpoints (state dicts) into numpy arrays without torch.

A ``.pth`` file is a pickle, and unpickling can run arbitrary code, so this module never
calls ``pickle.load``: it uses an Unpickler whose ``find_class`` only hands out the few
globals a plain state dict needs (``collections.OrderedDict``, the tensor rebuild function
and the typed storage classes), mapped to local stand-ins; anything else raises
``UnsafeCheckpointError`` before it can be called.

Two on-disk formats are handled:

* zip (``torch.save`` since 1.6): ``<prefix>/data.pkl`` plus one raw file per storage at
  ``<prefix>/data/<key>``; the prefix is the archive name chosen at save time.
* legacy (before 1.6; the EfficientNet-Lite0 file shipped on PyPI uses it): a stream of
  pickles -- magic number, protocol version, sys info, the state dict, the list of storage
  keys -- followed by each storage as an int64 element count and its raw bytes.
"""

from __future__ import annotations

import collections
import functools
import io
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["CheckpointFormatError", "UnsafeCheckpointError", "load_torch_state_dict"]

# Constants of torch/serialization.py's legacy format.
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

# Typed storage classes a state dict may name, and the numpy dtype of their elements.
# Integer storages are needed too: BatchNorm's ``num_batches_tracked`` is a LongStorage.
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class UnsafeCheckpointError(Exception):
    """The checkpoint's pickle references a global outside the allow-list."""


class CheckpointFormatError(ValueError):
    """The file is not a checkpoint layout this reader understands, or is inconsistent."""


@dataclass(frozen=True)
class _StorageType:
    """Stand-in for ``torch.FloatStorage`` etc.: only its element dtype matters."""

    name: str
    dtype: type


class _Storage:
    """One storage named by a persistent id; its data may only arrive after unpickling."""

    def __init__(self, key: str, dtype: type, numel: int):
        self.key, self.dtype, self.numel = key, np.dtype(dtype), int(numel)
        self.array: np.ndarray | None = None
        self.parent: tuple[_Storage, int] | None = None  # legacy views: (root, offset)


@dataclass
class _PendingTensor:
    """What ``_rebuild_tensor_v2`` returns: a strided view to cut once storage data is in."""

    storage: _Storage
    offset: int
    size: tuple
    stride: tuple


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    # Same signature as torch._utils._rebuild_tensor_v2; hooks/metadata are irrelevant here.
    if not isinstance(storage, _Storage):
        raise CheckpointFormatError("tensor rebuilt from something that is not a storage")
    return _PendingTensor(storage, int(storage_offset), tuple(size), tuple(stride))


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the allow-listed globals, to local stand-ins."""

    def __init__(self, file, source: str, storages: dict[str, _Storage]):
        super().__init__(file)
        self._source = source
        self._storages = storages

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            # A fresh wrapper per lookup: a BUILD opcode aimed at it cannot alter the
            # module-level function for later loads.
            return functools.partial(_rebuild_tensor_v2)
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name, _STORAGE_DTYPES[name])
        raise UnsafeCheckpointError(
            f"{self._source}: refusing to load global '{module}.{name}' "
            "(only plain tensor state dicts are allowed)")

    def persistent_load(self, pid):
        # torch's ids: ('storage', type, key, location, numel) in the zip format, with a
        # trailing view_metadata (None, or (view_key, offset, size)) in the legacy one.
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise CheckpointFormatError(f"{self._source}: unexpected persistent id {pid!r}")
        _, stype, key, _location, numel = pid[:5]
        # Take the dtype from the allow-list by name, not from the (mutable) stand-in.
        dtype = _STORAGE_DTYPES.get(getattr(stype, "name", None))
        if not isinstance(stype, _StorageType) or dtype is None:
            raise CheckpointFormatError(f"{self._source}: storage of unknown type {stype!r}")
        storage = self._storages.setdefault(str(key), _Storage(str(key), dtype, int(numel)))
        if len(pid) == 6 and pid[5] is not None:
            return self._legacy_view(storage, pid[5])
        return storage

    def _legacy_view(self, root: _Storage, view_metadata) -> _Storage:
        # Legacy files may name a slice of a root storage; model it as a pending storage
        # whose array is filled from the root's after the data has been read.
        view_key, offset, size = view_metadata
        view = self._storages.setdefault(
            str(view_key), _Storage(str(view_key), root.dtype, int(size)))
        view.parent = (root, int(offset))
        return view


def _unpickle(data: bytes, source: str, storages: dict[str, _Storage]):
    return _RestrictedUnpickler(io.BytesIO(data), source, storages).load()


def _materialize(t: _PendingTensor, source: str, name: str) -> np.ndarray:
    """Cut the tensor's strided view out of its storage, refusing out-of-bounds strides."""
    flat = t.storage.array
    if flat is None:
        raise CheckpointFormatError(f"{source}: no data for storage {t.storage.key} ({name})")
    if any(s < 0 for s in t.size) or any(s < 0 for s in t.stride) or t.offset < 0:
        raise CheckpointFormatError(f"{source}: negative size/stride/offset in {name}")
    if len(t.size) != len(t.stride):
        raise CheckpointFormatError(f"{source}: size/stride rank mismatch in {name}")
    if 0 in t.size:
        return np.zeros(t.size, dtype=flat.dtype)
    # as_strided does no bounds checking, so a hostile file could otherwise read past the
    # buffer: check that the furthest element addressed lies inside the storage.
    last = t.offset + sum((n - 1) * s for n, s in zip(t.size, t.stride))
    if last >= flat.size:
        raise CheckpointFormatError(f"{source}: {name} reaches past the end of its storage")
    base = flat[t.offset:]
    view = np.lib.stride_tricks.as_strided(
        base, shape=t.size, strides=[s * flat.itemsize for s in t.stride], writeable=False)
    return np.array(view, dtype=flat.dtype.newbyteorder("="), order="C", copy=True)


def _read_storage(raw: bytes, storage: _Storage, byteorder: str, source: str) -> np.ndarray:
    dtype = storage.dtype.newbyteorder(byteorder)
    if len(raw) != storage.numel * dtype.itemsize:
        raise CheckpointFormatError(
            f"{source}: storage {storage.key} has {len(raw)} bytes, expected "
            f"{storage.numel} x {dtype.itemsize}")
    return np.frombuffer(raw, dtype=dtype)


def _load_zip(path: Path, source: str):
    storages: dict[str, _Storage] = {}
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkls = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkls) != 1:
            raise CheckpointFormatError(f"{source}: expected one <prefix>/data.pkl, got {pkls}")
        prefix = pkls[0][: -len("data.pkl")]
        byteorder = "<"
        if prefix + "byteorder" in names:  # absent in files from before torch 1.13: little
            byteorder = "<" if zf.read(prefix + "byteorder").strip() == b"little" else ">"
        result = _unpickle(zf.read(pkls[0]), source, storages)
        for storage in storages.values():
            storage.array = _read_storage(
                zf.read(f"{prefix}data/{storage.key}"), storage, byteorder, source)
    return result


def _load_legacy(path: Path, source: str):
    storages: dict[str, _Storage] = {}
    with open(path, "rb") as f:
        # Every pickle in the stream goes through the restricted unpickler.
        def next_pickle():
            return _RestrictedUnpickler(f, source, storages).load()

        if next_pickle() != _LEGACY_MAGIC:
            raise CheckpointFormatError(f"{source}: not a PyTorch checkpoint (bad magic number)")
        if next_pickle() != _LEGACY_PROTOCOL:
            raise CheckpointFormatError(f"{source}: unsupported legacy protocol version")
        sys_info = next_pickle()
        if not isinstance(sys_info, dict):
            raise CheckpointFormatError(f"{source}: malformed legacy header")
        byteorder = "<" if sys_info.get("little_endian", True) else ">"
        result = next_pickle()
        keys = next_pickle()
        for key in keys:
            storage = storages[str(key)]
            numel = int(np.frombuffer(f.read(8), dtype=byteorder + "i8")[0])
            if numel != storage.numel:
                raise CheckpointFormatError(f"{source}: storage {key} size mismatch")
            storage.array = _read_storage(
                f.read(numel * storage.dtype.itemsize), storage, byteorder, source)
    for storage in storages.values():  # views of root storages (legacy only)
        if storage.parent is not None and storage.array is None:
            root, offset = storage.parent
            storage.array = root.array[offset:offset + storage.numel]
    return result


def load_torch_state_dict(path) -> dict[str, np.ndarray]:
    """Load a PyTorch state dict file as ``{name: ndarray}`` without importing torch.

    Float tensors come back as float32 (or their own float dtype), integer buffers such as
    ``num_batches_tracked`` as integers. Raises ``UnsafeCheckpointError`` if the pickle
    names any global outside the allow-list, ``CheckpointFormatError`` if the file is not a
    flat tensor state dict in the zip or legacy format.
    """
    path = Path(path)
    source = str(path)
    try:
        return _load(path, source)
    except (CheckpointFormatError, UnsafeCheckpointError):
        raise
    except Exception as err:   # noqa: BLE001 -- a damaged file fails zipfile or the unpickler in many ways
        message = " ".join(str(err).split())[:120]
        raise CheckpointFormatError(f"{source}: not a readable PyTorch checkpoint ({type(err).__name__}: "
                                    f"{message})") from None


def _load(path: Path, source: str) -> dict[str, np.ndarray]:
    loader = _load_zip if zipfile.is_zipfile(path) else _load_legacy
    result = loader(path, source)
    if not isinstance(result, dict):
        raise CheckpointFormatError(f"{source}: top-level object is {type(result).__name__}, "
                                    "expected a state dict")
    out = {}
    for name, value in result.items():
        if not isinstance(value, _PendingTensor):
            raise CheckpointFormatError(f"{source}: entry {' '.join(repr(name).split())[:80]} is not a tensor")
        out[str(name)] = _materialize(value, source, str(name))
    return out
