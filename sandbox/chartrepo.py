"""A local helm repository: the stand-in charts packaged in memory and an index.yaml, served over HTTP."""

from __future__ import annotations

import hashlib
import io
import tarfile
import time
from pathlib import Path
from typing import Any

import yaml

CHARTS_DIR = Path(__file__).resolve().parent / "charts"
STANDIN_CHARTS = ("cilium", "tetragon", "cilium-dnsproxy")


def package_chart(src: Path) -> tuple[dict[str, Any], bytes]:
    """(Chart.yaml, .tgz bytes) with the layout `helm package` produces (<name>/...)."""
    meta = yaml.safe_load((src / "Chart.yaml").read_text())
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in sorted(src.rglob("*")):
            if path.is_file():
                info = tar.gettarinfo(str(path), arcname=f"{meta['name']}/{path.relative_to(src)}")
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                with path.open("rb") as fh:
                    tar.addfile(info, fh)
    return meta, buf.getvalue()


class ChartRepo:
    def __init__(self, sources: list[Path] | None = None) -> None:
        self.auth: tuple[str, str] | None = None  # (username, password) for HTTP basic auth, like a private mirror
        self.archives: dict[str, bytes] = {}
        self.entries: dict[str, list[dict[str, Any]]] = {}
        for src in sources or [CHARTS_DIR / c for c in STANDIN_CHARTS]:
            self.add(src)

    def add(self, src: Path) -> None:
        meta, tgz = package_chart(src)
        fname = f"{meta['name']}-{meta['version']}.tgz"
        self.archives[fname] = tgz
        entry = {
            **meta,
            "urls": [fname],
            "digest": hashlib.sha256(tgz).hexdigest(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        self.entries.setdefault(meta["name"], [])
        self.entries[meta["name"]] = [e for e in self.entries[meta["name"]] if e["version"] != meta["version"]] + [
            entry
        ]

    def index_yaml(self) -> str:
        return yaml.safe_dump(
            {
                "apiVersion": "v1",
                "entries": self.entries,
                "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
        )


def basic_auth_ok(header: str | None, auth: tuple[str, str] | None) -> bool:
    import base64

    if auth is None:
        return True
    if not header or not header.startswith("Basic "):
        return False
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return False
    return (user, password) == auth
