"""The wire format: exact round trips for plain data, handles for the rest, and a strict decoder."""

from __future__ import annotations

import io
import json
import math
import pickle
from collections import OrderedDict, namedtuple

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.sandbox import protocol
from grader.sandbox.protocol import Handle, ProtocolError, pack, unpack


class Registry:
    def __init__(self):
        self.objects = {}

    def to_handle(self, obj):
        self.objects[id(obj)] = obj
        return Handle(id(obj), type(obj).__qualname__)

    def from_handle(self, handle):
        return ("HANDLE", handle.id, handle.type)


def roundtrip(value):
    registry = Registry()
    return unpack(pack({"v": value}, registry.to_handle), registry.from_handle)["v"], registry


Point = namedtuple("Point", "x y")


def test_plain_values_roundtrip_exactly():
    values = [None, True, False, 0, -5, 2**70, 1.5, "text", "", [1, [2, (3, 4)]], (1,), {"a": 1, (1, 2): "t"},
              b"\x00bytes", 2 + 3j, slice(1, None, 2), Ellipsis, {1, 2}, frozenset({3}), torch.float16,
              torch.device("cpu")]
    for value in values:
        got, _ = roundtrip(value)
        assert got == value and type(got) is type(value), value


def test_non_finite_floats_and_containers_of_other_names():
    got, _ = roundtrip([math.nan, math.inf, -math.inf])
    assert math.isnan(got[0]) and got[1:] == [math.inf, -math.inf]
    got, _ = roundtrip(OrderedDict(b=1, a=2))
    assert got == {"b": 1, "a": 2} and list(got) == ["b", "a"] and type(got) is dict
    got, _ = roundtrip(Point(1, 2))
    assert got == (1, 2) and type(got) is tuple
    got, _ = roundtrip(torch.Size([2, 3]))
    assert got == (2, 3)


def test_tensors_arrays_and_views():
    base = torch.arange(1000.0)
    view = base[10:13]
    got, _ = roundtrip({"view": view, "int": torch.tensor([1, 2], dtype=torch.int64), "bool": torch.tensor([True]),
                        "param": torch.nn.Parameter(torch.ones(2)), "grad": torch.ones(2, requires_grad=True),
                        "nc": torch.arange(6.0).reshape(2, 3).t(), "array": np.arange(4, dtype=np.float32),
                        "scalar": np.float64(2.5)})
    assert torch.equal(got["view"], view) and got["view"].untyped_storage().nbytes() == 12
    assert got["int"].dtype == torch.int64 and got["bool"].dtype == torch.bool
    assert type(got["param"]) is torch.Tensor and got["param"].requires_grad
    assert got["grad"].requires_grad and torch.equal(got["nc"], torch.arange(6.0).reshape(2, 3).t())
    assert isinstance(got["array"], np.ndarray) and got["array"].dtype == np.float32
    assert got["scalar"] == 2.5


@pytest.mark.parametrize("dtype", sorted(protocol.RAW_DTYPES))
def test_every_raw_dtype_roundtrips_with_its_shape_and_owns_its_memory(dtype):
    dtype = getattr(torch, dtype)
    source = (torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(0)) * 50).to(dtype)
    values = {"full": source, "scalar": source[0, 0, 0].clone(), "empty": source[:, :0], "strided": source[:, ::2],
              "conj": source.conj() if source.is_complex() else source, "neg": -source if dtype != torch.bool else source}
    frame = bytearray(pack({"v": values}, Registry().to_handle))  # writable, as the worker reads it
    got = unpack(frame, Registry().from_handle)["v"]
    for key, value in values.items():
        assert got[key].dtype == dtype and got[key].shape == value.shape, key
        assert torch.equal(got[key], value.resolve_conj().resolve_neg()), key
    got["full"].zero_()  # not a view of the frame: decoded again, the frame still holds the source
    assert torch.equal(unpack(frame, Registry().from_handle)["v"]["full"], source)


def test_a_raw_bool_tensor_holds_only_true_and_false():
    got = unpack(_frame({"$": "tensor", "blob": 0, "dtype": "bool", "shape": [3]}, [b"\x00\x02\xff"]), lambda h: h)
    assert got.tolist() == [False, True, True] and got.view(torch.uint8).tolist() == [0, 1, 1]


def test_pack_parts_sends_a_tensor_without_copying_it():
    tensor = torch.arange(1000.0)
    parts = protocol.pack_parts({"v": tensor}, Registry().to_handle)
    (blob,) = [part for part in parts if isinstance(part, memoryview)]
    tensor[0] = 7.0  # the attachment is the tensor's own memory
    assert np.frombuffer(blob, dtype=np.float32)[0] == 7.0
    assert b"".join(parts) == pack({"v": tensor}, Registry().to_handle)


