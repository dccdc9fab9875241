"""The Prefect steps' own logic, on fake adapters (our Aws / Kube / Helm interfaces, not boto3 or the kubernetes
client): what each step reads, decides, changes and hands on. The e2e tests drive the same steps against the
sandbox; these say in milliseconds which branch of a step broke."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prefect.logging import disable_run_logger

from tasks.errors import PermanentError, PreflightFailed, ReleaseNotFound, TransientError
from tasks.model import load_stack
from tasks.options import RunOptions
from tasks.render import load_inputs, render_stack
from tasks.results import ClusterEndpoint, NodegroupAction, PreflightResult, ReleaseAction
from tasks.steps.nodegroup import create_nodegroup
from tasks.steps.preflight import run_preflight
from tasks.steps.releases import install_release
from tasks.steps.runtime import RunContext
from tasks.values import normalise_endpoint
from tests.conftest import CONFIGS

STACK = load_stack(CONFIGS, "sandbox")
ENDPOINT = ClusterEndpoint("https://10.0.0.1:443", "10.0.0.1", 443, "Q0E=", ("s-a", "s-b"), "vpc-1", "1.33")
RENDERED = render_stack(load_inputs(CONFIGS, STACK), normalise_endpoint(ENDPOINT.endpoint))
NG = RENDERED.nodegroup
ROLE = "arn:aws:iam::123456789012:role/isovalent-demo-node-role"


@dataclass
class FakeAws:
    """The AWS adapter's interface over a dict of facts; records every change it is asked for."""

    addons: list[str] = field(default_factory=list)
    nodegroup: dict[str, Any] | None = None
    roles: dict[str, str] = field(default_factory=lambda: {"isovalent-demo-node-role": ROLE})
    created: list[dict[str, Any]] = field(default_factory=list)

    def list_addons(self, cluster: str) -> list[str]:
        return self.addons

    def caller_arn(self) -> str:
        return "arn:aws:iam::123456789012:user/tester"

    def describe_subnets(self, ids: list[str]) -> list[dict[str, Any]]:
        return [{"SubnetId": s, "VpcId": "vpc-1", "AvailabilityZone": f"az-{s}"} for s in ids]

    def describe_route_tables(self, vpc: str) -> list[dict[str, Any]]:
        return [{"Associations": [{"Main": True}], "Routes": [{"DestinationCidrBlock": "10.0.0.0/16"}]}]

    def list_role_names(self) -> list[str]:
        return list(self.roles)

    def get_role_arn(self, name: str) -> str | None:
        return self.roles.get(name)

    def describe_nodegroup(self, cluster: str, name: str) -> dict[str, Any] | None:
        return self.nodegroup

    def create_nodegroup(self, request: dict[str, Any]) -> None:
        self.created.append(request)


@dataclass
class FakeKube:
    daemonsets: list[str] = field(default_factory=list)
    nodes: list[dict[str, Any]] = field(default_factory=list)
    admin: bool = True

    def __enter__(self) -> FakeKube:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def can_i(self, verb: str, resource: str, group: str = "*", namespace: str | None = None) -> tuple[bool, str]:
        return self.admin, "" if self.admin else "RBAC: forbidden"

    def list_nodes(self) -> list[dict[str, Any]]:
        return self.nodes

    def list_daemonsets(self, namespace: str) -> list[dict[str, Any]]:
        return [{"metadata": {"name": d}} for d in self.daemonsets]

    def crd_exists(self, name: str) -> bool:
        return True


@dataclass
class FakeHelm:
    """helm by subcommand: the releases it knows (name -> metadata and values) and the charts its repo has."""

    releases: dict[str, dict[str, Any]] = field(default_factory=dict)
    charts: dict[str, list[str]] = field(default_factory=dict)  # chart -> versions
    status_after_install: str = "deployed"
    ran: list[list[str]] = field(default_factory=list)

    def run(self, argv: list[str], *, what: str, stdin: str | None = None, timeout: float | None = None) -> str:
        self.ran.append(argv)
        return ""

    def run_json(self, argv: list[str], *, what: str, stdin: str | None = None, timeout: float | None = None) -> Any:
        self.ran.append(argv)
        words = [a for a in argv[1:4] if not a.startswith("-")]
        if words[:1] == ["list"]:
            return [
                {"name": n, "status": r["status"], "revision": r["revision"], "chart": r["chart"]}
                for n, r in self.releases.items()
            ]
        if words[:2] == ["search", "repo"]:
            return [{"version": v} for v in self.charts.get(argv[3], [])]
        if words[:1] == ["get"]:
            name = argv[3]
            if name not in self.releases:
                raise ReleaseNotFound(what, argv=argv, returncode=1, stderr="Error: release: not found")
            rel = self.releases[name]
            return rel["values"] if words[1] == "values" else {k: rel[k] for k in ("status", "version", "revision")}
        if words[:1] == ["upgrade"]:
            name, chart_version = argv[3], argv[argv.index("--version") + 1]
            revision = self.releases.get(name, {}).get("revision", 0) + 1
            self.releases[name] = {
                "status": self.status_after_install,
                "version": chart_version,
                "revision": revision,
                "chart": f"{name}-{chart_version}",
                "values": json.loads(Path(argv[argv.index("--values") + 1]).read_text() or "{}"),
            }
            return {"version": revision, "info": {"status": self.status_after_install}}
        return None


