"""The training callback across processes: rank 0 of a torchrun job sends each evaluation's metrics over a Unix
socket to the process that launched it, which runs the real callback (a study's pruning and storage live there)
and answers "go on" or "stop". Rank 0 broadcasts the answer so every rank stops at the same step."""

from __future__ import annotations

import json
import select
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

from .distributed import Parallel
from .result import TrainingStopped

Callback = Callable[[int, dict[str, float]], None]


class CallbackServer:
    """Launcher side: accepts rank 0's connection and answers its requests until the job's process exits."""

    def __init__(self, callback: Callback, path: Path):
        self.callback = callback
        self.path = path
        self.raised: Exception | None = None  # what the callback raised (re-raised by the launcher, with .result)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        self._listener.listen(1)
        self._conn: socket.socket | None = None
        self._buffer = b""

    def serve(self, proc: subprocess.Popen) -> int:
        try:
            while proc.poll() is None:
                ready, _, _ = select.select([self._conn or self._listener], [], [], 0.2)
                if not ready:
                    continue
                if self._conn is None:
                    self._conn, _ = self._listener.accept()
                    continue
                chunk = self._conn.recv(1 << 16)
                if not chunk:  # rank 0 closed its end (finished or died): nothing more to answer
                    self._conn.close()
                    self._conn = None
                    continue
                self._buffer += chunk
                while b"\n" in self._buffer:
                    line, self._buffer = self._buffer.split(b"\n", 1)
                    self._answer(json.loads(line))
            return proc.wait()
        finally:
            if self._conn is not None:
                self._conn.close()
            self._listener.close()

    def _answer(self, request: dict) -> None:
        stop = None
        if self.raised is None:
            try:
                self.callback(int(request["step"]), dict(request["metrics"]))
            except Exception as err:  # the callback's way to stop the run
                self.raised = err
                stop = f"{type(err).__name__}: {err}"
        else:
            stop = f"{type(self.raised).__name__}: {self.raised}"
        self._conn.sendall((json.dumps({"stop": stop}) + "\n").encode())


def relay(parallel: Parallel, path: Path) -> Callback:
    """Rank side: a callback that asks the launcher (from rank 0) and raises TrainingStopped on every rank when
    the launcher's callback raised."""
    stream = None
    if parallel.writer:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(str(path))
        stream = conn.makefile("rwb")

    def callback(step: int, metrics: dict[str, float]) -> None:
        stop = None
        if stream is not None:
            stream.write((json.dumps({"step": step, "metrics": metrics}) + "\n").encode())
            stream.flush()
            reply = stream.readline()
            if not reply:
                raise RuntimeError("the launching process closed the callback connection")
            stop = json.loads(reply)["stop"]
        stop = parallel.broadcast(stop)
        if stop is not None:
            raise TrainingStopped(stop)

    return callback
