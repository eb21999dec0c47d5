"""Tests for priors.torch_checkpoint: torch-free, restricted loading of .pth state dicts.

Checkpoints are written by hand in both layouts torch uses (zip since torch 1.6, and the
legacy pickle stream the shipped EfficientNet-Lite0 file uses), since torch is not installed.
"""

import builtins
import collections
import io
import os
import pickle
import struct
import subprocess
import zipfile
from typing import ClassVar

import numpy as np
import pytest

from priors.efficientnet_lite0 import checkpoint_path
from priors.torch_checkpoint import (
    CheckpointFormatError,
    UnsafeCheckpointError,
    load_torch_state_dict,
)

# --- writing torch-style checkpoints without torch ---------------------------------------

class _Global:
    """Stands for a torch global (e.g. torch.FloatStorage) that is pickled by name only."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):  # save_reduce insists that the reduce callable be callable
        raise AssertionError("stub globals are never called")


class _Storage:
    def __init__(self, key, array, type_name, view=None):
        self.key, self.array, self.type_name = key, np.ascontiguousarray(array).ravel(), type_name
        self.view = view  # legacy only: (view_key, offset, numel) slice of this storage

    def pid(self, legacy):
        pid = ("storage", _Global("torch", self.type_name), self.key, "cpu", self.array.size)
        return pid + (self.view,) if legacy else pid  # legacy ids carry view_metadata


class _Tensor:
    """Pickles like torch.Tensor: _rebuild_tensor_v2(storage, offset, size, stride, ...)."""

    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, tuple(size), tuple(stride))

    def __reduce__(self):
        return (_Global("torch._utils", "_rebuild_tensor_v2"),
                self.args + (False, collections.OrderedDict()))


class _TorchStylePickler(pickle._Pickler):
    """Writes _Global stubs as GLOBAL opcodes (the C pickler would try to import torch)
    and storages as persistent ids, the way torch.save does."""

    dispatch: ClassVar[dict] = dict(pickle._Pickler.dispatch)

    def __init__(self, file, legacy):
        super().__init__(file, protocol=2)
        self.legacy = legacy

    def _save_stub_global(self, obj):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    dispatch[_Global] = _save_stub_global

    def persistent_id(self, obj):
        return obj.pid(self.legacy) if isinstance(obj, _Storage) else None


def _torch_pickle(obj, legacy=False):
    buf = io.BytesIO()
    _TorchStylePickler(buf, legacy).dump(obj)
    return buf.getvalue()


def _write_zip(path, pkl, storages, prefix="archive"):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{prefix}/data.pkl", pkl)
        zf.writestr(f"{prefix}/byteorder", "little")
        for s in storages:
            zf.writestr(f"{prefix}/data/{s.key}", s.array.tobytes())
        zf.writestr(f"{prefix}/version", "3\n")


def _write_legacy(path, pkl, storages):
    header = [0x1950A86A20F9469CFC6C, 1001,
              {"protocol_version": 1001, "little_endian": True,
               "type_sizes": {"short": 2, "int": 4, "long": 4}}]
    with open(path, "wb") as f:
        for obj in header:
            f.write(pickle.dumps(obj, protocol=2))
        f.write(pkl)
        f.write(pickle.dumps([s.key for s in storages], protocol=2))
        for s in storages:
            f.write(struct.pack("<q", s.array.size) + s.array.tobytes())


def _write(path, fmt, state, storages):
    legacy = fmt == "legacy"
    pkl = _torch_pickle(state, legacy=legacy)
    if legacy:
        _write_legacy(path, pkl, storages)
    else:
        _write_zip(path, pkl, storages, prefix="some_model_name")
    return path


# --- tests ---------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_round_trip_of_hand_written_checkpoint(tmp_path, fmt):
    rng = np.random.default_rng(0)
    conv = rng.normal(size=(4, 3, 2, 2)).astype(np.float32)
    shared = rng.normal(size=(20,)).astype(np.float32)
    steps = np.array([7], dtype=np.int64)
    s_conv = _Storage("0", conv, "FloatStorage")
    s_shared = _Storage("1", shared, "FloatStorage")
    s_steps = _Storage("2", steps, "LongStorage")
    state = collections.OrderedDict([
        ("conv.weight", _Tensor(s_conv, 0, conv.shape, (12, 4, 2, 1))),
        # A transposed (non-contiguous) view at an offset into a storage shared by two tensors.
        ("fc.weight", _Tensor(s_shared, 2, (3, 4), (1, 3))),
        ("fc.bias", _Tensor(s_shared, 14, (3,), (1,))),
        ("bn.num_batches_tracked", _Tensor(s_steps, 0, (), ())),
    ])
    path = _write(tmp_path / f"tiny_{fmt}.pth", fmt, state, [s_conv, s_shared, s_steps])

    out = load_torch_state_dict(path)

    assert list(out) == list(state)
    np.testing.assert_array_equal(out["conv.weight"], conv)
    np.testing.assert_array_equal(out["fc.weight"], shared[2:14].reshape(4, 3).T)
    np.testing.assert_array_equal(out["fc.bias"], shared[14:17])
    assert out["conv.weight"].dtype == np.float32 and out["fc.weight"].flags["C_CONTIGUOUS"]
    assert out["bn.num_batches_tracked"].dtype == np.int64
    assert out["bn.num_batches_tracked"].shape == () and out["bn.num_batches_tracked"] == 7


def test_legacy_storage_views(tmp_path):
    # Old torch wrote tensors on a slice of a storage as (view_key, offset, numel) metadata.
    data = np.arange(10, dtype=np.float32)
    root = _Storage("0", data, "FloatStorage")
    view = _Storage("0", data, "FloatStorage", view=("0_view", 4, 6))
    state = collections.OrderedDict(
        whole=_Tensor(root, 0, (10,), (1,)), part=_Tensor(view, 1, (2, 2), (2, 1)))
    path = _write(tmp_path / "views.pth", "legacy", state, [root])
    out = load_torch_state_dict(path)
    np.testing.assert_array_equal(out["whole"], data)
    np.testing.assert_array_equal(out["part"], data[4:][1:5].reshape(2, 2))


class _Payload:
    """A classic pickle exploit: unpickling calls func(*args)."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _payloads(marker):
    return {
        "os.system": _Payload(os.system, (f"touch {marker}",)),
        "builtins.eval": _Payload(builtins.eval, (f"open({str(marker)!r}, 'w').close()",)),
        "subprocess.Popen": _Payload(subprocess.Popen, (["touch", str(marker)],)),
    }


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
@pytest.mark.parametrize("kind", ["os.system", "builtins.eval", "subprocess.Popen"])
def test_malicious_checkpoint_is_refused(tmp_path, fmt, kind):
    marker = tmp_path / "pwned"
    payload = _payloads(marker)[kind]
    state = collections.OrderedDict(weight=payload)
    pkl = pickle.dumps(state, protocol=2)  # real globals, as an attacker's file would hold
    path = tmp_path / f"evil_{fmt}.pth"
    (_write_legacy if fmt == "legacy" else _write_zip)(path, pkl, [])

    with pytest.raises(UnsafeCheckpointError) as err:
        load_torch_state_dict(path)

    assert not marker.exists()
    # The message names the file and the refused global (os.system pickles as posix.system,
    # builtins as __builtin__ under protocol 2, hence only the attribute name is checked).
    assert f".{kind.split('.')[1]}'" in str(err.value) and str(path) in str(err.value)


