"""A countries file that cannot be used stops the ``siscore`` command with one line
``FILE:LINE: problem`` on stderr and exit status 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


STAC = (
    "countries:\n  STC:\n    years: [2022]\n    source:\n      kind: stac\n"  # lines 1-5
    "      api: https://example.test/v1\n      bbox: [125.9, 38.0, 126.1, 38.1]\n"
)  # lines 6-7


def stac(extra: str = "", **replace: str) -> str:
    """The STAC country above with lines replaced (``api="..."``, "" drops it) and ``extra``
    from line 8."""
    text = STAC
    for key, value in replace.items():
        old = next(line for line in text.splitlines() if line.strip().startswith(f"{key}:"))
        text = text.replace(old + "\n", f"      {key}: {value}\n" if value else "")
    return text + extra


#: Every kind of wrong value in a stac source block: (text, line of the offending key, problem).
STAC_CASES = {
    "unknown_setting": (stac("      colour: red\n"), 8, "unknown stac source setting(s) colour"),
    "api_not_http": (stac(api="ftp://x"), 6, "source.api must be the STAC API's http(s) URL"),
    "api_missing": (stac(api=""), 4, "source.api must be"),
    "collection_not_a_string": (stac("      collection: 5\n"), 8, "source.collection must be"),
    "bbox_not_a_list": (stac(bbox="everywhere"), 7, "bbox must be [west, south, east, north]"),
    "bbox_inverted": (stac(bbox="[126.1, 38.0, 125.9, 38.1]"), 7, "bbox must be"),
    "bbox_not_degrees": (stac(bbox="[500000, 4200000, 510000, 4210000]"), 7, "in lon/lat degrees"),
    "country_bbox_inverted": (stac(bbox="") + "    bbox: [1, 2, 0, 3]\n", 7, "bbox must be"),
    "no_aoi_nor_bbox": (stac(bbox=""), 4, "needs source.aoi (a GeoJSON polygon file) or a bbox"),
    "aoi_not_a_path": (
        stac("      aoi: [126, 38]\n"),
        8,
        "source.aoi must be the path of a GeoJSON",
    ),
    "season_not_dates": (
        stac("      season: [13-01, 08-31]\n"),
        8,
        "source.season must be [MM-DD, MM-DD]",
    ),
    "season_not_a_pair": (stac("      season: summer\n"), 8, "source.season must be"),
    "season_leap_day": (
        stac("      season: [02-29, 08-31]\n"),
        8,
        "source.season must be [MM-DD, MM-DD]",
    ),
    "bands_out_of_order": (stac("      bands: [B02, B03, B04]\n"), 8, "source.bands must be"),
    "cloud_limit_out_of_range": (
        stac("      max_scene_cloud: 120\n"),
        8,
        "source.max_scene_cloud must be <= 100, got 120",
    ),
    "threads_not_a_number": (
        stac("      threads: many\n"),
        8,
        "source.threads must be an integer, got 'many'",
    ),
    "resampling_unknown": (
        stac("      resampling: lanczos\n"),
        8,
        "source.resampling must be one of",
    ),
    "signer_unknown": (stac("      sign: aws\n"), 8, "source.sign must be one of"),
    "asset_key_not_a_name": (
        stac("      asset_keys:\n        B04: 5\n"),
        9,
        "source.asset_keys.B04 must be",
    ),
    "granule_patches_zero": (
        stac("      granule_patches: {per_side: 0, px: 343}\n"),
        8,
        "source.granule_patches must be true, false or {per_side",
    ),
    "granule_patches_unknown_key": (
        stac("      granule_patches: {size: 343}\n"),
        8,
        "source.granule_patches must be",
    ),
}


SYN = "countries:\n  PRK:\n    years: [2016]\n    source:\n      kind: synthetic\n"  # lines 1-5

#: The schema's own rules: (text, line, the whole problem after ``FILE:LINE: ``).
SCHEMA_CASES = {
    "wrong_type": (
        SYN + "    models:\n      seed: 0\n      steps: many\n",
        8,
        "country PRK: models.steps must be an integer, got 'many'",
    ),
    "unknown_key": (
        SYN + "      nx: 12\n      colour: red\n",
        7,
        "country PRK: unknown synthetic source setting(s) colour",
    ),
    "out_of_range": (
        SYN + "    models:\n      recipe: cpu\n      steps: -3\n",
        8,
        "country PRK: models.steps must be >= 0, got -3",
    ),
    "wrong_source_kind": (
        SYN.replace("kind: synthetic", "kind: satellite"),
        5,
        "country PRK: source.kind must be one of synthetic, tile_folder, stac, score_file",
    ),
}


@pytest.mark.parametrize("case", sorted(SCHEMA_CASES))
def test_a_schema_error_is_exactly_one_line_at_its_key(tmp_path, case):
    text, line, problem = SCHEMA_CASES[case]
    path = tmp_path / "countries.yaml"
    path.write_text(text)
    done = _siscore(tmp_path, path, "countries")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == f"{path}:{line}: {problem}" and not done.stdout.strip()


def _siscore(tmp_path: Path, path: Path, command: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "SISCORE_COUNTRIES": str(path),
        "PYTHONPATH": str(ROOT),
        "DAGSTER_HOME": str(tmp_path),
        "SISCORE_DATA_ROOT": str(tmp_path / "data"),
    }
    return subprocess.run(
        [sys.executable, "-m", "siscore_assets.cli", command],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("text", "line", "problem", "command"),
    [
        (
            "countries:\n  A:\n    years: [2016\n    source: {kind: synthetic}\n",
            4,
            "not valid YAML",
            "countries",
        ),
        (
            "countries:\n  A:\n    source: {kind: synthetic}\n    years: 2016\n",
            4,
            "years must be",
            "run",
        ),
        (stac("      max_scene_cloud: -1\n"), 8, "max_scene_cloud", "run"),
        *[pytest.param(*case, "countries", id=f"stac-{name}") for name, case in STAC_CASES.items()],
    ],
)
def test_bad_countries_file_is_one_line_and_exit_2(tmp_path, text, line, problem, command):
    path = tmp_path / "countries.yaml"
    path.write_text(text)
    done = _siscore(tmp_path, path, command)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{path}:{line}: ") and problem in lines[0], (
        lines
    )
    assert "Traceback" not in done.stderr + done.stdout