class FakeContext(RunContext):
    """A run context whose adapters are the fakes above."""

    fakes: tuple[FakeAws, FakeKube, FakeHelm]

    def aws(self) -> Any:
        return self.fakes[0]

    def kube(self) -> Any:
        return self.fakes[1]

    def helm(self, redact: tuple[str, ...] = ()) -> Any:
        return self.fakes[2]


def every_chart() -> dict[str, list[str]]:
    return {r.chart: [r.version] for r in STACK.releases.values()}


@pytest.fixture
def context(tmp_path):
    def make(aws: FakeAws | None = None, kube: FakeKube | None = None, helm: FakeHelm | None = None) -> FakeContext:
        ctx = FakeContext(STACK, RunOptions(), CONFIGS, tmp_path, "helm")
        ctx.fakes = (aws or FakeAws(), kube or FakeKube(), helm or FakeHelm(charts=every_chart()))
        for name, values in RENDERED.values.items():
            Path(ctx.values_file(name)).write_text(json.dumps(values))
        return ctx

    with disable_run_logger():
        yield make


def test_preflight_on_a_clean_cluster_resolves_the_nodegroup_request(context):
    ctx = context()
    result = run_preflight.fn(ctx, ENDPOINT, RENDERED)
    assert isinstance(result, PreflightResult) and not result.nodegroup_exists and result.releases == {}
    assert result.nodegroup_request is not None
    assert result.nodegroup_request["nodeRole"] == ROLE and result.nodegroup_request["subnets"] == ["s-a", "s-b"]
    renders = [a for a in ctx.fakes[2].ran if a[1] == "upgrade"]
    assert renders and all("--dry-run=server" in a for a in renders)  # the preflight only renders


def test_preflight_reports_every_problem_together_and_changes_nothing(context):
    aws = FakeAws(addons=["vpc-cni"], roles={})
    helm = FakeHelm(charts={})
    ctx = context(aws, FakeKube(daemonsets=["aws-node"], admin=False), helm)
    with pytest.raises(PreflightFailed) as failed:
        run_preflight.fn(ctx, ENDPOINT, RENDERED)
    text = "\n".join(failed.value.findings)
    for words in ("vpc-cni", "kube-system/aws-node", "cannot choose the node IAM role", "is not in repository"):
        assert words in text
    assert len(failed.value.findings) >= 5  # add-on, DaemonSet, RBAC, charts, role: one run tells everything
    assert aws.created == [] and not [a for a in helm.ran if a[1] == "upgrade"]


def test_create_nodegroup_leaves_an_identical_nodegroup_alone_and_refuses_a_different_one(context):
    live = {
        "status": "ACTIVE",
        "scalingConfig": {"minSize": NG.min_size, "maxSize": NG.max_size, "desiredSize": NG.desired_size},
        "instanceTypes": list(NG.instance_types),
        "amiType": NG.ami_type,
    }
    aws = FakeAws(nodegroup=live)
    outcome = create_nodegroup.fn(context(aws), RENDERED, PreflightResult(None, True))
    assert outcome.action is NodegroupAction.unchanged and aws.created == []
    aws.nodegroup = {**live, "instanceTypes": ["t3.nano"]}
    with pytest.raises(PermanentError, match="exists with a different spec"):
        create_nodegroup.fn(context(aws), RENDERED, PreflightResult(None, True))


def test_create_nodegroup_sends_the_preflights_request(context):
    aws = FakeAws()
    request = {"nodegroupName": NG.name, "subnets": ["s-a"]}
    outcome = create_nodegroup.fn(context(aws), RENDERED, PreflightResult(request, False))
    assert outcome.action is NodegroupAction.created and aws.created == [request]


def test_install_release_installs_then_finds_nothing_to_do(context):
    ctx = context()
    helm = ctx.fakes[2]
    first = install_release.fn(ctx, "tetragon", RENDERED)
    assert first.action is ReleaseAction.installed and first.revision == 1
    again = install_release.fn(ctx, "tetragon", RENDERED)
    assert again.action is ReleaseAction.unchanged and again.revision == 1
    assert len([a for a in helm.ran if a[1] == "upgrade"]) == 1


def test_install_release_that_helm_leaves_pending_is_a_transient_error(context):
    ctx = context(helm=FakeHelm(charts=every_chart(), status_after_install="pending-install"))
    with pytest.raises(TransientError, match="release record says pending-install"):
        install_release.fn(ctx, "tetragon", RENDERED)
