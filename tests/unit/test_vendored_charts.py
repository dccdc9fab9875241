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


def test_the_chart_repository_serves_the_tarballs_at_oss_and_keeps_the_stand_ins_default() -> None:
    from sandbox.chartrepo import OSS_PATH, ChartRepo

    repo = ChartRepo()
    oss = repo.sub(OSS_PATH)
    assert oss is not None and repo.sub(None) is repo and repo.sub("nope") is None
    served = {f"{name}-{e['version']}.tgz": e["digest"] for name, es in oss.entries.items() for e in es}
    assert served == _table()
    assert all(oss.archives[f] == (VENDORED / f).read_bytes() for f in served)
    assert [e["version"] for e in repo.entries["cilium"]] == ["1.18.4"]
    assert "STAND-IN" in repo.entries["cilium"][0]["description"]
