"""The vendored open-source charts are the published tarballs, unmodified: each file's sha256 is the README's."""

from __future__ import annotations

import hashlib
import io
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


def _members(tgz: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(tgz)) as tar:
        return {m.name: (tar.extractfile(m) or io.BytesIO()).read() for m in tar.getmembers() if m.isfile()}


def test_the_chart_repository_serves_the_tarballs_byte_for_byte_at_oss() -> None:
    from sandbox.chartrepo import OSS_PATH, ChartRepo

    repo = ChartRepo()
    oss = repo.sub(OSS_PATH)
    assert oss is not None and repo.sub(None) is repo and repo.sub("nope") is None
    served = {f"{name}-{e['version']}.tgz": e["digest"] for name, es in oss.entries.items() for e in es}
    assert served == _table()
    assert all(oss.archives[f] == (VENDORED / f).read_bytes() for f in served)


def test_the_default_repository_is_the_real_charts_with_only_the_labelled_timescape_template_added() -> None:
    from sandbox.chartrepo import TIMESCAPE_STANDIN, TIMESCAPE_TEMPLATE, ChartRepo

    repo = ChartRepo()
    assert sorted(repo.entries) == ["cilium", "cilium-dnsproxy", "tetragon"]
    assert [e["version"] for e in repo.entries["cilium"]] == ["1.17.18", "1.18.3", "1.18.4"]
    assert [e["version"] for e in repo.entries["tetragon"]] == ["1.4.1", "1.5.0"]
    assert "STAND-IN" in repo.entries["cilium-dnsproxy"][0]["description"]
    for name in ("tetragon-1.4.1.tgz", "tetragon-1.5.0.tgz"):
        assert repo.archives[name] == (VENDORED / name).read_bytes()
    for entry in repo.entries["cilium"]:
        name = f"cilium-{entry['version']}.tgz"
        assert "Timescape stand-in" in entry["description"] and "not Isovalent's chart" in entry["description"]
        real, served = _members((VENDORED / name).read_bytes()), _members(repo.archives[name])
        assert set(served) - set(real) == {f"cilium/{TIMESCAPE_TEMPLATE}"} and set(real) <= set(served)
        assert served[f"cilium/{TIMESCAPE_TEMPLATE}"] == TIMESCAPE_STANDIN.read_bytes()
        changed = {m for m in real if real[m] != served[m]}
        assert changed == {"cilium/Chart.yaml"}
        diff = set(real["cilium/Chart.yaml"].decode().splitlines()) ^ set(
            served["cilium/Chart.yaml"].decode().splitlines()
        )
        assert all(line.startswith("description:") for line in diff)
