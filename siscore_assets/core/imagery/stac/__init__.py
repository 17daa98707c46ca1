"""Sentinel-2 L2A from a STAC API onto the grid: config, search, per-granule selection, warped reads."""
