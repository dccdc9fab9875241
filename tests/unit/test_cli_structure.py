"""The CLI package's own rules: the sandbox is imported only by flows/cli/sandbox.py and only when a sandbox
command or option needs it; its choices come from the sandbox's tables; one state directory rule."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from flows.cli import sandbox as cli_sandbox
from flows.cli.parser import build_parser
from tests.conftest import ROOT


def _sandbox_imports(path: Path) -> list[tuple[int, bool]]:
    """(line, at module level) of every `import sandbox...` in the file."""
    tree = ast.parse(path.read_text(), str(path))
    top = {id(n) for n in tree.body}
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        if any(n == "sandbox" or n.startswith("sandbox.") for n in names):
            found.append((node.lineno, id(node) in top))
    return found


def test_only_the_cli_sandbox_module_imports_the_sandbox_and_only_lazily():
    product = [*sorted((ROOT / "flows").rglob("*.py")), *sorted((ROOT / "tasks").rglob("*.py"))]
    importers = {p.relative_to(ROOT).as_posix(): _sandbox_imports(p) for p in product}
    importers = {p: found for p, found in importers.items() if found}
    assert set(importers) == {"flows/cli/sandbox.py"}
    assert not any(at_top for _, at_top in importers["flows/cli/sandbox.py"])


def test_render_and_help_work_without_the_sandbox_installed():
    # A finder that refuses `sandbox` stands for a machine without the sandbox extras.
    code = """
import importlib.abc, sys
class NoSandbox(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "sandbox" or name.startswith("sandbox."):
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, NoSandbox())
from flows.cli import main
assert main(["render"]) == 0
try:
    main(["sandbox", "--help"])
except SystemExit as e:
    assert e.code == 0
"""
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "nodegroupName: standard" in run.stdout


def test_profile_and_pod_mode_choices_are_the_sandboxs_own():
    from sandbox.control import PROFILES
    from sandbox.kube.controllers import PodFaultMode

    assert list(cli_sandbox.PROFILES) == list(PROFILES)
    assert list(cli_sandbox.POD_FAULT_MODES) == [m.value for m in PodFaultMode]
    args = build_parser().parse_args(["sandbox", "up", "--profile", "existing-nodegroup"])
    assert args.profile == "existing-nodegroup"


def test_the_state_directory_is_one_rule_for_sandbox_commands_and_the_sandbox_option(monkeypatch, tmp_path):
    monkeypatch.setattr(cli_sandbox, "DEFAULT_STATE", tmp_path / "default")
    parser = build_parser()
    for command in (["up"], ["status"], ["down"], ["fault"], ["pods"]):
        assert cli_sandbox.state_dir(parser.parse_args(["sandbox", *command])) == tmp_path / "default"
    given = parser.parse_args(["sandbox", "status", "--state-dir", str(tmp_path / "given")])
    assert cli_sandbox.state_dir(given) == tmp_path / "given"
    assert cli_sandbox.state_dir(parser.parse_args(["install", "--sandbox"])) == tmp_path / "default"


def test_the_state_directory_follows_the_environment_variable(tmp_path):
    code = "from flows.cli.sandbox import DEFAULT_STATE; print(DEFAULT_STATE)"
    env = {"EKS_CILIUM_SANDBOX_DIR": str(tmp_path / "elsewhere"), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env, timeout=60)
    assert run.stdout.strip() == str(tmp_path / "elsewhere"), run.stderr


def test_a_sandbox_command_without_a_running_sandbox_is_one_error_line(monkeypatch, tmp_path, capsys):
    from flows.cli import main

    monkeypatch.setattr(cli_sandbox, "DEFAULT_STATE", tmp_path / "none")
    assert main(["sandbox", "fault", "--clear"]) == 1
    assert capsys.readouterr().err.startswith("error: no sandbox is running")
    with pytest.raises(SystemExit) as e:
        main(["sandbox", "pods", "--mode", "sideways"])
    assert e.value.code == 2


def test_python_dash_m_flows_cli_is_the_command():
    run = subprocess.run(
        [sys.executable, "-m", "flows.cli", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0 and "usage: eks-cilium" in run.stdout
