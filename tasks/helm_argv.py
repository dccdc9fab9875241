"""helm command lines (pure): argv lists, never shell strings; values through files; `-o json` for reads.

Positional arguments are checked once more here (defence in depth behind the stack model): nothing that
starts with '-' can become a flag, nothing with whitespace or control characters reaches helm.
"""

from __future__ import annotations

import re

from tasks.errors import ConfigError
from tasks.model import Release

_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+\-]*$")


def _arg(value: str, what: str) -> str:
    if not isinstance(value, str) or not _SAFE.match(value):
        raise ConfigError(
            f"{what} {value!r} cannot be passed to helm",
            hint="names and versions may hold letters, digits and . _ / : @ + - and must not start with '-'",
        )
    return value


def _path(value: str, what: str) -> str:
    if not value or value.startswith("-") or any(c in value for c in "\n\r\0"):
        raise ConfigError(f"{what} {value!r} cannot be passed to helm", hint="use a plain file path")
    return value


def _kube(kubeconfig: str | None) -> list[str]:
    return ["--kubeconfig", _path(kubeconfig, "kubeconfig")] if kubeconfig else []


JSON = ("-o", "json")


def _timeout(seconds: int) -> tuple[str, str]:
    return "--timeout", f"{int(seconds)}s"


def _on_release(
    helm: str,
    command: list[str],
    release: str,
    namespace: str,
    kubeconfig: str | None,
    *flags: str,
    revision: int | None = None,
) -> list[str]:
    """`helm <command> RELEASE [REVISION] --namespace NS <flags> [--kubeconfig F]`: every command on one release."""
    positional = [_arg(release, "release name")] + ([] if revision is None else [str(revision)])
    return [helm, *command, *positional, "--namespace", _arg(namespace, "namespace"), *flags] + _kube(kubeconfig)


def version(helm: str) -> list[str]:
    return [helm, "version", "--template", "{{.Version}}"]


def repo_add(helm: str, name: str, url: str, *, username: str | None = None) -> list[str]:
    argv = [helm, "repo", "add", _arg(name, "repository name"), _path(url, "repository URL"), "--force-update"]
    if username:
        argv += ["--username", _arg(username, "repository user"), "--password-stdin"]
    return argv


def repo_update(helm: str, name: str) -> list[str]:
    return [helm, "repo", "update", _arg(name, "repository name")]


def search_repo(helm: str, chart: str, version: str) -> list[str]:
    return [helm, "search", "repo", _arg(chart, "chart"), "--version", _arg(version, "chart version"), "-o", "json"]


def show_chart(helm: str, chart: str, version: str) -> list[str]:
    return [helm, "show", "chart", _path(chart, "chart"), "--version", _arg(version, "chart version")]


def upgrade_install(
    helm: str,
    release: str,
    chart: str,
    version: str,
    namespace: str,
    values_file: str,
    *,
    timeout_seconds: int,
    create_namespace: bool = False,
    kubeconfig: str | None = None,
    dry_run: bool = False,
    wait: bool = False,
    force_conflicts: bool = False,
) -> list[str]:
    """`helm upgrade --install` as the runbook's `helm install` / `helm upgrade -i`, made idempotent.
    `force_conflicts` (helm 4's server-side apply): take over the fields a `kubectl edit` or `scale` now owns."""
    argv = [
        helm,
        "upgrade",
        "--install",
        _arg(release, "release name"),
        _path(chart, "chart"),
        "--version",
        _arg(version, "chart version"),
        "--namespace",
        _arg(namespace, "namespace"),
        "--values",
        _path(values_file, "values file"),
        "--timeout",
        f"{int(timeout_seconds)}s",
        "-o",
        "json",
    ]
    if create_namespace:
        argv.append("--create-namespace")
    if wait:
        argv.append("--wait")
    if force_conflicts:
        argv.append("--force-conflicts")
    if dry_run:
        argv.append("--dry-run=server")
    return argv + _kube(kubeconfig)


def upgrade_release(
    helm: str,
    name: str,
    rel: Release,
    values_file: str,
    *,
    kubeconfig: str | None = None,
    timeout_seconds: int | None = None,
    dry_run: bool = False,
    force_conflicts: bool = False,
) -> list[str]:
    """`upgrade_install` of one of the stack's releases (its chart, version, namespace and timeout)."""
    return upgrade_install(
        helm,
        name,
        rel.chart,
        rel.version,
        rel.namespace,
        values_file,
        timeout_seconds=rel.timeout_seconds if timeout_seconds is None else timeout_seconds,
        create_namespace=rel.create_namespace,
        kubeconfig=kubeconfig,
        dry_run=dry_run,
        force_conflicts=force_conflicts,
    )


def get_values(helm: str, release: str, namespace: str, kubeconfig: str | None = None) -> list[str]:
    return _on_release(helm, ["get", "values"], release, namespace, kubeconfig, *JSON)


def list_releases(helm: str, namespace: str, kubeconfig: str | None = None, *, helm_major: int = 3) -> list[str]:
    """All releases of the namespace in every state (pending and failed included): helm 3 needs `--all`,
    helm 4 lists every state by default and no longer knows the flag."""
    flags = ["--all"] if helm_major < 4 else []
    return [helm, "list", "--namespace", _arg(namespace, "namespace"), *flags, "-o", "json"] + _kube(kubeconfig)


def get_metadata(helm: str, release: str, namespace: str, kubeconfig: str | None = None) -> list[str]:
    """Chart name and version, revision and status of the release (`helm status` has no chart in its JSON)."""
    return _on_release(helm, ["get", "metadata"], release, namespace, kubeconfig, *JSON)


def get_manifest(helm: str, release: str, namespace: str, kubeconfig: str | None = None) -> list[str]:
    """The objects the release rendered (YAML documents; `helm get manifest` has no JSON output)."""
    return _on_release(helm, ["get", "manifest"], release, namespace, kubeconfig)


def get_hooks(helm: str, release: str, namespace: str, kubeconfig: str | None = None) -> list[str]:
    """The release's hook objects (YAML documents), which `helm get manifest` leaves out."""
    return _on_release(helm, ["get", "hooks"], release, namespace, kubeconfig)


def history(helm: str, release: str, namespace: str, kubeconfig: str | None = None) -> list[str]:
    return _on_release(helm, ["history"], release, namespace, kubeconfig, *JSON)


def rollback(
    helm: str, release: str, namespace: str, revision: int, *, timeout_seconds: int, kubeconfig: str | None = None
) -> list[str]:
    return _on_release(
        helm, ["rollback"], release, namespace, kubeconfig, *_timeout(timeout_seconds), revision=int(revision)
    )


def uninstall(
    helm: str, release: str, namespace: str, *, timeout_seconds: int, kubeconfig: str | None = None
) -> list[str]:
    return _on_release(helm, ["uninstall"], release, namespace, kubeconfig, *_timeout(timeout_seconds))


def shell_line(argv: list[str]) -> str:
    """How to show an argv to a person (for plans and hints); never executed."""
    import shlex

    return " ".join(shlex.quote(a) for a in argv)