def test_malicious_payload_is_live_under_plain_pickle(tmp_path):
    # Control for the test above: the same payload does run under an unrestricted
    # unpickler, so "marker absent" there really means the loader stopped it.
    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps(_payloads(marker)["builtins.eval"], protocol=2))
    assert marker.exists()


def test_strides_past_the_storage_are_refused(tmp_path):
    # as_strided does no bounds checks; a crafted stride must not read foreign memory.
    s = _Storage("0", np.zeros(6, np.float32), "FloatStorage")
    state = collections.OrderedDict(w=_Tensor(s, 0, (2, 3), (1000, 1)))
    path = _write(tmp_path / "oob.pth", "zip", state, [s])
    with pytest.raises(CheckpointFormatError, match="past the end"):
        load_torch_state_dict(path)


def test_non_tensor_values_are_refused(tmp_path):
    path = _write(tmp_path / "plain.pth", "zip", {"epoch": 3}, [])
    with pytest.raises(CheckpointFormatError, match="not a tensor"):
        load_torch_state_dict(path)


def test_shipped_efficientnet_lite0_checkpoint_loads():
    state = load_torch_state_dict(checkpoint_path())
    # 16 MBConv blocks: 15 with expand conv + 3 BNs, block 0 with 2 BNs; stem, head, fc.
    assert len(state) == 296
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_conv_stem.weight"].dtype == np.float32
    assert state["_fc.weight"].shape == (1000, 1280)
    assert state["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert all(v.flags["C_CONTIGUOUS"] for v in state.values())
    assert np.isfinite(state["_bn1.running_var"]).all() and (state["_bn1.running_var"] > 0).all()
