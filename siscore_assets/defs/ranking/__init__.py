"""Ranking wiring (see definitions.py)."""
