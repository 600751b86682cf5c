"""Comparisons that explain themselves to a student.

``assert_close(got, expected, call=..., inputs=..., hint=...)`` checks type,
shape, dtype, device and values (recursively through lists, tuples and dicts) and,
when something differs, raises ``GradingFailure`` whose message says what was
called, with which shapes and dtypes, what was expected against what came back,
where the first mismatch is and with which tolerance, and the test's hint::

    detection_utils.nms(boxes=float32[200, 4], scores=float32[200], iou_threshold=0.5)
    result: expected shape [36], got shape [37] (dtype int64 both)
    hint: suppress a box only when its IoU is strictly greater than the threshold
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from grader.sandbox.client import RemoteObject, handle_of

MAX_LISTED = 6
SMALL_TENSOR = 16


def _values(tensor: Any) -> str:
    """The values of a small tensor on one line, e.g. ``[[0, 0, 3, 1], [1, 0, 4, 1]]``."""
    data = tensor.detach().to("cpu")
    if data.is_floating_point():
        data = data.to(__import__("torch").float64)
        rows = data.tolist()

        def fmt(x: Any) -> str:
            return "[" + ", ".join(fmt(v) for v in x) + "]" if isinstance(x, list) else f"{x:.6g}"

        return fmt(rows)
    return str(data.tolist())


class GradingFailure(AssertionError):
    """A failed check whose message is meant for the student as is."""


def describe(value: Any) -> str:
    """Short description of a value: ``float32[200, 4]``, ``0.5``, ``list of 3``, ``<student Linear>``."""
    import torch

    if isinstance(value, torch.Tensor):
        device = "" if value.device.type == "cpu" else f" on {value.device}"
        text = f"{str(value.dtype).replace('torch.', '')}{list(value.shape)}{device}"
        if 0 < value.numel() <= SMALL_TENSOR:
            text += " " + _values(value)
        return text
    try:
        import numpy as np

        if isinstance(value, np.ndarray):
            return f"ndarray {value.dtype}{list(value.shape)}"
    except ImportError:  # pragma: no cover
        pass
    if isinstance(value, RemoteObject):
        return f"<your {handle_of(value).type.rsplit('.', 1)[-1]} object>"
    if isinstance(value, (bool, int, float, complex, str)) or value is None:
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."
    if isinstance(value, (list, tuple)):
        inner = ", ".join(describe(v) for v in value[:3])
        more = ", ..." if len(value) > 3 else ""
        return f"{type(value).__name__} of {len(value)} [{inner}{more}]"
    if isinstance(value, Mapping):
        keys = list(value)[:4]
        more = ", ..." if len(value) > 4 else ""
        return f"dict with keys {keys}{more}"
    return type(value).__name__


def describe_call(name: str, *args: Any, **kwargs: Any) -> str:
    """``nms(float32[200, 4], float32[200], iou_threshold=0.5)`` for messages."""
    parts = [describe(a) for a in args] + [f"{k}={describe(v)}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"


def _fmt_index(index: tuple) -> str:
    return "[" + ", ".join(str(i) for i in index) + "]"


def _fmt_number(x: float) -> str:
    if isinstance(x, float):
        if math.isnan(x) or math.isinf(x):
            return str(x)
        return f"{x:.6g}"
    return str(x)


def _tensor_mismatch(got: Any, expected: Any, rtol: float, atol: float, equal_nan: bool) -> str | None:
    import torch

    if got.shape != expected.shape:
        text = f"expected shape {list(expected.shape)}, got shape {list(got.shape)}"
        if got.numel() <= SMALL_TENSOR and expected.numel() <= SMALL_TENSOR:
            text += f"\nexpected {_values(expected)}\ngot      {_values(got)}"
        return text
    if got.numel() == 0:
        return None
    g = got.detach().to("cpu")
    e = expected.detach().to("cpu")
    if g.dtype == torch.bool or e.dtype == torch.bool:
        bad = g.to(torch.bool) != e.to(torch.bool)
    elif g.is_floating_point() or e.is_floating_point() or g.is_complex() or e.is_complex():
        g64 = g.to(torch.complex128 if g.is_complex() or e.is_complex() else torch.float64)
        e64 = e.to(g64.dtype)
        close = torch.isclose(g64, e64, rtol=rtol, atol=atol, equal_nan=equal_nan)
        bad = ~close
    else:
        bad = g.to(torch.int64) != e.to(torch.int64) if g.dtype != torch.uint64 else g != e
    count = int(bad.sum())
    if count == 0:
        return None
    first = tuple(int(i) for i in torch.nonzero(bad)[0]) if bad.dim() else ()
    got_v = g[first].item() if g.dim() else g.item()
    exp_v = e[first].item() if e.dim() else e.item()
    lines = [f"{count} of {bad.numel()} values differ; first at index {_fmt_index(first)}: "
             f"got {_fmt_number(got_v)}, expected {_fmt_number(exp_v)}"]
    if g.is_floating_point():
        nan_count = int(torch.isnan(g).sum())
        if nan_count and not torch.isnan(e).any():
            lines.append(f"your result has {nan_count} NaN value(s)")
        if (g.is_floating_point() or e.is_floating_point()) and not g.is_complex():
            lines.extend(_difference_lines(g.to(torch.float64), e.to(torch.float64), bad, rtol, atol))
    return "\n".join(lines)


def _difference_lines(got: Any, expected: Any, bad: Any, rtol: float, atol: float) -> list[str]:
    """The largest difference among the differing values (NaN against a number counts as inf), and a note
    for NaNs that sit at the same positions in both (they differ only because NaN != NaN).

    Args:
        got, expected: float64 tensors of one shape.
        bad: where they differ (a bool tensor of that shape).
        rtol, atol: the tolerance, for the message.
    """
    import torch

    both_nan = torch.isnan(got) & torch.isnan(expected)
    lines = []
    real = bad & ~both_nan
    if bool(real.any()):
        diff = (got - expected).abs()
        diff = torch.where(torch.isnan(diff), torch.full_like(diff, float("inf")), diff)
        diff = torch.where(real, diff, torch.zeros_like(diff))
        lines.append(f"largest difference {_fmt_number(float(diff.max()))}; tolerance "
                     f"|got - expected| <= {atol:g} + {rtol:g} * |expected|")
    shared = int((bad & both_nan).sum())
    if shared:
        lines.append(f"{shared} value(s) are NaN in both results, at the same positions; this check does not "
                     f"count NaN as equal to NaN")
    return lines


def _mismatch(got: Any, expected: Any, path: str, rtol: float, atol: float, check_dtype: bool,
              check_device: bool, equal_nan: bool) -> str | None:
    import torch

    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        np = None

    label = path or "result"
    if isinstance(expected, torch.Tensor):
        if isinstance(got, RemoteObject):
            return f"{label}: expected a torch.Tensor, got {describe(got)} (a subclass or another type)"
        if type(got) is not torch.Tensor:
            return f"{label}: expected a torch.Tensor, got {type(got).__module__}.{type(got).__name__}"
        if check_dtype and got.dtype != expected.dtype:
            return (f"{label}: expected dtype {str(expected.dtype).replace('torch.', '')}, got "
                    f"{str(got.dtype).replace('torch.', '')} (shape {list(got.shape)})")
        if check_device and got.device.type != expected.device.type:
            return f"{label}: expected a tensor on {expected.device.type}, got one on {got.device.type}"
        problem = _tensor_mismatch(got, expected, rtol, atol, equal_nan)
        return f"{label}: {problem}" if problem else None
    if np is not None and isinstance(expected, np.ndarray):
        if type(got) is not np.ndarray:
            return f"{label}: expected a numpy array, got {describe(got)}"
        if check_dtype and got.dtype != expected.dtype:
            return f"{label}: expected dtype {expected.dtype}, got {got.dtype}"
        problem = _tensor_mismatch(torch.from_numpy(np.ascontiguousarray(got)),
                                   torch.from_numpy(np.ascontiguousarray(expected)), rtol, atol, equal_nan)
        return f"{label}: {problem}" if problem else None
    if isinstance(expected, bool) or expected is None or isinstance(expected, str):
        if type(got) is not type(expected) or got != expected:
            return f"{label}: expected {describe(expected)}, got {describe(got)}"
        return None
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        numeric = (int, float) if np is None else (int, float, np.integer, np.floating)
        if isinstance(got, bool) or not isinstance(got, numeric):
            if isinstance(got, torch.Tensor) and got.numel() == 1:
                got = got.item()
            else:
                return f"{label}: expected a number like {describe(expected)}, got {describe(got)}"
        g, e = float(got), float(expected)
        if math.isnan(g) and math.isnan(e) and equal_nan:
            return None
        if not math.isclose(g, e, rel_tol=rtol, abs_tol=atol) or math.isnan(g) != math.isnan(e):
            return (f"{label}: expected {_fmt_number(e)}, got {_fmt_number(g)} (tolerance {atol:g} + "
                    f"{rtol:g} * |expected|)")
        return None
    if isinstance(expected, Mapping):
        if not isinstance(got, Mapping):
            return f"{label}: expected a dict with keys {list(expected)[:MAX_LISTED]}, got {describe(got)}"
        missing = [k for k in expected if k not in got]
        extra = [k for k in got if k not in expected]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing keys {missing[:MAX_LISTED]}")
            if extra:
                parts.append(f"unexpected keys {extra[:MAX_LISTED]}")
            return f"{label}: " + "; ".join(parts)
        for key in expected:
            problem = _mismatch(got[key], expected[key], f"{label}[{key!r}]", rtol, atol, check_dtype,
                                check_device, equal_nan)
            if problem:
                return problem
        return None
    if isinstance(expected, Sequence):
        if not isinstance(got, (list, tuple)):
            return f"{label}: expected a {type(expected).__name__} of {len(expected)}, got {describe(got)}"
        if len(got) != len(expected):
            return f"{label}: expected {len(expected)} items, got {len(got)}"
        for i, (g, e) in enumerate(zip(got, expected)):
            problem = _mismatch(g, e, f"{label}[{i}]", rtol, atol, check_dtype, check_device, equal_nan)
            if problem:
                return problem
        return None
    if got != expected:
        return f"{label}: expected {describe(expected)}, got {describe(got)}"
    return None


def assert_close(got: Any, expected: Any, *, call: str = "", rtol: float = 1e-5, atol: float = 1e-6,
                 check_dtype: bool = True, check_device: bool = True, equal_nan: bool = False,
                 hint: str = "", what: str = "result") -> None:
    """Compare a student's value with the expected one; explain the first difference.

    Args:
        got: what the student's code returned (plain data from the sandbox).
        expected: what it should be (tensors, arrays, numbers, strings and
            lists/tuples/dicts of them).
        call: what was called, e.g. ``describe_call("nms", boxes, scores, 0.5)``.
        rtol, atol: tolerances for floating-point values (``torch.isclose``).
        check_dtype: require the same dtype.
        check_device: require the same device type.
        equal_nan: treat NaN as equal to NaN.
        hint: a sentence that points the student at the likely cause.
        what: the name of the value in the message (``"result"``, ``"loss"``).

    Raises:
        GradingFailure: with the explanation.
    """
    problem = _mismatch(got, expected, what, rtol, atol, check_dtype, check_device, equal_nan)
    if problem is None:
        return
    lines = []
    if call:
        lines.append(f"Called {call}")
    lines.append(problem)
    if hint:
        lines.append(f"Hint: {hint}")
    raise GradingFailure("\n".join(lines))


def first_close(got: Any, readings: list, *, rtol: float = 1e-5, atol: float = 1e-6, check_dtype: bool = True,
                check_device: bool = True, equal_nan: bool = False) -> Any:
    """The expected value of the first reading ``got`` matches, else of the first (the reference's own).

    Where a handout leaves a choice open, each reading it allows has its own expected
    value; pick one with this, then ``assert_close`` against it, so that a student who
    matches none is told how they differ from the first.

    Args:
        got: what the student's code returned.
        readings: the expected values, one per allowed reading, the primary first.
        rtol, atol, check_dtype, check_device, equal_nan: as in ``assert_close``.
    """
    for expected in readings:
        if _mismatch(got, expected, "result", rtol, atol, check_dtype, check_device, equal_nan) is None:
            return expected
    return readings[0]


def assert_equal(got: Any, expected: Any, **kwargs: Any) -> None:
    """``assert_close`` with zero tolerance (indices, labels, counts)."""
    kwargs.setdefault("rtol", 0.0)
    kwargs.setdefault("atol", 0.0)
    assert_close(got, expected, **kwargs)


def check(condition: bool, message: str, *, call: str = "", hint: str = "") -> None:
    """Fail with a student-facing message when ``condition`` is false."""
    if condition is True:
        return
    lines = [f"Called {call}"] if call else []
    lines.append(message)
    if hint:
        lines.append(f"Hint: {hint}")
    raise GradingFailure("\n".join(lines))
