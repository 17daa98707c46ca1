"""Ingest wiring (see definitions.py)."""
