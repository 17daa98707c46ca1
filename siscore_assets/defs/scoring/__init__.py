"""Scoring wiring (see definitions.py)."""
