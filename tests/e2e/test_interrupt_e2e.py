"""Ctrl-C and SIGTERM of the command line, as an operator (or `timeout`, or a CI job timeout) sends them.

The CLI runs `eks-cilium install --sandbox` against a detached sandbox with realistic delays, so the signal lands
while the run waits for the nodegroup. Expected, like helm or cilium-cli: it stops at once (the test prints the figure),
exits 128 + the signal, prints exactly one line saying what was
interrupted and that a re-run resumes, leaves no process behind, writes nothing to stdout under `--output json`,
and the next run converges (it recovers the release the stopped helm left failed).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tasks.adapters.processes import descendants, pid_alive
from tests.conftest import ROOT, TOOLS, tool_env
from tests.support.commands import spawn

pytestmark = pytest.mark.slow
CLI = str(Path(sys.executable).parent / "eks-cilium")


def _env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {
        **os.environ,
        **tool_env(home),
        "EKS_CILIUM_SANDBOX_DIR": str(tmp_path / "sandbox"),
        "PREFECT_HOME": str(home / ".prefect"),
        "PYTHONWARNINGS": "ignore",
        "EKS_CILIUM_HELM": str(TOOLS / "helm3"),
    }


def _cli(env: dict[str, str], *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


class Run:
    """A CLI process whose stderr is collected line by line with arrival times."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.proc = spawn([CLI, *args], env)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never appeared:\n{''.join(self.lines[-60:])}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_install_stops_at_once_with_one_line_and_the_next_run_converges(sig, tmp_path):
    env = _env(tmp_path)
    up = _cli(env, "sandbox", "up", "--detach", "--realistic", timeout=180)
    assert up.returncode == 0, up.stderr
    try:
        run = Run(env, "install", "--sandbox", "--output", "json")
        # The nodegroup takes ~20 s to come up in a realistic sandbox: the signal lands while the run waits for it.
        run.wait_for("CreateNodegroup", timeout=300)
        started = descendants(run.proc.pid)
        before = len(run.lines)
        t0 = time.monotonic()
        if sig is signal.SIGINT:
            os.killpg(run.proc.pid, sig)  # a terminal's Ctrl-C reaches the whole foreground process group
        else:
            os.kill(run.proc.pid, sig)  # `timeout` and CI job timeouts signal the command only
        code = run.proc.wait(60)
        stopped_after = time.monotonic() - t0
        run.reader.join(10)
        assert run.proc.stdout is not None
        stdout = run.proc.stdout.read()
        print(f"\n{sig.name}: exit {code} {stopped_after:.2f} s after the signal")

        assert code == 128 + sig, "".join(run.lines[-40:])
        after = run.lines[before:]
        assert len(after) == 1, "".join(after)
        assert f"interrupted ({sig.name})" in after[0] and "install of isovalent-demo (us-east-1)" in after[0]
        assert "run the same command again to resume" in after[0]
        assert stdout == "", "--output json writes nothing but JSON to stdout"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(pid_alive(p) for p in started):
            time.sleep(0.1)
        assert not [p for p in started if pid_alive(p)], "a process the CLI started outlived it"

        again = _cli(env, "install", "--sandbox", "--output", "json", timeout=500)
        assert again.returncode == 0, again.stderr[-5000:]
        result = json.loads(again.stdout)
        assert result["ok"] and not [c for c in result["verification"]["checks"] if not c["ok"]]
    finally:
        _cli(env, "sandbox", "down", timeout=60)
