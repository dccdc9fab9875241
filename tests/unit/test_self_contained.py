"""The clone needs nothing beside it: the runbook lives in the repository and no code or test reads outside it."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import conftest
from tests.conftest import ROOT

VENDORED = ROOT / "configs" / "runbook"
# Ways of reaching a sibling `shared/` directory (or any directory above the clone) at run or test time.
OUTSIDE = re.compile(r"\.\./shared|EKS_CILIUM_SHARED|parent\s*/\s*[\"']shared[\"']|ROOT\.parent\b|/work/shared")
SCANNED = (
    "tests",
    "scripts",
    "benchmarks",
    "sandbox",
    "tasks",
    "flows",
    ".ci",
    "configs",
    "prefect.yaml",
    "pyproject.toml",
)


def _text_files() -> list[Path]:
    out: list[Path] = []
    for entry in SCANNED:
        p = ROOT / entry
        for f in [p] if p.is_file() else sorted(p.rglob("*")) if p.is_dir() else []:
            if f.is_file() and "__pycache__" not in f.parts and b"\0" not in f.read_bytes()[:8192]:
                out.append(f)
    return out


def test_runbook_fixture_reads_the_copy_inside_the_repository(runbook_text):
    assert conftest.RUNBOOK.resolve().is_relative_to(ROOT.resolve())
    assert conftest.RUNBOOK == VENDORED / "isovalent-eks-runbook.ja.txt"
    assert "ステップ 1: Cilium Enterprise の設定" in runbook_text


def test_vendored_runbook_files_match_the_digests_recorded_in_their_readme():
    readme = (VENDORED / "README.md").read_text()
    recorded = dict(re.findall(r"\| `([^`]+)` \|[^|]*\| `([0-9a-f]{64})` \|", readme))
    assert set(recorded) == {"isovalent-eks-runbook.ja.txt", "steps.en.md"}
    for name, digest in recorded.items():
        assert hashlib.sha256((VENDORED / name).read_bytes()).hexdigest() == digest, f"{name} differs from the runbook"
    assert "Origin:" in readme


def test_nothing_in_the_tree_reads_outside_the_clone():
    hits = []
    for f in _text_files():
        if f == Path(__file__):
            continue
        for n, line in enumerate(f.read_text(errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                hits.append(f"{f.relative_to(ROOT)}:{n}: {line.strip()}")
    assert hits == []


@pytest.mark.slow
def test_golden_tests_pass_in_a_clone_with_nothing_beside_it(tmp_path):
    """A fresh clone of HEAD (what a user gets) in a directory that holds nothing else."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout")
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout
    clone = tmp_path / "alone" / "eks-cilium-flows"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, capture_output=True)
    assert sorted(p.name for p in clone.parent.iterdir()) == ["eks-cilium-flows"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EKS_CILIUM", "PYTEST"))}
    # `python -m pytest` puts the clone first on sys.path, so its own tasks/ and tests/ are the ones imported.
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit/test_render_golden.py"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, f"clone of {head.strip()}:\n{run.stdout[-3000:]}\n{run.stderr[-2000:]}"
