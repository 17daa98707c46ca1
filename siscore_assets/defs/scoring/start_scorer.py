"""The scorer's members: trained here (from scratch or the Stage-1 network), started from another
trained country's scorer (``start_from`` + ``start_use: init``), or that country's scorer as it
is (``as_is``, zero-shot).  The method is ``core/models/transfer.py``."""

from __future__ import annotations

from pathlib import Path

from siscore_assets.core.countries import CountryConfig
from siscore_assets.core.models import habitation as habitation_lib
from siscore_assets.core.models import scorer as scorer_lib
from siscore_assets.core.models import scorer_training, transfer

from ..common.resources import SiscoreSettings
from ..common.start_from import checked_source, lineage_md


def scorer_members(
    settings: SiscoreSettings,
    country: CountryConfig,
    inputs: scorer_training.TrainingInputs,
    model_dir: Path,
) -> tuple[list, list[list[dict]], dict]:
    """(members in seed order, their training histories — none when reused as they are —, the
    lineage metadata of a start from another country); each member's file is written."""
    m, device = country.models, settings.device

    def save(seed: int, net) -> None:
        scorer_lib.save_scorer(net, model_dir / transfer.member_file(seed))

    if not transfer.reuses_scorer(m):
        pretrained = (
            habitation_lib.load_habitation(model_dir / transfer.HABITATION_FILE, device=device)
            if m.from_pretrained
            else None
        )
        members, histories = scorer_training.train_scorers(
            inputs, m, pretrained=pretrained, device=device, on_member=save
        )
        return members, histories, {}
    source, folder = checked_source(settings, country)  # refused here: nothing written yet
    if m.start_use == transfer.AS_IS:
        records = transfer.reuse_scorer(m, source.models, folder, model_dir)
        members = [
            scorer_lib.load_scorer(model_dir / transfer.member_file(s), device=device)
            for s in m.scorer_seeds
        ]
        return members, [], lineage_md(country, records)
    start = transfer.scorer_start(source.models, folder)
    records = {p.name: transfer.checkpoint_record(p) for p in start.members}
    members, histories = [], []
    for i, seed in enumerate(m.scorer_seeds):
        net, history = scorer_training.train_scorer(
            inputs,
            transfer.init_settings(m),
            seed=int(seed),
            pretrained=start.trunk(i),
            device=device,
        )
        save(int(seed), net)
        members.append(net)
        histories.append(history)
    return members, histories, lineage_md(country, records)
