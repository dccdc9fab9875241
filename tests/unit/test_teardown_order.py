"""What a teardown removes, and in which order: the reverse of the install."""

from __future__ import annotations

from flows.teardown_stack import TeardownStep, teardown_order
from tasks.model import load_stack
from tests.conftest import CONFIGS


def test_the_teardown_order_is_the_reverse_of_the_install():
    stack = load_stack(CONFIGS, "sandbox")
    assert teardown_order(stack, "standard") == [
        TeardownStep("release", "cilium-dnsproxy"),
        TeardownStep("release", "tetragon"),
        TeardownStep("nodegroup", "standard"),
        TeardownStep("release", "cilium"),
    ]
