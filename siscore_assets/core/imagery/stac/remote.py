"""Everything about talking to remote COGs and APIs, in one place: GDAL settings, retries, signing.

The GDAL options below are the only place the project configures GDAL for remote reads; every
read of a STAC asset runs inside :func:`gdal_env`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import rasterio

log = logging.getLogger(__name__)
T = TypeVar("T")

#: GDAL settings for Cloud-Optimised GeoTIFFs over HTTP (set once, here).
GDAL_REMOTE = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",  # no directory listing per open
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.TIF,.tiff,.TIFF",
    "GDAL_HTTP_MULTIRANGE": "YES",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_INGESTED_BYTES_AT_OPEN": "32768",  # the COG header in one request
    "VSI_CACHE": "TRUE",
    "GDAL_HTTP_MAX_RETRY": "0",  # retries are ours (counted, with backoff): see with_retries
    "CPL_VSIL_CURL_CACHE_SIZE": str(64 << 20),
}


def gdal_env(timeout_s: float) -> rasterio.Env:
    """The GDAL environment every remote read runs in."""
    return rasterio.Env(
        GDAL_HTTP_TIMEOUT=str(max(1, round(timeout_s))),
        GDAL_HTTP_CONNECTTIMEOUT=str(max(1, round(timeout_s))),
        **GDAL_REMOTE,
    )


class RetriesExhausted(RuntimeError):
    """Every attempt failed; the message names what was tried, where, and the last error."""


class NotRetried(Exception):
    """A failure a retry cannot help (e.g. an asset that already failed every retry in this
    read): :func:`with_retries` raises it at once."""


def with_retries(
    fn: Callable[[], T],
    what: str,
    *,
    retries: int,
    backoff_s: float,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``fn()`` with up to ``retries`` further attempts, waiting backoff_s * 2**attempt between.

    Transient failures (HTTP 5xx, timeouts, GDAL ``IReadBlock`` errors) usually pass on a retry;
    after the last attempt the error names ``what`` and how often it was tried."""
    for attempt in range(retries + 1):
        try:
            return fn()
        except NotRetried:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of a remote call is retried
            if attempt == retries:
                raise RetriesExhausted(
                    f"{what}: failed after {retries + 1} attempt(s): {exc}"
                ) from exc
            wait = backoff_s * (2**attempt)
            log.warning(
                "%s: attempt %d failed (%s); retrying in %.2fs", what, attempt + 1, exc, wait
            )
            sleep(wait)
    raise AssertionError("unreachable")


class Signer:
    """Signs asset hrefs (Planetary Computer SAS tokens) and re-signs them before they expire.

    ``sign`` maps an unsigned href to a signed one; a signed href older than ``ttl_s`` is signed
    again, so a long ingest never reads with an expired URL.  ``kind='none'`` returns hrefs as
    they are.  Credentials come only from the environment (``PC_SDK_SUBSCRIPTION_KEY``, read by
    the planetary-computer package itself)."""

    def __init__(
        self,
        kind: str = "none",
        ttl_s: float = 1800.0,
        sign: Callable[[str], str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if sign is None and kind == "planetary_computer":
            import planetary_computer  # optional extra 'stac-pc'

            sign = planetary_computer.sign
        self._sign = sign
        self._ttl = ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self.signed = 0  # how many times a URL was (re-)signed

    def href(self, href: str) -> str:
        if self._sign is None:
            return href
        now = self._clock()
        with self._lock:
            hit = self._cache.get(href)
            if hit is not None and now - hit[1] < self._ttl:
                return hit[0]
        signed = self._sign(href)
        with self._lock:
            self._cache[href] = (signed, now)
            self.signed += 1
        return signed


def open_remote(href: str, *, fresh: bool = False):
    """Open a COG href with rasterio; ``fresh`` (a retry) bypasses GDAL's /vsicurl/ cache, which
    otherwise remembers a failed first request and would fail every retry without asking again."""
    path = vsi_path(href)
    if not fresh or not path.startswith("/vsicurl/"):
        return rasterio.open(path)
    with rasterio.Env(CPL_VSIL_CURL_NON_CACHED=path):
        return rasterio.open(path)


def vsi_path(href: str) -> str:
    """A path GDAL opens: http(s) hrefs through /vsicurl/, local files as they are."""
    if href.startswith(("http://", "https://")):
        return f"/vsicurl/{href}"
    if href.startswith("file://"):
        return href[len("file://") :]
    return href


class OpenedDatasets:
    """The COGs one read task has open, opened on first use (signed), and dropped after a failed
    read so the next attempt reopens (and re-signs) past GDAL's cache.  ``unreadable``: hrefs
    that failed every retry earlier in the read (href -> error), shared by its tasks, so their
    other records do not retry them again."""

    def __init__(self, signer: Signer, unreadable: dict[str, str] | None = None) -> None:
        self.signer, self.ds, self.fresh = signer, {}, False
        self.unreadable = {} if unreadable is None else unreadable

    def get(self, key: tuple[str, str], href: str):
        """The dataset of ``href`` (``key``: e.g. (item id, band)), opened once per task."""
        if key not in self.ds:
            try:
                self.ds[key] = open_remote(self.signer.href(href), fresh=self.fresh)
            except Exception as exc:  # name the unsigned href: a signed one would leak its token
                raise OSError(f"{href}: {exc}") from exc
        return self.ds[key]

    def drop(self, fresh: bool = True) -> None:
        """Close every dataset; after a failure (``fresh``) reopen past GDAL's cache."""
        for d in self.ds.values():
            d.close()
        self.ds.clear()
        self.fresh = fresh
