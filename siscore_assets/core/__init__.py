"""Pure logic of the siScore method, no Dagster import, grouped by what the method does:

- ``countries``: the countries file (configuration every room reads);
- ``storage``: the warehouse door and atomic file writes;
- ``imagery``: grid, sources (synthetic, tile folder), granules, patches;
- ``models``: habitation filter, clustering / DeepCluster, the rank scorer, Grad-CAM;
- ``ranking``: POGs, agreement, ensemble, data-guided POGs, the annotation kit;
- ``maps``: rasters, change maps, overlays, exports;
- ``analysis``: districts, covariates, validation, regression, imports.

Rooms import downward only (storage <- imagery <- models, ranking, analysis <- maps; every
room may read ``countries``); ``siscore_assets_tests/test_architecture.py`` enforces it.
"""
