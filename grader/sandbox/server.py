"""The side of the protocol that holds student objects and runs student code.

``WorkerServer.handle(frame) -> frame`` answers one request. It runs inside the
sandboxed worker process (``grader.sandbox.worker``) and, in ``--no-sandbox``
mode, in the trusted process itself (loopback), so that both modes behave the
same: values are copied through the wire format either way.

Requests (dicts)::

    {"op": "import", "module": "detection_utils"}
    {"op": "getattr", "obj": h, "name": "nms"}          {"op": "setattr", "obj": h, "name": n, "value": v}
    {"op": "call", "obj": h, "args": [...], "kwargs": {...}}
    {"op": "getitem" | "setitem" | "delitem", "obj": h, "key": k[, "value": v]}
    {"op": "len" | "iter" | "next" | "bool" | "repr" | "str" | "dir" | "module_info", "obj": h}
    {"op": "contains", "obj": h, "item": v}
    {"op": "value_and_grad", "obj": fn, "args": [...], "kwargs": {...}, "wrt": [0, "x"], "grad_output": t|None}
    {"op": "seed", "seed": n}     {"op": "ping"}
    {"op": "collect"}   (before a test: free what earlier tests left, ``heap.free_unused_memory``)
    every request may carry "release": [ids] (handles the trusted side dropped)

Replies: ``{"ok": value}``, ``{"stop": true}`` (iterator exhausted) or
``{"error": {"kind": "exception" | "import" | "protocol", "type": ..., "message": ...,
"traceback": ..., "module": ..., "filename": ..., "summary": ..., "details": ...}}``;
in loopback mode also ``"output"`` (what the call printed).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from grader.sandbox import heap, protocol
from grader.sandbox.loader import ModuleImportError, format_student_traceback, load_modules

REPR_LIMIT = 300


class BoundedText(io.TextIOBase):
    """A text sink that keeps the first and last ``limit`` characters written to it."""

    def __init__(self, limit: int = 20_000):
        self.limit = limit
        self.head: list[str] = []
        self.head_size = 0
        self.tail = ""
        self.dropped = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            text = str(text)
        room = self.limit - self.head_size
        if room > 0:
            self.head.append(text[:room])
            self.head_size += len(text[:room])
            text = text[room:]
        if text:
            joined = self.tail + text
            self.dropped += max(0, len(joined) - self.limit)
            self.tail = joined[-self.limit:]
        return len(text)

    def getvalue(self) -> str:
        head = "".join(self.head)
        if self.dropped:
            return f"{head}\n... [{self.dropped} characters not shown] ...\n{self.tail}"
        return head + self.tail


class WorkerServer:
    """Holds the student's objects and answers requests about them.

    Args:
        directory: the prepared submission folder (student files plus course files).
        modules: the course module names that may be imported from ``directory``.
        isolated: import the folder without leaving it on ``sys.path`` (loopback
            mode keeps it False so that a debugger and lazy imports work).
        capture_output: capture ``sys.stdout``/``sys.stderr`` per request and
            return it in the reply (loopback mode; the sandboxed worker's output
            is read from its file descriptors by the trusted side instead).
    """

    def __init__(self, directory: Path | str, modules: list[str] | tuple[str, ...], *,
                 isolated: bool = False, capture_output: bool = False, definitions_only: tuple[str, ...] = (),
                 definitions_on_error: bool = False):
        self.directory = Path(directory)
        self.course_modules = set(modules)
        self.definitions_only = tuple(definitions_only)
        self.definitions_on_error = bool(definitions_on_error)
        self.isolated = isolated
        self.capture_output = capture_output
        self.objects: dict[int, Any] = {}
        self.next_id = 1
        self.loaded: dict[str, Any] = {}

    # -- handles -------------------------------------------------------------
    def register(self, obj: Any) -> protocol.Handle:
        # Every handle gets its own id (the trusted side releases each proxy on its own), so an object
        # returned twice (``model.eval()`` returns the model) is held twice, never freed early.
        hid = self.next_id
        self.next_id += 1
        self.objects[hid] = obj
        try:
            rep = repr(obj)
        except Exception:  # noqa: BLE001 - student __repr__ may raise
            rep = f"<{type(obj).__name__} object>"
        if len(rep) > REPR_LIMIT:
            rep = rep[:REPR_LIMIT] + "..."
        names = protocol.type_names(obj)
        return protocol.Handle(hid, names[0], names, rep)

    def lookup(self, handle: protocol.Handle) -> Any:
        try:
            obj = self.objects[handle.id]
        except KeyError:
            raise protocol.ProtocolError(f"unknown object id {handle.id}") from None
        return obj.value if isinstance(obj, Held) else obj

    def release(self, ids: list) -> None:
        for hid in ids:
            if type(hid) is int:
                self.objects.pop(hid, None)

    # -- requests ------------------------------------------------------------
    def handle(self, frame: bytes) -> bytes:
        """Answer one request frame with one reply frame; never raises."""
        return b"".join(self.answer(self.parse(frame)))

    def parse(self, frame: bytes | bytearray) -> dict | protocol.ProtocolError:
        """Decode a request frame (``answer`` takes the result); the frame is not needed afterwards."""
        try:
            request = protocol.unpack(frame, self.lookup)
            if type(request) is not dict or type(request.get("op")) is not str:
                raise protocol.ProtocolError("a request is a dict with an 'op'")
        except protocol.ProtocolError as exc:
            return exc
        return request

    def answer(self, request: dict | protocol.ProtocolError) -> list[bytes]:
        """Run a parsed request (``parse``) and give its reply frame in pieces (``protocol.pack_parts``); never raises."""
        if isinstance(request, protocol.ProtocolError):
            return self._pack({"error": {"kind": "protocol", "type": "ProtocolError", "message": str(request)}})
        release = request.get("release")
        if type(release) is list:
            self.release(release)
        sink = BoundedText() if self.capture_output else None
        try:
            if sink is not None:
                with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                    reply = self._dispatch(request)
            else:
                reply = self._dispatch(request)
        except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt from student code too
            reply = {"error": self._describe(exc)}
        if sink is not None:
            reply["output"] = sink.getvalue()
        return self._pack(reply)

    def _pack(self, reply: dict) -> list[bytes]:
        try:
            return protocol.pack_parts(reply, self.register)
        except Exception as exc:  # noqa: BLE001 - e.g. a tensor that cannot be saved
            fallback = {"error": {"kind": "exception", "type": type(exc).__name__,
                                  "message": f"the value could not be sent back to the grader: {exc}"}}
            if "output" in reply:
                fallback["output"] = reply["output"]
            return protocol.pack_parts(fallback, self.register)

    def _describe(self, exc: BaseException) -> dict:
        if isinstance(exc, ModuleImportError):
            return {"kind": "import", "type": "ModuleImportError", "message": str(exc), "module": exc.module,
                    "filename": exc.filename, "summary": exc.summary, "details": exc.details}
        if isinstance(exc, protocol.ProtocolError):
            return {"kind": "protocol", "type": "ProtocolError", "message": str(exc)}
        if isinstance(exc, SystemExit):
            message = f"your code called sys.exit({exc.code!r})"
        else:
            try:
                message = str(exc)
            except Exception:  # noqa: BLE001
                message = "<the exception's message could not be shown>"
        if _is_missing_gpu(message):
            message = ("grading runs without a GPU, and your code asked for CUDA (.cuda(), .to('cuda') or "
                       "device='cuda'): use the device of your inputs, or 'cpu' when torch.cuda.is_available() is "
                       f"False. ({message})")
        return {"kind": "exception", "type": type(exc).__name__, "message": message[:4000],
                "traceback": format_student_traceback(exc, self.directory)}

    def _dispatch(self, request: dict) -> dict:
        op = request["op"]
        method = getattr(self, "op_" + op, None)
        if method is None:
            raise protocol.ProtocolError(f"unknown op {op!r}")
        try:
            return {"ok": method(request)}
        except StopIteration:
            if op == "next":
                return {"stop": True}
            raise

    @staticmethod
    def _target(request: dict) -> Any:
        if "obj" not in request:
            raise protocol.ProtocolError("request needs 'obj'")
        return request["obj"]

    def op_ping(self, request: dict) -> str:
        return "pong"

    def op_hold(self, request: dict) -> Held:
        """Keep a value in the worker and return a handle to it (inputs staged for timed calls).

        With ``device``, tensors in the value are moved there first.
        """
        value = request.get("value")
        device = request.get("device")
        if device:
            value = _to_device(value, str(device))
        return Held(value)

    def op_call_sync(self, request: dict) -> Any:
        """``call``, then wait for the device so that asynchronous work is finished before replying.

        With ``"hold": true`` the result stays in the worker (a handle comes back; ``get`` fetches it).
        """
        result = self.op_call(request)
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
        return Held(result) if request.get("hold") is True else result

    def op_get(self, request: dict) -> Any:
        """The value behind a handle (a held result)."""
        return self._target(request)

    def op_collect(self, request: dict) -> int:
        """Free the cycles and heap pages earlier tests left; the number of unreachable objects found."""
        return heap.free_unused_memory()

    def op_seed(self, request: dict) -> None:
        seed = int(request["seed"])
        random.seed(seed)
        np = sys.modules.get("numpy")
        if np is not None:
            np.random.seed(seed % 2**32)
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.manual_seed(seed)

    def op_import(self, request: dict) -> Any:
        name = request.get("module")
        if type(name) is not str or not name:
            raise protocol.ProtocolError("import needs a module name")
        if name in self.loaded:
            return self.loaded[name]
        if name.split(".", 1)[0] in {m.split(".", 1)[0] for m in self.course_modules}:
            module = load_modules(self.directory, [name], isolated=self.isolated,
                                  definitions_only=self.definitions_only,
                                  definitions_on_error=self.definitions_on_error)[name]
            for course_module in self.course_modules:  # the loader marks only course modules
                if course_module in sys.modules:
                    _note_definitions_only(sys.modules[course_module])
        else:
            module = importlib.import_module(name)
        self.loaded[name] = module
        return module

    def op_getattr(self, request: dict) -> Any:
        name = request.get("name")
        if type(name) is not str:
            raise protocol.ProtocolError("getattr needs a name")
        return getattr(self._target(request), name)

    def op_setattr(self, request: dict) -> None:
        setattr(self._target(request), str(request["name"]), request.get("value"))

    def op_call(self, request: dict) -> Any:
        args = request.get("args", [])
        kwargs = request.get("kwargs", {})
        if type(args) is not list or type(kwargs) is not dict or not all(type(k) is str for k in kwargs):
            raise protocol.ProtocolError("call needs a list of args and a dict of str keyword args")
        return self._target(request)(*args, **kwargs)

    def op_getitem(self, request: dict) -> Any:
        return self._target(request)[request.get("key")]

    def op_setitem(self, request: dict) -> None:
        self._target(request)[request.get("key")] = request.get("value")

    def op_delitem(self, request: dict) -> None:
        del self._target(request)[request.get("key")]

    def op_len(self, request: dict) -> int:
        return len(self._target(request))

    def op_contains(self, request: dict) -> bool:
        return request.get("item") in self._target(request)

    def op_bool(self, request: dict) -> bool:
        return bool(self._target(request))

    def op_iter(self, request: dict) -> Any:
        return _Iterator(iter(self._target(request)))

    def op_next(self, request: dict) -> Any:
        target = self._target(request)
        return next(target.it if isinstance(target, _Iterator) else target)

    def op_repr(self, request: dict) -> str:
        return repr(self._target(request))[:20_000]

    def op_str(self, request: dict) -> str:
        return str(self._target(request))[:20_000]

    def op_dir(self, request: dict) -> list:
        return sorted(n for n in dir(self._target(request)) if isinstance(n, str))

    def op_module_info(self, request: dict) -> dict:
        return module_info(self._target(request))

    def op_call_keeping_inputs(self, request: dict) -> Any:
        args, kwargs = request.get("args", []), request.get("kwargs", {})
        if type(args) is not list or type(kwargs) is not dict or not all(type(k) is str for k in kwargs):
            raise protocol.ProtocolError("call needs a list of args and a dict of str keyword args")
        result, changed = call_keeping_inputs(self._target(request), args, kwargs)
        return [result, changed]

    def op_value_and_grad(self, request: dict) -> Any:
        return value_and_grad(self._target(request), list(request.get("args", [])),
                              dict(request.get("kwargs", {})), request.get("wrt", [0]), request.get("grad_output"))


_NO_GPU_MESSAGES = ("Found no NVIDIA driver", "Torch not compiled with CUDA enabled", "No CUDA GPUs are available",
                    "CUDA driver initialization failed")


def _is_missing_gpu(message: str) -> bool:
    return any(text in message for text in _NO_GPU_MESSAGES)


def _cpu_device(device: Any) -> Any:
    """``"cpu"`` for a CUDA device (``"cuda"``, ``"cuda:1"``, ``torch.device("cuda")``, an index), else ``device``."""
    if isinstance(device, bool):
        return device
    if isinstance(device, int) or str(device) == "cuda" or str(device).startswith("cuda:"):
        return "cpu"
    return device


def run_cuda_on_cpu(torch: Any, on_first_use: Any = None) -> None:
    """Make the course's hard-coded CUDA calls run on the CPU (a grader without a GPU).

    ``Tensor.cuda`` and ``Module.cuda`` return the CPU object; ``Tensor.to`` and ``Module.to`` with a CUDA
    device (``"cuda"``, ``"cuda:0"``, ``torch.device("cuda")``) move to the CPU instead. Factory
    functions with ``device="cuda"`` are not changed. ``on_first_use()`` is called the first time one of
    these calls asked for CUDA.
    """
    noted = [False]

    def note() -> None:
        if not noted[0]:
            noted[0] = True
            if on_first_use is not None:
                on_first_use()

    tensor_to, module_to = torch.Tensor.to, torch.nn.Module.to

    def tensor_cuda(self, device=None, non_blocking=False, memory_format=torch.preserve_format):
        note()
        return self

    def module_cuda(self, device=None):
        note()
        return self

    def mapped(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        changed = False
        new_args = []
        for arg in args:
            cpu = _cpu_device(arg) if isinstance(arg, (str, torch.device)) else arg
            changed |= cpu is not arg
            new_args.append(cpu)
        if "device" in kwargs and _cpu_device(kwargs["device"]) is not kwargs["device"]:
            kwargs = {**kwargs, "device": "cpu"}
            changed = True
        if changed:
            note()
        return tuple(new_args), kwargs

    def to_tensor(self, *args, **kwargs):
        args, kwargs = mapped(args, kwargs)
        return tensor_to(self, *args, **kwargs)

    def to_module(self, *args, **kwargs):
        args, kwargs = mapped(args, kwargs)
        return module_to(self, *args, **kwargs)

    torch.Tensor.cuda = tensor_cuda
    torch.nn.Module.cuda = module_cuda
    torch.Tensor.to = to_tensor
    torch.nn.Module.to = to_module


def _note_definitions_only(module: Any) -> None:
    """Tell the student (on stderr, once per module) that a script-style file was imported as definitions."""
    # The module's own dict, not getattr: a library's lazy module answers any attribute (seen: an int).
    namespace = getattr(module, "__dict__", None)
    left_out = namespace.get("__cvgrade_left_out__") if isinstance(namespace, dict) else None
    if not isinstance(left_out, list) or namespace.get("__cvgrade_noted__", False):
        return
    module.__cvgrade_noted__ = True
    name = Path(getattr(module, "__file__", "") or "?").name
    shown = "; ".join(left_out[:6]) + (f"; and {len(left_out) - 6} more" if len(left_out) > 6 else "")
    print(f"cvgrade: {name} runs code when imported, so only its definitions (imports, functions, classes, "
          f"constants) were imported{': left out ' + shown if left_out else ''}", file=sys.stderr)


def module_info(module: Any) -> dict:
    """Facts about an ``nn.Module`` that tests ask often, in one round trip."""
    import torch

    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(module).__name__}")
    params = list(module.named_parameters())
    return {
        "type": protocol.type_names(module)[0],
        "training": bool(module.training),
        "num_parameters": int(sum(p.numel() for _, p in params)),
        "num_trainable": int(sum(p.numel() for _, p in params if p.requires_grad)),
        "parameters": [(n, tuple(p.shape), bool(p.requires_grad), str(p.dtype).replace("torch.", ""))
                       for n, p in params],
        "buffers": [(n, tuple(b.shape)) for n, b in module.named_buffers()],
        "modules": [(n, protocol.type_names(m)[0]) for n, m in module.named_modules()],
    }


def value_and_grad(fn: Any, args: list, kwargs: dict, wrt: list, grad_output: Any = None) -> tuple:
    """Call ``fn`` with the ``wrt`` inputs (indices or names) requiring grad; return (output, grads)."""
    import torch

    inputs = []
    for key in wrt:
        container, index = (args, key) if type(key) is int else (kwargs, key)
        value = container[index]
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise TypeError(f"argument {key!r} must be a floating-point tensor to differentiate, "
                            f"got {type(value).__name__}")
        value = value.detach().clone().requires_grad_(True)
        container[index] = value
        inputs.append(value)
    output = fn(*args, **kwargs)
    if not isinstance(output, torch.Tensor):
        raise TypeError(f"expected the function to return a tensor, got {type(output).__name__}")
    if grad_output is None:
        grad_output = torch.ones_like(output)
    if not output.requires_grad:
        return output.detach(), [None for _ in inputs]
    grads = torch.autograd.grad(output, inputs, grad_outputs=grad_output, allow_unused=True)
    return output.detach(), [None if g is None else g.detach() for g in grads]


def _array_leaves(value: Any, where: str, depth: int = 0) -> Iterator[tuple[str, Any]]:
    """``(where, array)`` for each tensor or numpy array in ``value`` (lists, tuples, dicts, 4 levels)."""
    torch, np = sys.modules.get("torch"), sys.modules.get("numpy")
    if (torch is not None and isinstance(value, torch.Tensor)) or (np is not None and isinstance(value, np.ndarray)):
        yield where, value
    elif depth < 4 and isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _array_leaves(item, f"{where}[{index}]", depth + 1)
    elif depth < 4 and isinstance(value, dict):
        for key, item in value.items():
            yield from _array_leaves(item, f"{where}[{key!r}]", depth + 1)


def _same_array(before: Any, after: Any) -> bool:
    """Same shape, dtype and values (NaN equal to NaN)."""
    np = sys.modules.get("numpy")
    if np is not None and isinstance(before, np.ndarray):
        return before.shape == after.shape and before.dtype == after.dtype and bool(
            np.array_equal(before, after, equal_nan=before.dtype.kind in "fc"))
    if before.shape != after.shape or before.dtype != after.dtype:
        return False
    if before.is_floating_point() or before.is_complex():
        return bool(((before == after) | (before.isnan() & after.isnan())).all())
    return bool((before == after).all())


def call_keeping_inputs(fn: Any, args: list, kwargs: dict) -> tuple[Any, list[str]]:
    """Call ``fn(*args, **kwargs)``; return its result and where it changed its tensor/array inputs in place.

    Runs where the inputs live (the worker), so an in-place change of the caller's tensor is seen:
    a copy sent from the grader would hide it.

    Returns:
        (result, changed): ``changed`` lists the inputs (``"args[0]"``, ``"kwargs['x'][1]"``) whose
        shape, dtype or values differ after the call.
    """
    leaves = [*_array_leaves(args, "args"), *_array_leaves(kwargs, "kwargs")]
    saved = [(where, value, value.detach().clone() if hasattr(value, "detach") else value.copy())
             for where, value in leaves]
    result = fn(*args, **kwargs)
    changed = [where for where, value, copy in saved if not _same_array(copy, value)]
    return result, changed


def _to_device(value: Any, device: str) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, (list, tuple)):
        return type(value)(_to_device(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    return value


class Held:
    """A value staged in the worker by ``hold``; requests that name it receive the value itself."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value


class _Iterator:
    """Wraps an iterator so that ``iter`` always returns a handle, never data."""

    __slots__ = ("it",)

    def __init__(self, it: Any):
        self.it = it
