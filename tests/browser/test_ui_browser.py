"""The Prefect UI in a real browser: Debian's headless Chromium, driven by Playwright (no browser download),
against a real Prefect server, a process worker and the sandbox.

A platform engineer opens the install-stack deployment, Run -> Custom run, points the run at their configs and
environment, submits, and reads the verification artifact. Screenshots land in build/ui-screenshots/.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, start_sandbox
from tests.support.prefect_server import Workers, api_settings, cluster_configs, worker_env

CHROMIUM = os.environ.get("EKS_CILIUM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = ROOT / "build" / "ui-screenshots"
# The flags a closed network needs: without the background-networking ones Chromium keeps dialling Google.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

MISSING = f"chromium not found at {CHROMIUM}: apt-get install chromium (.ci/run installs it)"
if not Path(CHROMIUM).exists() and os.environ.get("EKS_CILIUM_REQUIRE_BROWSER"):
    raise RuntimeError(f"EKS_CILIUM_REQUIRE_BROWSER is set but {MISSING}")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=MISSING),
]


@pytest.fixture
def page(prefect_server) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            pg = browser.new_page(viewport={"width": 1400, "height": 1000})
            pg.set_default_timeout(30_000)
            yield pg
        finally:
            browser.close()


def ui_url(server_env: dict[str, str]) -> str:
    return server_env["PREFECT_API_URL"].removesuffix("/api")


def field(page: Any, label: str) -> Any:
    """The schema-form property whose own label is `label` (not an enclosing object's)."""
    return page.locator(
        "xpath=//div[contains(concat(' ', @class, ' '), ' schema-form-property ')]"
        f"[./div[@class='p-label__header']//span[@class='schema-form-property__label' and normalize-space()='{label}']]"
    )


def open_custom_run(page: Any, server_env: dict[str, str]) -> None:
    page.goto(f"{ui_url(server_env)}/deployments")
    page.get_by_role("link", name="install-stack", exact=True).first.click()
    page.wait_for_url(re.compile(r"/deployments/deployment/"))
    page.locator(".run-menu__run-button").click()
    page.get_by_text("Custom run", exact=True).click()
    page.wait_for_url(re.compile(r"/run\b"))
    field(page, "Config Dir (Optional)").locator("textarea").wait_for()


def flow_run_state(server_env: dict[str, str], run_id: str) -> Any:
    from prefect.client.orchestration import get_client

    with api_settings(server_env), get_client(sync_client=True) as client:
        return client.read_flow_run(run_id).state


def run_count(server_env: dict[str, str]) -> int:
    """Runs of the install-stack deployment (the scheduler keeps adding check-drift runs meanwhile)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    with api_settings(server_env), get_client(sync_client=True) as client:
        return client.count_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["install-stack"]))
        )


def test_custom_run_from_the_ui_installs_the_stack_and_shows_two_ready_nodes(
    prefect_server, page, tmp_path, monkeypatch, isolated_tools
):
    sb = start_sandbox(tmp_path, monkeypatch)
    workers = Workers(worker_env(prefect_server, sb, tmp_path / "worker-home"), 1, tmp_path)
    try:
        # The engineer's configs: the repository's, pointed at the sandbox's chart repository.
        cfg, _ = cluster_configs(tmp_path, "isovalent-demo", sb.chart_repo_url)
        stack_file = cfg / "stack.yaml"
        text = stack_file.read_text()
        assert "url: https://helm.isovalent.com" in text
        stack_file.write_text(text.replace("url: https://helm.isovalent.com", f"url: {sb.chart_repo_url}"))
        runs_before = run_count(prefect_server)
        open_custom_run(page, prefect_server)
        field(page, "Config Dir (Optional)").locator("textarea").fill(str(cfg))
        field(page, "Environment (Optional)").locator("textarea, input").first.fill("sandbox")
        field(page, "Poll Interval Seconds (Optional)").locator("input").fill("0.2")
        page.screenshot(path=str(SHOTS / "1-custom-run-form.png"), full_page=True)
        page.get_by_role("button", name="Submit", exact=True).click()

        # The UI returns to the deployment and announces the new run in a toast with a "View run" button.
        # (The toast is rendered twice, stacked; one run is created, checked below.)
        view_run = page.get_by_role("button", name="View run").last
        view_run.wait_for()
        page.screenshot(path=str(SHOTS / "2-run-submitted.png"), full_page=True)
        view_run.click()
        page.wait_for_url(re.compile(r"/runs/flow-run/[0-9a-f-]{36}"))
        run_id = re.search(r"/runs/flow-run/([0-9a-f-]{36})", page.url).group(1)  # type: ignore[union-attr]

        assert run_count(prefect_server) == runs_before + 1, "one Submit must create exactly one run"
        deadline = time.monotonic() + 420
        state = flow_run_state(prefect_server, run_id)
        while not state.is_final() and time.monotonic() < deadline:
            time.sleep(2)
            state = flow_run_state(prefect_server, run_id)
        assert state.is_completed(), f"the run started from the UI ended {state.name}: {state.message}"

        # What the engineer sees: the run page says Completed and the artifact lists the runbook's checks.
        page.reload()
        page.locator(".state-badge", has_text="Completed").first.wait_for()
        page.get_by_text("cluster isovalent-demo in us-east-1").first.wait_for()  # the run's logs
        page.screenshot(path=str(SHOTS / "3-run-completed.png"), full_page=True)
        page.get_by_text("Artifacts", exact=True).click()
        page.get_by_text("verification-isovalent-demo").first.click()
        page.wait_for_url(re.compile(r"/artifacts/"))
        page.get_by_text("All checks passed").first.wait_for()
        row = page.locator("tr", has_text="nodes Ready")
        row.first.wait_for()
        assert "2 Ready of 2" in row.first.inner_text()
        page.screenshot(path=str(SHOTS / "4-verification-artifact.png"), full_page=True)
    finally:
        workers.stop()
        sb.stop()


def test_a_typo_in_the_values_overrides_shows_an_inline_error_and_starts_nothing(prefect_server, page):
    runs_before = run_count(prefect_server)
    open_custom_run(page, prefect_server)
    overrides = field(page, "Values Overrides (Optional)")
    overrides.locator("textarea").fill('{"cilium": {"hubble": {"enabled": tru}}}')
    page.get_by_role("button", name="Submit", exact=True).click()
    # The form checks the parameters before creating the run; the error sits under the field itself.
    overrides.get_by_text("Invalid JSON").wait_for()
    overrides.scroll_into_view_if_needed()  # the form scrolls inside its own pane: full_page would not show it
    page.screenshot(path=str(SHOTS / "5-inline-error.png"))
    assert re.search(r"/run\b", page.url), f"the form must stay open, got {page.url}"
    assert run_count(prefect_server) == runs_before, "an invalid form must not create a flow run"


def test_an_environment_name_breaking_the_naming_rule_is_refused_naming_the_field(prefect_server, page):
    """The UI's own check ignores patterns; the API's (strict deployment schema) refuses the run and the UI shows
    its message, which names the field and the rule."""
    runs_before = run_count(prefect_server)
    open_custom_run(page, prefect_server)
    field(page, "Environment (Optional)").locator("textarea, input").first.fill("Sandbox; rm -rf /")
    page.get_by_role("button", name="Submit", exact=True).click()
    toast = page.locator(".p-toast__message", has_text="Validation failed for field 'options.environment'").first
    toast.wait_for()
    assert "'Sandbox; rm -rf /' does not match" in toast.inner_text()
    page.screenshot(path=str(SHOTS / "6-refused-by-the-api.png"), full_page=True)
    assert run_count(prefect_server) == runs_before, "a refused form must not create a flow run"
