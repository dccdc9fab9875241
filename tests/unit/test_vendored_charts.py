"""The vendored open-source charts are the published tarballs, unmodified: each file's sha256 is the README's."""

from __future__ import annotations

import hashlib
import re
import tarfile

import yaml

from tests.conftest import ROOT

VENDORED = ROOT / "sandbox" / "charts" / "vendored"
ROW = re.compile(r"^\|\s*(?P<file>[\w.-]+\.tgz)\s*\|\s*(?P<sha>[0-9a-f]{64})\s*\|", re.M)


def _table() -> dict[str, str]:
    return {m["file"]: m["sha"] for m in ROW.finditer((VENDORED / "README.md").read_text())}


def test_every_vendored_tarball_matches_the_readme_table() -> None:
    table = _table()
    files = sorted(p.name for p in VENDORED.glob("*.tgz"))
    assert files == sorted(table), "every tarball has a row and every row a tarball"
    for name in files:
        assert hashlib.sha256((VENDORED / name).read_bytes()).hexdigest() == table[name], name


def test_each_tarball_is_the_chart_its_name_says() -> None:
    for path in sorted(VENDORED.glob("*.tgz")):
        with tarfile.open(path) as tar:
            chart_yaml = next(m for m in tar.getmembers() if m.name.count("/") == 1 and m.name.endswith("/Chart.yaml"))
            fh = tar.extractfile(chart_yaml)
            assert fh is not None
            meta = yaml.safe_load(fh.read())
        assert path.name == f"{meta['name']}-{meta['version']}.tgz"
