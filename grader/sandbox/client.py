"""The trusted side of the protocol: connections to student code and remote proxies.

Tests never touch student objects. They hold ``RemoteObject`` proxies whose
attribute access, calls, indexing, ``len`` and iteration are requests answered
by the process that runs the student's code; what comes back is plain data
(tensors, numbers, strings, lists, dicts) or more proxies. Comparisons happen in
the trusted process on that plain data, so student code cannot change how they
come out.

Two connections share all of this: ``LoopbackConnection`` runs the server in the
trusted process (``--no-sandbox``, for debugging; grading never uses it) and
``grader.sandbox.process.ProcessConnection`` runs it in a locked-down worker.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from grader.sandbox import protocol


class StudentCodeError(Exception):
    """Student code raised an exception (or could not run); ``str()`` is for the student.

    Attributes:
        type_name (str): the exception's class name in the student's process.
        message (str): its message.
        traceback (str): frames through the student's files only.
        call (str): what the grader called, e.g. ``"detection_utils.nms(...)"``.
    """

    def __init__(self, type_name: str, message: str, traceback: str = "", call: str = ""):
        self.type_name = type_name
        self.message = message
        self.traceback = traceback
        self.call = call
        super().__init__(self._text())

    def _text(self) -> str:
        where = f" in {self.call}" if self.call else ""
        if self.type_name == "NotImplementedError":
            head = f"Not implemented yet{where}: {self.message or 'NotImplementedError'}"
        else:
            head = f"Your code raised {self.type_name}{where}: {self.message}" if self.message \
                else f"Your code raised {self.type_name}{where}"
        if self.traceback:
            head += "\nTraceback (your files only):\n" + self.traceback
        return head


class StudentImportError(StudentCodeError):
    """A submission module could not be imported.

    Attributes:
        module (str), filename (str), summary (str), details (str)
    """

    def __init__(self, module: str, filename: str, summary: str, details: str = ""):
        self.module = module
        self.filename = filename
        self.summary = summary
        self.details = details
        super().__init__("ImportError", summary, details, call="")

    def _text(self) -> str:
        text = f"Could not import {self.filename}: {self.summary}"
        return text + ("\n" + self.details if self.details else "")


class StudentCrash(StudentCodeError):
    """The process running student code died, hung or ran out of memory; it was replaced.

    Attributes:
        reason (str): ``"timeout"``, ``"memory"``, ``"exit"``, ``"signal"`` or ``"protocol"``.
    """

    def __init__(self, reason: str, message: str, call: str = ""):
        self.reason = reason
        super().__init__("Crash", message, "", call)

    def _text(self) -> str:
        return self.message


class StaleObjectError(StudentCodeError):
    """A proxy whose worker was replaced after a crash; the object no longer exists."""

    def __init__(self, call: str = ""):
        super().__init__("StaleObject", "this object belonged to a run of your code that crashed earlier "
                                        "in this test; it no longer exists", "", call)

    def _text(self) -> str:
        where = f" ({self.call})" if self.call else ""
        return "The grader could not use an object from your code" + where + ": " + self.message


class Connection:
    """Sends requests to the student's process and decodes replies into values and proxies.

    Subclasses implement ``_roundtrip(frame, timeout, label) -> (reply frame, output)``.

    Attributes:
        generation (int): bumped every time the worker is replaced; proxies
            from an older generation are stale.
        call_timeout (float | None): seconds a single request may take.
        on_output: called with what the student's code printed during a request.
    """

    def __init__(self) -> None:
        self.generation = 0
        self.call_timeout: float | None = None
        self.on_output: Callable[[str], None] | None = None
        self._pending_release: list[int] = []
        self._lock = threading.RLock()
        self._modules: dict[str, tuple[int, RemoteObject]] = {}
        self._import_crashes: dict[str, list[StudentCrash]] = {}
        self.tripped: StudentCrash | None = None

    # -- transport -----------------------------------------------------------
    def _roundtrip(self, frame: list[bytes], timeout: float | None, label: str) -> tuple[bytes | memoryview, str]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the worker; subclasses stop processes here."""

    def _ensure_worker(self) -> None:
        """Start (or restart) the worker before a request is encoded; subclasses override."""

    def start_test(self) -> None:
        """Note what a test's diagnosis compares with (the container's memory pressure); subclasses override."""

    def end_test(self) -> str:
        """Clean up after one test (stop stray processes); returns a note for the student, or ''."""
        return ""

    def tensor_device(self, device: str) -> str:
        """Where a tensor that lived on ``device`` in the worker lands here."""
        if device.startswith("cuda"):
            import torch

            if torch.cuda.is_available():
                return device
        return "cpu"

    # -- requests ------------------------------------------------------------
    def request(self, op: str, *, label: str = "", timeout: float | None = None, **fields: Any) -> Any:
        """Run one operation in the student's process and return its (decoded) result.

        Raises:
            StudentCodeError: the student's code raised; StudentImportError and
                StudentCrash for the special cases.
            StopIteration: for ``op="next"`` on an exhausted iterator.
        """
        with self._lock:
            if self.tripped is not None:
                # One timeout or memory blow-up per test is enough: hypothesis would replay it many times.
                raise StudentCrash(self.tripped.reason, self.tripped.message, label)
            self._ensure_worker()
            message = {"op": op, **fields}
            if self._pending_release:
                message["release"], self._pending_release = self._pending_release, []
            frame = protocol.pack_parts(message, self._encode_handle)  # sent piece by piece, then let go
            generation = self.generation
            try:
                reply_frame, output = self._roundtrip(frame, self.call_timeout if timeout is None else timeout, label)
            except StudentCrash as crash:
                if crash.reason in ("timeout", "memory"):
                    self.tripped = crash
                raise
            if generation != self.generation:  # the worker was replaced while answering
                raise StaleObjectError(label)
            try:
                reply = protocol.unpack(reply_frame, self._decode_handle, self.tensor_device)
            except protocol.ProtocolError as exc:
                self._on_protocol_violation()
                raise StudentCrash("protocol", f"Your code's process sent the grader a malformed reply ({exc}) "
                                               f"during {label or op}; it was restarted.", label) from None
            if type(reply) is not dict:
                self._on_protocol_violation()
                raise StudentCrash("protocol", "Your code's process sent the grader a malformed reply.", label)
            printed = reply.get("output")
            if type(printed) is str:
                output = (output or "") + printed
            if output and self.on_output is not None:
                self.on_output(output)
            if "ok" in reply:
                return reply["ok"]
            if reply.get("stop") is True:
                raise StopIteration
            error = reply.get("error")
            if type(error) is not dict:
                self._on_protocol_violation()
                raise StudentCrash("protocol", "Your code's process sent the grader a malformed reply.", label)
            raise self._error(error, label)

    def _on_protocol_violation(self) -> None:
        """A reply that breaks the wire format: subclasses restart the worker."""

    @staticmethod
    def _error(error: dict, label: str) -> StudentCodeError:
        def text(key: str) -> str:
            value = error.get(key, "")
            return value[:8000] if type(value) is str else ""

        if error.get("kind") == "import":
            return StudentImportError(text("module"), text("filename"), text("summary"), text("details"))
        if error.get("kind") == "protocol":
            return StudentCrash("protocol", f"The grader and your code's process disagreed: {text('message')}",
                                label)
        return StudentCodeError(text("type") or "Exception", text("message"), text("traceback"), label)

    def _encode_handle(self, value: Any) -> protocol.Handle:
        if isinstance(value, RemoteObject):
            if object.__getattribute__(value, "_conn") is not self:
                raise TypeError("a proxy from another worker cannot be sent here")
            if object.__getattribute__(value, "_generation") != self.generation:
                raise StaleObjectError(object.__getattribute__(value, "_label"))
            return object.__getattribute__(value, "_handle")
        raise TypeError(
            f"cannot send a {type(value).__module__}.{type(value).__qualname__} to student code: only tensors, "
            "arrays, numbers, strings, lists, tuples, dicts and objects that came from the student's own code")

    def _decode_handle(self, handle: protocol.Handle) -> RemoteObject:
        return RemoteObject(self, handle, self.generation, "")

    def _release(self, hid: int, generation: int) -> None:
        if generation == self.generation:
            self._pending_release.append(hid)

    def import_module(self, name: str) -> RemoteObject:
        """A proxy for module ``name`` in the student's process (cached per worker)."""
        cached = self._modules.get(name)
        if cached is not None and cached[0] == self.generation:
            return cached[1]
        crashes = self._import_crashes.get(name, [])
        if len(crashes) >= IMPORT_CRASH_RETRIES:
            first = crashes[0]
            raise StudentCrash(first.reason, f"{first.message} (Importing {name} crashed the worker "
                               f"{len(crashes)} times; it is not tried again.)", first.call)
        try:
            module = self.request("import", module=name, label=f"import {name}")
        except StudentCrash as exc:
            self._import_crashes.setdefault(name, []).append(exc)
            raise
        if isinstance(module, RemoteObject):
            object.__setattr__(module, "_label", name)
        self._modules[name] = (self.generation, module)
        return module

    def reset(self) -> None:
        """Forget cached modules and proxies (after the worker was replaced)."""
        self.generation += 1
        self._pending_release = []
        self._modules = {}




