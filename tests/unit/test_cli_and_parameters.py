"""Bad command-line arguments and flow parameters are rejected before anything runs, naming what is wrong."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from flows.cli import main
from tasks.options import RunOptions
from tests.conftest import CONFIGS


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["render", "--env", "../../etc"], "environment name '../../etc' is not valid"),
        (["render", "--env", "staging"], "known environments: oss, production, sandbox"),
        (["render", "--endpoint", "http://api.example.com"], "uses scheme 'http'"),
        (["render", "--endpoint", "https://api.example.com;rm -rf /"], "does not name a host"),
        (["render", "--endpoint", "https://user:pw@api.example.com"], "credentials"),
        (["render", "--config-dir", "/nonexistent"], "does not exist"),
        (["install", "--stack", "/nonexistent/stack.yaml"], "does not exist"),
        (["drift", "--stack", "/nonexistent/stack.yaml"], "does not exist"),
    ],
)
def test_bad_cli_arguments_fail_with_exit_1_and_a_message(argv, needle, capsys):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


@pytest.mark.parametrize(
    "argv", [["install", "--output", "xml"], ["render", "--bogus"], ["sandbox", "up", "--profile", "huge"], []]
)
def test_unknown_cli_options_are_usage_errors(argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2


def test_stack_file_with_injection_in_release_name_is_rejected(tmp_path, capsys):
    import yaml

    data = yaml.safe_load((CONFIGS / "stack.yaml").read_text())
    data["releases"]["x --set image.repository=evil"] = data["releases"].pop("tetragon")
    bad = tmp_path / "stack.yaml"
    bad.write_text(yaml.safe_dump(data))
    assert main(["install", "--stack", str(bad), "--config-dir", str(CONFIGS)]) == 1
    assert "releases.x --set image.repository=evil" in capsys.readouterr().err


def test_render_prints_all_files_with_the_endpoint(capsys):
    assert main(["render", "--endpoint", "https://ABC.gr7.us-east-1.eks.amazonaws.com"]) == 0
    out = capsys.readouterr().out
    assert "k8sServiceHost: ABC.gr7.us-east-1.eks.amazonaws.com" in out
    assert "# --- release tetragon: isovalent/tetragon 1.18.0 in tetragon" in out
    assert "nodegroupName: standard" in out


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"dry_rn": True}, "dry_rn"),
        ({"timeouts": {"nodes": "soon"}}, "timeouts.nodes"),
        ({"timeouts": {"node": 5}}, "timeouts.node"),
        ({"poll_interval_seconds": 0}, "poll_interval_seconds"),
        ({"environment": "Prod"}, "environment"),
        ({"nodegroup_method": "terraform"}, "nodegroup_method"),
        ({"values_overrides": ["debug"]}, "values_overrides"),
        ({"lock_wait_seconds": -1}, "lock_wait_seconds"),
    ],
)
def test_bad_run_options_name_the_field(params, loc):
    with pytest.raises(ValidationError) as e:
        RunOptions.model_validate(params)
    assert loc in str(e.value).replace("\n", ".").replace("  ", "")


def test_no_aws_credentials_is_three_lines_and_no_traceback(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    cli = str(Path(sys.executable).parent / "eks-cilium")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([cli, "install", "--dry-run"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 3 and lines[0] == "error: no AWS credentials found", done.stderr
    assert "Traceback" not in done.stderr
