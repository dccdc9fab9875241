"""The open-source edition (`--env oss`): Cilium's public charts, no enterprise parts, every check green, through
the command line a user types."""

from __future__ import annotations

import json
import subprocess
import time

from sandbox import control
from tests.e2e.test_interrupt_e2e import _cli, _env


def test_the_oss_edition_installs_cilium_s_public_charts_through_the_cli_with_every_check_green(tmp_path):
    env = _env(tmp_path)
    up = _cli(env, "sandbox", "up", "--detach", timeout=180)
    assert up.returncode == 0, up.stderr
    try:
        t0 = time.monotonic()
        proc = _cli(env, "install", "--sandbox", "--env", "oss", "--output", "json", timeout=600)
        print(f"\noss edition: install --sandbox --env oss exit {proc.returncode} in {time.monotonic() - t0:.1f} s")
        assert proc.returncode == 0, proc.stderr[-5000:]
        result = json.loads(proc.stdout)
        checks = result["verification"]["checks"]
        assert result["ok"] and [c["name"] for c in checks if not c["ok"]] == []
        assert {r: v["action"] for r, v in result["releases"].items()} == {
            "cilium": "installed",
            "tetragon": "installed",
        }
        names = " ".join(c["name"] for c in checks)
        assert "Hubble Relay" in names and "tetragon: operator" in names
        assert "Timescape" not in names and "dnsproxy" not in names

        # Installed from the sandbox's mirror of https://helm.cilium.io, with none of the enterprise values.
        state_dir = tmp_path / "sandbox"
        state = control.running(state_dir)
        assert state is not None
        helm = [env["EKS_CILIUM_HELM"], "--kubeconfig", control.env_for(state, state_dir)["KUBECONFIG"]]
        values = json.loads(_run(env, *helm, "get", "values", "cilium", "-n", "kube-system", "-o", "json"))
        assert "enterprise" not in values and "extraConfig" not in values and "timescape" not in values["hubble"]
        assert "flow_export" not in values["hubble"]["metrics"]["enabled"]
        charts = {r["name"]: r["chart"] for r in json.loads(_run(env, *helm, "list", "-A", "-o", "json"))}
        assert charts == {"cilium": "cilium-1.18.4", "tetragon": "tetragon-1.5.0"}
    finally:
        _cli(env, "sandbox", "down", timeout=60)


def _run(env: dict[str, str], *argv: str) -> str:
    proc = subprocess.run(list(argv), env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout
