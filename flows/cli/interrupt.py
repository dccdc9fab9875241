"""Ctrl-C and SIGTERM for the command line: stop within a second or two, like helm or cilium-cli.

The CLI runs its flow in a worker thread and keeps the main thread free for signals, so a signal is handled at
once whatever the flow is doing (and Prefect, which swaps SIGTERM only in the main thread, does not turn it into
a graceful shutdown that waits minutes for sensors). On SIGINT or SIGTERM: one line on stderr saying what was
interrupted and that a re-run resumes, this run's helm processes stopped (helm marks the release failed, which
the next run recovers), the cluster lock released when it can be within a second, the processes this command
started (the temporary Prefect server) killed, and exit 128 + the signal number (130 for Ctrl-C, 143 for TERM).
A second signal exits at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
SIGNALS = (signal.SIGINT, signal.SIGTERM)
GRACE_SECONDS = 1.0


class _Interrupted:
    def __init__(self, what: str) -> None:
        self.what = what
        self.stopping = False

    def handle(self, signum: int, frame: Any) -> None:
        if self.stopping:
            os._exit(128 + signum)
        self.stopping = True
        name = signal.Signals(signum).name
        # Nothing else may print from here on: the run's threads may still log for the second this takes, and one
        # may be half-way through writing a line already (logging.disable does not stop that), so stdout and
        # stderr are pointed at /dev/null and our one line goes to a copy of the real stderr.
        logging.disable(logging.CRITICAL)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        err = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.write(
            err,
            (
                f"eks-cilium: interrupted ({name}): stopped the {self.what}; "
                "run the same command again to resume (it recovers what this run left half-done)\n"
            ).encode(),
        )
        stop_everything_started(GRACE_SECONDS)
        os._exit(128 + signum)


def stop_everything_started(grace: float) -> None:
    """Stop this process's helm runs, release held cluster locks, then stop every process it started in its session."""
    from tasks.adapters.helm import cancel_all
    from tasks.adapters.processes import descendants, pid_alive, same_session

    deadline = time.monotonic() + grace
    with contextlib.suppress(Exception):
        cancel_all(grace_seconds=grace / 2)
    with contextlib.suppress(Exception):
        from tasks.steps.lock import release_held_locks

        release_held_locks(timeout=max(0.1, deadline - time.monotonic()))
    # What is left (the temporary Prefect server, helm runs that ignored the cancel) is killed outright: a graceful
    # stop has nothing to save and makes the server log shutdown tracebacks onto the stderr it shares with us.
    pids = [p for p in descendants(os.getpid()) if same_session(p)]
    for p in pids:
        with contextlib.suppress(OSError):
            os.kill(p, signal.SIGKILL)
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.05)


def run_interruptibly(fn: Callable[[], T], what: str) -> T:
    """Run `fn` in a worker thread; SIGINT/SIGTERM in the main thread stop everything and exit (see module doc)."""
    if threading.current_thread() is not threading.main_thread():
        return fn()
    state = _Interrupted(what)
    previous = {s: signal.signal(s, state.handle) for s in SIGNALS}
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["result"] = fn()
        except BaseException as e:  # handed to the main thread
            box["error"] = e

    worker = threading.Thread(target=work, name="eks-cilium-run", daemon=True)
    try:
        worker.start()
        while worker.is_alive():
            worker.join(0.2)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    if "error" in box:
        raise box["error"]
    return box["result"]
