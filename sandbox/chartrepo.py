"""A local helm repository standing in for Isovalent's, and Cilium's public one beside it, served over HTTP.

- `<repo>/` (the stack's `isovalent` repository): Cilium's real open-source charts from `charts/vendored/`,
  every vendored version. `cilium` is repackaged with one added, labelled template, the Hubble Timescape stand-in
  (`charts/standins/hubble-timescape.yaml`: Timescape is enterprise-only); `tetragon` is served byte for byte.
  `cilium-dnsproxy` (enterprise-only, not public) is the stand-in chart in `charts/standins/cilium-dnsproxy`.
- `<repo>/oss/` (Cilium's `https://helm.cilium.io`): the vendored tarballs byte for byte, nothing added.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
from pathlib import Path
from typing import Any

import yaml

CHARTS_DIR = Path(__file__).resolve().parent / "charts"
STANDINS_DIR = CHARTS_DIR / "standins"
STANDIN_CHARTS = ("cilium-dnsproxy",)
VENDORED_DIR = CHARTS_DIR / "vendored"
OSS_PATH = "oss"  # the vendored charts' repository: <chart repo url>/oss
STANDIN_DEFAULT = [STANDINS_DIR / c for c in STANDIN_CHARTS]
# Added to every vendored cilium chart served at <repo>/: (the template, its path inside the chart).
TIMESCAPE_STANDIN = STANDINS_DIR / "hubble-timescape.yaml"
TIMESCAPE_TEMPLATE = "templates/hubble-timescape/sandbox-standin.yaml"
STANDIN_NOTE = "SANDBOX: Cilium's open-source chart plus a Hubble Timescape stand-in template; not Isovalent's chart."


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


def _is_chart_yaml(member: tarfile.TarInfo) -> bool:
    """The chart's own Chart.yaml: `<name>/Chart.yaml` at the archive's top (not a subchart's)."""
    return member.isfile() and member.name.count("/") == 1 and member.name.endswith("/Chart.yaml")


def with_timescape_standin(tgz: bytes) -> bytes:
    """A cilium chart archive with the Timescape stand-in template added and its description saying so.

    Every other member keeps its bytes; only `cilium/Chart.yaml`'s description line changes.
    """
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as src,
        tarfile.open(fileobj=out, mode="w:gz") as dst,
    ):
        top = ""
        for member in src.getmembers():
            fh = src.extractfile(member) if member.isfile() else None
            data = fh.read() if fh is not None else b""
            if _is_chart_yaml(member):
                top = member.name.split("/", 1)[0]
                lines = data.decode().splitlines(keepends=True)
                data = "".join(
                    f"description: {json.dumps(STANDIN_NOTE)}\n" if line.startswith("description:") else line
                    for line in lines
                ).encode()
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data) if member.isfile() else None)
        if not top:
            raise ValueError("no <name>/Chart.yaml in the chart archive")
        template = TIMESCAPE_STANDIN.read_bytes()
        info = tarfile.TarInfo(f"{top}/{TIMESCAPE_TEMPLATE}")
        info.size, info.mode = len(template), 0o644
        dst.addfile(info, io.BytesIO(template))
    return out.getvalue()


def chart_metadata(tgz: bytes) -> dict[str, Any]:
    """The Chart.yaml of a packaged chart (<name>/Chart.yaml at the archive's top)."""
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
        for member in tar.getmembers():
            if _is_chart_yaml(member):
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
        # The vendored open-source charts: here (cilium with the Timescape stand-in) and, byte for byte, as a
        # second repository at <repo>/oss (None: not served).
        self.oss: ChartRepo | None = None
        if vendored is not None:
            self.oss = ChartRepo(sources=[], vendored=None)
            for path in sorted(vendored.glob("*.tgz")):
                tgz = path.read_bytes()
                meta = chart_metadata(tgz)
                self.oss._index(meta, tgz)
                if meta["name"] == "cilium":
                    self._index({**meta, "description": STANDIN_NOTE}, with_timescape_standin(tgz))
                else:
                    self._index(meta, tgz)

    def sub(self, path: str | None) -> ChartRepo | None:
        """The repository served at `<repo>/<path>/` (this one for None); None if there is none."""
        if not path:
            return self
        return self.oss if path == OSS_PATH else None

    def add(self, src: Path) -> None:
        meta, tgz = package_chart(src)
        self._index(meta, tgz)

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
