"""The one door to student code, and helpers that work on student and reference objects alike.

Graded tests receive a ``student`` fixture and reach the submission only through
it: ``student.detection_utils.nms(boxes, scores, 0.5)``. Each attribute of
``student`` is one of the assignment's modules, running in the sandboxed worker;
what comes back is plain data or a proxy (see ``grader.sandbox.client``).

The helpers below take either a proxy or a local object (a reference model in
the project's own tests) and answer the same way.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from grader.manifest import Manifest
from grader.sandbox.client import Connection, RemoteObject, StudentCodeError, handle_of


class StudentCode:
    """The ``student`` fixture: attribute access to the submission's modules.

    ``student.one_stage_detector`` is a proxy for the module in the student's
    process; accessing it imports it there (once per worker). A module that fails
    to import raises ``StudentImportError`` with the student's error.
    """

    def __init__(self, connection: Connection, manifest: Manifest):
        self._connection = connection
        self._manifest = manifest
        self._modules = (frozenset(manifest.student_modules) | frozenset(manifest.optional_modules)
                         | frozenset(manifest.provided_modules))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._modules:
            raise AttributeError(
                f"{self._manifest.name} has no module {name!r}; its modules are {sorted(self._modules)}")
        return _ModuleProxy(self._connection, name)

    def load(self, module: str) -> RemoteObject:
        """Import ``module`` now and return it (raises ``StudentImportError``)."""
        return self._connection.import_module(module)

    def import_library(self, name: str) -> RemoteObject:
        """A library module (``"torch.optim"``) inside the student's process, to build objects there."""
        return self._connection.import_module(name)

    @property
    def connection(self) -> Connection:
        return self._connection

    def __repr__(self) -> str:
        return f"<student code of {self._manifest.name}: {sorted(self._modules)}>"


class _ModuleProxy:
    """Imports the module on first use, so that ``student.x`` itself never fails."""

    __slots__ = ("_connection", "_name")

    def __init__(self, connection: Connection, name: str):
        self._connection = connection
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        module = self._connection.import_module(self._name)
        try:
            return getattr(module, attr)
        except StudentCodeError as exc:
            if exc.type_name == "AttributeError":
                raise StudentCodeError(
                    "AttributeError", f"{self._name}.py has no {attr!r} (is it defined at the top level, "
                                      "with this exact name?)", "", f"{self._name}.{attr}") from None
            raise

    def __repr__(self) -> str:
        return f"<student module {self._name}>"


class ReferenceCode:
    """The ``reference`` fixture: the course's solution modules, imported in this (trusted) process."""

    def __init__(self, modules: dict[str, Any], manifest: Manifest):
        self._modules = modules
        self._manifest = manifest

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._modules[name]
        except KeyError:
            raise AttributeError(
                f"the reference of {self._manifest.name} has no module {name!r}; it has {sorted(self._modules)}"
            ) from None


# -- helpers that accept proxies and local objects ---------------------------

def type_name(obj: Any) -> str:
    """Qualified class name of a local object or of the object behind a proxy."""
    if isinstance(obj, RemoteObject):
        return handle_of(obj).type
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}" if cls.__module__ != "builtins" else cls.__qualname__


def is_instance(obj: Any, qualified_name: str) -> bool:
    """Whether ``obj``'s class or one of its bases is ``qualified_name`` (e.g. ``"torch.nn.Module"``).

    For proxies this relies on what the worker reports; use it for messages and
    routing, and check behaviour to award points.
    """
    if isinstance(obj, RemoteObject):
        names = handle_of(obj).mro
    else:
        names = tuple(f"{c.__module__}.{c.__qualname__}" if c.__module__ != "builtins" else c.__qualname__
                      for c in type(obj).__mro__)
    short = qualified_name.rsplit(".", 1)[-1]
    aliases = {qualified_name}
    # torch re-exports classes: torch.nn.Linear lives in torch.nn.modules.linear.
    if qualified_name.startswith("torch.nn.") and qualified_name.count(".") == 2:
        aliases |= {n for n in names if n.startswith("torch.nn.modules.") and n.endswith("." + short)}
    return any(n in aliases for n in names)


