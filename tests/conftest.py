"""Shared fixtures: the repo's configs, the runbook, a network guard and isolated tool homes."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
SHARED = Path(os.environ.get("EKS_CILIUM_SHARED", ROOT.parent / "shared"))
RUNBOOK = SHARED / "runbook" / "isovalent-eks-runbook.ja.txt"

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
        pytest.fail(f"runbook not found at {RUNBOOK}; set EKS_CILIUM_SHARED to the shared/ directory")
    return RUNBOOK.read_text()
