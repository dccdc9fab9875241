"""How a release an earlier run left pending or failed is recovered: planned from its status and history."""

from __future__ import annotations

import pytest

from tasks.preflight import Recovery, RecoveryKind, needs_recovery, plan_recovery


@pytest.mark.parametrize(
    ("status", "last_deployed", "kind"),
    [
        ("deployed", 3, None),
        ("superseded", 2, None),
        (None, None, None),
        ("uninstalling", None, None),
        ("pending-install", None, RecoveryKind.uninstall),
        ("pending-upgrade", 2, RecoveryKind.rollback),
        ("pending-rollback", 1, RecoveryKind.rollback),
        ("failed", None, RecoveryKind.uninstall),
        ("failed", 1, RecoveryKind.upgrade_over),
    ],
)
def test_recovery_is_planned_from_the_status_and_the_last_deployed_revision(status, last_deployed, kind):
    recovery = plan_recovery("cilium", status, 2, last_deployed)
    assert (recovery.kind if recovery else None) is kind
    assert needs_recovery(status) is (kind is not None)


def test_recovery_descriptions_say_what_was_done():
    assert (
        Recovery(RecoveryKind.uninstall, "cilium", "failed", 1, None).describe()
        == "release cilium was failed with no deployed revision: uninstalled the failed release"
    )
    assert (
        Recovery(RecoveryKind.upgrade_over, "cilium", "failed", 2, 1).describe()
        == "release cilium was failed (revision 2): upgrading over it (last deployed revision 1)"
    )