def module_info(model: Any) -> dict:
    """Parameter counts and structure of an ``nn.Module`` (local or remote).

    Returns:
        dict with ``type``, ``training``, ``num_parameters``, ``num_trainable``,
        ``parameters`` (name, shape, requires_grad, dtype), ``buffers`` and ``modules``.
    """
    if isinstance(model, RemoteObject):
        conn = object.__getattribute__(model, "_conn")
        return conn.request("module_info", obj=model, label=f"inspecting {type_name(model)}")
    from grader.sandbox.server import module_info as local_module_info

    return local_module_info(model)


def num_parameters(model: Any, trainable_only: bool = False) -> int:
    """Number of parameters of a model (local or remote)."""
    info = module_info(model)
    return info["num_trainable"] if trainable_only else info["num_parameters"]


def value_and_grad(fn: Any, *args: Any, wrt: tuple = (0,), grad_output: Any = None, **kwargs: Any) -> tuple:
    """Call ``fn`` with the ``wrt`` inputs requiring grad; return (output, [grads]).

    ``wrt`` holds positional indices or keyword names. Works on student functions
    (the backward pass runs in the student's process) and on local functions.

    Returns:
        (Tensor, list[Tensor | None]): the detached output and one gradient per input.
    """
    if isinstance(fn, RemoteObject):
        conn = object.__getattribute__(fn, "_conn")
        return conn.request("value_and_grad", obj=fn, args=list(args), kwargs=kwargs, wrt=list(wrt),
                            grad_output=grad_output, label=f"{object.__getattribute__(fn, '_label')}(...) backward")
    from grader.sandbox.server import value_and_grad as local_value_and_grad

    return local_value_and_grad(fn, list(args), dict(kwargs), list(wrt), grad_output)


def call_keeping_inputs(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, failing the test when ``fn`` changed one of its tensor or array inputs in place.

    The comparison runs where ``fn`` runs (the student's process), on the very objects ``fn``
    received: an argument copied to the worker and compared in the grader could never show the
    change. Works on student functions and on local ones.

    Raises:
        AssertionError: naming the changed inputs (``args[0]``, ``kwargs['boxes']``).
    """
    if isinstance(fn, RemoteObject):
        label = object.__getattribute__(fn, "_label") or type_name(fn)
        conn = object.__getattribute__(fn, "_conn")
        result, changed = conn.request("call_keeping_inputs", obj=fn, args=list(args), kwargs=kwargs,
                                       label=f"{label}(...)")
    else:
        from grader.sandbox.server import call_keeping_inputs as local_call

        label = getattr(fn, "__qualname__", repr(fn))
        result, changed = local_call(fn, list(args), dict(kwargs))
    if changed:
        raise AssertionError(f"{label}(...) changed its input {', '.join(changed)} in place; the caller's tensor "
                             "must stay as it was: compute on a copy (x = x.clone()) or use out-of-place operations "
                             "(x.clamp(...) instead of x.clamp_(...), x = x * w instead of x *= w)")
    return result


@contextlib.contextmanager
def student_raises(*type_names: str, match: str | None = None) -> Iterator[dict]:
    """Expect student code to raise one of ``type_names`` (e.g. ``"ValueError"``).

    Yields a dict that holds the caught ``StudentCodeError`` under ``"error"``.

    Raises:
        AssertionError: when nothing or something else was raised.
    """
    box: dict = {}
    try:
        yield box
    except StudentCodeError as exc:
        if type_names and exc.type_name not in type_names:
            raise AssertionError(f"expected your code to raise {' or '.join(type_names)}, "
                                 f"but it raised {exc.type_name}: {exc.message}") from None
        if match is not None and not re.search(match, exc.message):
            raise AssertionError(f"your {exc.type_name} should mention {match!r}; its message was "
                                 f"{exc.message!r}") from None
        box["error"] = exc
        return
    except Exception as exc:  # a local object raised
        if type_names and type(exc).__name__ not in type_names:
            raise
        if match is not None and not re.search(match, str(exc)):
            raise AssertionError(f"the {type(exc).__name__} should mention {match!r}; its message was "
                                 f"{str(exc)!r}") from None
        box["error"] = exc
        return
    raise AssertionError(f"expected your code to raise {' or '.join(type_names) or 'an error'}, "
                         "but it returned normally")
