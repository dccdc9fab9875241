"""Chart-repository credentials come only from a Prefect Secret block and never appear in logs, artifacts,
files left behind or the process list."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from pathlib import Path

import pytest

from flows.install_stack import run_install
from tasks.model import load_stack
from tests.conftest import CONFIGS
from tests.support.flows import options

PASSWORD = "s3cr3t-Pa55w0rd-do-not-leak"


def _process_list() -> str:
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            with contextlib.suppress(OSError):
                out.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
    return "\n".join(out)


def test_repository_password_is_used_but_never_exposed(sandbox, prefect_harness, caplog, isolated_tools):
    from prefect.blocks.system import Secret
    from prefect.client.orchestration import get_client

    sandbox.repo.auth = ("mirror-user", PASSWORD)
    Secret(value={"username": "mirror-user", "password": PASSWORD}).save("isovalent-mirror", overwrite=True)
    stack = load_stack(
        CONFIGS,
        "sandbox",
        patch={"chart_repository": {"url": sandbox.chart_repo_url, "credentials_secret_block": "isovalent-mirror"}},
    )
    seen_in_ps: list[str] = []
    stop = threading.Event()

    def watch_processes():
        while not stop.is_set():
            if PASSWORD in _process_list():
                seen_in_ps.append("found")
            time.sleep(0.05)

    watcher = threading.Thread(target=watch_processes)
    watcher.start()
    caplog.set_level(logging.DEBUG)
    try:
        result = run_install(stack, options())
    finally:
        stop.set()
        watcher.join()
    assert result["ok"], "the charts were fetched with the block's credentials"
    assert not seen_in_ps, "the password appeared in a process's command line"
    assert all(PASSWORD not in r.getMessage() for r in caplog.records)
    assert PASSWORD not in str(result)
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts()
    assert artifacts and all(PASSWORD not in str(a.data) + str(a.description) for a in artifacts)
    leftovers = [p for p in Path("/tmp").glob("eks-cilium-*") if p.is_dir()]
    for directory in [*leftovers, isolated_tools]:
        for f in Path(directory).rglob("*"):
            if f.is_file():
                assert PASSWORD.encode() not in f.read_bytes(), f"password written to {f}"


def test_wrong_credentials_fail_naming_the_repository(sandbox, prefect_harness):
    from prefect.blocks.system import Secret

    from tasks.errors import EksCiliumError

    sandbox.repo.auth = ("mirror-user", PASSWORD)
    Secret(value={"username": "mirror-user", "password": "bad-Pa55-xyz"}).save("isovalent-mirror-bad", overwrite=True)
    stack = load_stack(
        CONFIGS,
        "sandbox",
        patch={"chart_repository": {"url": sandbox.chart_repo_url, "credentials_secret_block": "isovalent-mirror-bad"}},
    )
    with pytest.raises(EksCiliumError) as e:
        run_install(stack, options())
    assert "add chart repository isovalent" in str(e.value) and "401" in str(e.value)
    assert "bad-Pa55-xyz" not in str(e.value)
