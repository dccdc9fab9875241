"""The AWS side of the sandbox: a moto server on 127.0.0.1 plus the EKS behaviour moto lacks.

- a scenario (VPC with private/public subnets and route tables, node IAM role, EKS clusters) created through
  boto3 against the moto server, as a user would;
- EKS `ListAddons` (moto answers 404), so preflight can ask which managed add-ons exist;
- a cluster that stays CREATING for N `DescribeCluster` calls;
- nodegroups that are CREATING until their nodes are Ready in the cluster's emulator (ACTIVE), or that end
  CREATE_FAILED / DEGRADED with `health.issues`, after configurable delays.
"""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass, field
from typing import Any

ACCOUNT = "123456789012"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}


@dataclass
class NodegroupBehaviour:
    """How a nodegroup created in the sandbox behaves."""

    outcome: str = "ok"  # ok | create_failed | degraded
    active_after_seconds: float = 0.0  # at least this long in CREATING
    fail_after_seconds: float = 60.0  # CREATE_FAILED when nodes are not Ready by then
    issue_code: str = "NodeCreationFailure"
    issue_message: str = "Instances failed to join the kubernetes cluster"


@dataclass
class AwsFault:
    """Make the next `count` calls of an EKS `operation` (e.g. DescribeCluster) fail like AWS does."""

    operation: str
    count: int = 1
    status: int = 429
    code: str = "ThrottlingException"
    message: str = "Rate exceeded"


@dataclass
class ClusterBehaviour:
    creating_polls: int = 0  # DescribeCluster answers CREATING this many times first
    addons: list[str] = field(default_factory=list)  # managed add-ons ListAddons reports
    nodegroup: NodegroupBehaviour = field(default_factory=NodegroupBehaviour)
    describe_calls: int = 0


