"""Main loop of the worker process that runs student code.

Started by ``grader.sandbox.process`` (through ``jail.py``) from a private copy of
``grader/sandbox``; the rest of the grader, the reference and the tests are not
reachable from here. Reads length-prefixed request frames on one descriptor and
writes reply frames on another; the student's prints go to stdout/stderr, which
the trusted side reads from a pipe.
"""

from __future__ import annotations

import json
import os
import sys


def _read_exact(fd: int, size: int) -> bytearray:
    """Read ``size`` bytes into one buffer (no chunks joined: a frame is held once)."""
    data = bytearray(size)
    view, offset = memoryview(data), 0
    while offset < size:
        got = os.readv(fd, [view[offset: offset + (1 << 20)]])
        if not got:
            raise EOFError
        offset += got
    view.release()
    return data


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view[: 1 << 20])
        view = view[written:]


def main() -> None:
    serve(int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3]))


def serve(request_fd: int, reply_fd: int, config: dict) -> None:
    """Be the worker: answer requests on ``request_fd`` with replies on ``reply_fd`` until the grader hangs up.

    Args:
        request_fd, reply_fd: the two pipe ends of the protocol.
        config: the submission folder, its modules, the modules to import first, limits (``process._config``).
    """
    os.set_inheritable(request_fd, False)
    os.set_inheritable(reply_fd, False)
    for entry in config.get("sys_path", []):
        if entry not in sys.path:
            sys.path.append(entry)
    sys.path.insert(0, config["directory"])

    from grader.sandbox import protocol
    from grader.sandbox.server import WorkerServer

    for name in config.get("preload", []):
        __import__(name)
    if config.get("cuda_on_cpu") and "torch" in sys.modules:
        from grader.sandbox.server import run_cuda_on_cpu

        run_cuda_on_cpu(sys.modules["torch"], lambda: print(
            "cvgrade: grading has no GPU; your .cuda() / .to('cuda') calls ran on the CPU", file=sys.stderr))
    threads = config.get("threads")
    if threads and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(threads))
    server = WorkerServer(config["directory"], config["modules"], isolated=False, capture_output=False,
                          definitions_only=tuple(config.get("definitions_only", ())),
                          definitions_on_error=bool(config.get("definitions_on_error", False)))
    protocol.write_frame(lambda b: _write_all(reply_fd, b), protocol.pack_parts({"ready": os.getpid()}, server.register))
    while True:
        try:
            size = protocol.outer_length(_read_exact(request_fd, protocol.OUTER_PREFIX))
            frame = _read_exact(request_fd, size)
        except (EOFError, protocol.ProtocolError):
            os._exit(0)
        request = server.parse(frame)
        del frame  # the request's tensors are decoded: free the frame before the student's code runs
        reply = server.answer(request)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - the student may have replaced or closed it
                pass
        protocol.write_frame(lambda b: _write_all(reply_fd, b), reply)


if __name__ == "__main__":
    main()
