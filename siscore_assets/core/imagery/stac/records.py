"""Reading a STAC country-year's records (grid tiles, granule patches) from remote COGs: threads,
retries, atomic writes and resume, and a budget for assets that never read.

A transient failure (HTTP 5xx, a timeout, a GDAL block error) is retried with backoff.  An asset
that still fails (withdrawn: 404, or corrupt) costs only its records: each is read from its next
planned scene where it has one, else recorded as unreadable with the href and the error (never
scored), and the read goes on; an href that failed every retry is not asked for again in the
same read (a withdrawn scene costs one round of retries, not one per tile).  Only when more than
``MAX_FAILED_SHARE`` of the records are lost does the read stop, naming the hrefs: then the
source itself is in trouble.  Failures are not cached: a rerun of a read that stopped asks again
(a finished read's committed store, corrupt rows included, is reused as it is).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from siscore_assets.core.imagery.stac.config import StacSource
from siscore_assets.core.imagery.stac.remote import (
    NotRetried,
    OpenedDatasets,
    RetriesExhausted,
    Signer,
    gdal_env,
    with_retries,
)
from siscore_assets.core.imagery.stac.search import Scene
from siscore_assets.core.storage.files import atomic_path

#: A read fails when more than this share of its records stay unreadable after every retry.
MAX_FAILED_SHARE = 0.05
#: Hrefs named in the error of a failed read (the rest counted).
HREFS_SHOWN = 10
T = TypeVar("T")
log = logging.getLogger(__name__)


class SceneReadError(OSError):
    """A band of one scene that would not read: names the scene (``item_id``) and the ``href``,
    so a record can be read from its next scene and the error says which asset to check."""

    def __init__(self, item_id: str, href: str, exc: BaseException) -> None:
        self.item_id, self.href = item_id, href
        text = str(exc)
        super().__init__(text if href in text else f"{href}: {text}")


class KnownUnreadable(SceneReadError, NotRetried):
    """A band whose href already failed every retry in this read: not asked for again (a
    withdrawn scene costs one round of retries, not one per tile it covers)."""


class TooManyUnreadable(RetriesExhausted):
    """More than ``MAX_FAILED_SHARE`` of a read's records failed every retry."""


def scene_band(opened: OpenedDatasets, scene: Scene, band: str):
    """The open COG of one band of a scene (opened once per read task)."""
    return opened.get((scene.item_id, band), scene.hrefs[band])


def read_band(
    opened: OpenedDatasets, scene: Scene, band: str, read: Callable[[Any], np.ndarray]
) -> np.ndarray:
    """``read(dataset)`` of one band of a scene (opened once per task); a failure is a
    :class:`SceneReadError` naming the scene and the band's href (:class:`KnownUnreadable`, at
    once, for an href that failed every retry earlier in the read)."""
    href = scene.hrefs[band]
    if href in opened.unreadable:
        why = f"failed every retry earlier in this read ({opened.unreadable[href]})"
        raise KnownUnreadable(scene.item_id, href, OSError(why))
    try:
        return read(scene_band(opened, scene, band))
    except Exception as exc:
        raise SceneReadError(scene.item_id, href, exc) from exc


@dataclass
class Records:
    """What a read did: records read now, found finished, and the unreadable ones (record path ->
    the reason, with the href and the error)."""

    read: int = 0
    cached: int = 0
    failed: dict[Path, str] = field(default_factory=dict)
    hrefs: set[str] = field(default_factory=set)