IMPORT_CRASH_RETRIES = 2
"""A module whose import crashed the worker this many times fails at once afterwards
(each retry costs a worker start; a submission that exits at import would pay it in every test)."""


class RemoteObject:
    """A proxy for an object in the student's process.

    Supports attribute access (``model.fc``), attribute assignment, calls,
    indexing, ``len``, iteration, ``in`` and ``bool``. Values come back as plain
    data or further proxies. Equality and hashing are by identity: a proxy never
    asks student code whether it equals something.
    """

    __slots__ = ("_conn", "_handle", "_generation", "_label", "__weakref__")

    def __init__(self, conn: Connection, handle: protocol.Handle, generation: int, label: str):
        object.__setattr__(self, "_conn", conn)
        object.__setattr__(self, "_handle", handle)
        object.__setattr__(self, "_generation", generation)
        object.__setattr__(self, "_label", label)

    def _req(self, op: str, label: str, **fields: Any) -> Any:
        conn: Connection = object.__getattribute__(self, "_conn")
        if object.__getattribute__(self, "_generation") != conn.generation:
            raise StaleObjectError(label)
        value = conn.request(op, obj=self, label=label, **fields)
        if isinstance(value, RemoteObject) and not object.__getattribute__(value, "_label"):
            object.__setattr__(value, "_label", label)
        return value

    def _name(self) -> str:
        label = object.__getattribute__(self, "_label")
        return label or object.__getattribute__(self, "_handle").type.rsplit(".", 1)[-1]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)  # never probe student objects for protocols (__array__, ...)
        return self._req("getattr", f"{self._name()}.{name}", name=name)

    def __setattr__(self, name: str, value: Any) -> None:
        self._req("setattr", f"{self._name()}.{name} = ...", name=name, value=value)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._req("call", f"{self._name()}(...)", args=list(args), kwargs=kwargs)

    def __getitem__(self, key: Any) -> Any:
        return self._req("getitem", f"{self._name()}[...]", key=key)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._req("setitem", f"{self._name()}[...] = ...", key=key, value=value)

    def __delitem__(self, key: Any) -> None:
        self._req("delitem", f"del {self._name()}[...]", key=key)

    def __len__(self) -> int:
        try:
            value = self._req("len", f"len({self._name()})")
        except StudentCodeError as exc:
            if exc.type_name == "TypeError":  # no __len__: let list() and friends fall back
                raise TypeError(exc.message) from None
            raise
        if type(value) is not int or value < 0:
            raise StudentCodeError("TypeError", f"len() returned {value!r}, not a non-negative int", "",
                                   f"len({self._name()})")
        return value

    def __contains__(self, item: Any) -> bool:
        return self._req("contains", f"... in {self._name()}", item=item) is True

    def __bool__(self) -> bool:
        return self._req("bool", f"bool({self._name()})") is True

    def __iter__(self) -> Iterator[Any]:
        iterator = self._req("iter", f"iter({self._name()})")
        label = f"next(iter({self._name()}))"
        while True:
            try:
                yield iterator._req("next", label)
            except StopIteration:
                return

    def __repr__(self) -> str:
        handle = object.__getattribute__(self, "_handle")
        return f"<student object {handle.type}: {handle.repr}>"

    def __eq__(self, other: Any) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    def __del__(self) -> None:
        try:
            conn = object.__getattribute__(self, "_conn")
            conn._release(object.__getattribute__(self, "_handle").id, object.__getattribute__(self, "_generation"))
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def handle_of(proxy: RemoteObject) -> protocol.Handle:
    """The handle record behind a proxy (type name, MRO, repr as reported by the worker)."""
    return object.__getattribute__(proxy, "_handle")


def connection_of(proxy: RemoteObject) -> Connection:
    return object.__getattribute__(proxy, "_conn")


class LoopbackConnection(Connection):
    """Runs the server in this process: ``--no-sandbox`` mode, for a student with a debugger.

    Values are still copied through the wire format, so tests see exactly what
    they would see with the sandbox; there are no time or memory limits. With
    ``capture_output=False`` (a debugger) what student code prints, and pdb's
    prompt, go to the terminal instead of the test's output.
    """

    def __init__(self, directory: str, modules: list[str] | tuple[str, ...], *,
                 definitions_only: tuple[str, ...] = (), definitions_on_error: bool = False,
                 capture_output: bool = True):
        super().__init__()
        from grader.sandbox.server import WorkerServer

        self.server = WorkerServer(directory, modules, isolated=False, capture_output=capture_output,
                                   definitions_only=definitions_only, definitions_on_error=definitions_on_error)

    def _roundtrip(self, frame: list[bytes], timeout: float | None, label: str) -> tuple[bytes | memoryview, str]:
        return self.server.handle(b"".join(frame)), ""
