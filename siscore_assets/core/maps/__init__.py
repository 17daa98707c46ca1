"""Scores back onto the map: siScore and change rasters (COG + quicklook), full-resolution
per-granule overlays (numpy, with a PyCUDA kernel beside it), and the wide GIS export."""
