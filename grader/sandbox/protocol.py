"""Wire format between the trusted grader and the process that runs student code.

Nothing that comes from the student's process is ever unpickled. A message is a
JSON document plus binary attachments (tensors, arrays, bytes)::

    b"CVG1" | u32 json length | u32 attachment count | JSON | (u64 length | bytes)*

Tensors of the common dtypes (``RAW_DTYPES``) travel as their raw bytes, with dtype and shape
in the JSON, checked against the attachment's length; others as ``torch.save`` bytes read with
``torch.load(weights_only=True)``. Numpy arrays travel as ``.npy`` bytes read with
``allow_pickle=False``. Everything else is JSON with tagged objects::

    {"$": "tuple", "v": [...]}                 tuple (and torch.Size)
    {"$": "dict", "v": [[key, value], ...]}    dict, any encodable keys, order kept
    {"$": "float", "v": "nan" | "inf" | "-inf"}
    {"$": "tensor", "blob": i, "dtype": "float32", "shape": [2, 3], "device": "cpu", "requires_grad": false}
    {"$": "tensor", "blob": i, "device": "cpu", "requires_grad": false}   (torch.save bytes)
    {"$": "ndarray", "blob": i}  {"$": "npscalar", "blob": i}  {"$": "bytes", "blob": i}
    {"$": "dtype", "v": "float32"}   {"$": "device", "v": "cuda:0"}
    {"$": "slice", "v": [start, stop, step]}   {"$": "ellipsis"}   {"$": "complex", "v": [re, im]}
    {"$": "set", "v": [...]}   {"$": "frozenset", "v": [...]}
    {"$": "handle", "id": n, "type": "module.Class", "mro": [...], "repr": "..."}

Objects that are not plain data (models, datasets, functions) stay in the
worker; they cross as ``handle`` records that the trusted side wraps in proxies.
The decoder is strict: unknown tags, malformed frames and oversized messages are
``ProtocolError``. This module needs only the standard library, numpy and torch,
because it also runs inside the worker.
"""

from __future__ import annotations

import io
import json
import math
import struct
import warnings
from collections.abc import Callable
from typing import Any

MAGIC = b"CVG1"
_HEADER = struct.Struct("<4sII")
_BLOB_LEN = struct.Struct("<Q")
MAX_JSON_BYTES = 64 * 2**20
MAX_ATTACHMENTS = 1_000_000
MAX_MESSAGE_BYTES = 4 * 2**30
MAX_DEPTH = 200
MAX_DIMS = 64
#: Tensors of these dtypes travel as their raw bytes (C order) with dtype and shape in the JSON; any other
#: (quantized, float8, ...) as ``torch.save`` bytes.
RAW_DTYPES = frozenset({"float16", "bfloat16", "float32", "float64", "complex64", "complex128",
                        "uint8", "int8", "int16", "int32", "int64", "bool"})


class ProtocolError(Exception):
    """A message that does not follow the wire format (or is too large)."""


class Handle:
    """A reference to an object that lives in the other process.

    Attributes:
        id (int): the key of the object in the worker's table.
        type (str): qualified class name reported by the worker (untrusted).
        mro (tuple[str, ...]): qualified names of the class and its bases (untrusted).
        repr (str): a short ``repr`` of the object (untrusted, trimmed).
    """

    __slots__ = ("id", "type", "mro", "repr")

    def __init__(self, id: int, type: str, mro: tuple[str, ...] = (), repr: str = ""):
        self.id = id
        self.type = type
        self.mro = mro
        self.repr = repr

    def __repr__(self) -> str:
        return f"Handle({self.id}, {self.type})"


def _qualname(cls: type) -> str:
    module = getattr(cls, "__module__", "") or ""
    name = getattr(cls, "__qualname__", getattr(cls, "__name__", "?"))
    return f"{module}.{name}" if module and module != "builtins" else str(name)


