"""release_memory gives freed heap pages back to the OS, even between blocks still in use."""

from __future__ import annotations

import gc
import sys

import psutil
import pytest

from siscore_assets.core.compute.memory import release_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")
def test_freed_heap_pages_between_live_blocks_leave_the_rss():
    proc = psutil.Process()
    release_memory()
    junk = [bytearray(1000) for _ in range(300_000)]  # glibc heap blocks (above pymalloc's 512 B)
    keep = junk[::16]  # one in 16 stays alive: the heap cannot simply shrink from its top
    del junk
    gc.collect()
    freed_only = proc.memory_info().rss
    assert release_memory() is True
    trimmed = proc.memory_info().rss
    assert freed_only - trimmed > 100e6, (freed_only, trimmed)
    assert len(keep) == 18_750
