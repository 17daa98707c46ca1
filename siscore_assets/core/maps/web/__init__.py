"""The interactive map of a country as a static site: tile pyramids of its own imagery and of
siScore / change, per-tile records for clicks, district outlines, and the page that shows them
(`site.build_site`).  Modules are imported by name; this package exports nothing itself."""