def type_names(obj: Any) -> tuple[str, ...]:
    try:
        return tuple(_qualname(c) for c in type(obj).__mro__)
    except Exception:  # noqa: BLE001 - a hostile __mro__
        return ("?",)


class Encoder:
    """Turns a value into (JSON tree, attachments).

    Args:
        to_handle: called for every object that is not plain data; returns its
            Handle (the worker registers the object) or raises TypeError (the
            trusted side sends only plain data and proxies it already holds).
    """

    def __init__(self, to_handle: Callable[[Any], Handle]):
        self.to_handle = to_handle
        self.blobs: list[bytes | memoryview] = []

    def _blob(self, data: bytes | memoryview) -> int:
        self.blobs.append(data)
        return len(self.blobs) - 1

    def encode(self, value: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise ProtocolError(f"value nested deeper than {MAX_DEPTH} levels")
        t = type(value)
        if value is None or t is bool or t is str:
            return value
        if t is int:
            return value
        if t is float:
            if math.isfinite(value):
                return value
            return {"$": "float", "v": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
        if t is list:
            return [self.encode(v, depth + 1) for v in value]
        if t is tuple:
            return {"$": "tuple", "v": [self.encode(v, depth + 1) for v in value]}
        if t is dict:
            return {"$": "dict", "v": [[self.encode(k, depth + 1), self.encode(v, depth + 1)]
                                       for k, v in value.items()]}
        if t is bytes or t is bytearray:
            return {"$": "bytes", "blob": self._blob(bytes(value))}
        if t is complex:
            return {"$": "complex", "v": [self.encode(value.real), self.encode(value.imag)]}
        if t is slice:
            return {"$": "slice", "v": [self.encode(value.start, depth + 1), self.encode(value.stop, depth + 1),
                                        self.encode(value.step, depth + 1)]}
        if value is Ellipsis:
            return {"$": "ellipsis"}
        if t is set or t is frozenset:
            return {"$": t.__name__, "v": [self.encode(v, depth + 1) for v in value]}
        if isinstance(value, Handle):
            return {"$": "handle", "id": value.id, "type": value.type, "mro": list(value.mro), "repr": value.repr}
        encoded = self._encode_library_type(value, depth)
        if encoded is not NotImplemented:
            return encoded
        return self.encode(self.to_handle(value), depth)

    def _encode_library_type(self, value: Any, depth: int) -> Any:
        import sys

        torch = sys.modules.get("torch")
        np = sys.modules.get("numpy")
        if torch is not None:
            if isinstance(value, torch.Tensor) and type(value) in (torch.Tensor, torch.nn.Parameter):
                return self._encode_tensor(torch, value)
            if isinstance(value, torch.Size):
                return {"$": "tuple", "v": [int(v) for v in value]}
            if isinstance(value, torch.dtype):
                return {"$": "dtype", "v": str(value).replace("torch.", "")}
            if isinstance(value, torch.device):
                return {"$": "device", "v": str(value)}
        if np is not None:
            if type(value) is np.ndarray:
                if value.dtype.hasobject:
                    return NotImplemented
                buffer = io.BytesIO()
                np.save(buffer, value, allow_pickle=False)
                return {"$": "ndarray", "blob": self._blob(buffer.getvalue())}
            if isinstance(value, np.generic) and not isinstance(value, np.object_):
                buffer = io.BytesIO()
                np.save(buffer, np.asarray(value), allow_pickle=False)
                return {"$": "npscalar", "blob": self._blob(buffer.getvalue())}
        # OrderedDict, defaultdict, namedtuple: plain containers under another name.
        if isinstance(value, dict):
            return {"$": "dict", "v": [[self.encode(k, depth + 1), self.encode(v, depth + 1)]
                                       for k, v in dict.items(value)]}
        if isinstance(value, tuple) and hasattr(type(value), "_fields"):
            return {"$": "tuple", "v": [self.encode(v, depth + 1) for v in tuple.__iter__(value)]}
        return NotImplemented

    def _encode_tensor(self, torch: Any, value: Any) -> dict:
        device = str(value.device)
        requires_grad = bool(value.requires_grad)
        plain = value.detach()
        if plain.layout != torch.strided:
            plain = plain.to_dense()
        plain = plain.to("cpu")
        # A view saves its whole storage; copy so that only the visible part travels.
        if plain.untyped_storage().nbytes() != plain.numel() * plain.element_size() or not plain.is_contiguous():
            plain = plain.contiguous().clone()
        name = str(plain.dtype).removeprefix("torch.")
        if name in RAW_DTYPES:
            # Raw bytes, a view of the tensor's own memory: a state dict is not copied to be sent.
            plain = plain.resolve_conj().resolve_neg()
            raw = memoryview(plain.reshape(-1).view(torch.uint8).numpy()).cast("B")
            return {"$": "tensor", "blob": self._blob(raw), "dtype": name, "shape": list(plain.shape),
                    "device": device, "requires_grad": requires_grad}
        buffer = io.BytesIO()
        torch.save(plain, buffer)
        return {"$": "tensor", "blob": self._blob(buffer.getvalue()), "device": device,
                "requires_grad": requires_grad}


class Decoder:
    """Turns (JSON tree, attachments) back into values, strictly.

    Args:
        blobs: the message's attachments.
        from_handle: maps a Handle record to the object to use (the worker looks
            the id up in its table; the trusted side wraps it in a proxy).
        tensor_device: callable mapping the sender's device string to the device
            the tensor should land on; None keeps everything on the CPU.
    """

    def __init__(self, blobs: list[memoryview], from_handle: Callable[[Handle], Any],
                 tensor_device: Callable[[str], str] | None = None):
        self.blobs = blobs
        self.from_handle = from_handle
        self.tensor_device = tensor_device

    def _blob(self, node: dict) -> memoryview:
        index = node.get("blob")
        if type(index) is not int or not 0 <= index < len(self.blobs):
            raise ProtocolError(f"bad attachment index {index!r}")
        return self.blobs[index]

    def decode(self, node: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise ProtocolError(f"value nested deeper than {MAX_DEPTH} levels")
        t = type(node)
        if node is None or t in (bool, int, float, str):
            return node
        if t is list:
            return [self.decode(v, depth + 1) for v in node]
        if t is not dict:
            raise ProtocolError(f"unexpected JSON value of type {t.__name__}")
        tag = node.get("$")
        if tag == "tuple":
            return tuple(self.decode(v, depth + 1) for v in self._list(node))
        if tag == "dict":
            out = {}
            for pair in self._list(node):
                if type(pair) is not list or len(pair) != 2:
                    raise ProtocolError("dict entries must be [key, value] pairs")
                key = self.decode(pair[0], depth + 1)
                try:
                    hash(key)
                except TypeError:
                    raise ProtocolError(f"unhashable dict key of type {type(key).__name__}") from None
                out[key] = self.decode(pair[1], depth + 1)
            return out
        if tag == "float":
            v = node.get("v")
            if v not in ("nan", "inf", "-inf"):
                raise ProtocolError(f"bad float {v!r}")
            return float(v)
        if tag == "tensor":
            return self._decode_tensor(node)
        if tag == "ndarray" or tag == "npscalar":
            import numpy as np

            try:
                array = np.load(io.BytesIO(self._blob(node)), allow_pickle=False)
            except Exception as exc:  # noqa: BLE001
                raise ProtocolError(f"unreadable array: {exc}") from None
            return array if tag == "ndarray" else array[()]
        if tag == "bytes":
            return bytes(self._blob(node))
        if tag == "dtype":
            import torch

            dtype = getattr(torch, str(node.get("v")), None)
            if not isinstance(dtype, torch.dtype):
                raise ProtocolError(f"unknown dtype {node.get('v')!r}")
            return dtype
        if tag == "device":
            import torch

            try:
                return torch.device(str(node.get("v")))
            except (RuntimeError, TypeError) as exc:
                raise ProtocolError(f"bad device {node.get('v')!r}: {exc}") from None
        if tag == "slice":
            parts = [self.decode(v, depth + 1) for v in self._list(node)]
            if len(parts) != 3:
                raise ProtocolError("slice needs three parts")
            return slice(*parts)
        if tag == "ellipsis":
            return Ellipsis
        if tag == "complex":
            parts = self._list(node)
            if len(parts) != 2:
                raise ProtocolError("complex needs two parts")
            return complex(self.decode(parts[0]), self.decode(parts[1]))
        if tag in ("set", "frozenset"):
            items = [self.decode(v, depth + 1) for v in self._list(node)]
            try:
                return set(items) if tag == "set" else frozenset(items)
            except TypeError:
                raise ProtocolError("unhashable set member") from None
        if tag == "handle":
            hid, type_name = node.get("id"), node.get("type")
            mro, rep = node.get("mro", []), node.get("repr", "")
            if type(hid) is not int or type(type_name) is not str or type(mro) is not list \
                    or not all(type(m) is str for m in mro) or type(rep) is not str:
                raise ProtocolError("malformed handle")
            return self.from_handle(Handle(hid, type_name[:200], tuple(m[:200] for m in mro[:64]), rep[:400]))
        raise ProtocolError(f"unknown tag {tag!r}")

    @staticmethod
    def _list(node: dict) -> list:
        value = node.get("v")
        if type(value) is not list:
            raise ProtocolError(f"tag {node.get('$')!r} needs a list")
        return value

    def _decode_raw_tensor(self, node: dict) -> Any:
        import torch

        name, shape = node.get("dtype"), node.get("shape")
        if type(name) is not str or name not in RAW_DTYPES:
            raise ProtocolError(f"unknown tensor dtype {name!r}")
        if (type(shape) is not list or len(shape) > MAX_DIMS
                or not all(type(size) is int and size >= 0 for size in shape)):
            raise ProtocolError(f"bad tensor shape {shape!r}")
        dtype = getattr(torch, name)
        blob = self._blob(node)
        numel = math.prod(shape)
        itemsize = dtype.itemsize
        if numel * itemsize != len(blob):
            raise ProtocolError(f"tensor of shape {shape} and dtype {name} needs {numel * itemsize} bytes, "
                                f"got {len(blob)}")
        if numel == 0:
            return torch.empty(shape, dtype=dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a read-only buffer: the tensor is cloned out of it at once
            data = torch.frombuffer(blob, dtype=torch.uint8)
        if dtype is torch.bool:  # any byte is a valid bool once compared
            return (data != 0).reshape(shape)
        # Copied as bytes first: the attachment sits at any offset of the frame, and a view of it as
        # complex128 (say) would be misaligned; a fresh tensor is aligned.
        return data.clone().view(dtype).reshape(shape)

    def _decode_tensor(self, node: dict) -> Any:
        import torch

        if "dtype" in node:
            tensor = self._decode_raw_tensor(node)
        else:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # hostile frames trigger torch's pickle-protocol warnings
                    tensor = torch.load(io.BytesIO(self._blob(node)), weights_only=True, map_location="cpu")
            except Exception as exc:  # noqa: BLE001 - anything unreadable is a protocol error
                raise ProtocolError(f"unreadable tensor: {type(exc).__name__}: {exc}") from None
        if not isinstance(tensor, torch.Tensor):
            raise ProtocolError(f"tensor attachment holds a {type(tensor).__name__}")
        if type(tensor) is not torch.Tensor:
            tensor = tensor.data
        device = node.get("device", "cpu")
        if type(device) is not str:
            raise ProtocolError("bad tensor device")
        if self.tensor_device is not None:
            target = self.tensor_device(device)
            if target != "cpu":
                tensor = tensor.to(target)
        if node.get("requires_grad") is True and (tensor.is_floating_point() or tensor.is_complex()):
            tensor.requires_grad_(True)
        return tensor


def pack_parts(message: Any, to_handle: Callable[[Any], Handle]) -> list[bytes]:
    """Encode a message (a dict) into one frame, given as its pieces in order, none of them empty.

    A sender writes them one after another (``write_frame``): a frame that carries a model's state dict
    is then never joined into a second copy of its tensors.
    """
    encoder = Encoder(to_handle)
    tree = encoder.encode(message)
    text = json.dumps(tree, allow_nan=False, separators=(",", ":")).encode("utf-8")
    parts = [_HEADER.pack(MAGIC, len(text), len(encoder.blobs)), text]
    for blob in encoder.blobs:
        parts.append(_BLOB_LEN.pack(len(blob)))
        if len(blob):  # an empty tensor's bytes: its length says it all, and a writer never waits on nothing
            parts.append(blob)
    return parts


def pack(message: Any, to_handle: Callable[[Any], Handle]) -> bytes:
    """Encode a message (a dict) into one frame."""
    return b"".join(pack_parts(message, to_handle))


def unpack(frame: bytes | bytearray | memoryview, from_handle: Callable[[Handle], Any],
           tensor_device: Callable[[str], str] | None = None) -> Any:
    """Decode one frame produced by ``pack``; strict about every byte."""
    json_part, blobs = split_frame(frame)
    try:
        tree = json.loads(json_part.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ProtocolError(f"bad JSON: {exc}") from None
    return Decoder(blobs, from_handle, tensor_device).decode(tree)


def split_frame(frame: bytes | bytearray | memoryview) -> tuple[bytes, list[memoryview]]:
    """The JSON part (a copy) and the attachments (views into ``frame``: a state dict is not held twice)."""
    if len(frame) < _HEADER.size:
        raise ProtocolError("frame too short")
    magic, json_len, count = _HEADER.unpack_from(frame, 0)
    if magic != MAGIC:
        raise ProtocolError("bad magic")
    if json_len > MAX_JSON_BYTES or count > MAX_ATTACHMENTS:
        raise ProtocolError("message too large")
    offset = _HEADER.size
    view = memoryview(frame).cast("B")
    json_part = bytes(view[offset:offset + json_len])
    if len(json_part) != json_len:
        raise ProtocolError("truncated frame")
    offset += json_len
    blobs = []
    for _ in range(count):
        if offset + _BLOB_LEN.size > len(frame):
            raise ProtocolError("truncated frame")
        (size,) = _BLOB_LEN.unpack_from(frame, offset)
        offset += _BLOB_LEN.size
        if offset + size > len(frame):
            raise ProtocolError("truncated frame")
        blobs.append(view[offset:offset + size])
        offset += size
    if offset != len(frame):
        raise ProtocolError("trailing bytes after frame")
    return json_part, blobs


_OUTER = struct.Struct("<Q")


def with_length_prefix(parts: list[bytes]) -> list[bytes]:
    """The pieces of a frame (``pack_parts``) as they go on a stream: a u64 length first.

    The list given is emptied, so that its sender lets each piece go once it is written.
    """
    pieces = [_OUTER.pack(sum(len(part) for part in parts)), *parts]
    parts.clear()
    return pieces


def write_frame(fd_write: Callable[[bytes], Any], parts: list[bytes]) -> None:
    """Write a frame (``pack_parts``' pieces, emptied) to a stream with a u64 length prefix, piece by piece."""
    pieces = with_length_prefix(parts)
    while pieces:
        fd_write(pieces.pop(0))


def outer_length(prefix: bytes) -> int:
    (size,) = _OUTER.unpack(prefix)
    if size > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {size} bytes is larger than the limit of {MAX_MESSAGE_BYTES}")
    return size


OUTER_PREFIX = _OUTER.size
