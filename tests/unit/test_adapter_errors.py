"""The adapters turn the external systems' answers into typed errors once (tasks/errors.py), so callers catch a type
instead of matching message text: AWS error codes (botocore's own ClientError, and moto's real HTTP server) and
helm's stderr (the real helm 3 and helm 4 binaries)."""

from __future__ import annotations

import pickle
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
import yaml
from moto.server import ThreadedMotoServer

from tasks.adapters import aws
from tasks.adapters.helm import Helm, error_kind
from tasks.errors import (
    AccessDenied,
    CommandError,
    DriftDetected,
    EksCiliumError,
    PermanentError,
    ReleaseNotFound,
    ResourceNotFound,
    Throttled,
    TransientError,
)
from tests.conftest import HELMS


def client_error(code: str, status: int, operation: str) -> botocore.exceptions.ClientError:
    """The exception botocore raises for an AWS error response with this code and HTTP status."""
    response: Any = {
        "Error": {"Code": code, "Message": f"{code} (test)"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return botocore.exceptions.ClientError(response, operation)


def raising(error: Exception) -> Any:
    def fn() -> Any:
        raise error

    return fn


@pytest.mark.parametrize(
    ("code", "status", "operation", "kind", "base"),
    [
        ("ThrottlingException", 400, "DescribeCluster", Throttled, TransientError),
        ("Throttling", 400, "GetRole", Throttled, TransientError),
        ("RequestLimitExceeded", 503, "DescribeSubnets", Throttled, TransientError),
        ("TooManyRequestsException", 429, "ListAddons", Throttled, TransientError),
        ("", 429, "ListNodegroups", Throttled, TransientError),
        ("AccessDeniedException", 403, "ListAddons", AccessDenied, PermanentError),
        ("AccessDenied", 403, "GetRole", AccessDenied, PermanentError),
        ("UnauthorizedOperation", 403, "DescribeRouteTables", AccessDenied, PermanentError),
        ("ExpiredTokenException", 400, "DescribeCluster", AccessDenied, PermanentError),
        ("InvalidClientTokenId", 403, "GetCallerIdentity", AccessDenied, PermanentError),
        ("ResourceNotFoundException", 404, "DescribeNodegroup", ResourceNotFound, PermanentError),
        ("NoSuchEntity", 404, "GetRole", ResourceNotFound, PermanentError),
    ],
)
def test_aws_error_codes_become_their_own_error_types_that_the_old_except_clauses_still_catch(
    code: str, status: int, operation: str, kind: type[EksCiliumError], base: type[EksCiliumError]
) -> None:
    with pytest.raises(kind) as caught:
        aws.call(f"call {operation}", raising(client_error(code, status, operation)))
    assert isinstance(caught.value, base)
    assert caught.value.transient is (base is TransientError)
    assert caught.value.what.startswith(f"call {operation}: ")
    assert (code or str(status)) in (caught.value.observed or "")


@pytest.mark.parametrize(
    ("code", "status", "base"),
    [
        ("ServiceUnavailableException", 503, TransientError),
        ("InternalFailure", 500, TransientError),
        ("InvalidParameterException", 400, PermanentError),
        ("ResourceInUseException", 409, PermanentError),
    ],
)
def test_other_aws_errors_are_neither_throttling_nor_denied_nor_not_found(
    code: str, status: int, base: type[EksCiliumError]
) -> None:
    with pytest.raises(base) as caught:
        aws.call("call", raising(client_error(code, status, "CreateNodegroup")))
    assert not isinstance(caught.value, (Throttled, AccessDenied, ResourceNotFound))


def test_missing_credentials_are_not_reported_as_access_denied() -> None:
    with pytest.raises(PermanentError) as caught:
        aws.call("call", raising(botocore.exceptions.NoCredentialsError()))
    assert not isinstance(caught.value, AccessDenied)


@pytest.fixture
def moto_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for k, v in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
    }.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    try:
        yield endpoint
    finally:
        server.stop()


def test_moto_answers_for_missing_resources_are_resource_not_found(moto_endpoint: str) -> None:
    account = aws.Aws("us-east-1")
    with pytest.raises(ResourceNotFound) as caught:
        account.describe_cluster("no-such-cluster")
    assert "ResourceNotFoundException" in (caught.value.observed or "")
    assert "list-clusters" in (caught.value.hint or "")
    assert account.describe_nodegroup("no-such-cluster", "no-such-nodegroup") is None
    assert account.get_role_arn("no-such-role") is None


# What helm 3.17 and helm 4.1 print, measured against the sandbox's Kubernetes API for a release that does not exist
# (`get metadata`, `status` and `history`, also in a namespace that does not exist; then `uninstall`).
HELM_RELEASE_NOT_FOUND = (
    "Error: release: not found\n",
    "Error: uninstall: Release not loaded: nosuch: release: not found\n",
)


@pytest.mark.parametrize("stderr", HELM_RELEASE_NOT_FOUND)
def test_helms_release_not_found_answers_are_release_not_found(stderr: str) -> None:
    assert error_kind(stderr) is ReleaseNotFound


@pytest.mark.parametrize(
    "stderr",
    [
        'Error: INSTALLATION FAILED: namespaces "kube-system" not found\n',
        "Error: another operation (install/upgrade/rollback) is in progress\n",
        "",
    ],
)
def test_other_helm_failures_stay_command_errors(stderr: str) -> None:
    assert error_kind(stderr) is CommandError


def closed_port_kubeconfig(path: Path) -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "c", "cluster": {"server": f"https://127.0.0.1:{port}", "insecure-skip-tls-verify": True}}
        ],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "c",
    }
    path.write_text(yaml.safe_dump(cfg))
    path.chmod(0o600)
    return str(path)