def test_write_frame_writes_the_pieces_and_lets_them_go():
    parts = protocol.pack_parts({"v": torch.ones(4), "empty": torch.empty(0)}, Registry().to_handle)
    assert all(len(part) for part in parts)  # a writer never waits on an empty piece
    assert torch.equal(unpack(b"".join(parts), Registry().from_handle)["empty"], torch.empty(0))
    whole = b"".join(parts)
    written = []
    protocol.write_frame(written.append, parts)
    assert parts == [] and b"".join(written) == protocol._OUTER.pack(len(whole)) + whole


def test_objects_that_are_not_plain_data_become_handles():
    class LyingList(list):
        def __eq__(self, other):
            return True

    class Sub(torch.Tensor):
        pass

    class Int(int):
        pass

    values = [torch.nn.Linear(2, 2), LyingList([1]), torch.ones(2).as_subclass(Sub), Int(3), len,
              np.array([object()], dtype=object)]
    got, registry = roundtrip(values)
    assert all(isinstance(v, tuple) and v[0] == "HANDLE" for v in got), got
    assert [v[2] for v in got][:4] == ["Linear", "test_objects_that_are_not_plain_data_become_handles.<locals>.LyingList",
                                       "test_objects_that_are_not_plain_data_become_handles.<locals>.Sub",
                                       "test_objects_that_are_not_plain_data_become_handles.<locals>.Int"]


def _frame(tree, blobs=()):
    text = json.dumps(tree).encode()
    parts = [protocol._HEADER.pack(protocol.MAGIC, len(text), len(blobs)), text]
    for blob in blobs:
        parts += [protocol._BLOB_LEN.pack(len(blob)), blob]
    return b"".join(parts)


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


@pytest.mark.parametrize(("frame", "message"), [
    (b"short", "frame too short"),
    (b"XXXX" + b"\x00" * 8, "bad magic"),
    (_frame({"$": "unknown"}), "unknown tag"),
    (_frame({"$": "tensor", "blob": 3}), "bad attachment index"),
    (_frame({"$": "tensor", "blob": 0}, [pickle.dumps(Evil())]), "unreadable tensor"),
    (_frame({"$": "ndarray", "blob": 0}, [b"not npy"]), "unreadable array"),
    (_frame({"$": "handle", "id": "1", "type": "x"}), "malformed handle"),
    (_frame({"$": "dtype", "v": "Tensor"}), "unknown dtype"),
    (_frame({"$": "dict", "v": [[[1], 2]]}), "unhashable dict key"),
    (_frame({"$": "float", "v": "1e400"}), "bad float"),
    (_frame({"x": 1}) + b"trailing", "trailing bytes"),
    (_frame({"$": "tensor", "blob": 0, "dtype": "object", "shape": [1]}, [b"x"]), "unknown tensor dtype"),
    (_frame({"$": "tensor", "blob": 0, "dtype": "float32", "shape": [-1]}, [b""]), "bad tensor shape"),
    (_frame({"$": "tensor", "blob": 0, "dtype": "float32", "shape": [True]}, [b"xxxx"]), "bad tensor shape"),
    (_frame({"$": "tensor", "blob": 0, "dtype": "float32", "shape": [1] * 65}, [b"xxxx"]), "bad tensor shape"),
    (_frame({"$": "tensor", "blob": 0, "dtype": "float32", "shape": [2]}, [b"xxxx"]), "needs 8 bytes, got 4"),
    (_frame({"$": "tensor", "blob": 0, "dtype": "int64", "shape": [2**40, 2**40]}, [b""]), "needs"),
])
def test_decoder_rejects_malformed_frames(frame, message):
    with pytest.raises(ProtocolError, match=message):
        unpack(frame, lambda h: h)


def test_torch_save_of_an_object_that_runs_code_is_refused(capsys):
    buffer = io.BytesIO()
    torch.save({"x": Evil()}, buffer)
    with pytest.raises(ProtocolError, match="unreadable tensor"):
        unpack(_frame({"$": "tensor", "blob": 0}, [buffer.getvalue()]), lambda h: h)
    assert "pwned" not in capsys.readouterr().out


def test_deep_nesting_is_refused():
    deep = []
    for _ in range(protocol.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(ProtocolError, match="nested deeper"):
        pack({"v": deep}, lambda o: Handle(0, "x"))
    tree = json.loads("[" * (protocol.MAX_DEPTH + 5) + "]" * (protocol.MAX_DEPTH + 5))
    with pytest.raises(ProtocolError, match="nested deeper"):
        unpack(_frame(tree), lambda h: h)


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_random_bytes_only_ever_raise_protocol_error(data):
    try:
        unpack(protocol._HEADER.pack(protocol.MAGIC, len(data), 0) + data, lambda h: h)
    except ProtocolError:
        pass


json_trees = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(["$", "v", "blob", "id", "type"]),
        children | st.sampled_from(["tuple", "dict", "tensor", "handle", "float", "set", "slice"]), max_size=3),
    max_leaves=12)


@settings(max_examples=300)
@given(json_trees)
def test_random_json_trees_only_ever_raise_protocol_error(tree):
    try:
        unpack(_frame(tree, [b"junk"]), lambda h: h)
    except ProtocolError:
        pass
