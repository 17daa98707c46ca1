"""Start a country from another, trained country's networks (``models: start_from``).

``start_use`` says how much is reused: ``habitation`` the Stage-1 network (its file copied: no
pretraining here), ``init`` that and the source scorer's ResNet trunk as each seed's start
(the heads and the statistics are fitted on this country's own POG), ``as_is`` that and the
source's scorer files unchanged (zero-shot scoring: no scorer training here).

A network reads the input it was trained on, so reuse is refused, in one line naming both
countries and what differs, when the settings that shape a network differ
(:func:`~siscore_assets.core.model_settings.start_from_problem`) or when a source checkpoint on
disk is missing or was written for another input (:func:`check_source`).  Every reused file is
recorded by path, SHA-256 and modification time (:func:`checkpoint_record`), the lineage a run's
metadata shows.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from siscore_assets.core.model_settings import SCORER_SHAPE, ModelSettings, start_from_problem
from siscore_assets.core.models import habitation as habitation_lib
from siscore_assets.core.models import scorer as scorer_lib
from siscore_assets.core.models.common import load_checkpoint
from siscore_assets.core.storage.files import atomic_path

HABITATION, INIT, AS_IS = "habitation", "init", "as_is"
HABITATION_FILE, SCORER_FILE = "habitation.pt", "scorer.pt"


class StartFromError(ValueError):
    """A country cannot start from the one it names: one line, both countries named."""


def member_file(seed: int) -> str:
    """The file of one seed's scorer (``scorer_seed<seed>.pt``)."""
    return f"scorer_seed{seed}.pt"


def reuses_scorer(m: ModelSettings) -> bool:
    """The source's scorer is read (as the start, or as it is)."""
    return bool(m.start_from) and m.start_use in (INIT, AS_IS)


def source_files(m: ModelSettings, source: ModelSettings) -> list[str]:
    """The files of the source's ``models/`` folder that ``m``'s start reads."""
    if not m.start_from:
        return []
    files = [HABITATION_FILE]
    if reuses_scorer(m):
        files += [SCORER_FILE, *(member_file(s) for s in source.scorer_seeds)]
    return files


def expected_habitation(m: ModelSettings) -> dict:
    """The Stage-1 network's config a country's own pretraining would write (the fields that
    decide its input): what a reused checkpoint must match."""
    teacher = m.pretraining == "mean_teacher"
    return {
        "arch": "resnet18" if teacher else "small",
        "input_px": m.pretrain_px,
        "grayscale": m.pretrain_grayscale if teacher else False,
        "normalize": "fixed" if teacher else m.normalize,
    }


def _differences(want: dict, got: dict) -> list[str]:
    return [f"{k} {want[k]!r} vs {got.get(k)!r}" for k in want if got.get(k) != want[k]]


def check_source(
    code: str, m: ModelSettings, source_code: str, source: ModelSettings, source_dir: Path
) -> None:
    """Raise :class:`StartFromError` when ``code`` cannot start from ``source_code``'s trained
    files in ``source_dir`` (settings that shape a network differ, a file is missing, or a
    checkpoint was written for another input); reads only the checkpoints' configs."""
    if problem := start_from_problem(code, m, source_code, source):
        raise StartFromError(problem)
    for name in source_files(m, source):
        if not (source_dir / name).is_file():
            raise StartFromError(
                f"country {code}: start_from {source_code} needs {source_code}'s trained "
                f"{name}, but {source_dir / name} is missing: run {source_code} first "
                f"(siscore run --country {source_code})"
            )
    hab = habitation_lib.load_habitation(source_dir / HABITATION_FILE, device="cpu").config
    differ = _differences(expected_habitation(m), asdict(hab))
    if reuses_scorer(m):
        for name in source_files(m, source)[1:]:
            cfg, _ = load_checkpoint(source_dir / name, scorer_lib.KIND)
            # the network's input only: score-time views travel with the checkpoint
            want = {k: asdict(scorer_lib.ScorerConfig.of(m))[k] for k in SCORER_SHAPE}
            differ += [f"{name}: {d}" for d in _differences(want, cfg)]
    if differ:
        raise StartFromError(
            f"country {code}: cannot start_from {source_code} ({m.start_use}): "
            f"{source_code}'s checkpoints were written for another input ({code} vs "
            f"{source_code}): {'; '.join(differ)}; re-run {source_code} or drop start_from"
        )


def checkpoint_record(path: Path) -> dict:
    """Path, SHA-256 and modification time of a reused file (what lineage shows)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    mtime = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
    return {"path": str(path), "sha256": digest.hexdigest(), "mtime": mtime.isoformat()}


def copy_checkpoint(source: Path, target: Path) -> dict:
    """Copy a reused file into the country's own ``models/`` (renamed into place: a failed copy
    leaves the old file); returns the source's record."""
    record = checkpoint_record(source)
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    return record


@dataclass(frozen=True)
class ScorerStart:
    """Where each seed's scorer starts: the source's members' ResNet trunks, in seed order."""

    members: tuple[Path, ...]

    def trunk(self, index: int, device=None) -> habitation_lib.HabitationModel:
        """The ``index``-th member's trunk (cycled) as a ResNet-18 Stage-1 network, the form
        :func:`scorer.from_pretrained` starts a scorer from (its heads are not carried)."""
        source = scorer_lib.load_scorer(self.members[index % len(self.members)], device="cpu")
        carrier = habitation_lib.HabitationModel(habitation_lib.HabitationConfig(arch="resnet18"))
        state = {k: v for k, v in source.net.state_dict().items() if not k.startswith("fc.")}
        carrier.net.load_state_dict(state, strict=False)
        return carrier.to(device or "cpu").eval()


def scorer_start(source: ModelSettings, source_dir: Path) -> ScorerStart:
    """The source's per-seed scorer files, in its seed order."""
    return ScorerStart(tuple(source_dir / member_file(s) for s in source.scorer_seeds))


def init_settings(m: ModelSettings) -> ModelSettings:
    """The settings the scorer trains with when it starts from a source's trunk: the trunk is
    handed over as a pretrained network, whatever this country's own Stage 1 is."""
    return m.with_overrides(from_pretrained=True, pretraining="mean_teacher")


def reuse_scorer(
    m: ModelSettings, source: ModelSettings, source_dir: Path, model_dir: Path
) -> dict:
    """``as_is``: copy the source's scorer and its members' files into ``model_dir``; returns
    each file's source record by name."""
    return {
        name: copy_checkpoint(source_dir / name, model_dir / name)
        for name in source_files(m, source)[1:]
    }
