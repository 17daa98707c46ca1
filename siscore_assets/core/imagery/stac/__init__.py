"""Sentinel-2 L2A from a STAC API onto the grid: config, search, granule selection, warped reads."""
