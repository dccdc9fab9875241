"""A local helm repository: the stand-in charts packaged in memory and an index.yaml, served over HTTP.

The vendored open-source charts (`charts/vendored/*.tgz`, unmodified) are served beside them under a second
repository path, `<repo>/oss/`: the stand-in `cilium` has the same name and version (1.18.4) as the real one,
so one index cannot hold both, and the stand-ins stay the default repository the stack installs from.
"""

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
VENDORED_DIR = CHARTS_DIR / "vendored"
OSS_PATH = "oss"  # the vendored charts' repository: <chart repo url>/oss
STANDIN_DEFAULT = [CHARTS_DIR / c for c in STANDIN_CHARTS]


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


def chart_metadata(tgz: bytes) -> dict[str, Any]:
    """The Chart.yaml of a packaged chart (<name>/Chart.yaml at the archive's top)."""
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.count("/") == 1 and member.name.endswith("/Chart.yaml"):
                fh = tar.extractfile(member)
                if fh is not None:
                    meta: dict[str, Any] = yaml.safe_load(fh.read())
                    return meta
    raise ValueError("no <name>/Chart.yaml in the chart archive")


class ChartRepo:
    def __init__(self, sources: list[Path] | None = None, vendored: Path | None = VENDORED_DIR) -> None:
        self.auth: tuple[str, str] | None = None  # (username, password) for HTTP basic auth, like a private mirror
        self.archives: dict[str, bytes] = {}
        self.entries: dict[str, list[dict[str, Any]]] = {}
        for src in STANDIN_DEFAULT if sources is None else sources:
            self.add(src)
        # The vendored open-source charts, as a second repository (None: not served).
        self.oss: ChartRepo | None = None
        if vendored is not None:
            self.oss = ChartRepo(sources=[], vendored=None)
            for path in sorted(vendored.glob("*.tgz")):
                self.oss.add_archive(path.read_bytes())

    def sub(self, path: str | None) -> ChartRepo | None:
        """The repository served at `<repo>/<path>/` (this one for None); None if there is none."""
        if not path:
            return self
        return self.oss if path == OSS_PATH else None

    def add(self, src: Path) -> None:
        meta, tgz = package_chart(src)
        self._index(meta, tgz)

    def add_archive(self, tgz: bytes) -> None:
        """A packaged chart served as it is (its bytes, hence its digest, unchanged)."""
        self._index(chart_metadata(tgz), tgz)

    def _index(self, meta: dict[str, Any], tgz: bytes) -> None:
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
