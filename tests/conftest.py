"""Shared fixtures: the repo's configs, the runbook, a network guard and isolated tool homes."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
# The runbook is vendored (configs/runbook/README.md says where it came from): the clone needs nothing beside it.
RUNBOOK = CONFIGS / "runbook" / "isovalent-eks-runbook.ja.txt"

_real_connect = socket.socket.connect


def _guarded_connect(self: socket.socket, address) -> None:  # type: ignore[no-untyped-def]
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = ipaddress.ip_address(socket.gethostbyname(host)) if host == "localhost" else None
        if ip is None or not ip.is_loopback:
            raise RuntimeError(f"test tried to reach a non-loopback address {address!r}")
    return _real_connect(self, address)


@pytest.fixture(autouse=True, scope="session")
def _loopback_only():
    """Any attempt from the test process to reach the outside world fails loudly."""
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]


@pytest.fixture
def runbook_text() -> str:
    if not RUNBOOK.exists():
        pytest.fail(
            f"runbook not found at {RUNBOOK}: it is part of the repository (configs/runbook/); restore it from git"
        )
    return RUNBOOK.read_text()


# ---- sandbox and tool fixtures ------------------------------------------------------------------------------
TOOLS = ROOT / ".tools" / "bin"
HELMS = {"helm3": TOOLS / "helm3", "helm4": TOOLS / "helm4"}


def tool_env(home: Path) -> dict[str, str]:
    """An isolated HOME, kube cache and helm homes (helm and kubectl cache discovery per host:port)."""
    return {
        "HOME": str(home),
        "KUBECACHEDIR": str(home / "kubecache"),
        "HELM_CONFIG_HOME": str(home / "helm-config"),
        "HELM_CACHE_HOME": str(home / "helm-cache"),
        "HELM_DATA_HOME": str(home / "helm-data"),
    }


@pytest.fixture
def isolated_tools(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    for k, v in tool_env(home).items():
        monkeypatch.setenv(k, v)
    return home


@pytest.fixture(params=["helm3", "helm4"])
def helm_binary(request, monkeypatch):
    path = HELMS[request.param]
    if not path.exists():
        pytest.fail(f"{path} is missing: run scripts/bootstrap")
    monkeypatch.setenv("EKS_CILIUM_HELM", str(path))
    return str(path)


def start_sandbox(tmp_path: Path, monkeypatch, **config):
    from sandbox.runner import Sandbox, SandboxConfig

    sb = Sandbox(SandboxConfig(state_dir=tmp_path / "sandbox", **config)).start()
    for k, v in sb.env().items():
        if k != "KUBECONFIG":
            monkeypatch.setenv(k, v)
    return sb


@pytest.fixture
def sandbox(tmp_path, monkeypatch, isolated_tools):
    sb = start_sandbox(tmp_path, monkeypatch)
    yield sb
    sb.stop()


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect API for the whole session (starting one costs ~20 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """One real Prefect server (API + UI) with our deployments, shared by the tests that operate through Prefect."""
    from tests.support.prefect_server import running_prefect_server

    with running_prefect_server(tmp_path_factory.mktemp("prefect-home")) as env:
        yield env


# The folder a test lives in is its tier: `-m "not e2e"` is the quick tier (unit, conformance).
TIERS = {"unit": (), "conformance": ("conformance",), "e2e": ("e2e",), "browser": ("e2e", "browser")}


def pytest_collection_modifyitems(config, items):  # type: ignore[no-untyped-def]
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT).parts
        tier = parts[1] if len(parts) > 2 and parts[0] == "tests" else None
        for marker in TIERS.get(tier or "", ()):
            item.add_marker(getattr(pytest.mark, marker))