class AwsSandbox:
    """moto in this process (thread), reachable at `endpoint_url`; behaviours per cluster name."""

    def __init__(self) -> None:
        self.behaviours: dict[str, ClusterBehaviour] = {}
        self.nodegroup_created: dict[tuple[str, str], float] = {}
        self.ready_nodes: dict[str, dict[str, int]] = {}  # cluster -> nodegroup -> Ready nodes (from the emulator)
        self.faults: list[AwsFault] = []
        self.calls: list[str] = []  # EKS operations served, in order (capped)
        self._server: Any = None
        self.endpoint_url = ""
        self.region = "us-east-1"
        self._lock = threading.Lock()

    # ---- server -------------------------------------------------------------------------------------
    def start(self, port: int = 0) -> str:
        _patch_moto(self)
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log would drown the user's output

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self._server.start()
        host, real_port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{real_port}"
        # moto keeps its backends per process: a second sandbox in the same process starts from a clean account.
        import urllib.request

        urllib.request.urlopen(
            urllib.request.Request(self.endpoint_url + "/moto-api/reset", method="POST"), timeout=10
        ).read()
        return self.endpoint_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            region_name=self.region,
            endpoint_url=self.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            aws_session_token="testing",
        )

    def backend(self) -> Any:
        from moto.eks.models import eks_backends

        return eks_backends[ACCOUNT][self.region]

    def take_fault(self, operation: str) -> AwsFault | None:
        with self._lock:
            self.calls = [*self.calls[-999:], operation]
            for f in self.faults:
                if f.operation == operation and f.count != 0:
                    f.count -= 1
                    return f
        return None

    # ---- scenario ------------------------------------------------------------------------------------
    def create_network(self) -> dict[str, Any]:
        """VPC with two private and two public subnets; the private ones route only through a NAT gateway."""
        ec2 = self.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        ec2.create_tags(Resources=[vpc], Tags=[{"Key": "Name", "Value": "isovalent-demo-vpc"}])
        igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
        subnets: dict[str, list[str]] = {"private": [], "public": []}
        layout = [
            ("private", "10.0.0.0/19", "us-east-1a"),
            ("private", "10.0.32.0/19", "us-east-1b"),
            ("public", "10.0.64.0/19", "us-east-1a"),
            ("public", "10.0.96.0/19", "us-east-1b"),
        ]
        for kind, cidr, az in layout:
            sid = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=az)["Subnet"]["SubnetId"]
            role_tag = "kubernetes.io/role/internal-elb" if kind == "private" else "kubernetes.io/role/elb"
            ec2.create_tags(
                Resources=[sid],
                Tags=[{"Key": role_tag, "Value": "1"}, {"Key": "Name", "Value": f"isovalent-demo-{kind}-{az}"}],
            )
            subnets[kind].append(sid)
        public_rt = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        ec2.create_route(RouteTableId=public_rt, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
        for sid in subnets["public"]:
            ec2.associate_route_table(RouteTableId=public_rt, SubnetId=sid)
        nat = ec2.create_nat_gateway(SubnetId=subnets["public"][0])["NatGateway"]["NatGatewayId"]
        private_rt = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        ec2.create_route(RouteTableId=private_rt, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat)
        for sid in subnets["private"]:
            ec2.associate_route_table(RouteTableId=private_rt, SubnetId=sid)
        return {"vpc": vpc, "subnets": subnets}

    def create_roles(self, cluster: str) -> dict[str, str]:
        iam = self.client("iam")
        import json

        def role(name: str, service: str) -> str:
            doc = {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
            }
            try:
                return iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(doc))["Role"]["Arn"]
            except iam.exceptions.EntityAlreadyExistsException:
                return iam.get_role(RoleName=name)["Role"]["Arn"]

        return {
            "cluster": role(f"{cluster}-cluster-role", "eks.amazonaws.com"),
            "node": role(f"{cluster}-node-role", "ec2.amazonaws.com"),
        }

    def create_cluster(
        self, name: str, network: dict[str, Any], behaviour: ClusterBehaviour | None = None
    ) -> dict[str, Any]:
        self.behaviours[name] = behaviour or ClusterBehaviour()
        roles = self.create_roles(name)
        eks = self.client("eks")
        cluster = eks.create_cluster(
            name=name,
            version="1.33",
            roleArn=roles["cluster"],
            resourcesVpcConfig={
                "subnetIds": network["subnets"]["private"] + network["subnets"]["public"],
                "endpointPublicAccess": True,
                "endpointPrivateAccess": True,
            },
            tags={"created-by": "eks-cilium-sandbox"},
        )["cluster"]
        return {"cluster": cluster, "roles": roles}

    def create_preexisting_nodegroup(
        self, cluster: str, network: dict[str, Any], name: str = "legacy", desired: int = 1
    ) -> None:
        roles = self.create_roles(cluster)
        self.client("eks").create_nodegroup(
            clusterName=cluster,
            nodegroupName=name,
            nodeRole=roles["node"],
            subnets=network["subnets"]["private"],
            scalingConfig={"minSize": desired, "maxSize": desired, "desiredSize": desired},
        )

    # ---- nodegroup lifecycle (called from the emulator's loop) ----------------------------------------------
    def nodegroups_of(self, cluster: str) -> list[dict[str, Any]]:
        """Nodegroups whose instances exist (CREATING/ACTIVE/DEGRADED), for the emulator to register nodes."""
        with self._lock:
            c = self.backend().clusters.get(cluster)
            if c is None:
                return []
            out = []
            for ng in list(c.nodegroups.values()):
                if ng.status == "DELETING":
                    continue  # a failed nodegroup keeps its instances, as in EKS; only deletion removes them
                created = self.nodegroup_created.setdefault((cluster, ng.nodegroup_name), time.time())
                out.append(
                    {
                        "name": ng.nodegroup_name,
                        "desired": int(ng.scaling_config.get("desiredSize", 0)),
                        "instance_type": (ng.instance_types or ["m5.large"])[0],
                        "labels": dict(ng.labels or {}),
                        "taints": list(ng.taints or []),
                        "created_at": created,
                    }
                )
            return out

    def report_ready(self, cluster: str, ready: dict[str, int]) -> None:
        """The emulator reports Ready nodes per nodegroup; nodegroup statuses move accordingly."""
        beh = self.behaviours.get(cluster) or ClusterBehaviour()
        nb = beh.nodegroup
        with self._lock:
            c = self.backend().clusters.get(cluster)
            if c is None:
                return
            now = time.time()
            for ng in c.nodegroups.values():
                if ng.status != "CREATING":
                    continue
                age = now - self.nodegroup_created.get((cluster, ng.nodegroup_name), now)
                desired = int(ng.scaling_config.get("desiredSize", 0))
                all_ready = ready.get(ng.nodegroup_name, 0) >= desired
                if nb.outcome == "create_failed" and age >= nb.active_after_seconds:
                    self._fail(ng, "CREATE_FAILED", nb)
                elif nb.outcome == "degraded" and age >= nb.active_after_seconds:
                    self._fail(ng, "DEGRADED", nb)
                elif all_ready and age >= nb.active_after_seconds:
                    ng.status = "ACTIVE"
                elif age >= nb.fail_after_seconds:
                    self._fail(ng, "CREATE_FAILED", nb)

    @staticmethod
    def _fail(ng: Any, status: str, nb: NodegroupBehaviour) -> None:
        ng.status = status
        ng.health = {
            "issues": [
                {
                    "code": nb.issue_code,
                    "message": nb.issue_message,
                    "resourceIds": [f"i-{ng.uuid.replace('-', '')[:17]}"],
                }
            ]
        }


