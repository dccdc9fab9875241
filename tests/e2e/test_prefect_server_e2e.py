"""Operating through Prefect for real: a Prefect server, `prefect deploy --all`, process workers, runs started
through the API against the sandbox, and a fleet of clusters shared by two workers."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import start_sandbox
from tests.support.prefect_server import Workers, api_settings, cluster_configs, fleet_members, worker_env

pytestmark = pytest.mark.slow


def test_install_started_through_the_api_runs_on_a_worker_to_completion(
    prefect_server, tmp_path, monkeypatch, isolated_tools
):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    sb = start_sandbox(tmp_path, monkeypatch)
    workers = Workers(worker_env(prefect_server, sb, tmp_path / "worker-home"), 1, tmp_path)
    try:
        cfg, stack = cluster_configs(tmp_path, "isovalent-demo", sb.chart_repo_url)
        params = {
            "stack": stack,
            "options": {"config_dir": str(cfg), "environment": "sandbox", "poll_interval_seconds": 0.2},
        }
        key = f"ticket-{uuid.uuid4()}"
        with api_settings(prefect_server):
            run = run_deployment("install-stack/install-stack", parameters=params, timeout=400, idempotency_key=key)
            assert run.state.is_completed(), f"{run.state.name}: {run.state.message}"
            again = run_deployment("install-stack/install-stack", parameters=params, timeout=0, idempotency_key=key)
            assert again.id == run.id, "the same idempotency key must not start a second install"
            from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

            with get_client(sync_client=True) as client:
                arts = client.read_artifacts(
                    artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["verification-isovalent-demo"]))
                )
            assert arts and "All checks passed" in str(arts[0].data)
            assert "| ✅ | nodes Ready | 2 Ready | 2 Ready of 2 |" in str(arts[0].data)
    finally:
        workers.stop()
        sb.stop()


@pytest.mark.parametrize(
    "params, key",
    [
        ({"options": {"dry_rn": True}}, "dry_rn"),
        ({"optoins": {}}, "optoins"),
        ({"options": {"timeouts": {"nodes": "soon"}}}, "soon"),
    ],
)
def test_bad_parameters_are_refused_by_the_api_naming_the_key(prefect_server, params, key):
    """Unknown keys (nested or top level) and wrong types are refused when the run is created: nothing runs."""
    from prefect.deployments import run_deployment

    with api_settings(prefect_server), pytest.raises(Exception) as e:
        run_deployment("install-stack/install-stack", parameters=params, timeout=0)
    assert key in str(e.value)


def test_fleet_of_five_clusters_checked_by_two_workers(prefect_server, tmp_path, monkeypatch, isolated_tools, capsys):
    from flows.fleet import FleetAction, fleet
    from sandbox.runner import ClusterProfile

    names = [f"fleet-{i}" for i in range(1, 6)]
    sb = start_sandbox(tmp_path, monkeypatch, clusters=names, profile=ClusterProfile())
    workers = Workers(worker_env(prefect_server, sb, tmp_path / "worker-home"), 2, tmp_path)
    try:
        members = fleet_members(tmp_path, names, sb.chart_repo_url, poll_seconds=0.2)
        with api_settings(prefect_server):
            installed = fleet(members=members, action=FleetAction.install, max_concurrent=10)
            assert installed["counts"] == {"ok": 5, "drifted": 0, "error": 0}, installed["rows"]
            one = fleet(members=members[:1], action=FleetAction.check_drift, max_concurrent=10)
            five = fleet(members=members, action=FleetAction.check_drift, max_concurrent=10)
        assert one["counts"]["ok"] == 1 and five["counts"] == {"ok": 5, "drifted": 0, "error": 0}, five["rows"]
        assert sorted(r["cluster"] for r in five["rows"]) == [f"us-east-1/{n}" for n in names]
        with capsys.disabled():
            print(
                f"\nfleet timings: install 5 = {installed['seconds']} s, drift 1 = {one['seconds']} s, "
                f"drift 5 = {five['seconds']} s "
                f"(2 workers)"
            )
    finally:
        workers.stop()
        sb.stop()


def test_a_fleet_member_whose_run_cannot_start_is_an_error_row_and_the_fleet_still_reports(prefect_server):
    from flows.fleet import FleetAction, FleetMember, fleet

    with api_settings(prefect_server):
        result = fleet(
            members=[FleetMember(), FleetMember()],
            action=FleetAction.check_drift,
            deployment="check-drift/no-such-deployment",
        )
    assert result["counts"] == {"ok": 0, "drifted": 0, "error": 2}
    assert all(
        r["state"] == "NOT_STARTED" and "could not run check-drift/no-such-deployment" in r["message"]
        for r in result["rows"]
    )


def test_only_busy_or_unreachable_prefect_api_errors_are_retried():
    import httpx
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

    from flows.fleet import transient_api_error

    def status(code: int) -> PrefectHTTPStatusError:
        request = httpx.Request("POST", "http://127.0.0.1/api/x")
        return PrefectHTTPStatusError("x", request=request, response=httpx.Response(code, request=request))

    assert transient_api_error(status(503)) and transient_api_error(status(429))
    assert transient_api_error(httpx.ConnectError("refused"))
    assert not transient_api_error(status(422)) and not transient_api_error(ObjectNotFound(None))


def test_a_fleet_member_whose_run_the_worker_cannot_start_is_resubmitted_then_reported(prefect_server, tmp_path):
    """A worker that fails to start a run's process (seen under load as a 503 while it labels the run; here its
    command does not exist) crashes the run before any flow code ran; the fleet submits a fresh run, and reports
    the member as an error after the last."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId

    from flows.fleet import SUBMISSIONS, FleetAction, FleetMember, fleet

    with api_settings(prefect_server), get_client(sync_client=True) as client:
        good = client.read_deployment_by_name("check-drift/check-drift")
        # Same flow and pool, but the worker cannot spawn the run's process: its command does not exist.
        broken = client.create_deployment(
            flow_id=good.flow_id,
            name=f"unstartable-{uuid.uuid4().hex[:8]}",
            work_pool_name=good.work_pool_name,
            entrypoint=good.entrypoint,
            path=good.path,
            job_variables={"command": str(tmp_path / "no-such-python") + " -m prefect.engine"},
            parameter_openapi_schema=good.parameter_openapi_schema,
        )
        name = f"check-drift/{client.read_deployment(broken).name}"
    workers = Workers({**prefect_server}, 1, tmp_path)
    try:
        with api_settings(prefect_server):
            result = fleet(
                members=[FleetMember()], action=FleetAction.check_drift, deployment=name, timeout_seconds=300
            )
            with get_client(sync_client=True) as client:
                runs = client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[broken]))
                )
    finally:
        workers.stop()
    [row] = result["rows"]
    assert row["result"] == "error" and row["state"] == "CRASHED", row
    assert "could not start" in row["message"] and row["message"].count("resubmitted after") == SUBMISSIONS - 1, row
    assert len(runs) == SUBMISSIONS and all(r.state.type.value == "CRASHED" for r in runs), [
        (r.name, r.state) for r in runs
    ]
