"""Giving freed memory back to the operating system between the phases of a large stage.

CPython and glibc keep freed blocks for reuse, so the peak of one phase (listing 400,000 files,
an index frame's temporaries, a DuckDB query's buffers) stays in the process's RSS through the
next one and the phases' peaks stack.  ``release_memory`` collects garbage and asks glibc to
return free heap pages (``malloc_trim``); elsewhere (macOS, musl) only the collection runs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from functools import lru_cache


@lru_cache(maxsize=1)
def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    except OSError:
        return None


def release_memory() -> bool:
    """Collect garbage and return free heap memory to the OS; True when glibc trimmed."""
    gc.collect()
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False
