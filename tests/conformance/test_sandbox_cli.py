"""`eks-cilium sandbox up|status|fault|pods|down` as a user runs them: a detached sandbox, its state directory,
stale-state detection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

CLI = str(Path(sys.executable).parent / "eks-cilium")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CLI, "sandbox", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


def test_up_detached_status_faults_down(tmp_path):
    state = tmp_path / "state"
    up = cli("up", "--detach", "--state-dir", str(state))
    assert up.returncode == 0, up.stderr
    try:
        env = (state / "sandbox.env").read_text()
        assert "AWS_ENDPOINT_URL=http://127.0.0.1:" in env and "EKS_CILIUM_CHART_REPO_URL=" in env
        assert oct((state / "sandbox.env").stat().st_mode & 0o777) == "0o600"
        st = cli("status", "--state-dir", str(state))
        assert st.returncode == 0 and "cluster isovalent-demo" in st.stdout and "0 fault rule(s)" in st.stdout
        f = cli("fault", "--state-dir", str(state), "--verb", "patch", "--resource", "daemonsets", "--count", "2")
        assert f.returncode == 0, f.stderr
        p = cli("pods", "--state-dir", str(state), "--selector", "k8s-app=cilium", "--mode", "crashloop")
        assert p.returncode == 0, p.stderr
        st = cli("status", "--state-dir", str(state))
        assert "1 fault rule(s), 1 pod polic" in st.stdout
        again = cli("up", "--detach", "--state-dir", str(state))
        assert again.returncode == 0, "a second `up` reuses the running sandbox"
    finally:
        down = cli("down", "--state-dir", str(state))
    assert down.returncode == 0 and "stopped" in down.stdout
    assert not state.exists()
    assert cli("status", "--state-dir", str(state)).returncode == 1


def test_stale_state_is_detected_and_cleaned(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (state / "state.json").write_text(json.dumps({"pid": dead.pid, "control_url": "http://127.0.0.1:9"}))
    st = cli("status", "--state-dir", str(state))
    assert st.returncode == 1 and "removing stale state" in st.stderr
    assert not state.exists()
