"""pid_alive: the one liveness check behind the cluster lock's takeover and the sandbox's stale-state cleanup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tasks.adapters.processes import pid_alive


def test_a_running_process_is_alive_and_this_one_too():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert pid_alive(child.pid)
        assert pid_alive(os.getpid())
    finally:
        child.kill()
        child.wait()


def test_a_killed_process_not_yet_reaped_counts_as_gone():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    os.kill(child.pid, signal.SIGKILL)
    try:
        # Not waited for: the process is a zombie until reaped, yet it holds nothing.
        deadline = time.monotonic() + 10
        while pid_alive(child.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pid_alive(child.pid)
    finally:
        child.wait()
    assert not pid_alive(child.pid)


def test_pids_that_address_process_groups_are_never_alive():
    assert not pid_alive(0)
    assert not pid_alive(-1)
