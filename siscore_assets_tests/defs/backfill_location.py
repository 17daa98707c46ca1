"""A code location for the backfill test: the platform built from the environment the test sets
($SISCORE_COUNTRIES, $SISCORE_DATA_ROOT, $SISCORE_WAREHOUSE).  Only that test imports it, so its
`defs` is built once, from that environment, in every process that loads it."""

from siscore_assets.definitions import build_definitions

defs = build_definitions()
