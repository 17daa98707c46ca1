"""Where results live: the DuckDB warehouse (the one door every table write goes through) and
atomic file writes for everything kept as files."""