def read_records(
    items: Sequence[T],
    cfg: StacSource,
    folder: Path,
    path_of: Callable[[T], Path],
    read: Callable[[T, StacSource, OpenedDatasets], np.ndarray],
    describe: Callable[[T], str],
    signer: Signer | None = None,
    on_done: Callable[[T], None] | None = None,
    *,
    fallback: Callable[[T, SceneReadError], T | None] | None = None,
    max_failed_share: float | None = None,
) -> Records:
    """Read every item whose record (``path_of``) is not in ``folder`` yet: ``cfg.chunk_tiles``
    items a task on ``cfg.threads`` threads, each read retried with backoff (reopening its COGs),
    each record written atomically, so a killed run resumes where it stopped.

    An item that fails every retry is read again as ``fallback(item, error)`` (e.g. without the
    scene that failed) where that gives one, else recorded in ``Records.failed``; more failed
    items than ``max_failed_share`` (default ``MAX_FAILED_SHARE``) of ``items`` stop the read
    with :class:`TooManyUnreadable`."""
    if max_failed_share is None:
        max_failed_share = MAX_FAILED_SHARE
    signer = signer or Signer(cfg.sign, cfg.resign_after_s)
    for stale in folder.glob(".*.tmp.npy"):  # a killed run's unfinished write: never indexed
        stale.unlink()
    todo = [it for it in items if not path_of(it).is_file()]
    chunks = [todo[i : i + cfg.chunk_tiles] for i in range(0, len(todo), cfg.chunk_tiles)]
    done = Records(read=len(todo), cached=len(items) - len(todo))
    allowed = int(max_failed_share * len(items))
    lock, stop = threading.Lock(), threading.Event()
    unreadable: dict[str, str] = {}  # href -> its error, once it failed every retry

    def read_one(item: T, opened: OpenedDatasets) -> np.ndarray | None:
        """The item's record, from its fallbacks if need be; None (recorded) if none reads."""
        current, errors, hrefs = item, [], set()
        while current is not None:

            def attempt(it: T = current) -> np.ndarray:
                try:
                    return read(it, cfg, opened)
                except NotRetried:  # raised before any read: the open COGs stay good
                    raise
                except Exception:
                    opened.drop()  # reopen (and re-sign) on the next attempt
                    raise

            try:
                rec = with_retries(
                    attempt, describe(current), retries=cfg.retries, backoff_s=cfg.backoff_s
                )
            except (RetriesExhausted, KnownUnreadable) as exc:
                known = isinstance(exc, KnownUnreadable)
                cause = exc if known else exc.__cause__
                errors.append(f"{describe(current)}: {exc}" if known else str(exc))
                if not isinstance(cause, SceneReadError):
                    raise  # not an asset's failure (a bug?): stop, as before
                hrefs.add(cause.href)
                with lock:
                    unreadable.setdefault(cause.href, str(cause).removeprefix(f"{cause.href}: "))
                current = fallback(current, cause) if fallback is not None else None
                continue
            if errors:
                log.warning("%s; read from the next scene(s)", "; ".join(errors))
            return rec
        with lock:
            done.failed[path_of(item)] = "unreadable after retries: " + "; ".join(errors)
            done.hrefs |= hrefs
            if len(done.failed) > allowed:
                stop.set()
        return None

    def run(chunk: list[T]) -> None:
        opened = OpenedDatasets(signer, unreadable)
        try:
            with gdal_env(cfg.timeout_s):
                for item in chunk:
                    if stop.is_set():
                        return
                    rec = read_one(item, opened)
                    if rec is None:
                        continue
                    with atomic_path(path_of(item)) as tmp, open(tmp, "wb") as fh:
                        np.save(fh, rec)
                    if on_done is not None:
                        on_done(item)
        finally:
            opened.drop(fresh=False)

    folder.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=cfg.threads) as pool:
        futures = [pool.submit(run, c) for c in chunks]
        try:
            for fut in futures:
                fut.result()
        except BaseException:
            for fut in futures:  # an unexpected error (not a read's): stop at once
                fut.cancel()
            raise
    if len(done.failed) > allowed:
        raise TooManyUnreadable(too_many(done, len(items), max_failed_share))
    return done


def too_many(done: Records, total: int, max_failed_share: float) -> str:
    """The error of a read that lost more than its share: how many, the hrefs, the first reason."""
    hrefs = sorted(done.hrefs)
    named = ", ".join(hrefs[:HREFS_SHOWN]) + (
        f" and {len(hrefs) - HREFS_SHOWN} more" if len(hrefs) > HREFS_SHOWN else ""
    )
    first = next(iter(done.failed.values()))
    return (
        f"{len(done.failed)} of {total} record(s) unreadable after retries, more than "
        f"{max_failed_share:.0%} of them (MAX_FAILED_SHARE): the read stopped; assets: "
        f"{named or 'none named'}; first: {first}"
    )