@pytest.mark.parametrize("helm", ["helm3", "helm4"])
def test_real_helm_against_a_closed_port_is_a_transient_command_error_not_a_missing_release(
    helm: str, tmp_path: Path, isolated_tools: Path
) -> None:
    binary = HELMS[helm]
    if not binary.exists():
        pytest.fail(f"{binary} is missing: run scripts/bootstrap")
    kubeconfig = closed_port_kubeconfig(tmp_path / "kubeconfig")
    argv = [str(binary), "status", "nosuch", "--namespace", "kube-system", "-o", "json", "--kubeconfig", kubeconfig]
    with pytest.raises(CommandError) as caught:
        Helm(str(binary)).run(argv, what="status of release nosuch", timeout=60)
    assert type(caught.value) is CommandError
    assert "connection refused" in caught.value.stderr
    assert caught.value.transient is True


def test_typed_errors_keep_their_type_through_pickling() -> None:
    """Prefect persists a task's exception; the flow must still see the type."""
    errors: list[EksCiliumError] = [
        AccessDenied("list add-ons: access denied", observed="AccessDeniedException: no"),
        Throttled("describe cluster: AWS throttled the request"),
        ResourceNotFound("get IAM role: not found"),
        ReleaseNotFound("uninstall", argv=["helm", "uninstall", "x"], returncode=1, stderr=HELM_RELEASE_NOT_FOUND[1]),
    ]
    for e in errors:
        back = pickle.loads(pickle.dumps(e))
        assert type(back) is type(e)
        assert str(back) == str(e)


def test_a_child_runs_drift_is_recognised_by_the_fleet_from_its_state_name_not_its_message() -> None:
    from flows.check_drift import DriftFound
    from flows.fleet import classify
    from tasks.names import DRIFTED_STATE

    drift = DriftFound({"cluster": "c1", "summary": {"problems": ["cilium: values differ"]}})
    assert isinstance(drift, DriftDetected)
    assert str(drift).startswith("drift detected on c1")
    # check-drift ends a run whose report is not clean in a state named Drifted (Failed with fail_on_drift).
    assert classify("FAILED", DRIFTED_STATE) == "drifted"
    assert classify("COMPLETED", DRIFTED_STATE) == "drifted"
    assert classify("FAILED", "Failed") == "error"
    assert classify("CRASHED", "Crashed") == "error"
    assert classify("COMPLETED", "Completed") == "ok"
