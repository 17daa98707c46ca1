"""Probes the storage race tests share."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from siscore_assets.core.storage import catalog


def lock_held(root: Path) -> bool:
    """Whether someone holds the store's lock now (a probe that never waits)."""
    fd = os.open(root / catalog.LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
