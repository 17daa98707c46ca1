"""A year's siScore change against the previous configured year and the first: the
`siscore_change` rows, and a change COG + PNG map per distinct pair of years."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from siscore_assets.core.maps import rasters

#: |delta| counted as a tile going up or down.
CHANGE_STEP = 0.05


def reference_years(years: Sequence[int], year: int) -> dict[str, int | None]:
    """``prev``: the configured year before ``year`` (None for the first); ``base``: the first."""
    earlier = [y for y in years if y < year]
    return {"prev": earlier[-1] if earlier else None, "base": years[0]}


@dataclass
class ChangePair:
    """One written pair: its label (``prev`` / ``base``), reference year, files and the change
    frame the raster holds."""

    label: str
    ref: int
    tif: Path
    png: Path
    change: pd.DataFrame

    def stats(self) -> dict[str, float | int]:
        """Mean delta and tiles up / down by more than :data:`CHANGE_STEP`, over tiles inhabited
        in either year."""
        ch = self.change.loc[self.change["inhabited_any"]]
        d, label = ch["delta"], self.label
        sig = ch["significant"] if "significant" in ch else pd.Series(False, index=ch.index)
        return {
            f"mean_delta_vs_{label}": float(d.mean()) if len(d) else float("nan"),
            f"tiles_up_{CHANGE_STEP}_vs_{label}": int((d > CHANGE_STEP).sum()),
            f"tiles_down_{CHANGE_STEP}_vs_{label}": int((d < -CHANGE_STEP).sum()),
            f"noise_sd_vs_{label}": float(ch["noise_sd"].median()) if "noise_sd" in ch else 0.0,
            f"tiles_significant_up_vs_{label}": int((sig & (d > 0)).sum()),
            f"tiles_significant_down_vs_{label}": int((sig & (d < 0)).sum()),
        }


@dataclass
class YearChange:
    """The `siscore_change` rows, why a reference was skipped (by label) and the pairs written
    (base first; ``prev`` left out when it is the same year as ``base``)."""

    table: pd.DataFrame
    notes: dict[str, str] = field(default_factory=dict)
    pairs: list[ChangePair] = field(default_factory=list)

    def files(self, country: str, year: int) -> pd.DataFrame:
        """The `change_raster_files` rows: a GeoTIFF and a PNG per pair."""
        if not self.pairs:  # typed: an empty first year must not retype the table
            return pd.DataFrame(
                {
                    c: pd.Series(dtype="int64" if c == "year" else str)
                    for c in rasters.RASTER_FILE_COLUMNS
                }
            )
        return pd.DataFrame(
            [
                {
                    "country": country,
                    "year": year,
                    "kind": f"change_{pair.label}",
                    "format": f,
                    "path": str(pth),
                }
                for pair in self.pairs
                for f, pth in (("geotiff", pair.tif), ("png", pair.png))
            ]
        )


def year_change(
    cur: pd.DataFrame,
    years: Sequence[int],
    year: int,
    read_grid: Callable[[int], pd.DataFrame],
    folder: Path,
    label: str = "",
) -> YearChange:
    """Change of ``cur`` (year ``year``'s grid) against the previous configured year and the
    first (``read_grid(ref)``: that year's grid, empty when not materialised), with a change COG
    + PNG per distinct pair written to ``folder`` (titles end with ``label``)."""
    refs = reference_years(years, year)
    others: dict[str, tuple[int, pd.DataFrame]] = {}
    notes: dict[str, str] = {}
    for name, ref in refs.items():
        if ref is None or ref == year:
            continue
        other = read_grid(ref)
        if other.empty:
            notes[name] = f"year {ref} not materialised"
        else:
            others[name] = (ref, other)
    table = rasters.change_table(cur, refs, {k: v[1] for k, v in others.items()})
    out = YearChange(table, notes)
    for name, (ref, other) in sorted(others.items(), key=lambda kv: kv[0] != "base"):
        if name == "prev" and "base" in others and others["base"][0] == ref:
            continue  # same pair as the base one
        tif, png, ch = rasters.write_change_pair(other, cur, ref, year, folder, label=label)
        out.pairs.append(ChangePair(name, ref, tif, png, ch))
    return out
