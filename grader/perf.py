"""Graded speed checks: the student's function against the reference, in identical workers.

Both run in sandboxed worker processes started the same way (the reference from
a private copy that the student's worker cannot see). Inputs are staged in each
worker beforehand (fresh inputs per call when ``inputs`` is given, so that
remembering answers does not pay), so only the call is timed; calls are
interleaved (student, reference, reference, student, ...) after warm-up, timed
by the trusted side as round trips (``call_sync`` waits for the GPU before it
replies), results stay in the worker during timing and are fetched and checked
afterwards, and the best (shortest) call of each side is compared after taking
off the shortest round trip of an empty request on each side. Noise on a shared
machine only ever adds time (a call that loses the core for a time slice), so
the best of several interleaved calls is far steadier than their median when
the machine is overloaded (docs/performance.md).

Credit depends on the ratio student / reference on a log scale: full credit up
to ``full_at``, none from ``none_at``, ``1 - log(r / full_at) / log(none_at / full_at)``
in between. The gap between the thresholds (10x by default) is what makes the
check robust on a noisy machine: a vectorized solution stays near 1x, a
per-element Python loop lands far beyond ``none_at``.

A submission that is already more than ``give_up`` times ``none_at`` slower in
every warm-up call gets no credit without the timed calls (its time would not
change the score; grading time stays bounded for very slow code).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from grader.compare import GradingFailure
from grader.sandbox.client import Connection, RemoteObject, connection_of


@dataclass(frozen=True)
class SpeedPolicy:
    """Ratio thresholds: full credit at or below ``full_at``, none at or above ``none_at``."""

    full_at: float = 4.0
    none_at: float = 40.0

    def credit(self, ratio: float) -> float:
        if not math.isfinite(ratio) or ratio >= self.none_at:
            return 0.0
        if ratio <= self.full_at:
            return 1.0
        return 1.0 - math.log(ratio / self.full_at) / math.log(self.none_at / self.full_at)


@dataclass
class SpeedResult:
    """Best call times of both, their ratio and the credit it earns."""

    name: str
    student_seconds: float
    reference_seconds: float
    repeats: int
    device: str
    policy: SpeedPolicy
    stopped_early: bool = False

    @property
    def ratio(self) -> float:
        return self.student_seconds / max(self.reference_seconds, 1e-9)

    @property
    def credit(self) -> float:
        return self.policy.credit(self.ratio)

    def message(self) -> str:
        counted = (f"best of {self.repeats} warm-up calls against the reference's last; timing stopped there"
                   if self.stopped_early
                   else f"best of {self.repeats}")
        return (f"Speed of {self.name} on {self.device}: yours {self.student_seconds * 1e3:.2f} ms, reference "
                f"{self.reference_seconds * 1e3:.2f} ms ({counted}), {self.ratio:.1f}x. Full credit "
                f"up to {self.policy.full_at:g}x, none from {self.policy.none_at:g}x: {self.credit:.0%} of the "
                "points.")


def _stage(conn: Connection, args: tuple | list, kwargs: dict, device: str | None) -> tuple[list, dict]:
    held_args = [conn.request("hold", value=v, device=device, label="staging the inputs") for v in args]
    held_kwargs = {k: conn.request("hold", value=v, device=device, label="staging the inputs")
                   for k, v in kwargs.items()}
    return held_args, held_kwargs


def compare_speed(student_fn: RemoteObject, reference_fn: RemoteObject, args: tuple | list = (),
                  kwargs: dict | None = None, *, inputs: Callable[[int], tuple] | None = None, name: str = "",
                  repeats: int = 7, warmup: int = 2, check: Callable[[Any, Any], None] | None = None,
                  policy: SpeedPolicy = SpeedPolicy(), device: str | None = None,
                  timeout: float | None = None, give_up: float | None = 2.0) -> SpeedResult:
    """Time ``student_fn(*args, **kwargs)`` against ``reference_fn`` in their workers.

    Args:
        student_fn, reference_fn: proxies from the student's and the reference worker.
        args, kwargs: the inputs (plain data), staged in each worker before timing.
        inputs: ``inputs(i) -> (args, kwargs)`` for call ``i`` instead of one fixed set:
            every call gets fresh inputs, so remembering earlier answers does not help.
        name: what is timed, for the message.
        repeats: timed calls of each, interleaved; the best call of each side is compared.
        warmup: untimed calls of each first.
        check: ``check(student_result, reference_result)`` raises when the student's
            result is wrong; every call's result is checked after the timing (a fast
            wrong answer earns nothing).
        policy: the credit thresholds.
        device: ``"cuda"`` to move the staged inputs to the GPU in both workers.
        timeout: seconds per call (default: the connection's).
        give_up: when every warm-up call of the student's is more than ``give_up * policy.none_at``
            times the reference's, skip the timed calls (no credit either way); None: always time.

    Raises:
        GradingFailure: when a result of the student's fails ``check``.
        StudentCodeError: when the student's code raises or runs past its limit.
    """
    student_conn, reference_conn = connection_of(student_fn), connection_of(reference_fn)
    label = name or "the timed function"
    total = warmup + repeats
    cases = [inputs(i) if inputs is not None else (tuple(args), dict(kwargs or {})) for i in range(total)]
    staged: dict[str, list] = {"student": [], "reference": []}
    for which, conn in (("student", student_conn), ("reference", reference_conn)):
        shared = None
        for case_args, case_kwargs in cases:
            if inputs is None and shared is not None:
                staged[which].append(shared)
                continue
            shared = _stage(conn, list(case_args), dict(case_kwargs), device)
            staged[which].append(shared)
    functions = {"student": (student_conn, student_fn), "reference": (reference_conn, reference_fn)}
    times: dict[str, list[float]] = {"student": [], "reference": []}
    pings: list[float] = []
    results: dict[str, list] = {"student": [], "reference": []}
    warm: dict[str, list[float]] = {"student": [], "reference": []}

    def run(which: str, index: int, record: bool) -> None:
        conn, fn = functions[which]
        held_args, held_kwargs = staged[which][index]
        # The result comes back by value inside the timed interval: the clock stops only once it is
        # in this (trusted) process, so a worker that answers early and computes later gains nothing.
        start = time.perf_counter()
        result = conn.request("call_sync", obj=fn, args=held_args, kwargs=held_kwargs, label=label,
                              timeout=timeout)
        elapsed = time.perf_counter() - start
        results[which].append(result)
        if not record:
            warm[which].append(elapsed)
        else:
            times[which].append(elapsed)
            if which == "reference":  # the trusted worker's round trip only: a student's slow ping is theirs
                start = time.perf_counter()
                conn.request("ping", label=label, timeout=timeout)
                pings.append(time.perf_counter() - start)

    stopped_early = False
    for index in range(total):
        timed = index >= warmup
        # Every warm-up call of the student's against the reference's last (warmed-up) one: a vectorized
        # submission would need a stall in each of its warm-up calls to be cut off here.
        if index == warmup and warmup and give_up is not None and all(
                mine > give_up * policy.none_at * max(warm["reference"][-1], 1e-9) for mine in warm["student"]):
            stopped_early = True
            break
        order = ("student", "reference") if index % 2 == 0 else ("reference", "student")
        for which in order:
            run(which, index, timed)
    if check is not None:
        for index, (got, expected) in enumerate(zip(results["student"], results["reference"])):
            try:
                check(got, expected)
            except AssertionError as exc:
                raise GradingFailure(f"No speed credit for {label}: its result of call {index + 1} is wrong.\n"
                                     f"{exc}") from None

    def transfer(value: Any) -> float:
        """Seconds to bring ``value`` back from a worker: measured on the reference's (trusted) worker."""
        try:
            held = reference_conn.request("hold", value=value, label=label, timeout=timeout)
            best = float("inf")
            for _ in range(3):
                start = time.perf_counter()
                reference_conn.request("get", obj=held, label=label, timeout=timeout)
                best = min(best, time.perf_counter() - start)
            return best
        except Exception:  # noqa: BLE001 - a result that is not plain data: the empty round trip only
            return min(pings)

    def net(which: str) -> float:
        # The round trip that brings the result back, measured on the reference's worker only (the
        # student's could be slowed on purpose), is taken off each side so that small inputs or large
        # results do not squeeze every ratio towards 1 (never below 5 % of the measured time).
        raw = min(times[which])
        return max(raw - transfer(results[which][-1]), 0.05 * raw, 1e-7)

    if stopped_early:
        return SpeedResult(name=label, student_seconds=min(warm["student"]),
                           reference_seconds=warm["reference"][-1], repeats=warmup,
                           device=device or "cpu", policy=policy, stopped_early=True)
    return SpeedResult(name=label, student_seconds=net("student"), reference_seconds=net("reference"),
                       repeats=repeats, device=device or "cpu", policy=policy)


class Timing:
    """The ``timing`` fixture: speed checks of one test, bound to both workers."""

    def __init__(self, student: Any, reference: Any, set_fraction: Callable[[float], None]):
        self.student = student
        self.reference = reference
        self._set_fraction = set_fraction

    def grade(self, function: str, args: tuple | list = (), kwargs: dict | None = None, **options: Any) -> SpeedResult:
        """Time ``module.function`` of the student against the reference and award the credit.

        ``function`` is ``"detection_utils.nms"``; ``options`` go to ``compare_speed``.
        Below full credit the test fails with the timings (keeping its partial score).
        """
        module, attr = function.split(".", 1)
        result = compare_speed(getattr(getattr(self.student, module), attr),
                               getattr(getattr(self.reference, module), attr), args, kwargs,
                               name=options.pop("name", function), **options)
        self._set_fraction(result.credit)
        if result.credit < 1.0:
            raise GradingFailure(result.message() + "\nHint: replace Python loops over elements with tensor "
                                                    "operations.")
        return result