_PATCHED: list[AwsSandbox] = []


def _patch_moto(sandbox: AwsSandbox) -> None:
    """Teach the in-process moto the EKS behaviour the sandbox needs (once per process; latest sandbox wins)."""
    _PATCHED[:] = [sandbox]
    from moto.eks.models import EKSBackend

    if getattr(EKSBackend, "_sandbox_patched", False):
        return
    EKSBackend._sandbox_patched = True  # type: ignore[attr-defined]
    _patch_responses()
    _patch_backend()


def _behaviour(name: str) -> Any:
    return _PATCHED[0].behaviours.get(name) if _PATCHED else None


def _patch_responses() -> None:
    """ListAddons (moto has none) and injected faults, answered before moto's own dispatch."""
    import json as _json

    import moto.eks.urls as eks_urls
    from moto.core.responses import ActionResult
    from moto.eks.responses import EKSResponse

    eks_urls.url_paths["{0}/clusters/(?P<name>[^/]+)/addons$"] = eks_urls.response.dispatch

    def list_addons(self: EKSResponse) -> ActionResult:
        name = self._get_param("name")
        self.eks_backend.describe_cluster(name=name)  # 404 for an unknown cluster, as EKS does
        beh = _behaviour(name)
        return ActionResult({"addons": list(beh.addons) if beh else []})

    EKSResponse.list_addons = list_addons  # type: ignore[attr-defined]

    original_call_action = EKSResponse.call_action

    def call_action(self: EKSResponse) -> Any:
        fault = _PATCHED[0].take_fault(self._get_action()) if _PATCHED else None
        if fault is not None:
            return (
                fault.status,
                {"Content-Type": "application/json", "x-amzn-ErrorType": fault.code},
                _json.dumps({"__type": fault.code, "message": fault.message}),
            )
        return original_call_action(self)

    EKSResponse.call_action = call_action  # type: ignore[method-assign,assignment]


def _patch_backend() -> None:
    """Clusters that stay CREATING for a few polls (no endpoint until ACTIVE); nodegroups that start CREATING."""
    from moto.eks.models import EKSBackend

    original_describe = EKSBackend.describe_cluster

    def describe_cluster(self: EKSBackend, name: str) -> Any:
        cluster = original_describe(self, name)
        beh = _behaviour(name)
        if beh is not None:
            beh.describe_calls += 1
            if beh.describe_calls <= beh.creating_polls:
                cluster.status = "CREATING"
            elif cluster.status == "CREATING":
                cluster.status = "ACTIVE"
        if cluster.status != "ACTIVE":
            # EKS shows the endpoint and certificate authority only once the cluster is ACTIVE.
            shown: Any = copy.copy(cluster)
            shown.endpoint = None
            shown.certificate_authority = None
            return shown
        return cluster

    EKSBackend.describe_cluster = describe_cluster  # type: ignore[method-assign]

    original_create_ng = EKSBackend.create_nodegroup

    def create_nodegroup(self: EKSBackend, *args: Any, **kwargs: Any) -> Any:
        ng = original_create_ng(self, *args, **kwargs)
        ng.status = "CREATING"
        ng.health = {"issues": []}
        if _PATCHED:
            _PATCHED[0].nodegroup_created[(ng.cluster_name, ng.nodegroup_name)] = time.time()
        return ng

    EKSBackend.create_nodegroup = create_nodegroup  # type: ignore[method-assign]
