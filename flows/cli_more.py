"""Sub-commands that need the sandbox or Prefect; registered lazily so `render` stays fast."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def register(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register further sub-commands (sandbox, install, drift) as they exist."""
